/**
 * The oauth2-connection-status node through a real provider (oidc-provider on 127.0.0.1) and the real
 * connection: each transition a flow can act on, the message it gets, the node's status, and no token or secret
 * in any message. Node-RED through node-red-node-test-helper with the shipped catalogs; the token endpoint's
 * outage goes through the loopback fault proxy.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { discoverProvider } from '../../nodes/lib/oauth/discovery';
import type { StoredTokens } from '../../nodes/lib/tokens/token-store';
import type { TokenSet } from '../../nodes/lib/types';
import { startAuthServer, type AuthServer } from '../support/auth-server';
import { faults, startFaultProxy, type FaultProxy } from '../support/fault-proxy';
import { startRedis, type RedisServer } from '../support/redis';
import { needsSystemPackage } from '../support/system-packages';
import { freshPrefix } from '../unit/tokens/support/redis-instances';
import { watchAuthServer, watchedSecrets } from '../support/leaks';
import { loginTokens } from '../support/login-tokens';
import { clientSettings } from '../unit/oauth/helpers';
import {
  collectUnhandledRejections,
  connectionDef,
  connectionStatusModule,
  eventually,
  helper,
  helperNode,
  loadCatalogs,
  nodeModules,
  serviceConnection,
  shown,
  statusLog,
  tab,
  useTempUserDir,
  FLOW,
  type RuntimeNode,
} from './support';

const REDIRECT_URI = 'http://127.0.0.1:1880/oauth2-connection/callback';
const WRONG_SECRET = 'not-the-service-secret-0123456789';

interface Payload {
  state: string;
  previous: string | null;
  reason?: string;
  code?: string;
  message?: string;
  connection: string;
  connectionId: string;
  time: string;
  retryAt?: string;
  expiresAt?: string;
}

interface StatusMessage {
  topic: string;
  payload: Payload;
}

interface EngineConnection {
  getAccessToken(): Promise<{ accessToken: string }>;
  adoptTokens(tokens: TokenSet): Promise<boolean>;
  state(): { kind: string };
}

function statusNode(id: string, extra: Record<string, unknown> = {}, wires: string[][] = [['out']]): Record<string, unknown> {
  return { id, type: 'oauth2-connection-status', z: FLOW, x: 100, y: 100, name: '', connection: 'conn1', routineRefreshes: false, sendAtStart: false, ...extra, wires };
}

describe('node: oauth2-connection-status through a real provider', function () {
  this.timeout(30_000);
  let auth: AuthServer;
  let proxy: FaultProxy | undefined;
  let userDir: string;
  /** Tokens this test saw the connection use or the provider issue, besides what the provider's events record. */
  const seenTokens = new Set<string>();
  const assertNoUnhandledRejections = collectUnhandledRejections('the connection status node tests');

  before(async () => {
    await loadCatalogs();
    auth = await startAuthServer({ accessTokenTtlSec: 3600, rotateRefreshToken: true });
    auth.addRedirectUri(REDIRECT_URI);
    watchAuthServer(auth);
  });
  after(async () => {
    await helper.unload();
    await auth?.close();
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

  /** Every message that reaches the helper node `id`, as they come. */
  function collect(id = 'out'): StatusMessage[] {
    const got: StatusMessage[] = [];
    helper.getNode(id).on('input', (msg: StatusMessage) => got.push(msg));
    return got;
  }

  function engine(): EngineConnection {
    return (helper.getNode('conn1') as unknown as { connection: EngineConnection }).connection;
  }

  /** Messages hold codes and times only: none of the tokens issued, the client secrets or the password. */
  function assertNoSecrets(messages: StatusMessage[]): void {
    const text = JSON.stringify(messages);
    const secrets = [...watchedSecrets(), ...seenTokens, WRONG_SECRET];
    assert.ok(secrets.length > 3, 'the provider issued tokens this test knows');
    for (const secret of secrets) assert.ok(!text.includes(secret), `a message carries a secret (${secret.slice(0, 4)}...)`);
    for (const msg of messages) {
      assert.deepEqual(Object.keys(msg.payload).filter((k) => !['state', 'previous', 'reason', 'code', 'message', 'connection', 'connectionId', 'time', 'retryAt', 'expiresAt'].includes(k)), []);
      assert.equal(msg.topic, msg.payload.state);
      assert.ok(!Number.isNaN(Date.parse(msg.payload.time)) && msg.payload.time === new Date(msg.payload.time).toISOString());
      assert.equal(msg.payload.connection, 'test connection');
      assert.equal(msg.payload.connectionId, 'conn1');
    }
  }

  function lastStatus(node: RuntimeNode): string {
    return String(statusLog(node).at(-1)?.text);
  }

  /** A login of the web client through the provider's real pages: tokens as the connection's callback gets them. */
  async function webLogin(): Promise<TokenSet> {
    const metadata = await discoverProvider(auth.issuer, { timeoutMs: 5000 });
    const web = clientSettings({ clientId: auth.clients.web.clientId, clientSecret: auth.clients.web.clientSecret, scopes: ['openid', 'email'] });
    const tokens = await loginTokens(metadata, web, REDIRECT_URI);
    seenTokens.add(tokens.accessToken);
    if (tokens.refreshToken) seenTokens.add(tokens.refreshToken);
    return tokens;
  }

  /** An authorization-code connection holding a real login whose access token already expired. */
  async function webConnection(tokens: TokenSet): Promise<ReturnType<typeof connectionDef>> {
    const stored: StoredTokens = { tokens: { ...tokens, expiresAt: Date.now() - 1000 }, updatedAt: Date.now() };
    const conn = connectionDef(auth, { clientId: auth.clients.web.clientId, clientSecret: auth.clients.web.clientSecret, redirectUri: REDIRECT_URI });
    conn.credentials.conn1.tokens = JSON.stringify(stored);
    return conn;
  }

  it('a client-credentials connection: ready at start when asked, nothing at start otherwise, no repeat when a token is fetched', async () => {
    const conn = serviceConnection(auth);
    await helper.load([...nodeModules, connectionStatusModule], [tab(), conn.node, statusNode('status', { sendAtStart: true }), statusNode('quiet', {}, [['quietOut']]), helperNode(), helperNode('quietOut')], conn.credentials);
    const got = collect();
    const quiet = collect('quietOut');
    await eventually(() => got.length > 0, 5000, 'the state at start');
    assert.deepEqual({ topic: got[0].topic, state: got[0].payload.state, previous: got[0].payload.previous }, { topic: 'ready', state: 'ready', previous: null });
    assert.equal(got[0].payload.code, undefined);

    // A token fetched (the connection stays ready): nothing new, from either node.
    const token = await engine().getAccessToken();
    seenTokens.add(token.accessToken);
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(got.length, 1, JSON.stringify(got));
    assert.deepEqual(quiet, [], 'without "send the current state at start" the initial state is not sent');
    assert.equal(lastStatus(helper.getNode('status')), 'oauth2-connection-status.status.ready', 'a catalog key the editor translates');
    assert.equal(shown(lastStatus(helper.getNode('status'))), 'ready');
    assertNoSecrets(got);
  });

  it('a client secret the provider refuses: refused, with the provider\'s error, the code and when it is asked again', async () => {
    const conn = serviceConnection(auth, { clientSecret: WRONG_SECRET });
    await helper.load([...nodeModules, connectionStatusModule], [tab(), conn.node, statusNode('status'), helperNode()], conn.credentials);
    const got = collect();
    await new Promise((r) => setTimeout(r, 250));
    await assert.rejects(engine().getAccessToken(), (err: { code?: string }) => err.code === 'OAUTH2_TOKEN_REQUEST_REJECTED');
    await eventually(() => got.length > 0, 5000, 'the refusal');
    const [msg] = got;
    assert.equal(msg.topic, 'refused');
    assert.equal(msg.payload.previous, 'ready');
    assert.equal(msg.payload.code, 'OAUTH2_TOKEN_REQUEST_REJECTED');
    assert.equal(msg.payload.reason, 'invalid_client');
    assert.ok(msg.payload.retryAt && Date.parse(msg.payload.retryAt) > Date.parse(msg.payload.time), JSON.stringify(msg.payload));
    assert.match(String(msg.payload.message), /invalid_client/);
    // Asked again during the backoff: the same state, not sent again.
    await assert.rejects(engine().getAccessToken());
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(got.length, 1, JSON.stringify(got));
    const node = helper.getNode('status');
    assert.equal(lastStatus(node), 'oauth2-connection-status.status.refused');
    assert.deepEqual({ fill: statusLog(node).at(-1)?.fill, shape: statusLog(node).at(-1)?.shape }, { fill: 'red', shape: 'ring' });
    assertNoSecrets(got);
  });

  it('the token endpoint failing, then back: unavailable once, then recovered', async () => {
    proxy = await startFaultProxy(auth.issuer);
    const conn = serviceConnection(auth);
    conn.node.tokenEndpoint = `${proxy.url}/token`;
    await helper.load([...nodeModules, connectionStatusModule], [tab(), conn.node, statusNode('status'), helperNode()], conn.credentials);
    const got = collect();
    await new Promise((r) => setTimeout(r, 250));
    const isTokenPost = (r: { method: string; path: string }): boolean => r.method === 'POST' && r.path === '/token';
    proxy.fault(faults.serverError(503), { match: isTokenPost });
    const pending = engine().getAccessToken();
    pending.catch(() => undefined);
    await eventually(() => got.length > 0, 10_000, 'unavailable');
    assert.equal(got[0].topic, 'unavailable');
    assert.equal(got[0].payload.previous, 'ready');
    assert.equal(got[0].payload.code, 'OAUTH2_TOKEN_ENDPOINT_UNAVAILABLE');
    assert.equal(lastStatus(helper.getNode('status')), 'oauth2-connection-status.status.unavailable');
    // Let the connection's own retries meet the outage more than once: still one message.
    await eventually(() => proxy!.count(isTokenPost) >= 2, 10_000, 'a retry');
    assert.equal(got.length, 1, JSON.stringify(got));

    proxy.clear();
    const token = await engine().getAccessToken().catch(() => engine().getAccessToken());
    seenTokens.add(token.accessToken);
    await eventually(() => got.length > 1, 10_000, 'recovered');
    assert.deepEqual(got.map((m) => m.topic), ['unavailable', 'recovered']);
    assert.equal(got[1].payload.previous, 'unavailable');
    assert.equal(got[1].payload.code, undefined);
    assert.equal(lastStatus(helper.getNode('status')), 'oauth2-connection-status.status.ready');
    assertNoSecrets(got);
  });

  it('a refresh token revoked at the provider: login required with its reason; a new login: recovered', async () => {
    const tokens = await webLogin();
    const conn = await webConnection(tokens);
    await helper.load([...nodeModules, connectionStatusModule], [tab(), conn.node, statusNode('status'), helperNode()], conn.credentials);
    const got = collect();
    await new Promise((r) => setTimeout(r, 250));
    // The user removed the app's access at the provider: its refresh token is gone.
    const refresh = (await auth.provider.RefreshToken.find(String(tokens.refreshToken))) as { destroy(): Promise<void> } | undefined;
    assert.ok(refresh, 'the provider knows the refresh token');
    await refresh.destroy();

    await assert.rejects(engine().getAccessToken(), (err: { code?: string }) => err.code === 'OAUTH2_LOGIN_REQUIRED');
    await eventually(() => got.length > 0, 5000, 'login required');
    assert.equal(got[0].topic, 'login-required');
    assert.equal(got[0].payload.previous, 'ready');
    assert.equal(got[0].payload.code, 'OAUTH2_LOGIN_REQUIRED');
    assert.equal(got[0].payload.reason, 'refreshRefused', JSON.stringify(got[0].payload));
    assert.match(String(got[0].payload.message), /invalid_grant/);
    assert.equal(lastStatus(helper.getNode('status')), 'oauth2-connection-status.status.loginRequired');
    // Every later request fails the same way: no second message.
    await assert.rejects(engine().getAccessToken());
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(got.length, 1);

    // The owner logs in again (what the connection's callback does with the new tokens).
    assert.equal(await engine().adoptTokens(await webLogin()), true);
    await eventually(() => got.length > 1, 5000, 'recovered');
    assert.deepEqual(got.map((m) => m.topic), ['login-required', 'recovered']);
    assert.equal(got[1].payload.previous, 'login-required');
    assert.equal(lastStatus(helper.getNode('status')), 'oauth2-connection-status.status.ready');
    assertNoSecrets(got);
  });

  /** A connection holding a valid login whose refresh token ends at `refreshExpiresAt` (as GitHub Apps say it). */
  async function endingConnection(refreshExpiresAt: number): Promise<ReturnType<typeof connectionDef>> {
    const tokens = await webLogin();
    const stored: StoredTokens = { tokens: { ...tokens, expiresAt: Date.now() + 3_600_000, refreshExpiresAt }, updatedAt: Date.now() };
    const conn = connectionDef(auth, { clientId: auth.clients.web.clientId, clientSecret: auth.clients.web.clientSecret, redirectUri: REDIRECT_URI });
    conn.credentials.conn1.tokens = JSON.stringify(stored);
    return conn;
  }

  it('a refresh token ending within the warning days: refresh-expiring once, with its end; 0 days: never', async () => {
    const end = Date.now() + 2 * 24 * 3_600_000;
    const conn = await endingConnection(end);
    await helper.load(
      [...nodeModules, connectionStatusModule],
      [tab(), conn.node, statusNode('status'), statusNode('never', { refreshExpiryDays: 0 }, [['neverOut']]), helperNode(), helperNode('neverOut')],
      conn.credentials,
    );
    const got = collect();
    const never = collect('neverOut');
    await eventually(() => got.length > 0, 5000, 'refresh-expiring');
    assert.equal(got[0].topic, 'refresh-expiring');
    assert.equal(got[0].payload.state, 'refresh-expiring');
    assert.equal(got[0].payload.previous, 'ready', 'the connection still works');
    assert.equal(got[0].payload.expiresAt, new Date(end).toISOString());
    // A token fetched (state events, same refresh token): not said again.
    seenTokens.add((await engine().getAccessToken()).accessToken);
    await new Promise((r) => setTimeout(r, 400));
    assert.equal(got.length, 1, JSON.stringify(got));
    assert.deepEqual(never, []);
    assertNoSecrets(got);
  });

  it('a refresh token ending later: refresh-expiring when the warning time comes, not before', async () => {
    // Warn 0.00004 days (3.5 s) before an end 5 s away: about 1.5 s after start.
    const start = Date.now();
    const conn = await endingConnection(start + 5000);
    await helper.load([...nodeModules, connectionStatusModule], [tab(), conn.node, statusNode('status', { refreshExpiryDays: 0.00004 }), helperNode()], conn.credentials);
    const got = collect();
    await new Promise((r) => setTimeout(r, 800));
    assert.equal(got.length, 0, 'not yet');
    await eventually(() => got.length > 0, 5000, 'refresh-expiring');
    assert.ok(Date.now() - start >= 1400, `sent after ${Date.now() - start} ms`);
    assert.equal(got[0].topic, 'refresh-expiring');
    assertNoSecrets(got);
  });

  it('a routine refresh of a healthy connection: sent only with "also send routine refreshes"', async () => {
    const conn = await webConnection(await webLogin());
    await helper.load(
      [...nodeModules, connectionStatusModule],
      [tab(), conn.node, statusNode('quiet'), statusNode('routine', { routineRefreshes: true }, [['routineOut']]), helperNode(), helperNode('routineOut')],
      conn.credentials,
    );
    const quiet = collect();
    const routine = collect('routineOut');
    await new Promise((r) => setTimeout(r, 250));
    // The stored access token has expired: this refreshes (the provider rotates the refresh token).
    const token = await engine().getAccessToken();
    seenTokens.add(token.accessToken);
    await eventually(() => routine.length >= 2, 5000, 'refreshing and ready');
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(auth.counts().token.refresh_token, 1);
    assert.deepEqual(routine.map((m) => [m.topic, m.payload.previous]), [['refreshing', 'ready'], ['ready', 'refreshing']]);
    assert.deepEqual(quiet, [], 'a routine refresh is not news by default');
    assertNoSecrets(routine);
  });

  describe('with the token store on Redis', function () {
    needsSystemPackage(this, 'redis-server');
    let redis: RedisServer;

    before(async () => {
      redis = await startRedis();
    });
    after(async () => {
      await helper.unload();
      await redis?.close();
    });
    afterEach(async () => {
      if (!redis.pid) await redis.start();
    });

    it('the shared token store away, then back: unavailable with the store\'s code, then recovered', async () => {
      helper.settings({
        userDir,
        credentialSecret: 'the-cluster-credential-secret',
        httpOAuth2: { store: { type: 'redis', url: redis.url, keyPrefix: freshPrefix(), commandTimeoutMs: 500 } },
      });
      const conn = serviceConnection(auth);
      await helper.load([...nodeModules, connectionStatusModule], [tab(), conn.node, statusNode('status'), helperNode()], conn.credentials);
      const got = collect();
      seenTokens.add((await engine().getAccessToken()).accessToken);
      await new Promise((r) => setTimeout(r, 250));
      assert.equal(got.length, 0, JSON.stringify(got));

      await redis.stop();
      await eventually(() => got.length > 0, 10_000, 'the store reported unavailable');
      assert.equal(got[0].topic, 'unavailable');
      assert.equal(got[0].payload.code, 'OAUTH2_TOKEN_STORE_FAILED');
      assert.equal(got[0].payload.previous, 'ready');
      assert.equal(lastStatus(helper.getNode('status')), 'oauth2-connection-status.status.storeUnavailable');

      await redis.start();
      await eventually(() => got.length > 1, 10_000, 'the store reported reachable again');
      assert.deepEqual(got.map((m) => m.topic), ['unavailable', 'recovered']);
      assert.equal(got[1].payload.previous, 'unavailable');
      assert.equal(lastStatus(helper.getNode('status')), 'oauth2-connection-status.status.ready');
      assertNoSecrets(got);
    });
  });
});
