import assert from 'node:assert/strict';
import { parseConnectionConfig } from '../../../nodes/lib/connection-settings';
import { parseLookup, parseValueSources, pickValues, renderConnectionValues, valueApiBaseUrl } from '../../../nodes/lib/connection-values';
import { buildAuthorizeUrl } from '../../../nodes/lib/oauth/authorize-url';
import { normalizeTokenResponse } from '../../../nodes/lib/oauth/token-response';
import { isOAuth2Error } from '../../../nodes/lib/errors';

const now = 1_700_000_000_000;
const ctx = { now, defaultLifetimeSec: 600, requestedScopes: ['read'] };
const base = { clientId: 'c', tokenEndpoint: 'https://id.example.com/token', authorizationEndpoint: 'https://id.example.com/authorize' };
const instance = parseValueSources([{ from: 'instance_url', as: 'instanceUrl', setsApiBaseUrl: true, pattern: 'https://[a-z0-9-]+\\.my\\.example\\.com' }], 'tokenValues');

function code(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    return isOAuth2Error(err) ? `${err.code}:${String(err.params.field)}` : String(err);
  }
  return 'no error';
}

describe('connection values (provider deviations)', () => {
  it('reads tokens at a nested path and keeps the top-level values', () => {
    const tokens = normalizeTokenResponse(
      { ok: true, team: { id: 'T1' }, instance_url: 'https://acme.my.example.com', authed_user: { access_token: 'user-a', refresh_token: 'user-r', expires_in: 60, scope: 'a,b' } },
      { ...ctx, tokenPath: ['authed_user'], valueSources: instance, scopeSeparator: ',' },
    );
    assert.equal(tokens.accessToken, 'user-a');
    assert.equal(tokens.refreshToken, 'user-r');
    assert.equal(tokens.expiresAt, now + 60_000);
    assert.deepEqual(tokens.scopes, ['a', 'b']);
    assert.deepEqual(tokens.values, { instanceUrl: 'https://acme.my.example.com' });
    // A refresh answered at the top level (the path is absent there) is read there.
    assert.equal(normalizeTokenResponse({ access_token: 'top' }, { ...ctx, tokenPath: ['authed_user'] }).accessToken, 'top');
    assert.equal(code(() => normalizeTokenResponse({ ok: true }, { ...ctx, tokenPath: ['authed_user'] })), 'OAUTH2_INVALID_TOKEN_RESPONSE:authed_user');
    assert.equal(code(() => normalizeTokenResponse({ access_token: 'top', authed_user: 'x' }, { ...ctx, tokenPath: ['authed_user'] })), 'OAUTH2_INVALID_TOKEN_RESPONSE:authed_user');
  });

  it('refuses a token response whose value fails its pattern or is not a safe URL, naming the field', () => {
    for (const bad of ['https://evil.test', 'https://acme.my.example.com.evil.test', 'http://acme.my.example.com', 42]) {
      assert.equal(code(() => normalizeTokenResponse({ access_token: 'a', instance_url: bad }, { ...ctx, valueSources: instance })), 'OAUTH2_INVALID_TOKEN_RESPONSE:instance_url', String(bad));
    }
    // A URL value must be https even when its pattern would let http through (loopback aside).
    const loose = parseValueSources([{ from: 'api', as: 'api', setsApiBaseUrl: true, pattern: '.*' }], 'tokenValues');
    assert.equal(code(() => normalizeTokenResponse({ access_token: 'a', api: 'http://api.example.com' }, { ...ctx, valueSources: loose })), 'OAUTH2_INVALID_TOKEN_RESPONSE:api');
    assert.equal(code(() => normalizeTokenResponse({ access_token: 'a', api: 'https://u:p@api.example.com' }, { ...ctx, valueSources: loose })), 'OAUTH2_INVALID_TOKEN_RESPONSE:api');
    assert.deepEqual(normalizeTokenResponse({ access_token: 'a', api: 'http://127.0.0.1:8080' }, { ...ctx, valueSources: loose }).values, { api: 'http://127.0.0.1:8080' });
  });

  it('keeps values a refresh does not repeat and updates those it does', () => {
    const previous = normalizeTokenResponse({ access_token: 'a', refresh_token: 'r', instance_url: 'https://one.my.example.com' }, { ...ctx, valueSources: instance });
    const withRealm = { ...previous, values: { ...previous.values, realmId: '42' } };
    const same = normalizeTokenResponse({ access_token: 'b' }, { ...ctx, valueSources: instance, previous: withRealm });
    assert.deepEqual(same.values, { instanceUrl: 'https://one.my.example.com', realmId: '42' });
    const moved = normalizeTokenResponse({ access_token: 'c', instance_url: 'https://two.my.example.com' }, { ...ctx, valueSources: instance, previous: withRealm });
    assert.deepEqual(moved.values, { instanceUrl: 'https://two.my.example.com', realmId: '42' });
    assert.equal(moved.refreshToken, 'r');
  });

  it('takes an absolute expires_at in seconds, milliseconds or ISO form when expires_in is absent', () => {
    const at = Math.floor(now / 1000) + 900;
    for (const value of [at, String(at), at * 1000, new Date(at * 1000).toISOString()]) {
      const tokens = normalizeTokenResponse({ access_token: 'a', expires_at: value }, ctx);
      assert.equal(tokens.expiresAt, at * 1000, String(value));
      assert.equal(tokens.expirySource, 'expires_at');
    }
    assert.equal(normalizeTokenResponse({ access_token: 'a', expires_in: 60, expires_at: at }, ctx).expirySource, 'expires_in');
    assert.equal(code(() => normalizeTokenResponse({ access_token: 'a', expires_at: 'soon' }, ctx)), 'OAUTH2_INVALID_TOKEN_RESPONSE:expires_at');
  });

  it('uses a token without lifetime or refresh token until the API refuses it (user grants), and the default lifetime otherwise', () => {
    const forever = normalizeTokenResponse({ access_token: 'gho_x' }, { ...ctx, lifetimeUnknownMeansUntilRefused: true });
    assert.equal(forever.expirySource, 'none');
    assert.ok(forever.expiresAt > now + 50 * 365 * 24 * 3600 * 1000);
    assert.ok(Number.isFinite(new Date(forever.expiresAt).getTime()));
    assert.equal(normalizeTokenResponse({ access_token: 'a', refresh_token: 'r' }, { ...ctx, lifetimeUnknownMeansUntilRefused: true }).expirySource, 'default');
    assert.equal(normalizeTokenResponse({ access_token: 'a' }, ctx).expirySource, 'default');
  });

  it('checks callback values as the callback error and leaves absent ones out', () => {
    const realm = parseValueSources([{ from: 'realmId', as: 'realmId', pattern: '[0-9]+' }], 'callbackValues');
    assert.deepEqual(pickValues({ realmId: '4620816365', code: 'x' }, realm, 'OAUTH2_INVALID_INPUT'), { realmId: '4620816365' });
    assert.deepEqual(pickValues({ code: 'x' }, realm, 'OAUTH2_INVALID_INPUT'), {});
    assert.equal(code(() => pickValues({ realmId: '1;drop' }, realm, 'OAUTH2_INVALID_INPUT')), 'OAUTH2_INVALID_INPUT:realmId');
    assert.equal(code(() => pickValues({ realmId: ['1', '2'] }, realm, 'OAUTH2_INVALID_INPUT')), 'OAUTH2_INVALID_INPUT:realmId');
  });

  it('validates the settings, naming the field', () => {
    assert.equal(code(() => parseValueSources([{ from: 'instance_url', as: 'x', setsApiBaseUrl: true }], 'tokenValues')), 'OAUTH2_INVALID_CONFIG:tokenValues');
    assert.equal(code(() => parseValueSources([{ from: 'a', as: 'not a name' }], 'tokenValues')), 'OAUTH2_INVALID_CONFIG:tokenValues');
    assert.equal(code(() => parseValueSources([{ from: 'a', as: 'apiBaseUrl' }], 'tokenValues')), 'OAUTH2_INVALID_CONFIG:tokenValues');
    assert.equal(code(() => parseValueSources([{ from: 'a', pattern: '(' }], 'callbackValues')), 'OAUTH2_INVALID_CONFIG:callbackValues');
    assert.equal(code(() => parseValueSources('x', 'tokenValues')), 'OAUTH2_INVALID_CONFIG:tokenValues');
    // A credential is never a connection value (it would go into URLs, headers and msg.oauth2).
    for (const from of ['access_token', 'refresh_token', 'id_token', 'Access_Token']) {
      assert.equal(code(() => parseValueSources([{ from, as: 'x' }], 'tokenValues')), 'OAUTH2_INVALID_CONFIG:tokenValues', from);
    }
    for (const from of ['code', 'state']) {
      assert.equal(code(() => parseValueSources([{ from, as: 'x' }], 'callbackValues')), 'OAUTH2_INVALID_CONFIG:callbackValues', from);
    }
    assert.equal(code(() => parseConnectionConfig({ ...base, scopeSeparator: ';' })), 'OAUTH2_INVALID_CONFIG:scopeSeparator');
    assert.equal(code(() => parseConnectionConfig({ ...base, pkce: 'plain' })), 'OAUTH2_INVALID_CONFIG:pkce');
    assert.equal(code(() => parseConnectionConfig({ ...base, tokenPath: 'a..b' })), 'OAUTH2_INVALID_CONFIG:tokenPath');
    assert.equal(code(() => parseConnectionConfig({ ...base, lookupUrl: 'http://api.example.com/connections', lookupPick: 'tenantId' })), 'OAUTH2_INVALID_CONFIG:lookupUrl');
    assert.equal(code(() => parseConnectionConfig({ ...base, lookupUrl: 'https://api.example.com/connections' })), 'OAUTH2_INVALID_CONFIG:lookupPick');
    assert.equal(code(() => parseConnectionConfig({ ...base, lookupUrl: 'https://api.example.com/c', lookupPick: 'id', lookupHeader: 'Authorization' })), 'OAUTH2_INVALID_CONFIG:lookupHeader');
    const check = (url: string): URL => new URL(url);
    assert.deepEqual(parseLookup({ lookupUrl: 'https://api.example.com/c', lookupPick: 'tenantId', lookupHeader: 'xero-tenant-id' }, check), {
      url: 'https://api.example.com/c', pick: 'tenantId', as: 'tenantId', header: 'xero-tenant-id',
    });
    const settings = parseConnectionConfig({ ...base, provider: 'slack', scopeSeparator: ',', pkce: 'off', tokenPath: 'authed_user' });
    assert.equal(settings.provider, 'slack');
    assert.equal(settings.client.scopeSeparator, ',');
    assert.equal(settings.client.pkce, 'off');
    assert.deepEqual(settings.behaviour.tokenPath, ['authed_user']);
    // Today's flows: nothing set, standard behaviour.
    const plain = parseConnectionConfig(base);
    assert.deepEqual([plain.client.scopeSeparator, plain.client.pkce, plain.behaviour.tokenPath, plain.behaviour.lookup], [' ', 'S256', [], undefined]);
  });

  it('joins scopes with the separator and leaves PKCE out when it is off', () => {
    const settings = parseConnectionConfig({ ...base, scopes: 'chat:write channels:read', scopeSeparator: ',', pkce: 'off' });
    const metadata = { tokenEndpoint: base.tokenEndpoint, authorizationEndpoint: 'https://id.example.com/authorize?code_challenge=x' };
    const url = new URL(buildAuthorizeUrl({ metadata, client: settings.client, redirectUri: 'http://127.0.0.1/cb', state: 's', codeChallenge: 'c' }));
    assert.equal(url.searchParams.get('scope'), 'chat:write,channels:read');
    assert.equal(url.searchParams.has('code_challenge'), false);
    assert.equal(url.searchParams.has('code_challenge_method'), false);
    const standard = new URL(buildAuthorizeUrl({ metadata, client: parseConnectionConfig({ ...base, scopes: 'a b' }).client, redirectUri: 'http://127.0.0.1/cb', state: 's', codeChallenge: 'c' }));
    assert.equal(standard.searchParams.get('scope'), 'a b');
    assert.equal(standard.searchParams.get('code_challenge'), 'c');
  });

  it('renders connection values in templates and leaves other placeholders alone', () => {
    const values = { instanceUrl: 'https://acme.my.example.com', realmId: '7' };
    assert.equal(renderConnectionValues('{{{connection.instanceUrl}}}/q?r={{connection.realmId}}&s={{since}}&u={{{connection.unknown}}}', values), 'https://acme.my.example.com/q?r=7&s={{since}}&u=');
    assert.equal(renderConnectionValues('https://api.example.com/{{since}}', values), 'https://api.example.com/{{since}}');
  });

  it('lets only a checked value set the API base URL', () => {
    const behaviour = { tokenPath: [], tokenValues: instance, callbackValues: [] };
    assert.equal(valueApiBaseUrl(behaviour, { values: { instanceUrl: 'https://acme.my.example.com' } }), 'https://acme.my.example.com');
    // A stored value edited by hand, or left from other settings, is not trusted.
    assert.equal(valueApiBaseUrl(behaviour, { values: { instanceUrl: 'https://evil.test' } }), undefined);
    assert.equal(valueApiBaseUrl({ tokenPath: [], tokenValues: [], callbackValues: [] }, { values: { instanceUrl: 'https://acme.my.example.com' } }), undefined);
  });
});
