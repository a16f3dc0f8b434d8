/**
 * The record trigger with `httpOAuth2.store` on Redis (node-red-node-test-helper, the compiled nodes, the real
 * catalogs, a real redis-server, the real authorization server and records API): its memory lives in Redis,
 * sealed, and nowhere on disk; another instance holding the trigger's lease keeps it on standby until it lets
 * go; a bad store setting or a missing shared secret is a translated error and nothing is polled; a Redis
 * outage is a translated error and a status, and the trigger carries on by itself when Redis is back; a deploy
 * that removes a trigger deletes everything Redis held for it.
 *
 * One test-helper process runs one runtime: the "other instance" is a RedisLease on its own RedisConnection,
 * on the same key as the node's.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { startAuthServer, type AuthServer } from '../support/auth-server';
import { startRecordsApi, type RecordsApi } from '../support/records-api';
import { startRedis, type RedisServer } from '../support/redis';
import {
  catchNodes,
  collectUnhandledRejections,
  currentStatusSpy,
  errorLog,
  eventually,
  helper,
  helperNode,
  loadCatalogs,
  nextInput,
  nodeModules,
  recordChangeModule,
  recordChangeNode,
  serviceConnection,
  shown,
  statusLog,
  tab,
  useTempUserDir,
  type RuntimeNode,
} from './support';
import type { PollOutcome, RecordPoller } from '../../nodes/lib/changes/poller';
import type { RedisConnection } from '../../nodes/lib/redis/client';
import { RedisLease } from '../../nodes/lib/redis/lease';
import { triggerKeys } from '../../nodes/lib/redis/trigger-store';
import { connectInstance, freshPrefix, rawUnder } from '../unit/tokens/support/redis-instances';
import { needsSystemPackage } from '../support/system-packages';

type Msg = Record<string, unknown>;
const CREDENTIAL_SECRET = 'the-cluster-credential-secret';
const TRIGGER_FILE = '.http-oauth2-triggers.json';
const modules = [...nodeModules, recordChangeModule];

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

describe('record trigger node with the Redis trigger store', function () {
  needsSystemPackage(this, 'redis-server');
  this.timeout(60_000);
  let auth: AuthServer;
  let api: RecordsApi;
  let redis: RedisServer;
  let userDir: string;
  let prefix: string;
  let credentials: Record<string, Record<string, string>>;
  let connNode: Record<string, unknown>;
  /** What reached the trigger's output, as "event id", in order. */
  let arrivals: string[];
  const probes: RedisConnection[] = [];
  const assertNoUnhandledRejections = collectUnhandledRejections('the Redis trigger wiring tests');

  before(async () => {
    await loadCatalogs();
    [auth, redis] = await Promise.all([startAuthServer({ accessTokenTtlSec: 3600 }), startRedis()]);
    api = await startRecordsApi(auth);
  });
  after(async () => {
    await Promise.all([api?.close(), auth?.close(), redis?.close()]);
    assertNoUnhandledRejections();
  });
  beforeEach(() => {
    userDir = useTempUserDir();
    prefix = freshPrefix();
    api.records.length = 0;
    api.listRequests.length = 0;
    arrivals = [];
  });
  afterEach(async () => {
    await helper.unload();
    await Promise.all(probes.splice(0).map((p) => p.close()));
    fs.rmSync(userDir, { recursive: true, force: true });
  });

  function settings(store: Record<string, unknown>, extra: Record<string, unknown> = {}): void {
    helper.settings({ userDir, httpOAuth2: { store: { type: 'redis', url: redis.url, keyPrefix: prefix, ...store } }, ...extra });
  }

  /** The records are identified by an e-mail-like name: personal data that must never reach Redis in clear. */
  function flow(triggers: Record<string, unknown>[] = [recordChangeNode('trig', { idPath: 'name' })]): Record<string, unknown>[] {
    return [tab(), connNode, ...triggers, helperNode(), ...catchNodes(triggers.map((t) => String(t.id)))];
  }

  async function load(triggers?: Record<string, unknown>[]): Promise<RuntimeNode> {
    const conn = serviceConnection(auth, { apiBaseUrl: api.url });
    connNode = conn.node;
    credentials = conn.credentials;
    await helper.load(modules, flow(triggers), credentials);
    helper.getNode('out').on('input', (msg: Msg) => arrivals.push(`${String(msg.event)} ${String(msg.topic)}`));
    return helper.getNode('trig');
  }

  async function probe(): Promise<RedisConnection> {
    const connection = await connectInstance(redis.url, prefix);
    probes.push(connection);
    return connection;
  }

  const poller = (node: RuntimeNode): RecordPoller => node.poller as RecordPoller;
  const texts = (node: RuntimeNode): string[] => statusLog(node, currentStatusSpy()).map((s) => shown(s.text));

  /** Polls the trigger by message (as an inject would); resolves with the outcome, once its messages are delivered. */
  async function poll(node: RuntimeNode): Promise<PollOutcome> {
    const ended = new Promise<PollOutcome>((resolve) => poller(node).once('poll-end', resolve));
    node.receive({});
    const outcome = await ended;
    await sleep(100); // Node-RED delivers sent messages on a later tick
    return outcome;
  }

  /** The first scheduled poll (a second after the deploy) remembered what exists. */
  async function firstPollDone(node: RuntimeNode, ms = 5000): Promise<void> {
    await eventually(() => texts(node).some((t) => t.startsWith('remembered ')), ms, `the first poll of ${node.id}`);
  }

  it('the memory lives in Redis, sealed, nothing on disk; a created and an updated record are each emitted once, also after a restart', async () => {
    settings({ commandTimeoutMs: 500 }, { credentialSecret: CREDENTIAL_SECRET });
    const longAgo = new Date(Date.now() - 60_000);
    const alice = api.add('alice@example.test', longAgo);
    api.add('bob@example.test', longAgo);
    const trig = await load();
    await firstPollDone(trig);
    assert.match(texts(trig).at(-1) ?? '', /^remembered 2 records at /);
    assert.deepEqual(arrivals, []);

    const carol = api.add('carol@example.test', longAgo);
    api.update(alice.id, {}, new Date(Date.now() + 1000));
    await poll(trig);
    assert.deepEqual([...arrivals].sort(), ['created carol@example.test', 'updated alice@example.test']);
    await poll(trig);
    await poll(trig);
    assert.equal(arrivals.length, 2, `repeated: ${arrivals.join(', ')}`);

    const redisProbe = await probe();
    const keys = triggerKeys(redisProbe, 'trig');
    assert.ok(await redisProbe.client.hexists(keys.state, 'state'), 'the trigger state is in Redis');
    const raw = (await rawUnder(redisProbe, prefix)).toString('latin1');
    for (const secret of ['alice@example.test', 'bob@example.test', 'carol@example.test', alice.updated_at, carol.updated_at]) {
      assert.equal(raw.includes(secret), false, `${secret} is in Redis in clear`);
    }
    assert.equal(fs.existsSync(`${userDir}/${TRIGGER_FILE}`), false, 'the trigger memory went to the file store');

    // A restart (unload and load again: only Redis remembers) picks up where the memory was: a change made
    // while the trigger was away is sent by its first poll, and nothing already sent is sent again.
    await helper.unload();
    arrivals = [];
    api.add('dave@example.test', longAgo);
    const again = await load();
    await eventually(() => arrivals.length > 0, 5000, 'the first poll after the restart');
    await poll(again);
    assert.deepEqual(arrivals, ['created dave@example.test']);
    assert.equal(fs.existsSync(`${userDir}/${TRIGGER_FILE}`), false, 'the trigger memory went to the file store');
  });

  it('another instance holds the lease: standby status, nothing polled or emitted; it lets go: the node takes over and polls', async () => {
    settings({ commandTimeoutMs: 500, triggerLeaseMs: 2000 }, { credentialSecret: CREDENTIAL_SECRET });
    const other = new RedisLease({ connection: await probe(), name: ['trigger-lease', 'trig'], ttlMs: 2000 });
    assert.equal(await other.acquire(), true);
    try {
      api.add('alice@example.test', new Date(Date.now() - 60_000));
      const trig = await load();
      const keys = triggerKeys(await probe(), 'trig');
      assert.equal(other.key, keys.lease, 'the other instance leases the same key as the node');
      await eventually(() => texts(trig).includes('standby (another instance polls)'), 5000, 'the standby status');
      const standby = statusLog(trig, currentStatusSpy()).at(-1);
      assert.deepEqual({ ...standby, text: shown(standby?.text) }, { fill: 'grey', shape: 'ring', text: 'standby (another instance polls)' });
      // A poll asked for by message stands by too; the standby tries again a few times meanwhile.
      const asked = await poll(trig);
      assert.deepEqual(asked, { skipped: true, standby: true });
      api.add('bob@example.test');
      await sleep(2500);
      assert.ok(other.held(), 'the other instance lost its lease');
      assert.equal(api.listRequests.length, 0, 'the standby polled the API');
      assert.deepEqual(arrivals, []);
      assert.equal(texts(trig).filter((t) => t.startsWith('remembered ')).length, 0);
      assert.equal(await (await probe()).client.exists(keys.state), 0, 'the standby wrote a state');

      const released = Date.now();
      await other.release();
      await firstPollDone(trig, 5000);
      console.log(`      took over ${Date.now() - released} ms after the other instance let go`);
      assert.ok(api.listRequests.length > 0);
      assert.match(texts(trig).at(-1) ?? '', /^remembered 2 records at /);
      const carol = api.add('carol@example.test');
      await poll(trig);
      await poll(trig);
      assert.deepEqual(arrivals, [`created ${carol.name}`]);
    } finally {
      await other.release();
    }
  });

  it('no shared secret: a translated error naming the setting, red status; nothing polled, nothing in Redis', async () => {
    settings({ commandTimeoutMs: 500 });
    const trig = await load();
    const errors = errorLog(trig).map((e) => e.err as { code?: string; message: string });
    assert.equal(errors.length, 1);
    assert.equal(errors[0].code, 'OAUTH2_INVALID_CONFIG');
    assert.match(errors[0].message, /^Invalid configuration: The token store secret \(httpOAuth2\.store\.secret in settings\.js\) is required: every instance must seal tokens with the same secret/);
    assert.deepEqual(statusLog(trig, currentStatusSpy()), [{ fill: 'red', shape: 'ring', text: 'OAUTH2_INVALID_CONFIG' }]);
    assert.equal(trig.poller, undefined, 'a poller was made');
    const caught = nextInput(helper.getNode('caught'));
    trig.receive({ payload: 'kept' });
    assert.equal(((await caught).error as { code?: string }).code, 'OAUTH2_INVALID_CONFIG');
    await sleep(1500); // past the first poll's delay
    assert.equal(api.listRequests.length, 0);
    assert.equal((await rawUnder(await probe(), prefix)).length, 0, 'something was written to Redis');
  });

  it('an invalid store setting: a translated error naming the setting, red status; nothing polled', async () => {
    settings({ triggerLeaseMs: 5 }, { credentialSecret: CREDENTIAL_SECRET });
    const trig = await load();
    const errors = errorLog(trig).map((e) => e.err as { code?: string; message: string });
    assert.deepEqual(
      errors.map((e) => [e.code, e.message]),
      [['OAUTH2_INVALID_CONFIG', 'Invalid configuration: The trigger lease (httpOAuth2.store.triggerLeaseMs in settings.js) is outside the allowed range']],
    );
    assert.deepEqual(statusLog(trig, currentStatusSpy()), [{ fill: 'red', shape: 'ring', text: 'OAUTH2_INVALID_CONFIG' }]);
    await sleep(1500);
    assert.equal(api.listRequests.length, 0);
  });

  it('Redis stopped: a translated error to Catch, "Redis unavailable" status; back: the trigger carries on by itself and the change made meanwhile is emitted once', async () => {
    settings({ commandTimeoutMs: 500, triggerLeaseMs: 2000 }, { credentialSecret: CREDENTIAL_SECRET });
    api.add('alice@example.test', new Date(Date.now() - 60_000));
    // Polling once a day: after the failed poll the backoff is a day or more, so only Redis coming back can
    // start the next poll.
    const trig = await load();
    await firstPollDone(trig);
    const caught: Msg[] = [];
    helper.getNode('caught').on('input', (m: Msg) => caught.push(m));

    await redis.stop();
    let restarted = false;
    try {
      const erin = api.add('erin@example.test');
      const outcome = await poll(trig);
      assert.ok(!outcome.skipped && 'error' in outcome, JSON.stringify(outcome));
      await eventually(() => caught.length > 0, 2000, 'the failed poll reaching Catch');
      assert.equal(caught.length, 1);
      const error = caught[0].error as { code?: string; message: string };
      assert.equal(error.code, 'OAUTH2_TRIGGER_STATE_FAILED');
      assert.match(error.message, /^Redis (cannot be reached|did not answer in time): the trigger's shared memory is out of reach\. Nothing was lost; the trigger carries on by itself when Redis (is back|answers again)$/);
      const down = statusLog(trig, currentStatusSpy()).at(-1);
      assert.equal(down?.fill, 'red');
      assert.match(String(down?.text), /^Redis unavailable, retrying at /);
      await sleep(2500); // longer than the lease: the node's holding lapses while Redis is away
      // A lease lapsed in an outage is not another instance polling: the status keeps saying Redis is away.
      assert.match(texts(trig).at(-1) ?? '', /^Redis unavailable/, JSON.stringify(texts(trig).slice(-3)));
      assert.deepEqual(arrivals, [], 'sent during the outage');
      assert.equal(caught.length, 1);

      await redis.start();
      restarted = true;
      const back = Date.now();
      await eventually(() => arrivals.length > 0, 10_000, 'the change made during the outage');
      console.log(`      carried on ${Date.now() - back} ms after Redis answered`);
      await sleep(100);
      assert.deepEqual(arrivals, [`created ${erin.name}`]);
      await poll(trig);
      await poll(trig);
      assert.deepEqual(arrivals, [`created ${erin.name}`]);
      assert.match(texts(trig).at(-1) ?? '', /^0 created, 0 updated, 0 deleted at /);
      assert.equal(caught.length, 1);
    } finally {
      if (!restarted) await redis.start();
    }
  });

  it('an outage between two polls (none failed): "Redis unavailable", never "standby"; Redis back: the node polls again at once', async () => {
    settings({ commandTimeoutMs: 500, triggerLeaseMs: 2000 }, { credentialSecret: CREDENTIAL_SECRET });
    api.add('alice@example.test', new Date(Date.now() - 60_000));
    const trig = await load();
    await firstPollDone(trig);
    await redis.stop();
    let restarted = false;
    try {
      // Longer than the lease (2 s): the holding lapses while no poll runs (the next is a day away).
      await eventually(() => (texts(trig).at(-1) ?? '') === 'Redis unavailable', 5000, 'the Redis-unavailable status');
      assert.ok(!texts(trig).includes('standby (another instance polls)'), JSON.stringify(texts(trig)));
      const frank = api.add('frank@example.test');
      await redis.start();
      restarted = true;
      await eventually(() => arrivals.includes(`created ${frank.name}`), 10_000, 'a poll right after Redis came back');
      await eventually(() => /^1 created, 0 updated, 0 deleted at /.test(texts(trig).at(-1) ?? ''), 5000, 'the status after that poll');
    } finally {
      if (!restarted) await redis.start();
    }
  });

  it('a trigger removed by a redeploy has its state, lease, fence and configuration mark deleted from Redis; the others keep theirs', async () => {
    settings({ commandTimeoutMs: 500 }, { credentialSecret: CREDENTIAL_SECRET });
    api.add('alice@example.test', new Date(Date.now() - 60_000));
    const kept = recordChangeNode('keep', { idPath: 'name', url: '/records?kept=1' });
    const trig = await load([recordChangeNode('trig', { idPath: 'name' }), kept]);
    await firstPollDone(trig);
    await firstPollDone(helper.getNode('keep'));
    const redisProbe = await probe();
    const gone = triggerKeys(redisProbe, 'trig');
    const stays = triggerKeys(redisProbe, 'keep');
    const count = (k: ReturnType<typeof triggerKeys>): Promise<number> => redisProbe.client.exists(k.state, k.lease, k.fence, k.config);
    assert.equal(await count(gone), 4, 'state, lease, fence and mark of the trigger before the redeploy');
    assert.equal(await count(stays), 4);

    const setFlows = (helper as unknown as { setFlows(flow: unknown[], type: string, creds: unknown): Promise<void> }).setFlows.bind(helper);
    await setFlows(flow([kept]), 'nodes', credentials);
    const until = Date.now() + 5000;
    while ((await count(gone)) !== 0) {
      assert.ok(Date.now() < until, `the removed trigger left ${await count(gone)} keys in Redis`);
      await sleep(50);
    }
    assert.equal(await redisProbe.client.exists(stays.state, stays.lease, stays.fence, stays.config), 4, "the sweep touched another trigger's keys");
  });
});
