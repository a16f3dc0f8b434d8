import assert from 'node:assert/strict';
import { detectChanges } from '../../../nodes/lib/changes/detect';
import { parseTimestamp } from '../../../nodes/lib/changes/timestamps';
import type { TriggerSettings, TriggerState, WatermarkSettings } from '../../../nodes/lib/changes/types';
import { FUTURE_TOLERANCE_MS, watermarkCeiling, watermarkQuery } from '../../../nodes/lib/changes/watermark';
import { T0, emptyState, rec, settings } from './support';

function withWatermark(watermark: Partial<WatermarkSettings> = {}): TriggerSettings {
  return settings({ watermark: { param: 'updated_since', overlapMs: 0, format: 'iso', ...watermark } });
}

describe('changes/watermark', () => {
  it('no query before a watermark exists, or without watermark settings, or without updatedAt detection', () => {
    assert.deepEqual(watermarkQuery(emptyState(), withWatermark()), {});
    const state: TriggerState = { ...emptyState(), initialised: true, watermark: T0 };
    assert.deepEqual(watermarkQuery(state, settings()), {});
    assert.deepEqual(watermarkQuery(state, { ...withWatermark(), detection: { kind: 'hash' } }), {});
  });

  it('sends watermark minus overlap in the configured format', () => {
    const state: TriggerState = { ...emptyState(), initialised: true, watermark: T0 + 1500 };
    assert.deepEqual(watermarkQuery(state, withWatermark({ overlapMs: 60_000 })), { updated_since: new Date(T0 + 1500 - 60_000).toISOString() });
    assert.deepEqual(watermarkQuery(state, withWatermark({ format: 'epoch-s' })), { updated_since: String(T0 / 1000 + 1) });
    assert.deepEqual(watermarkQuery(state, withWatermark({ format: 'epoch-ms', overlapMs: 500 })), { updated_since: String(T0 + 1000) });
  });

  /**
   * The boundary case: record A updated at t; poll 1 sets the watermark to t. Record B is also updated at t
   * (same second) but only becomes visible after poll 1 (a late commit). The API filters updated_at >= since,
   * at one-second resolution. Poll 2 asks from t: it lists A and B; B is emitted once, A not again, and poll 3
   * emits nothing.
   */
  for (const format of ['iso', 'epoch-s', 'epoch-ms'] as const) {
    it(`same-second late record is emitted exactly once, the boundary record never again (${format})`, () => {
      const s = withWatermark({ format, overlapMs: 0 });
      const t = T0 + 400; // inside a second, so epoch-s flooring matters
      const table = [rec('A', new Date(t).toISOString())];
      const api = (query: Record<string, string>): unknown[] => {
        const since = query.updated_since === undefined ? -Infinity : (parseTimestamp(query.updated_since) as number);
        const secondOf = (ms: number): number => Math.floor(ms / 1000);
        return structuredClone(table.filter((r) => secondOf(parseTimestamp(r.updatedAt) as number) >= secondOf(since)));
      };
      let state = emptyState();
      const emitted: string[] = [];
      const poll = (): void => {
        const query = watermarkQuery(state, s);
        const { changes, next } = detectChanges(state, api(query), s, { fullList: true });
        emitted.push(...changes.map((c) => `${c.event}:${c.id}`));
        state = next;
      };
      poll(); // first poll: remembers A
      assert.equal(state.watermark, t);
      table.push(rec('B', new Date(t).toISOString())); // late insert, same second as the watermark
      poll();
      poll();
      assert.deepEqual(emitted, ['created:B']);
    });
  }

  it('an overlap window re-lists already-seen records without re-emitting them', () => {
    const s = withWatermark({ overlapMs: 10 * 60_000 });
    let state = detectChanges(emptyState(), [rec('a', T0), rec('b', T0 + 60_000)], s, { fullList: true }).next;
    const second = detectChanges(state, [rec('a', T0), rec('b', T0 + 60_000), rec('c', T0 + 30_000)], s, { fullList: true });
    assert.deepEqual(
      second.changes.map((c) => `${c.event}:${c.id}`),
      ['created:c'],
    );
    state = second.next;
    assert.equal(state.watermark, T0 + 60_000, 'a late, older record does not move the watermark back');
  });
  /**
   * A record stamped a day ahead of the API's clock. The API filters updated_at >= since; its clock moves on
   * between polls and each record written is stamped with it. Every record written after the future one is
   * still emitted exactly once, the future one once too, and the future one is reported once.
   */
  for (const overlapMs of [0, 1000, 60_000, 10 * 60_000]) {
    it(`a record from the future does not move the watermark past the API's clock (overlap ${overlapMs} ms)`, () => {
      const s = withWatermark({ overlapMs });
      const DAY = 86_400_000;
      let clock = T0;
      const table = [rec('old', new Date(T0 - 60_000).toISOString())];
      const write = (id: string, at = clock): void => {
        const row = table.find((r) => r.id === id);
        if (row) row.updatedAt = new Date(at).toISOString();
        else table.push(rec(id, new Date(at).toISOString()));
      };
      const api = (query: Record<string, string>): unknown[] => {
        const since = query.updated_since === undefined ? -Infinity : (parseTimestamp(query.updated_since) as number);
        return structuredClone(table.filter((r) => (parseTimestamp(r.updatedAt) as number) >= since));
      };
      let state = emptyState();
      const emitted: string[] = [];
      const reported: string[] = [];
      const poll = (): void => {
        const { changes, next, future } = detectChanges(state, api(watermarkQuery(state, s)), s, { fullList: true, apiNow: clock });
        emitted.push(...changes.map((c) => `${c.event}:${c.id}`));
        if (future) reported.push(`${future.id}:${future.count}`);
        assert.ok((next.watermark ?? -Infinity) <= watermarkCeiling(clock, s), `watermark ${next.watermark} beyond the API's clock ${clock}`);
        state = next;
        clock += 1000;
      };
      poll(); // first poll: remembers "old"
      write('future', T0 + DAY);
      poll();
      write('b'); // written right after the poll that saw the future record
      poll();
      write('c');
      write('old');
      poll();
      poll();
      poll();
      assert.deepEqual(emitted, ['created:future', 'created:b', 'updated:old', 'created:c']);
      assert.deepEqual(reported, ['future:1'], 'reported once: when it was first remembered');
    });
  }

  it('the ceiling is the API time plus the overlap, at most FUTURE_TOLERANCE_MS; a stored watermark beyond it comes down', () => {
    assert.equal(watermarkCeiling(T0, withWatermark({ overlapMs: 0 })), T0);
    assert.equal(watermarkCeiling(T0, withWatermark({ overlapMs: 5000 })), T0 + 5000);
    assert.equal(watermarkCeiling(T0, withWatermark({ overlapMs: 3_600_000 })), T0 + FUTURE_TOLERANCE_MS);
    const s = withWatermark({ overlapMs: 0 });
    const stored: TriggerState = { ...emptyState(), initialised: true, watermark: T0 + 86_400_000, seen: [['a', String(T0 + 86_400_000)]] };
    assert.equal(detectChanges(stored, [], s, { fullList: true, apiNow: T0 }).next.watermark, T0);
    // Without a clock (apiNow absent) there is no ceiling: the pure diff alone knows no time.
    assert.equal(detectChanges(stored, [], s, { fullList: true }).next.watermark, T0 + 86_400_000);
  });

  it('future timestamps are reported only with a watermark, beyond the tolerance, and when newly remembered', () => {
    const s = withWatermark({ overlapMs: 0 });
    const list = [rec('near', T0 + FUTURE_TOLERANCE_MS), rec('far', T0 + FUTURE_TOLERANCE_MS + 1), rec('farther', T0 + 86_400_000)];
    const first = detectChanges(emptyState(), list, s, { fullList: true, apiNow: T0 });
    assert.deepEqual(first.future, { count: 2, id: 'far', updatedAt: T0 + FUTURE_TOLERANCE_MS + 1, apiNow: T0 });
    assert.equal(detectChanges(first.next, list, s, { fullList: true, apiNow: T0 + 1000 }).future, undefined, 'already remembered');
    assert.equal(detectChanges(emptyState(), list, settings(), { fullList: true, apiNow: T0 }).future, undefined, 'no watermark');
  });
});
