import type http from 'node:http';
import { CookieJar, parseSetCookies, type CookieMap } from './cookies';
import { USER_AGENT } from './user-agent';
import type https from 'node:https';
import type { Readable } from 'node:stream';
import axios, { type AxiosResponse, isAxiosError } from 'axios';
import { OAuth2Error, isOAuth2Error } from '../errors';
import type { Authorizer } from './authorizer';
import { DEFAULT_MAX_RESPONSE_MB, MB, decodeBody, encodeRequest, readCapped, type HeaderMap, type PayToQs, type ResponseMode } from './body';
import { backoffDelay, isRetryableMethod, isRetryableStatus, retryDelay, retryPolicy, type RetryPolicy } from './retry';

export interface AuthorisedRequest {
  method: string;
  /** Absolute http(s) URL (see resolveRequestUrl). */
  url: string;
  headers: Record<string, string | string[]>;
  /** The already-chosen payload (msg.payload). */
  body?: unknown;
  paytoqs?: PayToQs;
  /** Whole-request timeout per attempt (connect to last body byte), as the core node's msg.requestTimeout. */
  timeoutMs: number;
  responseMode: ResponseMode;
  followRedirects: boolean;
  /** Default 5. */
  maxRedirects: number;
  retry: RetryPolicy;
  /**
   * The most a response body may weigh once decoded (decompressed), in bytes; default DEFAULT_MAX_RESPONSE_MB.
   * Past it the response is abandoned and the request fails with OAUTH2_RESPONSE_TOO_LARGE.
   */
  maxResponseBytes?: number;
  signal?: AbortSignal;
  /** Node's lenient HTTP parser for answers with malformed headers (the core node's option). */
  insecureHTTPParser?: boolean;
  /** The core node's msg.cookies (see CookieJar.addMessageCookies), sent with the request to its URL. */
  cookies?: Record<string, unknown>;
}

export interface AuthorisedResponse {
  statusCode: number;
  /** Lower-cased names, as Node (and the core node) give them. */
  headers: Record<string, string | string[]>;
  body: unknown;
  /** The URL of the response finally returned (after redirects). */
  responseUrl: string;
  /**
   * Every redirect followed, in order, as the core node gives msg.redirectList: the absolute URL it pointed to,
   * and the cookies that redirect set, when it set any.
   */
  redirectList: Array<{ location: string; cookies?: CookieMap }>;
  /** Attempts made by the retry policy for the last hop (1 when it succeeded first time). */
  attempts: number;
  decodeWarning?: string;
}

export interface SendDeps {
  authorizer: Authorizer;
  agents: { http: http.Agent; https: https.Agent };
  sleep?: (ms: number) => Promise<void>;
  random?: () => number;
}

export const DEFAULT_MAX_REDIRECTS = 5;

/**
 * Resolves msg.url against the connection's API base URL. An absolute URL (it has a scheme) is used as it is;
 * otherwise the path is joined to the base URL's path the way axios' baseURL does (`https://api/v2` + `/users`
 * gives `https://api/v2/users`, which is what people mean by a base URL, unlike RFC 3986 resolution).
 * @throws OAuth2Error OAUTH2_INVALID_INPUT field 'url' for unparseable, relative-without-base or non-http(s) URLs.
 */
/**
 * A URL's first segment that names a host the way the core node reads a URL without a scheme: `localhost`, an
 * IP literal, or a dotted name, with an optional port.
 */
const HOST_LIKE = /^(?:localhost|\d{1,3}(?:\.\d{1,3}){3}|\[[\da-f:.]+\]|[a-z\d](?:[a-z\d-]*[a-z\d])?(?:\.[a-z\d](?:[a-z\d-]*[a-z\d])?)+)(?::\d{1,5})?$/i;

/**
 * A URL without a scheme that the core node would send to a host (it puts `http://` in front, `https://` with a
 * TLS configuration): one naming a port, `localhost` or an IP literal always; any host-like name when there is
 * no API base URL to resolve against. Everything else without a scheme is a path of the API base URL.
 */
function schemelessHost(text: string, hasBase: boolean): boolean {
  if (text.startsWith('/') || text.startsWith('.')) return false;
  const first = text.split(/[/?#]/, 1)[0];
  if (!HOST_LIKE.test(first)) return false;
  return !hasBase || /:\d{1,5}$/.test(first) || /^(?:localhost|\d|\[)/i.test(first);
}

export function resolveRequestUrl(url: string, baseUrl?: string, defaultScheme: 'http' | 'https' = 'http'): URL {
  const invalid = (reason: string, extra: Record<string, string> = {}): OAuth2Error =>
    // The URL itself is left out of the error: its query may hold an API key.
    new OAuth2Error('OAUTH2_INVALID_INPUT', `Invalid msg.url: ${reason}`, { params: { field: 'url', reason, ...extra } });
  if (typeof url !== 'string' || url.trim() === '') throw invalid('missing');
  const text = url.trim();
  let resolved: URL;
  try {
    if (/^[a-z][a-z\d+.-]*:\/\//i.test(text) || /^[a-z][a-z\d+.-]*:(?!\d)/i.test(text)) {
      resolved = new URL(text);
    } else if (schemelessHost(text, Boolean(baseUrl))) {
      resolved = new URL(`${defaultScheme}://${text}`);
    } else if (baseUrl) {
      const base = new URL(baseUrl);
      resolved = text.startsWith('//')
        ? new URL(text, base)
        : new URL(`${base.href.replace(/[?#].*$/, '').replace(/\/+$/, '')}/${text.replace(/^\/+/, '')}`);
    } else {
      throw invalid('relative URL and no API base URL');
    }
  } catch (err) {
    if (isOAuth2Error(err)) throw err;
    throw invalid('not a valid URL');
  }
  if (resolved.protocol !== 'http:' && resolved.protocol !== 'https:') {
    throw invalid('scheme must be http or https', { scheme: resolved.protocol.replace(/:$/, '') });
  }
  return resolved;
}

/**
 * Sends one authorised request: origin check before any I/O, the connection's token in Authorization (the
 * caller's own Authorization is removed), manual redirects that never carry the token off its origin, one
 * token renewal on an "expired" status, and retries by policy. Non-2xx responses are returned, not thrown.
 * Every failure is an OAuth2Error; none holds a header value.
 */
export async function sendAuthorised(req: AuthorisedRequest, deps: SendDeps): Promise<AuthorisedResponse> {
  try {
    return await send(req, deps);
  } catch (err) {
    if (isOAuth2Error(err)) throw err;
    // Deliberately no `cause`: an axios error holds the request config, Authorization header included.
    throw new OAuth2Error('OAUTH2_REQUEST_FAILED', 'The request failed unexpectedly', {
      params: { host: hostOf(req.url), attempts: 1, reason: err instanceof Error ? err.name : 'unknown' },
    });
  }
}

interface Hop {
  url: URL;
  method: string;
  headers: HeaderMap;
  body?: Buffer;
}

const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);
const BODY_HEADERS = ['content-type', 'content-length', 'content-encoding', 'content-language', 'content-location', 'transfer-encoding'];
const CREDENTIAL_HEADERS = ['authorization', 'cookie', 'proxy-authorization'];
const TOKEN_CHARS = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
// Node's own rule for header values (http.validateHeaderValue): tab, visible ASCII, obs-text.
const INVALID_VALUE_CHARS = /[^\t\x20-\x7e\x80-\xff]/;

async function send(req: AuthorisedRequest, deps: SendDeps): Promise<AuthorisedResponse> {
  const { authorizer } = deps;
  const sleep = deps.sleep ?? ((ms: number) => abortableSleep(ms, req.signal));
  // The type requires a policy; a caller that forgets one gets the defaults rather than a TypeError.
  const policy = req.retry ?? retryPolicy();
  const method = validateMethod(req.method);
  const timeoutMs = validateTimeout(req.timeoutMs);
  const maxRedirects =
    typeof req.maxRedirects === 'number' && Number.isInteger(req.maxRedirects) && req.maxRedirects >= 0
      ? req.maxRedirects
      : DEFAULT_MAX_REDIRECTS;
  const maxResponseBytes = validateMaxResponseBytes(req.maxResponseBytes);
  const url = resolveRequestUrl(req.url);
  if (!authorizer.allows(url)) {
    throw new OAuth2Error('OAUTH2_ORIGIN_NOT_ALLOWED', `The origin ${safeOrigin(url)} is not allowed for this connection; nothing was sent`, {
      params: { origin: safeOrigin(url) },
    });
  }
  // The message cannot choose the credential: its Authorization is dropped whatever its case.
  const callerHeaders = validateHeaders(req.headers);
  for (const name of Object.keys(callerHeaders)) {
    if (name.toLowerCase() === 'authorization') delete callerHeaders[name];
  }
  const connectionHeaders = authorizer.requestHeaders?.();
  if (connectionHeaders) {
    const set = new Set(Object.keys(callerHeaders).map((name) => name.toLowerCase()));
    for (const [name, value] of Object.entries(connectionHeaders)) {
      if (!set.has(name.toLowerCase())) callerHeaders[name] = value;
    }
  }
  // Cookies live in the request's jar: the message's own for its URL, and those redirects set, each sent to the
  // origin it belongs to (CookieJar). The Cookie header is the jar's, made for each hop.
  const jar = new CookieJar();
  for (const name of Object.keys(callerHeaders)) {
    if (name.toLowerCase() === 'cookie') {
      jar.addHeader(callerHeaders[name], url);
      delete callerHeaders[name];
    }
  }
  if (req.cookies && typeof req.cookies === 'object') jar.addMessageCookies(req.cookies, url);
  const encoded = await encodeRequest(method, url, callerHeaders, req.body, req.paytoqs ?? 'ignore');

  let hop: Hop = { url: encoded.url, method, headers: encoded.headers, body: encoded.body };
  // The token goes only to the origin the request started on (allowed, checked above). Once a redirect leaves
  // that origin the token is never attached again for this request, even if a later hop comes back: the other
  // origin chose that URL, and the token must not follow a third party's choice. A redirect to another allowed
  // origin also goes without it, so an open redirect on one allowed API cannot aim the token at another.
  const tokenOrigin = url.origin;
  let attachToken = true;
  let renewed = false;
  let pendingToken: { accessToken: string; tokenType: string } | undefined;
  const redirectList: AuthorisedResponse['redirectList'] = [];
  let attempts = 1;

  for (;;) {
    throwIfAborted(req.signal, hop.url.host, attempts);
    const headers: HeaderMap = { ...hop.headers };
    const cookie = jar.header(hop.url);
    if (cookie !== undefined) headers.Cookie = cookie;
    let tokenUsed: string | undefined;
    if (attachToken && hop.url.origin === tokenOrigin && authorizer.allows(hop.url)) {
      const token = pendingToken ?? (await authorizer.getAccessToken());
      pendingToken = undefined;
      headers.Authorization = authorizationValue(token);
      tokenUsed = token.accessToken;
    }

    let response: OnceResponse;
    const sentAt = Date.now();
    try {
      response = await sendOnce(hop, headers, timeoutMs, maxResponseBytes, deps.agents, req.signal, req.insecureHTTPParser === true);
    } catch (err) {
      // Too large is the answer itself, not a network fault: asking again would fetch the same body.
      if (isOAuth2Error(err)) throw err;
      const failure = classify(err);
      if (failure.kind === 'aborted') {
        throw new OAuth2Error('OAUTH2_REQUEST_FAILED', `The request to ${hop.url.host} was cancelled`, {
          params: { host: hop.url.host, attempts, reason: 'aborted' },
        });
      }
      const nothingSent = failure.code === 'ECONNREFUSED';
      const mayRetry =
        policy.retryNetworkErrors && attempts < policy.maxAttempts && (nothingSent || isRetryableMethod(hop.method, policy));
      if (mayRetry) {
        await sleep(backoffDelay(attempts, policy, deps.random));
        attempts += 1;
        continue;
      }
      const code = failure.kind === 'timeout' ? 'OAUTH2_REQUEST_TIMEOUT' : 'OAUTH2_REQUEST_FAILED';
      const what = failure.kind === 'timeout' ? `timed out after ${timeoutMs} ms` : `failed (${failure.code})`;
      throw new OAuth2Error(code, `The request to ${hop.url.host} ${what} after ${attempts} attempt(s)`, {
        params: {
          host: hop.url.host,
          attempts,
          code: failure.code,
          ...(failure.kind === 'timeout' ? { timeoutMs } : {}),
          // Node's HTTP parser refused the answer (HPE_*): the server answered, but not in HTTP.
          ...(failure.code?.startsWith('HPE_') ? { messageKey: 'errors.requestParseError' } : {}),
        },
        retryable: true,
      });
    }

    const status = response.status;
    const responseHeaders = lowerCaseHeaders(response.headers);

    if (tokenUsed !== undefined && !renewed && (authorizer.expiredStatuses.includes(status) || (await expiredByCondition(authorizer, status, responseHeaders, response.data)))) {
      // Once per request, redirects included: a second rejection is the API's answer, not an expired token.
      renewed = true;
      // The retry takes about as long again: its token must live at least that long.
      pendingToken = await authorizer.renewAfterRejection(tokenUsed, { requestMs: Date.now() - sentAt });
      continue;
    }

    if (isRetryableStatus(status, policy) && isRetryableMethod(hop.method, policy)) {
      const delay = retryDelay({ attempt: attempts, policy, retryAfter: responseHeaders['retry-after'], random: deps.random });
      if (delay !== undefined) {
        await sleep(delay);
        attempts += 1;
        continue;
      }
    }

    const location = responseHeaders.location;
    if (req.followRedirects && REDIRECT_STATUSES.has(status) && typeof location === 'string' && location !== '') {
      let next: URL | undefined;
      try {
        next = new URL(location, hop.url);
      } catch {
        next = undefined;
      }
      // A Location we cannot or will not follow (not http(s)) is handed back as the 3xx response it is.
      if (next && (next.protocol === 'http:' || next.protocol === 'https:')) {
        if (redirectList.length >= maxRedirects) {
          throw new OAuth2Error('OAUTH2_TOO_MANY_REDIRECTS', `More than ${maxRedirects} redirects from ${url.host}`, {
            params: { maxRedirects, host: url.host },
          });
        }
        const setCookie = responseHeaders['set-cookie'];
        jar.addSetCookies(setCookie, hop.url);
        redirectList.push(setCookie === undefined ? { location: next.href } : { location: next.href, cookies: parseSetCookies(setCookie) });
        hop = redirectHop(hop, status, next);
        if (next.origin !== tokenOrigin) attachToken = false;
        attempts = 1;
        continue;
      }
    }

    const decoded = decodeBody(response.data, responseHeaders['content-type'], req.responseMode, { statusCode: status });
    return {
      statusCode: status,
      headers: responseHeaders,
      body: decoded.body,
      responseUrl: hop.url.href,
      redirectList,
      attempts,
      ...(decoded.decodeWarning ? { decodeWarning: decoded.decodeWarning } : {}),
    };
  }
}

/**
 * The connection's "token expired" condition on an answer (Authorizer.expiredAnswer), with the body as JSON when
 * it is JSON, else as text. A condition that fails to evaluate says no: the answer goes back as it is.
 */
async function expiredByCondition(authorizer: Authorizer, statusCode: number, headers: Record<string, string | string[]>, data: Buffer): Promise<boolean> {
  if (!authorizer.expiredAnswer) return false;
  const text = data.toString('utf8');
  let payload: unknown = text;
  try {
    payload = text === '' ? '' : JSON.parse(text);
  } catch {
    // not JSON: the text
  }
  try {
    return (await authorizer.expiredAnswer({ statusCode, headers, payload })) === true;
  } catch {
    return false;
  }
}

/** The next hop of a redirect, as browsers do it (Fetch, "HTTP-redirect fetch"). */
function redirectHop(hop: Hop, status: number, next: URL): Hop {
  let method = hop.method;
  let body = hop.body;
  const headers: HeaderMap = { ...hop.headers };
  // 303 turns anything but HEAD into GET; 301/302 turn POST into GET; 307/308 keep method and body.
  if ((status === 303 && method !== 'GET' && method !== 'HEAD') || ((status === 301 || status === 302) && method === 'POST')) {
    method = 'GET';
    body = undefined;
    for (const name of Object.keys(headers)) {
      if (BODY_HEADERS.includes(name.toLowerCase())) delete headers[name];
    }
  }
  if (next.origin !== hop.url.origin) {
    for (const name of Object.keys(headers)) {
      if (CREDENTIAL_HEADERS.includes(name.toLowerCase())) delete headers[name];
    }
  }
  return { url: next, method, headers, body };
}

interface OnceResponse {
  status: number;
  headers: AxiosResponse['headers'];
  data: Buffer;
}

async function sendOnce(
  hop: Hop,
  headers: HeaderMap,
  timeoutMs: number,
  maxResponseBytes: number,
  agents: SendDeps['agents'],
  signal: AbortSignal | undefined,
  insecureHTTPParser: boolean,
): Promise<OnceResponse> {
  // A whole-request timer (axios' own `timeout` is a socket idle timer, and core's is for the whole request).
  const controller = new AbortController();
  let timedOut = false;
  const timer = timeoutMs > 0 ? setTimeout(() => { timedOut = true; controller.abort(); }, timeoutMs) : undefined;
  const onAbort = (): void => controller.abort();
  signal?.addEventListener('abort', onAbort, { once: true });
  try {
    const response = await client.request<Readable>({
      url: hop.url.href,
      method: hop.method,
      headers: withDefaults(headers),
      data: hop.body,
      maxRedirects: 0,
      validateStatus: () => true,
      // A stream of the decoded body, read here with a count: the cap applies to what decompression yields,
      // and the whole-request timer and the caller's signal still cover every byte of it.
      responseType: 'stream',
      decompress: true,
      httpAgent: agents.http,
      httpsAgent: agents.https,
      // The agents decide about proxies (a CONNECT tunnel, proxy.ts): axios' own would send the request,
      // bearer token included, to the proxy in the clear.
      proxy: false,
      signal: controller.signal,
      ...(insecureHTTPParser ? { insecureHTTPParser: true } : {}),
      // Bodies are already Buffers; no JSON guessing, no trimming.
      transformRequest: [(data: unknown) => data],
      transformResponse: [(data: unknown) => data],
      maxBodyLength: Infinity,
      // -1: no limit of axios' own (the count is readCapped's), and no extra stream wrapped around the body.
      maxContentLength: -1,
    });
    const data = await readCapped(response.data, maxResponseBytes);
    if (data === undefined) {
      const limit = Math.round((maxResponseBytes / MB) * 1000) / 1000;
      throw new OAuth2Error('OAUTH2_RESPONSE_TOO_LARGE', `The response from ${hop.url.host} is larger than ${limit} MB once decoded; it was not kept`, {
        params: { host: hop.url.host, limit },
        statusCode: response.status,
      });
    }
    return { status: response.status, headers: response.headers, data };
  } catch (err) {
    if (timedOut) throw new TimeoutMarker();
    throw err;
  } finally {
    if (timer) clearTimeout(timer);
    signal?.removeEventListener('abort', onAbort);
  }
}

class TimeoutMarker extends Error {}

/**
 * axios without its default headers: the core node sends no Accept and no Content-Type the flow did not ask for
 * (a text or binary body goes without one), and a flow moved from it should see the same answers.
 */
const client = axios.create();
for (const group of Object.values(client.defaults.headers) as unknown[]) {
  if (group && typeof group === 'object') {
    for (const name of Object.keys(group)) {
      if (/^(accept|content-type)$/i.test(name)) delete (group as Record<string, unknown>)[name];
    }
  }
}

/**
 * The headers as sent: this package's User-Agent unless the request names one; no Content-Type unless it names
 * one (axios puts a form type on every POST, PUT and PATCH otherwise: `false` is its word for "leave it out").
 */
function withDefaults(headers: HeaderMap): Record<string, string | string[] | false> {
  const names = new Set(Object.keys(headers).map((name) => name.toLowerCase()));
  const out: Record<string, string | string[] | false> = { ...headers };
  if (!names.has('user-agent')) out['User-Agent'] = USER_AGENT;
  if (!names.has('content-type')) out['Content-Type'] = false;
  return out;
}

const NETWORK_CODES = new Set(['ECONNRESET', 'ECONNREFUSED', 'ETIMEDOUT', 'EPIPE', 'ECONNABORTED', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN', 'ENOTFOUND']);

interface Failure {
  kind: 'timeout' | 'network' | 'aborted';
  code: string;
}

function classify(err: unknown): Failure {
  if (err instanceof TimeoutMarker) return { kind: 'timeout', code: 'ETIMEDOUT' };
  if (isAxiosError(err) || err instanceof Error) {
    const code = (err as { code?: unknown }).code;
    const c = typeof code === 'string' ? code : '';
    if (c === 'ERR_CANCELED') return { kind: 'aborted', code: c };
    if (c === 'ETIMEDOUT' || c === 'ECONNABORTED') return { kind: 'timeout', code: c };
    const cause = (err as { cause?: { code?: unknown } }).cause;
    const causeCode = cause && typeof cause.code === 'string' ? cause.code : '';
    if (NETWORK_CODES.has(c)) return { kind: 'network', code: causeCode && NETWORK_CODES.has(causeCode) ? causeCode : c };
    if (NETWORK_CODES.has(causeCode)) return { kind: 'network', code: causeCode };
    if (/socket hang up|aborted/i.test(err.message)) return { kind: 'network', code: 'ECONNRESET' };
    if (/^ERR_INVALID_(CHAR|HTTP_TOKEN)|^ERR_HTTP_INVALID/.test(c)) {
      throw new OAuth2Error('OAUTH2_INVALID_INPUT', 'A request header is invalid', { params: { field: 'headers', code: c } });
    }
    return { kind: 'network', code: c || 'UNKNOWN' };
  }
  return { kind: 'network', code: 'UNKNOWN' };
}

/**
 * The Authorization header for a token: always the `Bearer` scheme (RFC 6750). `tokenType` is what the provider
 * said, in whatever casing or word (Slack's "bot"); tokens of types that are not bearer tokens are refused when
 * they are issued (token-response.ts), so none reaches here to be sent under a scheme the API does not know.
 */
function authorizationValue(token: { accessToken: string; tokenType: string }): string {
  const access = token.accessToken;
  if (typeof access !== 'string' || access === '' || INVALID_VALUE_CHARS.test(access)) {
    throw new OAuth2Error('OAUTH2_INVALID_TOKEN_RESPONSE', 'The access token cannot be sent in an Authorization header');
  }
  return `Bearer ${access}`;
}

function validateMethod(method: unknown): string {
  if (typeof method !== 'string' || !TOKEN_CHARS.test(method)) {
    throw new OAuth2Error('OAUTH2_INVALID_INPUT', 'Invalid msg.method', { params: { field: 'method' } });
  }
  return method.toUpperCase();
}

function validateMaxResponseBytes(value: unknown): number {
  if (value === undefined) return DEFAULT_MAX_RESPONSE_MB * MB;
  if (typeof value !== 'number' || Number.isNaN(value) || value <= 0) {
    throw new OAuth2Error('OAUTH2_INVALID_CONFIG', 'Invalid configuration: maxResponseMb', { params: { field: 'maxResponseMb', reason: 'invalidSize' } });
  }
  return value;
}

function validateTimeout(timeoutMs: unknown): number {
  if (timeoutMs === undefined || timeoutMs === 0) return 0;
  if (typeof timeoutMs !== 'number' || !Number.isFinite(timeoutMs) || timeoutMs < 0) {
    throw new OAuth2Error('OAUTH2_INVALID_INPUT', 'Invalid msg.requestTimeout', { params: { field: 'requestTimeout' } });
  }
  // setTimeout's ceiling (about 24.8 days); anything longer means "no practical limit".
  return Math.min(2_147_483_647, Math.max(1, Math.floor(timeoutMs)));
}

/** Copies and checks the caller's headers; numbers and booleans become text, null/undefined are dropped. */
function validateHeaders(headers: unknown): HeaderMap {
  const out: HeaderMap = {};
  if (headers === undefined || headers === null) return out;
  if (typeof headers !== 'object' || Array.isArray(headers)) {
    throw new OAuth2Error('OAUTH2_INVALID_INPUT', 'Invalid msg.headers: not an object', { params: { field: 'headers' } });
  }
  for (const [name, value] of Object.entries(headers as Record<string, unknown>)) {
    // The header name is named in the error, never its value (it may be a credential).
    const bad = (reason: string): OAuth2Error =>
      new OAuth2Error('OAUTH2_INVALID_INPUT', `Invalid msg.headers: ${reason}`, {
        params: { field: 'headers', header: TOKEN_CHARS.test(name) ? name : '(invalid name)', reason },
      });
    if (!TOKEN_CHARS.test(name)) throw bad('invalid header name');
    if (value === undefined || value === null) continue;
    const one = (v: unknown): string => {
      if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') {
        const text = String(v);
        if (INVALID_VALUE_CHARS.test(text)) throw bad(`invalid characters in the value of ${name}`);
        return text;
      }
      throw bad(`the value of ${name} is not text`);
    };
    out[name] = Array.isArray(value) ? value.map(one) : one(value);
  }
  return out;
}

function lowerCaseHeaders(headers: AxiosResponse['headers']): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  const plain = (typeof (headers as { toJSON?: unknown }).toJSON === 'function'
    ? (headers as { toJSON(): Record<string, unknown> }).toJSON()
    : headers) as Record<string, unknown>;
  for (const [name, value] of Object.entries(plain)) {
    if (value === undefined || value === null || value === false) continue;
    out[name.toLowerCase()] = Array.isArray(value) ? value.map(String) : String(value);
  }
  return out;
}

function safeOrigin(url: URL): string {
  return `${url.protocol}//${url.host}`;
}

function throwIfAborted(signal: AbortSignal | undefined, host: string, attempts: number): void {
  if (signal?.aborted) {
    throw new OAuth2Error('OAUTH2_REQUEST_FAILED', 'The request was cancelled', { params: { host, attempts, reason: 'aborted' } });
  }
}

/** The host of a request URL for an error message (never the path or query, which may carry data). */
function hostOf(url: string): string {
  try {
    return new URL(url).host;
  } catch {
    return '?';
  }
}

function abortableSleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    if (ms <= 0 || signal?.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}
