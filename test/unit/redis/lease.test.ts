import assert from 'node:assert/strict';
import { once } from 'node:events';
import { isOAuth2Error } from '../../../nodes/lib/errors';
import type { RedisConnection } from '../../../nodes/lib/redis/client';
import { RedisLease, TriggerLease } from '../../../nodes/lib/redis/lease';
import { openRedisTriggerStateStore } from '../../../nodes/lib/redis/trigger-store';
import type { RedisStoreSettings } from '../../../nodes/lib/redis/settings';
import { startRedis, type RedisServer } from '../../support/redis';
import { state } from '../changes/state-store-contract';
import { SECRET } from '../changes/support';
import { startReplyDroppingProxy } from '../../support/redis';
import { Instances, ready, sleep, testSettings } from './trigger-support';
import { needsSystemPackage } from '../../support/system-packages';

const TTL = 1_500;

describe('redis/lease', function () {
  needsSystemPackage(this, 'redis-server');
  this.timeout(60_000);
  let redis: RedisServer;
  let instances: Instances;
  let settings: RedisStoreSettings;
  const leases: RedisLease[] = [];

  before(async () => {
    redis = await startRedis();
  });
  after(async () => {
    await redis?.close();
  });
  beforeEach(() => {
    instances = new Instances();
    settings = testSettings(redis.url, { triggerLeaseMs: TTL });
  });
  afterEach(async () => {
    await Promise.all(leases.splice(0).map((l) => l.release()));
    await instances.closeAll();
  });

  async function instance(): Promise<RedisConnection> {
    const connection = instances.connect(settings);
    await ready(connection);
    return connection;
  }

  function lease(connection: RedisConnection, name = 'node-1'): RedisLease {
    const l = new RedisLease({ connection, name: ['trigger-lease', name], ttlMs: TTL });
    leases.push(l);
    return l;
  }

  it('is exclusive: of three instances asking at once, exactly one gets it; fencing numbers grow per holding', async () => {
    const ls = [lease(await instance()), lease(await instance()), lease(await instance())];
    const got = await Promise.all(ls.map((l) => l.acquire()));
    assert.equal(got.filter(Boolean).length, 1, `acquired: ${got.join(',')}`);
    const holder = ls[got.indexOf(true)];
    assert.equal(holder.held(), true);
    assert.equal(holder.fence()?.fence, 1);
    assert.ok(ls.every((l) => l === holder || (!l.held() && l.fence() === undefined)));
    // Asking again while holding keeps the same holding.
    assert.equal(await holder.acquire(), true);
    assert.equal(holder.fence()?.fence, 1);
    await holder.release();
    assert.equal(holder.held(), false);
    const next = ls.find((l) => l !== holder)!;
    assert.equal(await next.acquire(), true);
    assert.equal(next.fence()?.fence, 2);
    // A different name is a different lease.
    assert.equal(await lease(await instance(), 'node-2').acquire(), true);
  });

  it('renews: the holder keeps it over several ttl, others are refused all along and told when to retry', async () => {
    const a = lease(await instance());
    const b = lease(await instance());
    assert.equal(await a.acquire(), true);
    const until3Ttl = Date.now() + 3 * TTL;
    while (Date.now() < until3Ttl) {
      assert.equal(await b.acquire(), false);
      assert.ok(b.retryDelayMs() > 0 && b.retryDelayMs() <= TTL / 2, String(b.retryDelayMs()));
      assert.equal(a.held(), true);
      await sleep(TTL / 4);
    }
    assert.equal(a.fence()?.fence, 1);
  });

  it('expires when the holder dies (connection dropped, no release): another instance takes over within the lease time', async () => {
    const a = lease(await instance());
    const aConnection = instances.all()[0];
    const b = lease(await instance());
    assert.equal(await a.acquire(), true);
    await sleep(TTL / 2);
    instances.drop(aConnection);
    const killedAt = Date.now();
    // B tries as a standby poller does: then again after retryDelayMs().
    while (!(await b.acquire())) await sleep(b.retryDelayMs());
    const takeoverMs = Date.now() - killedAt;
    console.log(`      lease takeover after the holder died: ${takeoverMs} ms (ttl ${TTL} ms)`);
    assert.ok(takeoverMs <= TTL + 500, `took ${takeoverMs} ms`);
    assert.equal(b.fence()?.fence, 2);
  });

  it('release is compare-and-delete: a former holder cannot delete the new holder\'s lease', async () => {
    const aConn = await instance();
    const a = lease(aConn);
    const b = lease(await instance());
    assert.equal(await a.acquire(), true);
    const staleToken = a.fence()!.token;
    await a.release();
    assert.equal(await b.acquire(), true);
    // The old token deleting again (a late release) changes nothing.
    await aConn.client.eval("if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0", 1, a.key, staleToken);
    assert.equal(await aConn.client.get(b.key), b.fence()!.token);
  });

  it('a stale holder\'s fenced commit is refused after a takeover; the new holder\'s state stays', async () => {
    const aConn = await instance();
    const bConn = await instance();
    const a = new TriggerLease({ connection: aConn, store: openRedisTriggerStateStore({ connection: aConn, secret: SECRET }), nodeId: 'n1', ttlMs: TTL });
    leases.push(a);
    assert.equal(await a.acquire(), true);
    const staleFence = a.fence()!;
    // A is partitioned away (its link dies, renewals stop); its lease expires and B takes over and commits.
    instances.drop(aConn);
    const bStore = openRedisTriggerStateStore({ connection: bConn, secret: SECRET });
    const b = new TriggerLease({ connection: bConn, store: bStore, nodeId: 'n1', ttlMs: TTL });
    leases.push(b);
    while (!(await b.acquire())) await sleep(b.retryDelayMs());
    assert.deepEqual(await bStore.get('n1'), undefined);
    await b.commit('n1', state(2));
    // A's write arrives late (the partition heals: a new link, the old holding's fence).
    const healed = await instance();
    const aStore = openRedisTriggerStateStore({ connection: healed, secret: SECRET });
    await assert.rejects(aStore.setFenced('n1', state(1), staleFence), (err: unknown) => {
      assert.ok(isOAuth2Error(err, 'OAUTH2_TRIGGER_STATE_FAILED'));
      assert.equal(err.params.reason, 'leaseLost');
      return true;
    });
    assert.deepEqual(await bStore.get('n1'), state(2));
    // And B's own fenced commits go on.
    await b.commit('n1', state(3));
    assert.deepEqual(await aStore.get('n1'), state(3));
  });

  it('Redis away: held() turns false before the key can have expired; the holding is reclaimed when Redis is back in time', async () => {
    const conn = await instance();
    const a = lease(conn);
    assert.equal(await a.acquire(), true);
    await sleep(TTL / 2);
    const before = Date.now();
    const pttl = await conn.client.pttl(a.key);
    const expiresNoEarlierThan = before + pttl;
    const lost = once(a, 'lost');
    await redis.stop();
    await lost;
    const lostAt = Date.now();
    assert.equal(a.held(), false);
    assert.ok(lostAt < expiresNoEarlierThan, `held() false at +${lostAt - before} ms, key lives until +${pttl} ms`);
    await assert.rejects(a.acquire(), (err: unknown) => isOAuth2Error(err, 'OAUTH2_TRIGGER_STATE_FAILED') && String(err.params.reason).startsWith('redis-'));
    await redis.start();
    await ready(conn);
    // The key expired while Redis was down, or it is still ours: either way this instance gets it (no one else asked).
    assert.equal(await a.acquire(), true);
    assert.equal(a.held(), true);
  });

  it('an acquisition whose answer was lost leaves no lease behind (the trigger is not silent until it expires)', async () => {
    const proxy = await startReplyDroppingProxy(redis.port);
    try {
      const long = 30_000;
      const viaProxy = instances.connect({ ...settings, url: `redis://127.0.0.1:${proxy.port}`, commandTimeoutMs: 300 });
      await ready(viaProxy);
      const direct = await instance();
      const lost = new RedisLease({ connection: viaProxy, name: ['trigger-lease', 'ghost'], ttlMs: long });
      proxy.dropReplies(true);
      await assert.rejects(lost.acquire(), (err: unknown) => isOAuth2Error(err, 'OAUTH2_TRIGGER_STATE_FAILED'));
      assert.equal(lost.held(), false);
      // Redis ran the acquisition (the fence moved); the compare-and-delete queued behind it ran too.
      await sleep(300);
      assert.ok(Number(await direct.client.get(lost.fenceKey)) >= 1, 'the acquisition did reach Redis');
      assert.equal(await direct.client.get(lost.key), null, 'a lease nobody holds is left in Redis');
      const other = new RedisLease({ connection: direct, name: ['trigger-lease', 'ghost'], ttlMs: long });
      leases.push(other);
      assert.equal(await other.acquire(), true, 'another instance takes the trigger at once');
    } finally {
      await proxy.close();
    }
  });

  it('held() runs on a monotonic clock: the wall clock set back does not stretch a holding whose renewals fail', async () => {
    // The wall clock, steppable: Date.now() plus an offset (what NTP or an operator changes).
    const realNow = Date.now.bind(Date);
    let offset = 0;
    Date.now = () => realNow() + offset;
    try {
      const conn = await instance();
      const a = lease(conn);
      assert.equal(await a.acquire(), true);
      // Renewals fail from now on (the link is gone); the holding must end locally within the ttl.
      instances.drop(conn);
      offset = -60_000; // the clock is set back a minute
      await sleep(TTL + 200);
      assert.equal(a.held(), false, `still held ${TTL + 200} ms after the last renewal (ttl ${TTL} ms)`);
    } finally {
      Date.now = realNow;
    }
  });
});
