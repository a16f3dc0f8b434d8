/**
 * Compression bombs on a real loopback server: a small compressed body (Content-Encoding gzip, deflate or br,
 * built with node:zlib) that decodes to many megabytes of zeros. The server writes it one piece at a time,
 * each piece compressed and flushed on its own (so it decodes as soon as it arrives), and counts the pieces it
 * wrote before the client closed the connection: a client that stops reading at its cap closes long before the
 * last piece, one that decodes everything receives them all.
 */
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import zlib from 'node:zlib';

export type BombEncoding = 'gzip' | 'deflate' | 'br' | 'identity';

export const BOMB_ENCODINGS: readonly BombEncoding[] = ['gzip', 'deflate', 'br'];

function compressor(encoding: Exclude<BombEncoding, 'identity'>): zlib.Gzip | zlib.Deflate | zlib.BrotliCompress {
  if (encoding === 'gzip') return zlib.createGzip({ level: 9 });
  if (encoding === 'deflate') return zlib.createDeflate({ level: 9 });
  return zlib.createBrotliCompress({ params: { [zlib.constants.BROTLI_PARAM_QUALITY]: 5 } });
}

/** `pieces` compressed pieces of `pieceBytes` zero bytes each; their concatenation is one valid stream. */
export async function bombPieces(encoding: BombEncoding, pieces: number, pieceBytes: number): Promise<Buffer[]> {
  const zeros = Buffer.alloc(pieceBytes);
  if (encoding === 'identity') return Array.from({ length: pieces }, () => zeros);
  const z = compressor(encoding);
  let current: Buffer[] = [];
  z.on('data', (chunk: Buffer) => current.push(chunk));
  const take = async (): Promise<Buffer> => {
    // 'data' events of a flush may come a tick after its callback.
    await new Promise((resolve) => setImmediate(resolve));
    const piece = Buffer.concat(current);
    current = [];
    return piece;
  };
  const out: Buffer[] = [];
  for (let i = 0; i < pieces; i += 1) {
    z.write(zeros);
    await new Promise<void>((resolve) => z.flush(() => resolve()));
    out.push(await take());
  }
  await new Promise<void>((resolve) => z.end(() => resolve()));
  await new Promise((resolve) => z.once('end', resolve).resume());
  out[out.length - 1] = Buffer.concat([out[out.length - 1], await take()]);
  return out;
}

export interface BombRequest {
  path: string;
  /** Pieces written before the client closed, or all of them. */
  written: number;
  /** The client closed the connection before the last piece was written. */
  closedEarly: boolean;
}

export interface BombServer {
  url: string;
  origin: string;
  pieces: number;
  /** Decoded size of the whole body, in bytes. */
  decodedBytes: number;
  requests: BombRequest[];
  /** Resolves when every request so far has finished or been closed by the client. */
  settled(): Promise<void>;
  close(): Promise<void>;
}

export interface BombOptions {
  encoding: BombEncoding;
  pieces?: number;
  pieceBytes?: number;
  contentType?: string;
  /** Pause between pieces, so the stream lasts longer than a client that stops early takes to stop. */
  paceMs?: number;
}

/** A loopback server that answers every request with the bomb. */
export async function startBombServer(options: BombOptions): Promise<BombServer> {
  const pieces = options.pieces ?? 64;
  const pieceBytes = options.pieceBytes ?? 1024 * 1024;
  const paceMs = options.paceMs ?? 5;
  const body = await bombPieces(options.encoding, pieces, pieceBytes);
  const requests: BombRequest[] = [];
  const running = new Set<Promise<void>>();
  const sockets = new Set<Socket>();

  async function answer(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const seen: BombRequest = { path: req.url ?? '', written: 0, closedEarly: false };
    requests.push(seen);
    let closed = false;
    res.on('close', () => {
      closed = true;
      seen.closedEarly = !res.writableFinished;
    });
    res.writeHead(200, {
      'content-type': options.contentType ?? 'application/json',
      ...(options.encoding === 'identity' ? {} : { 'content-encoding': options.encoding }),
    });
    for (const piece of body) {
      if (closed) return;
      seen.written += 1;
      if (!res.write(piece)) {
        await new Promise<void>((resolve) => {
          const go = (): void => {
            res.off('drain', go);
            res.off('close', go);
            resolve();
          };
          res.on('drain', go);
          res.on('close', go);
        });
      }
      await sleep(paceMs);
    }
    if (!closed) res.end();
  }

  const server = http.createServer((req, res) => {
    req.resume();
    const done = answer(req, res).catch(() => undefined);
    running.add(done);
    void done.finally(() => running.delete(done));
  });
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const origin = `http://127.0.0.1:${port}`;
  return {
    url: `${origin}/bomb`,
    origin,
    pieces,
    decodedBytes: pieces * pieceBytes,
    requests,
    settled: async () => {
      await Promise.all([...running]);
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const s of sockets) s.destroy();
      }),
  };
}
