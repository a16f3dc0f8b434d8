import assert from 'node:assert/strict';
import type { RedisConnection } from '../../../nodes/lib/redis/client';
import { openRedisTokenStore, RedisTokenStore } from '../../../nodes/lib/redis/token-store';
import { openJson, sealJson } from '../../../nodes/lib/sealed/crypto';
import type { StoredTokens } from '../../../nodes/lib/tokens/token-store';
import { startRedis, type RedisServer } from '../../support/redis';
import { SECRET, entry, rejectsWithStoreFailure, tokenStoreContract } from '../tokens/support/token-store-contract';
import { connectInstance, freshPrefix, rawUnder } from '../tokens/support/redis-instances';
import { startRedisProxy } from '../tokens/support/redis-proxy';
import { needsSystemPackage } from '../../support/system-packages';

describe('redis/token-store', function () {
  needsSystemPackage(this, 'redis-server');
  this.timeout(30_000);
  let redis: RedisServer;
  let prefix: string;
  let admin: RedisConnection;
  const opened: RedisConnection[] = [];

  before(async () => {
    redis = await startRedis();
  });
  after(async () => {
    await redis?.close();
  });

  async function instance(): Promise<RedisConnection> {
    const connection = await connectInstance(redis.url, prefix);
    opened.push(connection);
    return connection;
  }

  async function setup(): Promise<void> {
    prefix = freshPrefix();
    admin = await instance();
  }
  async function teardown(): Promise<void> {
    await Promise.all(opened.splice(0).map((c) => c.close()));
  }

  // The file store's own cases, against Redis.
  tokenStoreContract(
    async () => {
      await setup();
      return {
        // A reopen is a new connection: another process, or this one after a restart.
        open: async (secret) => openRedisTokenStore({ connection: await instance(), secret }),
        raw: () => rawUnder(admin, prefix),
        durable: async (id, secret) => {
          const v = await admin.client.hget(admin.key('tokens', id), 'v');
          return v === null ? undefined : (openJson(Buffer.from(v, 'base64'), secret, admin.key('tokens', id)) as StoredTokens);
        },
        plant: async (kind, id, secret) => {
          const value = kind === 'garbage' ? Buffer.from('this is not a token store').toString('base64') : sealJson({ something: 'else' }, secret).toString('base64');
          await admin.client.hset(admin.key('tokens', id), 'v', value, 'f', '1');
        },
        messages: { otherSecret: /same secret|left untouched/, garbage: /could not be decrypted/, foreign: /does not hold tokens/ },
      };
    },
    teardown,
  );

  describe('Redis specifics', () => {
    beforeEach(setup);
    afterEach(teardown);

    it('a delete removes the in-flight refresh mark with the tokens and keeps the fence counter', async () => {
      const connection = await instance();
      const store = new RedisTokenStore({ connection, secret: SECRET });
      await store.set('marked', entry(1));
      // A refresh that was at the provider when its holder stopped left its mark.
      await connection.client.set(store.markKey('marked'), '7', 'PX', 60_000);
      const fence = Number(await connection.client.get(store.lockKeys('marked').fence));
      await store.delete('marked');
      assert.equal(await connection.client.exists(store.markKey('marked')), 0, 'the mark outlived the tokens');
      assert.ok(Number(await connection.client.get(store.lockKeys('marked').fence)) > fence, 'the delete drew a fencing number');
      assert.equal(await store.get('marked'), undefined);
    });

    it('announces every write and delete with the connection id only', async () => {
      const writer = new RedisTokenStore({ connection: await instance(), secret: SECRET });
      const reader = new RedisTokenStore({ connection: await instance(), secret: SECRET });
      const heard: (string | undefined)[] = [];
      const raw: string[] = [];
      reader.onChange((id) => heard.push(id));
      // What travels on the channel, as any subscriber of this Redis sees it.
      await admin.subscribe(admin.key('tokens-changed'), (message) => raw.push(message));
      await waitUntil(async () => {
        await writer.set('probe', entry(0));
        return heard.includes('probe') && raw.includes('probe');
      });
      await new Promise((r) => setTimeout(r, 200)); // late announcements of the probing writes
      heard.length = 0;
      raw.length = 0;
      await writer.set('a', entry(1));
      await writer.delete('a');
      await writer.delete('a'); // nothing to delete: nothing announced
      await waitUntil(async () => heard.length >= 2 && raw.length >= 2);
      await new Promise((r) => setTimeout(r, 100));
      assert.deepEqual(heard, ['a', 'a']);
      assert.deepEqual(raw, ['a', 'a']);
    });

    it('subscribing fails several times while Redis is away: once back, each announcement reaches each listener once', async () => {
      const proxy = await startRedisProxy(redis.port);
      try {
        const connection = await connectInstance(proxy.url, prefix, { commandTimeoutMs: 300 });
        opened.push(connection);
        const writer = new RedisTokenStore({ connection: await instance(), secret: SECRET });
        proxy.down();
        const reader = new RedisTokenStore({ connection, secret: SECRET });
        const heard: string[][] = [[], [], []];
        // Three listeners registered while Redis is unreachable: each one retries the failed subscribe.
        for (const log of heard) {
          reader.onChange((id) => {
            if (id !== undefined) log.push(id);
          });
          await new Promise((r) => setTimeout(r, 1500)); // the subscribe attempt fails meanwhile
        }
        proxy.up();
        await waitUntil(async () => {
          await writer.set('probe', entry(0));
          return heard.every((log) => log.includes('probe'));
        }, 15_000);
        await new Promise((r) => setTimeout(r, 200)); // late announcements of the probing writes
        for (const log of heard) log.length = 0;
        await writer.set('a', entry(1));
        await waitUntil(async () => heard.every((log) => log.length >= 1));
        await new Promise((r) => setTimeout(r, 200));
        assert.deepEqual(heard, [['a'], ['a'], ['a']], 'an announcement reached a listener more than once');
      } finally {
        await proxy.close();
      }
    });

    it('values are sealed with the same format and key derivation as the file store', async () => {
      const store = new RedisTokenStore({ connection: await instance(), secret: SECRET });
      await store.set('a', entry(3));
      const v = await admin.client.hget(admin.key('tokens', 'a'), 'v');
      assert.ok(v);
      const blob = Buffer.from(v, 'base64');
      assert.equal(blob.subarray(0, 8).toString('ascii'), 'NRO2SEAL');
      assert.deepEqual(openJson(blob, SECRET, admin.key('tokens', 'a')), entry(3));
    });

    it("a sealed value is bound to its key: A's tokens copied under B's key do not open as B's", async () => {
      const store = new RedisTokenStore({ connection: await instance(), secret: SECRET });
      await store.set('a', entry(1));
      await store.set('b', entry(2));
      // Someone who can write to Redis, without the secret, copies A's sealed tokens over B's.
      const sealedA = await admin.client.hget(admin.key('tokens', 'a'), 'v');
      assert.ok(sealedA);
      await admin.client.hset(admin.key('tokens', 'b'), 'v', sealedA);
      const reader = new RedisTokenStore({ connection: await instance(), secret: SECRET });
      await rejectsWithStoreFailure(reader.get('b'), /could not be decrypted/);
      assert.deepEqual(await reader.get('a'), entry(1));
    });

    it('a value sealed before values were bound to their key still opens, and is bound when next written', async () => {
      await admin.client.hset(admin.key('tokens', 'old'), 'v', sealJson(entry(1), SECRET).toString('base64'), 'f', '1');
      const store = new RedisTokenStore({ connection: await instance(), secret: SECRET });
      assert.deepEqual(await store.get('old'), entry(1));
      await store.set('old', entry(2));
      const v = await admin.client.hget(admin.key('tokens', 'old'), 'v');
      assert.ok(v);
      assert.throws(() => openJson(Buffer.from(v, 'base64'), SECRET), /cannot be decrypted/);
      assert.deepEqual(openJson(Buffer.from(v, 'base64'), SECRET, admin.key('tokens', 'old')), entry(2));
    });

    it('Redis stopped: calls fail within the command timeout with OAUTH2_TOKEN_STORE_FAILED, no ioredis message; back: works again', async () => {
      const connection = await connectInstance(redis.url, prefix, { commandTimeoutMs: 500 });
      opened.push(connection);
      const store = new RedisTokenStore({ connection, secret: SECRET });
      await store.set('a', entry(1));
      await redis.stop();
      try {
        for (const call of [() => store.get('a'), () => store.set('a', entry(2)), () => store.delete('a'), () => store.ids()]) {
          const started = Date.now();
          await assert.rejects(call(), (err: unknown) => {
            assert.ok(err instanceof Error && 'code' in err && err.code === 'OAUTH2_TOKEN_STORE_FAILED', String(err));
            assert.match(err.message, /^Redis (cannot be reached|did not answer in time)/);
            assert.doesNotMatch(err.message, /ECONNREFUSED|Connection is closed|CLEARTEXT|127\.0\.0\.1:\d+ .*error/i);
            return true;
          });
          assert.ok(Date.now() - started < 3000, `failed after ${Date.now() - started} ms`);
        }
      } finally {
        await redis.start();
      }
      await waitUntil(async () => (await store.get('a').catch(() => undefined)) !== undefined, 10_000);
      assert.deepEqual(await store.get('a'), entry(1));
    });

    it('refuses an empty secret at construction', async () => {
      const connection = await instance();
      assert.throws(() => new RedisTokenStore({ connection, secret: '' }), /secret/);
      await rejectsWithStoreFailure(openRedisTokenStore({ connection, secret: '' }));
    });
  });
});

async function waitUntil(check: () => Promise<boolean>, ms = 5000): Promise<void> {
  const until = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > until) throw new Error('waitUntil: condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}
