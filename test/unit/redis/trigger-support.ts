/**
 * Shared by the trigger and lease tests on Redis: connections to the test's real redis-server (each one plays
 * an instance), a unique key prefix per test, and waiting for a connection to be ready again after an outage.
 */
import { randomBytes } from 'node:crypto';
import { RedisConnection } from '../../../nodes/lib/redis/client';
import type { RedisStoreSettings } from '../../../nodes/lib/redis/settings';

export function testSettings(url: string, overrides: Partial<RedisStoreSettings> = {}): RedisStoreSettings {
  return {
    type: 'redis',
    url,
    keyPrefix: `t-${randomBytes(4).toString('hex')}:`,
    lockTtlMs: 30_000,
    triggerLeaseMs: 3_000,
    commandTimeoutMs: 1_000,
    ...overrides,
  };
}

/** Opens RedisConnections (instances) and closes them all at the end. */
export class Instances {
  private readonly open = new Set<RedisConnection>();

  connect(settings: RedisStoreSettings): RedisConnection {
    const connection = new RedisConnection(settings);
    this.open.add(connection);
    return connection;
  }

  /** Kills an instance's link to Redis without any goodbye (no release, no QUIT): its leases just expire. */
  drop(connection: RedisConnection): void {
    connection.client.disconnect(false);
    void connection.close();
    this.open.delete(connection);
  }

  async closeAll(): Promise<void> {
    await Promise.all([...this.open].map((c) => c.close()));
    this.open.clear();
  }

  all(): RedisConnection[] {
    return [...this.open];
  }
}

export async function ready(connection: RedisConnection, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (connection.status() === 'ready') {
      try {
        await connection.client.ping();
        return;
      } catch {
        // not quite yet
      }
    }
    if (Date.now() > deadline) throw new Error(`Redis connection not ready within ${timeoutMs} ms (status ${connection.status()})`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Resolves once `check` is true (polled every 20 ms), or rejects after `timeoutMs` naming `what`. */
export async function until(check: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await sleep(20);
  }
}

