/**
 * 100,000 records: correctness at scale, and the figures the issue asks for (printed, not asserted: timings
 * depend on the machine). Records per second diffed, state bytes per remembered record on disk and in memory,
 * and the time to write a 100,000-record state.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { promises as fsp, statSync } from 'node:fs';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import * as v8 from 'node:v8';
import * as vm from 'node:vm';
import { detectChanges } from '../../../nodes/lib/changes/detect';
import { RecordPoller, type PollOutcome } from '../../../nodes/lib/changes/poller';
import { openTriggerStateStore } from '../../../nodes/lib/changes/state-store';
import type { TriggerSettings, TriggerState } from '../../../nodes/lib/changes/types';
import { ManualClock, SECRET, T0, emptyState, settings, tempDir } from './support';

const N = 100_000;

/** A gc() for heap estimates without starting node with --expose-gc. */
function gcFunction(): () => void {
  v8.setFlagsFromString('--expose-gc');
  return vm.runInNewContext('gc') as () => void;
}

function heapDeltaPerEntry(build: () => unknown, count: number): number {
  const gc = gcFunction();
  gc();
  const before = process.memoryUsage().heapUsed;
  const kept = build();
  gc();
  const after = process.memoryUsage().heapUsed;
  assert.ok(kept);
  return (after - before) / count;
}

function records(ids: string[], updatedAt: (i: number) => number): Array<Record<string, unknown>> {
  return ids.map((id, i) => ({ id, updatedAt: new Date(updatedAt(i)).toISOString(), name: `Record ${i}`, status: 'open', amount: i % 997 }));
}

function ms(t: number): string {
  return `${t.toFixed(0)} ms`;
}

describe('changes at 100,000 records', function () {
  this.timeout(120_000);
  let dir: string;
  const figures: string[] = [];

  before(async () => {
    dir = await tempDir();
  });
  after(async () => {
    await fsp.rm(dir, { recursive: true, force: true });
    console.log(`\n      100k figures (${process.version}, this machine):\n${figures.map((f) => `        ${f}`).join('\n')}\n`);
  });

  for (const [label, makeId] of [
    ['numeric ids', (i: number) => String(1_000_000 + i)],
    ['UUID ids', () => randomUUID()],
  ] as const) {
    it(`detect: first poll, then 1% changed (${label})`, () => {
      const s = settings({ events: { created: true, updated: true, deleted: true } });
      const ids = Array.from({ length: N }, (_, i) => makeId(i));
      const list = records(ids, () => T0);

      let t = performance.now();
      const first = detectChanges(emptyState(), list, s, { fullList: true });
      const firstMs = performance.now() - t;
      assert.equal(first.changes.length, 0);
      assert.equal(first.next.seen.length, N);

      // 1%: 500 updated, 250 created, 250 deleted.
      const changed = list.slice(250).map((r, i) => (i % 100 === 0 ? { ...r, updatedAt: new Date(T0 + 60_000).toISOString() } : r));
      const added = records(Array.from({ length: 250 }, (_, i) => makeId(N + i)), () => T0 + 60_000);
      const secondList = changed.concat(added);
      t = performance.now();
      const second = detectChanges(first.next, secondList, s, { fullList: true });
      const secondMs = performance.now() - t;
      const count = (event: string): number => second.changes.filter((c) => c.event === event).length;
      assert.equal(count('updated'), Math.ceil((N - 250) / 100));
      assert.equal(count('created'), 250);
      assert.equal(count('deleted'), 0, 'missing from one complete list: only marked');
      assert.equal(second.next.seen.length, N + 250);
      assert.equal(second.next.missing?.length, 250);
      const markJson = (JSON.stringify(second.next.missing).length - 2) / 250;

      // The same list again: the 250 are missing a second time, so they are deleted.
      const third = detectChanges(second.next, secondList, s, { fullList: true });
      assert.equal(third.changes.length, 250);
      assert.ok(third.changes.every((c) => c.event === 'deleted'));
      assert.equal(third.next.seen.length, N);
      assert.equal(third.next.missing, undefined);

      // Unchanged fourth poll: nothing.
      t = performance.now();
      const fourth = detectChanges(third.next, secondList, s, { fullList: true });
      const thirdMs = performance.now() - t;
      assert.equal(fourth.changes.length, 0);

      const entryJson = JSON.stringify(third.next.seen).length / N;
      // Fresh strings (JSON.parse), as after a restart: the ids are not shared with the records list.
      const json = JSON.stringify(third.next.seen);
      const heap = heapDeltaPerEntry(() => JSON.parse(json) as unknown, N);
      const heapAsMap = heapDeltaPerEntry(() => new Map(JSON.parse(json) as Array<[string, string]>), N);
      figures.push(
        `${label}: first poll ${ms(firstMs)} (${Math.round(N / (firstMs / 1000)).toLocaleString('en')} records/s), ` +
          `1% changed ${ms(secondMs)} (${Math.round(N / (secondMs / 1000)).toLocaleString('en')} records/s), unchanged ${ms(thirdMs)}; ` +
          `seen entry ${entryJson.toFixed(1)} B JSON (a record missing once adds ${markJson.toFixed(1)} B), ` +
          `~${heap.toFixed(0)} B heap as stored (array of pairs), ` +
          `~${heapAsMap.toFixed(0)} B heap as the Map a diff builds`,
      );
    });

    it(`state store and poller end to end (${label})`, async () => {
      const filePath = path.join(dir, `triggers-${label.replace(/\W/g, '')}.db`);
      const store = await openTriggerStateStore({ filePath, secret: SECRET });
      const s: TriggerSettings = settings();
      const ids = Array.from({ length: N }, (_, i) => makeId(i));
      let current = records(ids, () => T0);
      const clock = new ManualClock();
      const sent: string[] = [];
      const poller = new RecordPoller({
        nodeId: 'big',
        configKey: 'k',
        settings: s,
        store,
        // The records go in as they are: the adapter's own copy from the HTTP body is not what is measured here.
        fetch: async () => ({ records: current, complete: true }),
        emit: (changes) => {
          for (const c of changes) sent.push(`${c.event}:${c.id}`);
        },
        intervalMs: 60_000,
        now: clock.now,
        setTimer: clock.setTimer,
        clearTimer: clock.clearTimer,
      });
      const timed = async (): Promise<[Extract<PollOutcome, { changes: number }>, number]> => {
        const t = performance.now();
        const outcome = await poller.pollNow();
        assert.ok(!outcome.skipped && !('error' in outcome));
        return [outcome, performance.now() - t];
      };

      const [first, firstMs] = await timed();
      assert.equal(first.firstPoll, true);
      const fileBytes = statSync(filePath).size;

      current = current.map((r, i) => (i % 100 === 0 ? { ...r, updatedAt: new Date(T0 + 1000).toISOString() } : r));
      const [second, secondMs] = await timed();
      assert.equal(second.changes, N / 100);
      assert.equal(sent.length, N / 100);

      const [third, thirdMs] = await timed();
      assert.equal(third.changes, 0);

      // Write time of a 100k state alone (seal + atomic write + fsync).
      const state = (await store.get('big')) as TriggerState;
      const writes: number[] = [];
      for (let i = 0; i < 3; i++) {
        const t = performance.now();
        await store.set('big', { ...state, watermark: (state.watermark ?? 0) + i + 1 });
        writes.push(performance.now() - t);
      }
      let t = performance.now();
      const reopened = await openTriggerStateStore({ filePath, secret: SECRET });
      const openMs = performance.now() - t;
      t = performance.now();
      const loaded = await reopened.get('big');
      const getMs = performance.now() - t;
      assert.equal(loaded?.seen.length, N);
      await poller.stop();

      figures.push(
        `${label}: poller first poll ${ms(firstMs)}, 1% changed ${ms(secondMs)} (1,000 sent), unchanged ${ms(thirdMs)} (no write); ` +
          `file ${(fileBytes / 1e6).toFixed(2)} MB = ${(fileBytes / N).toFixed(1)} B/record; ` +
          `write ${writes.map((w) => w.toFixed(0)).join('/')} ms; open ${ms(openMs)}; get (copy) ${ms(getMs)}`,
      );
    });
  }
});
