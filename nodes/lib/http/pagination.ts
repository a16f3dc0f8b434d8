/**
 * Pagination over the authorised request pipeline, shared by the request node and the record trigger: follows
 * an API's pages (RFC 8288 Link header, a next-URL property, a cursor property sent back in the query or in a
 * JSON body, page or offset counting) and
 * says whether it saw the end of the list. Every page goes through the caller's `send` (a wrapper around
 * sendAuthorised), so each page gets the origin allowlist, a fresh token, redirects and retries like any request.
 */
import { OAuth2Error } from '../errors';
import { encodeRequest } from './body';
import { findRecords, readPath, recordsNotFound } from './records';
import { resolveRequestUrl, type AuthorisedRequest, type AuthorisedResponse } from './request';

export type PaginationSettings =
  | { kind: 'none' }
  /** RFC 8288 Link header, rel="next". */
  | { kind: 'link' }
  /** Body property holding the next page's URL (absolute or relative to the current URL). */
  | { kind: 'next-url'; path: string }
  /** Body property holding a cursor, sent back as query param `param`. */
  | { kind: 'cursor'; path: string; param: string }
  /** Page counting: `param` = start, start + 1, … (start defaults to 1 where the caller has no value). */
  | { kind: 'page'; param: string; start: number; sizeParam?: string; size?: number }
  /** Offset counting: `param` = 0, then += the number of records on each page. */
  | { kind: 'offset'; param: string; sizeParam?: string; size?: number }
  /**
   * A cursor sent back in the JSON body of a POST (Notion's database query, HubSpot's search, Dropbox's
   * list_folder): read at `path` of the answer, written at `param` (a dot path) of the request body. With
   * `url`, the later pages go there with a body holding the cursor alone (Dropbox's list_folder/continue);
   * without, they repeat the first body with the cursor set. `morePath`: a property of the answer that says
   * whether more pages follow (`has_more`); false there ends the list even when a cursor is given.
   */
  | { kind: 'body-cursor'; path: string; param: string; url?: string; morePath?: string };

export type PaginationKind = PaginationSettings['kind'];
export const PAGINATION_KINDS: readonly PaginationKind[] = ['none', 'link', 'next-url', 'cursor', 'page', 'offset', 'body-cursor'];

export interface Page {
  /** 0-based. */
  index: number;
  response: AuthorisedResponse;
  /** The page's records as options.findRecords sees them; undefined when not found or the status is not 2xx. */
  records: unknown[] | undefined;
  /** The URL requested for this page (response.responseUrl is where it ended after redirects). */
  url: string;
}

export interface PaginationOptions {
  /** Stop after this many pages (then `complete` is false). A whole number of 1 or more, or Infinity. */
  maxPages: number;
  /**
   * How to see a page's records: what it finds is both `page.records` and what decides that a page is empty (stop)
   * and how far offset counting moves, so the caller must read its records from `page.records` and never with a
   * second rule (a JSONata expression sees other records than the automatic lookup). May be async (JSONata).
   * undefined means "no list found".
   */
  findRecords: (body: unknown) => unknown[] | undefined | Promise<unknown[] | undefined>;
  /**
   * The page's whole list as the API pages it, when the records are a selection of it that may filter (a JSONata
   * expression such as `data.tickets[status != "archived"]`): a page the expression filters to nothing is not
   * the end of the list. Link, next-URL and cursor pagination stop on an empty page only when this list is
   * empty (unknown: they go on to the next link); page and offset counting, whose only end is an empty page,
   * use it when known and the records otherwise, and offset moves by its length. Absent: the records are the list.
   */
  listOf?: (body: unknown) => unknown[] | undefined;
  /**
   * Default true. With false, `pages` comes back empty and only `last` is kept: memory stays flat however many
   * pages there are, and the caller handles each page in `onPage` as it arrives (the trigger's 100,000 records).
   */
  keepPages?: boolean;
  /**
   * Go on from where an earlier fetch stopped at maxPages (its `next`), instead of from `first`'s first page.
   * `first` must be the request that earlier fetch started from: cursor, page and offset parameters are set on
   * its URL as before, and page and offset counting go on from the counts carried here.
   */
  resume?: ResumePoint;
}

/**
 * Where a fetch cut at maxPages would have gone on: the request it would have sent next. Plain data, so a
 * caller can keep it (the record trigger stores it) and hand it to a later fetchPages as `resume`.
 */
export interface ResumePoint {
  /** The next page's URL (a next link or URL as resolved, or the first URL with the cursor / counter set). */
  url: string;
  /** Pages read before this point, since the first page (page counting numbers the next page from it). */
  pages: number;
  /** Offset counting: records counted before this point. */
  offset: number;
  /** Cursor in the body: the next page's request body. */
  body?: unknown;
}

/**
 * Why fetching stopped. `end` (no next link / URL / cursor, or pagination 'none') and `empty` (a page with no
 * records) are the API saying "no more": `complete` is true for those two only.
 * `status`: a page answered non-2xx (it is the last page; the caller decides what that means).
 * `max-pages`: options.maxPages reached while the API still pointed at a next page.
 * `loop`: the next URL or cursor was one already requested (a misbehaving API; stopping beats looping).
 * `records-not-found`: page or offset counting cannot go on without the page's records.
 */
export type StopReason = 'end' | 'empty' | 'status' | 'max-pages' | 'loop' | 'records-not-found';

export interface PaginationResult {
  /** Every page in order, or [] when options.keepPages is false. */
  pages: Page[];
  complete: boolean;
  stop: StopReason;
  /** How many pages were fetched (pages.length when they are kept). */
  count: number;
  /** The last page fetched, kept even when the pages are not. */
  last: Page;
  /** With stop `max-pages`: where a later fetch can go on (PaginationOptions.resume). */
  next?: ResumePoint;
}

/** How many cursors / URLs the loop guard remembers; beyond it only the previous one is compared. */
const LOOP_MEMORY = 10_000;
const QUERY_METHODS = new Set(['GET', 'HEAD', 'DELETE']);

/**
 * Fetches pages, starting with `first`, through `send` (the caller passes a function around sendAuthorised).
 * Stops on: an empty page (records length 0), no next link / no next URL / empty or missing cursor / cursor equal
 * to the previous one (loop guard), a non-2xx page (returned as the last page; caller decides), maxPages.
 * Returns `complete: true` when the stop was the API saying "no more" (not maxPages, not an error).
 *
 * Every follow-up request is `first` with only its URL changed: method, headers, body, timeout and retry policy
 * stay. Cursor, page and offset parameters are set in the first URL's query (replacing any of the same name,
 * every other parameter kept as written); next links and next URLs are resolved against the URL the current
 * page came from. A payload that `first` moves to the query string (paytoqs 'query') is merged into the URL once,
 * so it is neither repeated on each page nor added to a next link the API built.
 * `onPage` is awaited before the next page is requested; if it throws, fetching stops and the error propagates.
 * @throws OAuth2Error OAUTH2_INVALID_CONFIG for invalid settings or maxPages; whatever `send` throws.
 */
export async function fetchPages(
  first: AuthorisedRequest,
  settings: PaginationSettings,
  options: PaginationOptions,
  send: (req: AuthorisedRequest) => Promise<AuthorisedResponse>,
  onPage?: (page: Page) => void | Promise<void>,
): Promise<PaginationResult> {
  validatePagination(settings);
  const maxPages = validateMaxPages(options.maxPages);
  const keep = options.keepPages !== false;
  const pages: Page[] = [];

  const base = settings.kind === 'none' ? first : await withQueryPayload(first);
  if (settings.kind === 'body-cursor') checkBodyRequest(base);
  const resume = settings.kind === 'none' ? undefined : options.resume;
  let request = resume
    ? { ...base, url: resume.url, ...(settings.kind === 'body-cursor' && resume.body !== undefined ? { body: resume.body } : {}) }
    : settings.kind === 'page' || settings.kind === 'offset'
      ? { ...base, url: counterUrl(base.url, settings, settings.kind === 'page' ? settings.start : 0) }
      : base;
  const guard = new LoopGuard();
  guard.check(
    settings.kind === 'cursor'
      ? cursorIn(request.url, settings.param)
      : settings.kind === 'body-cursor'
        ? cursorValue(readPath(request.body, settings.param))
        : resolveAgainst(request.url, request.url),
  );
  const pagesBefore = resume?.pages ?? 0;
  let offset = resume?.offset ?? 0;

  for (let index = 0; ; index += 1) {
    const response = await send(request);
    const ok = response.statusCode >= 200 && response.statusCode < 300;
    const records = ok ? await options.findRecords(response.body) : undefined;
    // The list as the API pages it (PaginationOptions.listOf): the records themselves unless told otherwise.
    const list = !ok ? undefined : options.listOf ? options.listOf(response.body) : records;
    const page: Page = { index, response, records, url: request.url };
    if (keep) pages.push(page);
    if (onPage) await onPage(page);

    const stop = (complete: boolean, reason: StopReason, next?: ResumePoint): PaginationResult => {
      const result: PaginationResult = { pages, complete, stop: reason, count: index + 1, last: page };
      if (next) result.next = next;
      return result;
    };
    if (!ok) return stop(false, 'status');
    if (settings.kind === 'none') return stop(true, 'end');
    const counted = settings.kind === 'page' || settings.kind === 'offset' ? (list ?? records) : list;
    // An answer that says more pages follow is believed over an empty page (Dropbox may send one).
    const saysMore = settings.kind === 'body-cursor' && !!settings.morePath?.trim() && readPath(response.body, settings.morePath.trim()) === true;
    if (counted !== undefined && counted.length === 0 && !saysMore) return stop(true, 'empty');

    let nextUrl: string;
    let nextBody = base.body;
    switch (settings.kind) {
      case 'link': {
        const link = parseLinkHeader(response.headers.link).next;
        if (link === undefined || link.trim() === '') return stop(true, 'end');
        nextUrl = resolveAgainst(link, response.responseUrl);
        if (!guard.check(nextUrl)) return stop(false, 'loop');
        break;
      }
      case 'next-url': {
        const value = readPath(response.body, settings.path);
        if (typeof value !== 'string' || value.trim() === '') return stop(true, 'end');
        nextUrl = resolveAgainst(value, response.responseUrl);
        if (!guard.check(nextUrl)) return stop(false, 'loop');
        break;
      }
      case 'cursor': {
        const cursor = cursorValue(readPath(response.body, settings.path));
        if (cursor === undefined) return stop(true, 'end');
        if (!guard.check(cursor)) return stop(false, 'loop');
        nextUrl = withParams(base.url, [[settings.param, cursor]]);
        break;
      }
      case 'page': {
        if (records === undefined) return stop(false, 'records-not-found');
        nextUrl = counterUrl(base.url, settings, settings.start + pagesBefore + index + 1);
        break;
      }
      case 'offset': {
        if (records === undefined || counted === undefined) return stop(false, 'records-not-found');
        offset += counted.length;
        nextUrl = counterUrl(base.url, settings, offset);
        break;
      }
      case 'body-cursor': {
        const morePath = settings.morePath?.trim();
        if (morePath && noMore(readPath(response.body, morePath))) return stop(true, 'end');
        const cursor = cursorValue(readPath(response.body, settings.path));
        if (cursor === undefined) return stop(true, 'end');
        if (!guard.check(cursor)) return stop(false, 'loop');
        const continueUrl = settings.url?.trim();
        nextUrl = continueUrl ? resolveAgainst(continueUrl, base.url) : base.url;
        nextBody = withBodyPath(continueUrl ? {} : base.body, settings.param, cursor);
        break;
      }
    }
    if (index + 1 >= maxPages) {
      const next: ResumePoint = { url: nextUrl, pages: pagesBefore + index + 1, offset };
      if (settings.kind === 'body-cursor') next.body = nextBody;
      return stop(false, 'max-pages', next);
    }
    request = { ...base, url: nextUrl, body: nextBody };
  }
}

/**
 * Checks settings the way fetchPages needs them; the node calls it at deploy time so a bad configuration shows
 * before the first message. `field` in the error is the request node's setting name.
 * @throws OAuth2Error OAUTH2_INVALID_CONFIG params.field, params.reason.
 */
export function validatePagination(settings: PaginationSettings): void {
  const invalid = (field: string, reason: string): OAuth2Error =>
    new OAuth2Error('OAUTH2_INVALID_CONFIG', `Invalid pagination setting: ${field} ${reason}`, { params: { field, reason } });
  if (!settings || !PAGINATION_KINDS.includes(settings.kind)) throw invalid('pagination', 'invalidValue');
  const text = (value: unknown): boolean => typeof value === 'string' && value.trim() !== '';
  if ((settings.kind === 'next-url' || settings.kind === 'cursor' || settings.kind === 'body-cursor') && !text(settings.path)) throw invalid('paginationPath', 'required');
  if (settings.kind === 'cursor' || settings.kind === 'page' || settings.kind === 'offset' || settings.kind === 'body-cursor') {
    if (!text(settings.param)) throw invalid('paginationParam', 'required');
  }
  if (settings.kind === 'body-cursor') {
    if (!isBodyPath(settings.param)) throw invalid('paginationParam', 'invalidValue');
    if (settings.url !== undefined && typeof settings.url !== 'string') throw invalid('paginationUrl', 'invalidValue');
    if (settings.morePath !== undefined && typeof settings.morePath !== 'string') throw invalid('paginationMorePath', 'invalidValue');
  }
  if (settings.kind === 'page' && !(typeof settings.start === 'number' && Number.isInteger(settings.start))) {
    throw invalid('pageStart', 'invalidNumber');
  }
  if (settings.kind === 'page' || settings.kind === 'offset') {
    if (settings.size !== undefined && !(typeof settings.size === 'number' && Number.isInteger(settings.size) && settings.size > 0)) {
      throw invalid('pageSize', 'invalidNumber');
    }
    if (settings.sizeParam !== undefined && typeof settings.sizeParam !== 'string') throw invalid('pageSizeParam', 'invalidValue');
  }
}

function validateMaxPages(maxPages: unknown): number {
  if (maxPages === Infinity || (typeof maxPages === 'number' && Number.isInteger(maxPages) && maxPages >= 1)) return maxPages;
  throw new OAuth2Error('OAUTH2_INVALID_CONFIG', 'Invalid pagination setting: maxPages must be a whole number of 1 or more', {
    params: { field: 'maxPages', reason: 'invalidNumber' },
  });
}

/**
 * Parses an RFC 8288 Link header (one string, or several header lines) into rel → URL, as written (resolve it
 * against the response URL yourself). Relation names are lower-cased (they compare case-insensitively);
 * `rel="next last"` gives both; the first link for a relation wins; a malformed link-value is skipped.
 */
export function parseLinkHeader(value: string | string[] | undefined): Record<string, string> {
  const found = new Map<string, string>();
  const lines = Array.isArray(value) ? value : typeof value === 'string' ? [value] : [];
  for (const line of lines) {
    if (typeof line !== 'string') continue;
    const n = line.length;
    let i = 0;
    const skipSpaces = (): void => {
      while (i < n && (line[i] === ' ' || line[i] === '\t')) i += 1;
    };
    while (i < n) {
      while (i < n && (line[i] === ',' || line[i] === ' ' || line[i] === '\t')) i += 1;
      if (i >= n) break;
      if (line[i] !== '<') {
        i = afterLinkValue(line, i);
        continue;
      }
      const close = line.indexOf('>', i + 1);
      if (close === -1) break;
      const target = line.slice(i + 1, close).trim();
      i = close + 1;
      let rels: string[] | undefined;
      for (;;) {
        skipSpaces();
        if (i >= n || line[i] === ',') break;
        if (line[i] !== ';') {
          i = afterLinkValue(line, i);
          break;
        }
        i += 1;
        skipSpaces();
        const nameStart = i;
        while (i < n && !'=;, \t'.includes(line[i])) i += 1;
        const name = line.slice(nameStart, i).toLowerCase();
        skipSpaces();
        let paramValue = '';
        if (line[i] === '=') {
          i += 1;
          skipSpaces();
          if (line[i] === '"') {
            i += 1;
            while (i < n && line[i] !== '"') {
              if (line[i] === '\\' && i + 1 < n) i += 1;
              paramValue += line[i];
              i += 1;
            }
            i += 1;
          } else {
            const start = i;
            while (i < n && !';, \t'.includes(line[i])) i += 1;
            paramValue = line.slice(start, i);
          }
        }
        // RFC 8288 §3.3: occurrences of rel after the first are ignored.
        if (name === 'rel' && rels === undefined) rels = paramValue.toLowerCase().split(/\s+/).filter(Boolean);
      }
      for (const rel of rels ?? []) if (!found.has(rel)) found.set(rel, target);
    }
  }
  // fromEntries defines own properties: a rel named "__proto__" cannot reach the prototype.
  return Object.fromEntries(found);
}

/** Index just after the current link-value (the next comma outside quotes), for skipping a malformed one. */
function afterLinkValue(line: string, from: number): number {
  let quoted = false;
  for (let i = from; i < line.length; i += 1) {
    const c = line[i];
    if (quoted && c === '\\') i += 1;
    else if (c === '"') quoted = !quoted;
    else if (c === ',' && !quoted) return i + 1;
  }
  return line.length;
}

/** A next link or URL resolved against the page it came from; left as written when it cannot be (send rejects it). */
function resolveAgainst(reference: string, current: string): string {
  try {
    return new URL(reference.trim(), current).href;
  } catch {
    return reference;
  }
}

/** Path segments that reach the prototype chain rather than the data: never written. */
const FORBIDDEN_SEGMENTS = new Set(['__proto__', 'constructor', 'prototype']);

/** A dot path a cursor can be written at: no empty or forbidden segment. */
function isBodyPath(path: unknown): path is string {
  return typeof path === 'string' && path.trim() !== '' && path.trim().split('.').every((s) => s !== '' && !FORBIDDEN_SEGMENTS.has(s));
}

/** `body` (a JSON object, or nothing) with `value` at the dot path `path`, objects created on the way; `body` is not changed. */
function withBodyPath(body: unknown, path: string, value: string): Record<string, unknown> {
  const root: Record<string, unknown> = isPlainObject(body) ? structuredClone(body) : {};
  const segments = path.trim().split('.');
  let at = root;
  for (const segment of segments.slice(0, -1)) {
    const child = at[segment];
    at = at[segment] = isPlainObject(child) ? child : {};
  }
  at[segments[segments.length - 1]!] = value;
  return root;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value) && !Buffer.isBuffer(value);
}

/** A "more pages follow" property that says no: false, "false", 0. Missing or anything else: no say. */
function noMore(value: unknown): boolean {
  return value === false || value === 0 || (typeof value === 'string' && value.trim().toLowerCase() === 'false');
}

/** A cursor in the body needs a request with a JSON object body (or none yet). */
function checkBodyRequest(request: AuthorisedRequest): void {
  const method = typeof request.method === 'string' ? request.method.toUpperCase() : '';
  if (QUERY_METHODS.has(method)) {
    throw new OAuth2Error('OAUTH2_INVALID_CONFIG', 'Invalid pagination setting: a cursor in the body needs a request with a body (POST)', {
      params: { field: 'method', reason: 'needsBody' },
    });
  }
  if (request.body !== undefined && !isPlainObject(request.body)) {
    throw new OAuth2Error('OAUTH2_INVALID_CONFIG', 'Invalid pagination setting: a cursor in the body needs a JSON object body', {
      params: { field: 'body', reason: 'needsJsonObject' },
    });
  }
}

/** A cursor as sent back: a non-empty string as it is, a finite number as text; anything else means "no more". */
function cursorValue(value: unknown): string | undefined {
  if (typeof value === 'string') return value === '' ? undefined : value;
  if (typeof value === 'number' && Number.isFinite(value)) return String(value);
  return undefined;
}

function counterUrl(url: string, settings: Extract<PaginationSettings, { kind: 'page' | 'offset' }>, value: number): string {
  const params: Array<[string, string]> = [[settings.param, String(value)]];
  const sizeParam = settings.sizeParam?.trim();
  if (sizeParam && settings.size !== undefined) params.push([sizeParam, String(settings.size)]);
  return withParams(url, params);
}

/**
 * Sets query parameters on a URL: the first occurrence of each name is replaced in place, later ones removed,
 * a missing one appended. Every other parameter is kept byte for byte (URLSearchParams would re-encode them all,
 * turning %20 into + and , into %2C, which some APIs read differently).
 */
function withParams(url: string, params: Array<[string, string]>): string {
  const target = new URL(url);
  const raw = target.search.replace(/^\?/, '');
  const pairs = raw === '' ? [] : raw.split('&');
  const out: string[] = [];
  const placed = new Set<string>();
  for (const pair of pairs) {
    const name = decodeName(pair.split('=', 1)[0]);
    const param = params.find(([p]) => p === name);
    if (!param) {
      out.push(pair);
    } else if (!placed.has(name)) {
      placed.add(name);
      out.push(`${encodeURIComponent(param[0])}=${encodeURIComponent(param[1])}`);
    }
  }
  for (const [name, value] of params) {
    if (!placed.has(name)) out.push(`${encodeURIComponent(name)}=${encodeURIComponent(value)}`);
  }
  target.search = out.length ? `?${out.join('&')}` : '';
  return target.href;
}

/** The value of query parameter `name` in `url` (the first one), for the loop guard's starting cursor. */
function cursorIn(url: string, name: string): string | undefined {
  try {
    return new URL(url).searchParams.get(name) ?? undefined;
  } catch {
    return undefined;
  }
}

function decodeName(name: string): string {
  try {
    return decodeURIComponent(name.replace(/\+/g, ' '));
  } catch {
    return name;
  }
}

/** A GET (HEAD, DELETE) whose payload goes to the query: the payload merged into the URL once, then dropped. */
async function withQueryPayload(first: AuthorisedRequest): Promise<AuthorisedRequest> {
  const method = typeof first.method === 'string' ? first.method.toUpperCase() : '';
  if (first.paytoqs !== 'query' || !QUERY_METHODS.has(method) || first.body === undefined) return first;
  const encoded = await encodeRequest(method, resolveRequestUrl(first.url), {}, first.body, 'query');
  return { ...first, url: encoded.url.href, body: undefined, paytoqs: 'ignore' };
}

/** Remembers what was requested (URLs or cursors), to stop rather than fetch the same page forever. */
class LoopGuard {
  private readonly seen = new Set<string>();
  private previous: string | undefined;

  /** False when `value` was requested before. */
  check(value: string | undefined): boolean {
    if (value === undefined) return true;
    if (value === this.previous || this.seen.has(value)) return false;
    this.previous = value;
    if (this.seen.size < LOOP_MEMORY) this.seen.add(value);
    return true;
  }
}

/** Pagination fields as the editors of the request and record-change nodes save them. */
export interface PaginationConfig {
  pagination?: string;
  paginationPath?: string;
  paginationParam?: string;
  pageStart?: number | string;
  pageSizeParam?: string;
  pageSize?: number | string;
  /** Cursor in the body: where the later pages go (empty: the first URL). */
  paginationUrl?: string;
  /** Cursor in the body: the answer's "more pages follow" property. */
  paginationMorePath?: string;
}

/**
 * Maps a node's saved pagination fields to settings; 'none' (the default) is a single request. Does not
 * validate: pass the result to validatePagination, which names the bad field.
 */
export function paginationFromConfig(config: PaginationConfig): PaginationSettings {
  const text = (value: unknown): string => (typeof value === 'number' ? String(value) : typeof value === 'string' ? value.trim() : '');
  const path = text(config.paginationPath);
  const param = text(config.paginationParam);
  const sizeParam = text(config.pageSizeParam) || undefined;
  const sizeText = text(config.pageSize);
  const size = sizeText === '' ? undefined : Number(sizeText);
  const startText = text(config.pageStart);
  const start = startText === '' ? 1 : Number(startText);
  switch (config.pagination ?? 'none') {
    case '':
    case 'none':
      return { kind: 'none' };
    case 'link':
      return { kind: 'link' };
    case 'next-url':
      return { kind: 'next-url', path };
    case 'cursor':
      return { kind: 'cursor', path, param };
    case 'page':
      return { kind: 'page', param, start, sizeParam, size };
    case 'offset':
      return { kind: 'offset', param, sizeParam, size };
    case 'body-cursor': {
      const url = text(config.paginationUrl) || undefined;
      const morePath = text(config.paginationMorePath) || undefined;
      return { kind: 'body-cursor', path, param, ...(url ? { url } : {}), ...(morePath ? { morePath } : {}) };
    }
    default:
      // validatePagination names the field.
      return { kind: config.pagination } as unknown as PaginationSettings;
  }
}

/** How a caller wants a paginated answer collected (the request node's settings). */
export interface CollectOptions {
  maxPages: number;
  recordsPath: string;
  /** 'all': every page's records in one list; 'each': every page handed to `sendPage` as it arrives. */
  output: 'all' | 'each';
  /** 'each': a non-2xx page is handed on too (otherwise it ends the fetch and is the caller's error). */
  non2xxAsOutput: boolean;
}

export type Collected =
  | {
      kind: 'done';
      result: PaginationResult;
      /** 'all': every 2xx page's records, in order. */
      records: unknown[];
      /** 'each': how many pages went to `sendPage`. */
      sentPages: number;
    }
  /** A page had no list of records where the settings say (the response is the one that had none). */
  | { kind: 'records-not-found'; response: AuthorisedResponse; error: OAuth2Error };

class RecordsMissing extends Error {
  constructor(readonly response: AuthorisedResponse) {
    super('records not found');
  }
}

/**
 * Fetches every page of one request and collects them as the request node sends them: one list of records
 * ('all') or each page as it arrives ('each', `sendPage`). `onPage` sees every page first (progress). The
 * records of a page are found by one rule, the records path (or the automatic lookup), both for the list and
 * for the decision that a page is empty.
 */
export async function collectPages(
  first: AuthorisedRequest,
  settings: PaginationSettings,
  options: CollectOptions,
  send: (req: AuthorisedRequest) => Promise<AuthorisedResponse>,
  hooks: { onPage?: (page: Page) => void; sendPage?: (page: Page) => void } = {},
): Promise<Collected> {
  const records: unknown[] = [];
  let sentPages = 0;
  let result: PaginationResult;
  try {
    result = await fetchPages(
      first,
      settings,
      { maxPages: options.maxPages, findRecords: (body) => findRecords(body, options.recordsPath), keepPages: false },
      send,
      (page) => {
        hooks.onPage?.(page);
        const ok = page.response.statusCode >= 200 && page.response.statusCode < 300;
        if (options.output === 'each') {
          // The page that ends in an error is the caller's to raise, not to send.
          if (!ok && !options.non2xxAsOutput) return;
          hooks.sendPage?.(page);
          sentPages += 1;
          return;
        }
        if (!ok) return;
        if (page.records === undefined) throw new RecordsMissing(page.response);
        // push(...page.records) would overflow the stack on a page of a few hundred thousand records.
        for (const record of page.records) records.push(record);
      },
    );
  } catch (err) {
    if (err instanceof RecordsMissing) return { kind: 'records-not-found', response: err.response, error: recordsNotFound(options.recordsPath) };
    throw err;
  }
  // Page or offset counting could not go on ('each' output; 'all' has stopped at that page already).
  if (result.stop === 'records-not-found') return { kind: 'records-not-found', response: result.last.response, error: recordsNotFound(options.recordsPath) };
  return { kind: 'done', result, records, sentPages };
}
