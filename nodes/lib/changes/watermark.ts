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
 *
 * Why a ceiling: a record stamped ahead of the API's clock (clock skew, bad data, a date typed by hand) would
 * otherwise carry the watermark ahead too, and every record written afterwards with an honest, earlier time would
 * be filtered out by the API until the clock caught up. So the watermark never passes the API's time at the poll
 * plus the tolerance, and the tolerance is never more than the overlap: the "updated since" sent next is never
 * later than the API's time at the previous poll, so a record written after one poll is listed by the next,
 * whatever times came before. The future record itself is sent once and remembered; as it stays after the sent
 * time, the API lists it again on each poll and the remembered version keeps it from being sent again.
 */
import { formatTimestamp } from './timestamps';
import type { TriggerSettings, TriggerState } from './types';

/**
 * Updated-at values more than this far ahead of the API's clock are reported as future timestamps: closer ones
 * are ordinary skew (the Date header's whole seconds, a database clock a little ahead of the web server's, this
 * machine's clock standing in when the API sends no Date). It also caps the watermark's tolerance.
 */
export const FUTURE_TOLERANCE_MS = 60_000;

/**
 * The latest watermark a poll may keep: the API's time at the poll (`apiNow`, epoch ms) plus the overlap, at most
 * FUTURE_TOLERANCE_MS. See the top of this file for why the tolerance stays within the overlap.
 */
export function watermarkCeiling(apiNow: number, settings: TriggerSettings): number {
  const overlap = settings.watermark?.overlapMs;
  const tolerance = typeof overlap === 'number' && Number.isFinite(overlap) && overlap > 0 ? Math.min(overlap, FUTURE_TOLERANCE_MS) : 0;
  return apiNow + tolerance;
}

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
