/**
 * A loopback HTTP proxy that records what passes: it answers CONNECT with a tunnel to the named host and port
 * (nothing else: a plain proxied request gets 405), and keeps every CONNECT's authority and headers and every
 * byte a client sent it outside a tunnel. What passes inside a tunnel (TLS, or plain HTTP to a loopback test
 * server) is counted but not kept, as a real proxy would see it: the tests check that no credential reaches
 * the proxy itself.
 */
import * as http from 'node:http';
import * as net from 'node:net';
import type { AddressInfo } from 'node:net';

/**
 * Answers a CONNECT for `authority` (host:port) with a tunnel to it: 200, then bytes both ways; 502 when the
 * target cannot be reached. `mapHost` picks the address to dial (a test name such as localhost). The upstream
 * socket joins `sockets`, so closing the proxy closes it too.
 */
export function openTunnel(client: net.Socket, authority: string, head: Buffer, sockets: Set<net.Socket>, mapHost: (host: string) => string = (h) => h): void {
  const at = authority.lastIndexOf(':');
  const host = authority.slice(0, at).replace(/^\[|\]$/g, '');
  const upstream = net.connect(Number(authority.slice(at + 1)), mapHost(host), () => {
    client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
    if (head.length > 0) upstream.write(head);
    upstream.pipe(client);
    client.pipe(upstream);
  });
  sockets.add(upstream);
  upstream.on('close', () => sockets.delete(upstream));
  upstream.on('error', () => client.end('HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n'));
  client.on('close', () => upstream.destroy());
  client.on('error', () => upstream.destroy());
}

export interface ConnectProxy {
  url: string;
  /** Authorities (host:port) of the tunnels asked for, in order. */
  tunnels: string[];
  /** Headers of each CONNECT request. */
  connectHeaders: http.IncomingHttpHeaders[];
  /** Plain (non-CONNECT) requests: the proxy refuses them, and records their request line and headers. */
  plain: { method: string; url: string; headers: http.IncomingHttpHeaders }[];
  /** Require this Proxy-Authorization (Basic user:password); 407 otherwise. */
  requireAuth(credentials: { username: string; password: string } | undefined): void;
  reset(): void;
  close(): Promise<void>;
}

export async function startConnectProxy(): Promise<ConnectProxy> {
  const tunnels: string[] = [];
  const connectHeaders: http.IncomingHttpHeaders[] = [];
  const plain: ConnectProxy['plain'] = [];
  let required: string | undefined;
  const sockets = new Set<net.Socket>();
  const server = http.createServer((req, res) => {
    plain.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers });
    res.writeHead(405, { connection: 'close' });
    res.end();
  });
  server.on('connection', (s: net.Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  server.on('connect', (req: http.IncomingMessage, client: net.Socket, head: Buffer) => {
    sockets.add(client);
    client.on('close', () => sockets.delete(client));
    const authority = req.url ?? '';
    tunnels.push(authority);
    connectHeaders.push(req.headers);
    if (required !== undefined && req.headers['proxy-authorization'] !== required) {
      client.end('HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm="test"\r\nContent-Length: 0\r\n\r\n');
      return;
    }
    openTunnel(client, authority, head, sockets);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    tunnels,
    connectHeaders,
    plain,
    requireAuth(credentials) {
      required = credentials ? `Basic ${Buffer.from(`${credentials.username}:${credentials.password}`).toString('base64')}` : undefined;
    },
    reset() {
      tunnels.length = 0;
      connectHeaders.length = 0;
      plain.length = 0;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const s of sockets) s.destroy();
      }),
  };
}
