/**
 * A record's identity and version, and the short digests the trigger remembers instead of records (state stays
 * small and never holds the data itself).
 */
import { createHash } from 'node:crypto';
import { readPath } from '../http/records';
import { parseTimestamp } from './timestamps';
import type { ChangeDetection } from './types';

/** Bytes of SHA-256 kept: 96 bits, so a changed version going unnoticed by collision is out of reach. */
const FINGERPRINT_BYTES = 12;
/** base64url length of FINGERPRINT_BYTES (no padding: 12 bytes is a multiple of 3). */
export const FINGERPRINT_LENGTH = 16;

/**
 * Bytes of SHA-256 in the content digest updated-at detection keeps for records that may be listed again
 * within their second (detect.ts): 48 bits, 8 base64url characters. It only has to tell two contents of one
 * record apart, so a change goes unnoticed with odds of 1 in 2^48; the short form keeps such an entry small.
 */
export const CONTENT_DIGEST_BYTES = 6;
/** base64url length of CONTENT_DIGEST_BYTES. */
export const CONTENT_DIGEST_LENGTH = 8;

/** A fixed-size digest of `input`: `bytes` of its SHA-256 in base64url (16 characters by default). */
export function fingerprint(input: string, bytes: number = FINGERPRINT_BYTES): string {
  return createHash('sha256').update(input, 'utf8').digest().subarray(0, bytes).toString('base64url');
}

/**
 * JSON text of `value` that does not depend on key order: object keys sorted (by UTF-16 code units, the same
 * on every machine and locale) at every depth, arrays in order. Follows JSON.stringify otherwise: `toJSON` is
 * used (Dates become ISO strings), properties that are undefined, functions or symbols are left out (and are
 * null inside arrays), non-finite numbers are null. A bigint is written as its digits (JSON.stringify would
 * throw). A cycle throws a TypeError, as JSON.stringify does.
 */
export function stableStringify(value: unknown): string {
  const out: string[] = [];
  write(value, out, new Set());
  return out.join('');
}

/** Appends `value`; returns false when it has no JSON form (undefined, function, symbol) and nothing was written. */
function write(value: unknown, out: string[], stack: Set<object>): boolean {
  if (value !== null && typeof value === 'object' && typeof (value as { toJSON?: unknown }).toJSON === 'function') {
    value = (value as { toJSON: () => unknown }).toJSON();
  }
  switch (typeof value) {
    case 'string':
      out.push(JSON.stringify(value));
      return true;
    case 'number':
      out.push(Number.isFinite(value) ? JSON.stringify(value) : 'null');
      return true;
    case 'boolean':
      out.push(value ? 'true' : 'false');
      return true;
    case 'bigint':
      out.push(value.toString());
      return true;
    case 'undefined':
    case 'function':
    case 'symbol':
      return false;
  }
  if (value === null) {
    out.push('null');
    return true;
  }
  const object = value as object;
  if (stack.has(object)) throw new TypeError('stableStringify: the value contains a cycle');
  stack.add(object);
  if (Array.isArray(object)) {
    out.push('[');
    object.forEach((item: unknown, index) => {
      if (index > 0) out.push(',');
      if (!write(item, out, stack)) out.push('null');
    });
    out.push(']');
  } else {
    out.push('{');
    let first = true;
    for (const key of Object.keys(object).sort()) {
      const mark = out.length;
      out.push(first ? '' : ',', JSON.stringify(key), ':');
      if (write((object as Record<string, unknown>)[key], out, stack)) first = false;
      else out.length = mark;
    }
    out.push('}');
  }
  stack.delete(object);
  return true;
}

/** Why a record could not be used. */
export type RecordSkip = 'noId' | 'invalidVersion';

export type RecordReading = { id: string; version: string } | { skip: RecordSkip; id?: string };

/**
 * A record's id as the state keys it: a non-empty string, or a finite number written in decimal (so `7` and
 * `"7"` are the same record, as they are in most APIs' URLs). Anything else: undefined.
 */
export function recordId(record: unknown, idPath: string): string | undefined {
  const value = readPath(record, idPath);
  if (typeof value === 'string') return value === '' ? undefined : value;
  if (typeof value === 'number' && Number.isFinite(value)) return String(value);
  return undefined;
}

/**
 * Id and version of a record, or why it cannot be used (with the id when that much was found: a present record
 * whose version cannot be read must not look deleted, see detect.ts).
 *
 * Versions: updatedAt → the time in epoch ms as a decimal string (parseTimestamp); version → String(value) as
 * it is (ETags keep their quotes and W/ prefix: any difference is a change), a missing, null, object or empty
 * value is invalid; hash → fingerprint of stableStringify(record), invalid only for a cyclic record.
 */
export function readRecord(record: unknown, detection: ChangeDetection, idPath: string): RecordReading {
  const id = recordId(record, idPath);
  if (id === undefined) return { skip: 'noId' };
  switch (detection.kind) {
    case 'updatedAt': {
      const ms = parseTimestamp(readPath(record, detection.path));
      return ms === undefined ? { skip: 'invalidVersion', id } : { id, version: String(ms) };
    }
    case 'version': {
      const value = readPath(record, detection.path);
      const ok = typeof value === 'string' ? value !== '' : typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint';
      return ok ? { id, version: String(value) } : { skip: 'invalidVersion', id };
    }
    case 'hash': {
      const version = contentFingerprint(record);
      return version === undefined ? { skip: 'invalidVersion', id } : { id, version };
    }
  }
}

/**
 * The fingerprint of a record's whole content (stableStringify: key order does not matter), or undefined for a
 * cyclic record (JSON bodies have none, but a JSONata result or a test might). The version of hash detection
 * (16 characters), and with CONTENT_DIGEST_BYTES the content digest updated-at detection keeps for records that
 * may be listed again within their second (detect.ts).
 */
export function contentFingerprint(record: unknown, bytes: number = FINGERPRINT_BYTES): string | undefined {
  try {
    return fingerprint(stableStringify(record), bytes);
  } catch {
    return undefined;
  }
}

/** `readRecord` without the reason: undefined when the record is skipped (no id, or an unreadable version). */
export function recordVersion(record: unknown, detection: ChangeDetection, idPath: string): { id: string; version: string } | undefined {
  const reading = readRecord(record, detection, idPath);
  return 'skip' in reading ? undefined : reading;
}

/** Marks a version remembered as it is (short enough); a digest is base64url and never contains '='. */
const LITERAL_MARK = '=';

/**
 * The form of a version kept in state, at most 16 characters whatever the version:
 *
 * - updatedAt: the decimal ms as it is (at most 16 characters). Not a digest, because an update must be
 *   compared as older or newer, not only as different (see detect.ts).
 * - hash: the version is already a 16-character fingerprint.
 * - version: '=' + the value when it fits in 16 characters (so msg.previous can give the old version back),
 *   else its fingerprint (long ETags and revision strings; msg.previous is then not available).
 */
export function rememberedVersion(version: string, detection: ChangeDetection): string {
  if (detection.kind !== 'version') return version;
  return version.length < FINGERPRINT_LENGTH ? LITERAL_MARK + version : fingerprint(version);
}

/** The version value behind a remembered form, when it can be known (see rememberedVersion). */
export function previousVersion(remembered: string, detection: ChangeDetection): string | undefined {
  if (detection.kind !== 'version') return remembered;
  return remembered.startsWith(LITERAL_MARK) ? remembered.slice(LITERAL_MARK.length) : undefined;
}
