import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { AuthServer } from './auth-server';

export interface SeenRequest {
  method: string;
  path: string;
  authorization?: string;
  headers: http.IncomingHttpHeaders;
  body: string;
  /** Whether the bearer token was valid at the authorization server when the request arrived. */
  authorised: boolean;
}

export interface ApiServer {
  url: string;
  port: number;
  requests: SeenRequest[];
  reset(): void;
  close(): Promise<void>;
}

/**
 * A small protected API on loopback that really validates tokens against the test authorization server.
 * Routes:
 *   GET  /records          -> 200 JSON list (401 with WWW-Authenticate when the token is missing or invalid)
 *   ANY  /echo             -> 200 JSON {method, headers, body, authorised}
 *   GET  /redirect?to=URL  -> 302 to URL (no token check: a hop like a CDN or a login bounce)
 *   GET  /open             -> 200 without any token check (for the "other origin" side of redirect tests)
 *   GET  /status/:code     -> that status with a JSON body (token checked)
 */
export async function startApiServer(auth: Pick<AuthServer, 'validateAccessToken'> | undefined, options: { checkTokens?: boolean } = {}): Promise<ApiServer> {
  const requests: SeenRequest[] = [];
  const checkTokens = options.checkTokens ?? true;
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      void (async () => {
        const url = new URL(req.url ?? '/', 'http://127.0.0.1');
        const authorization = req.headers.authorization;
        const bearer = authorization?.startsWith('Bearer ') ? authorization.slice(7) : undefined;
        let authorised = false;
        if (bearer && auth) authorised = (await auth.validateAccessToken(bearer)).active;
        const body = Buffer.concat(chunks).toString('utf8');
        requests.push({ method: req.method ?? 'GET', path: url.pathname + url.search, authorization, headers: req.headers, body, authorised });
        const json = (status: number, value: unknown, headers: Record<string, string> = {}): void => {
          res.writeHead(status, { 'content-type': 'application/json', ...headers });
          res.end(JSON.stringify(value));
        };
        if (url.pathname === '/redirect') {
          res.writeHead(302, { location: url.searchParams.get('to') ?? '/' });
          res.end();
          return;
        }
        if (url.pathname === '/cookie') {
          res.writeHead(200, { 'content-type': 'text/plain', 'set-cookie': 'id=42; Path=/; Secure' });
          res.end('cookie set');
          return;
        }
        if (url.pathname === '/open') {
          json(200, { open: true, authorizationPresent: Boolean(authorization) });
          return;
        }
        if (checkTokens && !authorised) {
          json(401, { error: 'invalid_token' }, { 'www-authenticate': 'Bearer error="invalid_token"' });
          return;
        }
        if (url.pathname === '/records') {
          json(200, [
            { id: 1, name: 'first' },
            { id: 2, name: 'second' },
          ]);
          return;
        }
        if (url.pathname === '/echo') {
          json(200, { method: req.method, headers: req.headers, body, authorised });
          return;
        }
        const status = /^\/status\/(\d{3})$/.exec(url.pathname);
        if (status) {
          json(Number(status[1]), { status: Number(status[1]) });
          return;
        }
        json(404, { error: 'not_found' });
      })().catch(() => {
        res.writeHead(500);
        res.end();
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    requests,
    reset: () => {
      requests.length = 0;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
