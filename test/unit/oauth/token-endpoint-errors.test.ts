/**
 * What the user reads when the token endpoint says no, and the scheme tokens are sent with. Real HTTP throughout:
 * the real authorization server (oidc-provider: a wrong client secret gives 401 invalid_client), the loopback
 * fault proxy in front of it for answers it cannot give (an empty 401, HubSpot's BAD_CLIENT_ID, Slack's
 * token_type "bot", a DPoP token), and a loopback API that records the Authorization header it receives.
 * HubSpot answers `{"status":"BAD_CLIENT_ID","message":...}` and takes the client credentials in the body
 * (https://developers.hubspot.com/docs/api-reference/legacy/authentication/oauth-tokens/v1/guide); Slack's
 * oauth.v2.access answers `token_type: "bot"` for a bot token (https://docs.slack.dev/reference/methods/oauth.v2.access).
 */
import assert from 'node:assert/strict';
import * as fsp from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { Connection } from '../../../nodes/lib/connection';
import { parseConnectionConfig } from '../../../nodes/lib/connection-settings';
import { translateError, type OAuth2Error } from '../../../nodes/lib/errors';
import { sendAuthorised } from '../../../nodes/lib/http/request';
import { discoverProvider } from '../../../nodes/lib/oauth/discovery';
import { createTokenEndpointClient } from '../../../nodes/lib/oauth/simple-oauth2-client';
import { openFileTokenStore } from '../../../nodes/lib/tokens/file-token-store';
import type { ClientSettings, ProviderMetadata } from '../../../nodes/lib/types';
import { startAuthServer, type AuthServer } from '../../support/auth-server';
import { startFaultProxy, type FaultProxy } from '../../support/fault-proxy';
import { baseRequest, startServer, type TestServer } from '../http/support';
import { clientSettings, connectionCatalog, oauthRejection } from './helpers';

const LANGS = ['en-US', 'de', 'ja'] as const;
const isTokenPost = (r: { method: string; path: string }): boolean => r.method === 'POST' && r.path === '/token';

/** The error as each language says it: translated (not the English fallback), filled, and matching `words`. */
async function assertTranslated(err: OAuth2Error, words: RegExp, hint?: RegExp): Promise<Record<string, string>> {
  const texts: Record<string, string> = {};
  for (const lang of LANGS) {
    const text = translateError(err, await connectionCatalog(lang));
    assert.notEqual(text, err.message, `${lang}: translated`);
    assert.ok(!text.includes('__'), `${lang}: ${text}`);
    assert.match(text, words, `${lang}: ${text}`);
    if (hint) assert.match(text, hint, `${lang}: ${text}`);
    texts[lang] = text;
  }
  return texts;
}

describe('token endpoint errors say what happened; tokens go out as Bearer (real HTTP)', function () {
  this.timeout(20_000);
  let auth: AuthServer;
  let metadata: ProviderMetadata;
  let proxy: FaultProxy;
  let api: TestServer;
  const service = (overrides: Partial<ClientSettings> = {}): ClientSettings =>
    clientSettings({ clientId: auth.clients.service.clientId, clientSecret: auth.clients.service.clientSecret, scopes: ['api:read'], ...overrides });
  const viaProxy = (client: ClientSettings) =>
    createTokenEndpointClient({ metadata: { ...metadata, tokenEndpoint: `${proxy.url}/token` }, client, timeoutMs: 5000 });

  before(async () => {
    auth = await startAuthServer({ accessTokenTtlSec: 3600 });
    metadata = await discoverProvider(auth.issuer, { timeoutMs: 5000 });
    proxy = await startFaultProxy(auth.issuer);
    api = await startServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"ok":true}');
    });
  });
  after(async () => {
    await api?.close();
    await proxy?.close();
    await auth?.close();
  });
  beforeEach(() => {
    proxy.clear();
    proxy.resetCounts();
  });

  it('invalid_client from the real provider: HTTP 401, the code, its description and the client-auth hint', async () => {
    const err = await oauthRejection(createTokenEndpointClient({ metadata, client: service({ clientSecret: 'not-the-secret-0123' }) }).clientCredentials());
    assert.equal(err.code, 'OAUTH2_TOKEN_REQUEST_REJECTED');
    const texts = await assertTranslated(err, /invalid_client \(HTTP 401 invalid_client: "[^"]+"\)/, /client_secret_post/);
    assert.match(texts['en-US'], /^The token endpoint refused the request: invalid_client .*: check the client id, secret and client auth method/);
    for (const text of Object.values(texts)) assert.ok(!text.includes('not-the-secret-0123'));
  });

  it('an empty 401 (no OAuth error body): a refusal with the status and the client-auth hint, not a bare "not a valid token response"', async () => {
    proxy.fault({ kind: 'status', status: 401, body: '', contentType: 'text/plain' }, { match: isTokenPost });
    const err = await oauthRejection(viaProxy(service()).clientCredentials());
    assert.equal(err.code, 'OAUTH2_TOKEN_REQUEST_REJECTED');
    assert.equal(err.statusCode, 401);
    await assertTranslated(err, /HTTP 401/, /client_secret_post/);
    proxy.fault({ kind: 'status', status: 403, body: '' }, { match: isTokenPost });
    await assertTranslated(await oauthRejection(viaProxy(service()).clientCredentials()), /HTTP 403/, /client_secret_post/);
  });

  it("HubSpot's 400 BAD_CLIENT_ID to a login with Basic auth: a refusal naming status, code and message, with the hint", async () => {
    proxy.fault({ kind: 'status', status: 400, body: JSON.stringify({ status: 'BAD_CLIENT_ID', message: 'missing or unknown client id' }) }, { match: isTokenPost });
    const web = clientSettings({ clientId: auth.clients.web.clientId, clientSecret: auth.clients.web.clientSecret });
    const err = await oauthRejection(viaProxy(web).exchangeCode({ code: 'a-code', codeVerifier: 'v'.repeat(43), redirectUri: 'http://127.0.0.1:1880/cb' }));
    assert.equal(err.code, 'OAUTH2_TOKEN_REQUEST_REJECTED', err.message);
    assert.equal(err.oauthError, 'BAD_CLIENT_ID');
    const texts = await assertTranslated(err, /HTTP 400 BAD_CLIENT_ID: "missing or unknown client id"/, /client_secret_post/);
    assert.doesNotMatch(texts['en-US'], /not a valid token response/);
  });

  it('a 400 that is neither a token nor an OAuth error: a refusal naming the status, and where to look', async () => {
    proxy.fault({ kind: 'status', status: 400, body: 'nope', contentType: 'text/plain' }, { match: isTokenPost });
    const err = await oauthRejection(viaProxy(service()).clientCredentials());
    assert.equal(err.code, 'OAUTH2_TOKEN_REQUEST_REJECTED');
    const texts = await assertTranslated(err, /HTTP 400/);
    assert.match(texts['en-US'], /check the token URL/);
    // A 2xx that is neither is still a malformed answer.
    proxy.fault({ kind: 'status', status: 200, body: 'nope', contentType: 'text/plain' }, { match: isTokenPost });
    assert.equal((await oauthRejection(viaProxy(service()).clientCredentials())).code, 'OAUTH2_INVALID_TOKEN_RESPONSE');
  });

  for (const tokenType of ['bot', 'bearer', 'BEARER']) {
    it(`token_type "${tokenType}": the API gets Authorization: Bearer`, async () => {
      const accessToken = `xoxb-${tokenType}-0123456789abcdef`;
      proxy.fault({ kind: 'body', body: JSON.stringify({ ok: true, access_token: accessToken, token_type: tokenType, expires_in: 3600 }) }, { match: isTokenPost });
      const settings = parseConnectionConfig(
        { grantType: 'client_credentials', tokenEndpoint: `${proxy.url}/token`, clientId: auth.clients.service.clientId, apiBaseUrl: api.origin },
        auth.clients.service.clientSecret,
      );
      const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'oauth2-bearer-'));
      const store = await openFileTokenStore({ filePath: path.join(dir, 'tokens.db'), secret: 'a-secret-for-the-bearer-tests-0123' });
      const connection = new Connection({ id: `conn-${tokenType}`, settings, store });
      try {
        const seenBefore = api.seen.length;
        const res = await sendAuthorised(baseRequest(`${api.origin}/records`), { authorizer: connection, agents: connection.agents });
        assert.equal(res.statusCode, 200);
        assert.equal(api.seen[seenBefore]?.headers.authorization, `Bearer ${accessToken}`);
      } finally {
        connection.close();
        await store.flush();
        await fsp.rm(dir, { recursive: true, force: true });
      }
    });
  }

  it('a DPoP token: a clear, translated error when it is issued (login or client credentials), never a header', async () => {
    proxy.fault({ kind: 'body', body: JSON.stringify({ access_token: 'dpop-bound-token-0123', token_type: 'DPoP', expires_in: 3600 }) }, { match: isTokenPost });
    const cc = await oauthRejection(viaProxy(service()).clientCredentials());
    assert.equal(cc.code, 'OAUTH2_INVALID_TOKEN_RESPONSE');
    assert.equal(cc.params.field, 'token_type');
    await assertTranslated(cc, /DPoP/, /RFC 6750/);
    const web = clientSettings({ clientId: auth.clients.web.clientId, clientSecret: auth.clients.web.clientSecret });
    const login = await oauthRejection(viaProxy(web).exchangeCode({ code: 'a-code', codeVerifier: 'v'.repeat(43), redirectUri: 'http://127.0.0.1:1880/cb' }));
    assert.equal(login.code, 'OAUTH2_INVALID_TOKEN_RESPONSE');
    assert.ok(!login.message.includes('dpop-bound-token-0123'));
  });
});
