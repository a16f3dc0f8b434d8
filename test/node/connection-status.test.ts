/**
 * What a request node and the log say when the connection's token requests go wrong: a client-credentials
 * secret the provider refuses (and the deploy that fixes it), a refresh whose answer was lost after the
 * provider rotated the refresh token, and a refresh refused with an empty 400. Real oidc-provider, real Node-RED runtime through the test helper, the
 * shipped message catalogs; the lost answer goes through the loopback fault proxy.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { discoverProvider } from '../../nodes/lib/oauth/discovery';
import type { StoredTokens } from '../../nodes/lib/tokens/token-store';
import { startApiServer, type ApiServer } from '../support/api-server';
import { startAuthServer, type AuthServer } from '../support/auth-server';
import { faults, startFaultProxy, type FaultProxy } from '../support/fault-proxy';
import { loginTokens } from '../support/login-tokens';
import { clientSettings } from '../unit/oauth/helpers';
import {
  catchNodes,
  collectUnhandledRejections,
  connectionDef,
  eventually,
  helper,
  helperNode,
  loadCatalogs,
  nodeModules,
  requestNode,
  requestOutcome,
  serviceConnection,
  statusLog,
  tab,
  useTempUserDir,
  type RuntimeNode,
  type Spy,
} from './support';

const REDIRECT_URI = 'http://127.0.0.1:1880/oauth2-connection/callback';
const WRONG_SECRET = 'not-the-service-secret-0123456789';

interface Caught {
  error: { code?: string; message: string };
}

type Catalog = Record<string, Record<string, Record<string, string>>>;

function catalog(lang: string, file: string): Catalog {
  return JSON.parse(fs.readFileSync(path.join(__dirname, '../../locales', lang, `${file}.json`), 'utf8')) as Catalog;
}

/** Every node.warn of `node` since the helper loaded the flow. */
function warnings(node: RuntimeNode): string[] {
  const spy = helper._NodePrototype.warn as unknown as Spy;
  return spy.getCalls().filter((c) => c.thisValue === node).map((c) => String(c.args[0]));
}

describe('connection status: a refused client, a lost refresh answer and a refused refresh (node-red-node-test-helper)', function () {
  this.timeout(30_000);
  let auth: AuthServer;
  let api: ApiServer;
  let proxy: FaultProxy | undefined;
  let userDir: string;
  const assertNoUnhandledRejections = collectUnhandledRejections('the connection status tests');
  const en = catalog('en-US', 'oauth2-connection')['oauth2-connection'];
  const ccCalls = (): number => auth.counts().token.client_credentials ?? 0;

  before(async () => {
    await loadCatalogs();
    auth = await startAuthServer({ accessTokenTtlSec: 3600, rotateRefreshToken: true });
    auth.addRedirectUri(REDIRECT_URI);
    api = await startApiServer(auth);
  });
  after(async () => {
    await helper.unload();
    await Promise.all([api?.close(), auth?.close()]);
    await new Promise((r) => setTimeout(r, 50));
    assertNoUnhandledRejections();
  });
  beforeEach(() => {
    userDir = useTempUserDir();
    auth.resetCounts();
  });
  afterEach(async () => {
    await helper.unload();
    await proxy?.close();
    proxy = undefined;
    fs.rmSync(userDir, { recursive: true, force: true });
  });

  /**
   * A request lane on a connection whose token endpoint is behind the fault proxy, with Node-RED's credential
   * copy of a real login whose access token already expired: the first request refreshes.
   */
  async function loadWithExpiredLogin(): Promise<FaultProxy> {
    const metadata = await discoverProvider(auth.issuer, { timeoutMs: 5000 });
    const web = clientSettings({ clientId: auth.clients.web.clientId, clientSecret: auth.clients.web.clientSecret, scopes: ['openid', 'email'] });
    const tokens = await loginTokens(metadata, web, REDIRECT_URI);
    const stored: StoredTokens = { tokens: { ...tokens, expiresAt: Date.now() - 1000 }, updatedAt: Date.now() };
    proxy = await startFaultProxy(auth.issuer);
    const conn = connectionDef(auth, { clientId: web.clientId, clientSecret: web.clientSecret, apiBaseUrl: api.url, redirectUri: REDIRECT_URI });
    conn.node.tokenEndpoint = `${proxy.url}/token`;
    conn.credentials.conn1.tokens = JSON.stringify(stored);
    await helper.load(nodeModules, [tab(), conn.node, requestNode('req', { url: '/records' }), helperNode(), ...catchNodes(['req'])], conn.credentials);
    return proxy;
  }

  it('a client-credentials secret refused: red status with the refusal, fail fast without token calls, green after a deploy with the right secret', async () => {
    const lane = [requestNode('req', { url: '/records' }), helperNode(), ...catchNodes(['req'])];
    const bad = serviceConnection(auth, { apiBaseUrl: api.url, clientSecret: WRONG_SECRET });
    await helper.load(nodeModules, [tab(), bad.node, ...lane], bad.credentials);
    const req = helper.getNode('req');
    const conn = helper.getNode('conn1');

    const first = (await requestOutcome()) as unknown as Caught;
    assert.equal(first.error.code, 'OAUTH2_TOKEN_REQUEST_REJECTED', first.error.message);
    assert.match(first.error.message, /invalid_client/);
    assert.equal(ccCalls(), 1);
    await eventually(() => statusLog(req).some((s) => s.fill === 'red'), 2000, 'a red status');
    assert.deepEqual(statusLog(req).at(-1), { fill: 'red', shape: 'ring', text: 'token request refused: invalid_client' });
    await eventually(() => warnings(conn).length > 0, 2000, 'the refusal in the log');
    assert.match(warnings(conn)[0], /^The token endpoint refused the connection: The token endpoint refused the request: invalid_client .*asked again in \d+ s/);

    // During the backoff: the same error at once, and the token endpoint is left alone.
    for (let i = 0; i < 3; i += 1) {
      const again = (await requestOutcome()) as unknown as Caught;
      assert.equal(again.error.code, 'OAUTH2_TOKEN_REQUEST_REJECTED');
    }
    assert.equal(ccCalls(), 1, 'no token call while refused');
    assert.equal(warnings(conn).length, 1, 'the log says it once, not per message');
    assert.deepEqual(statusLog(req).at(-1), { fill: 'red', shape: 'ring', text: 'token request refused: invalid_client' });

    // The secret corrected in the dialog and deployed (modified nodes only): no restart, no wait.
    const good = serviceConnection(auth, { apiBaseUrl: api.url });
    const setFlows = (helper as unknown as { setFlows(flow: unknown[], type: string, creds: unknown): Promise<void> }).setFlows.bind(helper);
    await setFlows([tab(), { ...good.node, credentials: good.credentials.conn1 }, ...lane], 'nodes', good.credentials);
    const fixed = helper.getNode('req');
    const out = await requestOutcome();
    assert.equal(out.statusCode, 200, JSON.stringify(out).slice(0, 300));
    assert.equal(ccCalls(), 2);
    assert.deepEqual(statusLog(fixed).at(-1), { fill: 'green', shape: 'dot', text: '200' });
    const connection = (helper.getNode('conn1') as unknown as { connection: { state(): { kind: string } } }).connection;
    assert.equal(connection.state().kind, 'ready');
  });

  it('a refresh answer lost after the provider rotated: login required, and status and log name the lost answer', async () => {
    const tokenProxy = await loadWithExpiredLogin();
    auth.resetCounts();
    // The first refresh reaches the provider, which rotates the refresh token; its answer is cut on the way back.
    tokenProxy.fault(faults.loseAnswer(0), { times: 1, match: (r) => r.method === 'POST' && r.path === '/token' });

    const caught = (await requestOutcome()) as unknown as Caught;
    assert.equal(caught.error.code, 'OAUTH2_LOGIN_REQUIRED', caught.error.message);
    assert.equal(caught.error.message, en.loginRequired.refreshAnswerLost);
    assert.equal(auth.counts().token.refresh_token, 2, 'the lost refresh and exactly one retry');
    const req = helper.getNode('req');
    await eventually(() => statusLog(req).some((s) => s.fill === 'red'), 2000, 'a red status');
    assert.deepEqual(statusLog(req).at(-1), { fill: 'red', shape: 'ring', text: 'http-oauth2-request.status.loginRequiredAnswerLost' });
    const connNode = helper.getNode('conn1');
    await eventually(() => warnings(connNode).length > 0, 2000, 'the log line');
    assert.deepEqual(warnings(connNode), [en.loginRequired.refreshAnswerLost]);

    // The next message: the same explanation, no further token call.
    const again = (await requestOutcome()) as unknown as Caught;
    assert.equal(again.error.message, en.loginRequired.refreshAnswerLost);
    assert.equal(auth.counts().token.refresh_token, 2);

    // The status text and the message are translated.
    const texts = ['en-US', 'de', 'ja'].map((lang) => ({
      status: catalog(lang, 'http-oauth2-request')['http-oauth2-request'].status.loginRequiredAnswerLost,
      message: catalog(lang, 'oauth2-connection')['oauth2-connection'].loginRequired.refreshAnswerLost,
    }));
    assert.equal(texts[0].status, 'login required (refresh answer lost)');
    for (const t of texts.slice(1)) {
      assert.ok(t.status && t.message, 'every catalog has the texts');
      assert.notEqual(t.status, texts[0].status);
      assert.notEqual(t.message, texts[0].message);
    }
  });

  it('a refresh refused with an empty HTTP 400: login required at the first message, its words in the message and the log once, one token call for six messages', async () => {
    const tokenProxy = await loadWithExpiredLogin();
    // What a revoked refresh token got from an SSO server: 400, no body at all.
    const isTokenPost = (r: { method: string; path: string }): boolean => r.method === 'POST' && r.path === '/token';
    tokenProxy.fault({ kind: 'status', status: 400, body: '', contentType: 'text/plain' }, { match: isTokenPost });

    const expected = en.tokenEndpoint.refreshRefused.replace('__answer__', 'HTTP 400');
    for (let i = 0; i < 6; i += 1) {
      const caught = (await requestOutcome()) as unknown as Caught;
      assert.equal(caught.error.code, 'OAUTH2_LOGIN_REQUIRED', caught.error.message);
      assert.equal(caught.error.message, expected);
    }
    assert.equal(tokenProxy.count(isTokenPost), 1, 'one token call, not one per message');
    const req = helper.getNode('req');
    await eventually(() => statusLog(req).some((s) => s.fill === 'red'), 2000, 'a red status');
    assert.deepEqual(statusLog(req).at(-1), { fill: 'red', shape: 'ring', text: 'http-oauth2-request.status.loginRequired' });
    const connection = (helper.getNode('conn1') as unknown as { connection: { state(): { kind: string } } }).connection;
    assert.equal(connection.state().kind, 'login-required');
    assert.deepEqual(warnings(helper.getNode('conn1')), [expected], 'the log says it once');
  });
});
