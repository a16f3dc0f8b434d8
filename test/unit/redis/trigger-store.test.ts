import assert from 'node:assert/strict';
import type { RedisConnection } from '../../../nodes/lib/redis/client';
import { TriggerLease } from '../../../nodes/lib/redis/lease';
import { openRedisTriggerStateStore, triggerKeys } from '../../../nodes/lib/redis/trigger-store';
import { sweepRemovedTriggers, type RuntimeTriggerStore } from '../../../nodes/node-red/trigger-stores';
import type { RedisStoreSettings } from '../../../nodes/lib/redis/settings';
import { openJson, sealJson } from '../../../nodes/lib/sealed/crypto';
import { startRedis, type RedisServer } from '../../support/redis';
import { state, triggerStateStoreContract, type StoreHarness } from '../changes/state-store-contract';
import { SECRET } from '../changes/support';
import { Instances, ready, testSettings } from './trigger-support';
import { needsSystemPackage } from '../../support/system-packages';

describe('redis/trigger-store', function () {
  needsSystemPackage(this, 'redis-server');
  this.timeout(60_000);
  let redis: RedisServer;
  let instances: Instances;
  let settings: RedisStoreSettings;
  let admin: RedisConnection;

  before(async () => {
    redis = await startRedis();
  });
  after(async () => {
    await redis?.close();
  });
  beforeEach(async () => {
    instances = new Instances();
    settings = testSettings(redis.url);
    admin = instances.connect(settings);
    await ready(admin);
  });
  afterEach(async () => {
    await instances.closeAll();
  });

  const keyOf = (nodeId: string): string => admin.key('trigger', nodeId);

  const harness = (): StoreHarness => ({
    open: async (options = {}) => {
      const connection = instances.connect(settings);
      await ready(connection);
      return openRedisTriggerStateStore({ connection, secret: options.secret ?? SECRET, fallbackSecrets: options.fallbackSecrets });
    },
    stored: async (nodeId, secret = SECRET) => {
      const blob = await admin.client.hgetBuffer(keyOf(nodeId), 'state');
      return blob ? openJson(blob, secret, keyOf(nodeId)) : undefined;
    },
    raw: async (nodeId) => (await admin.client.hgetBuffer(keyOf(nodeId), 'state')) ?? Buffer.alloc(0),
    writeForeign: async (nodeId, value) => {
      await admin.client.hset(keyOf(nodeId), 'state', sealJson(value, SECRET), 'rev', 'foreign');
    },
    breakWrites: () => redis.stop(),
    restoreWrites: async () => {
      await redis.start();
      await Promise.all(instances.all().map((c) => ready(c)));
    },
    writeFailure: /Redis cannot be reached|Redis did not answer/,
  });

  describe('the TriggerStateStore contract (the file store suite, unchanged)', () => {
    triggerStateStoreContract(harness);
  });

  it('one hash per trigger under key("trigger", nodeId); ids() lists only trigger states', async () => {
    const store = openRedisTriggerStateStore({ connection: admin, secret: SECRET });
    await store.set('n1', state(1));
    await admin.client.set(admin.key('trigger-lease', 'n1'), 'someone');
    assert.deepEqual((await admin.client.hkeys(keyOf('n1'))).sort(), ['rev', 'state']);
    assert.deepEqual(await store.ids(), ['n1']);
  });

  it("a sealed state is bound to its key: trigger A's memory copied under B's key does not open as B's", async () => {
    const store = openRedisTriggerStateStore({ connection: admin, secret: SECRET });
    await store.set('n1', state(1));
    await store.set('n2', state(2));
    const sealed = await admin.client.hgetBuffer(keyOf('n1'), 'state');
    assert.ok(sealed);
    await admin.client.hset(keyOf('n2'), 'state', sealed);
    const other = instances.connect(settings);
    await ready(other);
    const reader = openRedisTriggerStateStore({ connection: other, secret: SECRET });
    await assert.rejects(reader.get('n2'), (err: unknown) => (err as { params?: { reason?: string } }).params?.reason === 'undecryptable');
    assert.deepEqual(await reader.get('n1'), state(1));
  });

  it('a state sealed before states were bound to their key still opens, and is bound when next written', async () => {
    await admin.client.hset(keyOf('old'), 'state', sealJson(state(1), SECRET), 'rev', 'r1');
    const store = openRedisTriggerStateStore({ connection: admin, secret: SECRET });
    assert.deepEqual(await store.get('old'), state(1));
    await store.set('old', state(2));
    const blob = await admin.client.hgetBuffer(keyOf('old'), 'state');
    assert.ok(blob);
    assert.throws(() => openJson(blob, SECRET), /cannot be decrypted/);
    assert.deepEqual(openJson(blob, SECRET, keyOf('old')), state(2));
  });

  it('another instance with the same secret reads the state', async () => {
    const a = openRedisTriggerStateStore({ connection: admin, secret: SECRET });
    await a.set('n1', state(1));
    const other = instances.connect(settings);
    await ready(other);
    const b = openRedisTriggerStateStore({ connection: other, secret: SECRET });
    assert.deepEqual(await b.get('n1'), state(1));
  });

  it('an overlay (a failed write) is dropped, not written back, when another instance wrote meanwhile', async () => {
    const mine = instances.connect(settings);
    await ready(mine);
    const a = openRedisTriggerStateStore({ connection: mine, secret: SECRET });
    const b = openRedisTriggerStateStore({ connection: admin, secret: SECRET });
    await a.set('n1', state(1));
    assert.deepEqual(await a.get('n1'), state(1));
    await redis.stop();
    await assert.rejects(a.set('n1', state(2)));
    // Redis away: this process still knows what it sent.
    assert.deepEqual(await a.get('n1'), state(2));
    await redis.start();
    await Promise.all(instances.all().map((c) => ready(c)));
    // Another instance moves the shared state on (it took over and polled).
    await b.set('n1', state(5));
    assert.deepEqual(await a.get('n1'), state(5));
    // A later write of another trigger does not carry the stale overlay either.
    await a.set('n9', state(9));
    assert.deepEqual(await b.get('n1'), state(5));
  });

  it('the deploy sweep: Redis down keeps the removed ids for the next sweep, which deletes state, lease, fence and mark', async () => {
    const connection = instances.connect(settings);
    await ready(connection);
    const store = openRedisTriggerStateStore({ connection, secret: SECRET });
    const lease = new TriggerLease({ connection, store, nodeId: 'gone', ttlMs: 30_000 });
    assert.equal(await lease.acquire(), true);
    await lease.markConfig('C1');
    await lease.commit('gone', state(1));
    const keys = triggerKeys(admin, 'gone');
    const present = async (): Promise<number> => admin.client.exists(keys.state, keys.lease, keys.fence, keys.config);
    assert.equal(await present(), 4);
    // As the runtime store does for the node's deploy sweep (nodes/node-red/trigger-stores.ts).
    const runtimeStore = { purge: (id: string) => store.purge(id), ids: () => store.ids(), delete: (id: string) => store.delete(id) } as unknown as RuntimeTriggerStore;
    const removed = new Set(['gone']);
    const configured = new Set(['kept']);

    await redis.stop();
    try {
      await assert.rejects(sweepRemovedTriggers(runtimeStore, configured, removed));
      assert.deepEqual([...removed], ['gone'], 'the removed id is kept for the next sweep');
    } finally {
      await redis.start();
      await Promise.all(instances.all().map((c) => ready(c)));
    }
    await sweepRemovedTriggers(runtimeStore, configured, removed);
    assert.deepEqual([...removed], []);
    assert.equal(await present(), 0, 'state, lease, fence and mark deleted');
  });
});
