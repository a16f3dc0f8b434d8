import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { AuthServer } from '../../test/support/auth-server';

export interface BenchApi {
  url: string;
  /** Requests answered, by status. */
  counts: Record<number, number>;
  close(): Promise<void>;
}

const BODY = JSON.stringify({ items: [{ id: 1, name: 'first' }, { id: 2, name: 'second' }], next: null });

/**
 * The throughput target: GET /data answers a small JSON body on a keep-alive server. A bearer token is checked
 * once against the authorization server and then remembered, so the API's own cost is the same small constant
 * for every variant and does not decide the comparison (test/support/api-server.ts checks every request, which
 * suits correctness tests, not a throughput ceiling).
 */
export async function startBenchApi(auth: AuthServer): Promise<BenchApi> {
  const valid = new Set<string>();
  const counts: Record<number, number> = {};
  const answer = (res: http.ServerResponse, status: number, body: string): void => {
    counts[status] = (counts[status] ?? 0) + 1;
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  };
  const server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      const header = req.headers.authorization ?? '';
      const token = header.startsWith('Bearer ') ? header.slice(7) : '';
      if (token && valid.has(token)) return answer(res, 200, BODY);
      if (!token) return answer(res, 401, '{"error":"invalid_token"}');
      auth.validateAccessToken(token).then(
        (result) => {
          if (result.active) valid.add(token);
          answer(res, result.active ? 200 : 401, result.active ? BODY : '{"error":"invalid_token"}');
        },
        () => answer(res, 500, '{}'),
      );
    });
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    counts,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** A client-credentials token straight from the token endpoint (for the core node's fixed bearer token). */
export async function clientCredentialsToken(auth: AuthServer, scope = 'api:read'): Promise<string> {
  const res = await fetch(`${auth.issuer}/token`, {
    method: 'POST',
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      authorization: `Basic ${Buffer.from(`${auth.clients.service.clientId}:${auth.clients.service.clientSecret}`).toString('base64')}`,
    },
    body: new URLSearchParams({ grant_type: 'client_credentials', scope }).toString(),
  });
  if (!res.ok) throw new Error(`client_credentials: ${res.status} ${await res.text()}`);
  return ((await res.json()) as { access_token: string }).access_token;
}
