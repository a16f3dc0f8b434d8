/** Shared bits of the OAuth engine tests. */
import assert from 'node:assert/strict';
import http from 'node:http';
import * as fsp from 'node:fs/promises';
import type { AddressInfo, Socket } from 'node:net';
import * as path from 'node:path';
import { isOAuth2Error, type ErrorParams, type OAuth2Error } from '../../../nodes/lib/errors';
import type { ClientSettings } from '../../../nodes/lib/types';

/**
 * A tiny loopback HTTP server for the few answers a real authorization server will not give (slow_down,
 * a non-JSON 200, a document naming another issuer, a server that never answers).
 */
export interface LoopbackServer {
  url: string;
  requests: { method: string; path: string; body: string; headers: http.IncomingHttpHeaders }[];
  close(): Promise<void>;
}

export type LoopbackHandler = (req: http.IncomingMessage, body: string, res: http.ServerResponse) => void;

export async function startLoopbackServer(handler: LoopbackHandler): Promise<LoopbackServer> {
  const requests: LoopbackServer['requests'] = [];
  const sockets = new Set<Socket>();
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      requests.push({ method: req.method ?? '', path: req.url ?? '', body, headers: req.headers });
      handler(req, body, res);
    });
  });
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const s of sockets) s.destroy();
      }),
  };
}

export function json(res: http.ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

export function clientSettings(overrides: Partial<ClientSettings> & Pick<ClientSettings, 'clientId'>): ClientSettings {
  return {
    authMethod: 'client_secret_basic',
    scopes: [],
    resources: [],
    extraAuthorizeParams: {},
    extraTokenParams: {},
    ...overrides,
  };
}

/** Runs `fn`, expects a rejection, and returns the error for further checks. */
export async function rejection(fn: () => Promise<unknown>): Promise<Error & Record<string, unknown>> {
  try {
    await fn();
  } catch (err) {
    assert.ok(err instanceof Error, 'rejects with an Error');
    return err as Error & Record<string, unknown>;
  }
  assert.fail('expected a rejection');
}

/** Every string an error exposes: message, stack, own properties (params, cause...), serialised. */
export function errorText(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const own: Record<string, unknown> = {};
  for (const key of Object.getOwnPropertyNames(err)) own[key] = (err as unknown as Record<string, unknown>)[key];
  return `${err.message}\n${err.stack ?? ''}\n${JSON.stringify(own)}\n${err.cause ? errorText(err.cause) : ''}`;
}

export function assertNoSecrets(err: unknown, secrets: (string | undefined)[]): void {
  const text = errorText(err);
  for (const secret of secrets) {
    if (secret) assert.ok(!text.includes(secret), `error exposes a secret: ${text.slice(0, 300)}`);
  }
}

/** Awaits `promise`, expects it to reject with an OAuth2Error, and returns that error. */
export async function oauthRejection(promise: Promise<unknown>): Promise<OAuth2Error> {
  try {
    await promise;
  } catch (err) {
    assert.ok(isOAuth2Error(err), `expected an OAuth2Error, got ${String(err)}`);
    return err;
  }
  assert.fail('expected a rejection');
}

/** Node-RED's `_` over one language's connection catalog (i18next's __name__ interpolation). */
export async function connectionCatalog(lang: string): Promise<(key: string, params?: ErrorParams) => string> {
  const file = path.resolve(__dirname, '..', '..', '..', 'locales', lang, 'oauth2-connection.json');
  const root = (JSON.parse(await fsp.readFile(file, 'utf8')) as Record<string, unknown>)['oauth2-connection'];
  return (key, params) => {
    let node: unknown = root;
    for (const part of key.split('.')) node = typeof node === 'object' && node !== null ? (node as Record<string, unknown>)[part] : undefined;
    if (typeof node !== 'string') return key;
    return node.replace(/__([A-Za-z0-9]+)__/g, (whole, name: string) => (params?.[name] !== undefined ? String(params[name]) : whole));
  };
}
