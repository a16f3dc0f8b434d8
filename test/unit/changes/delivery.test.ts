/**
 * The poller's delivery modes (poller.ts): at least once commits after emit's promise (the adapter resolves it
 * once the messages reached the next nodes), at most once commits before emit and holds the changes back when
 * the commit fails. Each change carries its key (change-key.ts) when it is sent.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { RecordPoller, type PollOutcome, type RecordPollerOptions } from '../../../nodes/lib/changes/poller';
import { copyState, openTriggerStateStore, type FileTriggerStateStore, type TriggerStateStore } from '../../../nodes/lib/changes/state-store';
import type { DetectedChange, TriggerState } from '../../../nodes/lib/changes/types';
import { openJson } from '../../../nodes/lib/sealed/crypto';
import { ManualClock, SECRET, ScriptedList, T0, rec, settings, tempDir } from './support';

function ok(outcome: PollOutcome): Extract<PollOutcome, { changes: number }> {
  assert.ok(!outcome.skipped && !('error' in outcome), `expected a successful poll, got ${JSON.stringify(outcome)}`);
  return outcome;
}

/**
 * The file store with writes that fail on demand: 'keep' as the file store itself fails (the new state stays in
 * memory), 'drop' as a store whose memory does not move either (or one another instance wrote meanwhile).
 */
function flaky(store: TriggerStateStore): TriggerStateStore & { failing: 'no' | 'keep' | 'drop' } {
  const overlay = new Map<string, TriggerState>();
  const wrapped = {
    failing: 'no' as 'no' | 'keep' | 'drop',
    async get(id: string) {
      const kept = overlay.get(id);
      return kept ? copyState(kept) : store.get(id);
    },
    async set(id: string, state: TriggerState) {
      if (wrapped.failing === 'no') {
        overlay.delete(id);
        return store.set(id, state);
      }
      if (wrapped.failing === 'keep') overlay.set(id, copyState(state));
      throw new Error('disk full');
    },
    delete: (id: string) => store.delete(id),
    ids: () => store.ids(),
    flush: () => store.flush(),
  };
  return wrapped;
}

describe('changes/poller: delivery', () => {
  let filePath: string;
  let store: FileTriggerStateStore;
  let list: ScriptedList;
  const pollers: RecordPoller[] = [];

  function makePoller(overrides: Partial<RecordPollerOptions>): RecordPoller {
    const clock = new ManualClock();
    const poller = new RecordPoller({
      nodeId: 'node-1',
      configKey: 'watch-A',
      settings: settings(),
      store,
      fetch: list.fetch,
      emit: () => undefined,
      intervalMs: 10_000,
      now: clock.now,
      setTimer: clock.setTimer,
      clearTimer: clock.clearTimer,
      ...overrides,
    });
    pollers.push(poller);
    return poller;
  }
  const onDisk = (): number => {
    const doc = openJson(readFileSync(filePath), SECRET) as { triggers: Record<string, { seen: unknown[] }> };
    return doc.triggers['node-1']?.seen.length ?? 0;
  };
  const inMemory = async (s: TriggerStateStore = store): Promise<number> => (await s.get('node-1'))?.seen.length ?? 0;

  beforeEach(async () => {
    filePath = path.join(await tempDir(), 'triggers.db');
    store = await openTriggerStateStore({ filePath, secret: SECRET });
    list = new ScriptedList();
  });
  afterEach(async () => {
    await Promise.all(pollers.splice(0).map((p) => p.stop()));
  });

  it('at least once (default): nothing is recorded until the delivery promise resolves; stop() waits for it', async () => {
    let deliver!: () => void;
    const sent: DetectedChange[][] = [];
    const poller = makePoller({
      emit: (changes) => {
        sent.push(changes);
        return new Promise<void>((resolve) => (deliver = resolve));
      },
    });
    list.records = [rec('a', T0)];
    ok(await poller.pollNow());
    list.records = [rec('a', T0), rec('b', T0)];
    let settled = false;
    const polling = poller.pollNow().then((o) => ((settled = true), o));
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(sent.length, 1);
    assert.equal(settled, false, 'the poll waits for the delivery');
    assert.equal(await inMemory(), 1);
    assert.equal(onDisk(), 1);
    let stopped = false;
    const stopping = poller.stop().then(() => (stopped = true));
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(stopped, false, 'stop() waits for the delivery and the commit');
    deliver();
    assert.equal(ok(await polling).changes, 1);
    await stopping;
    assert.equal(onDisk(), 2);
    assert.match(String(sent[0][0].key), /^[A-Za-z0-9_-]{22}$/);
  });

  it('at least once: a delivery promise that rejects records nothing, and the next poll sends the change again', async () => {
    const sent: string[] = [];
    let reject = true;
    const poller = makePoller({
      emit: (changes) => {
        sent.push(...changes.map((c) => `${c.event}:${c.id}:${c.key}`));
        return reject ? Promise.reject(new Error('lost on the way')) : undefined;
      },
    });
    list.records = [rec('a', T0)];
    ok(await poller.pollNow());
    list.records = [rec('a', T0), rec('b', T0)];
    const failed = await poller.pollNow();
    assert.ok(!failed.skipped && 'error' in failed && failed.error.params.reason === 'delivery', JSON.stringify(failed));
    assert.equal(await inMemory(), 1);
    reject = false;
    ok(await poller.pollNow());
    assert.equal(sent.length, 2);
    assert.equal(sent[0], sent[1], 'the same change, with the same key');
    ok(await poller.pollNow());
    assert.equal(sent.length, 2);
  });

  it('at most once: the state is in memory and on disk before emit is called', async () => {
    const during: Array<{ memory: Promise<number>; disk: number }> = [];
    const poller = makePoller({
      delivery: 'at-most-once',
      emit: () => {
        during.push({ memory: inMemory(), disk: onDisk() });
      },
    });
    list.records = [rec('a', T0)];
    ok(await poller.pollNow());
    list.records = [rec('a', T0), rec('b', T0)];
    ok(await poller.pollNow());
    assert.equal(during.length, 1);
    assert.equal(await during[0].memory, 2);
    assert.equal(during[0].disk, 2);
  });

  for (const failing of ['keep', 'drop'] as const) {
    it(`at most once, a commit that fails (${failing === 'keep' ? 'the store keeps the state in memory' : 'the store keeps nothing'}): nothing sent; the next poll sends it once`, async () => {
      const store2 = flaky(store);
      const sent: string[] = [];
      const poller = makePoller({ delivery: 'at-most-once', store: store2, emit: (changes) => void sent.push(...changes.map((c) => `${c.event}:${c.id}`)) });
      list.records = [rec('a', T0)];
      ok(await poller.pollNow());
      list.records = [rec('a', T0), rec('b', T0)];
      store2.failing = failing;
      const failed = await poller.pollNow();
      assert.ok(!failed.skipped && 'error' in failed && failed.error.code === 'OAUTH2_TRIGGER_STATE_FAILED', JSON.stringify(failed));
      assert.deepEqual(sent, []);
      store2.failing = 'no';
      list.records = [rec('a', T0), rec('b', T0), rec('c', T0)];
      ok(await poller.pollNow());
      assert.deepEqual(sent, ['created:b', 'created:c']);
      ok(await poller.pollNow());
      assert.deepEqual(sent, ['created:b', 'created:c'], 'nothing twice');
      assert.equal(onDisk(), 3);
    });
  }
});
