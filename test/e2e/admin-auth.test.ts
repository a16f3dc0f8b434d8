import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { AuthServer } from '../support/auth-server';
import { startApiServer, type ApiServer } from '../support/api-server';
import { adminCall, callLane, connectionStatus, deployAndWait, startWatchedAuthServer, startWatchedRuntime, waitFor, webConnection } from '../support/e2e';
import { CookieJar, loginFromEditor, openCallback, startLogin } from '../support/editor-login';
import { connectionNode, dialogConfig, requestLane, tab } from '../support/flows';
import { addSecret, watchText } from '../support/leaks';
import type { TestRuntime } from '../support/runtime';

/**
 * Invariant 2 on a real runtime with adminAuth on (needsPermission is a no-op without it, and the test helper
 * stubs it): every admin route of the package refuses anonymous callers, the write routes refuse a read-only
 * user, and the admin gets through. The runtime runs under a non-root httpAdminRoot so the login's cookie
 * path and redirect URI are exercised there too.
 */
describe('e2e: admin routes under adminAuth and httpAdminRoot /admin', function () {
  this.timeout(40_000);
  let auth: AuthServer;
  let api: ApiServer;
  let runtime: TestRuntime;
  let readerToken: string;
  let conn: Record<string, unknown>;
  let deviceConn: Record<string, unknown>;
  const adminPassword = `admin-${randomBytes(12).toString('hex')}`;
  const readerPassword = `reader-${randomBytes(12).toString('hex')}`;
  addSecret(adminPassword);
  addSecret(readerPassword);

  before(async () => {
    auth = await startWatchedAuthServer();
    api = await startApiServer(auth);
    runtime = await startWatchedRuntime({ adminAuth: { adminPassword, readerPassword }, httpAdminRoot: '/admin' });
    readerToken = await runtime.adminToken('reader', readerPassword, 'read');
    conn = webConnection(auth, api, runtime);
    deviceConn = connectionNode(auth, {
      id: 'conn-device',
      grantType: 'device_code',
      clientId: auth.clients.device.clientId,
      authMethod: 'none',
      apiBaseUrl: api.url,
    });
  });

  after(async () => {
    await runtime?.stop();
    await api?.close();
    await auth?.close();
  });

  interface Route {
    name: string;
    method: 'GET' | 'POST';
    path: () => string;
    body?: () => unknown;
    write: boolean;
    /** Reads nothing the caller names (the provider presets): no invalid input to send. */
    takesNoInput?: boolean;
  }

  const routes: Route[] = [
    { name: 'POST discover', method: 'POST', path: () => 'oauth2-connection/discover', body: () => ({ issuer: auth.issuer }), write: true },
    { name: 'GET status', method: 'GET', path: () => 'oauth2-connection/conn1/status', write: false },
    { name: 'GET providers', method: 'GET', path: () => 'oauth2-connection/providers', write: false, takesNoInput: true },
    {
      name: 'POST login',
      method: 'POST',
      path: () => 'oauth2-connection/conn1/login',
      body: () => ({ config: dialogConfig(conn), clientSecret: auth.clients.web.clientSecret }),
      write: true,
    },
    { name: 'POST device', method: 'POST', path: () => 'oauth2-connection/conn-device/device', body: () => ({ config: dialogConfig(deviceConn) }), write: true },
    { name: 'POST logout', method: 'POST', path: () => 'oauth2-connection/conn-unused/logout', body: () => ({}), write: true },
  ];

  const callRoute = (route: Route, token: string | null | undefined) =>
    adminCall(runtime, route.path(), { method: route.method, body: route.body?.(), token });

  it('the runtime really enforces adminAuth (its own /flows refuses an anonymous caller)', async () => {
    const res = await adminCall(runtime, 'flows', { token: null });
    assert.equal(res.status, 401);
    assert.ok(runtime.adminUrl.endsWith('/admin/'), runtime.adminUrl);
  });

  for (const route of routes) {
    it(`${route.name}: anonymous -> 401`, async () => {
      const res = await callRoute(route, null);
      assert.equal(res.status, 401, res.text);
    });

    it(`${route.name}: a forged bearer token -> 401`, async () => {
      const res = await callRoute(route, 'not-a-real-admin-token');
      assert.equal(res.status, 401, res.text);
    });

    if (route.write) {
      it(`${route.name}: the read-only user is refused`, async () => {
        const res = await callRoute(route, readerToken);
        assert.ok(res.status === 401 || res.status === 403, `${res.status} ${res.text}`);
      });
    } else {
      it(`${route.name}: the read-only user may read`, async () => {
        const res = await callRoute(route, readerToken);
        assert.equal(res.status, 200, res.text);
      });
    }

    it(`${route.name}: the admin gets through`, async () => {
      const res = await callRoute(route, undefined);
      assert.ok(res.status === 200 || (res.status >= 400 && res.status < 500 && res.status !== 401 && res.status !== 403), `${res.status} ${res.text}`);
      assert.equal(res.status, 200, res.text);
    });

    if (!route.takesNoInput) it(`${route.name}: the admin with invalid input gets a validation error, not 401/403`, async () => {
      const res = await adminCall(runtime, route.path().replace(/\/conn[\w-]*\//, '/bad id!/'), {
        method: route.method,
        body: route.method === 'POST' ? {} : undefined,
      });
      assert.ok(res.status >= 400 && res.status < 500 && res.status !== 401 && res.status !== 403, `${res.status} ${res.text}`);
    });
  }

  it("a pending device login's user code and verification links are shown to writers only", async () => {
    const started = await adminCall(runtime, 'oauth2-connection/conn-device/device', { body: { config: dialogConfig(deviceConn) } });
    assert.equal(started.status, 200, started.text);
    const { userCode, verificationUri } = started.body as { userCode: string; verificationUri: string };
    assert.ok(userCode && verificationUri, started.text);

    // The read-only user sees that a device login is pending, and nothing that would let them approve it.
    const asReader = await adminCall(runtime, 'oauth2-connection/conn-device/status', { token: readerToken });
    assert.equal(asReader.status, 200, asReader.text);
    const readerView = (asReader.body as { device?: Record<string, unknown> }).device;
    assert.equal(readerView?.status, 'pending', asReader.text);
    assert.equal(readerView?.userCode, undefined, asReader.text);
    assert.equal(readerView?.verificationUri, undefined, asReader.text);
    assert.equal(readerView?.verificationUriComplete, undefined, asReader.text);
    assert.ok(!asReader.text.includes(userCode), 'the user code is not in the answer');
    // Deciding that writes no permission.fail to the audit log (the dialog polls the status every second).
    const failures = (): number => runtime.logs.filter((l) => l.event === 'permission.fail').length;
    const before = failures();
    for (let i = 0; i < 3; i += 1) assert.equal((await adminCall(runtime, 'oauth2-connection/conn-device/status', { token: readerToken })).status, 200);
    assert.equal(failures(), before, 'status polls by a read-only user left permission.fail audit lines');
    // The control: a write route refused to the same user does write one.
    const refused = await adminCall(runtime, 'oauth2-connection/conn-device/logout', { token: readerToken, body: {} });
    assert.equal(refused.status, 401, refused.text);
    await waitFor(() => failures() > before, 5000, 'the audit line of a refused write');

    const asAdmin = await adminCall(runtime, 'oauth2-connection/conn-device/status');
    const adminView = (asAdmin.body as { device?: Record<string, unknown> }).device;
    assert.equal(adminView?.userCode, userCode);
    assert.equal(adminView?.verificationUri, verificationUri);
    assert.ok(String(adminView?.verificationUriComplete).includes(userCode), asAdmin.text);
  });

  it('the callback needs no admin token, but refuses without a valid state', async () => {
    for (const query of ['', '?code=abc', '?code=abc&state=' + 'x'.repeat(43), `?state=${'y'.repeat(43)}&iss=${encodeURIComponent(auth.issuer)}`]) {
      const res = await fetch(new URL(`oauth2-connection/callback${query}`, runtime.adminUrl), { redirect: 'manual' });
      const html = await res.text();
      watchText(html);
      assert.equal(res.status, 400, `${query}: ${res.status}`);
      assert.match(html, /OAUTH2_INVALID_STATE/);
      assert.equal(res.headers.get('location'), null);
    }
  });

  it('a state started by the admin cannot be completed by an anonymous browser without its cookie', async () => {
    const jar = new CookieJar();
    const started = await startLogin(runtime, 'conn1', dialogConfig(conn), jar, auth.clients.web.clientSecret);
    assert.ok(started.authorizeUrl, JSON.stringify(started));
    const state = new URL(started.authorizeUrl).searchParams.get('state');
    const page = await openCallback(new URL(`oauth2-connection/callback?code=forged&state=${state}&iss=${encodeURIComponent(auth.issuer)}`, runtime.adminUrl), new CookieJar());
    watchText(page.html);
    assert.equal(page.status, 400);
    assert.match(page.html, /OAUTH2_INVALID_STATE/);
  });

  it('the login cookie is scoped to the admin root', async () => {
    const res = await runtime.admin('oauth2-connection/conn1/login', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ config: dialogConfig(conn), clientSecret: auth.clients.web.clientSecret }),
    });
    watchText(await res.text());
    assert.equal(res.status, 200);
    const cookie = res.headers.getSetCookie().find((c) => c.startsWith('nr-oauth2-login='));
    assert.ok(cookie, 'a login cookie is set');
    assert.match(cookie, /Path=\/admin\/oauth2-connection\//i);
    assert.match(cookie, /HttpOnly/i);
  });

  it('full login under /admin (redirect URI under /admin), then a request node is authorised', async () => {
    assert.match(String(conn.redirectUri), /\/admin\/oauth2-connection\/callback$/);
    const page = await loginFromEditor(runtime, 'conn1', dialogConfig(conn), auth.clients.web.clientSecret);
    watchText(page.html);
    assert.equal(page.status, 200, page.html);
    const st = await connectionStatus(runtime, 'conn1');
    assert.equal(st.state, 'ready');
    // The read-only user may look at the status too.
    assert.equal((await connectionStatus(runtime, 'conn1', readerToken)).state, 'ready');

    await deployAndWait(runtime, [tab(), conn, ...requestLane({ path: '/records', requestNodeId: 'req1', url: '/records' })]);
    api.reset();
    const res = await callLane(runtime, '/records');
    assert.equal(res.status, 200, res.text);
    assert.equal(api.requests.length, 1);
    assert.equal(api.requests[0].authorised, true);
  });

  it('the read-only user cannot log the connection out; the admin can', async () => {
    const denied = await adminCall(runtime, 'oauth2-connection/conn1/logout', { body: {}, token: readerToken });
    assert.ok(denied.status === 401 || denied.status === 403, `${denied.status}`);
    assert.equal((await connectionStatus(runtime, 'conn1')).state, 'ready');
    const ok = await adminCall(runtime, 'oauth2-connection/conn1/logout', { body: {} });
    assert.equal(ok.status, 200, ok.text);
    assert.equal((await connectionStatus(runtime, 'conn1')).state, 'logged-out');
    assert.deepEqual(runtime.crashes, []);
  });
});
