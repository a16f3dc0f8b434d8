/**
 * The connection node with `httpOAuth2.store` on Redis (node-red-node-test-helper, the compiled nodes, the
 * real catalogs, a real redis-server, the real authorization server and API): the token lives in Redis,
 * sealed; a bad store setting or a missing shared secret is the connection's translated error; a Redis outage
 * is a translated token-store error and a status, and the node recovers by itself.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { startApiServer, type ApiServer } from '../support/api-server';
import { startAuthServer, type AuthServer } from '../support/auth-server';
import { startRedis, type RedisServer } from '../support/redis';
import {
  catchNodes,
  collectUnhandledRejections,
  currentStatusSpy,
  eventually,
  helper,
  helperNode,
  loadCatalogs,
  nextInput,
  requestOutcome,
  nodeModules,
  requestNode,
  serviceConnection,
  statusLog,
  tab,
  useTempUserDir,
  type RuntimeNode,
} from './support';
import { openRedisTokenStore } from '../../nodes/lib/redis/token-store';
import { connectInstance, freshPrefix, rawUnder } from '../unit/tokens/support/redis-instances';
import { needsSystemPackage } from '../support/system-packages';

type Msg = Record<string, unknown>;
const CREDENTIAL_SECRET = 'the-cluster-credential-secret';

describe('connection node with the Redis token store', function () {
  needsSystemPackage(this, 'redis-server');
  this.timeout(60_000);
  let auth: AuthServer;
  let api: ApiServer;
  let redis: RedisServer;
  let userDir: string;
  let prefix: string;
  const assertNoUnhandledRejections = collectUnhandledRejections('the Redis wiring tests');

  before(async () => {
    await loadCatalogs();
    [auth, redis] = await Promise.all([startAuthServer({ accessTokenTtlSec: 3600 }), startRedis()]);
    api = await startApiServer(auth);
  });
  after(async () => {
    await Promise.all([api?.close(), auth?.close(), redis?.close()]);
    assertNoUnhandledRejections();
  });
  beforeEach(() => {
    userDir = useTempUserDir();
    prefix = freshPrefix();
    auth.resetCounts();
    api.requests.length = 0;
  });
  afterEach(async () => {
    await helper.unload();
    fs.rmSync(userDir, { recursive: true, force: true });
  });

  function settings(store: Record<string, unknown>, extra: Record<string, unknown> = {}): void {
    helper.settings({ userDir, httpOAuth2: { store: { type: 'redis', url: redis.url, keyPrefix: prefix, ...store } }, ...extra });
  }

  async function load(): Promise<{ conn: RuntimeNode; req: RuntimeNode }> {
    const conn = serviceConnection(auth, { apiBaseUrl: api.url });
    await helper.load(nodeModules, [tab(), conn.node, requestNode('req', { url: '/echo' }), helperNode(), ...catchNodes(['req'])], conn.credentials);
    return { conn: helper.getNode(String(conn.node.id)), req: helper.getNode('req') };
  }

  const outcome = (): Promise<Msg> => requestOutcome();

  async function send(msg: Msg, outId: string): Promise<Msg> {
    const received = nextInput(helper.getNode(outId));
    helper.getNode('req').receive(msg);
    return received;
  }

  it('tokens go to Redis, sealed; 20 requests fetch one token', async () => {
    settings({ commandTimeoutMs: 500 }, { credentialSecret: CREDENTIAL_SECRET });
    const { conn } = await load();
    auth.resetCounts();
    const replies: Msg[] = [];
    const out = helper.getNode('out');
    out.on('input', (m: Msg) => replies.push(m));
    for (let i = 0; i < 20; i++) helper.getNode('req').receive({});
    await eventually(() => replies.length === 20, 10_000, '20 replies');
    assert.ok(replies.every((m) => m.statusCode === 200));
    assert.equal(api.requests.length, 20);
    assert.deepEqual(auth.counts().token, { client_credentials: 1 });
    const probe = await connectInstance(redis.url, prefix);
    try {
      assert.equal(await probe.client.exists(probe.key('tokens', conn.id)), 1, 'the token is in Redis');
      const raw = await rawUnder(probe, prefix);
      const token = String(api.requests.at(-1)?.headers.authorization ?? '').replace(/^Bearer /, '');
      assert.ok(token.length > 10);
      assert.equal(raw.includes(token), false, 'the access token is in Redis in clear');
    } finally {
      await probe.close();
    }
    assert.equal(fs.existsSync(`${userDir}/.http-oauth2-tokens.json`), false, 'nothing in the file store');
  });

  it("the deploy sweep leaves the other instances' logins alone (tokens of a connection this instance never had)", async () => {
    settings({ commandTimeoutMs: 500 }, { credentialSecret: CREDENTIAL_SECRET });
    const probe = await connectInstance(redis.url, prefix);
    try {
      const others = await openRedisTokenStore({ connection: probe, secret: CREDENTIAL_SECRET });
      const twoDaysAgo = Date.now() - 2 * 24 * 3600 * 1000;
      const tokens = { accessToken: 'other-instance-access', tokenType: 'Bearer', expiresAt: twoDaysAgo + 3600_000, obtainedAt: twoDaysAgo, scopes: [], expirySource: 'expires_in' as const };
      await others.set('other-instances-conn', { tokens, updatedAt: twoDaysAgo });
      const { conn } = await load();
      await outcome();
      // The sweep runs on flows:started, before the first request is answered; a little more for its deletes.
      await new Promise((r) => setTimeout(r, 300));
      assert.ok((await others.ids()).includes(conn.id), 'this instance stored its own token');
      assert.ok(await others.get('other-instances-conn'), "the sweep deleted another instance's login");
    } finally {
      await probe.close();
    }
  });

  it('a connection removed by a deploy while Redis is down: the next deploy after Redis is back deletes its tokens', async () => {
    settings({ commandTimeoutMs: 500 }, { credentialSecret: CREDENTIAL_SECRET });
    const { conn } = await load();
    assert.equal((await outcome()).statusCode, 200);
    const probe = await connectInstance(redis.url, prefix);
    const setFlows = (helper as unknown as { setFlows(flow: unknown[], type: string): Promise<void> }).setFlows.bind(helper);
    let restarted = false;
    try {
      const key = probe.key('tokens', conn.id);
      assert.equal(await probe.client.exists(key), 1);
      await redis.stop();
      // The connection is deleted from the flows while Redis is down: the sweep cannot list the store.
      await setFlows([tab(), helperNode()], 'full');
      await new Promise((r) => setTimeout(r, 1500)); // the sweep fails within the command timeout
      await redis.start();
      restarted = true;
      await new Promise((r) => setTimeout(r, 2500)); // the runtime's Redis connection reconnects (backoff up to 2 s)
      // Any later deploy (here: a flow change elsewhere) sweeps again, and remembers the removal.
      await setFlows([tab(), { ...helperNode(), name: 'changed' }], 'full');
      const until = Date.now() + 5000;
      while ((await probe.client.exists(key)) !== 0) {
        assert.ok(Date.now() < until, "the removed connection's tokens were left in Redis");
        await new Promise((r) => setTimeout(r, 50));
      }
    } finally {
      if (!restarted) await redis.start();
      await probe.close();
    }
  });

  it('no shared secret: the connection reports it, translated, with a red status; no request is sent', async () => {
    settings({});
    const { conn, req } = await load();
    const configError = conn.configError as { code?: string; message: string } | undefined;
    assert.equal(configError?.code, 'OAUTH2_INVALID_CONFIG');
    assert.match(configError?.message ?? '', /^Invalid configuration: The token store secret \(httpOAuth2\.store\.secret in settings\.js\) is required: every instance must seal tokens with the same secret/);
    assert.deepEqual(statusLog(conn).at(-1), { fill: 'red', shape: 'ring', text: 'oauth2-connection.status.storeInvalid' });
    assert.deepEqual(statusLog(req)[0], { fill: 'red', shape: 'ring', text: 'OAUTH2_INVALID_CONFIG' });
    const caught = await send({ payload: 'kept' }, 'caught');
    assert.equal((caught.error as { code?: string }).code, 'OAUTH2_INVALID_CONFIG');
    assert.deepEqual(api.requests.map((r) => r.path), []);
  });

  it('an invalid store setting names the setting, translated', async () => {
    settings({ lockTtlMs: 5 }, { credentialSecret: CREDENTIAL_SECRET });
    const { conn } = await load();
    const configError = conn.configError as { message: string } | undefined;
    assert.equal(
      configError?.message,
      'Invalid configuration: The refresh lock lifetime (httpOAuth2.store.lockTtlMs in settings.js) is outside the allowed range',
    );
  });

  it('Redis stopped: a token-store error saying Redis cannot be reached, "Redis unavailable" status; back: requests work again by themselves', async () => {
    settings({ commandTimeoutMs: 500 }, { credentialSecret: CREDENTIAL_SECRET });
    const { conn } = await load();
    await redis.stop();
    let restarted = false;
    try {
      await eventually(() => statusLog(conn, currentStatusSpy()).some((s) => s.text === 'oauth2-connection.status.redisUnavailable'), 5000, 'Redis unavailable status');
      // The editor draws no status for config nodes: the request node shows it.
      const req = helper.getNode('req');
      await eventually(
        () => statusLog(req, currentStatusSpy()).at(-1)?.text === 'http-oauth2-request.status.storeUnavailable',
        5000,
        'the request node showing the token store unavailable',
      );
      // No token held yet (client credentials fetch on first use): the fetch needs the lock, so it fails.
      const caught = await send({ payload: 'kept' }, 'caught');
      const error = caught.error as { code?: string; message: string };
      assert.equal(error.code, 'OAUTH2_TOKEN_STORE_FAILED');
      assert.match(error.message, /^The token store could not be read or written: Redis (cannot be reached|did not answer in time)$/);
      assert.equal(caught.payload, 'kept');
      assert.deepEqual(auth.counts().token, {}, 'no token fetched without the lock');
      await redis.start();
      restarted = true;
      const back = Date.now();
      for (;;) {
        const reply = await outcome();
        if (reply.statusCode === 200) break;
        assert.ok(Date.now() - back < 10_000, 'not recovered within 10 s');
        await new Promise((r) => setTimeout(r, 100));
      }
      await eventually(() => statusLog(conn, currentStatusSpy()).at(-1)?.text === undefined, 5000, 'status cleared');
      assert.notEqual(statusLog(req, currentStatusSpy()).at(-1)?.text, 'http-oauth2-request.status.storeUnavailable', 'the request node still shows the outage');
      console.log(`      requests served again ${Date.now() - back} ms after Redis answered`);
    } finally {
      if (!restarted) await redis.start();
    }
  });

  it('Redis stopped: the held token serves every request until its real expiry, through the refresh-early window, then a clear error', async () => {
    // A 6 s token with the default refresh skew (60 s, at most half the life): renewal is due after 3 s.
    const short = await startAuthServer({ accessTokenTtlSec: 6 });
    const shortApi = await startApiServer(short);
    let restarted = false;
    try {
      settings({ commandTimeoutMs: 500 }, { credentialSecret: CREDENTIAL_SECRET });
      const conn = serviceConnection(short, { apiBaseUrl: shortApi.url });
      conn.node.refreshSkewSec = ''; // the editor's default: 60 s
      await helper.load(nodeModules, [tab(), conn.node, requestNode('req', { url: '/echo' }), helperNode(), ...catchNodes(['req'])], conn.credentials);
      const first = await outcome();
      assert.equal(first.statusCode, 200);
      const obtained = Date.now();
      await redis.stop();
      const results: Array<{ at: number; ok: boolean; code?: string }> = [];
      // Requests every 250 ms until just before the token's end: the provider's expiry has second precision, so a
      // "6 s" token lives 5 to 6 s; past that the API answers 401 and a renewal would need the lock.
      while (Date.now() < obtained + 4_700) {
        const reply = await outcome();
        results.push({ at: Date.now() - obtained, ok: reply.statusCode === 200, code: (reply.error as { code?: string } | undefined)?.code });
        await new Promise((r) => setTimeout(r, 250));
      }
      const failed = results.filter((r) => !r.ok);
      assert.deepEqual(failed, [], `requests failed while the held token was valid: ${JSON.stringify(failed.slice(0, 3))}`);
      assert.ok(results.some((r) => r.at > 3_500), 'requests ran inside the refresh-early window');
      assert.deepEqual(short.counts().token, { client_credentials: 1 }, 'no token fetched without the lock');
      await new Promise((r) => setTimeout(r, Math.max(0, obtained + 6_300 - Date.now())));
      const caught = await send({}, 'caught');
      assert.equal((caught.error as { code?: string }).code, 'OAUTH2_TOKEN_STORE_FAILED');
      await redis.start();
      restarted = true;
      // Back: the connection renews (under the lock) and answers again before the flow is unloaded.
      const back = Date.now();
      while ((await outcome()).statusCode !== 200) {
        assert.ok(Date.now() - back < 10_000, 'not recovered within 10 s');
        await new Promise((r) => setTimeout(r, 100));
      }
      assert.deepEqual(short.counts().token, { client_credentials: 2 }, 'one new token after Redis came back');
    } finally {
      if (!restarted) await redis.start();
      await Promise.all([shortApi.close(), short.close()]);
    }
  });
});
