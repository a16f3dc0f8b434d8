import assert from 'node:assert/strict';
import * as os from 'node:os';
import * as path from 'node:path';
import * as fs from 'node:fs';
import { detectChanges } from '../../../nodes/lib/changes/detect';
import { openTriggerStateStore } from '../../../nodes/lib/changes/state-store';
import type { TriggerSettings, TriggerState } from '../../../nodes/lib/changes/types';
import { T0, emptyState, rec, settings } from './support';

function watching(fields: string[], keepValues = false, overrides: Partial<TriggerSettings> = {}): TriggerSettings {
  return settings({ watch: { fields, keepValues }, ...overrides });
}

function poll(state: TriggerState, records: unknown[], s: TriggerSettings): { state: TriggerState; changes: ReturnType<typeof detectChanges>['changes'] } {
  const { changes, next } = detectChanges(state, records, s, { fullList: true });
  return { state: next, changes };
}

describe('changes/watched fields', () => {
  it('two fields watched, a third changed: nothing is sent; a watched one changed: one update with msg.changes', () => {
    const s = watching(['status', 'owner.id']);
    let { state } = poll(emptyState(), [rec('t1', T0, { status: 'open', owner: { id: 'ann' }, title: 'a' })], s);
    let changes;
    ({ state, changes } = poll(state, [rec('t1', T0 + 1000, { status: 'open', owner: { id: 'ann' }, title: 'b' })], s));
    assert.deepEqual(changes, []);
    ({ changes } = poll(state, [rec('t1', T0 + 2000, { status: 'open', owner: { id: 'bob' }, title: 'b' })], s));
    assert.equal(changes.length, 1);
    assert.equal(changes[0].event, 'updated');
    // Digests only: which field, and its new value.
    assert.deepEqual(changes[0].changes, { 'owner.id': { value: 'bob' } });
  });

  it('with the values remembered, msg.changes carries previous and new values, and $previous is known', () => {
    const s = watching(['status', 'owner.id'], true);
    const first = poll(emptyState(), [rec('t1', T0, { status: 'open', owner: { id: 'ann' } })], s);
    const { state, changes } = poll(first.state, [rec('t1', T0 + 1000, { status: 'done', owner: { id: 'bob' } })], s);
    assert.deepEqual(changes[0].changes, {
      status: { previous: 'open', value: 'done' },
      'owner.id': { previous: 'ann', value: 'bob' },
    });
    assert.deepEqual(changes[0].previousValues, { status: 'open', owner: { id: 'ann' } });
    assert.ok(state.initialised);
  });

  it('a new record is created with an empty $previous; a value too long to keep is compared by digest', () => {
    const s = watching(['body'], true);
    let { state } = poll(emptyState(), [], s);
    let changes;
    const long = 'x'.repeat(500);
    ({ state, changes } = poll(state, [rec('n', T0, { body: long })], s));
    assert.equal(changes[0].event, 'created');
    assert.deepEqual(changes[0].previousValues, {});
    ({ state, changes } = poll(state, [rec('n', T0 + 1000, { body: `${long}y` })], s));
    assert.deepEqual(changes[0].changes, { body: { value: `${long}y` } });
    ({ changes } = poll(state, [rec('n', T0 + 2000, { body: `${long}y` })], s));
    assert.deepEqual(changes, []);
  });

  it('key order inside a watched object does not count as a change', () => {
    const s = watching(['meta']);
    const { state } = poll(emptyState(), [rec('m', T0, { meta: { a: 1, b: 2 } })], s);
    assert.deepEqual(poll(state, [rec('m', T0 + 1000, { meta: { b: 2, a: 1 } })], s).changes, []);
  });

  it('remembers the watched entries through the encrypted state store (a restart in between)', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'watch-state-'));
    const s = watching(['status'], true);
    const filePath = path.join(dir, 'state.json');
    const store = await openTriggerStateStore({ filePath, secret: 'secret' });
    await store.set('n1', poll(emptyState(), [rec('t', T0, { status: 'open' })], s).state);
    const reopened = await openTriggerStateStore({ filePath, secret: 'secret' });
    const restored = await reopened.get('n1');
    assert.ok(restored);
    const { changes } = poll(restored, [rec('t', T0 + 1000, { status: 'done' })], s);
    assert.deepEqual(changes[0].changes, { status: { previous: 'open', value: 'done' } });
  });

  it('bytes of state per record with three watched fields (printed for the notes)', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'watch-bytes-'));
    const N = 10_000;
    const records = Array.from({ length: N }, (_, i) =>
      rec(i + 1, T0, { status: i % 3 ? 'open' : 'done', owner: { id: `user-${i % 50}` }, priority: i % 5, title: `ticket ${i}` }),
    );
    const measure = async (s: TriggerSettings | undefined): Promise<number> => {
      const store = await openTriggerStateStore({ filePath: path.join(dir, `${s ? JSON.stringify(s.watch) : 'none'}.json`), secret: 'secret' });
      await store.set('n', poll(emptyState(), records, s ?? settings()).state);
      await store.flush();
      return fs.statSync(path.join(dir, `${s ? JSON.stringify(s.watch) : 'none'}.json`)).size / N;
    };
    const plain = await measure(undefined);
    const digests = await measure(watching(['status', 'owner.id', 'priority']));
    const values = await measure(watching(['status', 'owner.id', 'priority'], true));
    console.log(`      state per record: ${plain.toFixed(0)} B plain, ${digests.toFixed(0)} B with 3 watched fields (digests), ${values.toFixed(0)} B (values)`);
    assert.ok(digests < plain + 80 && values < plain + 60, 'watched fields cost a bounded, small number of bytes');
  });
});
