/**
 * The editor dialog's status route (GET oauth2-connection/:id/status) with the token store on Redis
 * (node-red-node-test-helper, the compiled nodes, the real catalogs, a real redis-server, the real authorization
 * server and API): before, during and after a Redis outage it says whether the shared token store can be
 * reached, with a translated message naming Redis by host:port only (never the URL, which here holds a
 * password); a connection 'unavailable' because of the store says so by its code; a connection that is not
 * deployed gets an answer too, not an error.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { startApiServer, type ApiServer } from '../support/api-server';
import { startAuthServer, type AuthServer } from '../support/auth-server';
import { startRedis, type RedisServer } from '../support/redis';
import {
  catchNodes,
  collectUnhandledRejections,
  helper,
  helperNode,
  loadCatalogs,
  nodeModules,
  requestNode,
  requestOutcome,
  serviceConnection,
  tab,
  useTempUserDir,
} from './support';
import { freshPrefix } from '../unit/tokens/support/redis-instances';
import { needsSystemPackage } from '../support/system-packages';

type Msg = Record<string, unknown>;
const CREDENTIAL_SECRET = 'the-cluster-credential-secret';
/** In the Redis URL's user info: Redis 7's default user (nopass) takes any password with a user name. */
const URL_PASSWORD = 'url-password-never-shown';

interface StatusAnswer {
  state: string;
  stateCode?: string;
  stateMessage?: string;
  store: string;
  storeWhere?: string;
  storeUnavailable?: boolean;
  storeMessage?: string;
}

/** supertest on the helper's admin app (node-red-node-test-helper's request()). */
type Admin = { get(path: string): PromiseLike<{ status: number; text: string; body: unknown }> };

describe('connection status route with the Redis token store', function () {
  needsSystemPackage(this, 'redis-server');
  this.timeout(60_000);
  let auth: AuthServer;
  let api: ApiServer;
  let redis: RedisServer;
  let userDir: string;
  let where: string;
  const assertNoUnhandledRejections = collectUnhandledRejections('the status route tests');

  before(async () => {
    await loadCatalogs();
    [auth, redis] = await Promise.all([startAuthServer({ accessTokenTtlSec: 3600 }), startRedis()]);
    api = await startApiServer(auth);
    where = `127.0.0.1:${redis.port}`;
  });
  after(async () => {
    await Promise.all([api?.close(), auth?.close(), redis?.close()]);
    assertNoUnhandledRejections();
  });
  beforeEach(() => {
    userDir = useTempUserDir();
    helper.settings({
      userDir,
      credentialSecret: CREDENTIAL_SECRET,
      httpOAuth2: {
        store: { type: 'redis', url: `redis://default:${URL_PASSWORD}@127.0.0.1:${redis.port}`, keyPrefix: freshPrefix(), commandTimeoutMs: 500 },
      },
    });
  });
  afterEach(async () => {
    if (!redis.pid) await redis.start();
    await helper.unload();
    fs.rmSync(userDir, { recursive: true, force: true });
  });

  async function load(): Promise<string> {
    const conn = serviceConnection(auth, { apiBaseUrl: api.url });
    await helper.load(nodeModules, [tab(), conn.node, requestNode('req', { url: '/echo' }), helperNode(), ...catchNodes(['req'])], conn.credentials);
    return String(conn.node.id);
  }

  async function status(id: string): Promise<StatusAnswer> {
    const admin = (helper as unknown as { request(): Admin }).request();
    const res = await admin.get(`/oauth2-connection/${id}/status`);
    assert.equal(res.status, 200, `status route answered ${res.status}: ${res.text}`);
    for (const secret of [URL_PASSWORD, 'redis://']) assert.ok(!res.text.includes(secret), `the answer shows the Redis URL: ${res.text}`);
    return res.body as StatusAnswer;
  }

  async function statusUntil(id: string, check: (s: StatusAnswer) => boolean, what: string, ms = 10_000): Promise<StatusAnswer> {
    const deadline = Date.now() + ms;
    for (;;) {
      const answer = await status(id);
      if (check(answer)) return answer;
      assert.ok(Date.now() < deadline, `${what} within ${ms} ms; last answer: ${JSON.stringify(answer)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  const outcome = (): Promise<Msg> => requestOutcome();

  const unavailableText = (): string =>
    `Token store: Redis (${where}) is unavailable. Tokens already held are used until they expire; renewals wait for Redis.`;

  it('a deployed connection holding a token: "ready" and the store reachable, then the store unavailable (named by host:port) while the token still works, then reachable again', async () => {
    const id = await load();
    assert.equal((await outcome()).statusCode, 200);

    const before = await status(id);
    assert.equal(before.state, 'ready');
    assert.equal(before.store, 'redis');
    assert.equal(before.storeWhere, where);
    assert.equal(before.storeUnavailable, false);
    assert.equal(before.storeMessage, undefined);

    await redis.stop();
    const during = await statusUntil(id, (s) => s.storeUnavailable === true, 'the store reported unavailable');
    assert.equal(during.state, 'ready', 'the held token is still good');
    assert.equal(during.storeWhere, where);
    assert.equal(during.storeMessage, unavailableText());
    assert.equal((await outcome()).statusCode, 200, 'the held token still serves requests');

    await redis.start();
    const after = await statusUntil(id, (s) => s.storeUnavailable === false, 'the store reported reachable again');
    assert.equal(after.state, 'ready');
    assert.equal(after.storeMessage, undefined);
  });

  it("a deployed connection 'unavailable' because of the store: the state names the token store (code and message), not the token endpoint", async () => {
    const id = await load();
    const before = await status(id);
    assert.notEqual(before.state, 'unavailable');
    assert.equal(before.storeUnavailable, false);

    await redis.stop();
    await statusUntil(id, (s) => s.storeUnavailable === true, 'the store reported unavailable');
    // No token held (client credentials fetch on first use): fetching one needs the refresh lock on Redis, so the request fails.
    const failed = await outcome();
    assert.equal((failed.error as { code?: string }).code, 'OAUTH2_TOKEN_STORE_FAILED');
    const during = await status(id);
    assert.equal(during.state, 'unavailable');
    assert.equal(during.stateCode, 'OAUTH2_TOKEN_STORE_FAILED');
    assert.match(during.stateMessage ?? '', /^The token store could not be read or written: Redis (cannot be reached|did not answer in time)$/);
    assert.equal(during.storeUnavailable, true);
    assert.equal(during.storeMessage, unavailableText());

    await redis.start();
    await statusUntil(id, (s) => s.storeUnavailable === false, 'the store reported reachable again');
    const back = Date.now();
    while ((await outcome()).statusCode !== 200) {
      assert.ok(Date.now() - back < 10_000, 'requests not served again within 10 s');
      await new Promise((r) => setTimeout(r, 100));
    }
    const after = await status(id);
    assert.equal(after.state, 'ready');
    assert.equal(after.stateCode, undefined);
  });

  it('a connection not deployed: the runtime\'s Redis tells; during the outage an answer saying the store is unavailable, not an error', async () => {
    await load();
    const id = 'not-deployed-conn';
    const before = await status(id);
    assert.equal(before.state, 'logged-out');
    assert.equal(before.storeWhere, where);
    assert.equal(before.storeUnavailable, false);

    await redis.stop();
    const during = await statusUntil(id, (s) => s.storeUnavailable === true, 'the store reported unavailable');
    assert.equal(during.state, 'unavailable');
    assert.equal(during.stateCode, 'OAUTH2_TOKEN_STORE_FAILED');
    assert.match(during.stateMessage ?? '', /^The token store could not be read or written: Redis/);
    assert.equal(during.storeMessage, unavailableText());

    await redis.start();
    const after = await statusUntil(id, (s) => s.storeUnavailable === false, 'the store reported reachable again');
    assert.equal(after.state, 'logged-out');
    assert.equal(after.stateCode, undefined);
  });
});
