/**
 * The grant suites against a second, independent authorization server: Glewlwyd 2.7 from Debian
 * (test/support/glewlwyd.ts), driven through the product: a real Node-RED runtime with oauth2-connection and
 * http-oauth2-request nodes, the editor's admin routes for the logins, a test API that asks Glewlwyd's
 * introspection endpoint whether each bearer token is valid.
 *
 * Skipped only when the glewlwyd program is missing (scripts/provision.js installs it; in CI it must run).
 * Glewlwyd refuses without an OAuth error body (an empty 400 for a dead refresh token, an empty 403 for a wrong
 * secret): the two refusal tests pin that the product still reads them as refusals.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { DeviceLoginView } from '../../nodes/lib/login/login-service';
import { startApiServer, type ApiServer } from '../support/api-server';
import { adminCall, callLane, caught, connectionStatus, deployAndWait, sleep, startWatchedRuntime, waitFor } from '../support/e2e';
import { CookieJar, openCallback, startLogin } from '../support/editor-login';
import { connectionNode, dialogConfig, requestLane, tab, type ConnectionOptions } from '../support/flows';
import { startGlewlwyd, type Glewlwyd } from '../support/glewlwyd';
import { addSecret, watchText } from '../support/leaks';
import { needsSystemPackage } from '../support/system-packages';
import type { TestRuntime } from '../support/runtime';

const SCOPES = 'openid api:read';

/**
 * A connection to Glewlwyd as a user fills the dialog from its discovery document: Glewlwyd's endpoints live
 * under the issuer (`/api/oidc`), with its own names for revocation and device authorization. Glewlwyd sends
 * `iss` in the authorization response but its discovery document does not say so, so the dialog's "server
 * sends iss" stays off, as Discover leaves it.
 */
function glewlwydConnection(gw: Glewlwyd, o: ConnectionOptions): Record<string, unknown> {
  const node = connectionNode(gw, { scopes: SCOPES, issParameterSupported: false, ...o });
  if (!o.useDiscovery) {
    node.authorizationEndpoint = gw.endpoints.authorization;
    node.tokenEndpoint = gw.endpoints.token;
    node.revocationEndpoint = gw.endpoints.revocation;
    node.deviceAuthorizationEndpoint = gw.endpoints.deviceAuthorization;
  }
  return node;
}

/** Log in from the editor: the Log in route, Glewlwyd's login and grant (test/support/glewlwyd.ts), the callback. */
async function loginFromEditor(
  gw: Glewlwyd,
  runtime: TestRuntime,
  connectionId: string,
  node: Record<string, unknown>,
  clientSecret?: string,
): Promise<{ status: number; html: string; authorizeUrl: URL }> {
  const jar = new CookieJar();
  const started = await startLogin(runtime, connectionId, dialogConfig(node), jar, clientSecret);
  if (!started.authorizeUrl) throw new Error(`login did not start: ${started.status} ${JSON.stringify(started.error)}`);
  const callback = await gw.login(started.authorizeUrl);
  const page = await openCallback(callback, jar);
  watchText(page.html);
  return { ...page, authorizeUrl: new URL(started.authorizeUrl) };
}

describe('e2e against Glewlwyd: discovery and client credentials', function () {
  needsSystemPackage(this, 'glewlwyd');
  this.timeout(60_000);
  const TTL_SEC = 4;
  let gw: Glewlwyd;
  let api: ApiServer;
  /** An API that checks no token: Glewlwyd's introspection disowns client_secret_post tokens (see below). */
  let openApi: ApiServer;
  let runtime: TestRuntime;
  const wrongSecret = `wrong-secret-${randomBytes(12).toString('hex')}`;
  addSecret(wrongSecret);

  const ccCalls = (): number => gw.counts().token.client_credentials ?? 0;

  before(async () => {
    gw = await startGlewlwyd({ accessTokenTtlSec: TTL_SEC });
    api = await startApiServer(gw);
    openApi = await startApiServer(undefined, { checkTokens: false });
    runtime = await startWatchedRuntime();
    const base = { grantType: 'client_credentials' as const, clientId: gw.clients.service.clientId, scopes: 'api:read', apiBaseUrl: api.url };
    const secret = gw.clients.service.clientSecret;
    await deployAndWait(runtime, [
      tab(),
      glewlwydConnection(gw, { ...base, clientSecret: secret }),
      glewlwydConnection(gw, { ...base, id: 'conn-post', clientSecret: secret, authMethod: 'client_secret_post', apiBaseUrl: openApi.url }),
      glewlwydConnection(gw, { ...base, id: 'conn-disc', clientSecret: secret, useDiscovery: true }),
      glewlwydConnection(gw, { ...base, id: 'conn-bad', clientSecret: wrongSecret }),
      ...[1, 2, 3, 4, 5].flatMap((n) => requestLane({ path: `/records${n}`, requestNodeId: `req${n}`, url: '/records' })),
      ...requestLane({ path: '/post', requestNodeId: 'reqPost', connectionId: 'conn-post', url: '/echo' }),
      ...requestLane({ path: '/disc', requestNodeId: 'reqDisc', connectionId: 'conn-disc', url: '/records' }),
      ...requestLane({ path: '/bad', requestNodeId: 'reqBad', connectionId: 'conn-bad', url: '/records' }),
    ]);
  });

  after(async () => {
    await runtime?.stop();
    await api?.close();
    await openApi?.close();
    await gw?.close();
  });

  it("Discover returns Glewlwyd's endpoints from its issuer", async () => {
    const res = await adminCall(runtime, 'oauth2-connection/discover', { body: { issuer: gw.issuer } });
    assert.equal(res.status, 200, res.text);
    const md = res.body as Record<string, unknown>;
    assert.equal(md.issuer, gw.issuer);
    assert.equal(md.authorizationEndpoint, gw.endpoints.authorization);
    assert.equal(md.tokenEndpoint, gw.endpoints.token);
    assert.equal(md.revocationEndpoint, gw.endpoints.revocation);
    assert.equal(md.deviceAuthorizationEndpoint, gw.endpoints.deviceAuthorization);
    // Glewlwyd sends iss in the authorization response (its oauth-as-iss-id option) without advertising
    // authorization_response_iss_parameter_supported: Discover can only report what the document says.
    assert.equal(md.issParameterSupported, false);
  });

  it('50 concurrent requests over 5 nodes with a cold cache: exactly one token call, all authorised', async () => {
    gw.resetCounts();
    api.reset();
    const results = await Promise.all(Array.from({ length: 50 }, (_, i) => callLane(runtime, `/records${(i % 5) + 1}`)));
    const failed = results.filter((r) => r.status !== 200);
    assert.equal(failed.length, 0, JSON.stringify(failed.slice(0, 3).map((f) => f.text)));
    assert.equal(ccCalls(), 1);
    assert.equal(api.requests.length, 50);
    assert.ok(api.requests.every((r) => r.authorised), 'Glewlwyd says every token the API saw is active');
    assert.equal(new Set(api.requests.map((r) => r.authorization)).size, 1, 'every request used the same token');
    assert.match(String(api.requests[0]?.authorization), /^Bearer /, 'Glewlwyd says token_type "bearer": the header says Bearer');
  });

  it('the token is reused until it expires, then exactly one new call', async () => {
    gw.resetCounts();
    for (let i = 0; i < 3; i += 1) assert.equal((await callLane(runtime, '/records1')).status, 200);
    assert.equal(ccCalls(), 0, 'cached token reused');
    const before = api.requests.at(-1)?.authorization;
    await sleep(TTL_SEC * 1000 + 300);
    const after = await Promise.all(Array.from({ length: 10 }, () => callLane(runtime, '/records2')));
    assert.ok(after.every((r) => r.status === 200), JSON.stringify(after.map((r) => r.status)));
    assert.equal(ccCalls(), 1, 'one new token after expiry');
    assert.notEqual(api.requests.at(-1)?.authorization, before, 'a new token');
  });

  it('client_secret_post: the secret goes in the body, and Glewlwyd issues a token it signed', async () => {
    gw.resetCounts();
    const res = await callLane(runtime, '/post', { apiEcho: true });
    assert.equal(res.status, 200, res.text);
    assert.deepEqual(gw.counts().tokenAuth, { client_secret_post: 1 });
    // Glewlwyd 2.7.5's introspection answers {"active":false} for a client_credentials token issued to a
    // client that authenticated with client_secret_post (the same client with Basic gets "active": true), so
    // the token is checked against Glewlwyd's JWKS instead: signature, issuer, expiry and client.
    const bearer = /^Bearer (.+)$/.exec(openApi.requests.at(-1)?.authorization ?? '')?.[1];
    assert.ok(bearer, 'a bearer token reached the API');
    const { createRemoteJWKSet, jwtVerify } = await import('jose'); // ESM only
    const { payload } = await jwtVerify(bearer, createRemoteJWKSet(new URL(`${gw.issuer}/jwks`)), { issuer: gw.issuer });
    assert.equal(payload.client_id, gw.clients.service.clientId);
    assert.equal(payload.scope, 'api:read');
  });

  it('discovery at run time: a connection with only the issuer set works', async () => {
    const res = await callLane(runtime, '/disc');
    assert.equal(res.status, 200, res.text);
    assert.deepEqual(res.body, [
      { id: 1, name: 'first' },
      { id: 2, name: 'second' },
    ]);
  });

  it('a wrong secret (Glewlwyd: 403, empty body) is a refused request, no secret in the message, no hammering', async () => {
    gw.resetCounts();
    const first = caught(await callLane(runtime, '/bad'));
    const status = await connectionStatus(runtime, 'conn-bad');
    const second = caught(await callLane(runtime, '/bad'));
    for (const text of [first.message, second.message, JSON.stringify(status), ...runtime.logs.map((l) => l.text)]) {
      assert.ok(!text.includes(wrongSecret) && !text.includes(gw.clients.service.clientSecret), 'no client secret in messages, status or logs');
    }
    assert.deepEqual(
      { codes: [first.code, second.code], state: status.state, namesStatus403: /\b403\b/.test(first.message), tokenCalls: ccCalls() },
      { codes: ['OAUTH2_TOKEN_REQUEST_REJECTED', 'OAUTH2_TOKEN_REQUEST_REJECTED'], state: 'refused', namesStatus403: true, tokenCalls: 1 },
      `the message: ${first.message}`,
    );
  });

  it('nothing crashed the runtime', () => {
    assert.deepEqual(runtime.crashes, []);
  });
});

describe('e2e against Glewlwyd: authorization code + PKCE, refresh, rotation, restart, refused refresh, log out', function () {
  needsSystemPackage(this, 'glewlwyd');
  this.timeout(90_000);
  const TTL_SEC = 3;
  let gw: Glewlwyd;
  let api: ApiServer;
  let runtime: TestRuntime;
  let conn: Record<string, unknown>;

  const flows = (): Record<string, unknown>[] => [
    tab(),
    conn,
    ...[1, 2, 3, 4, 5].flatMap((n) => requestLane({ path: `/records${n}`, requestNodeId: `req${n}`, url: '/records' })),
  ];
  const refreshCalls = (): number => gw.counts().token.refresh_token ?? 0;

  before(async () => {
    gw = await startGlewlwyd({ accessTokenTtlSec: TTL_SEC });
    api = await startApiServer(gw);
    runtime = await startWatchedRuntime();
    const redirectUri = new URL('oauth2-connection/callback', runtime.adminUrl).href;
    await gw.addRedirectUri(redirectUri);
    conn = glewlwydConnection(gw, {
      clientId: gw.clients.web.clientId,
      clientSecret: gw.clients.web.clientSecret,
      apiBaseUrl: api.url,
      redirectUri,
    });
  });

  after(async () => {
    await runtime?.stop();
    await api?.close();
    await gw?.close();
  });

  it('logs in from the editor with PKCE S256 through Glewlwyd, then requests are authorised', async () => {
    assert.equal((await connectionStatus(runtime)).state, 'logged-out');
    gw.resetCounts();
    const page = await loginFromEditor(gw, runtime, 'conn1', conn, gw.clients.web.clientSecret);
    assert.equal(page.status, 200, page.html);
    assert.equal(page.authorizeUrl.searchParams.get('code_challenge_method'), 'S256');
    assert.match(page.authorizeUrl.searchParams.get('code_challenge') ?? '', /^[A-Za-z0-9_-]{43}$/);
    assert.equal(gw.counts().token.authorization_code, 1);
    const status = await connectionStatus(runtime);
    assert.equal(status.state, 'ready', JSON.stringify(status));
    assert.equal(status.hasRefreshToken, true);
    assert.ok((status.scopes as string[]).includes('api:read'), JSON.stringify(status.scopes));

    await deployAndWait(runtime, flows());
    api.reset();
    const res = await callLane(runtime, '/records1');
    assert.equal(res.status, 200, res.text);
    assert.equal(api.requests.at(-1)?.authorised, true, 'Glewlwyd says the token is active');
  });

  it('stays authorised across several expiries; every refresh rotates the one-time refresh token', async () => {
    gw.resetCounts();
    const issuedBefore = gw.refreshTokens().length;
    for (let i = 0; i < 3; i += 1) {
      await sleep(TTL_SEC * 1000 + 200);
      const res = await callLane(runtime, '/records1');
      assert.equal(res.status, 200, res.text);
    }
    const refreshes = refreshCalls();
    assert.ok(refreshes >= 3 && refreshes <= 4, `refreshes: ${refreshes}`);
    const rotated = gw.refreshTokens().slice(issuedBefore);
    assert.equal(rotated.length, refreshes, 'Glewlwyd answered each refresh with a new refresh token');
    assert.equal(new Set(rotated).size, rotated.length);
  });

  it('100 concurrent requests over 5 nodes on an expired token: one refresh (a second would break the chain), all succeed', async () => {
    await sleep(TTL_SEC * 1000 + 200);
    gw.resetCounts();
    api.reset();
    const started = Date.now();
    const results = await Promise.all(Array.from({ length: 100 }, (_, i) => callLane(runtime, `/records${(i % 5) + 1}`)));
    const tookMs = Date.now() - started;
    const failed = results.filter((r) => r.status !== 200);
    assert.equal(failed.length, 0, JSON.stringify(failed.slice(0, 3).map((f) => f.text)));
    const refreshes = refreshCalls();
    if (tookMs < 1500) assert.equal(refreshes, 1, `refreshes in a ${tookMs} ms burst`);
    else assert.ok(refreshes === 1 || refreshes === 2, `refreshes in a ${tookMs} ms burst: ${refreshes}`);
    assert.equal(api.requests.filter((r) => !r.authorised).length, 0);
  });

  it('restarted without a deploy, it is still authorised with the rotated refresh token', async () => {
    assert.equal((await callLane(runtime, '/records1')).status, 200);
    const userDir = runtime.userDir;
    const port = runtime.port;
    await runtime.stop();
    gw.resetCounts();
    runtime = await startWatchedRuntime({ userDir, port });
    await sleep(TTL_SEC * 1000 + 200);
    const res = await callLane(runtime, '/records1');
    assert.equal(res.status, 200, res.text);
    assert.equal(refreshCalls(), 1);
    assert.equal((await connectionStatus(runtime)).state, 'ready');
  });

  it('an access token revoked early at Glewlwyd (the API answers 401) is renewed once and the request retried', async () => {
    api.reset();
    assert.equal((await callLane(runtime, '/records1')).status, 200);
    const bearer = /^Bearer (.+)$/.exec(api.requests.at(-1)?.authorization ?? '')?.[1];
    assert.ok(bearer);
    assert.equal(await gw.revoke(bearer, gw.clients.web, 'access_token'), 200);
    assert.equal((await gw.validateAccessToken(bearer)).active, false, 'Glewlwyd now calls the token inactive');
    gw.resetCounts();
    api.reset();
    const res = await callLane(runtime, '/records1');
    assert.equal(res.status, 200, res.text);
    assert.equal(refreshCalls(), 1);
    assert.deepEqual(api.requests.map((r) => r.authorised), [false, true], 'the revoked token, then the renewed one');
  });

  it('a refresh token revoked at Glewlwyd (400, empty body) leads to login required, with no hammering', async () => {
    // Revoke every refresh token Glewlwyd issued, as an administrator or the user removing the app would.
    for (const token of gw.refreshTokens()) await gw.revoke(token, gw.clients.web);
    await sleep(TTL_SEC * 1000 + 200);
    gw.resetCounts();
    const first = caught(await callLane(runtime, '/records1'));
    const second = caught(await callLane(runtime, '/records2'));
    const third = caught(await callLane(runtime, '/records3'));
    const status = await connectionStatus(runtime);
    assert.deepEqual(
      { codes: [first.code, second.code, third.code], refreshes: refreshCalls(), state: status.state },
      { codes: ['OAUTH2_LOGIN_REQUIRED', 'OAUTH2_LOGIN_REQUIRED', 'OAUTH2_LOGIN_REQUIRED'], refreshes: 1, state: 'login-required' },
      `the first answer: ${first.message}`,
    );
  });

  it('a new login resumes the flows', async () => {
    const page = await loginFromEditor(gw, runtime, 'conn1', conn);
    assert.equal(page.status, 200, page.html);
    const res = await callLane(runtime, '/records1');
    assert.equal(res.status, 200, res.text);
  });

  it('Log out revokes the refresh token at Glewlwyd and clears the tokens', async () => {
    assert.equal((await callLane(runtime, '/records1')).status, 200);
    const last = gw.refreshTokens().at(-1);
    assert.ok(last);
    gw.resetCounts();
    const res = await adminCall(runtime, 'oauth2-connection/conn1/logout', { body: { config: dialogConfig(conn) } });
    assert.equal(res.status, 200, res.text);
    assert.equal((res.body as { refreshTokenRevoked: boolean }).refreshTokenRevoked, true);
    assert.ok(gw.counts().revocation >= 1);
    assert.equal((await connectionStatus(runtime)).state, 'logged-out');
    assert.equal(caught(await callLane(runtime, '/records1')).code, 'OAUTH2_LOGIN_REQUIRED');
    // Glewlwyd itself no longer honours the refresh token.
    const refused = await fetch(gw.endpoints.token, {
      method: 'POST',
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        authorization: `Basic ${Buffer.from(`${gw.clients.web.clientId}:${gw.clients.web.clientSecret}`).toString('base64')}`,
      },
      body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: last }).toString(),
    });
    await refused.arrayBuffer();
    assert.equal(refused.status, 400);
  });

  it('nothing crashed the runtime', () => {
    assert.deepEqual(runtime.crashes, []);
  });
});

describe('e2e against Glewlwyd: device code', function () {
  needsSystemPackage(this, 'glewlwyd');
  this.timeout(60_000);
  let gw: Glewlwyd;
  let api: ApiServer;
  let runtime: TestRuntime;
  let conn: Record<string, unknown>;

  before(async () => {
    gw = await startGlewlwyd({ accessTokenTtlSec: 3 });
    api = await startApiServer(gw);
    runtime = await startWatchedRuntime();
    conn = glewlwydConnection(gw, {
      grantType: 'device_code',
      clientId: gw.clients.device.clientId,
      clientSecret: gw.clients.device.clientSecret,
      apiBaseUrl: api.url,
    });
    await deployAndWait(runtime, [tab(), conn, ...requestLane({ path: '/records', requestNodeId: 'req1', url: '/records' })]);
  });

  after(async () => {
    await runtime?.stop();
    await api?.close();
    await gw?.close();
  });

  it('approved at Glewlwyd: pending, then ready within the polling interval; requests work and refresh', async () => {
    assert.equal(caught(await callLane(runtime, '/records')).code, 'OAUTH2_LOGIN_REQUIRED');
    gw.resetCounts();
    const res = await adminCall(runtime, 'oauth2-connection/conn1/device', { body: { config: dialogConfig(conn) } });
    assert.equal(res.status, 200, res.text);
    assert.doesNotMatch(res.text, /device_?code/i, 'the device code never reaches the editor');
    const started = res.body as DeviceLoginView;
    assert.equal(started.status, 'pending');
    assert.ok(started.verificationUri.startsWith(gw.issuer), started.verificationUri);
    assert.equal(gw.counts().deviceAuthorization, 1);

    await gw.approveDevice(started.userCode);
    const done = await waitFor(
      async () => {
        const s = await connectionStatus(runtime);
        return (s.device as DeviceLoginView).status === 'approved' && s.state === 'ready' ? s : undefined;
      },
      started.intervalSec * 1000 + 4000,
      'the device login to be approved',
    );
    assert.equal(done.hasRefreshToken, true);
    const polls = gw.counts().token['urn:ietf:params:oauth:grant-type:device_code'] ?? 0;
    assert.ok(polls >= 1 && polls <= 4, `device token polls: ${polls}`);

    api.reset();
    assert.equal((await callLane(runtime, '/records')).status, 200);
    await sleep(3200);
    gw.resetCounts();
    assert.equal((await callLane(runtime, '/records')).status, 200);
    assert.equal(gw.counts().token.refresh_token, 1);
    assert.ok(api.requests.every((r) => r.authorised));
  });

  it('nothing crashed the runtime', () => {
    assert.deepEqual(runtime.crashes, []);
  });
});
