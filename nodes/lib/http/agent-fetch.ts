/**
 * A `fetch` over a connection's agents, for the few calls written against fetch (discovery): the same proxy,
 * TLS settings and socket pool as every other call of the connection. Only what those calls use: GET-like
 * requests with headers, a signal, and no redirects followed (the caller follows them by hand).
 */
import http from 'node:http';
import https from 'node:https';
import { Readable } from 'node:stream';
import type { AgentPair } from './agents';

export function agentFetch(agents: Pick<AgentPair, 'http' | 'https'>): typeof fetch {
  return (input, init) =>
    new Promise<Response>((resolve, reject) => {
      const url = new URL(input instanceof Request ? input.url : String(input));
      const secure = url.protocol === 'https:';
      const headers: Record<string, string> = {};
      new Headers(init?.headers).forEach((value, name) => (headers[name] = value));
      const signal = init?.signal ?? undefined;
      if (signal?.aborted) return reject(signal.reason);
      const request = (secure ? https : http).request(url, { method: init?.method ?? 'GET', headers, agent: secure ? agents.https : agents.http }, (res) => {
        const responseHeaders = new Headers();
        for (const [name, value] of Object.entries(res.headers)) {
          if (Array.isArray(value)) value.forEach((v) => responseHeaders.append(name, v));
          else if (value !== undefined) responseHeaders.set(name, value);
        }
        const status = res.statusCode ?? 0;
        // A Response cannot carry a body for these statuses.
        const bodyless = status === 204 || status === 304 || (status >= 100 && status < 200);
        if (bodyless) res.resume();
        resolve(new Response(bodyless ? null : (Readable.toWeb(res) as ReadableStream<Uint8Array>), { status, statusText: res.statusMessage ?? '', headers: responseHeaders }));
      });
      const abort = (): void => {
        request.destroy(Object.assign(new Error('The operation was aborted'), { name: signal?.reason instanceof Error ? signal.reason.name : 'AbortError' }));
      };
      signal?.addEventListener('abort', abort, { once: true });
      request.once('close', () => signal?.removeEventListener('abort', abort));
      request.once('error', reject);
      request.end(init?.body === undefined || init.body === null ? undefined : String(init.body));
    });
}
