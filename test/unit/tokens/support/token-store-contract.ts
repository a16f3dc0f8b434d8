/**
 * The token store contract: the cases every TokenStore must pass, run against the encrypted file store
 * (test/unit/tokens/file-token-store.test.ts) and the Redis store (test/unit/redis/token-store.test.ts) alike.
 * These were the file store's own cases; what only a file can do (permissions, temp files, journal, fallback
 * secrets) stays in the file store's suite.
 */
import assert from 'node:assert/strict';
import { isOAuth2Error } from '../../../../nodes/lib/errors';
import type { StoredTokens, TokenStore } from '../../../../nodes/lib/tokens/token-store';

export const SECRET = 'instance-secret-for-tests';

export interface StoreBacking {
  /** A store on the backing; each call is a new instance, as after a restart ("reopen"). */
  open(secret: string): Promise<TokenStore>;
  /** Every byte the backing holds (names and values), for "nothing in clear" and "left untouched". */
  raw(): Promise<Buffer>;
  /** `id`'s entry read straight from the backing, not through a store instance. */
  durable(id: string, secret: string): Promise<StoredTokens | undefined>;
  /** Puts foreign content where `id`'s tokens live: bytes that are not sealed, or a sealed value that is not tokens. */
  plant(kind: 'garbage' | 'sealed-foreign', id: string, secret: string): Promise<void>;
  /** What the failure messages must say, where the store has something specific to say. */
  messages?: { otherSecret?: RegExp; garbage?: RegExp; foreign?: RegExp };
}

export function entry(n: number): StoredTokens {
  return {
    tokens: {
      accessToken: `access-${n}-CLEARTEXT`,
      tokenType: 'Bearer',
      refreshToken: `refresh-${n}-CLEARTEXT`,
      expiresAt: 1_700_000_000_000 + n,
      expirySource: 'expires_in',
      scopes: ['read'],
      obtainedAt: 1_700_000_000_000,
    },
    updatedAt: 1_700_000_000_000 + n,
  };
}

export async function rejectsWithStoreFailure(promise: Promise<unknown>, pattern?: RegExp): Promise<void> {
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(isOAuth2Error(err, 'OAUTH2_TOKEN_STORE_FAILED'), String(err));
    assert.doesNotMatch(err.message, /CLEARTEXT|instance-secret-for-tests/);
    if (pattern) assert.match(err.message, pattern);
    return true;
  });
}

/** Opens a store and reads `id`: a store that checks its content on open fails at open, others at the read. */
async function openAndRead(backing: StoreBacking, secret: string, id: string): Promise<StoredTokens | undefined> {
  const store = await backing.open(secret);
  return store.get(id);
}

/** Registers the contract's cases; `setup` runs before each case and gives a fresh, empty backing. */
export function tokenStoreContract(setup: () => Promise<StoreBacking>, teardown: () => Promise<void>): void {
  describe('TokenStore contract', () => {
    let b: StoreBacking;
    beforeEach(async () => {
      b = await setup();
    });
    afterEach(async () => {
      await teardown();
    });

    it('persists across reopen', async () => {
      const store = await b.open(SECRET);
      assert.equal(await store.get('a'), undefined);
      await store.set('a', entry(1));
      await store.set('b', entry(2));
      const reopened = await b.open(SECRET);
      assert.deepEqual(await reopened.get('a'), entry(1));
      assert.deepEqual(await reopened.get('b'), entry(2));
      assert.deepEqual((await reopened.ids()).sort(), ['a', 'b']);
    });

    it('set resolves only when the value is durable', async () => {
      const store = await b.open(SECRET);
      await store.set('a', entry(7));
      assert.deepEqual(await b.durable('a', SECRET), entry(7));
    });

    it('get returns copies (callers cannot change what is stored)', async () => {
      const store = await b.open(SECRET);
      const value = entry(1);
      await store.set('a', value);
      value.tokens.accessToken = 'mutated';
      const got = await store.get('a');
      assert.ok(got);
      got.tokens.accessToken = 'mutated-again';
      assert.equal((await store.get('a'))?.tokens.accessToken, 'access-1-CLEARTEXT');
    });

    it('keeps no token in clear in the backing', async () => {
      const store = await b.open(SECRET);
      await store.set('a', entry(1));
      const raw = await b.raw();
      assert.equal(raw.includes('CLEARTEXT'), false);
      assert.equal(raw.includes('access-1'), false);
      assert.equal(raw.includes(SECRET), false);
    });

    it('concurrent sets are all durable when each resolves', async () => {
      const store = await b.open(SECRET);
      const checks = Array.from({ length: 50 }, (_, i) =>
        store.set(`c${i}`, entry(i)).then(async () => {
          // At the moment this set resolves, the backing already holds it.
          assert.deepEqual(await b.durable(`c${i}`, SECRET), entry(i));
        }),
      );
      await Promise.all(checks);
      const reopened = await b.open(SECRET);
      assert.equal((await reopened.ids()).length, 50);
      for (let i = 0; i < 50; i++) assert.deepEqual(await reopened.get(`c${i}`), entry(i));
    });

    it('delete and ids', async () => {
      const store = await b.open(SECRET);
      await store.set('a', entry(1));
      await store.set('b', entry(2));
      await store.delete('a');
      await store.delete('never-there');
      assert.deepEqual(await store.ids(), ['b']);
      const reopened = await b.open(SECRET);
      assert.deepEqual(await reopened.ids(), ['b']);
      assert.equal(await reopened.get('a'), undefined);
    });

    it('ids that look like object keys or need escaping stay ordinary ids', async () => {
      const store = await b.open(SECRET);
      for (const [i, id] of ['__proto__', 'constructor', 'a:b', 'x y*?[]', 'ü'].entries()) await store.set(id, entry(i));
      const reopened = await b.open(SECRET);
      assert.deepEqual((await reopened.ids()).sort(), ['__proto__', 'a:b', 'constructor', 'x y*?[]', 'ü'].sort());
      assert.deepEqual(await reopened.get('__proto__'), entry(0));
      assert.deepEqual(await reopened.get('a:b'), entry(2));
    });

    it('content sealed with another secret: reading fails clearly and leaves it untouched', async () => {
      const store = await b.open(SECRET);
      await store.set('a', entry(1));
      const before = await b.raw();
      await rejectsWithStoreFailure(openAndRead(b, 'other-secret', 'a'), b.messages?.otherSecret);
      assert.deepEqual(await b.raw(), before);
    });

    it('corrupt or foreign content: reading fails and leaves it untouched', async () => {
      await b.plant('garbage', 'a', SECRET);
      const garbage = await b.raw();
      await rejectsWithStoreFailure(openAndRead(b, SECRET, 'a'), b.messages?.garbage);
      assert.deepEqual(await b.raw(), garbage);
      // Decrypts, but is not tokens.
      await b.plant('sealed-foreign', 'a', SECRET);
      const foreign = await b.raw();
      await rejectsWithStoreFailure(openAndRead(b, SECRET, 'a'), b.messages?.foreign);
      assert.deepEqual(await b.raw(), foreign);
    });

    it('refuses an empty secret', async () => {
      await rejectsWithStoreFailure((async () => (await b.open('')).set('a', entry(1)))());
    });
  });
}
