import assert from 'node:assert/strict';
import { detectChanges } from '../../../nodes/lib/changes/detect';
import type { TriggerSettings, TriggerState } from '../../../nodes/lib/changes/types';
import { T0, emptyState, rec, settings } from './support';

/** Runs a first poll (remember mode) and returns the state it commits. */
function remembered(records: unknown[], s: TriggerSettings = settings()): TriggerState {
  const { changes, next } = detectChanges(emptyState(), records, s, { fullList: true });
  assert.deepEqual(changes, []);
  return next;
}

function events(changes: Array<{ event: string; id: string }>): string[] {
  return changes.map((c) => `${c.event}:${c.id}`);
}

describe('changes/detect', () => {
  it('first poll remembers everything and emits nothing by default', () => {
    const { changes, next, stats } = detectChanges(emptyState(), [rec('a', T0), rec('b', T0)], settings(), { fullList: true });
    assert.deepEqual(changes, []);
    assert.equal(next.initialised, true);
    assert.deepEqual(next.seen, [
      ['a', String(T0)],
      ['b', String(T0)],
    ]);
    assert.equal(next.watermark, T0);
    assert.equal(stats.records, 2);
  });

  it('first poll with emitExistingOnFirstPoll emits every record as created', () => {
    const { changes } = detectChanges(emptyState(), [rec('a', T0), rec('b', T0)], settings({ emitExistingOnFirstPoll: true }), {
      fullList: true,
    });
    assert.deepEqual(events(changes), ['created:a', 'created:b']);
    assert.deepEqual(changes[0].record, rec('a', T0));
    assert.equal(changes[0].version, String(T0));
  });

  it('first poll with emitSinceOnFirstPoll emits the records updated at or after that time, and remembers the rest', () => {
    const s = settings({ emitSinceOnFirstPoll: T0 + 1000 });
    const { changes, next } = detectChanges(emptyState(), [rec('old', T0), rec('at', T0 + 1000), rec('new', T0 + 5000)], s, { fullList: true });
    assert.deepEqual(events(changes), ['created:at', 'created:new']);
    // The old one is remembered: its next change is an update, not a creation.
    const later = detectChanges(next, [rec('old', T0 + 9000), rec('at', T0 + 1000), rec('new', T0 + 5000)], s, { fullList: true });
    assert.deepEqual(events(later.changes), ['updated:old']);
  });

  it('created, updated, unchanged and deleted (deleted once missing from two complete lists in a row)', () => {
    const s = settings({ events: { created: true, updated: true, deleted: true }, includePrevious: true });
    const state = remembered([rec('a', T0), rec('b', T0), rec('c', T0)], s);
    const list = [rec('a', T0), rec('b', T0 + 1000), rec('d', T0)];
    const { changes, next } = detectChanges(state, list, s, { fullList: true });
    assert.deepEqual(events(changes), ['updated:b', 'created:d']);
    assert.equal(changes[0].previous, String(T0));
    assert.equal(changes[0].version, String(T0 + 1000));
    assert.deepEqual(next.seen.map(([id]) => id), ['c', 'a', 'b', 'd'], 'c missing once: kept');
    assert.deepEqual(next.missing, ['c']);
    // The same list again: c is missing a second time, so it is gone.
    const again = detectChanges(next, list, s, { fullList: true });
    assert.deepEqual(again.changes, [{ event: 'deleted', id: 'c', record: { id: 'c' } }]);
    assert.deepEqual(again.next.seen.map(([id]) => id), ['a', 'b', 'd']);
    assert.equal(again.next.missing, undefined);
    // And again: nothing.
    const third = detectChanges(again.next, list, s, { fullList: true });
    assert.deepEqual(third.changes, []);
    assert.deepEqual(third.next, again.next);
  });

  it('a record missing from one complete list and listed again is neither deleted nor created', () => {
    const s = settings({ events: { created: true, updated: true, deleted: true } });
    const state = remembered([rec('a', T0), rec('b', T0), rec('c', T0)], s);
    // b slipped between two pages of a list that shifted while it was read.
    const shifted = detectChanges(state, [rec('a', T0), rec('c', T0)], s, { fullList: true });
    assert.deepEqual(shifted.changes, []);
    assert.deepEqual(shifted.next.missing, ['b']);
    const back = detectChanges(shifted.next, [rec('a', T0), rec('b', T0), rec('c', T0)], s, { fullList: true });
    assert.deepEqual(back.changes, [], 'same version: nothing');
    assert.equal(back.next.missing, undefined, 'mark cleared');
    // The mark is cleared: the next miss is again a first one.
    assert.deepEqual(detectChanges(back.next, [rec('a', T0), rec('c', T0)], s, { fullList: true }).changes, []);
    // Listed again with a new version: an update, once.
    const updated = detectChanges(shifted.next, [rec('a', T0), rec('b', T0 + 1000), rec('c', T0)], s, { fullList: true });
    assert.deepEqual(events(updated.changes), ['updated:b']);
    assert.deepEqual(detectChanges(updated.next, [rec('a', T0), rec('b', T0 + 1000), rec('c', T0)], s, { fullList: true }).changes, []);
  });

  it('a list that is not complete neither counts as a miss nor ends one; it clears the marks of what it lists', () => {
    const s = settings({ events: { created: true, updated: true, deleted: true } });
    const state = remembered([rec('a', T0), rec('b', T0), rec('c', T0)], s);
    const cut = detectChanges(state, [rec('a', T0)], s, { fullList: false });
    assert.equal(cut.next.missing, undefined, 'Max pages cut the list: no miss');
    const once = detectChanges(cut.next, [rec('a', T0)], s, { fullList: true });
    assert.deepEqual(once.changes, []);
    assert.deepEqual([...(once.next.missing ?? [])].sort(), ['b', 'c']);
    const between = detectChanges(once.next, [rec('b', T0)], s, { fullList: false });
    assert.deepEqual(between.changes, []);
    assert.deepEqual(between.next.missing, ['c'], 'b listed: cleared; c not listed: still marked');
    const twice = detectChanges(between.next, [rec('a', T0), rec('b', T0)], s, { fullList: true });
    assert.deepEqual(events(twice.changes), ['deleted:c']);
  });

  it('a memory written without marks (older format) reads as nothing missing yet', () => {
    const s = settings({ events: { created: true, updated: true, deleted: true } });
    const old = { version: 1 as const, configKey: 'key', initialised: true, seen: [['a', String(T0)], ['b', String(T0)]] as Array<[string, string]> };
    const first = detectChanges(old, [rec('a', T0)], s, { fullList: true });
    assert.deepEqual(first.changes, []);
    assert.deepEqual(first.next.seen, [['b', String(T0)], ['a', String(T0)]], 'nothing lost');
    assert.deepEqual(events(detectChanges(first.next, [rec('a', T0)], s, { fullList: true }).changes), ['deleted:b']);
  });

  it('records missing once are kept beyond the cap, so a full memory still sends their deletion', () => {
    const s = settings({ events: { created: true, updated: true, deleted: true }, maxRemembered: 3 });
    const state = remembered([rec('a', T0), rec('b', T0), rec('c', T0)], s);
    const { next, stats } = detectChanges(state, [rec('c', T0), rec('d', T0), rec('e', T0)], s, { fullList: true });
    assert.equal(stats.forgotten, 0);
    assert.deepEqual(next.seen.map(([id]) => id), ['a', 'b', 'c', 'd', 'e']);
    assert.deepEqual(next.missing, ['a', 'b']);
    const again = detectChanges(next, [rec('c', T0), rec('d', T0), rec('e', T0)], s, { fullList: true });
    assert.deepEqual(events(again.changes), ['deleted:a', 'deleted:b']);
    assert.deepEqual(again.next.seen.map(([id]) => id), ['c', 'd', 'e']);
    // Over the cap among the others: the oldest unmarked one goes, the marked ones stay.
    const over = detectChanges(next, [rec('a', T0), rec('f', T0), rec('g', T0)], { ...s, maxRemembered: 2 }, { fullList: false });
    assert.equal(over.stats.forgotten, 4);
    assert.deepEqual(over.next.seen.map(([id]) => id), ['b', 'f', 'g']);
    assert.deepEqual(over.next.missing, ['b']);
  });

  it('a deleted record is described by its id at a nested id path', () => {
    const s = settings({ idPath: 'data.key', events: { created: true, updated: true, deleted: true } });
    const state = remembered([{ data: { key: 'k1' }, updatedAt: T0 }], s);
    const once = detectChanges(state, [], s, { fullList: true });
    assert.deepEqual(once.changes, []);
    const { changes } = detectChanges(once.next, [], s, { fullList: true });
    assert.deepEqual(changes, [{ event: 'deleted', id: 'k1', record: { data: { key: 'k1' } } }]);
  });

  it('deletions need a full list and no watermark', () => {
    const s = settings({ events: { created: true, updated: true, deleted: true } });
    const state = remembered([rec('a', T0), rec('b', T0)], s);
    const partial = detectChanges(state, [rec('a', T0)], s, { fullList: false });
    assert.deepEqual(partial.changes, []);
    assert.deepEqual(partial.next.seen.map(([id]) => id), ['b', 'a'], 'kept, and least recently seen first');
    const withWatermark = settings({ ...s, watermark: { param: 'since', overlapMs: 0, format: 'iso' } });
    assert.deepEqual(detectChanges(state, [rec('a', T0)], withWatermark, { fullList: true }).changes, []);
  });

  it('deleted events off: records missing twice are forgotten, so turning deletions on later reports nothing old', () => {
    const off = settings();
    const state = remembered([rec('a', T0), rec('b', T0)], off);
    const once = detectChanges(state, [rec('a', T0)], off, { fullList: true });
    assert.deepEqual(once.next.seen.map(([id]) => id), ['b', 'a'], 'missing once: not forgotten');
    // Listed again after one miss: not created.
    assert.deepEqual(detectChanges(once.next, [rec('a', T0), rec('b', T0)], off, { fullList: true }).changes, []);
    const { changes, next } = detectChanges(once.next, [rec('a', T0)], off, { fullList: true });
    assert.deepEqual(changes, []);
    assert.deepEqual(next.seen.map(([id]) => id), ['a']);
    const on = settings({ events: { created: true, updated: true, deleted: true } });
    assert.deepEqual(detectChanges(next, [rec('a', T0)], on, { fullList: true }).changes, []);
  });

  it('an older updated-at arriving after a newer one is ignored, and the newer one stays remembered', () => {
    const state = remembered([rec('a', T0 + 5000)]);
    const late = detectChanges(state, [rec('a', T0)], settings(), { fullList: true });
    assert.deepEqual(late.changes, []);
    assert.deepEqual(late.next.seen, [['a', String(T0 + 5000)]]);
    // The newer version reappearing is not emitted a second time.
    assert.deepEqual(detectChanges(late.next, [rec('a', T0 + 5000)], settings(), { fullList: true }).changes, []);
    // A really newer one is.
    assert.deepEqual(events(detectChanges(late.next, [rec('a', T0 + 6000)], settings(), { fullList: true }).changes), ['updated:a']);
  });

  it('version detection: any difference is an update, previous given back when short', () => {
    const s = settings({ detection: { kind: 'version', path: 'rev' }, includePrevious: true });
    const state = remembered([{ id: 1, rev: 3 }], s);
    const { changes } = detectChanges(state, [{ id: 1, rev: 2 }], s, { fullList: true });
    assert.deepEqual(changes, [{ event: 'updated', id: '1', record: { id: 1, rev: 2 }, version: '2', previous: '3' }]);
  });

  it('hash detection: key order does not matter, content does', () => {
    const s = settings({ detection: { kind: 'hash' } });
    const state = remembered([{ id: 1, a: 1, b: [1, 2] }], s);
    assert.deepEqual(detectChanges(state, [{ b: [1, 2], a: 1, id: 1 }], s, { fullList: true }).changes, []);
    assert.deepEqual(events(detectChanges(state, [{ b: [1, 2], a: 2, id: 1 }], s, { fullList: true }).changes), ['updated:1']);
    assert.ok(state.seen.every(([, fp]) => fp.length === 16), 'a fixed-size digest, not the record');
  });

  it('events turned off are still remembered (turning them on later does not flood)', () => {
    const off = settings({ events: { created: false, updated: false, deleted: false } });
    const state = remembered([rec('a', T0)], off);
    const quiet = detectChanges(state, [rec('a', T0 + 1), rec('b', T0)], off, { fullList: true });
    assert.deepEqual(quiet.changes, []);
    const on = settings();
    assert.deepEqual(detectChanges(quiet.next, [rec('a', T0 + 1), rec('b', T0)], on, { fullList: true }).changes, []);
  });

  it('the cap forgets the least recently seen first', () => {
    const s = settings({ maxRemembered: 3 });
    let state = remembered([rec('a', T0), rec('b', T0), rec('c', T0)], s);
    const partial = detectChanges(state, [rec('a', T0), rec('d', T0)], s, { fullList: false });
    state = partial.next;
    assert.deepEqual(state.seen.map(([id]) => id), ['c', 'a', 'd']);
    assert.equal(partial.stats.forgotten, 1);
    assert.deepEqual(events(partial.changes), ['created:d']);
  });

  it('duplicated ids in one list: the last occurrence wins, counted', () => {
    const state = remembered([rec('a', T0)]);
    const { changes, stats, next } = detectChanges(state, [rec('a', T0 + 2000), rec('b', T0), rec('a', T0 + 1000)], settings(), {
      fullList: true,
    });
    assert.equal(stats.duplicates, 1);
    assert.deepEqual(events(changes), ['created:b', 'updated:a']);
    assert.equal(changes[1].version, String(T0 + 1000));
    assert.deepEqual(next.seen.map(([id]) => id), ['b', 'a']);
  });

  it('records without an id are skipped and counted; unreadable versions neither emit nor look deleted', () => {
    const s = settings({ events: { created: true, updated: true, deleted: true } });
    const state = remembered([rec('a', T0)], s);
    const { changes, stats, next } = detectChanges(state, [{ name: 'no id' }, rec('a', 'garbage'), rec('b', 'garbage')], s, {
      fullList: true,
    });
    assert.deepEqual(changes, []);
    assert.equal(stats.skippedNoId, 1);
    assert.equal(stats.invalidVersion, 2);
    assert.deepEqual(next.seen, [['a', String(T0)]]);
    assert.deepEqual(events(detectChanges(next, [rec('a', T0), rec('b', T0)], s, { fullList: true }).changes), ['created:b']);
  });

  it('the watermark is the newest updated-at ever seen', () => {
    const state = remembered([rec('a', T0), rec('b', T0 + 9000)]);
    assert.equal(state.watermark, T0 + 9000);
    assert.equal(detectChanges(state, [rec('c', T0 + 100)], settings(), { fullList: false }).next.watermark, T0 + 9000);
    assert.equal(detectChanges(state, [rec('c', T0 + 10_000)], settings(), { fullList: false }).next.watermark, T0 + 10_000);
  });

  it('is pure: the given state is not changed', () => {
    const state = remembered([rec('a', T0)]);
    const copy = structuredClone(state);
    detectChanges(state, [rec('a', T0 + 1), rec('b', T0)], settings({ maxRemembered: 1 }), { fullList: true });
    assert.deepEqual(state, copy);
  });
});
