import { OAuth2Error } from '../../../nodes/lib/errors';
import assert from 'node:assert/strict';
import { discoverProvider, isAllowedEndpointUrl, oidcMetadataUrl, rfc8414MetadataUrl } from '../../../nodes/lib/oauth/discovery';
import { startAuthServer, type AuthServer } from '../../support/auth-server';
import { json, rejection, startLoopbackServer } from './helpers';

describe('oauth/discovery', () => {
  let server: AuthServer;
  before(async () => {
    server = await startAuthServer();
  });
  after(async () => {
    await server.close();
  });

  it('builds the RFC 8414 URL before the issuer path and the OIDC URL after it', () => {
    assert.equal(rfc8414MetadataUrl(new URL('https://idp.example/tenant/1')), 'https://idp.example/.well-known/oauth-authorization-server/tenant/1');
    assert.equal(rfc8414MetadataUrl(new URL('https://idp.example')), 'https://idp.example/.well-known/oauth-authorization-server');
    assert.equal(oidcMetadataUrl(new URL('https://idp.example/tenant/1/')), 'https://idp.example/tenant/1/.well-known/openid-configuration');
    assert.equal(oidcMetadataUrl(new URL('https://idp.example')), 'https://idp.example/.well-known/openid-configuration');
  });

  it('falls back to OpenID discovery against the real provider', async () => {
    const md = await discoverProvider(server.issuer, { timeoutMs: 5000 });
    assert.equal(md.issuer, server.issuer);
    assert.equal(md.tokenEndpoint, `${server.issuer}/token`);
    assert.equal(md.authorizationEndpoint, `${server.issuer}/auth`);
    assert.equal(md.revocationEndpoint, `${server.issuer}/token/revocation`);
    assert.equal(md.deviceAuthorizationEndpoint, `${server.issuer}/device/auth`);
    assert.equal(md.userinfoEndpoint, `${server.issuer}/me`);
    assert.equal(md.authorizationResponseIssParameterSupported, true);
    assert.deepEqual(md.codeChallengeMethodsSupported, ['S256']);
    assert.ok(md.scopesSupported?.includes('openid'));
  });

  it('uses the RFC 8414 document (path form) when it exists', async () => {
    let issuer = '';
    const fake = await startLoopbackServer((req, _body, res) => {
      if (req.url === '/.well-known/oauth-authorization-server/tenant1') {
        json(res, 200, { issuer, token_endpoint: `${issuer}/token`, authorization_endpoint: `${issuer}/authorize` });
      } else {
        json(res, 404, {});
      }
    });
    try {
      issuer = `${fake.url}/tenant1`;
      const md = await discoverProvider(issuer, { timeoutMs: 5000 });
      assert.equal(md.tokenEndpoint, `${issuer}/token`);
      assert.equal(md.authorizationResponseIssParameterSupported, false);
      assert.deepEqual(fake.requests.map((r) => r.path), ['/.well-known/oauth-authorization-server/tenant1']);
    } finally {
      await fake.close();
    }
  });

  it('refuses a document that names another issuer', async () => {
    const err = await rejection(() => discoverProvider(`${server.issuer}/`, { timeoutMs: 5000 }));
    assert.equal(err.code, 'OAUTH2_DISCOVERY_FAILED');
    const { reason, ...rest } = err.params as Record<string, unknown>;
    assert.deepEqual(rest, { expected: `${server.issuer}/`, received: server.issuer, field: 'issuer' });
    assert.match(String(reason), /different issuer/);
  });

  it('refuses a document whose endpoints are plain http on a public host', async () => {
    let issuer = '';
    const fake = await startLoopbackServer((_req, _body, res) => json(res, 200, { issuer, token_endpoint: 'http://idp.example.com/token' }));
    try {
      issuer = fake.url;
      const err = await rejection(() => discoverProvider(issuer, { timeoutMs: 5000 }));
      assert.equal(err.code, 'OAUTH2_DISCOVERY_FAILED');
      assert.equal((err.params as Record<string, unknown>).field, 'token_endpoint');
    } finally {
      await fake.close();
    }
  });

  it('fails on non-JSON documents', async () => {
    const fake = await startLoopbackServer((_req, _body, res) => {
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end('<html>login</html>');
    });
    try {
      const err = await rejection(() => discoverProvider(fake.url, { timeoutMs: 5000 }));
      assert.equal(err.code, 'OAUTH2_DISCOVERY_FAILED');
      assert.match(String((err.params as Record<string, unknown>).reason), /not JSON/);
      assert.equal(fake.requests.length, 2);
    } finally {
      await fake.close();
    }
  });

  it('fails on an unreachable issuer and on a silent one (timeout)', async () => {
    const fake = await startLoopbackServer(() => undefined);
    const silent = fake.url;
    const closed = await startLoopbackServer(() => undefined);
    const unreachable = closed.url;
    await closed.close();
    try {
      const e1 = await rejection(() => discoverProvider(unreachable, { timeoutMs: 2000 }));
      assert.equal(e1.code, 'OAUTH2_DISCOVERY_FAILED');
      assert.match(String((e1.params as Record<string, unknown>).reason), /unreachable/);
      const e2 = await rejection(() => discoverProvider(silent, { timeoutMs: 150 }));
      assert.match(String((e2.params as Record<string, unknown>).reason), /timeout/);
    } finally {
      await fake.close();
    }
  });

  it('refuses non-https issuers except loopback', async () => {
    await assert.rejects(discoverProvider('http://idp.example.com', { timeoutMs: 100 }), (err: OAuth2Error) =>
      err.code === 'OAUTH2_DISCOVERY_FAILED' && err.params.field === 'issuer');
    await assert.rejects(discoverProvider('not a url', { timeoutMs: 100 }), { code: 'OAUTH2_DISCOVERY_FAILED' });
    assert.equal(isAllowedEndpointUrl('https://idp.example/x'), true);
    assert.equal(isAllowedEndpointUrl('http://localhost:3000/x'), true);
    assert.equal(isAllowedEndpointUrl('http://[::1]:3000/x'), true);
    assert.equal(isAllowedEndpointUrl('http://127.8.0.1/x'), true);
    assert.equal(isAllowedEndpointUrl('http://10.0.0.1/x'), false);
    assert.equal(isAllowedEndpointUrl('https://user:pw@idp.example/x'), false);
    assert.equal(isAllowedEndpointUrl('javascript:alert(1)'), false);
  });

  it('uses the injected fetch', async () => {
    const seen: string[] = [];
    const fetchImpl: typeof fetch = async (input) => {
      seen.push(String(input));
      return new Response(JSON.stringify({ issuer: 'https://idp.example', token_endpoint: 'https://idp.example/t' }), { status: 200 });
    };
    const md = await discoverProvider('https://idp.example', { timeoutMs: 100, fetchImpl });
    assert.equal(md.tokenEndpoint, 'https://idp.example/t');
    assert.deepEqual(seen, ['https://idp.example/.well-known/oauth-authorization-server']);
  });
});
