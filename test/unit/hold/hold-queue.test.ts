/**
 * The hold queue on real stores (the encrypted file; two instances on a real redis-server), and the codec
 * that keeps a message as text across a restart.
 */
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { OAuth2Error } from '../../../nodes/lib/errors';
import { openHeldStore, type HeldStore } from '../../../nodes/lib/hold/held-store';
import { HoldQueue, holdReason, type HeldMessage, type HoldQueueOptions } from '../../../nodes/lib/hold/hold-queue';
import { decodeMessage, encodeMessage } from '../../../nodes/lib/hold/message-codec';
import { openRedisHeldStore } from '../../../nodes/lib/redis/held-store';
import { startRedis, type RedisServer } from '../../support/redis';
import { needsSystemPackage } from '../../support/system-packages';
import { Instances, ready, testSettings } from '../redis/trigger-support';

const SECRET = 'hold-queue-secret-for-tests';
const LOGIN = new OAuth2Error('OAUTH2_LOGIN_REQUIRED', 'log in again', { params: { reason: 'refreshRefused' } });
const AWAY = new OAuth2Error('OAUTH2_TOKEN_ENDPOINT_UNAVAILABLE', 'token endpoint away', { params: { reason: '503' } });

async function until(check: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('hold/message-codec', () => {
  it('keeps what a message holds, Buffers and dates included, and drops what cannot outlive the process', () => {
    const shared = { a: 1 };
    const cyclic: Record<string, unknown> = { name: 'loop' };
    cyclic.self = cyclic;
    const msg = {
      _msgid: 'abc',
      topic: 't',
      payload: { n: 1, list: [1, 'two', null, { three: 3 }], bin: Buffer.from([0, 255]), nan: NaN },
      when: new Date('2026-01-02T03:04:05Z'),
      fn: () => 1,
      req: { socket: {} },
      res: { _res: {} },
      twice: [shared, shared],
      cyclic,
      ['__proto__']: { polluted: true },
    };
    const back = decodeMessage(encodeMessage(msg as unknown as Record<string, unknown>));
    assert.deepEqual(Object.keys(back).sort(), ['__proto__', '_msgid', 'cyclic', 'payload', 'topic', 'twice', 'when'].sort());
    const payload = back.payload as { n: number; list: unknown[]; bin: Buffer; nan: unknown };
    assert.equal(payload.n, 1);
    assert.deepEqual(payload.list, [1, 'two', null, { three: 3 }]);
    assert.ok(Buffer.isBuffer(payload.bin) && payload.bin.equals(Buffer.from([0, 255])));
    assert.equal(payload.nan, null);
    assert.equal(back.when, '2026-01-02T03:04:05.000Z');
    assert.deepEqual(back.twice, [{ a: 1 }, { a: 1 }], 'the same object twice (not a cycle) is kept twice');
    assert.deepEqual(back.cyclic, { name: 'loop' }, 'a cycle is cut');
    assert.equal(({} as Record<string, unknown>).polluted, undefined, 'no prototype pollution on the way back');
    assert.deepEqual(Object.getOwnPropertyDescriptor(back, '__proto__')?.value, { polluted: true });
  });

  it('refuses text that is not a kept message', () => {
    assert.throws(() => decodeMessage('[1,2]'));
    assert.throws(() => decodeMessage('not json'));
  });
});

describe('hold/hold-queue', () => {
  let dir: string;
  let store: HeldStore;
  const queues: Array<HoldQueue<unknown>> = [];
  beforeEach(async () => {
    dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'hold-queue-'));
    store = await openHeldStore({ filePath: path.join(dir, 'held.json'), secret: SECRET });
  });
  afterEach(async () => {
    await Promise.all(queues.splice(0).map((q) => q.close()));
    await fsp.rm(dir, { recursive: true, force: true });
  });

  function queue<Local>(options: Partial<HoldQueueOptions<Local>> & Pick<HoldQueueOptions<Local>, 'attempt'>): HoldQueue<Local> {
    const q = new HoldQueue<Local>({
      nodeId: 'node-a',
      store,
      settings: { maxMessages: 5, maxHoldMs: 60_000 },
      expire: () => undefined,
      dropped: () => undefined,
      onChange: () => undefined,
      onStoreError: (err) => {
        throw err;
      },
      probeMs: 50,
      ...options,
    });
    queues.push(q as HoldQueue<unknown>);
    return q;
  }

  it('holds in arrival order, up to the cap; sends oldest first once the connection is back, each once', async () => {
    let loggedIn = false;
    const sent: number[] = [];
    const q = queue<number>({
      attempt: async (e) => {
        if (!loggedIn) return LOGIN;
        sent.push(e.local as number);
        return undefined;
      },
    });
    const ids = [0, 1, 2, 3, 4, 5].map(() => q.arrival());
    // Held out of arrival order (requests failing in another order): they take their arrival places.
    const outcomes = [];
    for (const i of [2, 0, 1, 4, 3, 5]) outcomes.push(await q.hold(ids[i], encodeMessage({ i }), i, LOGIN));
    assert.deepEqual(outcomes, ['held', 'held', 'held', 'held', 'held', 'full']);
    assert.equal(q.size, 5);
    assert.equal(q.reason, 'loginRequired');
    assert.equal((await store.list('node-a')).length, 5, 'durable when held');
    await new Promise((r) => setTimeout(r, 200));
    assert.deepEqual(sent, [], 'probes find the connection still needing a login');
    loggedIn = true;
    q.wake();
    await until(() => sent.length === 5);
    assert.deepEqual(sent, [0, 1, 2, 3, 4], 'in arrival order');
    assert.deepEqual(await store.list('node-a'), [], 'removed once answered');
    assert.equal(q.holding(), false);
  });

  it('the token endpoint back: a probe sends without a wake; the reason follows the last failure', async () => {
    let away = true;
    const sent: number[] = [];
    const reasons: Array<string | undefined> = [];
    const q = queue<number>({
      attempt: async (e) => {
        if (away) return AWAY;
        sent.push(e.local as number);
        return undefined;
      },
      onChange: (_count, reason) => reasons.push(reason),
    });
    assert.equal(await q.hold(q.arrival(), '{}', 1, AWAY), 'held');
    assert.equal(q.reason, 'unavailable');
    assert.equal(holdReason(AWAY), 'unavailable');
    assert.equal(holdReason(new OAuth2Error('OAUTH2_HTTP_STATUS', 'x', { params: { statusCode: 500 } })), undefined);
    away = false;
    // Nothing held any more, and the status hears so.
    await until(() => sent.length === 1 && q.size === 0 && reasons.length > 1 && reasons.at(-1) === undefined, 5000);
    assert.equal(sent.length, 1);
  });

  it('past the longest hold, a message expires with the error it waited for', async () => {
    let now = 1_000_000;
    const expired: Array<[number, string]> = [];
    const q = queue<number>({
      settings: { maxMessages: 10, maxHoldMs: 1000 },
      now: () => now,
      attempt: async () => LOGIN,
      expire: (e, err) => expired.push([e.local as number, err.code]),
    });
    await q.hold(q.arrival(), '{}', 1, LOGIN);
    now += 500;
    await q.hold(q.arrival(), '{}', 2, LOGIN);
    now += 600;
    q.wake();
    await until(() => expired.length === 1);
    assert.deepEqual(expired, [[1, 'OAUTH2_LOGIN_REQUIRED']]);
    assert.equal(q.size, 1);
    now += 500;
    q.wake();
    await until(() => expired.length === 2);
    assert.equal(q.size, 0);
    assert.deepEqual(await store.list('node-a'), []);
  });

  it('a restart: what the store holds is read back and sent; held off, a failure is final', async () => {
    const first = queue<number>({ attempt: async () => LOGIN });
    await first.hold(first.arrival(), encodeMessage({ n: 1 }), 1, LOGIN);
    await first.hold(first.arrival(), encodeMessage({ n: 2 }), 2, LOGIN);
    await first.close();
    const got: Array<HeldMessage<number>> = [];
    const second = queue<number>({ settings: undefined, attempt: async (e) => void got.push(e) });
    await second.restore();
    await until(() => got.length === 2);
    assert.deepEqual(got.map((e) => [decodeMessage(e.message).n, e.local]), [[1, undefined], [2, undefined]]);
    assert.equal(await second.hold(second.arrival(), '{}', 3, LOGIN), 'full', 'holding is off: nothing new is held');
  });

  it('close waits for the message being sent', async () => {
    let release!: () => void;
    const q = queue<number>({ attempt: () => new Promise((resolve) => (release = () => resolve(undefined))) });
    await q.hold(q.arrival(), '{}', 1, LOGIN);
    q.wake();
    await until(() => release !== undefined);
    let closed = false;
    const closing = q.close().then(() => (closed = true));
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(closed, false);
    release();
    await closing;
    assert.deepEqual(await store.list('node-a'), []);
  });
});

describe('hold/hold-queue on Redis: two instances', function () {
  needsSystemPackage(this, 'redis-server');
  this.timeout(30_000);
  let redis: RedisServer;
  let instances: Instances;
  before(async () => {
    redis = await startRedis();
  });
  after(async () => {
    await redis?.close();
  });
  beforeEach(() => {
    instances = new Instances();
  });
  afterEach(async () => {
    await instances.closeAll();
  });

  it('messages held by both, sent when the login is back: each once, by one of them; each done where it arrived', async () => {
    const settings = testSettings(redis.url);
    let loggedIn = false;
    const sentBy: Array<[string, number]> = [];
    const doneHere: Array<[string, number]> = [];
    const make = async (name: string): Promise<HoldQueue<number>> => {
      const connection = instances.connect(settings);
      await ready(connection);
      return new HoldQueue<number>({
        nodeId: 'node-a',
        store: openRedisHeldStore({ connection, secret: SECRET }),
        settings: { maxMessages: 500, maxHoldMs: 60_000 },
        probeMs: 50,
        attempt: async (e) => {
          if (!loggedIn) return LOGIN;
          await new Promise((r) => setTimeout(r, 1));
          sentBy.push([name, decodeMessage(e.message).n as number]);
          return undefined;
        },
        expire: () => undefined,
        dropped: (e) => {
          if (e.local !== undefined) doneHere.push([name, e.local]);
        },
        onChange: () => undefined,
        onStoreError: (err) => {
          throw err;
        },
      });
    };
    const [a, b] = [await make('a'), await make('b')];
    for (let n = 0; n < 100; n += 1) {
      const q = n % 2 === 0 ? a : b;
      assert.equal(await q.hold(q.arrival(), encodeMessage({ n }), n, LOGIN), 'held');
    }
    loggedIn = true;
    a.wake();
    b.wake();
    await until(() => sentBy.length >= 100 && !a.holding() && !b.holding(), 20_000);
    await new Promise((r) => setTimeout(r, 200));
    const numbers = sentBy.map(([, n]) => n).sort((x, y) => x - y);
    assert.deepEqual(numbers, Array.from({ length: 100 }, (_, i) => i), 'each message sent once');
    assert.ok(new Set(sentBy.map(([name]) => name)).size >= 1);
    // A message one instance received and the other sent is done where it arrived.
    for (const [name, n] of doneHere) assert.equal(name, n % 2 === 0 ? 'a' : 'b');
    await a.close();
    await b.close();
  });
});
