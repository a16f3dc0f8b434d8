/** Shapes of the record-change trigger's engine. Plain data, no Node-RED, no network handles. */

export type ChangeEvent = 'created' | 'updated' | 'deleted';

/** How a record's change is detected. Paths are dot paths into the record (`meta.updatedAt`). */
export type ChangeDetection =
  /** An updated-at property: ISO 8601 string, epoch seconds or epoch milliseconds. */
  | { kind: 'updatedAt'; path: string }
  /** A version number, revision or ETag property: any change of its value is a change. */
  | { kind: 'version'; path: string }
  /** A stable hash of the record's whole content (key order does not matter). */
  | { kind: 'hash' };

export interface WatermarkSettings {
  /** Query parameter that carries the watermark (for example `updated_since`). */
  param: string;
  /** Sent watermark = newest updated-at seen minus this overlap, so late writes inside it are not lost. */
  overlapMs: number;
  format: 'iso' | 'epoch-s' | 'epoch-ms';
}

/** Field-level changes: which properties of a record matter. */
export interface WatchSettings {
  /** Dot paths of the watched properties (`status`, `owner.id`). */
  fields: string[];
  /**
   * Remember the watched values themselves (each up to a bounded size; longer ones as a digest), so that
   * msg.changes carries previous values and a condition can read them as $previous. Otherwise only a digest of
   * each value is remembered: msg.changes then says which fields changed and their new values.
   */
  keepValues: boolean;
}

export interface TriggerSettings {
  /** Dot path of the record id (default `id`). */
  idPath: string;
  detection: ChangeDetection;
  events: { created: boolean; updated: boolean; deleted: boolean };
  /** First poll: false (default) remembers what exists and emits nothing; true emits everything as created. */
  emitExistingOnFirstPoll: boolean;
  /**
   * First poll: emit as created the records updated at or after this time (epoch ms; detection by updated-at),
   * remember the rest. A sync started from a known point.
   */
  emitSinceOnFirstPoll?: number;
  /** Put the previous version (updated-at or version value) in msg.previous on updates. */
  includePrevious: boolean;
  /** Cap on remembered records; the least recently seen are forgotten first. */
  maxRemembered: number;
  /** Incremental polling; only with detection kind updatedAt. */
  watermark?: WatermarkSettings;
  /** With watched fields, an update is emitted only when one of them changed. */
  watch?: WatchSettings;
}

/** One watched field's change, as msg.changes carries it. `previous` is absent when only a digest was kept. */
export interface FieldChange {
  previous?: unknown;
  value: unknown;
}

export interface DetectedChange {
  event: ChangeEvent;
  id: string;
  /** The record; for `deleted`, the last thing known about it: `{ [idPath]: id }`. */
  record: unknown;
  /** The version this change brings (normalised updated-at ms as a string, the version value, or the hash). */
  version?: string;
  /** The version remembered before, on `updated` (only when includePrevious). */
  previous?: string;
  /** With watched fields, on `updated`: each changed watched field (msg.changes). */
  changes?: Record<string, FieldChange>;
  /** With watched fields: the previous values known of every watched field ($previous for a condition). */
  previousValues?: Record<string, unknown>;
  /** msg.changeKey (change-key.ts): set by the poller just before the change is sent. */
  key?: string;
}

/**
 * When a poll's memory is recorded against when its messages go out (poller.ts):
 * - 'at-least-once' (default): after the messages reached the next nodes; a crash in between sends them again;
 * - 'at-most-once': before they are sent; a crash in between loses them, nothing is ever sent twice.
 */
export type DeliveryMode = 'at-least-once' | 'at-most-once';

/**
 * Records listed with an updated-at further ahead of the API's clock than FUTURE_TOLERANCE_MS (watermark.ts), among
 * those one poll newly remembered: how many, and the first of them.
 */
export interface FutureTimestamps {
  count: number;
  id: string;
  /** Its updated-at (epoch ms). */
  updatedAt: number;
  /** The API's time at the poll (epoch ms). */
  apiNow: number;
}

/**
 * What a trigger remembers between polls. `seen` keeps [id, fingerprint] pairs, least recently seen first;
 * a fingerprint is a short fixed-size digest of the version (never the record). `configKey` is a digest of
 * the settings that decide what is watched (URL, query, id path, detection): a change of it resets the state.
 */
export interface TriggerState {
  version: 1;
  configKey: string;
  /** False until the first successful poll has been committed. */
  initialised: boolean;
  /** Newest updated-at seen (epoch ms), for incremental polling. */
  watermark?: number;
  seen: Array<[string, string]>;
  /** A list read over several polls: set while polls are cut at Max pages, gone once one reaches the list's end. */
  continuation?: Continuation;
  /**
   * Ids in `seen` that the last complete list did not include (detect.ts): one more complete list without them
   * and they are deleted. Absent when none is missing, so a memory costs nothing more while no record is.
   */
  missing?: string[];
}

/**
 * Where a poll cut at Max pages stopped, so the next poll reads on from there (poller.ts). Plain data: it is
 * stored with the rest of the state, so a restart goes on from the same point.
 */
export interface Continuation {
  /** Digest of the pagination settings it was made with: another pagination discards it. */
  key: string;
  /** The query of the episode's first poll (its `since`): every poll of the episode asks with it. */
  query: Record<string, string>;
  /** The next page to read (pagination.ts ResumePoint); absent: from the first page again (the list looped). */
  next?: { url: string; pages: number; offset: number; body?: unknown };
  /** Pages read in this episode so far. */
  pages: number;
  /** Polls in a row that read nothing new: the same continuation point, or a next link already followed. */
  stalled: number;
  /** The API's time at the episode's first poll (epoch ms): bounds the watermark once the list is read. */
  apiStart: number;
  /** Newest updated-at read in this episode (epoch ms), bounded as detectChanges bounds it. */
  watermark?: number;
  /** Digests of the continuation points of this episode (at most CONTINUATION_POINTS), to see a loop across polls. */
  points: string[];
}
