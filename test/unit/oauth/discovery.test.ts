import { OAuth2Error } from '../../../nodes/lib/errors';
import assert from 'node:assert/strict';
import { discoverProvider, discoveryFailureForCaller, isAllowedEndpointUrl, oidcMetadataUrl, rfc8414MetadataUrl } from '../../../nodes/lib/oauth/discovery';
import { startAuthServer, type AuthServer } from '../../support/auth-server';
import { startBombServer, type BombEncoding } from '../../support/compression-bomb';
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

  describe('redirects and size', () => {
    /** An internal service on a loopback port: what a redirect must not reach when its URL is not allowed. */
    async function internalService(): Promise<Awaited<ReturnType<typeof startLoopbackServer>> & { port: number }> {
      const internal = await startLoopbackServer((_req, _body, res) => json(res, 200, { internal: true }));
      return Object.assign(internal, { port: Number(new URL(internal.url).port) });
    }

    for (const host of ['0.0.0.0', '[::ffff:127.0.0.1]']) {
      it(`never follows a redirect to http://${host}:<port>, which the policy refuses when typed`, async () => {
        const internal = await internalService();
        const target = `http://${host}:${internal.port}/admin`;
        const front = await startLoopbackServer((_req, _body, res) => {
          res.writeHead(302, { location: target });
          res.end();
        });
        try {
          assert.equal(isAllowedEndpointUrl(target), false, 'the typed URL is refused');
          await assert.rejects(discoverProvider(target, { timeoutMs: 2000 }), { code: 'OAUTH2_DISCOVERY_FAILED' });
          const err = await rejection(() => discoverProvider(front.url, { timeoutMs: 2000 }));
          assert.equal(err.code, 'OAUTH2_DISCOVERY_FAILED');
          assert.equal(internal.requests.length, 0, 'the internal port was never reached');
          assert.equal(front.requests.length, 2, 'both metadata URLs were asked');
          assert.match(String((err.params as Record<string, unknown>).reason), /redirected to http:\/\/.*not https/);
        } finally {
          await Promise.all([front.close(), internal.close()]);
        }
      });
    }

    it('follows redirects to allowed URLs, each hop checked, at most five', async () => {
      let issuer = '';
      const home = await startLoopbackServer((req, _body, res) => {
        if (req.url === '/.well-known/openid-configuration') json(res, 200, { issuer, token_endpoint: `${issuer}/token` });
        else json(res, 404, {});
      });
      const front = await startLoopbackServer((req, _body, res) => {
        res.writeHead(req.url?.startsWith('/.well-known/openid-configuration') ? 308 : 404, { location: `${home.url}${req.url ?? ''}` });
        res.end();
      });
      let loops = 0;
      const loop = await startLoopbackServer((req, _body, res) => {
        loops += 1;
        res.writeHead(302, { location: `${req.url ?? '/'}x` });
        res.end();
      });
      try {
        issuer = front.url;
        const md = await discoverProvider(issuer, { timeoutMs: 5000 });
        assert.equal(md.tokenEndpoint, `${issuer}/token`);
        const err = await rejection(() => discoverProvider(loop.url, { timeoutMs: 5000 }));
        assert.match(String((err.params as Record<string, unknown>).reason), /more than 5 redirects/);
        assert.equal(loops, 12, 'two metadata URLs, six requests each (the first and five redirects)');
      } finally {
        await Promise.all([home.close(), front.close(), loop.close()]);
      }
    });

    for (const encoding of ['identity', 'gzip'] as BombEncoding[]) {
      it(`stops reading a metadata document past 512 KB (${encoding === 'identity' ? 'plain' : 'gzip, counted decoded'}) instead of reading it all`, async () => {
        // 64 pieces of 256 KB: 16 MB in all, written one by one while the client reads.
        const bomb = await startBombServer({ encoding, pieces: 64, pieceBytes: 256 * 1024 });
        try {
          const err = await rejection(() => discoverProvider(bomb.origin, { timeoutMs: 10_000 }));
          assert.equal(err.code, 'OAUTH2_DISCOVERY_FAILED');
          assert.match(String((err.params as Record<string, unknown>).reason), /document too large/);
          await bomb.settled();
          assert.equal(bomb.requests.length, 2);
          for (const seen of bomb.requests) {
            assert.equal(seen.closedEarly, true, `${seen.path}: closed before the end`);
            assert.ok(seen.written < bomb.pieces, `${seen.path}: ${seen.written} of ${bomb.pieces} pieces were written`);
          }
        } finally {
          await bomb.close();
        }
      });
    }
  });

  describe('what a caller is told (discoveryFailureForCaller)', () => {
    it('one generic error for every failure the network decided, the detail for the log; issuer mistakes as they are', async () => {
      const notJson = await startLoopbackServer((_req, _body, res) => {
        res.writeHead(200, { 'content-type': 'text/html' });
        res.end('<html>login</html>');
      });
      const notFound = await startLoopbackServer((_req, _body, res) => json(res, 404, {}));
      const closed = await startLoopbackServer(() => undefined);
      const unreachable = closed.url;
      await closed.close();
      try {
        const shown: unknown[] = [];
        const details: string[] = [];
        for (const issuer of [notJson.url, notFound.url, unreachable, `${server.issuer}/other`]) {
          const err = await rejection(() => discoverProvider(issuer, { timeoutMs: 2000 }));
          const { error, logDetail } = discoveryFailureForCaller(issuer, err);
          shown.push({ code: error.code, message: error.message, params: error.params });
          details.push(String(logDetail));
        }
        assert.equal(new Set(shown.map((s) => JSON.stringify(s))).size, 1, JSON.stringify(shown));
        assert.deepEqual(shown[0], {
          code: 'OAUTH2_DISCOVERY_FAILED',
          message: 'Discovery failed: no usable provider metadata at this issuer (the Node-RED log says why)',
          params: { reason: 'seeLog' },
        });
        assert.match(details[0], /not JSON/);
        assert.match(details[1], /HTTP 404/);
        assert.match(details[2], /unreachable/);
        assert.match(details[3], /HTTP 404/);
        for (const issuer of ['http://idp.example.com', 'not a url', 'https://idp.example/?tenant=1']) {
          const err = await rejection(() => discoverProvider(issuer, { timeoutMs: 100 }));
          const { error, logDetail } = discoveryFailureForCaller(issuer, err);
          assert.equal(error.params.field, 'issuer', issuer);
          assert.equal(logDetail, undefined);
        }
      } finally {
        await Promise.all([notJson.close(), notFound.close()]);
      }
    });
  });
});
