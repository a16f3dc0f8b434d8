/**
 * Held messages outlive the process (hold-queue.ts), so they are kept as text: JSON, with Buffers (a binary
 * payload) kept as base64 under a tag no JSON a flow builds has, and what cannot outlive the process left out:
 * functions, symbols, `msg.req` / `msg.res` (an http-in request's live objects) and repeated references (a
 * second path to the same object is dropped, so a cycle cannot stop a message from being held).
 */

/** The tag of a Buffer in the text; its value is the bytes in base64. */
const BUFFER_TAG = '\u0000buffer';
/** Top-level properties that are live objects of the process (the http in / http response pair). */
const LIVE_PROPERTIES = new Set(['req', 'res']);

function encodeValue(value: unknown, seen: Set<object>): unknown {
  if (value === null || typeof value === 'string' || typeof value === 'boolean') return value;
  if (typeof value === 'number') return Number.isFinite(value) ? value : null;
  if (typeof value === 'bigint') return value.toString();
  if (typeof value !== 'object') return undefined; // functions, symbols, undefined
  if (Buffer.isBuffer(value)) return { [BUFFER_TAG]: value.toString('base64') };
  if (value instanceof Date) return Number.isNaN(value.getTime()) ? null : value.toISOString();
  if (seen.has(value)) return undefined;
  seen.add(value);
  try {
    if (Array.isArray(value)) return value.map((item) => encodeValue(item, seen) ?? null);
    const toJSON = (value as { toJSON?: unknown }).toJSON;
    if (typeof toJSON === 'function') return encodeValue((toJSON as () => unknown).call(value), seen);
    const out: Record<string, unknown> = {};
    for (const [key, item] of Object.entries(value)) {
      const encoded = encodeValue(item, seen);
      if (encoded !== undefined) Object.defineProperty(out, key, { value: encoded, enumerable: true, writable: true, configurable: true });
    }
    return out;
  } finally {
    seen.delete(value);
  }
}

/** The message as text that decodeMessage turns back into an equal message (less what cannot be kept). */
export function encodeMessage(msg: Record<string, unknown>): string {
  const seen = new Set<object>([msg]);
  const out: Record<string, unknown> = {};
  for (const [key, item] of Object.entries(msg)) {
    if (LIVE_PROPERTIES.has(key)) continue;
    const encoded = encodeValue(item, seen);
    if (encoded !== undefined) Object.defineProperty(out, key, { value: encoded, enumerable: true, writable: true, configurable: true });
  }
  return JSON.stringify(out);
}

function decodeValue(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(decodeValue);
  if (value === null || typeof value !== 'object') return value;
  const record = value as Record<string, unknown>;
  const keys = Object.keys(record);
  if (keys.length === 1 && keys[0] === BUFFER_TAG && typeof record[BUFFER_TAG] === 'string') return Buffer.from(record[BUFFER_TAG], 'base64');
  // defineProperty, not assignment: a key "__proto__" (JSON.parse makes it an own property) stays a key.
  for (const key of keys) Object.defineProperty(record, key, { value: decodeValue(record[key]), enumerable: true, writable: true, configurable: true });
  return record;
}

/** The message encodeMessage kept. Throws on text that is not a kept message (a damaged entry). */
export function decodeMessage(text: string): Record<string, unknown> {
  const value: unknown = JSON.parse(text);
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new Error('a held message is not an object');
  return decodeValue(value) as Record<string, unknown>;
}
