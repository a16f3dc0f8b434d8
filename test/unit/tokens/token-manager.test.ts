import assert from 'node:assert/strict';
import { OAuth2Error, isOAuth2Error } from '../../../nodes/lib/errors';
import { TokenManager, type ConnectionState, type TokenManagerOptions } from '../../../nodes/lib/tokens/token-manager';
import type { GrantType, TokenSet } from '../../../nodes/lib/types';
import {
  RecordingTokenStore,
  ScriptedTokenEndpoint,
  deferred,
  invalidGrant,
  makeTokens,
  settle,
  unavailable,
  waitFor,
} from './support/scripted-token-endpoint';

const ID = 'conn-1';
const HOUR = 3_600_000;

interface Harness {
  manager: TokenManager;
  client: ScriptedTokenEndpoint;
  store: RecordingTokenStore;
  log: string[];
  states: ConnectionState[];
  sleeps: number[];
  clock: { now: number };
}

function harness(grant: GrantType = 'authorization_code', extra: Partial<TokenManagerOptions> = {}): Harness {
  const log: string[] = [];
  const clock = { now: 1_700_000_000_000 };
  const client = new ScriptedTokenEndpoint(log, () => clock.now);
  const store = new RecordingTokenStore(log);
  const sleeps: number[] = [];
  const manager = new TokenManager({
    connectionId: ID,
    grant,
    client,
    store,
    skewMs: 60_000,
    now: () => clock.now,
    sleep: async (ms) => {
      sleeps.push(ms);
    },
    random: () => 0.999,
    ...extra,
  });
  const states: ConnectionState[] = [];
  manager.on('state', (s: ConnectionState) => states.push(s));
  return { manager, client, store, log, states, sleeps, clock };
}

/** Stores `tokens` as if a previous run had written them, then inits. */
async function withStored(h: Harness, tokens: TokenSet, updatedAt = h.clock.now): Promise<void> {
  h.store.data.set(ID, { tokens, updatedAt });
  await h.manager.init();
}

function expired(h: Harness): TokenSet {
  return makeTokens(h.clock.now - 2 * HOUR, { expiresAt: h.clock.now - 1000 });
}

async function rejectsWith(promise: Promise<unknown>, code: OAuth2Error['code']): Promise<OAuth2Error> {
  try {
    await promise;
  } catch (err) {
    assert.ok(isOAuth2Error(err, code), `expected ${code}, got ${String(err)}`);
    return err;
  }
  assert.fail(`expected rejection with ${code}`);
}

function assertNoSecrets(text: string): void {
  assert.doesNotMatch(text, /SECRETVALUE/, 'a token value leaked');
}

describe('TokenManager', () => {
  const unhandled: unknown[] = [];
  const onUnhandled = (reason: unknown): void => {
    unhandled.push(reason);
  };
  before(() => process.on('unhandledRejection', onUnhandled));
  after(() => {
    process.off('unhandledRejection', onUnhandled);
  });
  afterEach(async () => {
    await settle();
    await settle();
    assert.deepEqual(unhandled, [], 'no unhandled rejection');
  });

  it('200 concurrent getAccessToken calls on an expired token make exactly one refresh', async () => {
    const h = harness();
    await withStored(h, expired(h));
    const gate = deferred();
    const fresh = makeTokens(h.clock.now);
    h.client.queue(async () => {
      await gate.promise;
      return fresh;
    });
    const calls = Array.from({ length: 200 }, () => h.manager.getAccessToken());
    await settle();
    assert.equal(h.client.calls, 1);
    assert.equal(h.manager.state().kind, 'refreshing');
    gate.resolve();
    const results = await Promise.all(calls);
    assert.equal(h.client.calls, 1);
    assert.ok(results.every((t) => t.accessToken === fresh.accessToken));
    assert.equal(h.manager.state().kind, 'ready');
    // And the next call uses the cache.
    assert.equal((await h.manager.getAccessToken()).accessToken, fresh.accessToken);
    assert.equal(h.client.calls, 1);
  });

  it('renewAfterRejection from 50 callers with the same rejected token refreshes once', async () => {
    const h = harness();
    const old = makeTokens(h.clock.now);
    await withStored(h, old);
    const fresh = makeTokens(h.clock.now);
    h.client.queue(fresh);
    const results = await Promise.all(Array.from({ length: 50 }, () => h.manager.renewAfterRejection(old.accessToken)));
    assert.equal(h.client.calls, 1);
    assert.ok(results.every((t) => t.accessToken === fresh.accessToken));
    // A late caller with the already-replaced token gets the current one, with no new refresh.
    assert.equal((await h.manager.renewAfterRejection(old.accessToken)).accessToken, fresh.accessToken);
    assert.equal(h.client.calls, 1);
    // A rejection of the new token refreshes once more.
    await h.manager.renewAfterRejection(fresh.accessToken);
    assert.equal(h.client.calls, 2);
  });

  it('after a rejection, uses a token renewed meanwhile only with the request\'s time plus 1 s of life left, else renews', async () => {
    // The current token was renewed in the background: it differs from the rejected one but is about to expire.
    const h = harness();
    const stored = makeTokens(h.clock.now, { expiresAt: h.clock.now + 5000 });
    await withStored(h, stored);
    // 5 s left, the request took 1.2 s (2.2 s needed): good enough, no refresh.
    assert.equal((await h.manager.renewAfterRejection('rejected-token', { requestMs: 1200 })).accessToken, stored.accessToken);
    assert.equal(h.client.calls, 0);
    // The request took 4.5 s: with the second of expiry precision, the retry could arrive after the token's end.
    const fresh = makeTokens(h.clock.now);
    h.client.queue(fresh);
    assert.equal((await h.manager.renewAfterRejection('rejected-token', { requestMs: 4500 })).accessToken, fresh.accessToken);
    assert.equal(h.client.calls, 1);
  });

  it('after a rejection, renews rather than retry with a token that has less than 1 s left, however fast the request', async () => {
    const h = harness();
    await withStored(h, makeTokens(h.clock.now, { expiresAt: h.clock.now + 800 }));
    const fresh = makeTokens(h.clock.now);
    h.client.queue(fresh);
    assert.equal((await h.manager.renewAfterRejection('rejected-token', { requestMs: 20 })).accessToken, fresh.accessToken);
    assert.equal(h.client.calls, 1);
  });

  it('writes the rotated refresh token to the store before anyone gets the new access token', async () => {
    const h = harness();
    await withStored(h, expired(h));
    const fresh = makeTokens(h.clock.now);
    h.client.queue(fresh);
    const got = Array.from({ length: 5 }, () =>
      h.manager.getAccessToken().then((t) => {
        h.log.push(`handed-out:${t.accessToken}`);
      }),
    );
    await Promise.all(got);
    const durable = h.log.indexOf(`durable:${fresh.refreshToken}`);
    const issued = h.log.indexOf(`refresh-issued:${fresh.accessToken}`);
    const firstHandout = h.log.indexOf(`handed-out:${fresh.accessToken}`);
    assert.ok(issued >= 0 && durable > issued, 'stored after issue');
    assert.ok(firstHandout > durable, `handed out only after durable: ${h.log.join(' | ')}`);
    assert.equal(h.store.data.get(ID)?.tokens.refreshToken, fresh.refreshToken);
  });

  it('invalid_grant: login-required, every waiter rejected, no further calls until setTokens', async () => {
    const h = harness();
    await withStored(h, expired(h));
    const gate = deferred();
    h.client.queue(async () => {
      await gate.promise;
      throw invalidGrant();
    });
    const waiters = Array.from({ length: 20 }, () => h.manager.getAccessToken());
    const reactive = h.manager.renewAfterRejection('whatever');
    await settle();
    gate.resolve();
    for (const w of [...waiters, reactive]) await rejectsWith(w, 'OAUTH2_LOGIN_REQUIRED');
    assert.deepEqual(h.manager.state(), { kind: 'login-required', code: 'OAUTH2_LOGIN_REQUIRED' });
    assert.equal(h.client.calls, 1);
    // Hammering attempts: none reach the endpoint.
    for (let i = 0; i < 10; i++) {
      await rejectsWith(h.manager.getAccessToken(), 'OAUTH2_LOGIN_REQUIRED');
      await rejectsWith(h.manager.renewAfterRejection('x'), 'OAUTH2_LOGIN_REQUIRED');
    }
    h.clock.now += 10 * HOUR;
    await rejectsWith(h.manager.getAccessToken(), 'OAUTH2_LOGIN_REQUIRED');
    assert.equal(h.client.calls, 1);
    // A new login recovers.
    const login = makeTokens(h.clock.now);
    await h.manager.setTokens(login);
    assert.equal(h.manager.state().kind, 'ready');
    assert.equal(h.store.data.get(ID)?.tokens.refreshToken, login.refreshToken);
    assert.equal((await h.manager.getAccessToken()).accessToken, login.accessToken);
    assert.equal(h.client.calls, 1);
    assertNoSecrets(JSON.stringify(h.states));
  });

  it('retryable failures: bounded attempts with jittered backoff, then UNAVAILABLE; the next call recovers', async () => {
    const h = harness();
    await withStored(h, expired(h));
    h.client.queue(unavailable(), unavailable(), unavailable());
    const waiters = Array.from({ length: 10 }, () => h.manager.getAccessToken());
    for (const w of waiters) await rejectsWith(w, 'OAUTH2_TOKEN_ENDPOINT_UNAVAILABLE');
    assert.equal(h.client.calls, 3, 'default attempts = 3');
    assert.equal(h.sleeps.length, 2);
    // Full jitter: uniform in [0, min(max, base * 2^(n-1))]; random() pinned at 0.999.
    assert.ok(h.sleeps[0] <= 500 && h.sleeps[0] >= 499);
    assert.ok(h.sleeps[1] <= 1000 && h.sleeps[1] >= 998);
    const state = h.manager.state();
    assert.equal(state.kind, 'unavailable');
    assert.equal(state.kind === 'unavailable' && state.error.code, 'OAUTH2_TOKEN_ENDPOINT_UNAVAILABLE');
    // Endpoint back: the next call tries again and goes back to ready.
    const fresh = makeTokens(h.clock.now);
    h.client.queue(fresh);
    assert.equal((await h.manager.getAccessToken()).accessToken, fresh.accessToken);
    assert.equal(h.client.calls, 4);
    assert.equal(h.manager.state().kind, 'ready');
  });

  it('backoff delays are capped at maxDelayMs and the attempt count is configurable', async () => {
    const h = harness('authorization_code', { retry: { maxAttempts: 6, baseDelayMs: 500, maxDelayMs: 2000 } });
    await withStored(h, expired(h));
    h.client.queue(...Array.from({ length: 6 }, unavailable));
    await rejectsWith(h.manager.getAccessToken(), 'OAUTH2_TOKEN_ENDPOINT_UNAVAILABLE');
    assert.equal(h.client.calls, 6);
    assert.equal(h.sleeps.length, 5);
    assert.ok(h.sleeps.every((ms) => ms >= 0 && ms <= 2000));
    assert.ok(h.sleeps.slice(2).every((ms) => ms >= 1990));
  });

  it('a recovery on the second attempt resolves the waiters (unavailable, then ready)', async () => {
    const h = harness();
    await withStored(h, expired(h));
    const fresh = makeTokens(h.clock.now);
    h.client.queue(unavailable(), fresh);
    assert.equal((await h.manager.getAccessToken()).accessToken, fresh.accessToken);
    assert.deepEqual(
      h.states.map((s) => s.kind),
      ['ready', 'refreshing', 'unavailable', 'ready'],
    );
  });

  it('non-retryable rejections (invalid_client) are not retried', async () => {
    const h = harness();
    await withStored(h, expired(h));
    h.client.queue(new OAuth2Error('OAUTH2_TOKEN_REQUEST_REJECTED', 'invalid_client', { params: { error: 'invalid_client' }, oauthError: 'invalid_client' }));
    await rejectsWith(h.manager.getAccessToken(), 'OAUTH2_TOKEN_REQUEST_REJECTED');
    assert.equal(h.client.calls, 1);
  });

  it('keeps serving a still-valid token when the proactive refresh fails', async () => {
    const h = harness();
    // Valid for 30 more seconds, within the 60 s skew.
    const current = makeTokens(h.clock.now - HOUR, { expiresAt: h.clock.now + 30_000 });
    await withStored(h, current);
    h.client.queue(unavailable(), unavailable(), unavailable());
    assert.equal((await h.manager.getAccessToken()).accessToken, current.accessToken, 'not delayed');
    await settle();
    await settle();
    assert.equal(h.client.calls, 3);
    assert.equal(h.manager.state().kind, 'unavailable');
    // Still served, and the failed background refresh is not restarted on every call (cool-down).
    for (let i = 0; i < 20; i++) assert.equal((await h.manager.getAccessToken()).accessToken, current.accessToken);
    assert.equal(h.client.calls, 3);
    // After the cool-down, a proactive refresh runs again and succeeds.
    h.clock.now += 9_000;
    const fresh = makeTokens(h.clock.now);
    h.client.queue(fresh);
    assert.equal((await h.manager.getAccessToken()).accessToken, current.accessToken);
    await waitFor(() => h.manager.state().kind === 'ready');
    assert.equal(h.client.calls, 4);
    assert.equal((await h.manager.getAccessToken()).accessToken, fresh.accessToken);
    assert.equal(h.manager.state().kind, 'ready');
  });

  it('proactive refresh within the skew runs once in the background', async () => {
    const h = harness();
    const current = makeTokens(h.clock.now - HOUR, { expiresAt: h.clock.now + 30_000 });
    await withStored(h, current);
    const gate = deferred();
    const fresh = makeTokens(h.clock.now);
    h.client.queue(async () => {
      await gate.promise;
      return fresh;
    });
    const during = await Promise.all(Array.from({ length: 30 }, () => h.manager.getAccessToken()));
    assert.ok(during.every((t) => t.accessToken === current.accessToken));
    assert.equal(h.client.calls, 1);
    gate.resolve();
    await waitFor(() => h.manager.state().kind === 'ready');
    assert.equal((await h.manager.getAccessToken()).accessToken, fresh.accessToken);
    assert.equal(h.client.calls, 1);
  });

  it('caps the skew at half the token lifetime (short-lived tokens are used, not refreshed on every call)', async () => {
    const h = harness();
    const short = makeTokens(h.clock.now, { expiresAt: h.clock.now + 10_000 });
    await withStored(h, short);
    assert.equal((await h.manager.getAccessToken()).accessToken, short.accessToken);
    await settle();
    assert.equal(h.client.calls, 0);
    h.clock.now += 6_000;
    await h.manager.getAccessToken();
    await settle();
    assert.equal(h.client.calls, 1);
  });

  it('store write failure during refresh: OAUTH2_TOKEN_STORE_FAILED, new token withheld, saved before reuse', async () => {
    const h = harness();
    await withStored(h, expired(h));
    const fresh = makeTokens(h.clock.now);
    h.client.queue(fresh);
    h.store.failWrites = 1;
    const err = await rejectsWith(h.manager.getAccessToken(), 'OAUTH2_TOKEN_STORE_FAILED');
    assertNoSecrets(err.message);
    assert.match(err.message, /ENOSPC/);
    assert.equal(h.manager.state().kind, 'unavailable');
    assert.notEqual(h.store.data.get(ID)?.tokens.refreshToken, fresh.refreshToken);
    // Next call: the issued tokens are written first; no second refresh with the spent refresh token.
    assert.equal((await h.manager.getAccessToken()).accessToken, fresh.accessToken);
    assert.equal(h.client.calls, 1);
    assert.equal(h.store.data.get(ID)?.tokens.refreshToken, fresh.refreshToken);
    assert.equal(h.manager.state().kind, 'ready');
  });

  describe('client credentials', () => {
    it('fetches on demand, single flight, caches until expiry', async () => {
      const h = harness('client_credentials');
      await h.manager.init();
      assert.equal(h.manager.state().kind, 'ready');
      const gate = deferred();
      const first = makeTokens(h.clock.now, { refreshToken: undefined, expiresAt: h.clock.now + 300_000 });
      h.client.queue(async () => {
        await gate.promise;
        return first;
      });
      const calls = Array.from({ length: 100 }, () => h.manager.getAccessToken());
      await settle();
      gate.resolve();
      const results = await Promise.all(calls);
      assert.ok(results.every((t) => t.accessToken === first.accessToken));
      assert.equal(h.client.clientCredentialsCalls, 1);
      assert.equal(h.client.refreshCalls.length, 0);
      h.clock.now += 100_000;
      assert.equal((await h.manager.getAccessToken()).accessToken, first.accessToken);
      assert.equal(h.client.clientCredentialsCalls, 1);
      // Expired: a new fetch, joined by everyone.
      h.clock.now += 300_000;
      const second = await Promise.all(Array.from({ length: 10 }, () => h.manager.getAccessToken()));
      assert.equal(h.client.clientCredentialsCalls, 2);
      assert.ok(second.every((t) => t.accessToken === second[0].accessToken && t.accessToken !== first.accessToken));
      // A rejection fetches a new one once.
      await Promise.all(Array.from({ length: 10 }, () => h.manager.renewAfterRejection(second[0].accessToken)));
      assert.equal(h.client.clientCredentialsCalls, 3);
    });
  });

  describe('no tokens', () => {
    it('authorization_code without a login: OAUTH2_LOGIN_REQUIRED, logged-out, no calls', async () => {
      const h = harness();
      await h.manager.init();
      assert.equal(h.manager.state().kind, 'logged-out');
      await rejectsWith(h.manager.getAccessToken(), 'OAUTH2_LOGIN_REQUIRED');
      await rejectsWith(h.manager.renewAfterRejection('x'), 'OAUTH2_LOGIN_REQUIRED');
      assert.equal(h.client.calls, 0);
      assert.equal(h.manager.state().kind, 'logged-out');
    });

    it('an expired token without refresh token: login-required, no calls', async () => {
      const h = harness('device_code');
      await withStored(h, { ...expired(h), refreshToken: undefined });
      await rejectsWith(h.manager.getAccessToken(), 'OAUTH2_LOGIN_REQUIRED');
      assert.equal(h.manager.state().kind, 'login-required');
      assert.equal(h.client.calls, 0);
    });
  });

  describe('init precedence', () => {
    it('the store wins when it is newer; nothing is written', async () => {
      const h = harness();
      const inStore = makeTokens(h.clock.now);
      const fromCredentials = makeTokens(h.clock.now);
      h.store.data.set(ID, { tokens: inStore, updatedAt: 2000 });
      await h.manager.init({ tokens: fromCredentials, updatedAt: 1000 });
      assert.equal((await h.manager.getAccessToken()).accessToken, inStore.accessToken);
      assert.equal(h.store.sets, 0);
    });

    it('initial (Node-RED credentials) wins when newer and is written to the store', async () => {
      const h = harness();
      const inStore = makeTokens(h.clock.now);
      const fromCredentials = makeTokens(h.clock.now);
      h.store.data.set(ID, { tokens: inStore, updatedAt: 1000 });
      await h.manager.init({ tokens: fromCredentials, updatedAt: 2000 });
      assert.equal((await h.manager.getAccessToken()).accessToken, fromCredentials.accessToken);
      assert.deepEqual(h.store.data.get(ID), { tokens: fromCredentials, updatedAt: 2000 });
    });

    it('initial is used when the store is empty; concurrent init calls load once', async () => {
      const h = harness();
      const fromCredentials = makeTokens(h.clock.now);
      await Promise.all([h.manager.init({ tokens: fromCredentials, updatedAt: 5 }), h.manager.getAccessToken().catch(() => undefined)]);
      assert.equal((await h.manager.getAccessToken()).accessToken, fromCredentials.accessToken);
      assert.equal(h.store.data.get(ID)?.tokens.accessToken, fromCredentials.accessToken);
    });
  });

  it('setTokens during a refresh: the late refresh result is discarded', async () => {
    const h = harness();
    await withStored(h, expired(h));
    const gate = deferred();
    const stale = makeTokens(h.clock.now);
    h.client.queue(async () => {
      await gate.promise;
      return stale;
    });
    const waiting = h.manager.getAccessToken();
    await settle();
    const login = makeTokens(h.clock.now);
    await h.manager.setTokens(login);
    gate.resolve();
    assert.equal((await waiting).accessToken, login.accessToken);
    assert.equal(h.store.data.get(ID)?.tokens.accessToken, login.accessToken);
    assert.equal((await h.manager.getAccessToken()).accessToken, login.accessToken);
  });

  it('clear: logged-out, deleted from the store, LOGIN_REQUIRED afterwards', async () => {
    const h = harness();
    await withStored(h, makeTokens(h.clock.now));
    await h.manager.clear();
    assert.equal(h.manager.state().kind, 'logged-out');
    assert.equal(h.store.data.has(ID), false);
    await rejectsWith(h.manager.getAccessToken(), 'OAUTH2_LOGIN_REQUIRED');
    assert.equal(h.manager.snapshot().hasRefreshToken, false);
  });

  it('snapshot exposes no token values', async () => {
    const h = harness();
    const t = makeTokens(h.clock.now, { subject: 'alice', expirySource: 'jwt' });
    await withStored(h, t);
    const snap = h.manager.snapshot();
    assert.deepEqual(snap, {
      state: { kind: 'ready' },
      expiresAt: t.expiresAt,
      scopes: ['read'],
      subject: 'alice',
      hasRefreshToken: true,
      expirySource: 'jwt',
    });
    assertNoSecrets(JSON.stringify(snap));
  });

  it('close during backoff rejects the waiters and leaves no timer; later calls reject', async () => {
    const h = harness('authorization_code', { sleep: undefined, retry: { maxAttempts: 3, baseDelayMs: 60_000, maxDelayMs: 60_000 } });
    await withStored(h, expired(h));
    h.client.queue(unavailable(), unavailable(), unavailable());
    const waiters = Array.from({ length: 5 }, () => h.manager.getAccessToken());
    await settle();
    assert.equal(h.client.calls, 1);
    const started = Date.now();
    h.manager.close();
    for (const w of waiters) await rejectsWith(w, 'OAUTH2_TOKEN_ENDPOINT_UNAVAILABLE');
    assert.ok(Date.now() - started < 1000, 'did not wait for the backoff');
    assert.equal(h.client.calls, 1);
    await rejectsWith(h.manager.getAccessToken(), 'OAUTH2_TOKEN_ENDPOINT_UNAVAILABLE');
    h.manager.close();
  });

  it('a throwing state listener cannot break refresh (and nothing goes unhandled)', async () => {
    const h = harness();
    h.manager.on('state', () => {
      throw new Error('listener bug');
    });
    await withStored(h, expired(h));
    const fresh = makeTokens(h.clock.now);
    h.client.queue(fresh);
    assert.equal((await h.manager.getAccessToken()).accessToken, fresh.accessToken);
  });

  it('background failures of every kind produce no unhandled rejection', async () => {
    const h = harness();
    const current = makeTokens(h.clock.now - HOUR, { expiresAt: h.clock.now + 30_000 });
    await withStored(h, current);
    h.client.queue(invalidGrant());
    await h.manager.getAccessToken();
    await settle();
    assert.equal(h.manager.state().kind, 'login-required');
    const h2 = harness();
    await withStored(h2, makeTokens(h2.clock.now - HOUR, { expiresAt: h2.clock.now + 30_000 }));
    h2.store.failWrites = 5;
    await h2.manager.getAccessToken();
    await waitFor(() => h2.manager.state().kind === 'unavailable');
    // The old token is still served; the renewed tokens wait (unsaved) for the next attempt after the cool-down.
    assert.equal(h2.store.failWrites, 4);
    await h2.manager.getAccessToken();
    await settle();
    assert.equal(h2.store.failWrites, 4);
    assert.equal(h2.client.calls, 1);
    assert.equal(h2.manager.state().kind, 'unavailable');
  });

  it('no token value reaches errors or state events', async () => {
    const h = harness();
    await withStored(h, expired(h));
    h.client.queue(unavailable(), unavailable(), unavailable());
    const err = await rejectsWith(h.manager.getAccessToken(), 'OAUTH2_TOKEN_ENDPOINT_UNAVAILABLE');
    h.client.queue(invalidGrant());
    const err2 = await rejectsWith(h.manager.getAccessToken(), 'OAUTH2_LOGIN_REQUIRED');
    for (const e of [err, err2]) {
      assertNoSecrets(`${e.message} ${JSON.stringify(e.params)} ${String(e.stack)}`);
    }
    assertNoSecrets(JSON.stringify(h.states.map((s) => (s.kind === 'unavailable' ? { ...s, message: s.error.message } : s))));
  });
});
