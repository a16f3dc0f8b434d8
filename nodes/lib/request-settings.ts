/**
 * The http-oauth2-request node's settings, as the editor saves them, turned into what the engine uses, and one
 * message turned into one authorised request (the core `http request` node's contract: msg.url, msg.method,
 * msg.headers, msg.payload, msg.requestTimeout). Each rule is checked here once: the request pipeline
 * (http/request.ts) adds the credential, the origin check and the transport.
 */
import hashSum from 'hash-sum';
import mustache from 'mustache';
import { OAuth2Error } from './errors';
import { maxResponseBytes } from './http/body';
import { paginationFromConfig, validatePagination, type PaginationConfig, type PaginationSettings } from './http/pagination';
import { parseSetCookies } from './http/cookies';
import { recordsNotFound } from './http/records';
import { resolveRequestUrl, type AuthorisedRequest, type AuthorisedResponse } from './http/request';
import { retryPolicy, type RetryPolicy } from './http/retry';
import type { ResponseMode, PayToQs } from './http/body';
import { DEFAULT_HOLD, type HoldSettings } from './hold/hold-queue';

export const REQUEST_METHODS: ReadonlySet<string> = new Set(['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD', 'OPTIONS', 'TRACE']);
const RETURN_MODES = new Set(['txt', 'bin', 'obj', 'auto']);
/**
 * Header the node adds to its output so a following request node does not send response headers on: the core
 * node's name and hash (hash-sum of the other headers), so that either node recognises the other's mark.
 */
export const RESPONSE_HASH_HEADER = 'x-node-red-request-node';
const DEFAULT_RETRY_STATUSES = '429,502,503,504';

export interface RequestNodeConfig extends PaginationConfig {
  method?: string;
  url?: string;
  paytoqs?: string | boolean;
  /**
   * This node's `{k, v}` (both mustache templates), or the core node's `{keyType, keyValue, valueType,
   * valueValue}` kept by a flow whose node was retyped: a type `other` is the typed text, `msg` a message
   * property, any other type the header name or value itself (the core dialog's list of common headers).
   */
  headers?: Array<{ k?: string; v?: string; keyType?: string; keyValue?: string; valueType?: string; valueValue?: string }>;
  ret?: string;
  requestTimeout?: string | number;
  followRedirects?: boolean;
  maxRedirects?: string | number;
  /** Max response size (MB), decoded; empty means DEFAULT_MAX_RESPONSE_MB. */
  maxResponseMb?: string | number;
  retryStatuses?: string;
  maxAttempts?: string | number;
  retryUnsafe?: boolean;
  maxRetryAfterSec?: string | number;
  non2xxAsOutput?: boolean;
  /** Id of a `tls-config` node: a URL without a scheme then gets `https://`, as in the core node. */
  tls?: string;
  /** The core node's "Enable insecure HTTP parser": answers with malformed headers are read leniently. */
  insecureHTTPParser?: boolean;
  /** The core node's "Only send errors to Catch": a failed request is not also sent on as a message. */
  senderr?: boolean;
  maxPages?: string | number;
  recordsPath?: string;
  pageOutput?: string;
  /** "While the connection needs a login: hold messages" (off by default). */
  holdWhileLoginNeeded?: boolean;
  /** At most this many held messages; empty: DEFAULT_HOLD. */
  holdMaxMessages?: string | number;
  /** The longest hold, in hours; empty: DEFAULT_HOLD. */
  holdMaxHours?: string | number;
}

export interface RequestSettings {
  /** 'USE': the message chooses (msg.method). */
  method: string;
  url: string;
  paytoqs: PayToQs;
  responseMode: ResponseMode;
  headers: Array<{ name: string; value: string }>;
  timeoutMs: number;
  retry: RetryPolicy;
  followRedirects: boolean;
  maxRedirects: number;
  maxResponseBytes: number;
  /** Non-2xx answers are sent on as messages instead of raised. */
  non2xxAsOutput: boolean;
  /** The scheme a URL naming a host without one gets: https with a TLS configuration, as in the core node. */
  defaultScheme: 'http' | 'https';
  insecureHTTPParser: boolean;
  /**
   * A request that got no answer (timeout, network, too many redirects, too large) goes to Catch only; otherwise
   * it goes to Catch and is also sent on with msg.statusCode set to the error's code, as the core node does.
   */
  errorsToCatchOnly: boolean;
  pagination: PaginationSettings;
  maxPages: number;
  recordsPath: string;
  /** 'all': one message with every page's records; 'each': one message per page. */
  pageOutput: 'all' | 'each';
  /** Messages wait while the connection needs a login (or its token endpoint is away); undefined: they fail. */
  hold: HoldSettings | undefined;
}

/** A message property as a mustache tag: the core node's `msg` header name or value, in this node's form. */
function propertyTemplate(path: unknown): string {
  const text = typeof path === 'string' ? path.trim() : '';
  // `a.b[0]` is `a.b.0` to mustache; an empty path names nothing.
  return text ? `{{{${text.replace(/^msg\./, '').replace(/\[(\d+)\]/g, '.$1')}}}}` : '';
}

/** One configured header, in this node's form or the core node's (see RequestNodeConfig.headers). */
function headerTemplate(h: NonNullable<RequestNodeConfig['headers']>[number]): { name: string; value: string } {
  if (!h || typeof h !== 'object') return { name: '', value: '' };
  if (typeof h.keyType === 'string') {
    const part = (type: string | undefined, value: string | undefined): string =>
      type === 'other' ? (value ?? '') : type === 'msg' ? propertyTemplate(value) : (type ?? '');
    return { name: part(h.keyType, h.keyValue).trim(), value: part(h.valueType, h.valueValue) };
  }
  return { name: typeof h.k === 'string' ? h.k.trim() : '', value: h.v ?? '' };
}

function numberOr(value: unknown, fallback: number): number {
  const n = typeof value === 'number' ? value : typeof value === 'string' && value.trim() ? Number(value) : NaN;
  return Number.isFinite(n) ? n : fallback;
}

function text(value: unknown): string {
  return typeof value === 'number' ? String(value) : typeof value === 'string' ? value.trim() : '';
}

/** Hold settings, or the error naming the field (a count of 1 to 100,000; hours above 0, at most 720). */
function holdSettings(config: RequestNodeConfig): HoldSettings | OAuth2Error {
  const countText = text(config.holdMaxMessages);
  const hoursText = text(config.holdMaxHours);
  const count = countText === '' ? DEFAULT_HOLD.maxMessages : Number(countText);
  const hours = hoursText === '' ? DEFAULT_HOLD.maxHoldMs / 3_600_000 : Number(hoursText);
  if (!(Number.isInteger(count) && count >= 1 && count <= 100_000)) {
    return new OAuth2Error('OAUTH2_INVALID_CONFIG', 'Invalid setting: holdMaxMessages', { params: { field: 'holdMaxMessages', reason: 'invalidNumber' } });
  }
  if (!(Number.isFinite(hours) && hours > 0 && hours <= 720)) {
    return new OAuth2Error('OAUTH2_INVALID_CONFIG', 'Invalid setting: holdMaxHours', { params: { field: 'holdMaxHours', reason: 'invalidNumber' } });
  }
  return { maxMessages: count, maxHoldMs: Math.round(hours * 3_600_000) };
}

/**
 * The node's settings. Never throws: a bad pagination setting comes back as `error` (the node shows it at deploy
 * and fails each message with it, naming the field), the rest falls back to the core node's defaults.
 */
export function parseRequestSettings(config: RequestNodeConfig, defaults: { timeoutMs: number }): { settings: RequestSettings; error?: OAuth2Error } {
  const paytoqs: PayToQs = config.paytoqs === true || config.paytoqs === 'query' ? 'query' : config.paytoqs === 'body' ? 'body' : 'ignore';
  const statuses = String(config.retryStatuses ?? DEFAULT_RETRY_STATUSES)
    .split(/[\s,]+/)
    .filter(Boolean)
    .map(Number)
    .filter((s) => Number.isInteger(s) && s >= 100 && s <= 599);
  const maxPagesText = text(config.maxPages);
  const settings: RequestSettings = {
    method: (config.method || 'GET').toUpperCase(),
    url: text(config.url),
    paytoqs,
    responseMode: RETURN_MODES.has(config.ret ?? '') ? (config.ret as ResponseMode) : 'obj',
    headers: (Array.isArray(config.headers) ? config.headers : []).map(headerTemplate).filter((h) => h.name !== ''),
    timeoutMs: numberOr(config.requestTimeout, defaults.timeoutMs),
    retry: retryPolicy({
      maxAttempts: Math.max(1, Math.floor(numberOr(config.maxAttempts, 3))),
      statuses,
      retryNetworkErrors: true,
      retryUnsafeMethods: config.retryUnsafe === true,
      baseDelayMs: 500,
      maxDelayMs: 30_000,
      maxRetryAfterMs: Math.max(0, numberOr(config.maxRetryAfterSec, 60)) * 1000,
    }),
    followRedirects: config.followRedirects !== false,
    maxRedirects: Math.max(0, Math.floor(numberOr(config.maxRedirects, 5))),
    maxResponseBytes: maxResponseBytes(config.maxResponseMb),
    // A flow retyped from the core node saves neither setting: it gets the core node's behaviour (every answer
    // on the output, a failed request on the output and to Catch). A node saved by an earlier version of this
    // package has non2xxAsOutput saved (false by default then) and keeps its behaviour: failures to Catch only.
    non2xxAsOutput: config.non2xxAsOutput !== false,
    defaultScheme: typeof config.tls === 'string' && config.tls !== '' ? 'https' : 'http',
    insecureHTTPParser: config.insecureHTTPParser === true,
    errorsToCatchOnly: config.senderr === true || (config.senderr === undefined && config.non2xxAsOutput !== undefined),
    pagination: paginationFromConfig(config),
    maxPages: maxPagesText === '' ? 10 : Number(maxPagesText),
    recordsPath: text(config.recordsPath),
    pageOutput: config.pageOutput === 'each' ? 'each' : 'all',
    hold: undefined,
  };
  if (config.holdWhileLoginNeeded === true) {
    const held = holdSettings(config);
    if (held instanceof OAuth2Error) return { settings, error: held };
    settings.hold = held;
  }
  if (settings.pagination.kind === 'none') return { settings };
  try {
    validatePagination(settings.pagination);
    if (!(Number.isInteger(settings.maxPages) && settings.maxPages >= 1)) {
      throw new OAuth2Error('OAUTH2_INVALID_CONFIG', 'Invalid pagination setting: maxPages', { params: { field: 'maxPages', reason: 'invalidNumber' } });
    }
  } catch (err) {
    return { settings, error: err as OAuth2Error };
  }
  return { settings };
}

/**
 * A `%` in the query that starts no escape (`?q=20%`) becomes `%25`, as the core node does; escapes that are
 * there stay as they are (nothing is encoded twice).
 */
function normalisePercents(url: string): string {
  const at = url.indexOf('?');
  if (at === -1 || !url.includes('%', at)) return url;
  return url.slice(0, at + 1) + url.slice(at + 1).replace(/%(?![\da-f]{2})/gi, '%25');
}

/** What a message may carry, as far as the request is concerned. */
export interface RequestMessage {
  url?: unknown;
  method?: unknown;
  headers?: unknown;
  payload?: unknown;
  requestTimeout?: unknown;
  [key: string]: unknown;
}

function invalidInput(field: string, reason: string, value?: string): OAuth2Error {
  return new OAuth2Error('OAUTH2_INVALID_INPUT', `Invalid input: ${field} ${reason}`, { params: { field, reason, value } });
}

/** The mark of response headers: hash-sum of every header but the mark, as the core node computes it. */
function headersHash(headers: Record<string, unknown>): string {
  const { [RESPONSE_HASH_HEADER]: _mark, ...rest } = headers;
  return hashSum(rest);
}

/** msg.headers to send on: dropped when they are the untouched response headers of a previous request node. */
function inputHeaders(msg: RequestMessage): Record<string, unknown> {
  const headers = msg.headers;
  if (!headers || typeof headers !== 'object' || Array.isArray(headers)) return {};
  const record = headers as Record<string, unknown>;
  if (typeof record[RESPONSE_HASH_HEADER] === 'string' && record[RESPONSE_HASH_HEADER] === headersHash(record)) return {};
  return record;
}

/**
 * A URL or header template, rendered as the core node does (mustache over msg), with the connection's values
 * as `connection` (`{{{connection.instanceUrl}}}`): a message property named `connection` is not reachable there.
 */
function render(template: string, msg: RequestMessage, values?: Readonly<Record<string, string>>): string {
  if (!template.includes('{{')) return template;
  return mustache.render(template, values && template.includes('connection.') ? { ...msg, connection: values } : msg);
}

/**
 * msg.headers, then the node's headers (mustache), one value per name whatever its case. The response-hash
 * header is never sent; Authorization is the pipeline's to drop (http/request.ts), in one place.
 */
function requestHeaders(settings: RequestSettings, msg: RequestMessage, values?: Readonly<Record<string, string>>): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  const names = new Map<string, string>();
  const put = (name: string, value: unknown, field: string): void => {
    const lower = name.toLowerCase();
    if (lower === RESPONSE_HASH_HEADER) return;
    let v: string | string[];
    if (Array.isArray(value)) v = value.map((x) => String(x));
    else if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean') v = String(value);
    else if (value === undefined || value === null) return;
    else throw invalidInput(field, 'invalidHeader', name);
    const previous = names.get(lower);
    if (previous) delete out[previous];
    names.set(lower, name);
    out[name] = v;
  };
  for (const [name, value] of Object.entries(inputHeaders(msg))) put(name, value, 'msg.headers');
  for (const h of settings.headers) {
    const name = render(h.name, msg, values).trim();
    if (!name) continue;
    const value = render(h.value, msg, values);
    if (value === '') {
      // The core node's rule: a header left blank in the node removes it (one msg.headers set, say).
      const previous = names.get(name.toLowerCase());
      if (previous) delete out[previous];
      names.delete(name.toLowerCase());
      continue;
    }
    put(name, value, 'headers');
  }
  return out;
}

/**
 * One message's request. `invalidTimeout` is set (and the node's timeout used) when msg.requestTimeout is not
 * a positive number: the core node warns and goes on.
 * @throws OAuth2Error OAUTH2_INVALID_INPUT naming the field (method, msg.method, msg.url, headers).
 */
export function messageRequest(
  settings: RequestSettings,
  msg: RequestMessage,
  apiBaseUrl: string | undefined,
  values?: Readonly<Record<string, string>>,
): { request: AuthorisedRequest; invalidTimeout?: string } {
  const method = settings.method === 'USE' ? String(msg.method ?? '').toUpperCase() : settings.method;
  if (!REQUEST_METHODS.has(method)) {
    throw settings.method === 'USE' ? invalidInput('msg.method', 'invalidMethod', String(msg.method ?? '')) : invalidInput('method', 'invalidMethod', settings.method);
  }
  const rawUrl = settings.url ? render(settings.url, msg, values) : typeof msg.url === 'string' ? msg.url : '';
  if (!rawUrl) throw invalidInput('msg.url', 'required');
  let timeoutMs = settings.timeoutMs;
  let invalidTimeout: string | undefined;
  if (msg.requestTimeout !== undefined) {
    const value = Number(msg.requestTimeout);
    if (Number.isFinite(value) && value >= 1) timeoutMs = value;
    else invalidTimeout = String(msg.requestTimeout);
  }
  const request: AuthorisedRequest = {
    method,
    url: resolveRequestUrl(normalisePercents(rawUrl), apiBaseUrl, settings.defaultScheme).href,
    headers: requestHeaders(settings, msg, values),
    body: msg.payload,
    paytoqs: settings.paytoqs,
    timeoutMs,
    responseMode: settings.responseMode,
    // The core node's msg.followRedirects: the message may turn following off (or on) for itself.
    followRedirects: msg.followRedirects === undefined ? settings.followRedirects : Boolean(msg.followRedirects),
    ...(settings.insecureHTTPParser ? { insecureHTTPParser: true } : {}),
    ...(msg.cookies && typeof msg.cookies === 'object' && !Array.isArray(msg.cookies) ? { cookies: msg.cookies as Record<string, unknown> } : {}),
    maxRedirects: settings.maxRedirects,
    retry: settings.retry,
    maxResponseBytes: settings.maxResponseBytes,
  };
  return invalidTimeout === undefined ? { request } : { request, invalidTimeout };
}

/** The response as the core node puts it on the message (msg.payload, statusCode, headers, responseUrl...). */
export function responseFields(response: AuthorisedResponse): Record<string, unknown> {
  const headers: Record<string, unknown> = { ...response.headers };
  headers[RESPONSE_HASH_HEADER] = headersHash(headers);
  return {
    payload: response.body,
    statusCode: response.statusCode,
    headers,
    responseUrl: response.responseUrl,
    redirectList: response.redirectList,
    // The core node's msg.responseCookies, when the response set cookies.
    ...(response.headers['set-cookie'] !== undefined ? { responseCookies: parseSetCookies(response.headers['set-cookie'] as string | string[]) } : {}),
    attempts: response.attempts,
  };
}

/** The node's records-not-found error: names the records path, or the properties looked at. */
export function requestRecordsNotFound(settings: RequestSettings): OAuth2Error {
  return recordsNotFound(settings.recordsPath);
}
