/**
 * A fault-injecting loopback HTTP proxy (node:http only). Put it in front of the auth server's token endpoint
 * or an API: requests pass through to `upstream` unless a fault is armed, in which case the proxy answers
 * itself (the upstream never sees the request, so a faulted refresh never spends a rotating refresh token).
 * The one exception is `lose-answer`: the request reaches the upstream, which acts on it, and its answer is lost.
 *
 * Faults are switched at run time with `fault(mode, { times, match })`: `times` limits how many requests get
 * it (then the proxy passes again), `match` limits it to some requests (by method and path).
 */
import * as http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export type FaultMode =
  /** Answer this status (5xx, 429...) with these headers (Retry-After...) and body (JSON by default). */
  | { kind: 'status'; status: number; headers?: Record<string, string>; body?: string; contentType?: string }
  /** Write the headers (with the full Content-Length) and part of the body, then destroy the socket. */
  | { kind: 'reset-mid-body'; status?: number; body?: string }
  /** Accept the request and never answer (until `ms` passes, then destroy the socket, or the proxy closes). */
  | { kind: 'stall'; ms?: number }
  /** Answer a 2xx (or `status`) with exactly this body: malformed JSON, truncated JSON, HTML, wrong types. */
  | { kind: 'body'; body: string; status?: number; contentType?: string }
  /**
   * Forward the request and read the upstream's whole answer (so it has acted on it: a refresh rotated the
   * refresh token), then give the client nothing: destroy its socket after `ms` (0: at once, a cut connection),
   * or never answer until the proxy closes (the client's timeout).
   */
  | { kind: 'lose-answer'; ms?: number };

export interface FaultOptions {
  /** How many matching requests get the fault; afterwards they pass. Default: every one until `clear()`. */
  times?: number;
  /** Only requests this accepts get the fault (others pass, uncounted as faulted). */
  match?: (req: { method: string; path: string }) => boolean;
}

export interface ProxiedRequest {
  method: string;
  path: string;
  /** The fault kind that answered it, or 'pass'. */
  answer: FaultMode['kind'] | 'pass';
  at: number;
}

export interface FaultProxy {
  /** e.g. http://127.0.0.1:PORT (no trailing slash) */
  url: string;
  port: number;
  /** Every request the proxy received, in arrival order. */
  requests: ProxiedRequest[];
  /** Requests received (optionally only those `match` accepts). */
  count(match?: (r: ProxiedRequest) => boolean): number;
  fault(mode: FaultMode, options?: FaultOptions): void;
  clear(): void;
  resetCounts(): void;
  close(): Promise<void>;
}

/** Ready-made faults for the cases the reliability campaign covers. */
export const faults = {
  serverError: (status = 503): FaultMode => ({ kind: 'status', status, body: JSON.stringify({ error: 'temporarily_unavailable' }) }),
  tooManyRequests: (retryAfterSec = 1): FaultMode => ({
    kind: 'status',
    status: 429,
    headers: { 'retry-after': String(retryAfterSec) },
    body: JSON.stringify({ error: 'slow_down' }),
  }),
  resetMidBody: (): FaultMode => ({
    kind: 'reset-mid-body',
    body: JSON.stringify({ access_token: 'x'.repeat(40), token_type: 'Bearer', expires_in: 60, records: [{ id: 1 }, { id: 2 }] }),
  }),
  stall: (ms?: number): FaultMode => ({ kind: 'stall', ms }),
  /** The upstream gets the request and answers; the client gets a cut connection (`ms: 0`) or no answer. */
  loseAnswer: (ms?: number): FaultMode => ({ kind: 'lose-answer', ms }),
  malformedJson: (): FaultMode => ({ kind: 'body', body: '{"access_token": "abc", token_type: Bearer,,}' }),
  truncatedJson: (): FaultMode => ({ kind: 'body', body: '{"access_token":"abcdefabcdef","token_type":"Bear' }),
  htmlErrorPage: (status = 502): FaultMode => ({
    kind: 'body',
    status,
    contentType: 'text/html; charset=utf-8',
    body: '<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head><body><h1>Bad Gateway</h1></body></html>',
  }),
  /** A 200 "token response" with `fields` (missing access_token, wrong types...). */
  tokenResponse: (fields: Record<string, unknown>): FaultMode => ({ kind: 'body', body: JSON.stringify(fields) }),
};

/**
 * Starts a proxy on 127.0.0.1 forwarding to `upstream` (an origin: http://127.0.0.1:PORT), on `port` if given
 * (a port a client was already pointed at, to bring "connection refused" to an end), else on a random one.
 */
export async function startFaultProxy(upstream: string, port = 0): Promise<FaultProxy> {
  const target = new URL(upstream);
  const requests: ProxiedRequest[] = [];
  let armed: { mode: FaultMode; left: number; match?: FaultOptions['match'] } | undefined;
  const sockets = new Set<Socket>();
  const timers = new Set<NodeJS.Timeout>();
  const upstreamAgent = new http.Agent({ keepAlive: true });

  function pick(method: string, path: string): FaultMode | undefined {
    if (!armed || armed.left <= 0) return undefined;
    if (armed.match && !armed.match({ method, path })) return undefined;
    armed.left -= 1;
    return armed.mode;
  }

  /** After `ms` (none: never, until close), the client's connection dies without an answer. */
  function dropLater(req: http.IncomingMessage, ms: number | undefined): void {
    if (ms === undefined) return;
    const timer = setTimeout(() => {
      timers.delete(timer);
      req.socket.destroy();
    }, ms);
    timers.add(timer);
  }

  function answerFault(mode: FaultMode, req: http.IncomingMessage, res: http.ServerResponse, body: Buffer): void {
    switch (mode.kind) {
      case 'lose-answer': {
        const headers = { ...req.headers, host: target.host };
        const out = http.request(
          { protocol: target.protocol, hostname: target.hostname, port: target.port, method: req.method, path: req.url, headers, agent: upstreamAgent },
          (up) => {
            up.resume();
            up.on('end', () => dropLater(req, mode.ms));
            up.on('error', () => req.socket.destroy());
          },
        );
        out.on('error', () => req.socket.destroy());
        out.end(body);
        return;
      }
      case 'status': {
        const body = mode.body ?? '';
        res.writeHead(mode.status, { 'content-type': mode.contentType ?? 'application/json', 'content-length': Buffer.byteLength(body), ...mode.headers });
        res.end(body);
        return;
      }
      case 'body': {
        res.writeHead(mode.status ?? 200, { 'content-type': mode.contentType ?? 'application/json', 'content-length': Buffer.byteLength(mode.body) });
        res.end(mode.body);
        return;
      }
      case 'reset-mid-body': {
        const body = mode.body ?? JSON.stringify({ data: 'y'.repeat(200) });
        res.writeHead(mode.status ?? 200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
        res.write(body.slice(0, Math.floor(body.length / 2)), () => {
          // Let the first half reach the client before the connection dies.
          const timer = setTimeout(() => {
            timers.delete(timer);
            req.socket.destroy();
          }, 5);
          timers.add(timer);
        });
        return;
      }
      case 'stall': {
        dropLater(req, mode.ms);
        return;
      }
    }
  }

  function forward(req: http.IncomingMessage, res: http.ServerResponse, body: Buffer): void {
    const headers = { ...req.headers, host: target.host };
    const out = http.request(
      { protocol: target.protocol, hostname: target.hostname, port: target.port, method: req.method, path: req.url, headers, agent: upstreamAgent },
      (up) => {
        res.writeHead(up.statusCode ?? 502, up.headers);
        up.pipe(res);
        up.on('error', () => res.destroy());
      },
    );
    out.on('error', () => {
      if (!res.headersSent) res.writeHead(502, { 'content-type': 'application/json' });
      res.end('{"error":"upstream_unreachable"}');
    });
    out.end(body);
  }

  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('error', () => undefined);
    req.on('end', () => {
      const method = req.method ?? 'GET';
      const path = req.url ?? '/';
      const mode = pick(method, path);
      requests.push({ method, path, answer: mode ? mode.kind : 'pass', at: Date.now() });
      if (mode) answerFault(mode, req, res, Buffer.concat(chunks));
      else forward(req, res, Buffer.concat(chunks));
    });
  });
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  server.on('clientError', (_err, socket: Socket) => socket.destroy());
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', resolve);
  });
  const listening = (server.address() as AddressInfo).port;

  return {
    url: `http://127.0.0.1:${listening}`,
    port: listening,
    requests,
    count: (match) => (match ? requests.filter(match).length : requests.length),
    fault(mode, options = {}) {
      armed = { mode, left: options.times ?? Number.POSITIVE_INFINITY, match: options.match };
    },
    clear() {
      armed = undefined;
    },
    resetCounts() {
      requests.length = 0;
    },
    close: () =>
      new Promise<void>((resolve) => {
        armed = undefined;
        for (const timer of timers) clearTimeout(timer);
        timers.clear();
        upstreamAgent.destroy();
        server.close(() => resolve());
        for (const socket of sockets) socket.destroy();
      }),
  };
}
