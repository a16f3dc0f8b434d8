import assert from 'node:assert/strict';
import { buildAuthorizeUrl } from '../../../nodes/lib/oauth/authorize-url';
import type { ProviderMetadata } from '../../../nodes/lib/types';
import { clientSettings } from './helpers';

const metadata: ProviderMetadata = {
  issuer: 'https://idp.example.com',
  authorizationEndpoint: 'https://idp.example.com/authorize?tenant=acme',
  tokenEndpoint: 'https://idp.example.com/token',
};

const base = {
  metadata,
  redirectUri: 'https://nodered.example.com/oauth2-connection/callback',
  state: 'state-123',
  codeChallenge: 'challenge-abc',
};

describe('oauth/authorize-url', () => {
  it('sets the code + PKCE parameters and keeps the endpoint query', () => {
    const url = new URL(buildAuthorizeUrl({ ...base, client: clientSettings({ clientId: 'app', scopes: ['read', 'write'] }) }));
    assert.equal(url.origin + url.pathname, 'https://idp.example.com/authorize');
    const q = url.searchParams;
    assert.equal(q.get('tenant'), 'acme');
    assert.equal(q.get('response_type'), 'code');
    assert.equal(q.get('client_id'), 'app');
    assert.equal(q.get('redirect_uri'), base.redirectUri);
    assert.equal(q.get('scope'), 'read write');
    assert.equal(q.get('state'), 'state-123');
    assert.equal(q.get('code_challenge'), 'challenge-abc');
    assert.equal(q.get('code_challenge_method'), 'S256');
    assert.equal(q.has('nonce'), false);
  });

  it('omits scope when there is none', () => {
    const url = new URL(buildAuthorizeUrl({ ...base, client: clientSettings({ clientId: 'app' }) }));
    assert.equal(url.searchParams.has('scope'), false);
  });

  it('sends the nonce only with the openid scope', () => {
    const withOpenid = new URL(buildAuthorizeUrl({ ...base, nonce: 'n-1', client: clientSettings({ clientId: 'app', scopes: ['openid', 'email'] }) }));
    assert.equal(withOpenid.searchParams.get('nonce'), 'n-1');
    const without = new URL(buildAuthorizeUrl({ ...base, nonce: 'n-1', client: clientSettings({ clientId: 'app', scopes: ['email'] }) }));
    assert.equal(without.searchParams.has('nonce'), false);
  });

  it('repeats the resource parameter (RFC 8707)', () => {
    const url = new URL(buildAuthorizeUrl({ ...base, client: clientSettings({ clientId: 'app', resources: ['https://a.example/', 'https://b.example/'] }) }));
    assert.deepEqual(url.searchParams.getAll('resource'), ['https://a.example/', 'https://b.example/']);
  });

  it('adds extra parameters but never lets them override the security parameters', () => {
    const client = clientSettings({
      clientId: 'app',
      scopes: ['openid'],
      extraAuthorizeParams: {
        prompt: 'consent',
        access_type: 'offline',
        state: 'evil',
        code_challenge: 'evil',
        code_challenge_method: 'plain',
        redirect_uri: 'https://evil.example/cb',
        client_id: 'other',
        response_type: 'token',
        nonce: 'evil',
      },
    });
    const q = new URL(buildAuthorizeUrl({ ...base, nonce: 'n-1', client })).searchParams;
    assert.equal(q.get('prompt'), 'consent');
    assert.equal(q.get('access_type'), 'offline');
    for (const [name, expected] of Object.entries({
      state: 'state-123',
      code_challenge: 'challenge-abc',
      code_challenge_method: 'S256',
      redirect_uri: base.redirectUri,
      client_id: 'app',
      response_type: 'code',
      nonce: 'n-1',
    })) {
      assert.deepEqual(q.getAll(name), [expected], name);
    }
  });

  it('overrides security parameters already present in the endpoint URL', () => {
    const md = { ...metadata, authorizationEndpoint: 'https://idp.example.com/authorize?state=x&redirect_uri=https://evil.example/' };
    const q = new URL(buildAuthorizeUrl({ ...base, metadata: md, client: clientSettings({ clientId: 'app' }) })).searchParams;
    assert.deepEqual(q.getAll('state'), ['state-123']);
    assert.deepEqual(q.getAll('redirect_uri'), [base.redirectUri]);
  });

  it('refuses metadata without an authorization endpoint', () => {
    assert.throws(
      () => buildAuthorizeUrl({ ...base, metadata: { tokenEndpoint: 'https://idp.example.com/token' }, client: clientSettings({ clientId: 'app' }) }),
      { code: 'OAUTH2_INVALID_CONFIG' },
    );
  });
});
