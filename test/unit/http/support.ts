import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Authorizer } from '../../../nodes/lib/http/authorizer';
import { OriginAllowlist } from '../../../nodes/lib/http/origin';
import { retryPolicy } from '../../../nodes/lib/http/retry';
import type { AuthorisedRequest } from '../../../nodes/lib/http/request';

export interface Seen {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

export interface TestServer {
  origin: string;
  port: number;
  seen: Seen[];
  connections: number;
  close(): Promise<void>;
}

export type Handler = (req: http.IncomingMessage, res: http.ServerResponse, body: Buffer, n: number) => void;

/** A real loopback HTTP server that records every request and counts TCP connections. */
export async function startServer(handler: Handler): Promise<TestServer> {
  const seen: Seen[] = [];
  const state = { connections: 0 };
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body });
      handler(req, res, body, seen.length);
    });
  });
  server.on('connection', () => {
    state.connections += 1;
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    origin: `http://127.0.0.1:${port}`,
    port,
    seen,
    get connections() {
      return state.connections;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

export const TOKEN_PREFIX = 'SeCrEtToKeN';

export interface TestAuthorizer extends Authorizer {
  renewals: string[];
  issued: number;
}

/** An Authorizer over a counter of tokens: renewal issues the next one. */
export function testAuthorizer(allowed: string[], expiredStatuses: number[] = [401]): TestAuthorizer {
  const list = new OriginAllowlist(allowed[0], allowed.slice(1));
  const a: TestAuthorizer = {
    renewals: [],
    issued: 1,
    allows: (url: URL) => list.allows(url),
    getAccessToken: async () => ({ accessToken: `${TOKEN_PREFIX}-${a.issued}`, tokenType: 'bearer' }),
    renewAfterRejection: async (rejected: string) => {
      a.renewals.push(rejected);
      if (rejected === `${TOKEN_PREFIX}-${a.issued}`) a.issued += 1;
      return { accessToken: `${TOKEN_PREFIX}-${a.issued}`, tokenType: 'bearer' };
    },
    expiredStatuses,
  };
  return a;
}

export function baseRequest(url: string, overrides: Partial<AuthorisedRequest> = {}): AuthorisedRequest {
  return {
    method: 'GET',
    url,
    headers: {},
    timeoutMs: 5000,
    responseMode: 'txt',
    followRedirects: true,
    maxRedirects: 5,
    retry: retryPolicy({ maxAttempts: 3, baseDelayMs: 1, maxDelayMs: 5 }),
    ...overrides,
  };
}

/** Records the waits instead of waiting. */
export function recordingSleep(): { delays: number[]; sleep: (ms: number) => Promise<void> } {
  const delays: number[] = [];
  return { delays, sleep: async (ms: number) => void delays.push(ms) };
}
