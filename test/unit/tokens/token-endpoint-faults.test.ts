/**
 * The token manager against the real authorization server (oidc-provider, rotating refresh tokens: a spent
 * refresh token presented again gets invalid_grant and ends the whole grant), with the real token-endpoint
 * client and the encrypted file store. Faults the server cannot make go through the loopback fault proxy: a
 * refresh answer lost after the provider acted on the request, and a token endpoint refusing connections.
 */
import assert from 'node:assert/strict';
import * as fsp from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { discoverProvider } from '../../../nodes/lib/oauth/discovery';
import { createTokenEndpointClient } from '../../../nodes/lib/oauth/simple-oauth2-client';
import { openFileTokenStore } from '../../../nodes/lib/tokens/file-token-store';
import { TokenManager, type ConnectionState, type TokenManagerOptions } from '../../../nodes/lib/tokens/token-manager';
import type { ClientSettings, GrantType, ProviderMetadata, TokenSet } from '../../../nodes/lib/types';
import { startAuthServer, type AuthServer } from '../../support/auth-server';
import { faults, startFaultProxy, type FaultProxy } from '../../support/fault-proxy';
import { loginTokens } from '../../support/login-tokens';
import { clientSettings, oauthRejection as rejection } from '../oauth/helpers';

const REDIRECT_URI = 'http://127.0.0.1:1880/oauth2-connection/callback';
const ID = 'conn-faults';
const PAUSE_MS = 300;
/** The client's timeout: a stalled answer becomes a timeout this fast. */
const TIMEOUT_MS = 800;

const isTokenPost = (r: { method: string; path: string }): boolean => r.method === 'POST' && r.path === '/token';

describe('token manager: refusals and lost refresh answers (real provider)', function () {
  this.timeout(30_000);
  let auth: AuthServer;
  let metadata: ProviderMetadata;
  let web: ClientSettings;
  let dir: string;
  let proxy: FaultProxy | undefined;
  let manager: TokenManager | undefined;

  before(async () => {
    auth = await startAuthServer({ accessTokenTtlSec: 3600, rotateRefreshToken: true });
    auth.addRedirectUri(REDIRECT_URI);
    metadata = await discoverProvider(auth.issuer, { timeoutMs: 5000 });
    web = clientSettings({ clientId: auth.clients.web.clientId, clientSecret: auth.clients.web.clientSecret, scopes: ['openid', 'email'] });
  });
  after(async () => {
    await auth?.close();
  });
  beforeEach(async () => {
    dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'oauth2-faults-'));
    auth.resetCounts();
  });
  afterEach(async () => {
    manager?.close();
    manager = undefined;
    await proxy?.close();
    proxy = undefined;
    await fsp.rm(dir, { recursive: true, force: true });
  });

  const logIn = (): Promise<TokenSet> => loginTokens(metadata, web, REDIRECT_URI);

  interface Made {
    manager: TokenManager;
    states: ConnectionState[];
    /** Every wait between two token-endpoint attempts, in ms. */
    sleeps: number[];
  }

  async function makeManager(o: {
    grant?: GrantType;
    client?: ClientSettings;
    tokenEndpoint: string;
    onSleep?: (n: number) => Promise<void>;
    extra?: Partial<TokenManagerOptions>;
  }): Promise<Made> {
    const sleeps: number[] = [];
    const made = new TokenManager({
      connectionId: ID,
      grant: o.grant ?? 'authorization_code',
      client: createTokenEndpointClient({ metadata: { ...metadata, tokenEndpoint: o.tokenEndpoint }, client: o.client ?? web, timeoutMs: TIMEOUT_MS }),
      store: await openFileTokenStore({ filePath: path.join(dir, 'tokens.db'), secret: 'a-secret-for-the-fault-tests-0123' }),
      skewMs: 0,
      retry: { maxAttempts: 3, baseDelayMs: 50, maxDelayMs: 100 },
      random: () => 0.5,
      lostAnswerPauseMs: PAUSE_MS,
      sleep: async (ms) => {
        sleeps.push(ms);
        await o.onSleep?.(sleeps.length);
        await new Promise((r) => setTimeout(r, ms));
      },
      ...o.extra,
    });
    manager = made;
    const states: ConnectionState[] = [];
    made.on('state', (s: ConnectionState) => states.push(s));
    await made.init();
    return { manager: made, states, sleeps };
  }

  for (const [what, fault] of [
    ['timed out', faults.loseAnswer()],
    ['cut', faults.loseAnswer(0)],
  ] as const) {
    it(`a refresh answer ${what} after the provider rotated: one retry after a pause, invalid_grant, login required naming the lost answer`, async () => {
      const tokens = await logIn();
      proxy = await startFaultProxy(auth.issuer);
      const m = await makeManager({ tokenEndpoint: `${proxy.url}/token` });
      await m.manager.setTokens(tokens);
      auth.resetCounts();
      proxy.fault(fault, { times: 1, match: isTokenPost });

      const err = await rejection(m.manager.renewAfterRejection(tokens.accessToken));
      assert.equal(err.code, 'OAUTH2_LOGIN_REQUIRED', err.message);
      assert.equal(err.params.reason, 'refreshAnswerLost');
      assert.equal(err.oauthError, 'invalid_grant');
      assert.match(err.message, /answer to a refresh was lost/);
      // The provider saw both: the first rotated the refresh token, the retry presented the spent one.
      assert.equal(auth.counts().token.refresh_token, 2);
      assert.deepEqual(proxy.requests.filter(isTokenPost).map((r) => r.answer), ['lose-answer', 'pass']);
      assert.deepEqual(m.sleeps, [PAUSE_MS], 'exactly one retry, after the lost-answer pause');
      // Reuse ended the grant at the provider: even the access token of the login is dead now.
      assert.equal((await auth.validateAccessToken(tokens.accessToken)).active, false);

      const state = m.manager.state();
      assert.equal(state.kind, 'login-required');
      assert.equal(state.kind === 'login-required' ? state.error?.params.reason : undefined, 'refreshAnswerLost');
      // Later callers get the same explanation, and the token endpoint is not called again.
      const again = await rejection(m.manager.getAccessToken());
      assert.equal(again.code, 'OAUTH2_LOGIN_REQUIRED');
      assert.equal(again.params.reason, 'refreshAnswerLost');
      assert.equal(auth.counts().token.refresh_token, 2);
    });
  }

  it('the retry of a lost refresh answer lost too: no third attempt; the next refresh names the lost answer', async () => {
    const tokens = await logIn();
    proxy = await startFaultProxy(auth.issuer);
    const m = await makeManager({ tokenEndpoint: `${proxy.url}/token` });
    await m.manager.setTokens(tokens);
    auth.resetCounts();
    proxy.fault(faults.loseAnswer(0), { times: 2, match: isTokenPost });

    const err = await rejection(m.manager.renewAfterRejection(tokens.accessToken));
    assert.equal(err.code, 'OAUTH2_TOKEN_ENDPOINT_UNAVAILABLE', err.message);
    assert.equal(proxy.count(isTokenPost), 2, 'three attempts allowed, but at most one retry after a lost answer');
    assert.deepEqual(m.sleeps, [PAUSE_MS]);
    assert.equal(m.manager.state().kind, 'unavailable');

    // The next caller tries again with the refresh token it holds, which the provider has rotated twice since.
    const later = await rejection(m.manager.renewAfterRejection(tokens.accessToken));
    assert.equal(later.code, 'OAUTH2_LOGIN_REQUIRED');
    assert.equal(later.params.reason, 'refreshAnswerLost');
    assert.equal(auth.counts().token.refresh_token, 3);
  });

  it('a refresh that never reached the server (connection refused) is retried as any outage, and works', async () => {
    const tokens = await logIn();
    // A port nothing listens on: every attempt is refused, until the proxy comes up there before the third.
    const placeholder = await startFaultProxy(auth.issuer);
    const port = placeholder.port;
    await placeholder.close();
    const m = await makeManager({
      tokenEndpoint: `http://127.0.0.1:${port}/token`,
      onSleep: async (n) => {
        if (n === 2) proxy = await startFaultProxy(auth.issuer, port);
      },
    });
    await m.manager.setTokens(tokens);
    auth.resetCounts();

    const renewed = await m.manager.renewAfterRejection(tokens.accessToken);
    assert.notEqual(renewed.accessToken, tokens.accessToken);
    assert.notEqual(renewed.refreshToken, tokens.refreshToken);
    assert.equal(m.sleeps.length, 2, 'two retries: the policy, not the lost-answer limit');
    assert.ok(m.sleeps.every((ms) => ms !== PAUSE_MS), 'backoff, not the lost-answer pause');
    assert.equal(auth.counts().token.refresh_token, 1, 'the provider saw one refresh only');
    assert.equal(m.manager.state().kind, 'ready');
    assert.equal((await auth.validateAccessToken(renewed.accessToken)).active, true);
  });

  it('client credentials refused (invalid_client): state refused, requests fail fast with the same error until the backoff passes', async () => {
    const clock = { offset: 0 };
    const m = await makeManager({
      grant: 'client_credentials',
      client: clientSettings({ clientId: auth.clients.service.clientId, clientSecret: 'not-the-service-secret', scopes: ['api:read'] }),
      tokenEndpoint: metadata.tokenEndpoint,
      extra: { now: () => Date.now() + clock.offset, refusalBackoff: { baseMs: 10_000, maxMs: 60_000 } },
    });
    const ccCalls = (): number => auth.counts().token.client_credentials ?? 0;

    const first = await rejection(m.manager.getAccessToken());
    assert.equal(first.code, 'OAUTH2_TOKEN_REQUEST_REJECTED');
    assert.equal(first.oauthError, 'invalid_client');
    assert.equal(ccCalls(), 1);
    const state = m.manager.state();
    assert.equal(state.kind, 'refused');
    assert.equal(state.kind === 'refused' ? state.error : undefined, first);
    const retryAt = state.kind === 'refused' ? state.retryAt : 0;
    assert.ok(retryAt > Date.now() + 5_000, 'the backoff lasts');
    assert.equal(m.manager.snapshot().retryAt, retryAt, 'the dialog learns when it is asked again');

    for (let i = 0; i < 5; i += 1) {
      assert.equal(await rejection(m.manager.getAccessToken()), first, 'the same error, at once');
    }
    assert.equal(await rejection(m.manager.renewAfterRejection('whatever')), first);
    assert.equal(ccCalls(), 1, 'no token call during the backoff');

    // The backoff passed: asked again, refused again, and the next backoff is longer.
    clock.offset = 10_001;
    const second = await rejection(m.manager.getAccessToken());
    assert.equal(second.code, 'OAUTH2_TOKEN_REQUEST_REJECTED');
    assert.equal(ccCalls(), 2);
    const next = m.manager.state();
    assert.equal(next.kind, 'refused');
    assert.ok(next.kind === 'refused' && next.retryAt - (Date.now() + clock.offset) > 15_000, 'doubled');
  });
});
