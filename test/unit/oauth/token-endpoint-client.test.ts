import assert from 'node:assert/strict';
import http from 'node:http';
import { buildAuthorizeUrl } from '../../../nodes/lib/oauth/authorize-url';
import { validateCallback } from '../../../nodes/lib/oauth/callback';
import { discoverProvider } from '../../../nodes/lib/oauth/discovery';
import { createPkcePair, randomToken } from '../../../nodes/lib/oauth/pkce';
import { createTokenEndpointClient, type TokenEndpointClientConfig } from '../../../nodes/lib/oauth/simple-oauth2-client';
import type { TokenEndpointClient } from '../../../nodes/lib/oauth/token-endpoint';
import type { ClientSettings, ProviderMetadata, TokenSet } from '../../../nodes/lib/types';
import { approveDeviceCode, loginThroughProvider, startAuthServer, type AuthServer } from '../../support/auth-server';
import { assertNoSecrets, clientSettings, json, rejection, startLoopbackServer } from './helpers';

const REDIRECT_URI = 'http://127.0.0.1:1880/oauth2-connection/callback';

interface Harness {
  server: AuthServer;
  metadata: ProviderMetadata;
}

async function harness(options: Parameters<typeof startAuthServer>[0] = {}): Promise<Harness> {
  const server = await startAuthServer(options);
  server.addRedirectUri(REDIRECT_URI);
  const metadata = await discoverProvider(server.issuer, { timeoutMs: 5000 });
  return { server, metadata };
}

function webClient(h: Harness, overrides: Partial<ClientSettings> = {}): ClientSettings {
  return clientSettings({
    clientId: h.server.clients.web.clientId,
    clientSecret: h.server.clients.web.clientSecret,
    authMethod: 'client_secret_basic',
    scopes: ['openid', 'email'],
    ...overrides,
  });
}

function tokenClient(h: Harness, client: ClientSettings, extra: Partial<TokenEndpointClientConfig> = {}): TokenEndpointClient {
  return createTokenEndpointClient({ metadata: h.metadata, client, timeoutMs: 5000, ...extra });
}

/** The whole browser leg: authorize URL, login and consent at the real provider, callback checks, exchange. */
async function logIn(h: Harness, client: ClientSettings): Promise<{ tokens: TokenSet; callback: URL; secrets: string[] }> {
  const pkce = createPkcePair();
  const state = randomToken();
  const nonce = randomToken();
  const url = buildAuthorizeUrl({ metadata: h.metadata, client, redirectUri: REDIRECT_URI, state, codeChallenge: pkce.codeChallenge, nonce });
  const callback = await loginThroughProvider(url);
  const { code } = validateCallback(Object.fromEntries(callback.searchParams), {
    state,
    issuer: h.metadata.issuer,
    issRequired: h.metadata.authorizationResponseIssParameterSupported === true,
  });
  const tokens = await tokenClient(h, client).exchangeCode({ code, codeVerifier: pkce.codeVerifier, redirectUri: REDIRECT_URI, nonce });
  return { tokens, callback, secrets: [code, pkce.codeVerifier] };
}

function tokenSecrets(t: TokenSet): string[] {
  return [t.accessToken, t.refreshToken ?? '', t.idToken ?? ''];
}

describe('oauth/simple-oauth2-client against oidc-provider', () => {
  describe('authorization code, refresh and revocation', () => {
    let h: Harness;
    before(async () => {
      h = await harness({ accessTokenTtlSec: 120 });
    });
    after(async () => {
      await h.server.close();
    });

    it('logs in with PKCE; the callback carries the matching iss', async () => {
      const { tokens, callback } = await logIn(h, webClient(h));
      assert.equal(callback.searchParams.get('iss'), h.server.issuer);
      assert.equal(callback.origin + callback.pathname, REDIRECT_URI);
      assert.ok(tokens.accessToken);
      assert.ok(tokens.refreshToken);
      assert.equal(tokens.tokenType, 'Bearer');
      assert.equal(tokens.expirySource, 'expires_in');
      assert.ok(Math.abs(tokens.expiresAt - (Date.now() + 120_000)) < 5000);
      assert.equal(tokens.subject, h.server.account.email);
      assert.deepEqual(tokens.scopes.sort(), ['email', 'openid']);
      const check = await h.server.validateAccessToken(tokens.accessToken);
      assert.deepEqual(check, { active: true, sub: 'alice', scope: 'openid email', clientId: h.server.clients.web.clientId });
    });

    it('works with client_secret_post and with a public client (none)', async () => {
      const post = await logIn(h, clientSettings({
        clientId: h.server.clients.webPost.clientId,
        clientSecret: h.server.clients.webPost.clientSecret,
        authMethod: 'client_secret_post',
        scopes: ['openid'],
      }));
      assert.ok(post.tokens.refreshToken);
      const pub = await logIn(h, clientSettings({ clientId: h.server.clients.public.clientId, authMethod: 'none', scopes: ['openid'] }));
      assert.equal((await h.server.validateAccessToken(pub.tokens.accessToken)).active, true);
      const refreshed = await tokenClient(h, clientSettings({ clientId: h.server.clients.public.clientId, authMethod: 'none', scopes: ['openid'] })).refresh(pub.tokens);
      assert.notEqual(refreshed.refreshToken, pub.tokens.refreshToken);
    });

    it('rejects a replayed code and a wrong verifier with OAUTH2_LOGIN_REQUIRED', async () => {
      const client = webClient(h);
      const pkce = createPkcePair();
      const state = randomToken();
      const url = buildAuthorizeUrl({ metadata: h.metadata, client, redirectUri: REDIRECT_URI, state, codeChallenge: pkce.codeChallenge });
      const callback = await loginThroughProvider(url);
      const code = callback.searchParams.get('code') ?? '';
      const wrong = createPkcePair().codeVerifier;
      const err = await rejection(() => tokenClient(h, client).exchangeCode({ code, codeVerifier: wrong, redirectUri: REDIRECT_URI }));
      assert.equal(err.code, 'OAUTH2_LOGIN_REQUIRED');
      assert.equal(err.oauthError, 'invalid_grant');
      assertNoSecrets(err, [code, wrong, pkce.codeVerifier, client.clientSecret]);
    });

    it('refreshes with rotation; reusing the old refresh token gives OAUTH2_LOGIN_REQUIRED', async () => {
      const client = webClient(h);
      const { tokens } = await logIn(h, client);
      h.server.resetCounts();
      const api = tokenClient(h, client);
      const refreshed = await api.refresh(tokens);
      assert.ok(refreshed.refreshToken);
      assert.notEqual(refreshed.refreshToken, tokens.refreshToken);
      assert.notEqual(refreshed.accessToken, tokens.accessToken);
      assert.deepEqual(refreshed.scopes.sort(), ['email', 'openid']);
      assert.equal((await h.server.validateAccessToken(refreshed.accessToken)).active, true);
      const err = await rejection(() => api.refresh(tokens));
      assert.equal(err.code, 'OAUTH2_LOGIN_REQUIRED');
      assert.equal(err.retryable, false);
      assertNoSecrets(err, [...tokenSecrets(tokens), ...tokenSecrets(refreshed), client.clientSecret]);
      assert.deepEqual(h.server.counts().token, { refresh_token: 2 });
      // Reuse revoked the whole grant at the server: the rotated token is dead too.
      await assert.rejects(api.refresh(refreshed), { code: 'OAUTH2_LOGIN_REQUIRED' });
    });

    it('refuses to refresh without a refresh token', async () => {
      const err = await rejection(() => tokenClient(h, webClient(h)).refresh({ accessToken: 'a', tokenType: 'Bearer', expiresAt: 0, expirySource: 'default', scopes: [], obtainedAt: 0 }));
      assert.equal(err.code, 'OAUTH2_LOGIN_REQUIRED');
    });

    it('revokes the refresh token first, then the access token', async () => {
      const client = webClient(h);
      const { tokens } = await logIn(h, client);
      h.server.resetCounts();
      const result = await tokenClient(h, client).revoke(tokens);
      assert.deepEqual(result, { refreshTokenRevoked: true, accessTokenRevoked: true });
      assert.deepEqual(h.server.revocationLog(), ['refresh_token', 'access_token']);
      assert.equal(h.server.counts().revocation, 2);
      assert.deepEqual(await h.server.validateAccessToken(tokens.accessToken), { active: false });
      await assert.rejects(tokenClient(h, client).refresh(tokens), { code: 'OAUTH2_LOGIN_REQUIRED' });
    });

    it('revocation never throws, even when the server is down', async () => {
      const client = webClient(h);
      const { tokens } = await logIn(h, client);
      const down = await startLoopbackServer((_req, _body, res) => json(res, 503, {}));
      try {
        const md = { ...h.metadata, revocationEndpoint: `${down.url}/revoke` };
        const result = await createTokenEndpointClient({ metadata: md, client, timeoutMs: 2000 }).revoke(tokens);
        assert.deepEqual(result, { refreshTokenRevoked: false, accessTokenRevoked: false, failure: 'refresh token: HTTP 503; access token: HTTP 503' });
        assert.deepEqual(down.requests.map((r) => new URLSearchParams(r.body).get('token_type_hint')), ['refresh_token', 'access_token']);
        const none = await createTokenEndpointClient({ metadata: { tokenEndpoint: h.metadata.tokenEndpoint }, client }).revoke(tokens);
        assert.deepEqual(none, { refreshTokenRevoked: false, accessTokenRevoked: false });
      } finally {
        await down.close();
      }
    });

    it('uses the agent it is given', async () => {
      const agent = new http.Agent({ keepAlive: true });
      let created = 0;
      const original = agent.createConnection.bind(agent);
      agent.createConnection = ((...args: Parameters<typeof original>) => {
        created += 1;
        return original(...args);
      }) as typeof agent.createConnection;
      try {
        const service = clientSettings({ clientId: h.server.clients.service.clientId, clientSecret: h.server.clients.service.clientSecret, scopes: ['api:read'] });
        const api = createTokenEndpointClient({ metadata: h.metadata, client: service, httpAgent: agent });
        await api.clientCredentials();
        await api.clientCredentials();
        assert.ok(created >= 1, 'the agent opened the connection');
        assert.ok(created <= 2);
      } finally {
        agent.destroy();
      }
    });
  });

  describe('refresh when the server returns no refresh token', () => {
    let h: Harness;
    before(async () => {
      h = await harness({ returnRefreshTokenOnRefresh: false });
    });
    after(async () => {
      await h.server.close();
    });

    it('keeps the previous refresh token, which stays usable', async () => {
      const client = webClient(h);
      const { tokens } = await logIn(h, client);
      const api = tokenClient(h, client);
      const first = await api.refresh(tokens);
      assert.equal(first.refreshToken, tokens.refreshToken);
      assert.notEqual(first.accessToken, tokens.accessToken);
      const second = await api.refresh(first);
      assert.equal(second.refreshToken, tokens.refreshToken);
    });
  });

  describe('client credentials and failures', () => {
    let h: Harness;
    before(async () => {
      h = await harness();
    });
    after(async () => {
      await h.server.close();
    });
    afterEach(() => h.server.setTokenEndpointFailure(null));

    function service(overrides: Partial<ClientSettings> = {}): ClientSettings {
      return clientSettings({ clientId: h.server.clients.service.clientId, clientSecret: h.server.clients.service.clientSecret, scopes: ['api:read'], ...overrides });
    }

    it('gets a token with client credentials', async () => {
      h.server.resetCounts();
      const tokens = await tokenClient(h, service()).clientCredentials();
      assert.equal(tokens.refreshToken, undefined);
      assert.deepEqual(tokens.scopes, ['api:read']);
      assert.deepEqual(await h.server.validateAccessToken(tokens.accessToken), {
        active: true, sub: undefined, scope: 'api:read', clientId: h.server.clients.service.clientId,
      });
      assert.deepEqual(h.server.counts().token, { client_credentials: 1 });
    });

    it('maps a wrong client secret to OAUTH2_TOKEN_REQUEST_REJECTED invalid_client, without the secret', async () => {
      const wrongSecret = 'wrong-secret-0123456789';
      const err = await rejection(() => tokenClient(h, service({ clientSecret: wrongSecret })).clientCredentials());
      assert.equal(err.code, 'OAUTH2_TOKEN_REQUEST_REJECTED');
      assert.equal(err.oauthError, 'invalid_client');
      assert.equal(err.statusCode, 401);
      assert.equal(err.retryable, false);
      assert.match(err.message, new RegExp(`127\\.0\\.0\\.1:${h.server.port}`));
      assert.match(err.message, /invalid_client/);
      assertNoSecrets(err, [wrongSecret, h.server.clients.service.clientSecret, Buffer.from(`${h.server.clients.service.clientId}:${wrongSecret}`).toString('base64')]);
      const post = await rejection(() => tokenClient(h, service({ clientSecret: wrongSecret, authMethod: 'client_secret_post' })).clientCredentials());
      assert.equal(post.code, 'OAUTH2_TOKEN_REQUEST_REJECTED');
      assertNoSecrets(post, [wrongSecret]);
    });

    it('maps 503 and 429 to a retryable OAUTH2_TOKEN_ENDPOINT_UNAVAILABLE', async () => {
      h.server.resetCounts();
      h.server.setTokenEndpointFailure({ status: 503 });
      const err = await rejection(() => tokenClient(h, service()).clientCredentials());
      assert.equal(err.code, 'OAUTH2_TOKEN_ENDPOINT_UNAVAILABLE');
      assert.equal(err.retryable, true);
      assert.equal(err.statusCode, 503);
      h.server.setTokenEndpointFailure({ status: 429, body: '{"error":"slow_down"}' });
      await assert.rejects(tokenClient(h, service()).clientCredentials(), { code: 'OAUTH2_TOKEN_ENDPOINT_UNAVAILABLE', retryable: true, statusCode: 429 });
      h.server.setTokenEndpointFailure({ status: 502, body: '<html>bad gateway</html>' });
      await assert.rejects(tokenClient(h, service()).clientCredentials(), { code: 'OAUTH2_TOKEN_ENDPOINT_UNAVAILABLE', retryable: true });
      assert.deepEqual(h.server.counts().token, { client_credentials: 3 });
    });

    it('maps a connection reset to a retryable OAUTH2_TOKEN_ENDPOINT_UNAVAILABLE', async () => {
      h.server.setTokenEndpointFailure('reset');
      const err = await rejection(() => tokenClient(h, service()).clientCredentials());
      assert.equal(err.code, 'OAUTH2_TOKEN_ENDPOINT_UNAVAILABLE');
      assert.equal(err.retryable, true);
      assertNoSecrets(err, [h.server.clients.service.clientSecret]);
      // and for the refresh grant too
      const refreshErr = await rejection(() => tokenClient(h, webClient(h)).refresh({
        accessToken: 'at', refreshToken: 'rt-value-123', tokenType: 'Bearer', expiresAt: 0, expirySource: 'default', scopes: [], obtainedAt: 0,
      }));
      assert.equal(refreshErr.code, 'OAUTH2_TOKEN_ENDPOINT_UNAVAILABLE');
      assertNoSecrets(refreshErr, ['rt-value-123', h.server.clients.web.clientSecret]);
    });

    it('maps a 400 without an OAuth body to a refusal, and a 200 that is not a token response to OAUTH2_INVALID_TOKEN_RESPONSE', async () => {
      h.server.setTokenEndpointFailure({ status: 400, body: 'nope' });
      await assert.rejects(tokenClient(h, service()).clientCredentials(), { code: 'OAUTH2_TOKEN_REQUEST_REJECTED', retryable: false, statusCode: 400 });
      h.server.setTokenEndpointFailure({ status: 200, body: '{"token_type":"Bearer"}' });
      await assert.rejects(tokenClient(h, service()).clientCredentials(), { code: 'OAUTH2_INVALID_TOKEN_RESPONSE', params: { field: 'access_token' } });
      h.server.setTokenEndpointFailure({ status: 200, body: 'not json' });
      await assert.rejects(tokenClient(h, service()).clientCredentials(), { code: 'OAUTH2_INVALID_TOKEN_RESPONSE' });
    });

    it('maps a token endpoint that never answers to a retryable timeout', async () => {
      const silent = await startLoopbackServer(() => undefined);
      try {
        const api = createTokenEndpointClient({ metadata: { tokenEndpoint: `${silent.url}/token` }, client: service(), timeoutMs: 200 });
        await assert.rejects(api.clientCredentials(), { code: 'OAUTH2_TOKEN_ENDPOINT_UNAVAILABLE', retryable: true, params: { host: new URL(silent.url).host, reason: 'timeout' } });
      } finally {
        await silent.close();
      }
    });

    it('counts a token\'s life from when its request was sent, not from when the slow answer arrived (a loopback stub delays it)', async () => {
      const slow = await startLoopbackServer((_req, _body, res) => {
        setTimeout(() => json(res, 200, { access_token: 'at', token_type: 'bearer', expires_in: 3 }), 600);
      });
      try {
        const api = createTokenEndpointClient({ metadata: { tokenEndpoint: `${slow.url}/token` }, client: service(), timeoutMs: 5000 });
        const sent = Date.now();
        const tokens = await api.clientCredentials();
        const arrived = Date.now();
        assert.ok(arrived - sent >= 590, `the answer took ${arrived - sent} ms`);
        assert.ok(tokens.obtainedAt >= sent && tokens.obtainedAt < sent + 300, `obtainedAt ${tokens.obtainedAt - sent} ms after sending`);
        assert.ok(tokens.expiresAt <= sent + 3300, `expires ${tokens.expiresAt - sent} ms after sending, not 3 s after arrival`);
      } finally {
        await slow.close();
      }
    });

    it('sends repeated resource parameters and extra token parameters without letting extras replace the grant', async () => {
      const fake = await startLoopbackServer((_req, _body, res) => json(res, 200, { access_token: 'at', token_type: 'bearer' }));
      try {
        const client = service({
          resources: ['https://a.example/', 'https://b.example/'],
          extraTokenParams: { audience: 'api', grant_type: 'password', client_secret: 'x' },
        });
        await createTokenEndpointClient({ metadata: { tokenEndpoint: `${fake.url}/token` }, client }).clientCredentials();
        const form = new URLSearchParams(fake.requests[0].body);
        assert.deepEqual(form.getAll('resource'), ['https://a.example/', 'https://b.example/']);
        assert.equal(form.get('audience'), 'api');
        assert.equal(form.get('grant_type'), 'client_credentials');
        assert.equal(form.has('client_secret'), false);
        assert.match(String(fake.requests[0].headers.authorization), /^Basic /);
      } finally {
        await fake.close();
      }
    });

    it('sends only client_id for a public client', async () => {
      const fake = await startLoopbackServer((_req, _body, res) => json(res, 200, { access_token: 'at' }));
      try {
        const client = clientSettings({ clientId: 'pub', authMethod: 'none' });
        await createTokenEndpointClient({ metadata: { tokenEndpoint: `${fake.url}/token` }, client }).clientCredentials();
        const form = new URLSearchParams(fake.requests[0].body);
        assert.deepEqual(form.getAll('client_id'), ['pub']);
        assert.equal(form.has('client_secret'), false);
        assert.equal(fake.requests[0].headers.authorization, undefined);
      } finally {
        await fake.close();
      }
    });

    it('refuses settings simple-oauth2 would reject, without quoting the secret', () => {
      assert.throws(
        () => createTokenEndpointClient({ metadata: h.metadata, client: service({ clientSecret: 'sécret-ünicode' }) }),
        (err: Error & { code?: string }) => err.code === 'OAUTH2_INVALID_CONFIG' && !err.message.includes('sécret'),
      );
      assert.throws(() => createTokenEndpointClient({ metadata: h.metadata, client: service({ clientSecret: undefined }) }), { code: 'OAUTH2_INVALID_CONFIG' });
    });
  });

  describe('device authorization grant', () => {
    let h: Harness;
    before(async () => {
      h = await harness();
    });
    after(async () => {
      await h.server.close();
    });

    const device = (h: Harness): ClientSettings => clientSettings({ clientId: h.server.clients.device.clientId, authMethod: 'none', scopes: ['openid', 'email'] });

    it('starts, stays pending, is approved by the user, and yields tokens', async () => {
      h.server.resetCounts();
      const api = tokenClient(h, device(h));
      const start = await api.startDeviceAuthorization();
      assert.match(start.userCode, /^[A-Z]{4}-[A-Z]{4}$/);
      assert.equal(start.verificationUri, `${h.server.issuer}/device`);
      assert.ok(start.verificationUriComplete?.includes(encodeURIComponent(start.userCode)) || start.verificationUriComplete?.includes(start.userCode));
      assert.ok(start.expiresAt > Date.now());
      assert.equal(start.intervalSec, 5);
      assert.deepEqual(await api.pollDeviceToken(start.deviceCode), { status: 'authorization_pending' });
      await approveDeviceCode(start.userCode, { issuer: h.server.issuer });
      const tokens = await api.pollDeviceToken(start.deviceCode);
      assert.ok(!('status' in tokens));
      assert.equal(tokens.subject, h.server.account.email);
      assert.ok(tokens.refreshToken);
      assert.equal((await h.server.validateAccessToken(tokens.accessToken)).active, true);
      assert.equal(h.server.counts().deviceAuthorization, 1);
      assert.equal(h.server.counts().token['urn:ietf:params:oauth:grant-type:device_code'], 2);
    });

    it('reports a denial as OAUTH2_ACCESS_DENIED', async () => {
      const api = tokenClient(h, device(h));
      const start = await api.startDeviceAuthorization();
      await approveDeviceCode(start.userCode, { issuer: h.server.issuer, consent: false });
      await assert.rejects(api.pollDeviceToken(start.deviceCode), { code: 'OAUTH2_ACCESS_DENIED', oauthError: 'access_denied' });
    });

    it('reports slow_down and expired_token (a real server is needed to say them on cue: loopback stub)', async () => {
      const answers = [{ error: 'slow_down' }, { error: 'expired_token' }, { error: 'invalid_grant' }];
      const stub = await startLoopbackServer((_req, _body, res) => json(res, 400, answers.shift()));
      try {
        const api = createTokenEndpointClient({ metadata: { tokenEndpoint: `${stub.url}/token` }, client: device(h) });
        assert.deepEqual(await api.pollDeviceToken('dc-secret-value'), { status: 'slow_down' });
        const expired = await rejection(() => api.pollDeviceToken('dc-secret-value'));
        assert.equal(expired.code, 'OAUTH2_DEVICE_CODE_EXPIRED');
        assertNoSecrets(expired, ['dc-secret-value']);
        await assert.rejects(api.pollDeviceToken('dc-secret-value'), { code: 'OAUTH2_LOGIN_REQUIRED' });
        const form = new URLSearchParams(stub.requests[0].body);
        assert.equal(form.get('grant_type'), 'urn:ietf:params:oauth:grant-type:device_code');
        assert.equal(form.get('client_id'), h.server.clients.device.clientId);
      } finally {
        await stub.close();
      }
    });

    it('refuses to start without a device endpoint', async () => {
      await assert.rejects(createTokenEndpointClient({ metadata: { tokenEndpoint: h.metadata.tokenEndpoint }, client: device(h) }).startDeviceAuthorization(), {
        code: 'OAUTH2_INVALID_CONFIG',
      });
    });
  });
});
