import assert from 'node:assert/strict';
import { promises as fsp, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { RecordPoller, type PollOutcome, type PollerState, type RecordPollerOptions } from '../../../nodes/lib/changes/poller';
import { openTriggerStateStore, type FileTriggerStateStore } from '../../../nodes/lib/changes/state-store';
import type { TriggerSettings } from '../../../nodes/lib/changes/types';
import { OAuth2Error, isOAuth2Error } from '../../../nodes/lib/errors';
import { openJson } from '../../../nodes/lib/sealed/crypto';
import { ManualClock, SECRET, ScriptedList, Sent, T0, nextPollEnd, rec, settings, tempDir } from './support';

const INTERVAL = 10_000;

function success(outcome: PollOutcome): Extract<PollOutcome, { changes: number }> {
  assert.ok(!outcome.skipped && !('error' in outcome), `expected a successful poll, got ${JSON.stringify(outcome)}`);
  return outcome;
}

function failure(outcome: PollOutcome): OAuth2Error {
  assert.ok(!outcome.skipped && 'error' in outcome, `expected a failed poll, got ${JSON.stringify(outcome)}`);
  return outcome.error;
}

describe('changes/poller', () => {
  let dir: string;
  let filePath: string;
  let store: FileTriggerStateStore;
  let clock: ManualClock;
  let list: ScriptedList;
  let sent: Sent;
  const pollers: RecordPoller[] = [];

  function makePoller(overrides: Partial<RecordPollerOptions> & { settings?: TriggerSettings } = {}): RecordPoller {
    const poller = new RecordPoller({
      nodeId: 'node-1',
      configKey: 'watch-A',
      settings: settings(),
      store,
      fetch: list.fetch,
      emit: sent.emit,
      intervalMs: INTERVAL,
      now: clock.now,
      setTimer: clock.setTimer,
      clearTimer: clock.clearTimer,
      random: () => 0.5,
      ...overrides,
    });
    pollers.push(poller);
    return poller;
  }

  beforeEach(async () => {
    dir = await tempDir();
    filePath = path.join(dir, 'triggers.db');
    store = await openTriggerStateStore({ filePath, secret: SECRET });
    clock = new ManualClock();
    list = new ScriptedList();
    sent = new Sent();
  });
  afterEach(async () => {
    await Promise.all(pollers.splice(0).map((p) => p.stop()));
    await store.flush();
    await fsp.rm(dir, { recursive: true, force: true });
  });

  it('polls on its timer: first after 1 s, then every interval; created, updated and unchanged', async () => {
    const poller = makePoller();
    list.records = [rec('a', T0), rec('b', T0)];
    poller.start();
    assert.deepEqual(clock.pending(), [T0 + 1000]);
    let end = nextPollEnd(poller);
    clock.advance(1000);
    const first = success(await end);
    assert.equal(first.firstPoll, true);
    assert.equal(first.changes, 0);
    assert.deepEqual(sent.all(), []);
    assert.deepEqual(clock.pending(), [T0 + 1000 + INTERVAL]);

    list.records = [rec('a', T0), rec('b', T0 + 1), rec('c', T0)];
    end = nextPollEnd(poller);
    clock.advance(INTERVAL);
    const second = success(await end);
    assert.deepEqual(second.emitted, ['updated', 'created']);
    assert.deepEqual(sent.all(), ['updated:b', 'created:c']);

    end = nextPollEnd(poller);
    clock.advance(INTERVAL);
    assert.equal(success(await end).changes, 0);
    assert.deepEqual(sent.all(), ['updated:b', 'created:c']);
  });

  it('first poll can emit everything that exists', async () => {
    const poller = makePoller({ settings: settings({ emitExistingOnFirstPoll: true }) });
    list.records = [rec('a', T0), rec('b', T0)];
    success(await poller.pollNow());
    assert.deepEqual(sent.all(), ['created:a', 'created:b']);
  });

  it('commits only after emit returned: during emit, memory and disk still hold the previous state', async () => {
    list.records = [rec('a', T0)];
    const duringEmit: Array<{ memory: Promise<number | undefined>; disk: number }> = [];
    const onDisk = (): number => {
      const doc = openJson(readFileSync(filePath), SECRET) as { triggers: Record<string, { seen: unknown[] }> };
      return doc.triggers['node-1'].seen.length;
    };
    const poller = makePoller({
      emit: () => {
        // store.get computes its copy synchronously, at this moment (its promise only delivers it later).
        duringEmit.push({ memory: store.get('node-1').then((s) => s?.seen.length), disk: onDisk() });
      },
      settings: settings({ emitExistingOnFirstPoll: true }),
    });
    await store.set('node-1', { version: 1, configKey: 'watch-A', initialised: true, seen: [] });
    success(await poller.pollNow());
    list.records = [rec('a', T0), rec('b', T0)];
    success(await poller.pollNow());
    assert.deepEqual(await Promise.all(duringEmit.map((d) => d.memory)), [0, 1]);
    assert.deepEqual(duringEmit.map((d) => d.disk), [0, 1]);
    assert.equal(onDisk(), 2);
  });

  it('emit throws → nothing committed, the error reported, and the next poll emits the same changes again', async () => {
    const poller = makePoller();
    list.records = [rec('a', T0)];
    success(await poller.pollNow());
    const before = await store.get('node-1');
    list.records = [rec('a', T0 + 5), rec('b', T0)];
    sent.throwNext = new Error('downstream exploded');
    const err = failure(await poller.pollNow());
    assert.equal(err.code, 'OAUTH2_TRIGGER_STATE_FAILED');
    assert.equal(err.params.reason, 'emit');
    assert.deepEqual(await store.get('node-1'), before);
    success(await poller.pollNow());
    assert.deepEqual(sent.all(), ['updated:a', 'created:b']);
    success(await poller.pollNow());
    assert.deepEqual(sent.all(), ['updated:a', 'created:b'], 'after the commit, nothing twice');
  });

  it('crash between fetch and emit: a new runtime on the same file emits the changes; after a commit nothing again', async () => {
    list.records = [rec('a', T0)];
    success(await makePoller().pollNow());
    list.records = [rec('a', T0), rec('b', T0)];
    // The process "dies" after the fetch, before sending: emit never returns normally and nothing after it runs.
    const dying = makePoller({
      emit: () => {
        throw new Error('process killed');
      },
    });
    failure(await dying.pollNow());

    // Restart: a new store opened from the file, a new poller.
    const restartedStore = await openTriggerStateStore({ filePath, secret: SECRET });
    const restarted = makePoller({ store: restartedStore });
    success(await restarted.pollNow());
    assert.deepEqual(sent.all(), ['created:b']);
    await restartedStore.flush();

    // Restart again after that commit: nothing is repeated.
    const again = makePoller({ store: await openTriggerStateStore({ filePath, secret: SECRET }) });
    assert.equal(success(await again.pollNow()).changes, 0);
    assert.deepEqual(sent.all(), ['created:b']);
  });

  it('a record missing from one complete list is marked on disk, and deleted by the next complete list without it, also after a restart', async () => {
    const withDeletes = settings({ events: { created: true, updated: true, deleted: true } });
    list.records = [rec('a', T0), rec('b', T0)];
    success(await makePoller({ settings: withDeletes }).pollNow());
    list.records = [rec('a', T0)];
    // Nothing but the mark changes in this poll: it must still reach the file.
    assert.equal(success(await makePoller({ settings: withDeletes }).pollNow()).changes, 0);
    await store.flush();
    const restartedStore = await openTriggerStateStore({ filePath, secret: SECRET });
    assert.deepEqual((await restartedStore.get('node-1'))?.missing, ['b']);
    success(await makePoller({ settings: withDeletes, store: restartedStore }).pollNow());
    assert.deepEqual(sent.all(), ['deleted:b']);
    await restartedStore.flush();
  });

  it('a failed fetch commits nothing, and the next poll starts from the same state', async () => {
    const poller = makePoller();
    list.records = [rec('a', T0)];
    success(await poller.pollNow());
    list.records = [rec('a', T0), rec('b', T0)];
    list.failures.push(new OAuth2Error('OAUTH2_HTTP_STATUS', 'HTTP 503', { statusCode: 503, retryable: true, params: { statusCode: 503 } }));
    assert.equal(failure(await poller.pollNow()).code, 'OAUTH2_HTTP_STATUS');
    assert.equal((await store.get('node-1'))?.seen.length, 1);
    list.failures.push(new TypeError('bug below'));
    const wrapped = failure(await poller.pollNow());
    assert.equal(wrapped.code, 'OAUTH2_REQUEST_FAILED');
    assert.doesNotMatch(wrapped.message, /bug below/);
    success(await poller.pollNow());
    assert.deepEqual(sent.all(), ['created:b']);
  });

  it('records that are not a list: OAUTH2_RECORDS_NOT_FOUND, nothing committed', async () => {
    const poller = makePoller({ fetch: async () => ({ records: { not: 'a list' } as unknown as unknown[], complete: true }) });
    assert.equal(failure(await poller.pollNow()).code, 'OAUTH2_RECORDS_NOT_FOUND');
    assert.equal(await store.get('node-1'), undefined);
  });

  it('polls never overlap: pollNow during a slow poll is skipped and counted; so is a timer tick', async () => {
    const poller = makePoller();
    const states: PollerState[] = [];
    poller.on('state', (s) => states.push(s));
    list.records = [rec('a', T0)];
    poller.start();
    list.hold();
    const ends: PollOutcome[] = [];
    poller.on('poll-end', (o) => ends.push(o));
    clock.advance(1000); // timer poll starts and waits on the slow API
    await list.fetched(1);
    const manual = await poller.pollNow();
    assert.deepEqual(manual, { skipped: true });
    clock.advance(INTERVAL); // the next tick finds the poll still running
    assert.equal(list.queries.length, 1, 'only one fetch at a time');
    assert.equal(states.at(-1)?.skipped, 2);
    assert.equal(states.at(-1)?.kind, 'polling');
    const end = nextPollEnd(poller);
    list.release();
    success(await end);
    assert.deepEqual(
      ends.map((o) => o.skipped),
      [true, true, false],
    );
    assert.equal(states.at(-1)?.kind, 'idle');
  });

  it('by default the backoff stops growing at one minute: the trigger resumes within a minute of the API recovering', async () => {
    const poller = makePoller({ random: () => 0.999 });
    list.records = [rec('a', T0)];
    const unavailable = (): OAuth2Error => new OAuth2Error('OAUTH2_HTTP_STATUS', 'HTTP 503', { statusCode: 503, retryable: true, params: { statusCode: 503 } });
    for (let i = 0; i < 8; i++) list.failures.push(unavailable());
    poller.start();
    const waits: number[] = [];
    for (let i = 0; i < 8; i++) {
      const end = nextPollEnd(poller);
      clock.fireNext();
      await end;
      waits.push(clock.pending()[0] - clock.time);
    }
    assert.ok(Math.max(...waits) <= 60_000, waits.join(', '));
    assert.equal(waits.at(-1), Math.floor(0.999 * 60_000));
    poller.stop();
  });

  it('failures back off with full jitter, never faster than the interval, honouring Retry-After up to a cap; success restores the interval', async () => {
    let r = 0.999;
    const poller = makePoller({ random: () => r, maxBackoffMs: 60_000, maxRetryAfterMs: 300_000 });
    const states: PollerState[] = [];
    poller.on('state', (s) => states.push(s));
    list.records = [rec('a', T0)];
    const unavailable = (): OAuth2Error => new OAuth2Error('OAUTH2_HTTP_STATUS', 'HTTP 503', { statusCode: 503, retryable: true, params: { statusCode: 503 } });
    list.failures.push(unavailable(), unavailable(), unavailable());
    poller.start();

    const waitAfter = async (): Promise<number> => {
      const end = nextPollEnd(poller);
      clock.fireNext();
      await end;
      return clock.pending()[0] - clock.time;
    };
    // Ceiling 2 × interval, then 4 ×, then capped at 60 s; the random draw (0.999) sits near the ceiling.
    assert.equal(await waitAfter(), Math.floor(0.999 * 20_000));
    assert.equal(states.at(-1)?.kind, 'backoff');
    assert.equal(states.at(-1)?.failures, 1);
    assert.equal(await waitAfter(), Math.floor(0.999 * 40_000));
    assert.equal(await waitAfter(), Math.floor(0.999 * 60_000));
    // A low draw never polls faster than the interval.
    r = 0;
    list.failures.push(unavailable());
    assert.equal(await waitAfter(), INTERVAL);
    // Retry-After: honoured when longer than the backoff, capped at maxRetryAfterMs.
    list.failures.push(new OAuth2Error('OAUTH2_HTTP_STATUS', 'HTTP 429', { statusCode: 429, retryable: true, params: { statusCode: 429, retryAfterMs: 120_000 } }));
    assert.equal(await waitAfter(), 120_000);
    list.failures.push(new OAuth2Error('OAUTH2_HTTP_STATUS', 'HTTP 429', { statusCode: 429, retryable: true, params: { statusCode: 429, retryAfterMs: 86_400_000 } }));
    assert.equal(await waitAfter(), 300_000);
    assert.equal(states.at(-1)?.lastError?.statusCode, 429);
    // Success: back to the normal interval, error cleared.
    assert.equal(await waitAfter(), INTERVAL);
    assert.equal(states.at(-1)?.kind, 'idle');
    assert.equal(states.at(-1)?.lastError, undefined);
    assert.equal(states.at(-1)?.nextPollAt, clock.time + INTERVAL);
    // State was never lost on the way.
    assert.equal((await store.get('node-1'))?.initialised, true);
  });

  it('reset forgets the state: the next poll is a first poll', async () => {
    const poller = makePoller();
    list.records = [rec('a', T0)];
    success(await poller.pollNow());
    await poller.reset();
    assert.equal(await store.get('node-1'), undefined);
    list.records = [rec('a', T0), rec('b', T0)];
    const outcome = success(await poller.pollNow());
    assert.equal(outcome.firstPoll, true);
    assert.deepEqual(sent.all(), []);
  });

  it('reset during a slow poll: its result is thrown away, not committed', async () => {
    const poller = makePoller();
    list.records = [rec('a', T0)];
    success(await poller.pollNow());
    list.records = [rec('a', T0), rec('b', T0)];
    list.hold();
    const running = poller.pollNow();
    await list.fetched(2);
    await poller.reset();
    list.release();
    assert.deepEqual(await running, { skipped: true });
    assert.deepEqual(sent.all(), []);
    assert.equal(await store.get('node-1'), undefined);
  });

  it('a different configKey (the node watches something else) starts fresh', async () => {
    list.records = [rec('a', T0)];
    success(await makePoller().pollNow());
    list.records = [rec('a', T0), rec('b', T0)];
    const other = makePoller({ configKey: 'watch-B' });
    assert.equal(success(await other.pollNow()).firstPoll, true);
    assert.deepEqual(sent.all(), []);
    assert.equal((await store.get('node-1'))?.configKey, 'watch-B');
    // The same configKey keeps the state.
    assert.equal(success(await makePoller({ configKey: 'watch-B' }).pollNow()).firstPoll, false);
  });

  it('stop during a fetch: aborted, nothing emitted or committed, no timer left; resolves without waiting for the API', async () => {
    const poller = makePoller();
    list.records = [rec('a', T0)];
    success(await poller.pollNow());
    list.records = [rec('a', T0), rec('b', T0)];
    poller.start();
    list.hold();
    const end = nextPollEnd(poller);
    clock.advance(1000);
    await list.fetched(2);
    await poller.stop();
    assert.equal(list.signals.at(-1)?.aborted, true);
    assert.deepEqual(clock.pending(), []);
    list.release();
    assert.deepEqual(await Promise.race([end, new Promise((resolve) => setTimeout(() => resolve('no poll-end'), 50))]), 'no poll-end');
    assert.deepEqual(sent.all(), []);
    assert.equal((await store.get('node-1'))?.seen.length, 1);
    assert.deepEqual(await poller.pollNow(), { skipped: true });
  });

  it('a failed commit is reported, not resent in this process, written again before the next fetch', async () => {
    const poller = makePoller();
    list.records = [rec('a', T0)];
    success(await poller.pollNow());
    list.records = [rec('a', T0), rec('b', T0)];
    await fsp.rm(dir, { recursive: true, force: true }); // the disk goes away
    const err = failure(await poller.pollNow());
    assert.equal(err.code, 'OAUTH2_TRIGGER_STATE_FAILED');
    assert.deepEqual(sent.all(), ['created:b'], 'sent before the commit');
    // Still failing: the next poll tries the write first and does not fetch.
    const fetches = list.queries.length;
    failure(await poller.pollNow());
    assert.equal(list.queries.length, fetches);
    await fsp.mkdir(dir, { recursive: true });
    success(await poller.pollNow());
    assert.deepEqual(sent.all(), ['created:b']);
    const reopened = await openTriggerStateStore({ filePath, secret: SECRET });
    assert.equal((await reopened.get('node-1'))?.seen.length, 2);
  });

  it('a failed commit followed by a crash: the next run sends again (at-least-once while the store fails)', async () => {
    list.records = [rec('a', T0)];
    success(await makePoller().pollNow());
    list.records = [rec('a', T0), rec('b', T0)];
    await fsp.rm(dir, { recursive: true, force: true });
    failure(await makePoller().pollNow());
    assert.deepEqual(sent.all(), ['created:b']);
    // The on-disk state is gone with the directory in this simulation; restore the last good file instead.
    await fsp.mkdir(dir, { recursive: true });
    const restartedStore = await openTriggerStateStore({ filePath, secret: SECRET });
    await restartedStore.set('node-1', { version: 1, configKey: 'watch-A', initialised: true, watermark: T0, seen: [['a', String(T0)]] });
    success(await makePoller({ store: restartedStore }).pollNow());
    assert.deepEqual(sent.all(), ['created:b', 'created:b']);
  });

  it('preview shows the next poll without emitting or committing', async () => {
    const poller = makePoller();
    list.records = [rec('a', T0)];
    assert.equal((await poller.preview()).firstPoll, true);
    success(await poller.pollNow());
    const committed = (await store.get('node-1'))?.seen;
    // The time, with the content digest of a record stamped close to the API's time (detect.ts).
    assert.match(String(committed?.[0][1]), new RegExp(`^${T0}#[\\w-]{8}$`));
    list.records = [rec('a', T0 + 1), rec('b', T0)];
    const preview = await poller.preview();
    assert.equal(preview.firstPoll, false);
    assert.deepEqual(
      preview.changes.map((c) => `${c.event}:${c.id}`),
      ['updated:a', 'created:b'],
    );
    assert.equal(preview.stats.records, 2);
    assert.deepEqual(sent.all(), []);
    assert.deepEqual((await store.get('node-1'))?.seen, committed);
    success(await poller.pollNow());
    assert.deepEqual(sent.all(), ['updated:a', 'created:b']);
    list.failures.push(new OAuth2Error('OAUTH2_HTTP_STATUS', 'HTTP 500', { statusCode: 500, params: { statusCode: 500 } }));
    await assert.rejects(poller.preview(), (e: unknown) => isOAuth2Error(e, 'OAUTH2_HTTP_STATUS'));
  });

  it('sends the watermark query; an incomplete list (maxPages) does not move the watermark', async () => {
    const s = settings({ watermark: { param: 'since', overlapMs: 1000, format: 'epoch-ms' } });
    const poller = makePoller({ settings: s });
    clock.time = T0 + 10 * 60_000; // the records below are in the API's past
    list.records = [rec('a', T0)];
    success(await poller.pollNow());
    assert.deepEqual(list.queries, [{}]);
    list.records = [rec('b', T0 + 60_000)];
    list.complete = false;
    success(await poller.pollNow());
    assert.deepEqual(list.queries[1], { since: String(T0 - 1000) });
    assert.equal((await store.get('node-1'))?.watermark, T0);
    assert.deepEqual(sent.all(), ['created:b']);
    list.complete = true;
    success(await poller.pollNow());
    assert.deepEqual(list.queries[2], { since: String(T0 - 1000) });
    assert.equal((await store.get('node-1'))?.watermark, T0 + 60_000);
    assert.deepEqual(sent.all(), ['created:b'], 'b is remembered: not sent twice');
  });

  /** A list read two records a page, at most `maxPages` pages a poll, resumable like fetchPages (page counting). */
  function pagedList(records: unknown[], maxPages: number): { fetch: RecordPollerOptions['fetch']; starts: number[] } {
    const starts: number[] = [];
    const fetch: RecordPollerOptions['fetch'] = async (_query, _signal, resume) => {
      const first = resume?.pages ?? 0;
      starts.push(first);
      const out: unknown[] = [];
      for (let page = first; page < first + maxPages; page += 1) {
        const rows = records.slice(page * 2, page * 2 + 2);
        if (rows.length === 0) return { records: out, complete: true, pages: page - first + 1 };
        out.push(...rows);
      }
      const pages = first + maxPages;
      return { records: out, complete: false, pages: maxPages, next: { url: `http://api/list?page=${pages + 1}`, pages, offset: 0 } };
    };
    return { fetch, starts };
  }

  it('a list cut at Max pages: the next polls read on from the stored point; another pagination starts again from page 1; no deletion inferred from a list read over several polls', async () => {
    const s = settings({ events: { created: true, updated: true, deleted: true } });
    const records = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10].map((n) => rec(`r${n}`, T0));
    const paged = pagedList(records, 2);
    let poller = makePoller({ settings: s, fetch: paged.fetch, continuationKey: 'paging-1' });
    // A first poll read over three polls stays a first poll: nothing is sent as created.
    assert.deepEqual(success(await poller.pollNow()).continuing, { pages: 2, total: 2, first: true });
    assert.equal((await store.get('node-1'))?.initialised, false);
    assert.deepEqual(success(await poller.pollNow()).continuing, { pages: 2, total: 4, first: false });
    const end = success(await poller.pollNow());
    assert.equal(end.continuing, undefined);
    assert.deepEqual(paged.starts, [0, 2, 4]);
    assert.deepEqual(sent.all(), []);
    assert.equal((await store.get('node-1'))?.initialised, true);
    assert.equal((await store.get('node-1'))?.continuation, undefined);

    // r1 is gone: the next list is again read over several polls, so r1's absence proves nothing.
    records.shift();
    records.push(rec('r11', T0));
    success(await poller.pollNow());
    success(await poller.pollNow());
    assert.deepEqual(paged.starts.slice(3), [0, 2]);
    await poller.stop();
    // Another pagination (a new deploy): the stored point is discarded, the list starts again from its first page.
    poller = makePoller({ settings: s, fetch: paged.fetch, continuationKey: 'paging-2' });
    success(await poller.pollNow());
    success(await poller.pollNow());
    success(await poller.pollNow());
    assert.deepEqual(paged.starts.slice(5), [0, 2, 4]);
    assert.deepEqual(sent.all(), ['created:r11'], 'r11 once; no deleted:r1 from a list read over several polls');
  });

  it("a record from the future is sent once; the watermark stays at the API's time (its Date, else this machine's clock)", async () => {
    const s = settings({ watermark: { param: 'since', overlapMs: 0, format: 'epoch-ms' } });
    const poller = makePoller({ settings: s });
    list.filter = (records, query) => records.filter((r) => query.since === undefined || Number((r as { updatedAt: number }).updatedAt) >= Number(query.since));
    list.records = [rec('a', T0 - 60_000)];
    success(await poller.pollNow());
    list.records.push(rec('future', T0 + 86_400_000));
    const seen = success(await poller.pollNow());
    assert.deepEqual(seen.future, { count: 1, id: 'future', updatedAt: T0 + 86_400_000, apiNow: T0 });
    assert.equal((await store.get('node-1'))?.watermark, T0, "no Date from the API: this machine's clock");
    clock.time = T0 + 5000;
    list.records.push(rec('b', T0 + 2000));
    const next = success(await poller.pollNow());
    assert.equal(next.future, undefined, 'the future record is remembered: not reported again');
    assert.deepEqual(sent.all(), ['created:future', 'created:b']);
    // The API's own clock wins over this machine's: its Date header says it is an hour behind.
    list.serverTime = clock.time - 3_600_000;
    success(await poller.pollNow());
    assert.equal((await store.get('node-1'))?.watermark, list.serverTime);
    assert.equal((await poller.preview()).future, undefined);
    assert.deepEqual(sent.all(), ['created:future', 'created:b'], 'the future record, listed on every poll, is not sent again');
  });

  it('throwing listeners and an unchanged list neither break polling nor write the file', async () => {
    const poller = makePoller();
    poller.on('state', () => {
      throw new Error('listener bug');
    });
    poller.on('poll-start', () => {
      throw new Error('listener bug');
    });
    list.records = [rec('a', T0), rec('b', T0)];
    poller.start();
    let end = nextPollEnd(poller);
    clock.advance(1000);
    success(await end);
    await store.flush();
    const { mtimeMs } = await fsp.stat(filePath);
    list.records = [rec('b', T0), rec('a', T0)]; // same records, other order
    await new Promise((resolve) => setTimeout(resolve, 20));
    end = nextPollEnd(poller);
    clock.advance(INTERVAL);
    success(await end);
    await store.flush();
    assert.equal((await fsp.stat(filePath)).mtimeMs, mtimeMs);
    assert.deepEqual(clock.pending(), [clock.time + INTERVAL]);
  });

  it('a store that cannot be read: OAUTH2_TRIGGER_STATE_FAILED from the timer poll, no fetch, backoff, nothing thrown', async () => {
    const broken = {
      get: () => Promise.reject(new Error('disk on fire')),
      set: () => Promise.reject(new Error('disk on fire')),
      delete: () => Promise.reject(new Error('disk on fire')),
      ids: async () => [],
      flush: async () => undefined,
    };
    const poller = makePoller({ store: broken });
    poller.start();
    const end = nextPollEnd(poller);
    clock.advance(1000);
    const err = failure(await end);
    assert.equal(err.code, 'OAUTH2_TRIGGER_STATE_FAILED');
    assert.equal(list.queries.length, 0);
    assert.ok(clock.pending()[0] - clock.time >= INTERVAL);
    await assert.rejects(poller.reset(), (e: unknown) => isOAuth2Error(e, 'OAUTH2_TRIGGER_STATE_FAILED'));
    await assert.rejects(poller.preview(), (e: unknown) => isOAuth2Error(e, 'OAUTH2_TRIGGER_STATE_FAILED'));
  });

  it('refuses a non-positive interval', () => {
    assert.throws(() => makePoller({ intervalMs: 0 }), (e: unknown) => isOAuth2Error(e, 'OAUTH2_INVALID_CONFIG'));
  });
});
