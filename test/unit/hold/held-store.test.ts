/**
 * The held-message stores: the encrypted file in the user directory and Redis (a real redis-server), the same
 * contract run against both, then what each adds: the file's sealing and reopening, Redis's binding of a value
 * to its node and entry, and its claims (two instances never send the same message).
 */
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { heldEntryId, openHeldStore, type HeldEntry, type HeldStore } from '../../../nodes/lib/hold/held-store';
import { openRedisHeldStore, type RedisHeldStore } from '../../../nodes/lib/redis/held-store';
import type { RedisConnection } from '../../../nodes/lib/redis/client';
import { startRedis, type RedisServer } from '../../support/redis';
import { needsSystemPackage } from '../../support/system-packages';
import { Instances, ready, testSettings } from '../redis/trigger-support';

const SECRET = 'held-store-secret-for-tests';

function entry(n: number, at = 1_700_000_000_000 + n): HeldEntry {
  return { id: heldEntryId(at), at, message: JSON.stringify({ payload: { n, note: `personal data ${n}` } }) };
}

interface Harness {
  open(secret?: string): Promise<HeldStore>;
  /** What lies at rest, as text. */
  raw(): Promise<string>;
}

function contract(name: string, harness: () => Harness): void {
  describe(`${name}: the HeldStore contract`, () => {
    it('lists a node\'s messages in arrival order, whatever the order of the writes', async () => {
      const store = await harness().open();
      const entries = [entry(3), entry(1), entry(2), entry(1)];
      for (const e of [entries[2], entries[0], entries[3], entries[1]]) await store.add('node-a', e);
      const ids = (await store.list('node-a')).map((e) => e.id);
      assert.deepEqual(ids, [...entries.map((e) => e.id)].sort());
      assert.equal(new Set(ids).size, 4, 'two messages of the same millisecond get two ids');
      assert.deepEqual(await store.list('node-b'), []);
    });

    it('removes one message, purges a node, lists the nodes holding messages', async () => {
      const store = await harness().open();
      const [a, b, c] = [entry(1), entry(2), entry(3)];
      await store.add('node-a', a);
      await store.add('node-a', b);
      await store.add('node-b', c);
      assert.deepEqual((await store.ids()).sort(), ['node-a', 'node-b']);
      await store.remove('node-a', a.id);
      await store.remove('node-a', 'not-there');
      assert.deepEqual(await store.list('node-a'), [b]);
      await store.purge('node-b');
      assert.deepEqual(await store.list('node-b'), []);
      assert.deepEqual(await store.ids(), ['node-a']);
      await store.remove('node-a', b.id);
      assert.deepEqual(await store.ids(), []);
    });

    it('keeps messages across a reopen, sealed: no message text at rest', async () => {
      const h = harness();
      const store = await h.open();
      await store.add('node-a', entry(7));
      await store.flush();
      const again = await h.open();
      assert.deepEqual((await again.list('node-a')).map((e) => JSON.parse(e.message).payload.n), [7]);
      assert.ok(!(await h.raw()).includes('personal data'), 'the message is not readable at rest');
    });

    it('ids like __proto__ stay ordinary keys', async () => {
      const store = await harness().open();
      const e = { ...entry(1), id: '__proto__' };
      await store.add('__proto__', e);
      assert.deepEqual(await store.list('__proto__'), [e]);
      assert.deepEqual(await store.ids(), ['__proto__']);
      assert.equal(({} as Record<string, unknown>).at, undefined, 'Object.prototype untouched');
    });

    it('refuses to open what another secret sealed, with OAUTH2_HOLD_STORE_FAILED', async () => {
      const h = harness();
      const store = await h.open();
      await store.add('node-a', entry(1));
      await store.flush();
      await assert.rejects(
        (async () => (await h.open('another-secret-entirely')).list('node-a'))(),
        (err: { code?: string }) => err.code === 'OAUTH2_HOLD_STORE_FAILED',
      );
    });
  });
}

describe('hold/held-store (file)', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'held-store-'));
  });
  afterEach(async () => {
    await fsp.rm(dir, { recursive: true, force: true });
  });
  const filePath = (): string => path.join(dir, '.http-oauth2-held.json');
  contract('file', () => ({
    open: (secret = SECRET) => openHeldStore({ filePath: filePath(), secret }),
    raw: async () => (await fsp.readFile(filePath())).toString('latin1'),
  }));

  it('the file is owner-only, and a message is on disk when add resolves', async () => {
    const store = await openHeldStore({ filePath: filePath(), secret: SECRET });
    await store.add('node-a', entry(1));
    const stat = await fsp.stat(filePath());
    assert.equal(stat.mode & 0o777, 0o600);
    const other = await openHeldStore({ filePath: filePath(), secret: SECRET });
    assert.equal((await other.list('node-a')).length, 1);
  });
});

describe('redis/held-store', function () {
  needsSystemPackage(this, 'redis-server');
  this.timeout(30_000);
  let redis: RedisServer;
  let instances: Instances;
  let settings: ReturnType<typeof testSettings>;
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

  async function open(secret = SECRET): Promise<RedisHeldStore> {
    const connection = instances.connect(settings);
    await ready(connection);
    return openRedisHeldStore({ connection, secret });
  }

  contract('redis', () => ({
    open,
    raw: async () => {
      const keys = await admin.client.keys(`${settings.keyPrefix}*`);
      const parts: string[] = [];
      for (const key of keys) {
        const all = await admin.client.hgetallBuffer(key);
        for (const [field, value] of Object.entries(all)) parts.push(field, value.toString('latin1'));
      }
      return parts.join('\n');
    },
  }));

  it('a value copied under another node or entry does not open', async () => {
    const store = await open();
    const e = entry(1);
    await store.add('node-a', e);
    const blob = await admin.client.hgetBuffer(admin.key('held', 'node-a'), e.id);
    assert.ok(blob);
    await admin.client.hset(admin.key('held', 'node-b'), e.id, blob);
    await assert.rejects(store.list('node-b'), (err: { code?: string; params?: { reason?: string } }) => err.code === 'OAUTH2_HOLD_STORE_FAILED' && err.params?.reason === 'undecryptable');
    await admin.client.del(admin.key('held', 'node-b'));
    await admin.client.hset(admin.key('held', 'node-a'), 'z-other-entry', blob);
    await assert.rejects(store.list('node-a'), (err: { code?: string }) => err.code === 'OAUTH2_HOLD_STORE_FAILED');
  });

  it('claims: one instance at a time per message, none for a message gone, given back on unclaim, lapsing with their time', async () => {
    const one = await open();
    const two = await open();
    const [a, b] = [entry(1), entry(2)];
    await one.add('node-a', a);
    await one.add('node-a', b);
    assert.equal(await one.claim('node-a', a.id, 60_000), true);
    assert.equal(await two.claim('node-a', a.id, 60_000), false, 'claimed by the other instance');
    assert.equal(await one.claim('node-a', a.id, 60_000), false, 'a claim is not taken twice, even by its holder');
    await two.unclaim('node-a', a.id);
    assert.equal(await two.claim('node-a', a.id, 60_000), false, 'only the holder gives a claim back');
    await one.unclaim('node-a', a.id);
    assert.equal(await two.claim('node-a', a.id, 60_000), true, 'given back: the other instance may send it');
    await two.remove('node-a', a.id);
    assert.equal(await one.claim('node-a', a.id, 60_000), false, 'sent and removed: nobody claims it');
    assert.equal(await one.claim('node-a', b.id, 150), true);
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(await two.claim('node-a', b.id, 60_000), true, 'the claim of an instance that died lapsed');
  });
});
