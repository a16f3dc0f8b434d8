import assert from 'node:assert/strict';
import { parseConnectionConfig, parseEndpointUrl, parseExpiredStatuses } from '../../../nodes/lib/connection-settings';
import { OAuth2Error, translateError } from '../../../nodes/lib/errors';

const base = {
  grantType: 'authorization_code',
  authorizationEndpoint: 'https://auth.example.com/authorize',
  tokenEndpoint: 'https://auth.example.com/token',
  clientId: 'client-1',
};

function fieldOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof OAuth2Error);
    assert.equal(err.code, 'OAUTH2_INVALID_CONFIG');
    return String(err.params.field);
  }
  assert.fail('expected OAUTH2_INVALID_CONFIG');
}

describe('connection settings', () => {
  it('parses a complete configuration', () => {
    const s = parseConnectionConfig(
      {
        ...base,
        scopes: 'openid  offline_access\napi',
        resources: 'https://api.example.com, urn:x',
        authorizeParams: [{ k: 'access_type', v: 'offline' }],
        tokenParams: [{ k: 'audience', v: 'api' }],
        apiBaseUrl: 'https://api.example.com/v1',
        allowedOrigins: 'https://files.example.com https://cdn.example.com',
        expiredStatuses: '401, 403',
        refreshSkewSec: '30',
        redirectUri: 'https://nr.example.com/admin/oauth2-connection/callback',
        issParameterSupported: true,
      },
      'secret',
    );
    assert.deepEqual(s.client.scopes, ['openid', 'offline_access', 'api']);
    assert.deepEqual(s.client.resources, ['https://api.example.com', 'urn:x']);
    assert.deepEqual(s.client.extraAuthorizeParams, { access_type: 'offline' });
    assert.deepEqual(s.client.extraTokenParams, { audience: 'api' });
    assert.deepEqual(s.expiredStatuses, [401, 403]);
    assert.equal(s.refreshSkewMs, 30_000);
    assert.equal(s.client.clientSecret, 'secret');
    assert.equal(s.metadata.authorizationResponseIssParameterSupported, true);
    assert.deepEqual(s.allowedOrigins, ['https://files.example.com', 'https://cdn.example.com']);
  });

  it('names the field of each invalid value', () => {
    assert.equal(fieldOf(() => parseConnectionConfig({ ...base, clientId: ' ' })), 'clientId');
    assert.equal(fieldOf(() => parseConnectionConfig({ ...base, grantType: 'password' })), 'grantType');
    assert.equal(fieldOf(() => parseConnectionConfig({ ...base, tokenEndpoint: 'http://auth.example.com/token' })), 'tokenEndpoint');
    assert.equal(fieldOf(() => parseConnectionConfig({ ...base, tokenEndpoint: '', issuer: '' })), 'tokenEndpoint');
    assert.equal(fieldOf(() => parseConnectionConfig({ ...base, authorizationEndpoint: '' })), 'authorizationEndpoint');
    assert.equal(fieldOf(() => parseConnectionConfig({ ...base, expiredStatuses: '401,200' })), 'expiredStatuses');
    assert.equal(fieldOf(() => parseConnectionConfig({ ...base, refreshSkewSec: '-1' })), 'refreshSkewSec');
    assert.equal(fieldOf(() => parseConnectionConfig({ ...base, apiBaseUrl: 'ftp://x' })), 'apiBaseUrl');
    assert.equal(fieldOf(() => parseConnectionConfig({ ...base, redirectUri: 'javascript:alert(1)' })), 'redirectUri');
    assert.equal(fieldOf(() => parseConnectionConfig({ ...base, grantType: 'client_credentials' })), 'clientSecret');
    assert.equal(fieldOf(() => parseConnectionConfig({ ...base, authorizeParams: [{ k: 'state', v: 'x' }] })), 'authorizeParams');
    assert.equal(fieldOf(() => parseConnectionConfig({ ...base, tokenParams: [{ k: 'client_secret', v: 'x' }] })), 'tokenParams');
    // The same list the authorize URL builder protects: an extra could otherwise be accepted here and dropped there.
    assert.equal(fieldOf(() => parseConnectionConfig({ ...base, authorizeParams: [{ k: 'resource', v: 'x' }] })), 'authorizeParams');
    assert.equal(fieldOf(() => parseConnectionConfig({ ...base, tokenParams: 'oops' })), 'tokenParams');
  });

  it('allows http only on loopback hosts', () => {
    assert.equal(parseEndpointUrl('http://127.0.0.1:9000/token', 'tokenEndpoint').port, '9000');
    assert.equal(parseEndpointUrl('http://localhost/token', 'tokenEndpoint').hostname, 'localhost');
    assert.equal(fieldOf(() => parseEndpointUrl('http://127.0.0.1.evil.example/token', 'tokenEndpoint')), 'tokenEndpoint');
    assert.equal(fieldOf(() => parseEndpointUrl('https://user:pw@auth.example.com/token', 'tokenEndpoint')), 'tokenEndpoint');
  });

  it('defaults the expired statuses to 401', () => {
    assert.deepEqual(parseExpiredStatuses(undefined), [401]);
    assert.deepEqual(parseExpiredStatuses('401 401 400'), [401, 400]);
  });

  it('translates an error with the field and reason named as the catalog names them', () => {
    const catalog: Record<string, string> = {
      'errors.OAUTH2_INVALID_CONFIG': 'Invalid configuration: __field__ __reason__',
      'field.clientId': 'Client ID',
      'reason.required': 'is required',
    };
    const t = (key: string, params?: Record<string, unknown>): string =>
      (catalog[key] ?? key).replace(/__(\w+)__/g, (_, name: string) => String(params?.[name] ?? ''));
    let caught: unknown;
    try {
      parseConnectionConfig({ ...base, clientId: '' });
    } catch (err) {
      caught = err;
    }
    assert.equal(translateError(caught, t), 'Invalid configuration: Client ID is required');
    // Unknown keys fall back to the English message rather than showing a key.
    assert.equal(translateError(new OAuth2Error('OAUTH2_TIMEOUT' as 'OAUTH2_LOGIN_REQUIRED', 'fallback text'), t), 'fallback text');
  });
});
