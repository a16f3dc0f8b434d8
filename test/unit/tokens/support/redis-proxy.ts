/**
 * A loopback TCP proxy in front of a real redis-server, for one "instance" (one RedisConnection) whose link to
 * Redis misbehaves while the other instances talk to Redis directly:
 *
 * - `failCommands(marker, ms)`: for `ms`, every command whose bytes contain `marker` (a piece of a Lua script)
 *   is replaced on its way to Redis by one Redis refuses, so the client gets an error reply in the right place
 *   of the stream and the command itself never runs (a write Redis refused, as under maxmemory or a failover);
 * - `down(ms?)`: cuts every connection through the proxy and refuses new ones (until `up()` or `ms` passed):
 *   this instance cannot reach Redis, the others can.
 *
 * The client side is parsed as RESP arrays of bulk strings, which is all a client sends.
 */
import * as net from 'node:net';

export interface RedisProxy {
  port: number;
  url: string;
  failCommands(marker: string, ms: number): void;
  down(ms?: number): void;
  up(): void;
  /** How many commands containing `marker` were refused so far. */
  refused(marker?: string): number;
  close(): Promise<void>;
}

/** Splits a client's byte stream into whole RESP commands (arrays of bulk strings). */
class CommandSplitter {
  private buffer = Buffer.alloc(0);

  push(chunk: Buffer): Buffer[] {
    this.buffer = Buffer.concat([this.buffer, chunk]);
    const out: Buffer[] = [];
    for (;;) {
      const end = this.commandEnd();
      if (end === undefined) break;
      out.push(this.buffer.subarray(0, end));
      this.buffer = this.buffer.subarray(end);
    }
    return out;
  }

  /** Byte length of the first complete command in the buffer, or undefined. */
  private commandEnd(): number | undefined {
    const b = this.buffer;
    if (b.length === 0) return undefined;
    if (b[0] !== 0x2a /* '*' */) {
      // An inline command (never sent by ioredis): one line.
      const nl = b.indexOf('\r\n');
      return nl < 0 ? undefined : nl + 2;
    }
    let pos = b.indexOf('\r\n');
    if (pos < 0) return undefined;
    const count = Number(b.subarray(1, pos).toString());
    pos += 2;
    for (let i = 0; i < count; i++) {
      if (pos >= b.length) return undefined;
      const nl = b.indexOf('\r\n', pos);
      if (nl < 0) return undefined;
      const len = Number(b.subarray(pos + 1, nl).toString());
      pos = nl + 2 + len + 2;
      if (pos > b.length) return undefined;
    }
    return pos;
  }
}

const REFUSED_COMMAND = Buffer.from('*1\r\n$21\r\nINJECTED-FAULT-NO-CMD\r\n');

export async function startRedisProxy(upstreamPort: number): Promise<RedisProxy> {
  const sockets = new Set<net.Socket>();
  let downUntil = 0;
  let failing: { marker: string; until: number } | undefined;
  const refusals = new Map<string, number>();

  const server = net.createServer((client) => {
    if (Date.now() < downUntil) {
      client.destroy();
      return;
    }
    const upstream = net.connect(upstreamPort, '127.0.0.1');
    sockets.add(client).add(upstream);
    const splitter = new CommandSplitter();
    client.on('data', (chunk: Buffer) => {
      for (const command of splitter.push(chunk)) {
        if (failing && Date.now() < failing.until && command.includes(failing.marker)) {
          refusals.set(failing.marker, (refusals.get(failing.marker) ?? 0) + 1);
          upstream.write(REFUSED_COMMAND);
        } else {
          upstream.write(command);
        }
      }
    });
    upstream.on('data', (chunk: Buffer) => client.write(chunk));
    const end = (): void => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on('close', end).on('error', end);
    upstream.on('close', end).on('error', end);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;

  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    failCommands(marker, ms) {
      failing = { marker, until: Date.now() + ms };
    },
    down(ms) {
      downUntil = ms === undefined ? Number.POSITIVE_INFINITY : Date.now() + ms;
      for (const s of sockets) s.destroy();
      sockets.clear();
    },
    up() {
      downUntil = 0;
    },
    refused(marker) {
      if (marker !== undefined) return refusals.get(marker) ?? 0;
      return [...refusals.values()].reduce((a, b) => a + b, 0);
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
