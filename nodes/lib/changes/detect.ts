/**
 * One poll's diff: the records the API listed against what the trigger remembers. Pure: no clock, no I/O, the
 * given state is never changed; the caller commits `next` only after the changes were sent (invariant 11).
 * O(n) in records + remembered ids (Maps, no nested scans): a 100,000-record list takes about 0.2 to 0.4 s on
 * the development machine, mostly reading ids and parsing updated-at strings (test/unit/changes/scale.test.ts
 * prints the figures). Records in the updated-at digest window (digestWindowStart) are hashed as well, about
 * 6 µs each: a list whose 100,000 records were all stamped within the last minute takes about 0.8 s. It is
 * synchronous, so the event loop waits that long once per poll.
 */
import {
  CONTENT_DIGEST_BYTES,
  CONTENT_DIGEST_LENGTH,
  contentFingerprint,
  fingerprint,
  previousVersion,
  readRecord,
  rememberedVersion,
  stableStringify,
} from './fingerprint';
import { readPath } from '../http/records';
import type { DetectedChange, FieldChange, FutureTimestamps, TriggerSettings, TriggerState, WatchSettings } from './types';
import { FUTURE_TOLERANCE_MS, watermarkCeiling } from './watermark';

export interface DetectStats {
  /** Records in the list, skipped ones included. */
  records: number;
  /** Records without a usable id (string or number at idPath): ignored. */
  skippedNoId: number;
  /** Records whose version could not be read (for example an unparsable updated-at): not emitted, see below. */
  invalidVersion: number;
  /** Records whose id appeared earlier in the same list: the last occurrence wins. */
  duplicates: number;
  /**
   * Ids dropped to keep within maxRemembered. Non-zero on every poll means the list is longer than the cap, and
   * the forgotten records will look new again: raise maxRemembered.
   */
  forgotten: number;
}

export interface DetectResult {
  changes: DetectedChange[];
  next: TriggerState;
  stats: DetectStats;
  /** With a watermark and opts.apiNow: the records of this list newly remembered with an updated-at in the future. */
  future?: FutureTimestamps;
}

export interface DetectOptions {
  /**
   * True when this poll saw the whole list (every page, no filter), so a remembered id missing from it was
   * deleted. With a watermark the list is filtered, so deletions are never inferred whatever this says.
   */
  fullList: boolean;
  /**
   * The API's time at this poll (epoch ms: its Date header, else this machine's clock). With a watermark, the
   * watermark stays at or below watermarkCeiling(apiNow), and records newly remembered with an updated-at more
   * than FUTURE_TOLERANCE_MS ahead of it are reported in `future`. Absent: no ceiling (the caller has no clock).
   */
  apiNow?: number;
}

/** A version that could not be read: the record is present, but there is nothing to compare. */
const UNREADABLE = undefined;

/**
 * Diffs `records` against `state`.
 *
 * - New id → created; different version → updated; same → nothing.
 * - updatedAt detection: only a newer time is an update. An older time arriving after a newer one (a lagging
 *   read replica, a cache, the watermark overlap returning a stale page) is ignored and the newer time stays
 *   remembered: emitting it would send the flow an old state after a new one, and the newer version would then
 *   be emitted a second time when it reappears.
 * - updatedAt detection, the same time again: an update when the content differs from the content digest kept
 *   with the time, else nothing. Timestamps of one second's precision give a record updated twice within one
 *   second, with a poll reading it in between, the same updated-at both times. The digest (8 characters after a
 *   '#', contentFingerprint with CONTENT_DIGEST_BYTES) is kept only for records in the digest window (see
 *   digestWindowStart: those the next poll may list again within their second) and dropped once a record is
 *   past it, so an entry outside the window costs what it did. An entry without a digest (past the window, or
 *   written by a version that kept none) reads as "no digest": the same time is no update, and the digest is
 *   taken from this list when the record is in the window. What it cannot tell: which of two same-second
 *   contents is the newer one, so a lagging replica that lists the earlier content again inside the window sends
 *   it as an update, and the newer content once more when it is listed again.
 * - Deleted → remembered ids missing from two complete lists in a row, only when settings.events.deleted,
 *   opts.fullList and no watermark. A list read page by page while it changes shifts under the reader (a record
 *   deleted or moved on a page already read pulls the next page's first record onto it), so one complete list
 *   without an id does not prove it gone: the first miss only marks the id (next.missing) and keeps it; listed
 *   again, the mark is cleared and nothing is sent unless its version changed; missing from the next complete
 *   list as well, it is deleted. With a full list and no watermark, ids missing twice are forgotten even when
 *   deleted events are off, so turning them on later does not report long-gone records. A list that is not
 *   complete (or filtered by a watermark) neither marks nor deletes: marks of ids it does not list stay as
 *   they are, marks of ids it lists are cleared.
 * - First poll (state.initialised false): everything is remembered; nothing is emitted unless
 *   emitExistingOnFirstPoll, then every record is created.
 * - Events that are turned off are still remembered, so turning them on later does not flood.
 * - A record with an id but an unreadable version keeps what was remembered for it (and is not taken for
 *   deleted); it is counted in stats.invalidVersion and emitted once its version can be read.
 * - The same id twice in one list: the last occurrence wins, counted in stats.duplicates.
 * - next.seen is least recently seen first (ids absent from this list keep their order, then this list's ids in
 *   list order), capped at maxRemembered by forgetting the oldest; ids missing once (next.missing) are kept
 *   beyond the cap until the next complete list, so their deletion is not lost.
 * - next.watermark (updatedAt detection) = max(state.watermark, newest updated-at in this list), with a
 *   watermark and opts.apiNow at most watermarkCeiling(apiNow) (watermark.ts): a stored watermark beyond it comes
 *   back down to it. A record from the future is still created or updated, once, like any other: it is
 *   remembered, and reported in `future` only when it is newly remembered, so a record the API keeps listing is
 *   reported once, not on every poll, also after a restart (the memory is stored).
 */
export function detectChanges(state: TriggerState, records: unknown[], settings: TriggerSettings, opts: DetectOptions): DetectResult {
  const { detection, idPath, events, watch } = settings;
  const stats: DetectStats = { records: records.length, skippedNoId: 0, invalidVersion: 0, duplicates: 0, forgotten: 0 };

  // Pass 1: this list by id, last occurrence wins and takes the place of its last appearance. Parallel arrays
  // and a Map of positions: no object per record, and one Map operation per record (Maps with 100k string keys
  // cost about 0.5 µs an operation, the bulk of a poll's diff).
  const position = new Map<string, number>();
  const ids: Array<string | undefined> = [];
  const listedRecords: unknown[] = [];
  const versions: Array<string | typeof UNREADABLE> = [];
  for (const record of records) {
    const reading = readRecord(record, detection, idPath);
    if ('skip' in reading) {
      if (reading.skip === 'noId' || reading.id === undefined) {
        stats.skippedNoId += 1;
        continue;
      }
      stats.invalidVersion += 1;
    }
    const id = reading.id as string;
    const earlier = position.get(id);
    if (earlier !== undefined) {
      stats.duplicates += 1;
      ids[earlier] = undefined;
    }
    position.set(id, ids.length);
    ids.push(id);
    listedRecords.push(record);
    versions.push('skip' in reading ? UNREADABLE : reading.version);
  }

  let watermark = state.watermark;
  if (detection.kind === 'updatedAt') {
    for (let i = 0; i < ids.length; i++) {
      const version = versions[i];
      if (ids[i] === undefined || version === UNREADABLE) continue;
      const ms = Number(version);
      watermark = watermark === undefined || ms > watermark ? ms : watermark;
    }
  }
  const bounded = settings.watermark !== undefined && detection.kind === 'updatedAt' && typeof opts.apiNow === 'number' && Number.isFinite(opts.apiNow);
  if (bounded && watermark !== undefined) watermark = Math.min(watermark, watermarkCeiling(opts.apiNow as number, settings));
  const digestFrom = digestWindowStart(state.watermark, watermark, settings, opts.apiNow);
  /** The remembered entry with its digest dropped when its time is before the window (updatedAt only). */
  const pastWindow = (entry: string): string => {
    if (digestFrom === undefined) return entry;
    const parts = splitRemembered(entry, detection);
    return parts.digest !== undefined && !(Number(parts.version) >= digestFrom) ? joinRemembered(parts.version, undefined, parts.watchedRaw) : entry;
  };

  const remembered = new Map(state.seen);
  const missedBefore = new Set(state.missing);
  const missing: string[] = [];
  const firstPoll = !state.initialised;
  const inferDeletes = opts.fullList && settings.watermark === undefined;
  const changes: DetectedChange[] = [];
  const deletions: DetectedChange[] = [];
  let seen: Array<[string, string]> = [];
  const futureAfter = bounded ? (opts.apiNow as number) + FUTURE_TOLERANCE_MS : Infinity;
  let future: FutureTimestamps | undefined;
  const noteFuture = (id: string, version: string): void => {
    const ms = Number(version);
    if (!(ms > futureAfter)) return;
    if (future) future.count += 1;
    else future = { count: 1, id, updatedAt: ms, apiNow: opts.apiNow as number };
  };

  // Pass 2a: what this list did not include keeps its place at the old end (marked when this complete list is
  // the first in a row without it), or is gone.
  for (const [id, before] of remembered) {
    if (position.has(id)) continue;
    const missedLastTime = missedBefore.has(id);
    if (!inferDeletes || (!firstPoll && !missedLastTime)) {
      seen.push([id, pastWindow(before)]);
      if (inferDeletes || missedLastTime) missing.push(id);
    } else if (events.deleted && !firstPoll) {
      deletions.push({ event: 'deleted', id, record: deletedRecord(idPath, id) });
    }
  }

  // Pass 2b: this list, in its order, becomes the most recently seen.
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i];
    if (id === undefined) continue;
    const version = versions[i];
    const before = remembered.get(id);
    if (version === UNREADABLE) {
      if (before !== undefined) seen.push([id, pastWindow(before)]);
      continue;
    }
    const record = listedRecords[i];
    const watched = watch ? watchedEntries(record, watch) : undefined;
    // Computed at most once per record, and only for records in the window or compared with a kept digest.
    let digest: string | undefined;
    const contentDigest = (): string | undefined => (digest ??= contentFingerprint(record, CONTENT_DIGEST_BYTES));
    const inWindow = digestFrom !== undefined && Number(version) >= digestFrom;
    const now = joinRemembered(
      rememberedVersion(version, detection),
      inWindow ? contentDigest() : undefined,
      watched ? WATCH_SEPARATOR + JSON.stringify(watched) : '',
    );
    if (firstPoll) {
      seen.push([id, now]);
      noteFuture(id, version);
      const since = settings.emitSinceOnFirstPoll;
      const sendIt = settings.emitExistingOnFirstPoll || (since !== undefined && Number(version) >= since);
      if (sendIt && events.created) changes.push(created(id, record, version, watch));
    } else if (before === undefined) {
      seen.push([id, now]);
      noteFuture(id, version);
      if (events.created) changes.push(created(id, record, version, watch));
    } else if (detection.kind !== 'updatedAt' ? before === now : !updatedAtChanged(version, splitRemembered(before, detection), contentDigest)) {
      seen.push([id, detection.kind === 'updatedAt' ? unchangedEntry(before, version, inWindow ? contentDigest() : undefined, digestFrom) : before]);
    } else {
      seen.push([id, now]);
      noteFuture(id, version);
      const remembered = splitRemembered(before, detection);
      const fieldChanges = watch && watched ? changedFields(watch, record, remembered.watched, watched) : undefined;
      // With watched fields, a new version that changed none of them is remembered but is no update to send.
      if (events.updated && (!watch || (fieldChanges && Object.keys(fieldChanges).length > 0))) {
        const change: DetectedChange = { event: 'updated', id, record, version };
        if (settings.includePrevious) {
          const previous = previousVersion(remembered.version, detection);
          if (previous !== undefined) change.previous = previous;
        }
        if (watch && fieldChanges) {
          change.changes = fieldChanges;
          change.previousValues = knownValues(watch, remembered.watched);
        }
        changes.push(change);
      }
    }
  }

  // Cap: least recently seen first, so the first entries are the ones to forget. Records missing once are
  // outside it: the next complete list decides about them (forgetting one now would lose its `deleted`), and
  // there are never more of them than the last poll remembered.
  const cap = rememberCap(settings.maxRemembered);
  if (seen.length - missing.length > cap) {
    stats.forgotten = seen.length - missing.length - cap;
    if (missing.length === 0) {
      seen = seen.slice(stats.forgotten);
    } else {
      const marked = new Set(missing);
      let excess = stats.forgotten;
      seen = seen.filter(([id]) => excess === 0 || marked.has(id) || (excess -= 1) < 0);
    }
  }

  const nextState: TriggerState = { version: 1, configKey: state.configKey, initialised: true, seen };
  if (watermark !== undefined) nextState.watermark = watermark;
  if (missing.length > 0) nextState.missing = missing;
  const result: DetectResult = { changes: changes.concat(deletions), next: nextState, stats };
  if (future) result.future = future;
  return result;
}

/** Whether two states mark the same ids as missing once (order does not matter). */
export function sameMissing(a: readonly string[] | undefined, b: readonly string[] | undefined): boolean {
  const left = a ?? [];
  const right = new Set(b);
  return left.length === right.size && left.every((id) => right.has(id));
}

/**
 * Watched fields ride along with the remembered version, after this separator: `<version>\u0000<entries>`,
 * entries a JSON array with one string per watched field: `=<JSON of the value>` when values are kept and the
 * JSON is at most MAX_KEPT_VALUE characters, else `#<digest>`. A version never contains U+0000.
 */
const WATCH_SEPARATOR = '\u0000';
/** Longest value JSON remembered as it is; longer values are remembered as a 16-character digest. */
export const MAX_KEPT_VALUE = 200;

/**
 * With updatedAt detection, a content digest rides along with the time of a record in the window, after this
 * mark: `<ms>#<digest>`, then the watched entries if any. Decimal ms never contain '#'; other detections keep
 * no digest (their version is not split, so a '#' in an ETag stays the ETag's).
 */
const DIGEST_MARK = '#';

/**
 * Whether `after` is the remembered entry `before` with only its content digest dropped (updatedAt detection): a
 * record that left the digest window. The poller does not write the state for that alone; the digest left on
 * disk is dropped with the next write, and until then it still tells a same-second change correctly.
 */
export function onlyDigestDropped(before: string, after: string, detection: TriggerSettings['detection']): boolean {
  if (detection.kind !== 'updatedAt' || before.length !== after.length + DIGEST_MARK.length + CONTENT_DIGEST_LENGTH) return false;
  const mark = before.indexOf(DIGEST_MARK);
  const watched = before.indexOf(WATCH_SEPARATOR);
  if (mark < 0 || (watched >= 0 && watched < mark)) return false;
  return after === before.slice(0, mark) + before.slice(mark + DIGEST_MARK.length + CONTENT_DIGEST_LENGTH);
}

interface RememberedParts {
  version: string;
  digest?: string;
  watched?: string[];
  /** The watched part as stored (separator included), or '': to rebuild the entry exactly. */
  watchedRaw: string;
}

function splitRemembered(stored: string, detection: TriggerSettings['detection']): RememberedParts {
  const at = stored.indexOf(WATCH_SEPARATOR);
  let head = at < 0 ? stored : stored.slice(0, at);
  const watchedRaw = at < 0 ? '' : stored.slice(at);
  let digest: string | undefined;
  const mark = detection.kind === 'updatedAt' ? head.indexOf(DIGEST_MARK) : -1;
  if (mark >= 0) {
    digest = head.slice(mark + 1);
    head = head.slice(0, mark);
  }
  const parts: RememberedParts = { version: head, watchedRaw };
  if (digest !== undefined) parts.digest = digest;
  if (at < 0) return parts;
  try {
    const watched: unknown = JSON.parse(stored.slice(at + 1));
    if (Array.isArray(watched)) parts.watched = watched.map(String);
  } catch {
    // A damaged watched part reads as none: every watched field then counts as changed once.
  }
  return parts;
}

function joinRemembered(version: string, digest: string | undefined, watchedRaw: string): string {
  return digest === undefined ? version + watchedRaw : version + DIGEST_MARK + digest + watchedRaw;
}

/**
 * The earliest updated-at (epoch ms) whose records keep a content digest, or undefined for none (detection not by
 * updated-at). With a watermark: the records the next poll may list again, from the earlier of the stored and
 * the new watermark (a poll cut at Max pages keeps the stored one, poller.ts) minus the overlap, floored to the
 * second (an `epoch-s` parameter is floored too). Without one every poll lists every record, but only a record
 * stamped in the second of a poll can be updated again within its second after that poll; the API's time is
 * its first page's Date header (whole seconds), or this machine's clock, and the API's records may be stamped
 * by another clock: from FUTURE_TOLERANCE_MS (ordinary skew) before the API's time (undefined without apiNow).
 */
function digestWindowStart(
  stored: number | undefined,
  next: number | undefined,
  settings: TriggerSettings,
  apiNow: number | undefined,
): number | undefined {
  if (settings.detection.kind !== 'updatedAt') return undefined;
  const floorSecond = (ms: number): number => Math.floor(ms / 1000) * 1000;
  if (settings.watermark) {
    const overlap = Number.isFinite(settings.watermark.overlapMs) && settings.watermark.overlapMs > 0 ? settings.watermark.overlapMs : 0;
    const from = stored === undefined ? next : next === undefined ? stored : Math.min(stored, next);
    // No watermark yet: this list was not filtered, and nothing in it had a time; keep no digest.
    return from === undefined ? undefined : floorSecond(from - overlap);
  }
  return typeof apiNow === 'number' && Number.isFinite(apiNow) ? floorSecond(apiNow - FUTURE_TOLERANCE_MS) : undefined;
}

/** updatedAt detection: a later time, or the same time with content other than the digest kept with it. */
function updatedAtChanged(version: string, before: RememberedParts, contentDigest: () => string | undefined): boolean {
  if (isLater(version, before.version)) return true;
  if (before.digest === undefined || Number(version) !== Number(before.version)) return false;
  const digest = contentDigest();
  return digest !== undefined && digest !== before.digest;
}

/**
 * The entry of a record listed with no change (updatedAt detection): as it was, with the digest of this list's
 * content when its time is the same and in the window, the kept digest when its time is older (a stale read: the
 * remembered time stays) and still in the window, and none past the window.
 */
function unchangedEntry(before: string, version: string, digest: string | undefined, digestFrom: number | undefined): string {
  const parts = splitRemembered(before, { kind: 'updatedAt', path: '' });
  const same = Number(version) === Number(parts.version);
  const keep = same ? digest : digestFrom !== undefined && Number(parts.version) >= digestFrom ? parts.digest : undefined;
  return joinRemembered(parts.version, keep, parts.watchedRaw);
}

function valueJson(value: unknown): string {
  return value === undefined ? 'null' : stableStringify(value);
}

function watchedEntries(record: unknown, watch: WatchSettings): string[] {
  return watch.fields.map((field) => {
    const json = valueJson(readPath(record, field));
    return watch.keepValues && json.length <= MAX_KEPT_VALUE ? `=${json}` : `#${fingerprint(json)}`;
  });
}

function decodeEntry(entry: string | undefined): { known: boolean; value?: unknown } {
  if (entry === undefined || !entry.startsWith('=')) return { known: false };
  try {
    return { known: true, value: JSON.parse(entry.slice(1)) };
  } catch {
    return { known: false };
  }
}

/** The watched fields whose remembered entry differs: previous value (when kept) and new value. */
function changedFields(watch: WatchSettings, record: unknown, before: string[] | undefined, now: string[]): Record<string, FieldChange> {
  const out: Record<string, FieldChange> = {};
  watch.fields.forEach((field, index) => {
    if (before && before[index] === now[index]) return;
    const change: FieldChange = { value: readPath(record, field) };
    const previous = decodeEntry(before?.[index]);
    if (previous.known) change.previous = previous.value;
    Object.defineProperty(out, field, { value: change, enumerable: true, writable: true, configurable: true });
  });
  return out;
}

/** Previous values of the watched fields, where they were kept ($previous in a condition). */
function knownValues(watch: WatchSettings, before: string[] | undefined): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  watch.fields.forEach((field, index) => {
    const previous = decodeEntry(before?.[index]);
    if (previous.known) setPath(out, field, previous.value);
  });
  return out;
}

/** Writes `value` at a dot path, creating plain objects (a `__proto__` segment stays a plain key). */
function setPath(target: Record<string, unknown>, path: string, value: unknown): void {
  const segments = path.split('.');
  let level = target;
  segments.forEach((segment, i) => {
    const last = i === segments.length - 1;
    const existing = Object.prototype.hasOwnProperty.call(level, segment) ? level[segment] : undefined;
    const next = last ? value : existing && typeof existing === 'object' ? existing : {};
    Object.defineProperty(level, segment, { value: next, enumerable: true, writable: true, configurable: true });
    level = next as Record<string, unknown>;
  });
}

function created(id: string, record: unknown, version: string, watch: WatchSettings | undefined): DetectedChange {
  const change: DetectedChange = { event: 'created', id, record, version };
  if (watch) change.previousValues = {};
  return change;
}

/** updatedAt versions are decimal ms; a remembered value that is not one (damaged state) counts as older. */
function isLater(version: string, before: string): boolean {
  const previous = Number(before);
  return Number.isNaN(previous) || Number(version) > previous;
}

/** maxRemembered as a count: at least 1; a missing or non-numeric value means no cap. */
function rememberCap(value: number): number {
  if (typeof value !== 'number' || Number.isNaN(value)) return Infinity;
  return Math.max(1, Math.floor(value));
}

/** What a deleted record is known by: its id at idPath (`a.b` → { a: { b: id } }). */
function deletedRecord(idPath: string, id: string): unknown {
  const segments = idPath.trim() === '' ? [] : idPath.trim().split('.');
  let record: unknown = id;
  for (let i = segments.length - 1; i >= 0; i--) {
    // defineProperty: a segment such as "__proto__" must stay a plain key.
    const level = {};
    Object.defineProperty(level, segments[i], { value: record, enumerable: true, writable: true, configurable: true });
    record = level;
  }
  return record;
}
