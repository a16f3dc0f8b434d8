/**
 * "While the connection needs a login: hold messages" on the request node, through a real provider
 * (oidc-provider on 127.0.0.1), a real API that checks every token at the provider, and Node-RED through
 * node-red-node-test-helper with the shipped catalogs. A restart is an unload and a load of the same user
 * directory: what the node held is read back from the encrypted file there. The token endpoint's outage goes
 * through the loopback fault proxy.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { discoverProvider } from '../../nodes/lib/oauth/discovery';
import type { StoredTokens } from '../../nodes/lib/tokens/token-store';
import type { TokenSet } from '../../nodes/lib/types';
import { startApiServer, type ApiServer } from '../support/api-server';
import { startAuthServer, type AuthServer } from '../support/auth-server';
import { faults, startFaultProxy, type FaultProxy } from '../support/fault-proxy';
import { startRedis, type RedisServer } from '../support/redis';
import { needsSystemPackage } from '../support/system-packages';
import { watchAuthServer, watchedSecrets } from '../support/leaks';
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
  shown,
  statusLog,
  tab,
  useTempUserDir,
  type RuntimeNode,
} from './support';

const REDIRECT_URI = 'http://127.0.0.1:1880/oauth2-connection/callback';
const HELD_FILE = '.http-oauth2-held.json';

interface Echo {
  payload: { method: string; body: string; authorised: boolean };
  n?: number;
  statusCode: number;
}

interface Caught {
  n?: number;
  error: { message: string; source: { id: string }; code?: string };
}

interface EngineConnection {
  adoptTokens(tokens: TokenSet): Promise<boolean>;
  getAccessToken(): Promise<{ accessToken: string }>;
  state(): { kind: string };
}

describe('node: http-oauth2-request holds messages while its connection needs a login', function () {
  this.timeout(60_000);
  let auth: AuthServer;
  let api: ApiServer;
  let proxy: FaultProxy | undefined;
  let userDir: string;
  const seenTokens = new Set<string>();
  const assertNoUnhandledRejections = collectUnhandledRejections('the hold tests');

  before(async () => {
    await loadCatalogs();
    auth = await startAuthServer({ accessTokenTtlSec: 3600, rotateRefreshToken: true });
    auth.addRedirectUri(REDIRECT_URI);
    watchAuthServer(auth);
    api = await startApiServer(auth);
  });
  after(async () => {
    await helper.unload();
    await api?.close();
    await auth?.close();
    await new Promise((r) => setTimeout(r, 50));
    assertNoUnhandledRejections();
  });
  beforeEach(() => {
    userDir = useTempUserDir();
    auth.resetCounts();
    api.reset();
  });
  afterEach(async () => {
    await helper.unload();
    await proxy?.close();
    proxy = undefined;
    fs.rmSync(userDir, { recursive: true, force: true });
  });

  async function webLogin(): Promise<TokenSet> {
    const metadata = await discoverProvider(auth.issuer, { timeoutMs: 5000 });
    const web = clientSettings({ clientId: auth.clients.web.clientId, clientSecret: auth.clients.web.clientSecret, scopes: ['openid', 'email'] });
    const tokens = await loginTokens(metadata, web, REDIRECT_URI);
    seenTokens.add(tokens.accessToken);
    if (tokens.refreshToken) seenTokens.add(tokens.refreshToken);
    return tokens;
  }

  /** A login whose access token has expired and whose refresh token the user revoked at the provider. */
  async function revokedLogin(): Promise<TokenSet> {
    const tokens = await webLogin();
    const refresh = (await auth.provider.RefreshToken.find(String(tokens.refreshToken))) as { destroy(): Promise<void> } | undefined;
    assert.ok(refresh, 'the provider knows the refresh token');
    await refresh.destroy();
    return { ...tokens, expiresAt: Date.now() - 1000 };
  }

  function connection(tokens: TokenSet, extra: Record<string, unknown> = {}): ReturnType<typeof connectionDef> {
    const conn = connectionDef(auth, { clientId: auth.clients.web.clientId, clientSecret: auth.clients.web.clientSecret, redirectUri: REDIRECT_URI, apiBaseUrl: api.url });
    Object.assign(conn.node, extra);
    const stored: StoredTokens = { tokens, updatedAt: Date.now() };
    conn.credentials.conn1.tokens = JSON.stringify(stored);
    return conn;
  }

  function flow(conn: ReturnType<typeof connectionDef>, hold: Record<string, unknown> = {}): Record<string, unknown>[] {
    return [
      tab(),
      conn.node,
      requestNode('req', { method: 'POST', url: '/echo', holdWhileLoginNeeded: true, ...hold }),
      // The message's number, as the API received it (its body is the message's payload).
      {
        id: 'num',
        type: 'change',
        z: 'f1',
        x: 200,
        y: 100,
        rules: [{ t: 'set', p: 'n', pt: 'msg', to: '$number($eval(payload.body).n)', tot: 'jsonata' }],
        wires: [['out']],
      },
      helperNode(),
      ...catchNodes(['req']),
    ].map((n) => (n.id === 'req' ? { ...n, wires: [['num']] } : n));
  }

  function engine(): EngineConnection {
    return (helper.getNode('conn1') as unknown as { connection: EngineConnection }).connection;
  }

  function collect(id: string): Array<Record<string, unknown>> {
    const got: Array<Record<string, unknown>> = [];
    helper.getNode(id).on('input', (msg: Record<string, unknown>) => got.push(msg));
    return got;
  }

  function lastStatus(node: RuntimeNode): string {
    return shown(statusLog(node).at(-1)?.text);
  }

  /** The numbers of the messages the API received with a valid token, in the order it received them. */
  function received(): number[] {
    return api.requests.filter((r) => r.path === '/echo' && r.authorised).map((r) => (JSON.parse(r.body) as { n: number }).n);
  }

  function heldFile(): string {
    return fs.readFileSync(path.join(userDir, HELD_FILE)).toString('latin1');
  }

  it('login revoked at the provider, 200 messages, a restart, a new login: all 200 sent once, in order', async () => {
    const conn = connection(await revokedLogin());
    await helper.load(nodeModules, flow(conn), conn.credentials);
    const req = helper.getNode('req');
    const caught = collect('caught');
    for (let n = 0; n < 200; n += 1) req.receive({ payload: { n, note: 'record ' + n }, topic: 'sync' });
    await eventually(() => lastStatus(req) === 'holding 200: login required', 10_000, `200 held (status: ${lastStatus(req)})`);
    assert.deepEqual(caught, [], 'nothing reached Catch');
    assert.deepEqual(received(), [], 'the API got no message with a valid token');
    // One refused refresh, not one per message (invariant 9).
    assert.equal(auth.counts().token.refresh_token ?? 0, 1);
    assert.equal(statusLog(req).at(-1)?.fill, 'yellow');
    // Held messages are users' data: sealed on disk.
    assert.ok(!heldFile().includes('record 17'), 'the held file is encrypted');

    // Restart: the same user directory, the same flows.
    await helper.unload();
    await helper.load(nodeModules, flow(conn), conn.credentials);
    const req2 = helper.getNode('req');
    const out = collect('out');
    const caught2 = collect('caught');
    await eventually(() => lastStatus(req2) === 'holding 200: login required', 10_000, `200 held after the restart (status: ${lastStatus(req2)})`);
    assert.deepEqual(received(), []);

    // The owner logs in again (what the connection's callback does with the new tokens).
    assert.equal(await engine().adoptTokens(await webLogin()), true);
    await eventually(() => out.length === 200, 30_000, `200 sent (got ${out.length})`);
    await new Promise((r) => setTimeout(r, 300));
    const expected = Array.from({ length: 200 }, (_, i) => i);
    assert.deepEqual(received(), expected, 'the API got each message once, in order');
    assert.deepEqual(out.map((m) => m.n), expected, 'each went on to the output once, in order');
    assert.ok(out.every((m) => (m as unknown as Echo).statusCode === 200 && m.topic === 'sync'), 'the message as it arrived, with its answer');
    assert.deepEqual(caught2, []);
    assert.notEqual(lastStatus(req2).startsWith('holding'), true);
    // Nothing left: a second restart sends nothing again.
    await helper.unload();
    await helper.load(nodeModules, flow(conn), conn.credentials);
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal(received().length, 200);
    // The API's /echo answers with the Authorization header it received (its answer, by design): left out.
    const text = JSON.stringify([out.map((m) => ({ ...m, payload: { ...(m.payload as object), headers: undefined } })), caught, caught2]);
    for (const secret of [...watchedSecrets(), ...seenTokens]) assert.ok(!text.includes(secret), 'no token in any message');
  });

  it('past the cap, the next messages go to Catch with OAUTH2_LOGIN_REQUIRED; the held ones are sent after the login', async () => {
    const conn = connection(await revokedLogin());
    await helper.load(nodeModules, flow(conn, { holdMaxMessages: 50 }), conn.credentials);
    const req = helper.getNode('req');
    const out = collect('out');
    const caught = collect('caught') as unknown as Caught[];
    for (let n = 0; n < 60; n += 1) req.receive({ payload: { n }, n });
    await eventually(() => caught.length === 10, 10_000, `10 caught (got ${caught.length})`);
    assert.deepEqual(caught.map((m) => m.n), [50, 51, 52, 53, 54, 55, 56, 57, 58, 59], 'the ones past the cap, as they arrived');
    assert.ok(caught.every((m) => m.error.code === 'OAUTH2_LOGIN_REQUIRED'), JSON.stringify(caught[0].error));
    assert.equal(lastStatus(req), 'holding 50: login required');
    assert.equal(await engine().adoptTokens(await webLogin()), true);
    await eventually(() => out.length === 50, 20_000, `50 sent (got ${out.length})`);
    assert.deepEqual(received(), Array.from({ length: 50 }, (_, i) => i));
  });

  it('a message held longer than the longest hold goes to Catch with the error it waited for', async () => {
    const conn = connection(await revokedLogin());
    // 0.0005 hours: 1.8 s.
    await helper.load(nodeModules, flow(conn, { holdMaxHours: 0.0005 }), conn.credentials);
    const req = helper.getNode('req');
    const caught = collect('caught') as unknown as Caught[];
    for (let n = 0; n < 3; n += 1) req.receive({ payload: { n }, n });
    await eventually(() => lastStatus(req) === 'holding 3: login required', 5000, 'held');
    assert.equal(caught.length, 0);
    await eventually(() => caught.length === 3, 10_000, `3 caught after the longest hold (got ${caught.length})`);
    assert.deepEqual(caught.map((m) => m.n), [0, 1, 2]);
    assert.ok(caught.every((m) => m.error.code === 'OAUTH2_LOGIN_REQUIRED'));
    await eventually(() => !lastStatus(req).startsWith('holding'), 2000, 'nothing held');
    assert.deepEqual(received(), []);
  });

  it('the token endpoint away: held, "token endpoint unavailable"; back: sent without a new login', async () => {
    proxy = await startFaultProxy(auth.issuer);
    const tokens = await webLogin();
    const conn = connection({ ...tokens, expiresAt: Date.now() - 1000 }, { tokenEndpoint: `${proxy.url}/token` });
    const isTokenPost = (r: { method: string; path: string }): boolean => r.method === 'POST' && r.path === '/token';
    proxy.fault(faults.serverError(503), { match: isTokenPost });
    await helper.load(nodeModules, flow(conn, { maxAttempts: 1 }), conn.credentials);
    const req = helper.getNode('req');
    const out = collect('out');
    const caught = collect('caught');
    for (let n = 0; n < 5; n += 1) req.receive({ payload: { n } });
    await eventually(() => lastStatus(req) === 'holding 5: token endpoint unavailable', 20_000, `held (status: ${lastStatus(req)})`);
    assert.deepEqual(caught, []);
    proxy.clear();
    // The next probe (1 s, then doubling) renews the token and sends them.
    await eventually(() => out.length === 5, 20_000, `5 sent (got ${out.length})`);
    assert.deepEqual(received(), [0, 1, 2, 3, 4]);
    assert.deepEqual(caught, []);
  });

  it('not ticked (the default): a message fails to Catch at once, as before, and nothing is kept', async () => {
    const conn = connection(await revokedLogin());
    await helper.load(nodeModules, flow(conn, { holdWhileLoginNeeded: undefined }), conn.credentials);
    const req = helper.getNode('req');
    const caught = collect('caught') as unknown as Caught[];
    req.receive({ payload: { n: 1 } });
    await eventually(() => caught.length === 1, 10_000, 'caught');
    assert.equal(caught[0].error.code, 'OAUTH2_LOGIN_REQUIRED');
    assert.equal(lastStatus(req), 'login required');
    assert.equal(fs.existsSync(path.join(userDir, HELD_FILE)), false);
  });

  it('a message that arrives while others are held waits behind them; binary payloads come back as they were', async () => {
    const conn = connection(await revokedLogin());
    await helper.load(nodeModules, flow(conn), conn.credentials);
    const req = helper.getNode('req');
    const out = collect('out');
    req.receive({ payload: { n: 0 } });
    await eventually(() => lastStatus(req) === 'holding 1: login required', 5000, 'the first held');
    const binary = Buffer.from([0, 1, 2, 254, 255]);
    req.receive({ payload: { n: 1 }, extra: { bytes: binary, when: new Date('2026-01-02T03:04:05Z') } });
    await eventually(() => lastStatus(req) === 'holding 2: login required', 5000, 'the second held');
    // A restart: the second comes back from the file, not from memory.
    await helper.unload();
    await helper.load(nodeModules, flow(conn), conn.credentials);
    const out2 = collect('out');
    assert.equal(await engine().adoptTokens(await webLogin()), true);
    await eventually(() => out2.length === 2, 10_000, `2 sent (got ${out2.length})`);
    assert.deepEqual(out, []);
    assert.deepEqual(received(), [0, 1]);
    const extra = out2[1].extra as { bytes: Buffer; when: string };
    assert.ok(Buffer.isBuffer(extra.bytes) && extra.bytes.equals(binary), 'the Buffer is a Buffer again');
    assert.equal(extra.when, '2026-01-02T03:04:05.000Z');
  });

  it('a node deleted by a deploy forgets what it held; a restart without a deploy keeps it', async () => {
    const conn = connection(await revokedLogin());
    await helper.load(nodeModules, flow(conn), conn.credentials);
    const req = helper.getNode('req');
    for (let n = 0; n < 3; n += 1) req.receive({ payload: { n } });
    await eventually(() => lastStatus(req) === 'holding 3: login required', 5000, 'held');
    // A restart whose flows lack the node (a stop is not a deletion): what it held stays.
    const without = flow(conn).filter((n) => n.id !== 'req' && n.id !== 'catcher');
    await helper.unload();
    await helper.load(nodeModules, without, conn.credentials);
    await new Promise((r) => setTimeout(r, 300));
    assert.match(heldFile(), /./);
    await helper.unload();
    await helper.load(nodeModules, flow(conn), conn.credentials);
    await eventually(() => lastStatus(helper.getNode('req')) === 'holding 3: login required', 5000, 'held again after the restart');

    // A deploy that deletes the node: the sweep after the deploy forgets its messages.
    const setFlows = (helper as unknown as { setFlows(flow: unknown[], type: string, creds: unknown): Promise<void> }).setFlows.bind(helper);
    await setFlows(without.map((n) => (n.id === 'conn1' ? { ...n, credentials: conn.credentials.conn1 } : n)), 'full', conn.credentials);
    await new Promise((r) => setTimeout(r, 500));
    await helper.unload();
    await helper.load(nodeModules, flow(conn), conn.credentials);
    const out = collect('out');
    assert.equal(await engine().adoptTokens(await webLogin()), true);
    await new Promise((r) => setTimeout(r, 1500));
    assert.deepEqual(out, [], 'nothing held any more');
    assert.deepEqual(received(), []);
  });

  describe('with the shared store on Redis', function () {
    needsSystemPackage(this, 'redis-server');
    let redis: RedisServer;
    before(async () => {
      redis = await startRedis();
    });
    after(async () => {
      await redis?.close();
    });

    it('held messages live in Redis, sealed (not in the user directory), and go out after a restart and a new login', async () => {
      const prefix = `hold-${Date.now()}:`;
      helper.settings({ userDir, credentialSecret: 'hold-test-credential-secret', httpOAuth2: { store: { type: 'redis', url: redis.url, keyPrefix: prefix } } });
      const conn = connection(await revokedLogin());
      await helper.load(nodeModules, flow(conn), conn.credentials);
      const req = helper.getNode('req');
      for (let n = 0; n < 20; n += 1) req.receive({ payload: { n, note: `record ${n}` } });
      await eventually(() => lastStatus(req) === 'holding 20: login required', 10_000, `held (status: ${lastStatus(req)})`);
      assert.equal(fs.existsSync(path.join(userDir, HELD_FILE)), false, 'nothing in the user directory');
      const { execFileSync } = await import('node:child_process');
      const dump = execFileSync('redis-cli', ['-u', redis.url, '--no-raw', 'HGETALL', `${prefix}held:req`]).toString('latin1');
      assert.ok(dump.length > 1000, 'the messages are in Redis');
      assert.ok(!dump.includes('record 7'), 'sealed in Redis');

      await helper.unload();
      helper.settings({ userDir, credentialSecret: 'hold-test-credential-secret', httpOAuth2: { store: { type: 'redis', url: redis.url, keyPrefix: prefix } } });
      await helper.load(nodeModules, flow(conn), conn.credentials);
      const out = collect('out');
      await eventually(() => lastStatus(helper.getNode('req')) === 'holding 20: login required', 10_000, 'held after the restart');
      assert.equal(await engine().adoptTokens(await webLogin()), true);
      await eventually(() => out.length === 20, 20_000, `20 sent (got ${out.length})`);
      assert.deepEqual(received(), Array.from({ length: 20 }, (_, i) => i));
      await eventually(() => execFileSync('redis-cli', ['-u', redis.url, 'EXISTS', `${prefix}held:req`]).toString().trim() === '0', 5000, 'nothing left in Redis');
    });
  });
});
