/**
 * Helpers for tests that play several Node-RED instances on one real Redis: each "instance" is its own
 * RedisConnection (own sockets, own subscriber), as separate processes would have.
 */
import { randomBytes } from 'node:crypto';
import { RedisConnection } from '../../../../nodes/lib/redis/client';
import { REDIS_DEFAULTS, type RedisStoreSettings } from '../../../../nodes/lib/redis/settings';

export function freshPrefix(): string {
  return `test-${randomBytes(4).toString('hex')}:`;
}

export function redisSettings(url: string, keyPrefix: string, overrides: Partial<RedisStoreSettings> = {}): RedisStoreSettings {
  return { type: 'redis', url, keyPrefix, ...REDIS_DEFAULTS, ...overrides };
}

/** A connection that is ready (rejects after `ms`). */
export async function connectInstance(url: string, keyPrefix: string, overrides: Partial<RedisStoreSettings> = {}, ms = 5000): Promise<RedisConnection> {
  const connection = new RedisConnection(redisSettings(url, keyPrefix, overrides));
  await waitForStatus(connection, 'ready', ms);
  return connection;
}

export async function waitForStatus(connection: RedisConnection, status: ReturnType<RedisConnection['status']>, ms = 5000): Promise<void> {
  if (connection.status() === status) return;
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      connection.off('status', onStatus);
      reject(new Error(`Redis connection not ${status} within ${ms} ms (is ${connection.status()})`));
    }, ms);
    function onStatus(s: string): void {
      if (s !== status) return;
      clearTimeout(timer);
      connection.off('status', onStatus);
      resolve();
    }
    connection.on('status', onStatus);
  });
}

/** Every key under `prefix` with its value (strings and hashes), as one buffer: for "nothing in clear" checks. */
export async function rawUnder(connection: RedisConnection, prefix: string): Promise<Buffer> {
  const client = connection.client;
  const keys: string[] = [];
  let cursor = '0';
  do {
    const [next, found] = await client.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 500);
    cursor = next;
    keys.push(...found);
  } while (cursor !== '0');
  keys.sort();
  const parts: Buffer[] = [];
  for (const key of keys) {
    parts.push(Buffer.from(key));
    const type = await client.type(key);
    if (type === 'string') {
      parts.push((await client.getBuffer(key)) ?? Buffer.alloc(0));
    } else if (type === 'hash') {
      const all = await client.hgetallBuffer(key);
      for (const field of Object.keys(all).sort()) parts.push(Buffer.from(field), all[field]);
    } else {
      throw new Error(`unexpected ${type} key under the test prefix`);
    }
  }
  return Buffer.concat(parts);
}
