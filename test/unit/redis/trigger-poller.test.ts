/**
 * Three RecordPollers for the same trigger node, each on its own RedisConnection (three instances), against a
 * real HTTP records API: each change is emitted exactly once in the whole cluster, through steady polling, the
 * holder's stop and death, and a Redis outage.
 */
import assert from 'node:assert/strict';
import { RecordPoller, type PollOutcome } from '../../../nodes/lib/changes/poller';
import type { DetectedChange } from '../../../nodes/lib/changes/types';
import { OAuth2Error } from '../../../nodes/lib/errors';
import type { RedisConnection } from '../../../nodes/lib/redis/client';
import { TriggerLease } from '../../../nodes/lib/redis/lease';
import { openRedisTriggerStateStore } from '../../../nodes/lib/redis/trigger-store';
import type { RedisStoreSettings } from '../../../nodes/lib/redis/settings';
import { startRecordsApi, type RecordsApi } from '../../../runtime/src/demo/records-api';
import { startRedis, type RedisServer } from '../../support/redis';
import { SECRET, settings as triggerSettings } from '../changes/support';
import { Instances, ready, sleep, testSettings, until } from './trigger-support';
import { needsSystemPackage } from '../../support/system-packages';

const TTL = 1_500;
const INTERVAL = 250;
const NODE = 'trigger-node-1';

interface Member {
  index: number;
  connection: RedisConnection;
  poller: RecordPoller;
  lease: TriggerLease;
  outcomes: PollOutcome[];
}

describe('redis/trigger: three instances, one trigger', function () {
  needsSystemPackage(this, 'redis-server');
  this.timeout(120_000);
  let redis: RedisServer;
  let api: RecordsApi;
  let instances: Instances;
  let settings: RedisStoreSettings;
  let members: Member[];
  /** Every change sent by any instance: "event:id:version" with who sent it. */
  let sent: Array<{ key: string; by: number }>;
  let hold: { reached: () => void; gate: Promise<void> } | undefined;

  before(async () => {
    redis = await startRedis();
    api = await startRecordsApi({
      validateToken: async (token) => token === 'test-token',
      beforePage: async () => {
        const h = hold;
        if (!h) return;
        hold = undefined;
        h.reached();
        await h.gate;
      },
    });
  });
  after(async () => {
    await api?.close();
    await redis?.close();
  });

  beforeEach(async () => {
    instances = new Instances();
    settings = testSettings(redis.url, { triggerLeaseMs: TTL });
    api.records = [];
    // What exists before the trigger starts: its first poll remembers it and sends nothing.
    api.fill(5);
    sent = [];
    members = [];
    for (let i = 0; i < 3; i++) members.push(await join(i));
  });
  afterEach(async () => {
    hold?.reached();
    await Promise.all(members.map((m) => m.poller.stop()));
    await instances.closeAll();
  });

  const fetchList = async (_query: Record<string, string>, signal: AbortSignal): Promise<{ records: unknown[]; complete: boolean }> => {
    let response: Response;
    try {
      response = await fetch(`${api.url}/records`, { headers: { authorization: 'Bearer test-token' }, signal });
    } catch (err) {
      throw new OAuth2Error('OAUTH2_REQUEST_FAILED', 'list failed', { params: { host: 'records', attempts: 1 }, cause: err, retryable: true });
    }
    if (!response.ok) throw new OAuth2Error('OAUTH2_HTTP_STATUS', `HTTP ${response.status}`, { params: { statusCode: response.status }, retryable: true });
    return { records: (await response.json()) as unknown[], complete: true };
  };

  async function join(index: number): Promise<Member> {
    const connection = instances.connect(settings);
    await ready(connection);
    const store = openRedisTriggerStateStore({ connection, secret: SECRET });
    const lease = new TriggerLease({ connection, store, nodeId: NODE, ttlMs: TTL });
    const outcomes: PollOutcome[] = [];
    const poller = new RecordPoller({
      nodeId: NODE,
      configKey: 'records-v1',
      settings: triggerSettings({ detection: { kind: 'hash' }, events: { created: true, updated: true, deleted: true } }),
      store,
      lease,
      fetch: fetchList,
      emit: (changes: DetectedChange[]) => {
        for (const c of changes) sent.push({ key: `${c.event}:${c.id}:${c.version ?? ''}`, by: index });
      },
      intervalMs: INTERVAL,
      firstPollDelayMs: 0,
      maxBackoffMs: 2_000,
    });
    poller.on('poll-end', (o) => outcomes.push(o));
    poller.start();
    return { index, connection, poller, lease, outcomes };
  }

  const keys = (): string[] => sent.map((s) => s.key);

  function assertNoRepeats(): void {
    const seen = new Set<string>();
    const repeats = keys().filter((k) => (seen.has(k) ? true : (seen.add(k), false)));
    assert.deepEqual(repeats, [], 'changes sent more than once');
  }

  /** Waits until `count` changes were sent in total, then a few more polls, and checks nothing more came. */
  async function expectTotal(count: number, within = 4 * TTL): Promise<void> {
    await until(() => sent.length >= count, within, `${count} changes sent (have ${sent.length}: ${keys().join(' ')})`);
    await sleep(4 * INTERVAL);
    assertNoRepeats();
    assert.equal(sent.length, count, keys().join(' '));
  }

  /** A round of changes on distinct records: `created` new ones, the first `updated` existing ones changed, one removed. */
  function round(n: number, created: number, updated: number, remove = false): number {
    const existing = api.records.map((r) => r.id);
    for (let i = 0; i < updated && i < existing.length; i++) api.update(existing[i], { name: `round ${n} update` });
    for (let i = 0; i < created; i++) api.add(`round ${n} record ${i}`);
    if (remove) api.remove(existing[existing.length - 1]);
    return created + Math.min(updated, existing.length) + (remove ? 1 : 0);
  }

  /** The first poll (by whoever holds the lease) remembers what exists and sends nothing. */
  async function settle(): Promise<void> {
    await until(() => members.some((m) => m.outcomes.some((o) => !o.skipped && !('error' in o) && o.firstPoll)), 4 * TTL, 'first poll');
  }

  const holder = (): Member | undefined => members.find((m) => m.lease.held());

  it('each change is sent exactly once over several polls; one instance polls, the others stand by', async () => {
    await settle();
    let expected = 0;
    for (let n = 1; n <= 4; n++) {
      expected += round(n, 3, 2, n % 2 === 0);
      await expectTotal(expected);
    }
    const senders = new Set(sent.map((s) => s.by));
    assert.equal(senders.size, 1, `sent by ${[...senders].join(',')}`);
    const standbys = members.filter((m) => !m.lease.held());
    assert.equal(standbys.length, 2);
    for (const m of standbys) assert.ok(m.outcomes.some((o) => o.skipped && o.standby), `member ${m.index} never stood by`);
    console.log(`      ${sent.length} changes over 4 rounds, each sent once, all by instance ${[...senders][0]}`);
  });

  it('the holder stops (releases) or dies (link dropped, no release): another takes over within the lease time, losing and repeating nothing', async () => {
    await settle();
    let expected = round(1, 2, 1);
    await expectTotal(expected);

    // Graceful stop: the lease is released, a standby takes over at its next attempt.
    const first = holder()!;
    const acquiredAfterStop = new Promise<number>((resolve) => {
      for (const m of members) if (m !== first) m.lease.once('acquired', () => resolve(Date.now()));
    });
    const stoppedAt = Date.now();
    await first.poller.stop();
    expected += round(2, 2, 2);
    const stopTakeover = (await acquiredAfterStop) - stoppedAt;
    await expectTotal(expected);
    assert.ok(stopTakeover <= TTL, `takeover after a stop: ${stopTakeover} ms`);

    // Death: the new holder's link to Redis goes without a release; its lease must expire first.
    const second = holder()!;
    assert.notEqual(second, first);
    const survivor = members.find((m) => m !== first && m !== second)!;
    const acquiredAfterKill = new Promise<number>((resolve) => survivor.lease.once('acquired', () => resolve(Date.now())));
    instances.drop(second.connection);
    const killedAt = Date.now();
    await second.poller.stop(); // its timers end with the "process"; the release cannot reach Redis
    const lastRound = round(3, 3, 2, true);
    expected += lastRound;
    const killTakeover = (await acquiredAfterKill) - killedAt;
    await expectTotal(expected);
    console.log(`      takeover after a stop: ${stopTakeover} ms; after a kill: ${killTakeover} ms (lease ${TTL} ms); ${sent.length} changes, each sent once`);
    assert.ok(killTakeover <= TTL + 500, `takeover after a kill: ${killTakeover} ms`);
    assert.ok(sent.slice(-lastRound).every((s) => s.by === survivor.index), JSON.stringify(sent.slice(-lastRound)));
  });

  it('Redis stopped and restarted: the instances recover by themselves, nothing lost or repeated', async () => {
    await settle();
    let expected = round(1, 2, 2);
    await expectTotal(expected);

    // Long outage (several leases): every poll fails meanwhile; changes made during it are sent once after.
    await redis.stop();
    expected += round(2, 2, 1);
    await until(() => members.every((m) => m.outcomes.some((o) => !o.skipped && 'error' in o)), 4 * TTL, 'every instance saw the outage');
    await sleep(2 * TTL);
    assert.equal(holder(), undefined, 'nobody holds the lease while Redis is away');
    const sentDuringOutage = sent.length;
    await redis.start();
    await expectTotal(expected, 8 * TTL);
    assert.ok(sentDuringOutage <= expected);

    // Short outage right between sending and committing: the holder keeps what it sent in memory, gets its
    // lease back (Redis kept it: the outage is shorter than the lease) and writes it before anything else.
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const reached = new Promise<void>((resolve) => {
      hold = { reached: resolve, gate };
    });
    expected += round(3, 2, 0);
    await reached;
    // The holder's fetch is answered only once Redis is down: it sends, then its commit fails.
    await redis.stop();
    release();
    const current = holder();
    await until(() => sent.length >= expected, 4 * TTL, 'sent before the commit failed');
    await sleep(200);
    await redis.start();
    await expectTotal(expected, 8 * TTL);
    expected += round(4, 1, 1);
    await expectTotal(expected, 8 * TTL);
    console.log(`      Redis outages: ${sent.length} changes, each sent once; short-outage holder ${current?.index} kept the lease: ${holder() === current}`);
  });
});

describe('redis/trigger: deploys during an outage and rolling redeploys', function () {
  needsSystemPackage(this, 'redis-server');
  this.timeout(120_000);
  let redis: RedisServer;
  let api: RecordsApi;
  let instances: Instances;
  let settings: RedisStoreSettings;
  const pollers: RecordPoller[] = [];
  let sent: Array<{ key: string; by: string }>;

  before(async () => {
    redis = await startRedis();
    api = await startRecordsApi({ validateToken: async (token) => token === 'test-token' });
  });
  after(async () => {
    await api?.close();
    await redis?.close();
  });
  beforeEach(async () => {
    if (redis.pid === undefined) await redis.start();
    instances = new Instances();
    settings = testSettings(redis.url, { triggerLeaseMs: TTL });
    api.records = [];
    api.fill(5);
    sent = [];
  });
  afterEach(async () => {
    await Promise.all(pollers.splice(0).map((p) => p.stop()));
    await instances.closeAll();
    if (redis.pid === undefined) await redis.start();
  });

  const fetchList = async (_query: Record<string, string>, signal: AbortSignal): Promise<{ records: unknown[]; complete: boolean }> => {
    const response = await fetch(`${api.url}/records`, { headers: { authorization: 'Bearer test-token' }, signal }).catch((err: unknown) => {
      throw new OAuth2Error('OAUTH2_REQUEST_FAILED', 'list failed', { params: { host: 'records', attempts: 1 }, cause: err, retryable: true });
    });
    if (!response.ok) throw new OAuth2Error('OAUTH2_HTTP_STATUS', `HTTP ${response.status}`, { params: { statusCode: response.status }, retryable: true });
    return { records: (await response.json()) as unknown[], complete: true };
  };

  interface Started {
    name: string;
    configKey: string;
    poller: RecordPoller;
    lease: TriggerLease;
    connection: RedisConnection;
    outcomes: PollOutcome[];
  }

  /** One instance's trigger node as the record-change node wires it: 'reconnected' wakes the poller. */
  function startMember(name: string, configKey: string, options: { previous?: string[]; intervalMs?: number; connection?: RedisConnection } = {}): Started {
    const connection = options.connection ?? instances.connect(settings);
    const store = openRedisTriggerStateStore({ connection, secret: SECRET });
    const lease = new TriggerLease({ connection, store, nodeId: NODE, ttlMs: TTL });
    const outcomes: PollOutcome[] = [];
    const poller = new RecordPoller({
      nodeId: NODE,
      configKey,
      previousConfigKeys: new Set(options.previous ?? []),
      settings: triggerSettings({ detection: { kind: 'hash' }, events: { created: true, updated: true, deleted: true } }),
      store,
      lease,
      fetch: fetchList,
      emit: (changes: DetectedChange[]) => {
        for (const c of changes) sent.push({ key: `${c.event}:${c.id}:${c.version ?? ''}`, by: name });
      },
      intervalMs: options.intervalMs ?? INTERVAL,
      firstPollDelayMs: 0,
    });
    connection.on('reconnected', () => poller.wake());
    poller.on('poll-end', (o) => outcomes.push(o));
    poller.start();
    pollers.push(poller);
    return { name, configKey, poller, lease, connection, outcomes };
  }

  const polled = (m: Started): Array<Extract<PollOutcome, { changes: number }>> =>
    m.outcomes.filter((o): o is Extract<PollOutcome, { changes: number }> => !o.skipped && !('error' in o));

  async function expectSent(count: number, within = 4 * TTL): Promise<void> {
    await until(() => sent.length >= count, within, `${count} changes sent (have ${sent.length}: ${sent.map((s) => `${s.key}@${s.by}`).join(' ')})`);
    await sleep(4 * INTERVAL);
    const keys = sent.map((s) => s.key);
    assert.equal(new Set(keys).size, keys.length, `changes sent more than once: ${keys.join(' ')}`);
    assert.equal(sent.length, count, keys.join(' '));
  }

  it('a trigger deployed while Redis is down polls within seconds of Redis coming back (not after its backoff)', async () => {
    await redis.stop();
    // An interval of a minute: the backoff after the failed first poll is at least that long.
    const member = startMember('A', 'C1', { intervalMs: 60_000 });
    await until(() => member.outcomes.some((o) => !o.skipped && 'error' in o), 10_000, 'the first poll failed (Redis down)');
    await sleep(500);
    const startedAt = Date.now();
    await redis.start();
    await until(() => polled(member).length > 0, 5_000, 'a poll after Redis came back');
    const after = Date.now() - startedAt;
    assert.equal(polled(member)[0].firstPoll, true);
    console.log(`      polled ${after} ms after Redis came back (interval 60 s)`);
  });

  it('rolling redeploy of a changed trigger: the new configuration takes over once, instances still on the old one stand by, nothing flips back', async () => {
    const a = startMember('A', 'C1');
    await until(() => polled(a).some((o) => o.firstPoll), 4 * TTL, 'first poll with C1');
    api.add('round 1 a');
    api.add('round 1 b');
    await expectSent(2);

    // Instance A gets the changed trigger (its old node stops and releases the lease; the new one starts).
    await a.poller.stop();
    const a2 = startMember('A2', 'C2', { previous: ['C1'], connection: a.connection });
    await until(() => polled(a2).some((o) => o.firstPoll), 4 * TTL, 'first poll with C2');
    // B and C are not redeployed yet: still on C1.
    const b = startMember('B', 'C1');
    const c = startMember('C', 'C1');
    api.add('round 2 a');
    api.add('round 2 b');
    await expectSent(4);

    // The C2 holder lets go (its node restarts): only C1 instances are left for a moment. They must not take
    // the trigger back to C1 (a first poll that swallows what changes meanwhile, and a second first poll
    // with C2 later).
    await a2.poller.stop();
    api.add('round 3 a');
    api.add('round 3 b');
    await sleep(2_000);
    assert.ok([b, c].some((m) => m.outcomes.some((o) => o.skipped && o.otherConfig)), 'an instance on C1 stood by for the other configuration');
    const a3 = startMember('A3', 'C2', { previous: ['C1'], connection: a.connection });
    await expectSent(6);

    // B and C get the changed trigger too.
    await b.poller.stop();
    const b2 = startMember('B2', 'C2', { previous: ['C1'], connection: b.connection });
    await c.poller.stop();
    const c2 = startMember('C2', 'C2', { previous: ['C1'], connection: c.connection });
    api.add('round 4 a');
    api.update(api.records[0].id, { name: 'round 4 update' });
    await expectSent(8);

    for (const m of [b, c]) assert.deepEqual(polled(m), [], `${m.name} (still on C1) polled`);
    const c2Firsts = [a2, a3, b2, c2].flatMap((m) => polled(m).filter((o) => o.firstPoll));
    assert.equal(c2Firsts.length, 1, 'the new configuration started over once');
    console.log(`      ${sent.length} changes, each sent once: ${sent.map((s) => s.by).join(',')}`);
  });
});
