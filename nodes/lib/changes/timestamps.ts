/**
 * Updated-at values as APIs send them, read into one comparable number (epoch milliseconds), and written back
 * in the form a list endpoint's "updated since" parameter expects.
 */

/**
 * Numbers below this magnitude are epoch seconds, at or above it epoch milliseconds. 1e11 seconds is the year
 * 5138 and 1e11 milliseconds is March 1973: no API stamps records before 1973 in milliseconds nor after 5138 in
 * seconds, so the two ranges cannot be confused in practice. Microsecond or nanosecond integers are not
 * recognised (they would read as milliseconds far in the future); such APIs need version or hash detection.
 */
export const EPOCH_SECONDS_LIMIT = 1e11;

export type TimestampFormat = 'iso' | 'epoch-s' | 'epoch-ms';

/** Date.UTC accepts years up to ±275760; keep within the range a Date can represent. */
const MAX_DATE_MS = 8.64e15;

/**
 * ISO 8601 extended (`2024-05-01T12:30:00.123Z`), the basic form (`20240501T123000Z`) and RFC 3339's space
 * separator. Seconds, fractions and the zone are optional; a date alone is midnight.
 */
const ISO_EXTENDED =
  /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?)?\s*(Z|[+-]\d{2}(?::?\d{2})?)?$/i;
const ISO_BASIC = /^(\d{4})(\d{2})(\d{2})(?:T(\d{2})(\d{2})(?:(\d{2})(?:[.,](\d+))?)?)?(Z|[+-]\d{2}(?:\d{2})?)?$/i;
const NUMERIC = /^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:e[+-]?\d+)?$/i;

/**
 * Epoch milliseconds from an updated-at value, or undefined when it is not one:
 *
 * - ISO 8601 strings, with a zone (`Z`, `+02:00`, `+0200`, `+02`) or without one. Without a zone the time is
 *   read as UTC, not as the machine's local time (which is what `Date.parse` does): the server wrote it, the
 *   Node-RED host's time zone says nothing about it, and a result that changed with the host's zone (or its
 *   daylight-saving switch) would make the same record look updated. Fractions beyond milliseconds are
 *   truncated, so two updates within one millisecond look the same.
 * - Numbers and numeric strings: epoch seconds when |value| < 1e11, else epoch milliseconds (see
 *   EPOCH_SECONDS_LIMIT). Fractional seconds are kept to the millisecond. An all-digit string is always a
 *   number, so the basic-form date alone (`20240501`) reads as epoch seconds; with a time (`20240501T1230Z`)
 *   it is ISO.
 * - Date objects (valid ones).
 *
 * Anything else (other date formats, booleans, objects, out-of-range or impossible dates such as 2024-02-30)
 * gives undefined: guessing would invent versions.
 */
export function parseTimestamp(value: unknown): number | undefined {
  if (typeof value === 'number') return fromEpochNumber(value);
  if (value instanceof Date) {
    const ms = value.getTime();
    return Number.isFinite(ms) ? ms : undefined;
  }
  if (typeof value !== 'string') return undefined;
  const text = value.trim();
  if (text === '') return undefined;
  if (NUMERIC.test(text)) return fromEpochNumber(Number(text));
  const match = ISO_EXTENDED.exec(text) ?? ISO_BASIC.exec(text);
  return match ? fromIsoParts(match) : undefined;
}

function fromEpochNumber(value: number): number | undefined {
  if (!Number.isFinite(value)) return undefined;
  const ms = Math.abs(value) < EPOCH_SECONDS_LIMIT ? value * 1000 : value;
  // Floor, not round: a version must never move later than what the server wrote (see watermark.ts).
  const whole = Math.floor(ms);
  return Math.abs(whole) <= MAX_DATE_MS ? whole : undefined;
}

function fromIsoParts(match: RegExpExecArray): number | undefined {
  const [, y, mo, d, h = '0', mi = '0', s = '0', fraction = '', zone = ''] = match;
  const year = Number(y);
  const month = Number(mo);
  const day = Number(d);
  const hour = Number(h);
  const minute = Number(mi);
  const second = Number(s);
  if (month < 1 || month > 12 || day < 1 || day > 31) return undefined;
  // 24:00 is midnight at the end of the day in ISO 8601; a leap second (60) is read as the next second.
  if (hour > 24 || (hour === 24 && (minute > 0 || second > 0 || /[1-9]/.test(fraction)))) return undefined;
  if (minute > 59 || second > 60) return undefined;
  const millis = Number(fraction.slice(0, 3).padEnd(3, '0'));
  const base = Date.UTC(year, month - 1, day, 0, 0, 0, 0);
  // Date.UTC rolls 2024-02-30 over to March: refuse days the month does not have.
  if (new Date(base).getUTCDate() !== day) return undefined;
  let ms = base + ((hour * 60 + minute) * 60 + second) * 1000 + millis;
  const offset = zoneOffsetMs(zone);
  if (offset === undefined) return undefined;
  ms -= offset;
  return Number.isFinite(ms) && Math.abs(ms) <= MAX_DATE_MS ? ms : undefined;
}

/** Offset of a zone designator in ms east of UTC; '' (no zone) is UTC, see parseTimestamp. */
function zoneOffsetMs(zone: string): number | undefined {
  if (zone === '' || zone.toUpperCase() === 'Z') return 0;
  const sign = zone.startsWith('-') ? -1 : 1;
  const digits = zone.slice(1).replace(':', '');
  const hours = Number(digits.slice(0, 2));
  const minutes = digits.length > 2 ? Number(digits.slice(2, 4)) : 0;
  if (hours > 23 || minutes > 59) return undefined;
  return sign * (hours * 60 + minutes) * 60_000;
}

/**
 * Writes epoch ms for a query parameter: `iso` (toISOString, always UTC with milliseconds), `epoch-s` and
 * `epoch-ms` as integer strings. Seconds are floored: the value sent as "updated since" may be earlier than the
 * watermark, never later, so a record updated within that second is still listed.
 */
export function formatTimestamp(ms: number, format: TimestampFormat): string {
  if (!Number.isFinite(ms) || Math.abs(ms) > MAX_DATE_MS) throw new RangeError('formatTimestamp: not a representable time');
  switch (format) {
    case 'iso':
      return new Date(Math.floor(ms)).toISOString();
    case 'epoch-s':
      return String(Math.floor(ms / 1000));
    case 'epoch-ms':
      return String(Math.floor(ms));
  }
}
