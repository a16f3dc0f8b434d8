import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import assert from 'node:assert/strict';
import { loginThroughProvider, startAuthServer, type AuthServer } from '../support/auth-server';
import { startApiServer, type ApiServer } from '../support/api-server';
import { CookieJar, openCallback, startLogin } from '../support/editor-login';
import { connectionNode, dialogConfig, requestLane, tab } from '../support/flows';
import { deployAndWait } from '../support/e2e';
import { startGlewlwyd } from '../support/glewlwyd';
import { watchAuthServer, watchLogs, watchText, watchUserDir } from '../support/leaks';
import { needsSystemPackage } from '../support/system-packages';
import { startRuntime, tempUserDir, type TestRuntime } from '../support/runtime';

/** What this suite needs of an authorization server with discovery and a confidential web client. */
interface Server {
  issuer: string;
  client: { clientId: string; clientSecret: string };
  scopes: string;
  /** Whether the server's discovery says it sends `iss` (the dialog's checkbox, as Discover sets it). */
  issParameterSupported: boolean;
  addRedirectUri(uri: string): Promise<void> | void;
  /** The user's login and consent at the server, from an authorize URL; the redirect back. */
  login(authorizeUrl: string): Promise<URL>;
  codeExchanges(): number;
  resetCounts(): void;
  /** For the test API: whether the server says an access token is active. */
  validateAccessToken: AuthServer['validateAccessToken'];
  close(): Promise<void>;
}

const servers: { name: string; systemPackage?: string; start(): Promise<Server> }[] = [
  {
    name: 'oidc-provider',
    async start() {
      const auth = await startAuthServer({ accessTokenTtlSec: 3 });
      watchAuthServer(auth);
      return {
        issuer: auth.issuer,
        client: auth.clients.web,
        scopes: 'openid offline_access api:read',
        issParameterSupported: true,
        addRedirectUri: (uri) => auth.addRedirectUri(uri),
        login: (url) => loginThroughProvider(url),
        codeExchanges: () => auth.counts().token.authorization_code ?? 0,
        resetCounts: () => auth.resetCounts(),
        validateAccessToken: (token) => auth.validateAccessToken(token),
        close: () => auth.close(),
      };
    },
  },
  {
    name: 'Glewlwyd',
    systemPackage: 'glewlwyd',
    async start() {
      const gw = await startGlewlwyd({ accessTokenTtlSec: 3 });
      return {
        issuer: gw.issuer,
        client: gw.clients.web,
        scopes: 'openid api:read',
        issParameterSupported: false,
        addRedirectUri: (uri) => gw.addRedirectUri(uri),
        login: (url) => gw.login(url),
        codeExchanges: () => gw.counts().token.authorization_code ?? 0,
        resetCounts: () => gw.resetCounts(),
        validateAccessToken: (token) => gw.validateAccessToken(token),
        close: () => gw.close(),
      };
    },
  },
];

/**
 * A connection deployed with an issuer, client id and secret and no endpoints (discovered at run time), then
 * opened in the dialog: Discover fills in the endpoints, Log in. The deployed secret goes exactly where the
 * deployed connection discovers its endpoints, and nowhere else.
 */
for (const server of servers) describe(`e2e against ${server.name}: Discover, then Log in, on a deployed discovery-only connection`, function () {
  if (server.systemPackage) needsSystemPackage(this, server.systemPackage);
  this.timeout(90_000);
  let auth: Server;
  let api: ApiServer;
  let runtime: TestRuntime;
  let userDir: string;
  let conn: Record<string, unknown>;
  let discovered: Record<string, unknown>;

  const flows = (connection: Record<string, unknown>): Record<string, unknown>[] => [
    tab(),
    connection,
    ...requestLane({ path: '/records', requestNodeId: 'req1', url: '/records' }),
  ];

  async function status(): Promise<Record<string, unknown>> {
    const res = await runtime.admin('oauth2-connection/conn1/status');
    const text = await res.text();
    watchText(text);
    return JSON.parse(text) as Record<string, unknown>;
  }

  async function records(): Promise<number> {
    const res = await fetch(new URL('api/records', runtime.url + '/'));
    watchText(await res.text());
    return res.status;
  }

  /** The dialog after pressing Discover: the provider's endpoints in the fields (as the editor fills them). */
  async function discover(): Promise<Record<string, unknown>> {
    const res = await runtime.admin('oauth2-connection/discover', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ issuer: auth.issuer }),
    });
    assert.equal(res.status, 200);
    const meta = (await res.json()) as Record<string, string | undefined>;
    const config = dialogConfig(conn);
    for (const field of ['authorizationEndpoint', 'tokenEndpoint', 'revocationEndpoint', 'deviceAuthorizationEndpoint']) {
      config[field] = meta[field] ?? '';
    }
    config.issuer = meta.issuer ?? auth.issuer;
    return config;
  }

  /** Log in as the editor does: the Log in route, the server's login and consent, the callback. */
  async function loginFromEditor(config: Record<string, unknown>, clientSecret: string): Promise<{ status: number; html: string }> {
    const jar = new CookieJar();
    const started = await startLogin(runtime, 'conn1', config, jar, clientSecret);
    if (!started.authorizeUrl) throw new Error(`login did not start: ${started.status} ${JSON.stringify(started.error)}`);
    return openCallback(await auth.login(started.authorizeUrl), jar);
  }

  before(async () => {
    auth = await server.start();
    api = await startApiServer(auth);
    userDir = tempUserDir();
    watchUserDir(userDir);
    runtime = await startRuntime({ userDir });
    watchLogs(runtime.logs);
    const redirectUri = new URL('oauth2-connection/callback', runtime.adminUrl).href;
    await auth.addRedirectUri(redirectUri);
    conn = connectionNode(auth, {
      useDiscovery: true,
      clientId: auth.client.clientId,
      clientSecret: auth.client.clientSecret,
      apiBaseUrl: api.url,
      redirectUri,
      scopes: auth.scopes,
      issParameterSupported: auth.issParameterSupported,
    });
    await deployAndWait(runtime, flows(conn));
  });

  after(async () => {
    await runtime?.stop();
    await api?.close();
    await auth?.close();
  });

  it('the deployed secret is used for the endpoints discovery finds, and the login serves the deployed connection at once', async () => {
    discovered = await discover();
    assert.ok(discovered.tokenEndpoint, 'discovery found a token endpoint');
    auth.resetCounts();
    // The dialog shows the stored secret as a placeholder: the route must use the deployed one.
    const page = await loginFromEditor(discovered, '__PWRD__');
    watchText(page.html);
    assert.equal(page.status, 200, page.html);
    assert.doesNotMatch(page.html, /awaitsDeploy/);
    assert.equal(auth.codeExchanges(), 1, 'one code exchange, authenticated with the deployed secret');
    const after = await status();
    assert.equal(after.state, 'ready', JSON.stringify(after));
    assert.equal(await records(), 200, 'the deployed (discovery-only) connection uses the login without a deploy');
  });

  it('restarted without a deploy, the discovery-only connection still owns that login', async () => {
    await runtime.stop();
    runtime = await startRuntime({ userDir, port: runtime.port });
    watchLogs(runtime.logs);
    // Asked at once: the state once the stored login is loaded (which takes a discovery here).
    const after = await status();
    assert.equal(after.state, 'ready', JSON.stringify(after));
    assert.equal(await records(), 200);
  });

  it('deploying the discovered endpoints keeps the login (the same endpoints, now typed)', async () => {
    auth.resetCounts();
    await deployAndWait(runtime, flows({ ...conn, ...discovered, id: 'conn1', type: 'oauth2-connection' }));
    const after = await status();
    assert.equal(after.state, 'ready', JSON.stringify(after));
    assert.equal(await records(), 200);
    assert.equal(auth.codeExchanges(), 0, 'no new login was needed');
    // Back to the issuer alone for the next test.
    await deployAndWait(runtime, flows(conn));
  });

  it('a dialog naming another token endpoint gets no deployed secret: nothing is sent, and the error says why and what to do', async () => {
    let hits = 0;
    const other = http.createServer((req, res) => {
      hits += 1;
      req.resume();
      res.writeHead(400, { 'content-type': 'application/json' }).end('{"error":"invalid_client"}');
    });
    await new Promise<void>((resolve) => other.listen(0, '127.0.0.1', resolve));
    try {
      const elsewhere = `http://127.0.0.1:${(other.address() as AddressInfo).port}/token`;
      const config = { ...(await discover()), tokenEndpoint: elsewhere };
      const started = await startLogin(runtime, 'conn1', config, new CookieJar(), '__PWRD__');
      assert.equal(started.status, 400, JSON.stringify(started));
      assert.equal(started.error?.code, 'OAUTH2_INVALID_CONFIG');
      watchText(started.error?.message ?? '');
      assert.match(started.error?.message ?? '', /type it again|Type the client secret/i);
      assert.match(started.error?.message ?? '', /deploy/i, 'it says what to do');
      assert.equal(hits, 0, 'the other endpoint received nothing');
    } finally {
      await new Promise<void>((resolve) => other.close(() => resolve()));
    }
  });
});
