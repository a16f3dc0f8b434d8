import assert from 'node:assert/strict';
import { loginThroughProvider, type AuthServer } from '../support/auth-server';
import { startApiServer, type ApiServer, type SeenRequest } from '../support/api-server';
import { CookieJar, loginFromEditor, openCallback, startLogin } from '../support/editor-login';
import { adminCall, callLane, caught, connectionStatus, deployAndWait, serviceConnection, startWatchedAuthServer, startWatchedRuntime, webConnection } from '../support/e2e';
import { connectionNode, dialogConfig, requestLane, tab, triggerLane } from '../support/flows';
import { startRecordsApi, type RecordsApi } from '../support/records-api';
import type { TestRuntime } from '../support/runtime';

/**
 * A user who may call the admin routes but does not know the deployed client secret, nor the stored tokens,
 * tries to make a route send them to a server of their own: the dialog's body carries the deployed
 * configuration with one endpoint (or the client authentication) changed and no secret typed. Every route that
 * can send a secret or a token (login, device, logout, discover, preview) is tried with each change; the other
 * server must receive neither, and the login routes ask for the secret to be typed again.
 */
describe('adversarial: the admin routes never send a stored secret or token to another server', function () {
  this.timeout(90_000);
  let auth: AuthServer;
  let api: ApiServer;
  let records: RecordsApi;
  /** The attacker's server: records everything, answers 200 on /echo. */
  let other: ApiServer;
  let runtime: TestRuntime;
  const deployed: Record<string, Record<string, unknown>> = {};

  before(async () => {
    auth = await startWatchedAuthServer();
    api = await startApiServer(auth);
    records = await startRecordsApi(auth);
    other = await startApiServer(undefined, { checkTokens: false });
    runtime = await startWatchedRuntime();
    deployed['web-basic'] = webConnection(auth, api, runtime, 'web-basic');
    deployed['web-post'] = {
      ...webConnection(auth, api, runtime, 'web-post'),
      clientId: auth.clients.webPost.clientId,
      authMethod: 'client_secret_post',
      credentials: { clientSecret: auth.clients.webPost.clientSecret },
    };
    deployed['dev-basic'] = connectionNode(auth, {
      id: 'dev-basic',
      grantType: 'device_code',
      clientId: auth.clients.web.clientId,
      clientSecret: auth.clients.web.clientSecret,
      apiBaseUrl: api.url,
    });
    deployed['dev-post'] = connectionNode(auth, {
      id: 'dev-post',
      grantType: 'device_code',
      clientId: auth.clients.webPost.clientId,
      clientSecret: auth.clients.webPost.clientSecret,
      authMethod: 'client_secret_post',
      apiBaseUrl: api.url,
    });
    await deployAndWait(runtime, [
      tab(),
      ...Object.values(deployed),
      serviceConnection(auth, records, 'records-conn'),
      ...triggerLane({ id: 'rc', path: '/poll/rc', connectionId: 'records-conn', config: { url: '/records' } }),
    ]);
  });

  after(async () => {
    await runtime?.stop();
    await other?.close();
    await records?.close();
    await api?.close();
    await auth?.close();
  });

  beforeEach(() => other.reset());

  const secretOf = (id: string): string => (deployed[id].credentials as { clientSecret: string }).clientSecret;

  /** Whether a request that reached the other server carries `secret` (Basic header or form body). */
  function carriesSecret(r: SeenRequest, secret: string): boolean {
    const basic = r.authorization?.startsWith('Basic ') ? Buffer.from(r.authorization.slice(6), 'base64').toString('utf8') : '';
    let body = r.body;
    try {
      body = decodeURIComponent(r.body.replace(/\+/g, ' '));
    } catch {
      // not form-encoded: search it as received
    }
    return basic.includes(secret) || body.includes(secret) || r.body.includes(secret);
  }

  function assertNothingLeaked(secret: string): void {
    const leaks = other.requests.filter((r) => carriesSecret(r, secret));
    assert.deepEqual(leaks.map((r) => `${r.method} ${r.path}`), [], 'the client secret reached the other server');
  }

  const moved = (): Record<string, (node: Record<string, unknown>) => Record<string, unknown>> => ({
    issuer: (n) => ({ ...n, issuer: other.url }),
    authorizationEndpoint: (n) => ({ ...n, authorizationEndpoint: `${other.url}/echo` }),
    tokenEndpoint: (n) => ({ ...n, tokenEndpoint: `${other.url}/echo` }),
    revocationEndpoint: (n) => ({ ...n, revocationEndpoint: `${other.url}/echo` }),
    deviceAuthorizationEndpoint: (n) => ({ ...n, deviceAuthorizationEndpoint: `${other.url}/echo` }),
    authMethod: (n) => ({ ...n, authMethod: n.authMethod === 'client_secret_post' ? 'client_secret_basic' : 'client_secret_post' }),
    'discovery at another issuer': (n) => ({
      ...n,
      issuer: other.url,
      authorizationEndpoint: '',
      tokenEndpoint: '',
      revocationEndpoint: '',
      deviceAuthorizationEndpoint: '',
    }),
  });
  const MOVES = [
    'issuer', 'authorizationEndpoint', 'tokenEndpoint', 'revocationEndpoint', 'deviceAuthorizationEndpoint', 'authMethod', 'discovery at another issuer',
  ];

  function assertSecretAskedFor(res: { status: number; text: string; body: unknown }): void {
    assert.equal(res.status, 400, res.text);
    const error = (res.body as { error: { code: string; message: string } }).error;
    assert.equal(error.code, 'OAUTH2_INVALID_CONFIG', res.text);
    assert.match(error.message, /must be typed again/, res.text);
  }

  describe('POST login: the deployed secret is reused only for the deployed endpoints and client authentication', () => {
    for (const id of ['web-basic', 'web-post']) {
      for (const move of MOVES) {
        it(`${id}, ${move} changed: the secret is asked for, the other server receives nothing secret`, async () => {
          const config = dialogConfig(moved()[move](deployed[id]));
          const jar = new CookieJar();
          const started = await startLogin(runtime, id, config, jar);
          // Had the route started the login, finish it as the admin's browser would: the code exchange is where
          // the secret leaves.
          if (started.authorizeUrl && new URL(started.authorizeUrl).origin === auth.issuer) {
            await openCallback(await loginThroughProvider(started.authorizeUrl), jar);
          }
          assertNothingLeaked(secretOf(id));
          assertSecretAskedFor({ status: started.status, text: JSON.stringify(started), body: started });
        });
      }

      it(`${id}, unchanged: the deployed secret is used and the login completes`, async () => {
        const page = await loginFromEditor(runtime, id, dialogConfig(deployed[id]));
        assert.equal(page.status, 200, page.html);
        assert.deepEqual(other.requests, []);
      });
    }
  });

  describe('POST device: the deployed secret is reused only for the deployed endpoints and client authentication', () => {
    for (const id of ['dev-basic', 'dev-post']) {
      for (const move of MOVES) {
        it(`${id}, ${move} changed: the secret is asked for, the other server receives nothing secret`, async () => {
          const res = await adminCall(runtime, `oauth2-connection/${id}/device`, { body: { config: dialogConfig(moved()[move](deployed[id])) } });
          assertNothingLeaked(secretOf(id));
          assertSecretAskedFor(res);
        });
      }
    }
  });

  describe('POST logout: stored tokens are revoked only where the login was made', () => {
    /** Tokens reached the other server: a revocation request (token=...) or any POST. */
    const tokensSent = (): string[] => other.requests.filter((r) => r.method === 'POST' || /token=/.test(r.body)).map((r) => `${r.method} ${r.path}`);

    it('a deployed connection revokes at its deployed endpoints, whatever the body says', async () => {
      const page = await loginFromEditor(runtime, 'web-basic', dialogConfig(deployed['web-basic']));
      assert.equal(page.status, 200, page.html);
      auth.resetCounts();
      const res = await adminCall(runtime, 'oauth2-connection/web-basic/logout', {
        body: { config: dialogConfig(moved().revocationEndpoint(deployed['web-basic'])) },
      });
      assert.equal(res.status, 200, res.text);
      assert.deepEqual(tokensSent(), []);
      assert.equal((res.body as { refreshTokenRevoked: boolean }).refreshTokenRevoked, true);
      assert.ok(auth.counts().revocation >= 1);
    });

    // A login made in the dialog and not deployed: the tokens are stored, the connection's endpoints are only
    // in the body. The login remembers where it was made; a logout sends the tokens nowhere else.
    const dialogNode = (): Record<string, unknown> => ({ ...webConnection(auth, api, runtime, 'dialog-only') });

    for (const move of MOVES) {
      it(`a login not deployed, ${move} changed at logout: the tokens go nowhere, and are not reported revoked`, async () => {
        const node = dialogNode();
        const page = await loginFromEditor(runtime, 'dialog-only', dialogConfig(node), auth.clients.web.clientSecret);
        assert.equal(page.status, 200, page.html);
        other.reset();
        const res = await adminCall(runtime, 'oauth2-connection/dialog-only/logout', {
          body: { config: dialogConfig(moved()[move](node)), clientSecret: auth.clients.web.clientSecret },
        });
        assert.deepEqual(tokensSent(), [], 'the stored tokens reached the other server');
        assert.equal(res.status, 200, res.text);
        assert.deepEqual(res.body, { refreshTokenRevoked: false, accessTokenRevoked: false });
        const status = await adminCall(runtime, 'oauth2-connection/dialog-only/status');
        assert.equal((status.body as { state: string }).state, 'logged-out');
      });
    }

    it('a login not deployed, logged out with the settings it was made with: revoked at the provider', async () => {
      const node = dialogNode();
      const page = await loginFromEditor(runtime, 'dialog-only', dialogConfig(node), auth.clients.web.clientSecret);
      assert.equal(page.status, 200, page.html);
      auth.resetCounts();
      const res = await adminCall(runtime, 'oauth2-connection/dialog-only/logout', {
        body: { config: dialogConfig(node), clientSecret: auth.clients.web.clientSecret },
      });
      assert.equal(res.status, 200, res.text);
      assert.equal((res.body as { refreshTokenRevoked: boolean }).refreshTokenRevoked, true);
      assert.ok(auth.counts().revocation >= 1);
      assert.deepEqual(other.requests, []);
    });
  });

  it('POST discover at another issuer sends it no credential', async () => {
    const res = await adminCall(runtime, 'oauth2-connection/discover', { body: { issuer: other.url, config: dialogConfig(deployed['web-basic']) } });
    assert.ok(res.status >= 400, res.text);
    assert.ok(other.requests.length >= 1, 'discovery went to the other issuer');
    for (const r of other.requests) {
      assert.equal(r.authorization, undefined, `${r.method} ${r.path}`);
      assert.equal(carriesSecret(r, secretOf('web-basic')), false);
    }
  });

  it('POST preview uses the deployed node and connection: a body naming another API sends it nothing', async () => {
    records.add('alpha', new Date(Date.now() - 60_000));
    const res = await adminCall(runtime, 'oauth2-record-change/rc/preview', {
      body: {
        url: `${other.url}/echo`,
        config: { apiBaseUrl: other.url, allowedOrigins: other.url, url: `${other.url}/echo` },
        apiBaseUrl: other.url,
        allowedOrigins: other.url,
      },
    });
    assert.equal(res.status, 200, res.text);
    assert.equal((res.body as { total: number }).total, 0, res.text);
    assert.deepEqual(other.requests, []);
    // The deployed node's poll still works through the deployed connection.
    assert.equal((await callLane(runtime, '/poll/rc')).status, 200);
    assert.deepEqual(other.requests, []);
  });

  it('nothing crashed', () => {
    assert.deepEqual(runtime.crashes, []);
  });
});

/**
 * Tokens belong to the authorization-server settings they were obtained with. Two real providers: B is the one
 * deployed, A the one a user types into the dialog (another issuer, so every endpoint moves, the token endpoint
 * among them). Each side's API checks tokens against its own provider, so a token of A reaching B's API (or the
 * other way round) shows in what the APIs saw.
 */
describe('adversarial: a connection uses only tokens obtained with its deployed authorization-server settings', function () {
  this.timeout(90_000);
  let authA: AuthServer;
  let authB: AuthServer;
  let apiA: ApiServer;
  let apiB: ApiServer;
  /** A recording server standing in for a moved token (and revocation) endpoint: it must receive nothing. */
  let other: ApiServer;
  let runtime: TestRuntime;

  before(async () => {
    [authA, authB] = await Promise.all([startWatchedAuthServer(), startWatchedAuthServer()]);
    [apiA, apiB, other] = await Promise.all([startApiServer(authA), startApiServer(authB), startApiServer(undefined, { checkTokens: false })]);
    runtime = await startWatchedRuntime();
  });

  after(async () => {
    await runtime?.stop();
    await Promise.all([other?.close(), apiA?.close(), apiB?.close()]);
    await Promise.all([authA?.close(), authB?.close()]);
  });

  const bearerOf = (r: SeenRequest): string | undefined => (r.authorization?.startsWith('Bearer ') ? r.authorization.slice(7) : undefined);

  /** Bearer tokens `api` received that `auth` issued (and still knows). */
  async function tokensOf(auth: AuthServer, api: ApiServer): Promise<string[]> {
    const found: string[] = [];
    for (const r of api.requests) {
      const bearer = bearerOf(r);
      if (bearer && (await auth.validateAccessToken(bearer)).active) found.push(`${r.method} ${r.path}`);
    }
    return found;
  }

  const lane = (id: string): Record<string, unknown>[] => requestLane({ path: `/${id}`, requestNodeId: `req-${id}`, connectionId: id, url: '/records' });

  it("a dialog login with another provider's settings is not used by the deployed connection, and works once they are deployed", async () => {
    const deployedB = webConnection(authB, apiB, runtime, 'bound');
    await deployAndWait(runtime, [tab(), deployedB, ...lane('bound')]);
    const dialogA = webConnection(authA, apiA, runtime, 'bound');

    const page = await loginFromEditor(runtime, 'bound', dialogConfig(dialogA), authA.clients.web.clientSecret);
    assert.equal(page.status, 200, page.html);
    assert.equal(authA.counts().token.authorization_code, 1);

    apiB.reset();
    authB.resetCounts();
    const res = await callLane(runtime, '/bound');
    assert.deepEqual(await tokensOf(authA, apiB), [], "B's API received a token of A");
    assert.deepEqual(authB.counts().token, {}, "A's refresh token (or anything) reached B's token endpoint");
    assert.equal(authB.counts().revocation, 0);
    assert.deepEqual(apiB.requests, [], 'the deployed connection sent a request without a token of its own');
    assert.equal(caught(res).code, 'OAUTH2_LOGIN_REQUIRED', res.text);
    // The dialog says the login waits for Deploy, and so does the status.
    assert.match(page.html, /"awaitsDeploy":true/);
    const status = await connectionStatus(runtime, 'bound');
    assert.equal(status.state, 'login-required');
    assert.equal(status.stateReason, 'awaitsDeploy');
    assert.match(String(status.stateMessage), /Deploy/);

    // Deploying the dialog's settings uses the login at once: no second login.
    await deployAndWait(runtime, [tab(), { ...dialogA }, ...lane('bound')]);
    const used = await callLane(runtime, '/bound');
    assert.equal(used.status, 200, used.text);
    assert.ok(apiA.requests.length >= 1 && apiA.requests.every((r) => r.authorised), 'A\'s API got A\'s token');
    assert.equal(authA.counts().token.authorization_code, 1, 'the user had to log in again');
    assert.equal((await connectionStatus(runtime, 'bound')).state, 'ready');
  });

  it('a deploy that moves the token endpoint: login required, and the login is sent neither to it nor revoked there', async () => {
    const before = webConnection(authA, apiA, runtime, 'moved');
    await deployAndWait(runtime, [tab(), before, ...lane('moved')]);
    const page = await loginFromEditor(runtime, 'moved', dialogConfig(before));
    assert.equal(page.status, 200, page.html);
    assert.doesNotMatch(page.html, /awaitsDeploy/);
    assert.equal((await callLane(runtime, '/moved')).status, 200);

    const after = { ...before, tokenEndpoint: `${other.url}/token`, revocationEndpoint: `${other.url}/revoke` };
    await deployAndWait(runtime, [tab(), after, ...lane('moved')]);
    other.reset();
    apiA.reset();
    const res = await callLane(runtime, '/moved');
    assert.equal(caught(res).code, 'OAUTH2_LOGIN_REQUIRED', res.text);
    assert.match(caught(res).message, /changed since the login/);
    const status = await connectionStatus(runtime, 'moved');
    assert.equal(status.state, 'login-required');
    assert.equal(status.stateReason, 'providerChanged');
    assert.deepEqual(apiA.requests, [], 'the old login was used after the provider settings changed');

    const out = await adminCall(runtime, 'oauth2-connection/moved/logout', { body: { config: dialogConfig(after) } });
    assert.equal(out.status, 200, out.text);
    assert.deepEqual(out.body, { refreshTokenRevoked: false, accessTokenRevoked: false });
    assert.deepEqual(other.requests.map((r) => `${r.method} ${r.path}`), [], 'the stored tokens reached the new endpoints');
  });

  it('client credentials after a deploy that changes the provider: a new token is fetched there, the old one goes nowhere', async () => {
    await deployAndWait(runtime, [tab(), serviceConnection(authB, apiB, 'svc'), ...lane('svc')]);
    assert.equal((await callLane(runtime, '/svc')).status, 200);
    await deployAndWait(runtime, [tab(), serviceConnection(authA, apiA, 'svc'), ...lane('svc')]);
    apiA.reset();
    authA.resetCounts();
    const res = await callLane(runtime, '/svc');
    assert.equal(res.status, 200, res.text);
    assert.deepEqual(await tokensOf(authB, apiA), [], "A's API received the token fetched from B");
    assert.ok(apiA.requests.length === 1 && apiA.requests[0].authorised, 'the first request carried a token of A');
    assert.equal(authA.counts().token.client_credentials, 1);
  });

  it('nothing crashed', () => {
    assert.deepEqual(runtime.crashes, []);
  });
});
