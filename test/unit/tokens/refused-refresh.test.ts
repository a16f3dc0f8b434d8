/**
 * A refused refresh, in every shape servers use, ends in "login required" (invariant 9), and outages stay
 * transient with the token endpoint's Retry-After honoured. The token manager with the real token-endpoint
 * client and the encrypted file store, against the real authorization server (oidc-provider: a revoked refresh
 * token gives invalid_grant). The shapes it cannot produce come from the loopback fault proxy in front of it, as
 * the providers document them:
 * - an empty HTTP 400 (an SSO server's answer to a revoked refresh token);
 * - HubSpot: 400 {"status":"BAD_REFRESH_TOKEN","message":"missing or invalid refresh token"}
 *   (https://developers.hubspot.com/docs/api-reference/legacy/authentication/oauth-tokens/v1/guide,
 *   https://nango.dev/blog/hubspot-oauth-bad-refresh-token);
 * - GitHub: 200 with error=bad_refresh_token, form-encoded by default, JSON when asked
 *   (https://docs.github.com/en/apps/creating-github-apps/authenticating-with-a-github-app/refreshing-user-access-tokens);
 * - Slack: 200 {"ok":false,"error":"invalid_refresh_token"} (https://docs.slack.dev/authentication/using-token-rotation,
 *   https://docs.slack.dev/reference/methods/oauth.v2.access: Web API errors are HTTP 200 with ok false).
 */
import assert from 'node:assert/strict';
import * as fsp from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { translateError, type OAuth2Error } from '../../../nodes/lib/errors';
import { discoverProvider } from '../../../nodes/lib/oauth/discovery';
import { createTokenEndpointClient } from '../../../nodes/lib/oauth/simple-oauth2-client';
import { openFileTokenStore } from '../../../nodes/lib/tokens/file-token-store';
import { TokenManager, type ConnectionState } from '../../../nodes/lib/tokens/token-manager';
import type { ProviderMetadata, TokenSet } from '../../../nodes/lib/types';
import { startAuthServer, type AuthServer } from '../../support/auth-server';
import { startFaultProxy, type FaultMode, type FaultProxy } from '../../support/fault-proxy';
import { loginTokens } from '../../support/login-tokens';
import { clientSettings, connectionCatalog, oauthRejection } from '../oauth/helpers';

const REDIRECT_URI = 'http://127.0.0.1:1880/oauth2-connection/callback';
const ID = 'conn-refused';
const isTokenPost = (r: { method: string; path: string }): boolean => r.method === 'POST' && r.path === '/token';
const LANGS = ['en-US', 'de', 'ja'] as const;

const hubspot = JSON.stringify({ status: 'BAD_REFRESH_TOKEN', message: 'missing or invalid refresh token' });
const REFUSALS: Array<{ name: string; mode: FaultMode; words: RegExp; error?: string }> = [
  { name: 'HTTP 400 with an empty body', mode: { kind: 'status', status: 400, body: '', contentType: 'text/plain' }, words: /HTTP 400\b/ },
  { name: 'HTTP 400 with an empty JSON body', mode: { kind: 'status', status: 400, body: '' }, words: /HTTP 400\b/ },
  { name: "HubSpot's 400 BAD_REFRESH_TOKEN", mode: { kind: 'status', status: 400, body: hubspot }, words: /HTTP 400 BAD_REFRESH_TOKEN: "missing or invalid refresh token"/, error: 'BAD_REFRESH_TOKEN' },
  {
    name: "GitHub's 200 error=bad_refresh_token (form-encoded)",
    mode: {
      kind: 'body',
      status: 200,
      contentType: 'application/x-www-form-urlencoded; charset=utf-8',
      body: 'error=bad_refresh_token&error_description=The+refresh+token+passed+is+incorrect+or+expired.&error_uri=https%3A%2F%2Fdocs.github.com',
    },
    words: /HTTP 200 bad_refresh_token: "The refresh token passed is incorrect or expired\."/,
    error: 'bad_refresh_token',
  },
  {
    name: "GitHub's 200 error=bad_refresh_token (JSON)",
    mode: { kind: 'body', status: 200, body: JSON.stringify({ error: 'bad_refresh_token', error_description: 'The refresh token passed is incorrect or expired.' }) },
    words: /bad_refresh_token: "The refresh token passed is incorrect or expired\."/,
    error: 'bad_refresh_token',
  },
  { name: "Slack's 200 ok:false invalid_refresh_token", mode: { kind: 'body', status: 200, body: JSON.stringify({ ok: false, error: 'invalid_refresh_token' }) }, words: /invalid_refresh_token/, error: 'invalid_refresh_token' },
];

describe('token manager: a refused refresh in any shape is login required (real provider, fault proxy)', function () {
  this.timeout(30_000);
  let auth: AuthServer;
  let metadata: ProviderMetadata;
  let dir: string;
  let proxy: FaultProxy;
  let manager: TokenManager | undefined;
  const web = (): ReturnType<typeof clientSettings> =>
    clientSettings({ clientId: auth.clients.web.clientId, clientSecret: auth.clients.web.clientSecret, scopes: ['openid', 'email'] });

  before(async () => {
    auth = await startAuthServer({ accessTokenTtlSec: 3600, rotateRefreshToken: true });
    auth.addRedirectUri(REDIRECT_URI);
    metadata = await discoverProvider(auth.issuer, { timeoutMs: 5000 });
    proxy = await startFaultProxy(auth.issuer);
  });
  after(async () => {
    await proxy?.close();
    await auth?.close();
  });
  beforeEach(async () => {
    dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'oauth2-refused-'));
    proxy.clear();
    proxy.resetCounts();
  });
  afterEach(async () => {
    manager?.close();
    manager = undefined;
    await fsp.rm(dir, { recursive: true, force: true });
  });

  async function loggedIn(): Promise<{ manager: TokenManager; tokens: TokenSet; states: ConnectionState[]; sleeps: number[] }> {
    const tokens = await loginTokens(metadata, web(), REDIRECT_URI);
    const sleeps: number[] = [];
    const made = new TokenManager({
      connectionId: ID,
      grant: 'authorization_code',
      client: createTokenEndpointClient({ metadata: { ...metadata, tokenEndpoint: `${proxy.url}/token` }, client: web(), timeoutMs: 5000 }),
      store: await openFileTokenStore({ filePath: path.join(dir, 'tokens.db'), secret: 'a-secret-for-the-refusal-tests-01' }),
      skewMs: 0,
      retry: { maxAttempts: 3, baseDelayMs: 40, maxDelayMs: 80, maxRetryAfterMs: 5000 },
      random: () => 0.5,
      // The waits are recorded, not waited: Retry-After values are checked, not sat out.
      sleep: async (ms) => void sleeps.push(ms),
    });
    manager = made;
    const states: ConnectionState[] = [];
    made.on('state', (s: ConnectionState) => states.push(s));
    await made.init();
    await made.setTokens(tokens);
    proxy.resetCounts();
    return { manager: made, tokens, states, sleeps };
  }

  /** No token call, whatever callers do, until a new login. */
  async function assertNoMoreTokenCalls(m: TokenManager, tokens: TokenSet, expected: OAuth2Error): Promise<void> {
    const before = proxy.count(isTokenPost);
    for (let i = 0; i < 5; i += 1) {
      assert.equal(await oauthRejection(m.getAccessToken()), expected);
      assert.equal(await oauthRejection(m.renewAfterRejection(tokens.accessToken)), expected);
    }
    assert.equal(proxy.count(isTokenPost), before, 'no token call after the refusal');
  }

  for (const c of REFUSALS) {
    it(`${c.name}: login required in the provider's words, translated, and no further token call until a login`, async () => {
      const { manager: m, tokens, states } = await loggedIn();
      proxy.fault(c.mode, { match: isTokenPost });

      const err = await oauthRejection(m.renewAfterRejection(tokens.accessToken));
      assert.equal(err.code, 'OAUTH2_LOGIN_REQUIRED', err.message);
      assert.equal(err.params.reason, 'refreshRefused');
      assert.equal(err.oauthError, c.error);
      assert.match(err.message, c.words);
      assert.equal(proxy.count(isTokenPost), 1, 'one token call, no retry');
      const state = m.state();
      assert.equal(state.kind, 'login-required');
      assert.equal(state.kind === 'login-required' ? state.error : undefined, err, 'the state says why');
      assert.deepEqual(states.map((s) => s.kind).slice(-2), ['refreshing', 'login-required']);
      for (const lang of LANGS) {
        const text = translateError(err, await connectionCatalog(lang));
        assert.match(text, c.words, `${lang}: ${text}`);
        assert.ok(!text.includes('__'), `${lang}: ${text}`);
        assert.notEqual(text, err.message, `${lang}: translated, not the English fallback`);
      }
      assert.ok(!err.message.includes(tokens.refreshToken ?? '-'), 'never the refresh token');
      await assertNoMoreTokenCalls(m, tokens, err);

      // A new login ends it.
      proxy.clear();
      const again = await loginTokens(metadata, web(), REDIRECT_URI);
      await m.setTokens(again);
      assert.equal(m.state().kind, 'ready');
      const renewed = await m.renewAfterRejection(again.accessToken);
      assert.notEqual(renewed.accessToken, again.accessToken);
    });
  }

  it('a refresh token revoked at the real provider: invalid_grant, login required with its words, no further token call', async () => {
    const { manager: m, tokens } = await loggedIn();
    const client = createTokenEndpointClient({ metadata, client: web(), timeoutMs: 5000 });
    assert.deepEqual(await client.revoke(tokens), { refreshTokenRevoked: true, accessTokenRevoked: true });

    const err = await oauthRejection(m.renewAfterRejection(tokens.accessToken));
    assert.equal(err.code, 'OAUTH2_LOGIN_REQUIRED', err.message);
    assert.equal(err.oauthError, 'invalid_grant');
    assert.equal(err.params.reason, 'refreshRefused');
    assert.match(err.message, /HTTP 400 invalid_grant: "/);
    assert.equal(proxy.count(isTokenPost), 1);
    const de = translateError(err, await connectionCatalog('de'));
    assert.match(de, /^Anmeldung erforderlich: .*HTTP 400 invalid_grant/);
    await assertNoMoreTokenCalls(m, tokens, err);
  });

  it("a client error on a refresh (HubSpot's BAD_CLIENT_ID) is a refusal to correct, naming status, code, message and the client-auth hint", async () => {
    const { manager: m, tokens } = await loggedIn();
    proxy.fault({ kind: 'status', status: 400, body: JSON.stringify({ status: 'BAD_CLIENT_ID', message: 'missing or unknown client id' }) }, { match: isTokenPost });
    const err = await oauthRejection(m.renewAfterRejection(tokens.accessToken));
    assert.equal(err.code, 'OAUTH2_TOKEN_REQUEST_REJECTED', err.message);
    assert.equal(err.params.error, 'BAD_CLIENT_ID');
    assert.equal(m.state().kind, 'refused');
    assert.equal(proxy.count(isTokenPost), 1);
    const en = translateError(err, await connectionCatalog('en-US'));
    assert.equal(
      en,
      'The token endpoint refused the request: BAD_CLIENT_ID (HTTP 400 BAD_CLIENT_ID: "missing or unknown client id"): check the client id, secret and client auth method (Client auth: some providers need client_secret_post).',
    );
    assert.doesNotMatch(en, /not a valid token response/);
    for (const lang of ['de', 'ja']) assert.match(translateError(err, await connectionCatalog(lang)), /client_secret_post/);
  });

  describe('outages stay transient, and Retry-After is honoured', () => {
    it('429 with Retry-After in seconds: waits what the server asked, then renews', async () => {
      const { manager: m, tokens, sleeps } = await loggedIn();
      proxy.fault({ kind: 'status', status: 429, headers: { 'retry-after': '3' }, body: '' }, { times: 1, match: isTokenPost });
      const renewed = await m.renewAfterRejection(tokens.accessToken);
      assert.notEqual(renewed.accessToken, tokens.accessToken);
      assert.deepEqual(sleeps, [3000], 'the Retry-After, not the backoff');
      assert.equal(proxy.count(isTokenPost), 2);
      assert.equal(m.state().kind, 'ready');
    });

    it('503 with Retry-After as an HTTP date: waits until then', async () => {
      const { manager: m, tokens, sleeps } = await loggedIn();
      const at = new Date(Date.now() + 4000).toUTCString();
      proxy.fault({ kind: 'status', status: 503, headers: { 'retry-after': at }, body: '{"error":"temporarily_unavailable"}' }, { times: 1, match: isTokenPost });
      await m.renewAfterRejection(tokens.accessToken);
      assert.equal(sleeps.length, 1);
      assert.ok(sleeps[0] > 2000 && sleeps[0] <= 4000, `waited ${sleeps[0]} ms`);
    });

    it('a Retry-After longer than a renewal waits: no retry now, and no token call before it ends', async () => {
      const { manager: m, tokens, sleeps } = await loggedIn();
      proxy.fault({ kind: 'status', status: 429, headers: { 'retry-after': '120' }, body: '{"error":"slow_down"}' }, { match: isTokenPost });
      const err = await oauthRejection(m.renewAfterRejection(tokens.accessToken));
      assert.equal(err.code, 'OAUTH2_TOKEN_ENDPOINT_UNAVAILABLE');
      assert.equal(err.params.retryAfterMs, 120_000);
      assert.deepEqual(sleeps, []);
      assert.equal(m.state().kind, 'unavailable');
      for (let i = 0; i < 5; i += 1) assert.equal(await oauthRejection(m.renewAfterRejection(tokens.accessToken)), err);
      assert.equal(proxy.count(isTokenPost), 1, 'the server asked to be left alone');
    });

    it('5xx and network failures without Retry-After: the backoff of retry.ts, then the renewal works (not login required)', async () => {
      const { manager: m, tokens, sleeps } = await loggedIn();
      proxy.fault({ kind: 'status', status: 502, body: '' }, { times: 2, match: isTokenPost });
      const renewed = await m.renewAfterRejection(tokens.accessToken);
      assert.notEqual(renewed.accessToken, tokens.accessToken);
      assert.deepEqual(sleeps, [20, 40], 'full jitter backoff of retry.ts (random 0.5)');
      assert.equal(proxy.count(isTokenPost), 3);
    });
  });
});
