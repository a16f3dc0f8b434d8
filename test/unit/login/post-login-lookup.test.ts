/**
 * The post-login lookup against a real HTTP server: the value of the first list item, the token only to an
 * allowed origin (invariant 4: a lookup URL elsewhere sends nothing), and the answers a provider may give
 * instead of a list (an error status, HTML, an empty list, an item without the field, a value that is no id).
 */
import assert from 'node:assert/strict';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { NO_BEHAVIOUR } from '../../../nodes/lib/connection-values';
import { isOAuth2Error } from '../../../nodes/lib/errors';
import { sharedAgents } from '../../../nodes/lib/http/agents';
import { runPostLoginLookup } from '../../../nodes/lib/login/post-login-lookup';
import type { TokenSet } from '../../../nodes/lib/types';

const TOKEN = 'lookup-test-access-token';
const tokens: TokenSet = { accessToken: TOKEN, tokenType: 'Bearer', expiresAt: Date.now() + 60_000, expirySource: 'expires_in', scopes: [], obtainedAt: Date.now() };

describe('login/post-login-lookup', () => {
  let server: http.Server;
  let origin = '';
  const seen: { path: string; authorization?: string }[] = [];
  const answers: Record<string, [number, string]> = {
    '/connections': [200, JSON.stringify([{ tenantId: 'tenant-1', tenantName: 'A' }, { tenantId: 'tenant-2' }])],
    '/wrapped': [200, JSON.stringify({ resources: [{ id: 'cloud-7' }] })],
    '/forbidden': [403, JSON.stringify({ error: 'forbidden' })],
    '/html': [200, '<html><body>Sign in</body></html>'],
    '/empty': [200, '[]'],
    '/no-field': [200, JSON.stringify([{ other: 'x' }])],
    '/not-an-id': [200, JSON.stringify([{ tenantId: 'a/b?c' }])],
    '/huge': [200, JSON.stringify([{ tenantId: 'x', padding: 'p'.repeat(2 * 1024 * 1024) }])],
  };

  before(async () => {
    server = http.createServer((req, res) => {
      seen.push({ path: req.url ?? '', authorization: req.headers.authorization });
      const [status, body] = answers[req.url ?? ''] ?? [404, '{}'];
      res.writeHead(status, { 'content-type': body.startsWith('<') ? 'text/html' : 'application/json' });
      res.end(body);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => new Promise<void>((resolve) => server.close(() => resolve())));
  beforeEach(() => {
    seen.length = 0;
  });

  const run = (path: string, pick = 'tenantId', allowed: { apiBaseUrl?: string; allowedOrigins?: string[] } = { apiBaseUrl: origin }) =>
    runPostLoginLookup({
      lookup: { url: `${origin}${path}`, pick, as: 'tenantId' },
      behaviour: NO_BEHAVIOUR,
      tokens,
      apiBaseUrl: allowed.apiBaseUrl,
      allowedOrigins: allowed.allowedOrigins ?? [],
      agents: sharedAgents(),
      timeoutMs: 5000,
    });

  it("keeps the first item's field, asked with the new token; a list inside an object is found too", async () => {
    const found = await run('/connections');
    assert.deepEqual(found.values, { tenantId: 'tenant-1' });
    assert.equal(found.accessToken, TOKEN);
    assert.deepEqual(seen, [{ path: '/connections', authorization: `Bearer ${TOKEN}` }]);
    assert.deepEqual((await run('/wrapped', 'id')).values, { tenantId: 'cloud-7' });
  });

  it('sends nothing to an origin the connection does not allow', async () => {
    await assert.rejects(run('/connections', 'tenantId', { apiBaseUrl: 'https://api.example.com' }), (err: unknown) => isOAuth2Error(err, 'OAUTH2_ORIGIN_NOT_ALLOWED'));
    assert.deepEqual(seen, []);
    // Listed among the other origins, it is asked.
    assert.deepEqual((await run('/connections', 'tenantId', { allowedOrigins: [origin] })).values, { tenantId: 'tenant-1' });
  });

  for (const path of ['/forbidden', '/html', '/empty', '/no-field', '/not-an-id', '/huge']) {
    it(`${path.slice(1)}: the login fails with the lookup named, and neither the token nor the answer in the error`, async () => {
      await assert.rejects(run(path), (err: unknown) => {
        assert.ok(isOAuth2Error(err, 'OAUTH2_PROVIDER_ERROR'), String(err));
        assert.equal(err.params.error, 'lookup_failed');
        const text = JSON.stringify({ message: err.message, params: err.params });
        assert.ok(!text.includes(TOKEN), text);
        assert.ok(!text.includes('Sign in'), text);
        return true;
      });
    });
  }
});
