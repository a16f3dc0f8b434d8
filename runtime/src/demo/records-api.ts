import * as http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface ApiRecord {
  id: number;
  name: string;
  /** ISO 8601, second precision (as many APIs do: this is what makes same-second boundaries real). */
  updated_at: string;
  [key: string]: unknown;
}

/**
 * How many list requests and sink bodies are remembered: the latest ones. A demo left running for weeks polls
 * every few seconds; what tests look at is far fewer.
 */
export const REMEMBERED_REQUESTS = 10_000;


export interface RecordsApi {
  url: string;
  records: ApiRecord[];
  /** Bodies POSTed to /sink, in arrival order (the latest REMEMBERED_REQUESTS). */
  sink: unknown[];
  /** Requests to any /records route, with their query (and the JSON body of a POST); the latest REMEMBERED_REQUESTS. */
  listRequests: Array<{ path: string; query: Record<string, string>; at: number; method?: string; body?: unknown }>;
  pageSize: number;
  /**
   * How lists are ordered: by id (default), by updated_at oldest or newest first (ties by id), or in no order
   * (a fixed shuffle of the ids, the same on every request, as a database without ORDER BY gives).
   */
  order: 'id' | 'oldest' | 'newest' | 'none';
  add(name: string, at?: Date): ApiRecord;
  update(id: number, changes: Partial<ApiRecord>, at?: Date): ApiRecord;
  remove(id: number): void;
  /** Fill with `n` records quickly (ids 1..n), all updated at `at`. */
  fill(n: number, at?: Date): void;
  close(): Promise<void>;
}

const isoSecond = (d: Date): string => new Date(Math.floor(d.getTime() / 1000) * 1000).toISOString().replace('.000Z', 'Z');

export interface RecordsApiOptions {
  /** Whether a bearer token is valid (the demo and the tests ask their authorization server). */
  validateToken(token: string): Promise<boolean>;
  host?: string;
  /** Default 0: any free port. */
  port?: number;
  /** Awaited before a list page (0-based index) is answered: tests hold a page there. */
  beforePage?(index: number): Promise<void>;
  /** How many list requests and sink bodies are kept (the latest). Default REMEMBERED_REQUESTS. */
  remembered?: number;
}

/**
 * A loopback "records" API protected by an authorization server: the demo's, or the tests' (whose records the
 * tests change).
 *   GET /records[?updated_since=ISO]           -> the whole (filtered) list, a JSON array
 *   GET /records/link?page=N                   -> {items}, Link: <...page=N+1>; rel="next" while more
 *   GET /records/next?after=ID                 -> {records, next: "/records/next?after=..." | null}
 *   GET /records/cursor?cursor=C               -> {data, next_cursor: C' | null}
 *   GET /records/page?page=N[&per_page=M]      -> {results} (1-based; empty past the end)
 *   GET /records/offset?offset=N[&limit=M]     -> {value}
 *   POST /records/search {filter: {updated_since}, after, limit}
 *                                              -> {results, paging: {next: {after}}} (no paging on the last page), as
 *                                                 a search API with its cursor in the body
 *   POST /records/list {updated_since, limit}  -> {entries, cursor, has_more}; the cursor always comes back, and
 *   POST /records/list/continue {cursor}       -> the next page; any other member in that body is a 400, as an
 *                                                 API with a separate "continue" endpoint
 *   POST /sink                                 -> 204, body kept in `sink`
 *   GET /received                              -> {count, items: the last 50 bodies POSTed to /sink}; no token
 *                                                 needed: it lets a person or a test watch what arrived
 * Lists are ordered by id unless `order` says otherwise; `updated_since` filters updated_at >= since (inclusive, as most APIs).
 */
/** A fixed, id-derived position for `order: 'none'` (Knuth's multiplicative hash: spreads ids without sorting them). */
const scrambled = (id: number): number => Math.imul(id, 2654435761) >>> 0;

function ordered(records: ApiRecord[], order: RecordsApi['order']): ApiRecord[] {
  if (order === 'id') return records;
  const at = (r: ApiRecord): number => Date.parse(r.updated_at);
  const sorted = [...records];
  if (order === 'none') return sorted.sort((a, b) => scrambled(a.id) - scrambled(b.id));
  const sign = order === 'oldest' ? 1 : -1;
  return sorted.sort((a, b) => sign * (at(a) - at(b) || a.id - b.id));
}

export async function startRecordsApi(options: RecordsApiOptions): Promise<RecordsApi> {
  let nextId = 1;
  const kept = options.remembered ?? REMEMBERED_REQUESTS;
  const remember = <T>(list: T[], item: T): void => {
    list.push(item);
    if (list.length > kept) list.splice(0, list.length - kept);
  };
  const api: RecordsApi = {
    url: '',
    records: [],
    sink: [],
    listRequests: [],
    pageSize: 2,
    order: 'id',
    add(name, at = new Date()) {
      const record: ApiRecord = { id: nextId++, name, updated_at: isoSecond(at) };
      api.records.push(record);
      return record;
    },
    update(id, changes, at = new Date()) {
      const record = api.records.find((r) => r.id === id);
      if (!record) throw new Error(`no record ${id}`);
      Object.assign(record, changes, { updated_at: isoSecond(at) });
      return record;
    },
    remove(id) {
      api.records = api.records.filter((r) => r.id !== id);
    },
    fill(n, at = new Date()) {
      const stamp = isoSecond(at);
      for (let i = 0; i < n; i += 1) api.records.push({ id: nextId++, name: `record ${nextId - 1}`, updated_at: stamp });
    },
    close: () => Promise.resolve(),
  };

  /** The POST lists: a cursor in the body, and back in the answer. */
  async function postList(path: string, text: string, json: (status: number, value: unknown) => void): Promise<void> {
    let body: Record<string, unknown>;
    try {
      const parsed: unknown = text ? JSON.parse(text) : {};
      if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) throw new Error('not an object');
      body = parsed as Record<string, unknown>;
    } catch {
      json(400, { error: 'invalid_request', message: 'the body must be a JSON object' });
      return;
    }
    remember(api.listRequests, { path, query: {}, at: Date.now(), method: 'POST', body });
    let since: string | undefined;
    let after = 0;
    let limit: number;
    if (path === '/records/search') {
      const filter = body.filter as Record<string, unknown> | undefined;
      since = typeof filter?.updated_since === 'string' ? filter.updated_since : undefined;
      after = Number(body.after ?? 0);
      limit = Number(body.limit ?? api.pageSize);
    } else if (path === '/records/list') {
      since = typeof body.updated_since === 'string' ? body.updated_since : undefined;
      limit = Number(body.limit ?? api.pageSize);
    } else if (path === '/records/list/continue') {
      const extra = Object.keys(body).filter((k) => k !== 'cursor');
      if (extra.length > 0 || typeof body.cursor !== 'string') {
        json(400, { error_summary: `unexpected or missing fields: ${extra.join(', ') || 'cursor'}` });
        return;
      }
      try {
        const state = JSON.parse(Buffer.from(body.cursor, 'base64url').toString('utf8')) as { after: number; since?: string; limit: number };
        ({ after, since, limit } = state);
      } catch {
        json(400, { error_summary: 'invalid cursor' });
        return;
      }
    } else {
      json(404, { error: 'not_found' });
      return;
    }
    if (!Number.isInteger(limit) || limit < 1 || !Number.isFinite(after)) {
      json(400, { error: 'invalid_request', message: 'limit and after must be numbers' });
      return;
    }
    const sinceMs = since ? Date.parse(since) : NaN;
    // Ordered by id: the cursor is the last id served.
    const list = since ? api.records.filter((r) => Date.parse(r.updated_at) >= sinceMs) : api.records;
    let start = after ? list.findIndex((r) => r.id > after) : 0;
    if (start < 0) start = list.length;
    await options.beforePage?.(Math.floor(start / limit));
    const page = list.slice(start, start + limit);
    const more = start + limit < list.length;
    const last = page.at(-1)?.id ?? after;
    if (path === '/records/search') {
      json(200, { total: list.length, results: page, ...(more ? { paging: { next: { after: String(last) } } } : {}) });
      return;
    }
    const cursor = Buffer.from(JSON.stringify({ after: last, since, limit })).toString('base64url');
    json(200, { entries: page, cursor, has_more: more });
  }

  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      void (async () => {
        const url = new URL(req.url ?? '/', 'http://127.0.0.1');
        const bearer = req.headers.authorization?.startsWith('Bearer ') ? req.headers.authorization.slice(7) : '';
        const json = (status: number, value: unknown, headers: Record<string, string> = {}): void => {
          res.writeHead(status, { 'content-type': 'application/json', ...headers });
          res.end(JSON.stringify(value));
        };
        if (req.method === 'GET' && url.pathname === '/received') {
          json(200, { count: api.sink.length, items: api.sink.slice(-50) }, { 'cache-control': 'no-store' });
          return;
        }
        if (!bearer || !(await options.validateToken(bearer))) {
          json(401, { error: 'invalid_token' }, { 'www-authenticate': 'Bearer error="invalid_token"' });
          return;
        }
        if (req.method === 'POST' && url.pathname === '/sink') {
          const text = Buffer.concat(chunks).toString('utf8');
          try {
            remember(api.sink, JSON.parse(text));
          } catch {
            remember(api.sink, text);
          }
          res.writeHead(204);
          res.end();
          return;
        }
        if (!url.pathname.startsWith('/records')) {
          json(404, { error: 'not_found' });
          return;
        }
        if (req.method === 'POST') {
          await postList(url.pathname, Buffer.concat(chunks).toString('utf8'), json);
          return;
        }
        const query = Object.fromEntries(url.searchParams);
        remember(api.listRequests, { path: url.pathname, query, at: Date.now() });
        const since = url.searchParams.get('updated_since');
        const sinceMs = since ? Date.parse(since) : NaN;
        const list = ordered(since ? api.records.filter((r) => Date.parse(r.updated_at) >= sinceMs) : api.records, api.order);
        const size = Number(url.searchParams.get('per_page') ?? url.searchParams.get('limit') ?? api.pageSize);
        const style = url.pathname.slice('/records'.length).replace(/^\//, '');
        let start = 0;
        if (style === 'link' || style === 'page') start = (Number(url.searchParams.get('page') ?? 1) - 1) * size;
        if (style === 'offset') start = Number(url.searchParams.get('offset') ?? 0);
        if (style === 'cursor' || style === 'next') {
          const after = Number(url.searchParams.get(style === 'cursor' ? 'cursor' : 'after') ?? 0);
          start = after ? list.findIndex((r) => r.id > after) : 0;
          if (start < 0) start = list.length;
        }
        const pageIndex = style ? Math.floor(start / size) : 0;
        await options.beforePage?.(style ? pageIndex : 0);
        if (!style) {
          json(200, list);
          return;
        }
        const page = list.slice(start, start + size);
        const more = start + size < list.length;
        const last = page.at(-1)?.id;
        switch (style) {
          case 'link': {
            const next = new URL(url.href);
            next.searchParams.set('page', String(pageIndex + 2));
            json(200, { items: page }, more ? { link: `<${next.pathname}${next.search}>; rel="next"` } : {});
            return;
          }
          case 'next':
            json(200, { records: page, next: more ? `/records/next?after=${last}` : null });
            return;
          case 'cursor':
            json(200, { data: page, next_cursor: more ? String(last) : null });
            return;
          case 'page':
            json(200, { results: page });
            return;
          case 'offset':
            json(200, { value: page });
            return;
          default:
            json(404, { error: 'not_found' });
        }
      })().catch(() => {
        res.writeHead(500);
        res.end();
      });
    });
  });
  const host = options.host ?? '127.0.0.1';
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, host, () => resolve());
  });
  api.url = `http://${host.includes(':') ? `[${host}]` : host}:${(server.address() as AddressInfo).port}`;
  api.close = () =>
    new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  return api;
}
