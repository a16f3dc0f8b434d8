import assert from 'node:assert/strict';
import { loginThroughProvider, type AuthServer } from '../support/auth-server';
import { startApiServer, type ApiServer, type SeenRequest } from '../support/api-server';
import { CookieJar, loginFromEditor, openCallback, startLogin } from '../support/editor-login';
import { adminCall, callLane, deployAndWait, serviceConnection, startWatchedAuthServer, startWatchedRuntime, webConnection } from '../support/e2e';
import { connectionNode, dialogConfig, tab, triggerLane } from '../support/flows';
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
