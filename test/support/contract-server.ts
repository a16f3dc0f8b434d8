/**
 * The servers the core-contract tests send to: one plain HTTP app on loopback reachable under two origins
 * (`localhost` and `127.0.0.1`, which a client treats as two sites), the same app over TLS (a certificate made
 * for `localhost` when the servers start), the same app over TLS asking for a client certificate, a socket
 * server answering with a malformed status line and headers, and a forward proxy (plain requests and CONNECT)
 * that records what passes. Each request the app receives is kept with its host, path, headers and cookies.
 */
import { openTunnel } from './connect-proxy';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import type { AddressInfo } from 'node:net';

export interface SeenRequest {
  /** `localhost:port` or `127.0.0.1:port`, as the Host header named it. */
  host: string;
  tls: boolean;
  method: string;
  /** Path and query exactly as the request line carried them. */
  url: string;
  headers: http.IncomingHttpHeaders;
  /** Header names as sent (case kept) with their values. */
  rawHeaders: Record<string, string>;
  cookies: Record<string, string>;
  body: Buffer;
  /** Whether the bearer token (if any) was accepted by `checkBearer` when the request arrived. */
  bearerValid: boolean;
}

export interface CertificateFiles {
  dir: string;
  cert: string;
  key: string;
  pfx: string;
  pfxPassphrase: string;
}

export interface ContractServer {
  port: number;
  sslPort: number;
  clientCertPort: number;
  brokenPort: number;
  /** http://localhost:port + path */
  url(p: string): string;
  /** http://127.0.0.1:port + path: the same app under another origin. */
  otherUrl(p: string): string;
  sslUrl(p: string): string;
  clientCertUrl(p: string): string;
  brokenUrl(p: string): string;
  certificate: CertificateFiles;
  seen: SeenRequest[];
  reset(): void;
  close(): Promise<void>;
}

export interface ContractServerOptions {
  /** Decides whether a bearer token is valid (the test authorization server's introspection). */
  checkBearer(token: string): Promise<boolean>;
}

/** A self-signed certificate for localhost, its key, and both as a PKCS#12 file, in a fresh temporary folder. */
function makeCertificate(): CertificateFiles {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'core-contract-tls-'));
  const cert = path.join(dir, 'localhost.crt');
  const key = path.join(dir, 'localhost.key');
  const pfx = path.join(dir, 'localhost.pfx');
  const pfxPassphrase = 'contract';
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '2', '-subj', '/CN=localhost',
    '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1',
  ], { stdio: 'ignore' });
  execFileSync('openssl', ['pkcs12', '-export', '-in', cert, '-inkey', key, '-out', pfx, '-passout', `pass:${pfxPassphrase}`], { stdio: 'ignore' });
  return { dir, cert, key, pfx, pfxPassphrase };
}

function parseCookies(header: string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of (header ?? '').split(';')) {
    const at = part.indexOf('=');
    if (at <= 0) continue;
    // Values are kept as sent (not URL-decoded), so a test sees what encoding the client applied.
    out[part.slice(0, at).trim()] = part.slice(at + 1).trim();
  }
  return out;
}

interface UploadedPart {
  fieldname: string;
  originalname?: string;
  value: string;
}

/** The parts of a multipart/form-data body (enough for the upload case: names, file names, contents). */
function parseMultipart(body: Buffer, contentType: string): UploadedPart[] {
  const boundary = /boundary=(?:"([^"]+)"|([^;]+))/.exec(contentType);
  if (!boundary) return [];
  const marker = `--${boundary[1] ?? boundary[2]}`;
  const parts: UploadedPart[] = [];
  for (const chunk of body.toString('latin1').split(marker).slice(1)) {
    if (chunk.startsWith('--')) break;
    const end = chunk.indexOf('\r\n\r\n');
    if (end < 0) continue;
    const head = chunk.slice(0, end);
    const name = /name="([^"]*)"/.exec(head);
    const file = /filename="([^"]*)"/.exec(head);
    parts.push({
      fieldname: name?.[1] ?? '',
      originalname: file?.[1],
      value: Buffer.from(chunk.slice(end + 4).replace(/\r\n$/, ''), 'latin1').toString('utf8'),
    });
  }
  return parts;
}

export async function startContractServer(options: ContractServerOptions): Promise<ContractServer> {
  const seen: SeenRequest[] = [];
  const certificate = makeCertificate();
  const sockets = new Set<net.Socket>();
  const track = (s: net.Socket): void => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  };
  let port = 0;

  const app = (tls: boolean) => (req: http.IncomingMessage, res: http.ServerResponse): void => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      void (async () => {
        const body = Buffer.concat(chunks);
        const authorization = req.headers.authorization;
        const bearer = authorization?.startsWith('Bearer ') ? authorization.slice(7) : undefined;
        const rawHeaders: Record<string, string> = {};
        for (let i = 0; i < req.rawHeaders.length; i += 2) rawHeaders[req.rawHeaders[i]] = req.rawHeaders[i + 1];
        const record: SeenRequest = {
          host: req.headers.host ?? '',
          tls,
          method: req.method ?? '',
          url: req.url ?? '',
          headers: req.headers,
          rawHeaders,
          cookies: parseCookies(req.headers.cookie),
          body,
          bearerValid: bearer ? await options.checkBearer(bearer) : false,
        };
        seen.push(record);
        route(req, res, record);
      })();
    });
  };

  function send(res: http.ServerResponse, status: number, body: string | Buffer, type: string, extra: Record<string, string | string[]> = {}): void {
    const data = typeof body === 'string' ? Buffer.from(body) : body;
    res.writeHead(status, { 'content-type': type, 'content-length': String(data.length), ...extra });
    res.end(data);
  }
  const json = (res: http.ServerResponse, status: number, value: unknown, extra: Record<string, string | string[]> = {}): void =>
    send(res, status, JSON.stringify(value), 'application/json; charset=utf-8', extra);
  const html = (res: http.ServerResponse, value: string): void => send(res, 200, value, 'text/html; charset=utf-8');
  const redirect = (res: http.ServerResponse, location: string, cookie: string): void => {
    res.writeHead(302, { location, 'set-cookie': `${cookie}; Path=/`, 'content-length': '0' });
    res.end();
  };

  function route(req: http.IncomingMessage, res: http.ServerResponse, r: SeenRequest): void {
    const url = new URL(r.url, 'http://localhost');
    const get = r.method === 'GET' || r.method === 'HEAD';
    const p = url.pathname;
    if (r.method === 'OPTIONS') {
      res.writeHead(200, { 'content-length': '0' });
      res.end();
      return;
    }
    if (p === '/text' && get) return html(res, 'hello');
    if (p === '/json' && get) return json(res, 200, { a: 1 });
    if (p === '/bad-json' && get) return send(res, 200, '{a:1', 'application/json');
    if (p === '/no-content' && get) return void res.writeHead(204).end();
    if (p === '/response-header' && get) return send(res, 200, 'a', 'text/html; charset=utf-8', { 'x-test-header': 'bar' });
    if (p === '/inspect') {
      if (r.method === 'DELETE' || r.method === 'HEAD') return void res.writeHead(204).end();
      const answer = JSON.stringify({
        method: r.method,
        body: r.body.toString('utf8'),
        headers: r.headers,
        rawHeaders: r.rawHeaders,
        url: r.url,
        query: Object.fromEntries(url.searchParams),
      });
      const etag = `W/"${createHash('sha1').update(answer).digest('hex').slice(0, 16)}"`;
      return send(res, 200, answer, 'application/json; charset=utf-8', { etag });
    }
    if (p === '/upload' && r.method === 'POST') {
      const parts = parseMultipart(r.body, String(r.headers['content-type'] ?? ''));
      return json(res, 200, {
        fields: Object.fromEntries(parts.filter((x) => x.originalname === undefined).map((x) => [x.fieldname, x.value])),
        files: parts.filter((x) => x.originalname !== undefined),
      });
    }
    if (p === '/slow' && get) {
      const timer = setTimeout(() => html(res, 'hello'), Number(url.searchParams.get('ms') ?? '2000'));
      res.on('close', () => clearTimeout(timer));
      return;
    }
    if (p.startsWith('/status/') && get) {
      const code = p.slice('/status/'.length);
      return json(res, Number(code), { gotError: code });
    }
    if (p === '/set-cookie' && get) return send(res, 200, '', 'text/html; charset=utf-8', { 'set-cookie': 'data=hello; Path=/' });
    if (p === '/cookies' && get) return json(res, 200, r.cookies);
    if (p === '/bearer' && get) {
      const header = r.headers.authorization ?? '';
      return json(res, 200, { token: header.startsWith('Bearer ') ? header.slice(7) : null });
    }
    if (p === '/redirect-to-text' && get) {
      res.writeHead(302, { location: `http://localhost:${port}/text`, 'content-length': '0' });
      res.end();
      return;
    }
    if (p === '/redirect-same' && get) return redirect(res, `http://localhost:${port}/redirect-end`, 'sameSiteHop=same1');
    if (p === '/redirect-other' && get) return redirect(res, `http://127.0.0.1:${port}/redirect-end`, 'otherSiteHop=other1');
    if (p === '/redirect-twice' && get) return redirect(res, `http://localhost:${port}/redirect-other`, 'firstHop=first1');
    if (p === '/redirect-end' && get) {
      res.writeHead(200, { 'set-cookie': 'lastHop=last1; Path=/', 'content-length': '0' });
      res.end();
      return;
    }
    if (p === '/client-cert' && get) {
      const authorized = (req.socket as import('node:tls').TLSSocket).authorized === true;
      return authorized ? html(res, 'hello') : send(res, 401, '', 'text/plain');
    }
    json(res, 404, { notFound: p });
  }

  /** Listens on 127.0.0.1 and, where the machine has it, [::1] with the same port, so `localhost` reaches it. */
  async function listenLoopback(make: () => net.Server): Promise<number> {
    const first = make();
    first.on('connection', track);
    first.on('secureConnection', track);
    await new Promise<void>((resolve) => first.listen(0, '127.0.0.1', resolve));
    const p = (first.address() as AddressInfo).port;
    const second = make();
    second.on('connection', track);
    second.on('secureConnection', track);
    await new Promise<void>((resolve) => {
      second.once('error', () => resolve());
      second.listen(p, '::1', resolve);
    });
    servers.push(first, second);
    return p;
  }

  const servers: net.Server[] = [];
  const key = fs.readFileSync(certificate.key);
  const cert = fs.readFileSync(certificate.cert);
  port = await listenLoopback(() => http.createServer(app(false)));
  const sslPort = await listenLoopback(() => https.createServer({ key, cert }, app(true)));
  // The certificate is its own CA: a client presenting it is "authorized"; one presenting none gets 401.
  const clientCertPort = await listenLoopback(() => https.createServer({ key, cert, ca: cert, requestCert: true, rejectUnauthorized: false }, app(true)));
  const brokenPort = await listenLoopback(() =>
    net.createServer((socket) => {
      // LF-only line ends and a status line with no reason: a strict HTTP parser refuses this answer.
      socket.on('error', () => undefined);
      socket.end('HTTP/1.0 200\nContent-Type: text/plain\n\nHelloWorld');
    }),
  );

  return {
    port,
    sslPort,
    clientCertPort,
    brokenPort,
    url: (p) => `http://localhost:${port}${p}`,
    otherUrl: (p) => `http://127.0.0.1:${port}${p}`,
    sslUrl: (p) => `https://localhost:${sslPort}${p}`,
    clientCertUrl: (p) => `https://localhost:${clientCertPort}${p}`,
    brokenUrl: (p) => `http://localhost:${brokenPort}${p}`,
    certificate,
    seen,
    reset() {
      seen.length = 0;
    },
    async close() {
      for (const s of sockets) s.destroy();
      await Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
      fs.rmSync(certificate.dir, { recursive: true, force: true });
    },
  };
}

export interface ForwardProxy {
  url: string;
  /** Plain (absolute-form) requests forwarded: request line target and headers. */
  forwarded: { url: string; headers: http.IncomingHttpHeaders }[];
  /** CONNECT tunnels opened: authority and headers. */
  tunnels: { authority: string; headers: http.IncomingHttpHeaders }[];
  /** Whether any request (plain or CONNECT) for `hostPort` passed through. */
  saw(hostPort: string): boolean;
  /** Require this Proxy-Authorization (Basic); 407 otherwise. */
  requireAuth(credentials: { username: string; password: string } | undefined): void;
  reset(): void;
  close(): Promise<void>;
}

/** A forward proxy on loopback: plain requests are sent on to their target, CONNECT opens a tunnel. */
export async function startForwardProxy(): Promise<ForwardProxy> {
  const forwarded: ForwardProxy['forwarded'] = [];
  const tunnels: ForwardProxy['tunnels'] = [];
  const sockets = new Set<net.Socket>();
  let required: string | undefined;
  const server = http.createServer((req, res) => {
    forwarded.push({ url: req.url ?? '', headers: req.headers });
    if (required !== undefined && req.headers['proxy-authorization'] !== required) {
      res.writeHead(407, { 'proxy-authenticate': 'Basic realm="proxy"', 'content-length': '0' });
      res.end();
      return;
    }
    const headers = { ...req.headers };
    delete headers['proxy-authorization'];
    delete headers['proxy-connection'];
    const upstream = http.request(req.url ?? '', { method: req.method, headers }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    });
    upstream.on('error', () => {
      if (!res.headersSent) res.writeHead(502);
      res.end();
    });
    req.pipe(upstream);
  });
  server.on('connection', (s: net.Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  server.on('connect', (req: http.IncomingMessage, client: net.Socket, head: Buffer) => {
    const authority = req.url ?? '';
    tunnels.push({ authority, headers: req.headers });
    client.on('error', () => undefined);
    if (required !== undefined && req.headers['proxy-authorization'] !== required) {
      client.end('HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm="proxy"\r\nContent-Length: 0\r\n\r\n');
      return;
    }
    openTunnel(client, authority, head, sockets, (host) => (host === 'localhost' ? '127.0.0.1' : host));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    forwarded,
    tunnels,
    saw: (hostPort) => forwarded.some((f) => f.url.includes(`//${hostPort}/`)) || tunnels.some((t) => t.authority === hostPort),
    requireAuth(credentials) {
      required = credentials ? `Basic ${Buffer.from(`${credentials.username}:${credentials.password}`).toString('base64')}` : undefined;
    },
    reset() {
      forwarded.length = 0;
      tunnels.length = 0;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const s of sockets) s.destroy();
      }),
  };
}
