/**
 * Updated-at detection and a record updated twice within one second (issue #24 item 3): the second update keeps
 * the updated-at a poll already read, and only a content digest kept for records in the digest window can see
 * it. Also the memory that costs (printed for 10,000 records in and out of the window), and memories written
 * before digests were kept.
 */
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import * as v8 from 'node:v8';
import * as vm from 'node:vm';
import { detectChanges, onlyDigestDropped, type DetectOptions } from '../../../nodes/lib/changes/detect';
import { RecordPoller } from '../../../nodes/lib/changes/poller';
import { openTriggerStateStore } from '../../../nodes/lib/changes/state-store';
import type { DetectedChange, TriggerSettings, TriggerState } from '../../../nodes/lib/changes/types';
import { ManualClock, SECRET, ScriptedList, Sent, T0, emptyState, rec, settings, tempDir } from './support';

/** Watermark polling on `updatedAt` (epoch ms in these records), with an overlap. */
function marked(overlapMs: number, overrides: Partial<TriggerSettings> = {}): TriggerSettings {
  return settings({ watermark: { param: 'since', overlapMs, format: 'epoch-ms' }, ...overrides });
}

/** One poll: the changes as "event:id:name", and the state to commit. */
function poll(state: TriggerState, records: unknown[], s: TriggerSettings, opts: Partial<DetectOptions> = {}): { state: TriggerState; changes: DetectedChange[]; sent: string[] } {
  const { changes, next } = detectChanges(state, records, s, { fullList: true, ...opts });
  return { state: next, changes, sent: changes.map((c) => `${c.event}:${c.id}:${String((c.record as { name?: unknown }).name)}`) };
}

const entryOf = (state: TriggerState, id: string): string | undefined => state.seen.find(([key]) => key === id)?.[1];

describe('changes/same-second updates (updatedAt detection)', () => {
  for (const overlapMs of [0, 5000]) {
    it(`watermark (overlap ${overlapMs} ms): 6 of 6 records updated again within their second are sent with the latest content, once`, () => {
      const s = marked(overlapMs);
      let { state } = poll(emptyState(), [rec('old', T0 - 3_600_000, { name: 'old' })], s);
      const sent: string[] = [];
      for (let trial = 0; trial < 6; trial += 1) {
        const at = T0 + trial * 1000;
        const id = `r${trial}`;
        // A poll reads the record's first update...
        let step = poll(state, [rec(id, at, { name: `${id} v1` })], s);
        sent.push(...step.sent);
        // ...the record is updated again in the same second; the next poll lists it again (the watermark's second).
        step = poll(step.state, [rec(id, at, { name: `${id} v2` })], s);
        sent.push(...step.sent);
        // Listed again unchanged: nothing more.
        step = poll(step.state, [rec(id, at, { name: `${id} v2` })], s);
        sent.push(...step.sent);
        state = step.state;
      }
      assert.deepEqual(
        sent,
        [0, 1, 2, 3, 4, 5].flatMap((t) => [`created:r${t}:r${t} v1`, `updated:r${t}:r${t} v2`]),
      );
    });
  }

  it('the same content again (keys in another order) is no update; a third content in the same second is one more', () => {
    const s = marked(1000, { includePrevious: true });
    let step = poll(emptyState(), [rec('a', T0, { name: 'one', tags: ['x'] })], s);
    step = poll(step.state, [{ tags: ['x'], name: 'one', updatedAt: T0, id: 'a' }], s);
    assert.deepEqual(step.sent, []);
    step = poll(step.state, [rec('a', T0, { name: 'two', tags: ['x'] })], s);
    assert.deepEqual(step.sent, ['updated:a:two']);
    assert.equal(step.changes[0].version, String(T0), 'the version is still the updated-at');
    assert.equal(step.changes[0].previous, String(T0));
    step = poll(step.state, [rec('a', T0, { name: 'three', tags: ['x'] })], s);
    assert.deepEqual(step.sent, ['updated:a:three']);
    step = poll(step.state, [rec('a', T0, { name: 'three', tags: ['x'] })], s);
    assert.deepEqual(step.sent, []);
  });

  it('a newer time is an update as before; an older time (a stale read) is ignored and keeps the digest', () => {
    const s = marked(10_000);
    let step = poll(emptyState(), [rec('a', T0, { name: 'one' })], s);
    step = poll(step.state, [rec('a', T0 + 1000, { name: 'two' })], s);
    assert.deepEqual(step.sent, ['updated:a:two']);
    const kept = entryOf(step.state, 'a');
    step = poll(step.state, [rec('a', T0, { name: 'one' })], s);
    assert.deepEqual(step.sent, []);
    assert.equal(entryOf(step.state, 'a'), kept);
    step = poll(step.state, [rec('a', T0 + 1000, { name: 'two' })], s);
    assert.deepEqual(step.sent, [], 'the newer content again: no update');
    step = poll(step.state, [rec('a', T0 + 1000, { name: 'two b' })], s);
    assert.deepEqual(step.sent, ['updated:a:two b']);
  });

  it('digests are kept only for records the next poll lists again: past the window an entry is the time alone', () => {
    const s = marked(2000);
    const list = [rec('past', T0 - 10_000, { name: 'p' }), rec('edge', T0 - 2000, { name: 'e' }), rec('new', T0, { name: 'n' })];
    let step = poll(emptyState(), list, s);
    assert.equal(step.state.watermark, T0);
    assert.equal(entryOf(step.state, 'past'), String(T0 - 10_000));
    assert.match(String(entryOf(step.state, 'edge')), new RegExp(`^${T0 - 2000}#[\\w-]{8}$`));
    assert.match(String(entryOf(step.state, 'new')), new RegExp(`^${T0}#[\\w-]{8}$`));
    // The watermark moves on. The window starts from the earlier of the stored and the new watermark (a poll cut
    // at Max pages keeps the stored one), so the records before it lose their digest one poll later, listed or not.
    step = poll(step.state, [rec('newer', T0 + 5000, { name: 'x' }), rec('new', T0, { name: 'n' })], s);
    assert.deepEqual(step.sent, ['created:newer:x']);
    assert.match(String(entryOf(step.state, 'edge')), /#/);
    step = poll(step.state, [rec('new', T0, { name: 'n' })], s);
    assert.deepEqual(step.sent, []);
    assert.equal(entryOf(step.state, 'edge'), String(T0 - 2000));
    assert.equal(entryOf(step.state, 'new'), String(T0));
    assert.match(String(entryOf(step.state, 'newer')), /#/);
  });

  it('a poll cut at Max pages keeps the stored watermark: the window starts from it, not from the newer one', () => {
    const s = marked(0);
    let step = poll(emptyState(), [rec('a', T0, { name: 'a' })], s);
    // Cut short: the poller keeps the stored watermark (T0), so the next poll lists from T0 again.
    step = poll(step.state, [rec('b', T0 + 60_000, { name: 'b' })], s, { fullList: false });
    assert.match(String(entryOf(step.state, 'a')), /#/, 'a is still in the window the next poll lists');
    step = poll({ ...step.state, watermark: T0 }, [rec('a', T0, { name: 'a 2' })], s);
    assert.deepEqual(step.sent, ['updated:a:a 2']);
  });

  it('without a watermark: records stamped within a minute of the API\'s time keep a digest, older ones do not', () => {
    const s = settings();
    const apiNow = T0 + 500;
    let step = poll(emptyState(), [rec('recent', T0, { name: 'r1' }), rec('old', T0 - 120_000, { name: 'o1' })], s, { apiNow });
    step = poll(step.state, [rec('recent', T0, { name: 'r2' }), rec('old', T0 - 120_000, { name: 'o2' })], s, { apiNow: apiNow + 1000 });
    assert.deepEqual(step.sent, ['updated:recent:r2'], 'an hour-old updated-at cannot change within its second any more');
    step = poll(step.state, [rec('recent', T0, { name: 'r2' })], s, { apiNow: apiNow + 2000 });
    assert.deepEqual(step.sent, []);
    // No API time (a caller without a clock): no digest at all, as before.
    const bare = poll(emptyState(), [rec('recent', T0, { name: 'r1' })], s);
    assert.equal(entryOf(bare.state, 'recent'), String(T0));
  });

  it('with watched fields: a same-second change of a watched field is sent with msg.changes, of another field not', () => {
    const s = marked(1000, { watch: { fields: ['status'], keepValues: true } });
    let step = poll(emptyState(), [rec('t', T0, { status: 'open', name: 'one' })], s);
    step = poll(step.state, [rec('t', T0, { status: 'open', name: 'renamed' })], s);
    assert.deepEqual(step.sent, [], 'only an unwatched field changed');
    step = poll(step.state, [rec('t', T0, { status: 'done', name: 'renamed' })], s);
    assert.deepEqual(step.sent, ['updated:t:renamed']);
    assert.deepEqual(step.changes[0].changes, { status: { previous: 'open', value: 'done' } });
    assert.deepEqual(step.changes[0].previousValues, { status: 'open' });
    step = poll(step.state, [rec('t', T0, { status: 'done', name: 'renamed' })], s);
    assert.deepEqual(step.sent, []);
  });

  it('version and hash detection keep no digest', () => {
    for (const detection of [{ kind: 'version', path: 'rev' }, { kind: 'hash' }] as const) {
      const s = settings({ detection });
      const { state } = poll(emptyState(), [rec('a', T0, { rev: 'x#1', name: 'n' })], s, { apiNow: T0 });
      const entry = String(entryOf(state, 'a'));
      if (detection.kind === 'version') assert.equal(entry, '=x#1', "a '#' in a version stays the version's");
      else assert.match(entry, /^[\w-]{16}$/);
    }
  });

  it('a memory written before digests were kept: no update after the upgrade, and the next same-second change is seen', async () => {
    const dir = await tempDir();
    try {
      const filePath = path.join(dir, 'triggers.db');
      let store = await openTriggerStateStore({ filePath, secret: SECRET });
      // As the previous version wrote it: the time alone, for records in the window too.
      const old: TriggerState = { version: 1, configKey: 'k', initialised: true, watermark: T0, seen: [['a', String(T0)], ['b', String(T0 - 1000)]] };
      await store.set('n', old);
      await store.flush();
      store = await openTriggerStateStore({ filePath, secret: SECRET });
      const clock = new ManualClock();
      clock.time = T0 + 400;
      const list = new ScriptedList();
      list.filter = (records, query) => records.filter((r) => query.since === undefined || Number((r as { updatedAt: number }).updatedAt) >= Number(query.since));
      const sent = new Sent();
      const poller = new RecordPoller({
        nodeId: 'n',
        configKey: 'k',
        settings: marked(1000),
        store,
        fetch: list.fetch,
        emit: sent.emit,
        intervalMs: 10_000,
        now: clock.now,
        setTimer: clock.setTimer,
        clearTimer: clock.clearTimer,
      });
      // Content the old memory cannot compare with (it kept none): not an update.
      list.records = [rec('a', T0, { name: 'a?' }), rec('b', T0 - 1000, { name: 'b?' })];
      await poller.pollNow();
      await poller.pollNow();
      assert.deepEqual(sent.all(), []);
      const upgraded = await store.get('n');
      assert.match(String(upgraded?.seen.find(([id]) => id === 'a')?.[1]), new RegExp(`^${T0}#`));
      list.records = [rec('a', T0, { name: 'a 2' }), rec('b', T0 - 1000, { name: 'b 2' })];
      await poller.pollNow();
      await poller.pollNow();
      assert.deepEqual(sent.all(), ['updated:a', 'updated:b']);
      await poller.stop();
      await store.flush();
    } finally {
      await fsp.rm(dir, { recursive: true, force: true });
    }
  });

  it('records leaving the digest window change no more than that: the poller does not write the file for it', async () => {
    const dir = await tempDir();
    try {
      const filePath = path.join(dir, 'triggers.db');
      const store = await openTriggerStateStore({ filePath, secret: SECRET });
      const clock = new ManualClock();
      const list = new ScriptedList();
      const sent = new Sent();
      const poller = new RecordPoller({
        nodeId: 'n',
        configKey: 'k',
        settings: settings(),
        store,
        fetch: list.fetch,
        emit: sent.emit,
        intervalMs: 10_000,
        now: clock.now,
        setTimer: clock.setTimer,
        clearTimer: clock.clearTimer,
      });
      list.records = [rec('a', T0, { name: 'a' })];
      await poller.pollNow();
      await store.flush();
      const { mtimeMs } = await fsp.stat(filePath);
      assert.match(String((await store.get('n'))?.seen[0][1]), /#/);
      await new Promise((resolve) => setTimeout(resolve, 20));
      clock.time = T0 + 3_600_000;
      await poller.pollNow();
      await store.flush();
      assert.equal((await fsp.stat(filePath)).mtimeMs, mtimeMs);
      assert.deepEqual(sent.all(), []);
      await poller.stop();
    } finally {
      await fsp.rm(dir, { recursive: true, force: true });
    }
  });

  it('onlyDigestDropped: the same entry without its digest, watched entries included; nothing else, and never for a version', () => {
    const updatedAt = settings().detection;
    const watched = '\u0000["=\\"open\\""]';
    assert.equal(onlyDigestDropped(`${T0}#abcdefgh`, String(T0), updatedAt), true);
    assert.equal(onlyDigestDropped(`${T0}#abcdefgh${watched}`, `${T0}${watched}`, updatedAt), true);
    assert.equal(onlyDigestDropped(`${T0}#abcdefgh`, String(T0 + 1000), updatedAt), false);
    assert.equal(onlyDigestDropped(`${T0}#abcdefgh${watched}`, `${T0}\u0000["=\\"done\\""]`, updatedAt), false);
    assert.equal(onlyDigestDropped(String(T0), String(T0), updatedAt), false, 'equal entries are compared before');
    assert.equal(onlyDigestDropped('=a#bcdefghi', '=a', { kind: 'version', path: 'rev' }), false, 'an ETag with a # changed');
  });

  it('memory: bytes per record of the state, 10,000 records in and out of the digest window', () => {
    const N = 10_000;
    const s = marked(60_000);
    const ids = Array.from({ length: N }, (_, i) => String(1_000_000 + i));
    const records = (at: number): unknown[] => ids.map((id, i) => ({ id, updatedAt: at, name: `Record ${i}`, status: 'open', amount: i % 997 }));
    // In: every record in the last minute before the watermark. Out: an hour older than the watermark.
    const inside = poll(emptyState(), records(T0), s).state;
    const outside = poll(emptyState(), [...records(T0 - 3_600_000), rec('latest', T0)], s).state;
    outside.seen = outside.seen.filter(([id]) => id !== 'latest');
    const jsonPerRecord = (state: TriggerState): number => (JSON.stringify(state.seen).length - 2) / N;
    const heapPerRecord = (state: TriggerState): number => {
      v8.setFlagsFromString('--expose-gc');
      const gc = vm.runInNewContext('gc') as () => void;
      const json = JSON.stringify(state.seen);
      gc();
      const before = process.memoryUsage().heapUsed;
      const map = new Map(JSON.parse(json) as Array<[string, string]>);
      gc();
      const bytes = (process.memoryUsage().heapUsed - before) / N;
      assert.equal(map.size, N);
      return bytes;
    };
    const inJson = jsonPerRecord(inside);
    const outJson = jsonPerRecord(outside);
    assert.ok(inside.seen.every(([, entry]) => entry.includes('#')));
    assert.ok(outside.seen.every(([, entry]) => !entry.includes('#')));
    console.log(
      `      state per record, 10,000 records with 7-digit ids: in the window ${inJson.toFixed(1)} B JSON ` +
        `(~${heapPerRecord(inside).toFixed(0)} B heap as a Map), out of it ${outJson.toFixed(1)} B JSON ` +
        `(~${heapPerRecord(outside).toFixed(0)} B heap); the digest adds ${(inJson - outJson).toFixed(1)} B`,
    );
    assert.equal(Math.round((inJson - outJson) * N), 9 * N, "'#' and 8 characters, only in the window");
    assert.ok(inJson <= 40, `${inJson} B per record in the window`);
  });
});
