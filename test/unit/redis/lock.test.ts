import assert from 'node:assert/strict';
import { isOAuth2Error } from '../../../nodes/lib/errors';
import type { RedisConnection } from '../../../nodes/lib/redis/client';
import { FencedLock, type HeldLock, type LockKeys } from '../../../nodes/lib/redis/lock';
import { RedisTokenStore } from '../../../nodes/lib/redis/token-store';
import { startRedis, startReplyDroppingProxy, type RedisServer } from '../../support/redis';
import { SECRET, entry } from '../tokens/support/token-store-contract';
import { connectInstance, freshPrefix } from '../tokens/support/redis-instances';
import { needsSystemPackage } from '../../support/system-packages';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));


describe('redis/lock: fenced refresh lock across instances', function () {
  needsSystemPackage(this, 'redis-server');
  this.timeout(30_000);
  let redis: RedisServer;
  let prefix: string;
  const opened: RedisConnection[] = [];

  before(async () => {
    redis = await startRedis();
  });
  after(async () => {
    await redis?.close();
  });
  beforeEach(() => {
    prefix = freshPrefix();
  });
  afterEach(async () => {
    await Promise.all(opened.splice(0).map((c) => c.close()));
  });

  async function instance(lockTtlMs = 30_000): Promise<RedisConnection> {
    const connection = await connectInstance(redis.url, prefix, { lockTtlMs, commandTimeoutMs: 1000 });
    opened.push(connection);
    return connection;
  }

  function keysOf(c: RedisConnection): LockKeys {
    return { lock: c.key('lock', 'x'), fence: c.key('fence', 'x') };
  }

  it('contention: 6 instances x 5 turns, never two holders at once, every turn served, fences strictly increase', async () => {
    const instances = await Promise.all(Array.from({ length: 6 }, () => instance()));
    let inside = 0;
    let most = 0;
    const fences: number[] = [];
    await Promise.all(
      instances.map(async (c) => {
        const lock = new FencedLock(c, { ttlMs: 30_000, waitLimitMs: 20_000 });
        for (let turn = 0; turn < 5; turn++) {
          await lock.withLock(keysOf(c), async (held) => {
            inside++;
            most = Math.max(most, inside);
            fences.push(held.fence);
            await sleep(5);
            inside--;
          });
        }
      }),
    );
    assert.equal(most, 1, 'two holders at once');
    assert.equal(fences.length, 30);
    for (let i = 1; i < fences.length; i++) assert.ok(fences[i] > fences[i - 1], `fences out of order: ${fences.join(',')}`);
  });

  it('expiry and takeover: a holder that stops extending loses the lock after the TTL; the next holder gets a higher fence', async () => {
    const a = await instance(1000);
    const b = await instance(1000);
    const lockA = new FencedLock(a, { ttlMs: 1000, waitLimitMs: 5000 });
    const lockB = new FencedLock(b, { ttlMs: 1000, waitLimitMs: 5000 });
    const heldA = await lockA.tryAcquire(keysOf(a)); // taken, never extended: a stalled process
    assert.ok(heldA);
    assert.equal(await lockB.tryAcquire(keysOf(b)), undefined);
    const started = Date.now();
    const heldB = await lockB.acquire(keysOf(b));
    const waited = Date.now() - started;
    assert.ok(waited >= 800 && waited < 2500, `took over after ${waited} ms (TTL 1000)`);
    assert.ok(heldB.fence > heldA.fence);
    // The stale holder can neither extend nor release the new holder's lock.
    assert.equal(await lockA.extend(heldA), false);
    assert.equal(heldA.lost, true);
    assert.equal(await lockA.release(heldA), false);
    assert.equal(await b.client.get(keysOf(b).lock), heldB.token);
    assert.equal(await lockB.release(heldB), true);
    assert.equal(await b.client.get(keysOf(b).lock), null);
  });

  it('release by a non-holder is refused; the holder extends while its work runs', async () => {
    const a = await instance(1000);
    const b = await instance(1000);
    const lockA = new FencedLock(a, { ttlMs: 1000, waitLimitMs: 5000 });
    const lockB = new FencedLock(b, { ttlMs: 1000, waitLimitMs: 300 });
    await lockA.withLock(keysOf(a), async (held) => {
      const forged: HeldLock = { keys: held.keys, token: 'f'.repeat(32), fence: held.fence, lost: false, remainingMs: () => 0, retain: () => undefined };
      assert.equal(await lockB.release(forged), false);
      assert.equal(await lockB.extend(forged), false);
      // 2.5 TTLs of work: the extension keeps it.
      await sleep(2500);
      assert.equal(await a.client.get(held.keys.lock), held.token);
      assert.equal(held.lost, false);
      // ...and so does its local deadline (last extension + TTL - margin), which stays within one TTL.
      assert.ok(held.remainingMs() > 0 && held.remainingMs() <= 1000, String(held.remainingMs()));
      // Meanwhile another instance gives up after its wait limit, with a retryable store error.
      const started = Date.now();
      await assert.rejects(lockB.acquire(keysOf(b)), (err: unknown) => {
        assert.ok(isOAuth2Error(err, 'OAUTH2_TOKEN_STORE_FAILED'));
        assert.equal(err.retryable, true);
        assert.equal(err.params.reason, 'lockBusy');
        assert.match(err.message, /Another Node-RED instance/);
        return true;
      });
      assert.ok(Date.now() - started < 1000);
    });
    assert.equal(await a.client.get(keysOf(a).lock), null, 'released after the work');
  });

  it('an acquisition whose answer was lost leaves no ghost lock behind (others do not wait for the TTL)', async () => {
    const proxy = await startReplyDroppingProxy(redis.port);
    try {
      const viaProxy = await connectInstance(`redis://127.0.0.1:${proxy.port}`, prefix, { commandTimeoutMs: 300 });
      opened.push(viaProxy);
      const direct = await instance();
      const lock = new FencedLock(viaProxy, { ttlMs: 30_000, waitLimitMs: 1000 });
      proxy.dropReplies(true);
      await assert.rejects(lock.tryAcquire(keysOf(viaProxy)), (err: unknown) => isOAuth2Error(err, 'OAUTH2_TOKEN_STORE_FAILED'));
      // Redis ran the acquisition; the release queued behind it ran too.
      await sleep(200);
      assert.equal(await direct.client.get(keysOf(direct).lock), null, 'a lock nobody holds is left in Redis');
      assert.ok(Number(await direct.client.get(keysOf(direct).fence)) >= 1, 'the acquisition did reach Redis');
      const other = new FencedLock(direct, { ttlMs: 30_000, waitLimitMs: 500 });
      const held = await other.acquire(keysOf(direct));
      assert.equal(await other.release(held), true);
    } finally {
      await proxy.close();
    }
  });

  describe('fenced token writes (RedisTokenStore leases)', () => {
    it('a stale holder whose lock expired and was taken over cannot overwrite the newer tokens', async () => {
      const a = new RedisTokenStore({ connection: await instance(1000), secret: SECRET });
      const b = new RedisTokenStore({ connection: await instance(1000), secret: SECRET });
      await a.set('c', entry(1));
      let release!: () => void;
      const stalled = new Promise<void>((r) => (release = r));
      const aDone = a.withRenewalLock('c', async (lease) => {
        await stalled;
        return lease.write(entry(2));
      });
      await sleep(100);
      // A stalls for longer than its lock lives (its extension timer cannot run: played by expiring the key).
      await a.connection.client.pexpire(a.lockKeys('c').lock, 1);
      await b.withRenewalLock('c', (lease) => lease.write(entry(3)));
      release();
      await assert.rejects(aDone, (err: unknown) => isOAuth2Error(err, 'OAUTH2_TOKEN_STORE_FAILED') && err.params.reason === 'superseded');
      assert.deepEqual(await a.get('c'), entry(3));
    });

    it('a later lease that has not written yet also makes the stale write fail', async () => {
      const a = new RedisTokenStore({ connection: await instance(1000), secret: SECRET });
      const b = new RedisTokenStore({ connection: await instance(1000), secret: SECRET });
      await a.set('c', entry(1));
      let release!: () => void;
      const stalled = new Promise<void>((r) => (release = r));
      const aDone = a.withRenewalLock('c', async (lease) => {
        await stalled;
        return lease.write(entry(2));
      });
      await sleep(100);
      await a.connection.client.pexpire(a.lockKeys('c').lock, 1);
      await b.withRenewalLock('c', async () => {
        release();
        await assert.rejects(aDone, (err: unknown) => isOAuth2Error(err) && err.params.reason === 'superseded');
      });
      assert.deepEqual(await a.get('c'), entry(1));
    });

    it('a login or a logout during a lease wins over the lease holder', async () => {
      const a = new RedisTokenStore({ connection: await instance(), secret: SECRET });
      const b = new RedisTokenStore({ connection: await instance(), secret: SECRET });
      await a.set('c', entry(1));
      await a.withRenewalLock('c', async (lease) => {
        await b.set('c', entry(5)); // a login on another instance
        await assert.rejects(lease.write(entry(2)), (err: unknown) => isOAuth2Error(err) && err.params.reason === 'superseded');
      });
      assert.deepEqual(await a.get('c'), entry(5));
      await a.withRenewalLock('c', async (lease) => {
        await b.delete('c'); // a logout on another instance
        await assert.rejects(lease.write(entry(6)), (err: unknown) => isOAuth2Error(err) && err.params.reason === 'superseded');
      });
      assert.equal(await a.get('c'), undefined, 'a logout is not undone by a renewal that was running');
    });

    it('a holder whose lock expired but was not taken over still writes (nobody has newer tokens)', async () => {
      const a = new RedisTokenStore({ connection: await instance(1000), secret: SECRET });
      await a.set('c', entry(1));
      await a.withRenewalLock('c', async (lease) => {
        await a.connection.client.del(a.lockKeys('c').lock);
        await lease.write(entry(2));
      });
      assert.deepEqual(await a.get('c'), entry(2));
    });

    it('Redis stopped: taking the lock fails fast with OAUTH2_TOKEN_STORE_FAILED, and works again after a restart', async () => {
      const a = new RedisTokenStore({ connection: await instance(), secret: SECRET });
      await redis.stop();
      let ran = false;
      try {
        await assert.rejects(
          a.withRenewalLock('c', async () => {
            ran = true;
          }),
          (err: unknown) => isOAuth2Error(err, 'OAUTH2_TOKEN_STORE_FAILED') && /^Redis/.test(err.message),
        );
        assert.equal(ran, false);
      } finally {
        await redis.start();
      }
      const until = Date.now() + 10_000;
      for (;;) {
        try {
          await a.withRenewalLock('c', async () => {
            ran = true;
          });
          break;
        } catch (err) {
          if (Date.now() > until) throw err;
          await sleep(100);
        }
      }
      assert.equal(ran, true);
    });
  });
});
