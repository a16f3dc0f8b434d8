import { constants } from 'node:buffer';
import querystring from 'node:querystring';
import { OAuth2Error } from '../errors';

/** What to do with msg.payload for GET (and HEAD / DELETE), as the core node's "payload" option. */
export type PayToQs = 'ignore' | 'query' | 'body';

export type ResponseMode = 'txt' | 'bin' | 'obj' | 'auto';

export type HeaderMap = Record<string, string | string[]>;

export interface EncodedRequest {
  /** The request URL, with the payload appended to the query in 'query' mode. */
  url: URL;
  /** The caller's headers, with Content-Type set or replaced where the encoding decides it. */
  headers: HeaderMap;
  /** A re-sendable body (retries and 307/308 send it again), or undefined for none. */
  body?: Buffer;
}

/** The core node's multipart part shape: `{ value, options: { filename, contentType } }`. */
interface MultipartPart {
  value: unknown;
  options?: { filename?: string; contentType?: string } | string;
}

const NO_BODY_BY_DEFAULT = new Set(['GET', 'HEAD']);
const QUERY_CAPABLE = new Set(['GET', 'HEAD', 'DELETE']);

/**
 * Encodes msg.payload as the core `http request` node does:
 * - GET/HEAD (and DELETE) with paytoqs 'query': an object payload's keys are appended to the query string;
 * - GET with paytoqs 'body': the payload is sent as a body (JSON for objects);
 * - other methods (and DELETE unless 'query'): Buffer as is, string as UTF-8, number as text, object as JSON
 *   (Content-Type application/json unless given), or form-encoded when Content-Type is
 *   application/x-www-form-urlencoded, or multipart when it is multipart/form-data (the boundary is ours).
 * Content-Length / Transfer-Encoding from the caller are dropped: the body is ours, so is its length.
 * @throws OAuth2Error OAUTH2_INVALID_INPUT field 'payload' when the payload cannot be encoded.
 */
export async function encodeRequest(
  method: string,
  url: URL,
  headers: HeaderMap,
  payload: unknown,
  paytoqs: PayToQs = 'ignore',
): Promise<EncodedRequest> {
  const m = method.toUpperCase();
  const out: HeaderMap = {};
  for (const [name, value] of Object.entries(headers)) {
    const lower = name.toLowerCase();
    if (lower === 'content-length' || lower === 'transfer-encoding') continue;
    out[name] = value;
  }
  const target = new URL(url.href);
  if (payload === undefined) return { url: target, headers: out };

  if (QUERY_CAPABLE.has(m) && paytoqs === 'query') {
    if (payload === null || typeof payload !== 'object' || Buffer.isBuffer(payload)) {
      throw invalidPayload('payload must be an object to be sent as query parameters');
    }
    let qs: string;
    try {
      qs = querystring.stringify(payload as querystring.ParsedUrlQueryInput);
    } catch {
      throw invalidPayload('payload cannot be encoded as query parameters');
    }
    if (qs !== '') target.search = target.search.length > 1 ? `${target.search}&${qs}` : `?${qs}`;
    return { url: target, headers: out };
  }
  if (NO_BODY_BY_DEFAULT.has(m) && !(m === 'GET' && paytoqs === 'body')) {
    return { url: target, headers: out };
  }
  const body = await encodePayload(payload, out);
  return { url: target, headers: out, body };
}

async function encodePayload(payload: unknown, headers: HeaderMap): Promise<Buffer> {
  if (Buffer.isBuffer(payload)) return payload;
  if (typeof payload === 'string') return Buffer.from(payload, 'utf8');
  if (typeof payload === 'number' || typeof payload === 'boolean' || typeof payload === 'bigint') {
    return Buffer.from(String(payload), 'utf8');
  }
  if (payload instanceof Uint8Array) return Buffer.from(payload);
  const ctName = findHeader(headers, 'content-type');
  const mediaType = ctName === undefined ? '' : mediaTypeOf(headers[ctName]);
  if (payload !== null && typeof payload === 'object' && mediaType === 'multipart/form-data') {
    const { body, contentType } = await encodeMultipart(payload as Record<string, unknown>);
    if (ctName !== undefined) delete headers[ctName];
    headers['Content-Type'] = contentType;
    return body;
  }
  if (payload !== null && typeof payload === 'object' && mediaType === 'application/x-www-form-urlencoded') {
    try {
      return Buffer.from(querystring.stringify(payload as querystring.ParsedUrlQueryInput), 'utf8');
    } catch {
      throw invalidPayload('payload cannot be form-encoded');
    }
  }
  let json: string | undefined;
  try {
    json = JSON.stringify(payload);
  } catch {
    // BigInt inside, a cycle, or a throwing toJSON.
    throw invalidPayload('payload cannot be converted to JSON');
  }
  if (json === undefined) throw invalidPayload('payload cannot be converted to JSON');
  if (ctName === undefined) headers['Content-Type'] = 'application/json';
  return Buffer.from(json, 'utf8');
}

/** Multipart via Node's own FormData (spec-compliant boundary and escaping), flattened into a re-sendable Buffer. */
async function encodeMultipart(fields: Record<string, unknown>): Promise<{ body: Buffer; contentType: string }> {
  const form = new FormData();
  for (const name of Object.keys(fields)) {
    const value = fields[name];
    if (value === undefined || value === null) continue;
    if (typeof value === 'string') {
      form.append(name, value);
    } else if (Buffer.isBuffer(value) || value instanceof Uint8Array) {
      // A bare Buffer is a file part (like the core node); the field name stands in for the missing file name.
      form.append(name, new Blob([new Uint8Array(value)], { type: 'application/octet-stream' }), name);
    } else if (isPart(value)) {
      const options = typeof value.options === 'string' ? { filename: value.options } : value.options ?? {};
      const filename = typeof options.filename === 'string' && options.filename !== '' ? options.filename : undefined;
      const contentType = typeof options.contentType === 'string' ? options.contentType : undefined;
      const v = value.value;
      if (Buffer.isBuffer(v) || v instanceof Uint8Array) {
        form.append(name, new Blob([new Uint8Array(v)], { type: contentType ?? 'application/octet-stream' }), filename ?? name);
      } else {
        const text = typeof v === 'string' ? v : safeJson(v);
        if (filename !== undefined || contentType !== undefined) {
          form.append(name, new Blob([text], { type: contentType ?? 'text/plain' }), filename ?? name);
        } else {
          form.append(name, text);
        }
      }
    } else {
      form.append(name, safeJson(value));
    }
  }
  const response = new Response(form);
  const body = Buffer.from(await response.arrayBuffer());
  const contentType = response.headers.get('content-type') ?? 'multipart/form-data';
  return { body, contentType };
}

function isPart(value: unknown): value is MultipartPart {
  return typeof value === 'object' && value !== null && Object.prototype.hasOwnProperty.call(value, 'value');
}

function safeJson(value: unknown): string {
  let text: string | undefined;
  try {
    text = JSON.stringify(value);
  } catch {
    throw invalidPayload('a multipart field cannot be converted to JSON');
  }
  return text ?? String(value);
}

function invalidPayload(reason: string): OAuth2Error {
  return new OAuth2Error('OAUTH2_INVALID_INPUT', `Invalid msg.payload: ${reason}`, { params: { field: 'payload', reason } });
}

/** The name under which `wanted` (lower case) is set in `headers`, whatever its case. */
export function findHeader(headers: Record<string, unknown>, wanted: string): string | undefined {
  return Object.keys(headers).find((name) => name.toLowerCase() === wanted);
}

/** `Text/HTML; charset=x` → `text/html`. */
export function mediaTypeOf(contentType: string | readonly string[] | undefined): string {
  const raw = Array.isArray(contentType) ? contentType[0] : contentType;
  if (typeof raw !== 'string') return '';
  return raw.split(';')[0].trim().toLowerCase();
}

function charsetOf(contentType: string | undefined): string | undefined {
  if (!contentType) return undefined;
  const match = /;\s*charset\s*=\s*"?([^";\s]+)"?/i.exec(contentType);
  return match ? match[1].toLowerCase() : undefined;
}

/** One megabyte as the size settings count it (1,048,576 bytes). */
export const MB = 1024 * 1024;

/**
 * The decoded size a response may have unless the node says otherwise. A response becomes msg.payload (and,
 * parsed as JSON, several times its size in memory), so the cap is where a body stops being a message and
 * starts being a file: ten times Node-RED's own 5 MB limit for bodies it receives (apiMaxLength), far above a
 * page of API records, yet a compressed answer that expands to gigabytes cannot take the runtime down.
 */
export const DEFAULT_MAX_RESPONSE_MB = 50;

/**
 * The "Max response size (MB)" setting in bytes: empty means the default; NaN when it is not a number above 0
 * (the request then fails naming the field). Never more than a Buffer can hold.
 */
export function maxResponseBytes(setting: unknown): number {
  if (setting === undefined || setting === null || (typeof setting === 'string' && setting.trim() === '')) return DEFAULT_MAX_RESPONSE_MB * MB;
  const mb = typeof setting === 'number' ? setting : typeof setting === 'string' ? Number(setting.trim()) : NaN;
  if (!Number.isFinite(mb) || mb <= 0) return NaN;
  return Math.min(constants.MAX_LENGTH, Math.max(1, Math.floor(mb * MB)));
}

/**
 * Reads a body stream into one Buffer, counting the bytes as they come (after decompression when the stream
 * decodes) and stopping as soon as they pass `maxBytes`: leaving the loop destroys a Node stream and cancels a
 * web stream, so a small compressed answer that would expand to gigabytes costs no more than the cap.
 * Resolves `undefined` when the cap was passed.
 */
export async function readCapped(source: AsyncIterable<Uint8Array>, maxBytes: number): Promise<Buffer | undefined> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of source) {
    total += chunk.byteLength;
    if (total > maxBytes) return undefined;
    chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength));
  }
  return chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, total);
}

export interface DecodedBody {
  body: string | Buffer | unknown;
  /**
   * Set when the body was meant to be JSON but is not: the body is then the text, as the core node does in
   * 'obj' mode. The value is the error code, so the adapter can warn with the catalog key `errors.<code>`.
   */
  decodeWarning?: 'OAUTH2_RESPONSE_DECODE_FAILED';
}

export interface DecodeOptions {
  /** Throw OAUTH2_RESPONSE_DECODE_FAILED instead of keeping the text when 'obj' / JSON parsing fails. */
  strict?: boolean;
  /** The response status: the core node turns an empty 204 into {} in 'obj' mode. */
  statusCode?: number;
}

/**
 * Decodes a response body:
 * - 'bin': the Buffer; 'txt': text (the charset parameter when Node knows it, else UTF-8, as core);
 * - 'obj': parsed JSON (empty body or 204 gives {} like core); invalid JSON keeps the text and sets decodeWarning;
 * - 'auto': JSON media types (application/json, *+json) parsed as 'obj'; text/*, XML, JavaScript, form
 *   and anything with a charset as text; everything else a Buffer.
 */
export function decodeBody(
  buffer: Buffer,
  contentType: string | readonly string[] | undefined,
  mode: ResponseMode,
  options: DecodeOptions = {},
): DecodedBody {
  const ct = Array.isArray(contentType) ? contentType[0] : (contentType as string | undefined);
  switch (mode) {
    case 'bin':
      return { body: buffer };
    case 'txt':
      return { body: toText(buffer, ct) };
    case 'obj':
      return parseJson(buffer, ct, options, true);
    case 'auto':
    default: {
      const media = mediaTypeOf(ct);
      if (isJsonMediaType(media)) return parseJson(buffer, ct, options, false);
      if (isTextMediaType(media) || charsetOf(ct) !== undefined) return { body: toText(buffer, ct) };
      return { body: buffer };
    }
  }
}

function parseJson(buffer: Buffer, ct: string | undefined, options: DecodeOptions, emptyIsObject: boolean): DecodedBody {
  const text = toText(buffer, ct);
  if (text.trim() === '') {
    // Core: 'obj' with 204 parses "{}". An empty body is the same case in practice (for example HEAD).
    return { body: emptyIsObject ? {} : text };
  }
  try {
    return { body: JSON.parse(text) as unknown };
  } catch {
    // The SyntaxError's message quotes the body; it is not kept.
    if (options.strict) {
      throw new OAuth2Error('OAUTH2_RESPONSE_DECODE_FAILED', 'The response body is not valid JSON', {
        params: { ...(options.statusCode !== undefined ? { statusCode: options.statusCode } : {}) },
        statusCode: options.statusCode,
      });
    }
    return { body: text, decodeWarning: 'OAUTH2_RESPONSE_DECODE_FAILED' };
  }
}

export function isJsonMediaType(media: string): boolean {
  return media === 'application/json' || media === 'text/json' || media.endsWith('+json');
}

function isTextMediaType(media: string): boolean {
  return (
    media.startsWith('text/') ||
    media === 'application/xml' ||
    media.endsWith('+xml') ||
    media === 'application/javascript' ||
    media === 'application/x-www-form-urlencoded'
  );
}

function toText(buffer: Buffer, ct: string | undefined): string {
  const charset = charsetOf(ct);
  if (charset && charset !== 'utf-8' && charset !== 'utf8') {
    try {
      return new TextDecoder(charset).decode(buffer);
    } catch {
      // Unknown label: fall back to UTF-8 as the core node always does.
    }
  }
  return buffer.toString('utf8');
}
