import assert from 'node:assert/strict';
import { detectChanges } from '../../../nodes/lib/changes/detect';
import { parseTimestamp } from '../../../nodes/lib/changes/timestamps';
import type { TriggerSettings, TriggerState, WatermarkSettings } from '../../../nodes/lib/changes/types';
import { watermarkQuery } from '../../../nodes/lib/changes/watermark';
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
});
