/**
 * Journey 5, "it outgrows one machine": three Node-RED runtimes (child processes) with the same flows, the same
 * credential secret and one real redis-server, in front of the real authorization server (rotating refresh
 * tokens, short-lived access tokens) and the records API. Nothing is mocked.
 *
 * - a login made in one instance's editor is used by the other two;
 * - 300 requests in flight across the three on an expired access token: exactly one refresh, no failure;
 * - one record trigger deployed on all three: each change emitted once in the cluster; the polling instance is
 *   killed mid-poll and another takes over within the lease, losing and repeating nothing;
 * - Redis stopped and restarted: requests go on with the token held, the nodes say Redis is unavailable, once
 *   the token has expired requests fail with a clear error and nobody refreshes without the lock, and
 *   everything recovers by itself (one refresh for the three; the changes made meanwhile are emitted once).
 *
 * The three runtimes start once for the file; the cases run in order and build on each other.
 */
import assert from 'node:assert/strict';
import type Redis from 'ioredis';
import type { AuthServer } from '../support/auth-server';
import { redisClient, redisContents, startCluster, type Cluster, type ClusterMember } from '../support/cluster';
import { callLane, connectionStatus, serviceConnection, sleep, startWatchedAuthServer, waitFor, webConnection, type JsonAnswer } from '../support/e2e';
import { loginFromEditor } from '../support/editor-login';
import { dialogConfig, requestLane, tab, triggerLane } from '../support/flows';
import { watchText } from '../support/leaks';
import { startRecordsApi, type RecordsApi } from '../support/records-api';
import { redisAvailable, startRedis, type RedisServer } from '../support/redis';
import { needsSystemPackage } from '../support/system-packages';
import { REDIS_DEFAULTS } from '../../nodes/lib/redis/settings';

const SECRET = 'cluster-test-shared-credential-secret';
const KEY_PREFIX = 'cluster-test:';
const ACCESS_TOKEN_TTL_SEC = 8;
/** The defaults of httpOAuth2.store: the cluster runs with them, so its figures are the README's. */
const TRIGGER_LEASE_MS = REDIS_DEFAULTS.triggerLeaseMs;
const LOCK_TTL_MS = REDIS_DEFAULTS.lockTtlMs;
const POLL_INTERVAL_MS = 5_000;
const LANES = 5;

interface Arrival {
  lane: string;
  event: string;
  id: string;
  version?: string;
  member: string;
  /** When the sink received it (test clock). */
  at: number;
}

/** What the file measured, printed at the end (the figures in docs/RELIABILITY.md). */
const figures: Record<string, string | number> = {};

/** The trigger lane of test/support/flows.ts, whose messages also say which instance emitted them. */
function clusterTriggerLane(): Record<string, unknown>[] {
  return triggerLane({
    id: 't1',
    path: '/poll/t1',
    connectionId: 'conn2',
    // The query tells the trigger's polls from the request lanes' GET /records at the API.
    config: { url: '/records?from=trigger', interval: POLL_INTERVAL_MS / 1000, intervalUnit: 's' },
  }).map((node) =>
    node.id === 't1-shape'
      ? {
          ...node,
          rules: [
            {
              t: 'set',
              p: 'payload',
              pt: 'msg',
              to: '{"lane": "t1", "event": event, "id": topic, "version": version, "member": $globalContext("clusterMember")}',
              tot: 'jsonata',
            },
          ],
        }
      : node,
  );
}

describe('e2e: three instances sharing Redis (one OAuth2 client, rotating refresh tokens)', function () {
  needsSystemPackage(this, 'redis-server');
  this.timeout(120_000);
  let redis: RedisServer;
  let client: Redis;
  let auth: AuthServer;
  let api: RecordsApi;
  let cluster: Cluster;
  let members: ClusterMember[];
  let conn: Record<string, unknown>;
  let watchSink: NodeJS.Timeout | undefined;
  const issued: string[] = [];
  const arrivedAt = new Map<number, number>();

  const member = (name: string): ClusterMember => {
    const found = members.find((m) => m.name === name);
    if (!found) throw new Error(`no member ${name}`);
    return found;
  };
  /** The trigger's messages that reached the sink, with when they arrived. */
  const arrivals = (): Arrival[] =>
    (api.sink as Array<Omit<Arrival, 'at'>>)
      .map((a, i) => {
        if (!arrivedAt.has(i)) arrivedAt.set(i, Date.now());
        return { ...a, at: arrivedAt.get(i) ?? 0 };
      })
      .filter((a) => a.lane === 't1');
  /** "event id version", the version as epoch ms (the trigger emits updated_at parsed; the API keeps ISO text). */
  const key = (a: { event: string; id: string | number; version?: string | number }): string => {
    const v = a.version === undefined ? '' : /^\d+$/.test(String(a.version)) ? String(a.version) : String(Date.parse(String(a.version)));
    return `${a.event} ${a.id} ${v}`;
  };
  /** Each expected change exactly once, and nothing else, in the whole cluster. */
  const assertExactlyOnce = (expected: string[]): void => {
    const got = arrivals().map(key).sort();
    assert.deepEqual(got, [...expected].sort(), `emitted in the cluster: ${JSON.stringify(arrivals())}`);
  };
  /** The trigger's list requests at the API (the lanes' are left out). */
  const polls = (): RecordsApi['listRequests'] => api.listRequests.filter((r) => r.query.from === 'trigger');
  /** The refresh-token grants and logins of the user connection (conn2's client-credentials grants aside). */
  const userGrants = (): Record<string, number> => {
    const { client_credentials: _service, ...rest } = auth.counts().token;
    return rest;
  };

  /** Waits until every instance's access token for conn1 has expired (they share it). */
  async function untilExpired(): Promise<void> {
    const status = await connectionStatus(members[0].runtime);
    const expiresAt = Number(status.expiresAt);
    assert.ok(Number.isFinite(expiresAt), JSON.stringify(status));
    await sleep(Math.max(0, expiresAt - Date.now()) + 300);
  }

  async function requestOn(m: ClusterMember, i: number): Promise<JsonAnswer> {
    return callLane(m.runtime, `/records${(i % LANES) + 1}`);
  }

  before(async () => {
    if (!redisAvailable()) throw new Error('redis-server is missing: .ci/run installs it (apt-get install redis-server)');
    const started = Date.now();
    redis = await startRedis();
    client = redisClient(redis);
    await client.connect();
    auth = await startWatchedAuthServer({ accessTokenTtlSec: ACCESS_TOKEN_TTL_SEC });
    auth.provider.on('access_token.saved', (model: unknown) => issued.push((model as { jti: string }).jti));
    auth.provider.on('refresh_token.saved', (model: unknown) => issued.push((model as { jti: string }).jti));
    auth.provider.on('client_credentials.saved', (model: unknown) => issued.push((model as { jti: string }).jti));
    api = await startRecordsApi(auth);
    const past = new Date(Date.now() - 60_000);
    api.add('alpha', past);
    api.add('beta', past);
    figures.partsStartedMs = Date.now() - started;
    cluster = await startCluster({
      redis,
      keyPrefix: KEY_PREFIX,
      credentialSecret: SECRET,
      // No lease, lock or time-out setting: the defaults.
    });
    members = cluster.members;
    figures.runtimesStartedMs = Date.now() - started;
    // The login's redirect URI is A's: behind a load balancer it is the public address, and the callback must
    // reach the instance that started the login (the README says so). The flows are the same everywhere.
    conn = webConnection(auth, api, member('A').runtime, 'conn1');
    const flows = [
      tab(),
      conn,
      serviceConnection(auth, api, 'conn2'),
      ...Array.from({ length: LANES }, (_, i) => requestLane({ path: `/records${i + 1}`, requestNodeId: `req${i + 1}`, url: '/records' })).flat(),
      ...clusterTriggerLane(),
    ];
    await cluster.deploy(flows);
    figures.startupMs = Date.now() - started;
    // Stamps each sink arrival with the time it was first seen.
    watchSink = setInterval(() => arrivals(), 20);
  });

  after(async () => {
    clearInterval(watchSink);
    const stopping = Date.now();
    await cluster?.close();
    figures.stopMs = Date.now() - stopping;
    client?.disconnect();
    await api?.close();
    await auth?.close();
    await redis?.close();
    console.log(`      cluster figures: ${JSON.stringify(figures)}`);
  });

  afterEach(function () {
    const crashes = members?.flatMap((m) => m.runtime.crashes.map((c) => `${m.name}: ${c}`)) ?? [];
    assert.deepEqual(crashes, [], `a runtime crashed during "${this.currentTest?.title}"`);
  });

  it("a login in A's editor is used by B and C without logging in there", async () => {
    for (const m of members) assert.equal((await connectionStatus(m.runtime)).state, 'logged-out', m.name);
    auth.resetCounts();
    const page = await loginFromEditor(member('A').runtime, 'conn1', dialogConfig(conn), auth.clients.web.clientSecret);
    watchText(page.html);
    assert.equal(page.status, 200, page.html);
    for (const m of members) {
      const res = await requestOn(m, 0);
      assert.equal(res.status, 200, `${m.name}: ${res.text}`);
      const status = await connectionStatus(m.runtime);
      assert.equal(status.state, 'ready', `${m.name}: ${JSON.stringify(status)}`);
      assert.equal(status.hasRefreshToken, true, m.name);
    }
    assert.deepEqual(userGrants(), { authorization_code: 1 }, 'one login, no refresh');
  });

  it('300 requests in flight across the three on an expired token: exactly 1 refresh, 0 failures', async () => {
    await untilExpired();
    auth.resetCounts();
    const started = Date.now();
    const results = await Promise.all(
      Array.from({ length: 300 }, (_, i) => {
        const m = members[i % members.length];
        return requestOn(m, Math.floor(i / members.length)).then((r) => ({ ...r, member: m.name }));
      }),
    );
    figures.burst300Ms = Date.now() - started;
    const failed = results.filter((r) => r.status !== 200);
    assert.equal(failed.length, 0, `${failed.length} failed, e.g. ${JSON.stringify(failed.slice(0, 3))}`);
    for (const m of members) assert.equal(results.filter((r) => r.member === m.name).length, 100);
    const counts = userGrants();
    figures.burstRefreshes = counts.refresh_token ?? 0;
    assert.deepEqual(counts, { refresh_token: 1 }, 'exactly one refresh at the provider');
    for (const m of members) assert.equal((await connectionStatus(m.runtime)).state, 'ready', m.name);
  });

  it('one trigger on three instances: each change is emitted once, by one poller', async () => {
    // The first poll (by whichever instance holds the lease) remembers alpha and beta and emits nothing.
    await waitFor(() => polls().length > 0, POLL_INTERVAL_MS + TRIGGER_LEASE_MS + 5_000, 'the first poll');
    const firstPollAt = polls()[0].at;
    const gamma = api.add('gamma');
    const alpha = api.update(1, { name: 'alpha 2' }, new Date(Date.now() + 1_000));
    await waitFor(() => arrivals().length >= 2, 2 * POLL_INTERVAL_MS + 5_000, 'gamma and alpha 2 at the sink');
    await sleep(300);
    assertExactlyOnce([key({ event: 'created', id: gamma.id, version: gamma.updated_at }), key({ event: 'updated', id: 1, version: alpha.updated_at })]);
    const pollers = new Set(arrivals().map((a) => a.member));
    assert.equal(pollers.size, 1, `emitted by ${[...pollers].join(', ')}`);
    // One poller in the cluster: the polls come at the interval, not three times as often.
    const window = Date.now() - firstPollAt;
    const count = polls().length;
    figures.pollsInWindow = `${count} in ${window} ms`;
    assert.ok(count <= Math.floor(window / POLL_INTERVAL_MS) + 2, `${count} polls in ${window} ms: more than one poller`);
  });

  it('the polling instance killed mid-poll: another takes over within the lease, losing and repeating nothing', async () => {
    const poller = member(arrivals()[0].member);
    const before = arrivals().map(key);
    // The poller's next list request is held: it has fetched nothing and sent nothing when it dies.
    const hold = api.holdPage(0);
    const delta = api.add('delta');
    const beta = api.update(2, { name: 'beta 2' }, new Date(Date.now() + 2_000));
    await Promise.race([
      hold.reached,
      sleep(POLL_INTERVAL_MS + 5_000).then(() => {
        throw new Error('the poller did not poll');
      }),
    ]);
    const killedAt = Date.now();
    await cluster.kill(poller);
    hold.release();
    const survivors = members.filter((m) => m !== poller).map((m) => m.name);
    const expected = [...before, key({ event: 'created', id: delta.id, version: delta.updated_at }), key({ event: 'updated', id: 2, version: beta.updated_at })];
    await waitFor(() => arrivals().length >= expected.length, TRIGGER_LEASE_MS + 2 * POLL_INTERVAL_MS + 5_000, 'delta and beta 2 from a survivor');
    const takeover = polls().find((r) => r.at > killedAt + 50);
    assert.ok(takeover, 'a survivor polled');
    figures.takeoverFirstPollMs = takeover.at - killedAt;
    const late = arrivals().filter((a) => a.at > killedAt);
    figures.takeoverDeliveredMs = Math.max(...late.map((a) => a.at)) - killedAt;
    await sleep(300);
    assertExactlyOnce(expected);
    for (const a of late) assert.ok(survivors.includes(a.member), `${a.member} emitted after being killed`);
    // The lease runs out at most TRIGGER_LEASE_MS after the kill; a standby polls as soon as it takes it over
    // (1.5 s of slack for a loaded 2-core machine), not at its next interval.
    assert.ok(
      figures.takeoverFirstPollMs <= TRIGGER_LEASE_MS + 1_500,
      `first poll by a survivor ${figures.takeoverFirstPollMs} ms after the kill (lease ${TRIGGER_LEASE_MS} ms)`,
    );
    // The killed instance comes back and joins: it must not emit anything again.
    await cluster.restart(poller);
    await sleep(TRIGGER_LEASE_MS);
    assertExactlyOnce(expected);
  });

  it('Redis stopped and restarted: the held token serves until it expires, then a clear error; the nodes say so; everything recovers', async () => {
    const before = arrivals().map(key);
    // Every instance holds a fresh access token (one refresh for the three).
    await untilExpired();
    auth.resetCounts();
    for (const m of members) assert.equal((await requestOn(m, 0)).status, 200, m.name);
    assert.deepEqual(userGrants(), { refresh_token: 1 });
    const freshUntil = Number((await connectionStatus(members[0].runtime)).expiresAt);

    await redis.stop();
    const downAt = Date.now();
    const epsilon = api.add('epsilon');
    // Requests keep working with the token held (it is valid for a few more seconds).
    const during = await Promise.all(members.flatMap((m) => Array.from({ length: 10 }, (_, i) => requestOn(m, i).then((r) => ({ ...r, member: m.name })))));
    const failedDuring = during.filter((r) => r.status !== 200);
    assert.equal(failedDuring.length, 0, `failed while Redis was down: ${JSON.stringify(failedDuring.slice(0, 3))}`);
    assert.ok(Date.now() < freshUntil, 'the requests ran while the token was valid (slow machine?)');
    // Every instance shows it: the connection at once, the trigger at its next attempt (holder or standby).
    const showsRedis = (m: ClusterMember, id: string): boolean => /redis/i.test(m.status.text(id));
    await waitFor(() => members.every((m) => showsRedis(m, 'conn1')), 3_000, 'every connection showing Redis unavailable');
    figures.connectionShowsRedisMs = Date.now() - downAt;
    // A trigger notices at its next attempt: the holder at its interval, a standby sooner; the attempt itself can
    // take the command timeout (3 s) while ioredis reconnects.
    await waitFor(() => members.every((m) => showsRedis(m, 't1')), POLL_INTERVAL_MS + 3_000 + 3_000, 'every trigger showing Redis unavailable').catch(
      (err: Error) => {
        throw new Error(`${err.message}; trigger statuses: ${JSON.stringify(members.map((m) => [m.name, m.status.text('t1')]))}`);
      },
    );
    figures.triggerShowsRedisMs = Date.now() - downAt;
    figures.redisStatusTexts = JSON.stringify({ conn1: member('A').status.text('conn1'), t1: member('A').status.text('t1'), req1: member('A').status.text('req1') });
    figures.statusRouteDuringOutage = JSON.stringify(await connectionStatus(member('B').runtime));

    // Once the token has expired, a request cannot be authorised without the cluster lock: a clear, catchable
    // error, and no instance refreshes on its own (that would spend the rotating refresh token).
    await sleep(Math.max(0, freshUntil - Date.now()) + 300);
    const expired = await Promise.all(members.map((m) => requestOn(m, 1).then((r) => ({ ...r, member: m.name }))));
    for (const r of expired) {
      assert.equal(r.status, 599, `${r.member}: ${r.text}`);
      assert.equal((r.body as { code?: string }).code, 'OAUTH2_TOKEN_STORE_FAILED', `${r.member}: ${r.text}`);
      assert.match((r.body as { message?: string }).message ?? '', /redis/i, r.text);
    }
    figures.expiredDuringOutageError = expired[0].text;
    assert.deepEqual(userGrants(), { refresh_token: 1 }, 'no refresh without the cluster lock');

    await redis.start();
    const upAt = Date.now();
    figures.redisDownMs = upAt - downAt;
    auth.resetCounts();
    // Nobody's help needed: each instance's requests succeed again (the expired token renewed once for all).
    await Promise.all(
      members.map((m) => waitFor(async () => (await requestOn(m, 2)).status === 200, 20_000, `${m.name} answering again`, 250)),
    );
    figures.requestsRecoveredMs = Date.now() - upAt;
    const after = await Promise.all(members.flatMap((m) => Array.from({ length: 20 }, (_, i) => requestOn(m, i).then((r) => ({ ...r, member: m.name })))));
    const failedAfter = after.filter((r) => r.status !== 200);
    assert.equal(failedAfter.length, 0, `failed after Redis came back: ${JSON.stringify(failedAfter.slice(0, 3))}`);
    assert.deepEqual(userGrants(), { refresh_token: 1 }, 'one refresh after the recovery, for the three');
    // The change made during the outage arrives once; the statuses clear.
    const expected = [...before, key({ event: 'created', id: epsilon.id, version: epsilon.updated_at })];
    await waitFor(() => arrivals().length >= expected.length, 30_000, 'epsilon at the sink after Redis came back');
    figures.triggerRecoveredMs = Date.now() - upAt;
    await waitFor(() => members.every((m) => !showsRedis(m, 'conn1') && !showsRedis(m, 't1')), 15_000, 'the Redis-unavailable statuses to clear');
    figures.statusRecoveredMs = Date.now() - upAt;
    await sleep(POLL_INTERVAL_MS);
    assertExactlyOnce(expected);
  });

  it('Redis holds no token or client secret in clear, only keys under the prefix', async () => {
    if (!redis.pid) await redis.start(); // an earlier case failed during the outage
    await waitFor(() => client.status === 'ready', 10_000, 'the test client connected to Redis');
    const contents = await redisContents(client, '');
    const all = [...contents.entries()].map(([k, v]) => `${k} ${v}`).join('\n');
    // Through the leak scan too (zz-leak-scan), with every secret the e2e files registered.
    watchText(all);
    figures.redisKeys = contents.size;
    assert.ok(contents.size > 0, 'the nodes keep their state in Redis');
    assert.deepEqual([...contents.keys()].filter((k) => !k.startsWith(KEY_PREFIX)), [], 'every key under the prefix');
    assert.deepEqual(issued.filter((t) => all.includes(t)), [], 'a token is stored in clear in Redis');
    assert.ok(!all.includes(auth.clients.web.clientSecret), 'the web client secret is in Redis');
    assert.ok(!all.includes(auth.clients.service.clientSecret), 'the service client secret is in Redis');
  });

  it('each instance holds one Redis connection (and one subscriber), whatever its number of nodes and deploys', async () => {
    // Every connection and trigger node of an instance shares one backend: Node-RED's settings.get answers a
    // fresh copy each time, so a backend cached on the setting's identity would open one connection per node.
    const list = String(await client.call('CLIENT', 'LIST'));
    const names = list
      .split('\n')
      .map((line) => /(?:^| )name=(\S*)/.exec(line)?.[1])
      .filter((name): name is string => Boolean(name?.startsWith('node-red-http-oauth2')));
    const count = (name: string): number => names.filter((n) => n === name).length;
    figures.redisClients = JSON.stringify({ main: count('node-red-http-oauth2'), subscribers: count('node-red-http-oauth2-sub') });
    assert.equal(count('node-red-http-oauth2'), members.length, `clients: ${JSON.stringify(names)}`);
    assert.ok(count('node-red-http-oauth2-sub') <= members.length, `clients: ${JSON.stringify(names)}`);
  });

  // Last: it ends the login.
  it('the instance renewing is killed while its refresh is at the provider: the others learn it within the lock life, and say why', async () => {
    if (!redis.pid) await redis.start();
    await untilExpired();
    const renewer = members[1];
    const others = members.filter((m) => m !== renewer);
    // The renewer's refresh is carried out by the provider (the refresh token rotates), and it dies before the
    // answer reaches it: the only copy of the new refresh token dies with it.
    const hold = auth.holdNextTokenAnswer();
    const pending = requestOn(renewer, 0).catch(() => undefined);
    await Promise.race([hold.reached, sleep(10_000).then(() => { throw new Error('the renewer did not refresh'); })]);
    await cluster.kill(renewer);
    const killedAt = Date.now();
    hold.release();
    await pending;
    const answers = await Promise.all(others.map((m) => requestOn(m, 1).then((r) => ({ ...r, member: m.name }))));
    figures.renewerKilledNoticedMs = Date.now() - killedAt;
    for (const r of answers) {
      assert.equal(r.status, 599, `${r.member}: ${r.text}`);
      assert.equal((r.body as { code?: string }).code, 'OAUTH2_LOGIN_REQUIRED', `${r.member}: ${r.text}`);
      assert.match((r.body as { message?: string }).message ?? '', /instance stopped while its refresh request was at the provider/, r.text);
    }
    // The lock (its default life) runs out, one survivor takes over and learns it; not a 30 s time-out.
    assert.ok(figures.renewerKilledNoticedMs < LOCK_TTL_MS + 3_000, `noticed ${figures.renewerKilledNoticedMs} ms after the kill`);
    // Every survivor's connection says it, and nobody refreshes again with the dead refresh token.
    const grants = userGrants();
    const again = await Promise.all(others.map((m) => requestOn(m, 2)));
    assert.ok(again.every((r) => r.status === 599));
    assert.deepEqual(userGrants(), grants, 'no token call after the login was found dead');
  });
});
