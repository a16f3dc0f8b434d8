/** The shared test authorization server does what other suites rely on. */
import assert from 'node:assert/strict';
import { buildAuthorizeUrl } from '../../../nodes/lib/oauth/authorize-url';
import { discoverProvider } from '../../../nodes/lib/oauth/discovery';
import { createPkcePair } from '../../../nodes/lib/oauth/pkce';
import { createTokenEndpointClient } from '../../../nodes/lib/oauth/simple-oauth2-client';
import { loginThroughProvider, startAuthServer, type AuthServer } from '../../support/auth-server';
import { clientSettings } from './helpers';

const REDIRECT_URI = 'http://127.0.0.1:9999/cb';

async function authorizeUrl(server: AuthServer, opts: { pkce?: boolean } = {}): Promise<string> {
  const metadata = await discoverProvider(server.issuer, { timeoutMs: 5000 });
  const url = new URL(buildAuthorizeUrl({
    metadata,
    client: clientSettings({ clientId: server.clients.web.clientId, scopes: ['openid'] }),
    redirectUri: REDIRECT_URI,
    state: 'st',
    codeChallenge: createPkcePair().codeChallenge,
  }));
  if (opts.pkce === false) {
    url.searchParams.delete('code_challenge');
    url.searchParams.delete('code_challenge_method');
  }
  return url.href;
}

describe('test/support/auth-server', () => {
  describe('defaults', () => {
    let server: AuthServer;
    before(async () => {
      server = await startAuthServer();
      server.addRedirectUri(REDIRECT_URI);
    });
    after(async () => {
      await server.close();
    });

    it('serves a real login page that re-renders with an error on a wrong password', async () => {
      const url = await authorizeUrl(server);
      await assert.rejects(loginThroughProvider(url, { password: 'wrong' }), /invalid username or password/);
      const ok = await loginThroughProvider(url, { username: server.account.email });
      assert.ok(ok.searchParams.get('code'));
    });

    it('returns access_denied with state and iss when consent is refused', async () => {
      const result = await loginThroughProvider(await authorizeUrl(server), { consent: false });
      assert.equal(result.origin + result.pathname, REDIRECT_URI);
      assert.equal(result.searchParams.get('error'), 'access_denied');
      assert.equal(result.searchParams.get('state'), 'st');
      assert.equal(result.searchParams.get('iss'), server.issuer);
    });

    it('requires PKCE', async () => {
      const result = await loginThroughProvider(await authorizeUrl(server, { pkce: false }));
      assert.equal(result.searchParams.get('error'), 'invalid_request');
    });

    it('refuses a redirect URI nobody added', async () => {
      const url = new URL(await authorizeUrl(server));
      url.searchParams.set('redirect_uri', 'http://127.0.0.1:9999/other');
      const response = await fetch(url, { redirect: 'manual' });
      assert.equal(response.status, 400);
    });
  });

  describe('options', () => {
    it('issues JWT access tokens with the configured lifetime, and no refresh token when told not to', async () => {
      const server = await startAuthServer({ jwtAccessTokens: true, accessTokenTtlSec: 30, issueRefreshToken: false });
      try {
        server.addRedirectUri(REDIRECT_URI);
        const metadata = await discoverProvider(server.issuer, { timeoutMs: 5000 });
        const service = clientSettings({ clientId: server.clients.service.clientId, clientSecret: server.clients.service.clientSecret, scopes: ['api:read'] });
        const tokens = await createTokenEndpointClient({ metadata, client: service }).clientCredentials();
        const jose = await import('jose');
        const jwks = jose.createRemoteJWKSet(new URL(`${server.issuer}/jwks`));
        const { payload, protectedHeader } = await jose.jwtVerify(tokens.accessToken, jwks, { issuer: server.issuer, audience: server.jwtAudience });
        assert.equal(protectedHeader.typ, 'at+jwt');
        assert.equal((payload.exp ?? 0) - (payload.iat ?? 0), 30);

        const pkce = createPkcePair();
        const web = clientSettings({ clientId: server.clients.web.clientId, clientSecret: server.clients.web.clientSecret, scopes: ['openid'] });
        const url = buildAuthorizeUrl({ metadata, client: web, redirectUri: REDIRECT_URI, state: 's', codeChallenge: pkce.codeChallenge });
        const code = (await loginThroughProvider(url)).searchParams.get('code') ?? '';
        const userTokens = await createTokenEndpointClient({ metadata, client: web }).exchangeCode({ code, codeVerifier: pkce.codeVerifier, redirectUri: REDIRECT_URI });
        assert.equal(userTokens.refreshToken, undefined);
        assert.equal(jose.decodeJwt(userTokens.accessToken).aud, server.jwtAudience);
      } finally {
        await server.close();
      }
    });

    it('can leave expires_in out of token responses', async () => {
      const server = await startAuthServer({ sendExpiresIn: false });
      try {
        const metadata = await discoverProvider(server.issuer, { timeoutMs: 5000 });
        const service = clientSettings({ clientId: server.clients.service.clientId, clientSecret: server.clients.service.clientSecret });
        const tokens = await createTokenEndpointClient({ metadata, client: service, defaultLifetimeSec: 42 }).clientCredentials();
        assert.equal(tokens.expirySource, 'default');
        assert.equal(tokens.expiresAt - tokens.obtainedAt, 42_000);
      } finally {
        await server.close();
      }
    });
  });
});
