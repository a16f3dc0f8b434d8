import assert from 'node:assert/strict';
import { loginThroughProvider, type AuthServer } from '../support/auth-server';
import { startApiServer, type ApiServer } from '../support/api-server';
import { CookieJar, openCallback, startLogin } from '../support/editor-login';
import { callLane, caught, connectionStatus, deployAndWait, sleep, startWatchedAuthServer, startWatchedRuntime, webConnection } from '../support/e2e';
import { connectionNode, dialogConfig, requestLane, tab } from '../support/flows';
import { watchText } from '../support/leaks';
import type { TestRuntime } from '../support/runtime';

/**
 * Attacks not covered by test/e2e (authorization-code.test.ts has state, iss, replayed callback, other browser,
 * Host spoofing, no redirect; origins.test.ts has the look-alike origins other than IDN):
 * - a callback query that tries to write fields into the stored credentials;
 * - an authorization code replayed at the token endpoint through our callback (with a fresh, valid state);
 * - IDN / punycode and other hostname look-alikes of the API origin.
 */
describe('adversarial: attacks on the callback and the origin check', function () {
  this.timeout(60_000);
  let auth: AuthServer;
  let api: ApiServer;
  let runtime: TestRuntime;
  let conn: Record<string, unknown>;
  const INJECTED = 'InJeCtEd-value-0123456789';

  const accessTokens: string[] = [];

  before(async () => {
    auth = await startWatchedAuthServer({ accessTokenTtlSec: 2 });
    auth.provider.on('access_token.saved', (model: unknown) => void accessTokens.push((model as { jti: string }).jti));
    api = await startApiServer(auth);
    runtime = await startWatchedRuntime();
    conn = webConnection(auth, api, runtime);
    await deployAndWait(runtime, [
      tab(),
      conn,
      { ...webConnection(auth, api, runtime, 'conn-replay') },
      ...requestLane({ path: '/echo', requestNodeId: 'req1', url: '/echo' }),
    ]);
  });

  after(async () => {
    await runtime?.stop();
    await api?.close();
    await auth?.close();
  });

  async function begin(id: string, jar: CookieJar): Promise<URL> {
    const started = await startLogin(runtime, id, dialogConfig({ ...conn, id }), jar, auth.clients.web.clientSecret);
    assert.ok(started.authorizeUrl, JSON.stringify(started));
    return loginThroughProvider(started.authorizeUrl);
  }

  it('a callback query cannot write fields into the stored credentials', async () => {
    const jar = new CookieJar();
    const callback = await begin('conn1', jar);
    const extra: Record<string, string> = {
      tokens: JSON.stringify({ accessToken: INJECTED, refreshToken: INJECTED }),
      'tokens[accessToken]': INJECTED,
      access_token: INJECTED,
      refresh_token: INJECTED,
      clientSecret: INJECTED,
      client_secret: INJECTED,
      expires_in: '999999999',
      scope: 'admin everything',
      subject: 'mallory@example.com',
      connectionId: 'conn-replay',
      redirect_uri: 'https://evil.example/cb',
      '__proto__[polluted]': 'yes',
      'constructor[prototype][polluted]': 'yes',
    };
    for (const [k, v] of Object.entries(extra)) callback.searchParams.append(k, v);
    const page = await openCallback(callback, jar);
    watchText(page.html);
    assert.equal(page.status, 200, page.html);
    assert.ok(!page.html.includes(INJECTED), 'nothing of the query is echoed');

    const status = await connectionStatus(runtime, 'conn1');
    assert.equal(status.state, 'ready');
    assert.ok([auth.account.id, auth.account.email].includes(status.subject as string), `subject ${String(status.subject)}`);
    assert.ok(!(status.scopes as string[]).includes('admin'), `scopes ${JSON.stringify(status.scopes)}`);
    assert.ok((status.expiresAt as number) < Date.now() + 60_000, 'expiry comes from the token response, not the query');
    assert.equal((await connectionStatus(runtime, 'conn-replay')).state, 'logged-out', 'the query cannot pick another connection');

    // The token in use is the one the provider issued; the stored refresh token and client secret are the real
    // ones: after expiry the refresh succeeds (an injected client secret or refresh token would fail it).
    api.reset();
    const first = await callLane(runtime, '/echo', { apiEcho: true });
    assert.equal(first.status, 200, first.text);
    assert.ok(api.requests[0].authorised);
    assert.ok(!String(api.requests[0].authorization).includes(INJECTED));
    await sleep(2200);
    auth.resetCounts();
    const afterRefresh = await callLane(runtime, '/echo', { apiEcho: true });
    assert.equal(afterRefresh.status, 200, afterRefresh.text);
    assert.equal(auth.counts().token.refresh_token ?? 0, 1, 'refreshed once with the stored refresh token and secret');
    assert.ok(api.requests.every((r) => !String(r.authorization).includes(INJECTED)));
    assert.deepEqual(runtime.crashes, []);
  });

  it('an authorization code replayed through our callback (with a fresh valid state) is refused and stores nothing', async () => {
    // Login A completes normally.
    const jarA = new CookieJar();
    const callbackA = await begin('conn-replay', jarA);
    const pageA = await openCallback(callbackA, jarA);
    assert.equal(pageA.status, 200, pageA.html);
    const before = await connectionStatus(runtime, 'conn-replay');
    assert.equal(before.state, 'ready');
    auth.resetCounts();

    // Login B is started (valid state, own verifier) but answered with A's code: a code replay.
    const jarB = new CookieJar();
    const callbackB = await begin('conn-replay', jarB);
    const replay = new URL(callbackB);
    replay.searchParams.set('code', String(callbackA.searchParams.get('code')));
    const page = await openCallback(replay, jarB);
    watchText(page.html);
    assert.equal(page.status, 400, page.html);
    assert.match(page.html, /OAUTH2_(LOGIN_REQUIRED|TOKEN_REQUEST_REJECTED)/);
    assert.equal(auth.counts().token.authorization_code ?? 0, 1, 'exactly one exchange attempt, refused by the provider');

    // Nothing new was stored: the login is still A's (same expiry), not a token from the replay.
    const after = await connectionStatus(runtime, 'conn-replay');
    assert.equal(after.expiresAt, before.expiresAt);

    // And B's own, unused state is spent: the genuine code for B cannot be slipped in afterwards either.
    const late = await openCallback(callbackB, jarB);
    assert.equal(late.status, 400);
    assert.match(late.html, /OAUTH2_INVALID_STATE/);
    assert.deepEqual(runtime.crashes, []);
  });

  describe('IDN / punycode and hostname look-alikes of the API origin', () => {
    let idnRuntimeApi: ApiServer;
    const lanes: Array<[string, (port: number) => string]> = [
      // Cyrillic "а" (U+0430): the URL parser turns it into an xn-- label, another host.
      ['cyrillic', (p) => `http://loc\u0430lhost:${p}/echo`],
      ['punycode', (p) => `http://xn--loclhost-2fg.com:${p}/echo`],
      ['trailingDot', (p) => `http://localhost.:${p}/echo`],
      ['subdomain', (p) => `http://localhost.127.0.0.1.nip.io:${p}/echo`],
      ['ipForm', (p) => `http://127.0.0.1:${p}/echo`],
      ['decimalIp', (p) => `http://2130706433:${p}/echo`],
      ['fullwidthDot', (p) => `http://localhost\uff0eevil:${p}/echo`],
    ];

    before(async () => {
      idnRuntimeApi = await startApiServer(auth);
      const idnConn = connectionNode(auth, {
        id: 'conn-idn',
        grantType: 'client_credentials',
        clientId: auth.clients.service.clientId,
        clientSecret: auth.clients.service.clientSecret,
        scopes: 'api:read',
        apiBaseUrl: `http://localhost:${idnRuntimeApi.port}`,
      });
      await deployAndWait(runtime, [
        tab(),
        conn,
        webConnection(auth, api, runtime, 'conn-replay'),
        idnConn,
        ...lanes.flatMap(([name, url]) => requestLane({ path: `/idn-${name}`, requestNodeId: `idn-${name}`, connectionId: 'conn-idn', url: url(idnRuntimeApi.port) })),
      ]);
    });

    after(async () => {
      await idnRuntimeApi?.close();
    });

    for (const [name] of lanes) {
      it(`${name}: refused with OAUTH2_ORIGIN_NOT_ALLOWED before anything is sent`, async () => {
        idnRuntimeApi.reset();
        auth.resetCounts();
        const err = caught(await callLane(runtime, `/idn-${name}`));
        assert.equal(err.code, 'OAUTH2_ORIGIN_NOT_ALLOWED', err.message);
        assert.equal(idnRuntimeApi.requests.length, 0, 'the API saw nothing');
      });
    }

    it('nothing crashed', () => {
      assert.deepEqual(runtime.crashes, []);
    });
  });
});
