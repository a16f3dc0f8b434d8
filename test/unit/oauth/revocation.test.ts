import assert from 'node:assert/strict';
import type http from 'node:http';
import { parseConnectionConfig } from '../../../nodes/lib/connection-settings';
import { OAuth2Error } from '../../../nodes/lib/errors';
import { revokeTokens } from '../../../nodes/lib/oauth/revocation';
import type { RevocationStyle, TokenSet } from '../../../nodes/lib/types';
import { clientSettings, json, startLoopbackServer, type LoopbackServer } from './helpers';

const ACCESS = 'at-9f8e7d6c5b4a';
const REFRESH = 'rt-1a2b3c4d5e6f';
const SECRET = 's3cret-value';
const tokens: TokenSet = { accessToken: ACCESS, refreshToken: REFRESH, tokenType: 'Bearer', expiresAt: Date.now() + 60_000, expirySource: 'expires_in', scopes: [], obtainedAt: Date.now() };
const client = clientSettings({ clientId: 'my app', clientSecret: SECRET });
const basic = `Basic ${Buffer.from(`my+app:${SECRET}`).toString('base64')}`;

describe('oauth/revocation: styles, and what counts as revoked', () => {
  let server: LoopbackServer;
  let answer: (req: http.IncomingMessage, res: http.ServerResponse) => void;
  before(async () => {
    server = await startLoopbackServer((req, _body, res) => answer(req, res));
  });
  after(() => server.close());
  beforeEach(() => {
    server.requests.length = 0;
    answer = (_req, res) => json(res, 200, {});
  });

  const revoke = (style: RevocationStyle, path = '/revoke'): ReturnType<typeof revokeTokens> =>
    revokeTokens({ endpoint: `${server.url}${path}`, style, tokens, client, transport: { timeoutMs: 2000 } });

  it('rfc7009: a form POST per token, refresh token first, client Basic auth', async () => {
    assert.deepEqual(await revoke('rfc7009'), { refreshTokenRevoked: true, accessTokenRevoked: true });
    assert.deepEqual(server.requests.map((r) => [r.method, r.headers['content-type'], r.headers.authorization, Object.fromEntries(new URLSearchParams(r.body))]), [
      ['POST', 'application/x-www-form-urlencoded', basic, { token: REFRESH, token_type_hint: 'refresh_token' }],
      ['POST', 'application/x-www-form-urlencoded', basic, { token: ACCESS, token_type_hint: 'access_token' }],
    ]);
  });

  it('json: the same as a JSON body', async () => {
    assert.deepEqual(await revoke('json'), { refreshTokenRevoked: true, accessTokenRevoked: true });
    assert.deepEqual(server.requests.map((r) => [r.method, r.headers['content-type'], r.headers.authorization, JSON.parse(r.body)]), [
      ['POST', 'application/json', basic, { token: REFRESH, token_type_hint: 'refresh_token' }],
      ['POST', 'application/json', basic, { token: ACCESS, token_type_hint: 'access_token' }],
    ]);
  });

  it('bearer: the access token revokes itself, no body, no client secret; the refresh token is never sent', async () => {
    assert.deepEqual(await revoke('bearer'), { refreshTokenRevoked: false, accessTokenRevoked: true });
    assert.equal(server.requests.length, 1);
    assert.equal(server.requests[0]!.headers.authorization, `Bearer ${ACCESS}`);
    assert.equal(server.requests[0]!.body, '');
  });

  it('delete: {client_id} in the path and the token in a JSON body, or {token} in the path', async () => {
    answer = (_req, res) => {
      res.writeHead(204);
      res.end();
    };
    assert.deepEqual(await revoke('delete', '/applications/{client_id}/token'), { refreshTokenRevoked: true, accessTokenRevoked: true });
    assert.deepEqual(server.requests.map((r) => [r.method, r.path, r.headers.authorization, JSON.parse(r.body)]), [
      ['DELETE', '/applications/my%20app/token', basic, { access_token: REFRESH }],
      ['DELETE', '/applications/my%20app/token', basic, { access_token: ACCESS }],
    ]);
    server.requests.length = 0;
    await revoke('delete', '/tokens/{token}');
    assert.deepEqual(server.requests.map((r) => [r.method, r.path, r.body]), [
      ['DELETE', `/tokens/${REFRESH}`, ''],
      ['DELETE', `/tokens/${ACCESS}`, ''],
    ]);
  });

  it('a 200 that says it failed is no revocation, and says why without a token or the secret', async () => {
    answer = (_req, res) => json(res, 200, { ok: false, error: 'invalid_auth' });
    const slack = await revoke('bearer');
    assert.deepEqual(slack, { refreshTokenRevoked: false, accessTokenRevoked: false, failure: 'access token: HTTP 200 invalid_auth' });
    answer = (_req, res) => json(res, 400, { error: 'invalid_client', error_description: `bad ${SECRET}` });
    const refused = await revoke('rfc7009');
    assert.deepEqual(refused, { refreshTokenRevoked: false, accessTokenRevoked: false, failure: 'refresh token: HTTP 400 invalid_client; access token: HTTP 400 invalid_client' });
    answer = (_req, res) => json(res, 401, { error: `echo ${ACCESS}` });
    const echoed = await revoke('rfc7009');
    for (const secret of [ACCESS, REFRESH, SECRET]) assert.ok(!JSON.stringify(echoed).includes(secret), `${secret} in ${JSON.stringify(echoed)}`);
    assert.match(echoed.failure ?? '', /HTTP 401/);
  });

  it('the style is a connection setting, checked at deploy', () => {
    const base = { grantType: 'authorization_code', authorizationEndpoint: 'https://a.example/auth', tokenEndpoint: 'https://a.example/token', clientId: 'c' };
    assert.equal(parseConnectionConfig(base).metadata.revocationStyle, 'rfc7009');
    assert.equal(parseConnectionConfig({ ...base, revocationStyle: 'delete' }).metadata.revocationStyle, 'delete');
    assert.throws(() => parseConnectionConfig({ ...base, revocationStyle: 'carrier-pigeon' }), (err: unknown) => err instanceof OAuth2Error && err.params?.field === 'revocationStyle');
  });
});
