/**
 * Several token managers, each on its own Redis connection (as separate Node-RED instances would be), sharing
 * one Redis token store and one real authorization server (oidc-provider) that rotates refresh tokens and
 * revokes the whole grant when a spent refresh token is used again: two refreshes of the same login by two
 * instances would kill it, so these tests fail loudly if the coordination breaks.
 */
import assert from 'node:assert/strict';
import { isOAuth2Error, type OAuth2Error } from '../../../nodes/lib/errors';
import { buildAuthorizeUrl } from '../../../nodes/lib/oauth/authorize-url';
import { validateCallback } from '../../../nodes/lib/oauth/callback';
import { discoverProvider } from '../../../nodes/lib/oauth/discovery';
import { createPkcePair, randomToken } from '../../../nodes/lib/oauth/pkce';
import { createTokenEndpointClient } from '../../../nodes/lib/oauth/simple-oauth2-client';
import type { RedisConnection } from '../../../nodes/lib/redis/client';
import { RedisTokenStore } from '../../../nodes/lib/redis/token-store';
import { TokenManager, type ConnectionState } from '../../../nodes/lib/tokens/token-manager';
import type { ClientSettings, CredentialTarget, GrantType, ProviderMetadata, TokenSet } from '../../../nodes/lib/types';
import type { StoredTokens } from '../../../nodes/lib/tokens/token-store';
import { loginThroughProvider, startAuthServer, type AuthServer } from '../../support/auth-server';
import { startFaultProxy, faults, type FaultProxy } from '../../support/fault-proxy';
import { startRedis, type RedisServer } from '../../support/redis';
import { clientSettings } from '../oauth/helpers';
import { connectInstance, freshPrefix, rawUnder } from '../tokens/support/redis-instances';
import { startRedisProxy, type RedisProxy } from '../tokens/support/redis-proxy';
import { needsSystemPackage } from '../../support/system-packages';

const REDIRECT_URI = 'http://127.0.0.1:1880/oauth2-connection/callback';
const ID = 'conn-cluster';
const SECRET = 'shared-secret-of-the-cluster';
const HOUR = 3_600_000;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A piece of the fenced-write script only (lease.write): what the Redis proxy refuses to play a failed write. */
const FENCED_WRITE = 'local latest';

async function eventually(check: () => boolean | Promise<boolean>, ms = 5000): Promise<void> {
  const until = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > until) throw new Error('eventually: condition not met in time');
    await sleep(20);
  }
}

interface Instance {
  connection: RedisConnection;
  store: RedisTokenStore;
  manager: TokenManager;
  states: ConnectionState[];
}

describe('redis: token managers of several instances share one login', function () {
  needsSystemPackage(this, 'redis-server');
  this.timeout(60_000);
  let auth: AuthServer;
  let metadata: ProviderMetadata;
  let client: ClientSettings;
  let redis: RedisServer;
  let prefix: string;
  let instances: Instance[] = [];
  const closers: (() => Promise<void>)[] = [];

  before(async () => {
    [auth, redis] = await Promise.all([startAuthServer({ accessTokenTtlSec: 3600 }), startRedis()]);
    auth.addRedirectUri(REDIRECT_URI);
    metadata = await discoverProvider(auth.issuer, { timeoutMs: 5000 });
    client = clientSettings({
      clientId: auth.clients.web.clientId,
      clientSecret: auth.clients.web.clientSecret,
      scopes: ['openid', 'email'],
    });
  });
  after(async () => {
    await Promise.all([auth?.close(), redis?.close()]);
  });
  beforeEach(() => {
    prefix = freshPrefix();
  });
  afterEach(async () => {
    for (const i of instances) i.manager.close();
    await Promise.all(instances.map((i) => i.connection.close()));
    instances = [];
    await Promise.all(closers.splice(0).map((close) => close()));
  });

  /** One instance with its own options: Redis through a proxy, a short lock, a token endpoint behind a proxy. */
  async function startInstance(opts: {
    redisUrl?: string;
    lockTtlMs?: number;
    tokenEndpoint?: string;
    retry?: { maxAttempts: number; baseDelayMs: number; maxDelayMs: number };
    /** The instance's authorization-server settings (as Connection passes them) and grant. */
    target?: CredentialTarget;
    grant?: GrantType;
    client?: ClientSettings;
  }): Promise<Instance> {
    const connection = await connectInstance(opts.redisUrl ?? redis.url, prefix, { commandTimeoutMs: 500, lockTtlMs: opts.lockTtlMs ?? 30_000 });
    const store = new RedisTokenStore({ connection, secret: SECRET });
    const manager = new TokenManager({
      connectionId: ID,
      grant: opts.grant ?? 'authorization_code',
      client: createTokenEndpointClient({
        metadata: { ...metadata, tokenEndpoint: opts.tokenEndpoint ?? metadata.tokenEndpoint },
        client: opts.client ?? client,
        timeoutMs: 5000,
      }),
      store,
      coordination: store,
      skewMs: 60_000,
      retry: opts.retry ?? { maxAttempts: 1, baseDelayMs: 0, maxDelayMs: 0 },
      random: () => 1,
      target: opts.target,
    });
    const states: ConnectionState[] = [];
    manager.on('state', (st: ConnectionState) => states.push(st));
    const made = { connection, store, manager, states };
    instances.push(made);
    await manager.init();
    return made;
  }

  async function redisProxy(): Promise<RedisProxy> {
    const proxy = await startRedisProxy(redis.port);
    closers.push(() => proxy.close());
    return proxy;
  }

  async function httpProxy(): Promise<FaultProxy> {
    const proxy = await startFaultProxy(new URL(metadata.tokenEndpoint).origin);
    closers.push(() => proxy.close());
    return proxy;
  }

  /** Resolves once `who` holds the refresh lock (seen in Redis by `probe`). */
  async function lockTaken(probe: Instance): Promise<string> {
    const key = probe.store.lockKeys(ID).lock;
    let holder: string | null = null;
    await eventually(async () => (holder = await probe.connection.client.get(key)) !== null, 5000);
    return holder as unknown as string;
  }

  /** Calls `fn` until it no longer fails with a (retryable) token-store error. */
  async function untilNotStoreFailure<T>(fn: () => Promise<T>, ms = 15_000): Promise<PromiseSettledResult<T>> {
    const until = Date.now() + ms;
    for (;;) {
      const [r] = await Promise.allSettled([fn()]);
      if (r.status === 'fulfilled' || !isOAuth2Error(r.reason, 'OAUTH2_TOKEN_STORE_FAILED')) return r;
      if (Date.now() > until) return r;
      await sleep(50);
    }
  }

  /** A real login at the provider (PKCE, consent): tokens with a live, rotating refresh token. */
  async function logIn(): Promise<TokenSet> {
    const pkce = createPkcePair();
    const state = randomToken();
    const nonce = randomToken();
    const url = buildAuthorizeUrl({ metadata, client, redirectUri: REDIRECT_URI, state, codeChallenge: pkce.codeChallenge, nonce });
    const callback = await loginThroughProvider(url);
    const { code } = validateCallback(Object.fromEntries(callback.searchParams), {
      state,
      issuer: metadata.issuer,
      issRequired: metadata.authorizationResponseIssParameterSupported === true,
    });
    return createTokenEndpointClient({ metadata, client, timeoutMs: 5000 }).exchangeCode({
      code,
      codeVerifier: pkce.codeVerifier,
      redirectUri: REDIRECT_URI,
      nonce,
    });
  }

  async function startInstances(n: number, opts: { skewMs?: number; commandTimeoutMs?: number } = {}): Promise<Instance[]> {
    const made = await Promise.all(
      Array.from({ length: n }, async () => {
        const connection = await connectInstance(redis.url, prefix, { commandTimeoutMs: opts.commandTimeoutMs ?? 3000 });
        const store = new RedisTokenStore({ connection, secret: SECRET });
        const manager = new TokenManager({
          connectionId: ID,
          grant: 'authorization_code',
          client: createTokenEndpointClient({ metadata, client, timeoutMs: 5000 }),
          store,
          coordination: store,
          skewMs: opts.skewMs ?? 60_000,
          retry: { maxAttempts: 1 },
        });
        const states: ConnectionState[] = [];
        manager.on('state', (s: ConnectionState) => states.push(s));
        return { connection, store, manager, states };
      }),
    );
    instances.push(...made);
    await Promise.all(made.map((i) => i.manager.init()));
    return made;
  }

  /** Logs in, and stores the login as if its access token had expired (the refresh token is live). */
  async function seedExpired(): Promise<TokenSet> {
    const tokens = await logIn();
    const connection = await connectInstance(redis.url, prefix);
    try {
      const stale: TokenSet = { ...tokens, obtainedAt: Date.now() - 2 * HOUR, expiresAt: Date.now() - 1000 };
      await new RedisTokenStore({ connection, secret: SECRET }).set(ID, { tokens: stale, updatedAt: Date.now() });
    } finally {
      await connection.close();
    }
    return tokens;
  }

  it('300 requests over 3 instances on an expired token: exactly 1 refresh at the provider, all succeed with the new token', async () => {
    const login = await seedExpired();
    const trio = await startInstances(3);
    auth.resetCounts();
    const started = Date.now();
    const results = await Promise.allSettled(
      Array.from({ length: 300 }, (_, i) => trio[i % 3].manager.getAccessToken()),
    );
    const elapsed = Date.now() - started;
    const failed = results.filter((r) => r.status === 'rejected');
    assert.equal(failed.length, 0, `failures: ${failed.map((f) => String((f as PromiseRejectedResult).reason)).join('; ')}`);
    assert.deepEqual(auth.counts().token, { refresh_token: 1 });
    const tokens = new Set(results.map((r) => (r as PromiseFulfilledResult<TokenSet>).value.accessToken));
    assert.equal(tokens.size, 1, 'every caller got the same, new access token');
    const [fresh] = [...tokens];
    assert.notEqual(fresh, login.accessToken);
    assert.equal((await auth.validateAccessToken(fresh)).active, true, 'the login is alive at the provider');
    console.log(`      300 calls over 3 instances: ${auth.counts().token.refresh_token} refresh, ${elapsed} ms`);

    // (d) nothing in Redis in clear: neither the old nor the new tokens, nor the secret.
    const raw = await rawUnder(trio[0].connection, prefix);
    const renewed = await trio[0].manager.getAccessToken();
    for (const secret of [login.accessToken, login.refreshToken ?? '', login.idToken ?? '', renewed.accessToken, renewed.refreshToken ?? '', SECRET]) {
      assert.ok(secret.length > 8);
      assert.equal(raw.includes(secret), false, 'a token or the secret is in Redis in clear');
    }
  });

  it('a renewal by one instance is adopted by the others at once, without a refresh of their own; so is a logout', async () => {
    await seedExpired();
    const [a, b, c] = await startInstances(3);
    const first = await a.manager.getAccessToken();
    await eventually(async () => (await b.manager.getAccessToken()).accessToken === first.accessToken);
    auth.resetCounts();
    // The API rejects the token at A: A renews once (reactive) and announces it.
    const second = await a.manager.renewAfterRejection(first.accessToken);
    assert.notEqual(second.accessToken, first.accessToken);
    await eventually(() => b.manager.snapshot().expiresAt === second.expiresAt && c.manager.snapshot().expiresAt === second.expiresAt);
    assert.equal((await b.manager.getAccessToken()).accessToken, second.accessToken);
    assert.equal((await c.manager.getAccessToken()).accessToken, second.accessToken);
    // B's API also rejects the old token now: B sees the new one and does not refresh.
    assert.equal((await b.manager.renewAfterRejection(first.accessToken)).accessToken, second.accessToken);
    assert.deepEqual(auth.counts().token, { refresh_token: 1 });

    await a.manager.clear();
    await eventually(() => b.manager.state().kind === 'logged-out' && c.manager.state().kind === 'logged-out');
    await assert.rejects(b.manager.getAccessToken(), (err: unknown) => isOAuth2Error(err, 'OAUTH2_LOGIN_REQUIRED'));
    assert.deepEqual(auth.counts().token, { refresh_token: 1 });
  });

  it('invalid_grant at one instance: every instance goes to login-required, and none calls the token endpoint again', async () => {
    const login = await seedExpired();
    const [a, b, c] = await startInstances(3);
    // The user revoked the grant at the provider.
    await createTokenEndpointClient({ metadata, client, timeoutMs: 5000 }).revoke(login);
    auth.resetCounts();
    await assert.rejects(a.manager.getAccessToken(), (err: unknown) => isOAuth2Error(err, 'OAUTH2_LOGIN_REQUIRED'));
    await eventually(() => [a, b, c].every((i) => i.manager.state().kind === 'login-required'));
    for (const i of [b, c]) {
      await assert.rejects(i.manager.getAccessToken(), (err: unknown) => isOAuth2Error(err, 'OAUTH2_LOGIN_REQUIRED'));
    }
    assert.deepEqual(auth.counts().token, { refresh_token: 1 });
    // A fresh instance started now also knows it (the mark is stored, refresh token removed).
    const [d] = await startInstances(1);
    assert.equal(d.manager.state().kind, 'login-required');
    assert.equal(d.manager.snapshot().hasRefreshToken, false);
    // A new login on one instance brings every instance back.
    const again = await logIn();
    await b.manager.setTokens(again);
    await eventually(() => [a, c, d].every((i) => i.manager.state().kind === 'ready'));
    assert.equal((await c.manager.getAccessToken()).accessToken, again.accessToken);
  });

  it('Redis stopped: the held token is served until it expires, then OAUTH2_TOKEN_STORE_FAILED and no refresh; Redis back: recovers by itself', async () => {
    const login = await logIn();
    // A token that expires in 3 s (1 s skew): fresh at first, then within the skew, then expired.
    const connection = await connectInstance(redis.url, prefix);
    const expiresAt = Date.now() + 3000;
    await new RedisTokenStore({ connection, secret: SECRET }).set(ID, {
      tokens: { ...login, obtainedAt: Date.now() - HOUR, expiresAt },
      updatedAt: Date.now(),
    });
    await connection.close();
    const trio = await startInstances(3, { skewMs: 1000, commandTimeoutMs: 500 });
    auth.resetCounts();

    await redis.stop();
    let restarted = false;
    try {
      for (const i of trio) assert.equal((await i.manager.getAccessToken()).accessToken, login.accessToken);
      // Within the skew: still served; the background renewal fails quietly and the state says why.
      await sleep(Math.max(0, expiresAt - 1000 - Date.now()) + 50);
      for (const i of trio) assert.equal((await i.manager.getAccessToken()).accessToken, login.accessToken);
      await eventually(() => trio.every((i) => {
        const s = i.manager.state();
        return s.kind === 'unavailable' && s.error.code === 'OAUTH2_TOKEN_STORE_FAILED';
      }), 4000);
      // Expired: no token to serve, and no refresh without the lock.
      await sleep(Math.max(0, expiresAt - Date.now()) + 50);
      const outcomes = await Promise.allSettled(trio.flatMap((i) => [i.manager.getAccessToken(), i.manager.getAccessToken()]));
      for (const o of outcomes) {
        assert.equal(o.status, 'rejected');
        const err = (o as PromiseRejectedResult).reason as OAuth2Error;
        assert.ok(isOAuth2Error(err, 'OAUTH2_TOKEN_STORE_FAILED'), String(err));
        assert.doesNotMatch(err.message, /ECONNREFUSED|SECRETVALUE/);
      }
      assert.deepEqual(auth.counts().token, {}, 'no refresh while Redis is down');

      await redis.start();
      restarted = true;
      const back = Date.now();
      let served: TokenSet[] = [];
      await eventually(async () => {
        const r = await Promise.allSettled(trio.map((i) => i.manager.getAccessToken()));
        if (r.some((x) => x.status === 'rejected')) return false;
        served = r.map((x) => (x as PromiseFulfilledResult<TokenSet>).value);
        return true;
      }, 15_000);
      const recovered = Date.now() - back;
      assert.equal(new Set(served.map((t) => t.accessToken)).size, 1);
      assert.notEqual(served[0].accessToken, login.accessToken);
      assert.deepEqual(auth.counts().token, { refresh_token: 1 });
      await eventually(() => trio.every((i) => i.manager.state().kind === 'ready'));
      console.log(`      recovered ${recovered} ms after Redis answered again, with ${auth.counts().token.refresh_token} refresh`);
    } finally {
      if (!restarted) await redis.start();
    }
  });

  // An instance stops while its refresh request is at the provider: the provider rotated the refresh token in an
  // answer nobody will read. The lock's short life (extended by its holder while it renews) lets the others
  // notice within about one lock life; the one that takes over knows a renewal was abandoned.
  describe('a renewer that stops mid-refresh', () => {
    const LOCK_MS = 2000;

    /** A's refresh reaches the provider, then A stops; B renews after it. Returns B's outcome and how soon. */
    async function renewerStops(): Promise<{ b: Instance; c: Instance; outcome: PromiseSettledResult<TokenSet>; noticedMs: number }> {
      await seedExpired();
      const endpoint = await httpProxy();
      endpoint.fault(faults.loseAnswer()); // the provider answers; A never reads it
      const a = await startInstance({ lockTtlMs: LOCK_MS, tokenEndpoint: `${endpoint.url}${new URL(metadata.tokenEndpoint).pathname}` });
      const b = await startInstance({ lockTtlMs: LOCK_MS });
      const c = await startInstance({ lockTtlMs: LOCK_MS });
      auth.resetCounts();
      void a.manager.getAccessToken().catch(() => undefined);
      await eventually(() => (auth.counts().token.refresh_token ?? 0) === 1, 5000);
      // A stops: nothing of it runs any more (no lock extension, no release, no write).
      a.manager.close();
      await a.connection.close();
      const stoppedAt = Date.now();
      const [outcome] = await Promise.allSettled([b.manager.getAccessToken()]);
      return { b, c, outcome, noticedMs: Date.now() - stoppedAt };
    }

    it('a provider that revokes on reuse: noticed within one lock life, and every instance says an instance stopped while renewing', async () => {
      const { b, c, outcome, noticedMs } = await renewerStops();
      assert.equal(outcome.status, 'rejected');
      const err = (outcome as PromiseRejectedResult).reason as OAuth2Error;
      assert.ok(isOAuth2Error(err, 'OAUTH2_LOGIN_REQUIRED'), String(err));
      assert.equal(err.params.reason, 'renewerStopped');
      assert.match(err.message, /instance stopped while its refresh request was at the provider/);
      assert.ok(noticedMs < LOCK_MS + 1500, `noticed ${noticedMs} ms after the renewer stopped`);
      console.log(`      a renewer stopped mid-refresh: noticed after ${noticedMs} ms (lock ${LOCK_MS} ms)`);
      // The whole group says the same, from the mark in the store; nobody calls the token endpoint again.
      await eventually(() => {
        const s = c.manager.state();
        return s.kind === 'login-required' && s.error?.params.reason === 'renewerStopped';
      });
      assert.equal(b.manager.state().kind, 'login-required');
      await assert.rejects(c.manager.getAccessToken(), (e: unknown) => isOAuth2Error(e, 'OAUTH2_LOGIN_REQUIRED') && e.params.reason === 'renewerStopped');
      assert.deepEqual(auth.counts().token, { refresh_token: 2 }, "A's refresh, then B's; none after");
      // B's renewal ended: the in-flight mark is gone.
      assert.equal(await b.connection.client.exists(b.connection.key('token-refreshing', ID)), 0);
    });

    it('a renewal that finishes leaves no in-flight mark behind (a later takeover knows of no stopped renewer)', async () => {
      await seedExpired();
      const one = await startInstance({ lockTtlMs: LOCK_MS });
      await one.manager.getAccessToken();
      assert.equal(await one.connection.client.exists(one.connection.key('token-refreshing', ID)), 0);
    });

    describe('a provider with a reuse grace period', () => {
      let strict: { auth: AuthServer; metadata: ProviderMetadata; client: ClientSettings };
      before(async () => {
        strict = { auth, metadata, client };
        auth = await startAuthServer({ accessTokenTtlSec: 3600, refreshReuseGraceSec: 30 });
        auth.addRedirectUri(REDIRECT_URI);
        metadata = await discoverProvider(auth.issuer, { timeoutMs: 5000 });
        client = clientSettings({ clientId: auth.clients.web.clientId, clientSecret: auth.clients.web.clientSecret, scopes: ['openid', 'email'] });
      });
      after(async () => {
        await auth.close();
        ({ auth, metadata, client } = strict);
      });

      it('the takeover within the grace period keeps the login: B renews with the refresh token A spent, and C adopts it', async () => {
        const { b, c, outcome, noticedMs } = await renewerStops();
        assert.equal(outcome.status, 'fulfilled', outcome.status === 'rejected' ? String(outcome.reason) : '');
        const renewed = (outcome as PromiseFulfilledResult<TokenSet>).value;
        assert.ok(noticedMs < LOCK_MS + 1500, `renewed ${noticedMs} ms after the renewer stopped`);
        assert.equal(b.manager.state().kind, 'ready');
        assert.equal((await c.manager.getAccessToken()).accessToken, renewed.accessToken);
        assert.equal((await auth.validateAccessToken(renewed.accessToken)).active, true);
        assert.deepEqual(auth.counts().token, { refresh_token: 2 });
      });
    });
  });

  describe('renewed tokens the store could not take', () => {
    it('the fenced write fails (Redis refuses it): the holder keeps the lock, writes again, and the waiting instance adopts; one refresh, the login lives', async () => {
      const login = await seedExpired();
      const proxy = await redisProxy();
      const a = await startInstance({ redisUrl: proxy.url, lockTtlMs: 4000 });
      const b = await startInstance({ lockTtlMs: 4000 });
      auth.resetCounts();
      // A's fenced writes are refused for 1 s: a blip, shorter than the lock's life.
      proxy.failCommands(FENCED_WRITE, 1000);
      const aDone = a.manager.getAccessToken();
      const lockKey = b.store.lockKeys(ID).lock;
      await eventually(async () => proxy.refused(FENCED_WRITE) >= 1 || (await b.connection.client.exists(lockKey)) === 1, 5000);
      // B needs a token too and waits for the lock A holds (or arrives just after A's write failed).
      const bDone = untilNotStoreFailure(() => b.manager.getAccessToken());
      const [aResult, bResult] = await Promise.all([Promise.allSettled([aDone]).then(([r]) => r), bDone]);
      assert.ok(proxy.refused(FENCED_WRITE) >= 1, 'the fault was not played: no fenced write was refused');
      assert.equal(bResult.status, 'fulfilled', `B: ${String((bResult as PromiseRejectedResult).reason)}`);
      const bTokens = (bResult as PromiseFulfilledResult<TokenSet>).value;
      assert.notEqual(bTokens.accessToken, login.accessToken);
      assert.equal(aResult.status, 'fulfilled', `A: ${String((aResult as PromiseRejectedResult).reason)}`);
      assert.equal((aResult as PromiseFulfilledResult<TokenSet>).value.accessToken, bTokens.accessToken, 'B adopted what A renewed');
      assert.deepEqual(auth.counts().token, { refresh_token: 1 }, 'exactly one refresh: B did not refresh with the spent token');
      assert.equal((await auth.validateAccessToken(bTokens.accessToken)).active, true, 'the login is alive at the provider');
    });

    it('the store stays away past the lock: the holder writes its renewed tokens by its fence the moment Redis is back, unasked; nobody refreshes again', async () => {
      const login = await seedExpired();
      const proxy = await redisProxy();
      const a = await startInstance({ redisUrl: proxy.url, lockTtlMs: 2000 });
      const b = await startInstance({ lockTtlMs: 2000 });
      auth.resetCounts();
      // The write is refused, then A loses Redis altogether for longer than the lock lives: every retry fails.
      proxy.failCommands(FENCED_WRITE, 60_000);
      const aDone = Promise.allSettled([a.manager.getAccessToken()]).then(([r]) => r);
      await eventually(() => proxy.refused(FENCED_WRITE) >= 1, 5000);
      proxy.down();
      const aResult = await aDone;
      assert.equal(aResult.status, 'rejected');
      assert.ok(isOAuth2Error((aResult as PromiseRejectedResult).reason, 'OAUTH2_TOKEN_STORE_FAILED'));
      assert.deepEqual(auth.counts().token, { refresh_token: 1 });
      // What Redis holds is still the spent login; A holds the only live refresh token.
      assert.equal((await b.store.get(ID))?.tokens.refreshToken, login.refreshToken);
      // Redis reachable again for A (faults off): nobody asks A for a token, yet the renewed tokens get written.
      proxy.failCommands(FENCED_WRITE, 0);
      proxy.up();
      let stored: StoredTokens | undefined;
      await eventually(async () => (stored = await b.store.get(ID))?.tokens.refreshToken !== login.refreshToken, 10_000);
      const renewed = (stored as unknown as StoredTokens).tokens;
      assert.notEqual(renewed.accessToken, login.accessToken);
      // B gets exactly those, without a refresh of its own; the login is alive.
      await eventually(async () => (await b.manager.getAccessToken()).accessToken === renewed.accessToken, 5000);
      assert.deepEqual(auth.counts().token, { refresh_token: 1 });
      assert.equal((await auth.validateAccessToken(renewed.accessToken)).active, true);
      await eventually(() => a.manager.state().kind === 'ready', 5000);
    });
  });

  it('a lock holder cut off from Redis does not call the token endpoint again once its lock may have expired', async () => {
    await seedExpired();
    const proxy = await redisProxy();
    const endpoint = await httpProxy();
    const a = await startInstance({
      redisUrl: proxy.url,
      lockTtlMs: 2000,
      tokenEndpoint: `${endpoint.url}${new URL(metadata.tokenEndpoint).pathname}`,
      // The retry after a 503 comes 3 s later: past the lock's 2 s life.
      retry: { maxAttempts: 3, baseDelayMs: 3000, maxDelayMs: 3000 },
    });
    const b = await startInstance({ lockTtlMs: 2000 });
    auth.resetCounts();
    // A's first refresh gets a 503 from the provider's side, and at that moment A loses Redis (the provider is
    // still reachable for A).
    endpoint.fault(faults.serverError(503), {
      times: 1,
      match: () => {
        proxy.down();
        return true;
      },
    });
    const aDone = Promise.allSettled([a.manager.getAccessToken()]).then(([r]) => r);
    await lockTaken(b);
    // B takes the lock once it expired, finds the old token and refreshes: the one legitimate refresh.
    const bResult = await untilNotStoreFailure(() => b.manager.getAccessToken());
    assert.equal(bResult.status, 'fulfilled', `B: ${String((bResult as PromiseRejectedResult).reason)}`);
    const bTokens = (bResult as PromiseFulfilledResult<TokenSet>).value;
    const aResult = await aDone;
    assert.equal(aResult.status, 'rejected');
    const err = (aResult as PromiseRejectedResult).reason as OAuth2Error;
    assert.ok(isOAuth2Error(err, 'OAUTH2_TOKEN_STORE_FAILED'), String(err));
    assert.equal(err.params.reason, 'lockLost');
    assert.equal(err.retryable, true);
    assert.equal(endpoint.count(), 1, 'A called the token endpoint again after its lock may have expired');
    assert.deepEqual(auth.counts().token, { refresh_token: 1 });
    assert.equal((await auth.validateAccessToken(bTokens.accessToken)).active, true, 'the login is alive at the provider');
  });

  describe('start-up with a credential copy', () => {
    it("an old credential copy does not undo a logout made on another instance", async () => {
      const [x] = await startInstances(1);
      const login = await logIn();
      await x.manager.setTokens(login);
      const copy = await x.store.get(ID); // what Node-RED's credentials of an instance held
      assert.ok(copy);
      await x.manager.clear(); // logout on X
      // Y restarts with its flows_cred.json from before the logout.
      const late = await startInstance({});
      await late.manager.init(copy);
      assert.equal(late.manager.state().kind, 'logged-out');
      assert.equal(await x.store.get(ID), undefined, 'the old login was written back to Redis');
      await sleep(200);
      assert.equal(x.manager.state().kind, 'logged-out', 'the logout was undone on X');
    });

    it('a credential copy dated in the future (clock skew) does not win over the shared entry, nor draw a fence', async () => {
      const [x] = await startInstances(1);
      const login = await logIn();
      await x.manager.setTokens(login);
      const stored = await x.store.get(ID);
      const fenceBefore = await x.connection.client.get(x.store.lockKeys(ID).fence);
      const skewed: StoredTokens = { tokens: { ...login, accessToken: 'an-old-copy-access-token' }, updatedAt: Date.now() + 3_600_000 };
      const late = await startInstance({});
      await late.manager.init(skewed);
      const now = await x.store.get(ID);
      assert.ok(now?.tokens.accessToken === stored?.tokens.accessToken && now?.updatedAt === stored?.updatedAt, 'the copy overwrote the shared entry');
      assert.equal(await x.connection.client.get(x.store.lockKeys(ID).fence), fenceBefore, 'the copy drew a fence');
      assert.equal((await late.manager.getAccessToken()).accessToken, login.accessToken);
    });

    it('a store that never had the connection is seeded from the copy (once)', async () => {
      const login = await logIn();
      const copy: StoredTokens = { tokens: login, updatedAt: Date.now() };
      const first = await startInstance({});
      await first.manager.init(copy);
      assert.equal((await first.store.get(ID))?.tokens.accessToken, login.accessToken);
      assert.equal((await first.manager.getAccessToken()).accessToken, login.accessToken);
    });
  });
  describe('instances with other authorization-server settings (a rolling deploy that moves the token endpoint)', () => {
    const targetOf = (settings: ClientSettings, tokenEndpoint: string): CredentialTarget => ({
      clientId: settings.clientId,
      authMethod: settings.authMethod,
      issuer: metadata.issuer,
      authorizationEndpoint: metadata.authorizationEndpoint,
      tokenEndpoint,
    });

    it("an instance with another token endpoint neither uses, refreshes nor overwrites the others' login; a login made there is not used by them", async () => {
      const moved = await httpProxy();
      const oldTarget = targetOf(client, metadata.tokenEndpoint);
      const newTarget = targetOf(client, `${moved.url}${new URL(metadata.tokenEndpoint).pathname}`);
      const login = { ...(await logIn()), issuedTo: oldTarget };
      const x = await startInstance({ target: oldTarget });
      await x.manager.setTokens(login);

      const y = await startInstance({ target: newTarget, tokenEndpoint: newTarget.tokenEndpoint });
      const refused = await Promise.allSettled([y.manager.getAccessToken(), y.manager.renewAfterRejection(login.accessToken)]);
      for (const r of refused) {
        assert.equal(r.status, 'rejected');
        assert.ok(isOAuth2Error(r.reason, 'OAUTH2_LOGIN_REQUIRED'), String(r.reason));
        assert.equal((r.reason as OAuth2Error).params.reason, 'providerChanged');
      }
      assert.equal(moved.requests.length, 0, "the other instances' tokens reached the moved token endpoint");
      const stored = await x.store.get(ID);
      assert.equal(stored?.tokens.accessToken, login.accessToken);
      assert.equal(stored?.loginRequired, undefined, "the other instances' login was marked");

      // The old instances go on refreshing their login (it is alive: nobody spent its refresh token).
      const renewed = await x.manager.renewAfterRejection(login.accessToken);
      assert.notEqual(renewed.accessToken, login.accessToken);
      assert.deepEqual(renewed.issuedTo, oldTarget);
      await sleep(300);
      await assert.rejects(y.manager.getAccessToken(), (err: unknown) => isOAuth2Error(err, 'OAUTH2_LOGIN_REQUIRED'));
      assert.equal(moved.requests.length, 0);

      // A login made with the new settings replaces the entry; the old instances stop sending theirs anywhere.
      const refreshesBefore = auth.counts().token.refresh_token ?? 0;
      const second = { ...(await logIn()), issuedTo: newTarget };
      assert.equal(await y.manager.setTokens(second), true);
      await eventually(() => x.manager.state().kind === 'login-required');
      const state = x.manager.state();
      assert.equal(state.kind === 'login-required' ? state.error?.params.reason : undefined, 'awaitsDeploy');
      await assert.rejects(x.manager.renewAfterRejection(second.accessToken), (err: unknown) => isOAuth2Error(err, 'OAUTH2_LOGIN_REQUIRED'));
      assert.equal(auth.counts().token.refresh_token ?? 0, refreshesBefore, 'an old instance refreshed the new login');
      assert.equal((await y.manager.getAccessToken()).accessToken, second.accessToken);
      assert.equal((await x.store.get(ID))?.tokens.accessToken, second.accessToken);
    });

    it('client credentials: an instance with another token endpoint fetches its own token there and leaves the shared one alone', async () => {
      const moved = await httpProxy();
      const service = clientSettings({ clientId: auth.clients.service.clientId, clientSecret: auth.clients.service.clientSecret, scopes: ['api:read'] });
      const oldTarget = targetOf(service, metadata.tokenEndpoint);
      const newTarget = targetOf(service, `${moved.url}${new URL(metadata.tokenEndpoint).pathname}`);
      const x = await startInstance({ target: oldTarget, grant: 'client_credentials', client: service });
      const y = await startInstance({ target: newTarget, grant: 'client_credentials', client: service, tokenEndpoint: newTarget.tokenEndpoint });
      const shared = await x.manager.getAccessToken();

      const own = await y.manager.getAccessToken();
      assert.notEqual(own.accessToken, shared.accessToken, 'the token fetched at the other endpoint was used');
      assert.equal(moved.requests.length, 1);
      assert.deepEqual(shared.issuedTo, oldTarget, 'a client-credentials token says where it was fetched');
      assert.deepEqual(own.issuedTo, newTarget);
      assert.equal((await x.store.get(ID))?.tokens.accessToken, shared.accessToken, "the other instances' token was overwritten");
      await sleep(200);
      assert.equal((await x.manager.getAccessToken()).accessToken, shared.accessToken);
      assert.equal((await y.manager.getAccessToken()).accessToken, own.accessToken);
      assert.equal(moved.requests.length, 1, 'the moved instance fetched again');
    });
  });
});
