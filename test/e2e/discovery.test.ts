import assert from 'node:assert/strict';
import type { AuthServer } from '../support/auth-server';
import { adminCall, startWatchedAuthServer, startWatchedRuntime } from '../support/e2e';
import type { TestRuntime } from '../support/runtime';

interface RouteError {
  error: { code: string; message: string };
}

describe('e2e: POST oauth2-connection/discover', function () {
  this.timeout(30_000);
  let auth: AuthServer;
  let runtime: TestRuntime;

  before(async () => {
    auth = await startWatchedAuthServer();
    runtime = await startWatchedRuntime();
  });

  after(async () => {
    await runtime?.stop();
    await auth?.close();
  });

  const discover = (body: unknown) => adminCall(runtime, 'oauth2-connection/discover', { body });

  it("returns the provider's endpoints and that it sends iss (RFC 9207)", async () => {
    const res = await discover({ issuer: auth.issuer });
    assert.equal(res.status, 200, res.text);
    const md = res.body as Record<string, unknown>;
    assert.equal(md.issuer, auth.issuer);
    assert.equal(md.authorizationEndpoint, `${auth.issuer}/auth`);
    assert.equal(md.tokenEndpoint, `${auth.issuer}/token`);
    assert.equal(md.revocationEndpoint, `${auth.issuer}/token/revocation`);
    assert.equal(md.deviceAuthorizationEndpoint, `${auth.issuer}/device/auth`);
    assert.equal(md.issParameterSupported, true);
    assert.ok(Array.isArray(md.scopesSupported) && (md.scopesSupported as string[]).includes('api:read'), res.text);
  });

  it('tolerates surrounding whitespace in the issuer', async () => {
    const res = await discover({ issuer: `  ${auth.issuer}  ` });
    assert.equal(res.status, 200, res.text);
    assert.equal((res.body as { issuer: string }).issuer, auth.issuer);
  });

  for (const [name, issuer] of [
    ['an issuer on another path (no metadata there)', (a: AuthServer) => `${a.issuer}/other`],
    ['an issuer the document does not name (localhost vs 127.0.0.1)', (a: AuthServer) => a.issuer.replace('127.0.0.1', 'localhost')],
    ['a port where nothing listens', () => 'http://127.0.0.1:9/'],
    ['plain http on a non-loopback host', () => 'http://auth.example.com'],
    ['not a URL', () => 'not a url'],
  ] as const) {
    it(`${name} -> an error response with OAUTH2_DISCOVERY_FAILED`, async () => {
      const res = await discover({ issuer: issuer(auth) });
      assert.ok(res.status >= 400 && res.status < 600, `${res.status} ${res.text}`);
      assert.equal(res.headers.get('content-type')?.split(';')[0], 'application/json');
      const body = res.body as RouteError;
      assert.equal(body.error?.code, 'OAUTH2_DISCOVERY_FAILED', res.text);
      assert.equal(typeof body.error.message, 'string');
      assert.ok(body.error.message.length > 10, body.error.message);
      assert.doesNotMatch(body.error.message, /__\w+__/, 'every placeholder of the message is filled in');
    });
  }

  for (const [name, body] of [
    ['missing', {}],
    ['empty', { issuer: '  ' }],
    ['not a string', { issuer: 42 }],
    ['no body at all', undefined],
  ] as const) {
    it(`issuer ${name} -> 400 naming the field`, async () => {
      const res = body === undefined
        ? await adminCall(runtime, 'oauth2-connection/discover', { method: 'POST' })
        : await discover(body);
      assert.equal(res.status, 400, res.text);
      const err = (res.body as RouteError).error;
      assert.equal(err.code, 'OAUTH2_INVALID_INPUT');
      assert.match(err.message, /issuer/i);
    });
  }

  it('nothing crashed the runtime', () => {
    assert.deepEqual(runtime.crashes, []);
  });
});
