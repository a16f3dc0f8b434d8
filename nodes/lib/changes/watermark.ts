/**
 * Incremental polling: the query parameter that asks the API only for records updated since the newest one
 * already seen.
 *
 * Why an overlap, and why it neither loses nor repeats: the watermark is the newest updated-at the trigger has
 * seen, but a record can be written with an updated-at at or just before the watermark and become visible
 * after the poll that set it (a transaction committing late, a replica catching up, a timestamp taken before
 * the write). Asking for `updated >= watermark - overlap` lists those again; records in the window that were
 * already seen with the same version are recognised by `seen` in detectChanges and not emitted again, while a
 * late record (new id, or a newer version) is emitted once and then remembered. The API's filter must be
 * inclusive (>=) or the overlap must be at least the timestamps' resolution.
 */
import { formatTimestamp } from './timestamps';
import type { TriggerSettings, TriggerState } from './types';

/**
 * `{ [param]: watermark - overlapMs }` in the configured format, or {} when there is no watermark yet (first
 * poll, after a reset, or no record with an updated-at seen), when watermark polling is off, or when detection
 * is not by updated-at (a watermark needs times).
 */
export function watermarkQuery(state: TriggerState, settings: TriggerSettings): Record<string, string> {
  const config = settings.watermark;
  if (!config || settings.detection.kind !== 'updatedAt') return {};
  if (!state.initialised || state.watermark === undefined || !Number.isFinite(state.watermark)) return {};
  const overlap = Number.isFinite(config.overlapMs) && config.overlapMs > 0 ? config.overlapMs : 0;
  return { [config.param]: formatTimestamp(state.watermark - overlap, config.format) };
}
