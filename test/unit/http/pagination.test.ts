import assert from 'node:assert/strict';
import type http from 'node:http';
import { isOAuth2Error } from '../../../nodes/lib/errors';
import { createAgents, type AgentPair } from '../../../nodes/lib/http/agents';
import { fetchPages, parseLinkHeader, type Page, type PaginationOptions, type PaginationSettings } from '../../../nodes/lib/http/pagination';
import { findRecords } from '../../../nodes/lib/http/records';
import { sendAuthorised, type AuthorisedRequest } from '../../../nodes/lib/http/request';
import { retryPolicy } from '../../../nodes/lib/http/retry';
import { TOKEN_PREFIX, baseRequest, startServer, testAuthorizer, type TestServer } from './support';

/** 25 records, ids 1..25. */
const ALL = Array.from({ length: 25 }, (_, i) => ({ id: i + 1 }));

function json(res: http.ServerResponse, value: unknown, headers: Record<string, string> = {}, status = 200): void {
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(JSON.stringify(value));
}

function query(req: http.IncomingMessage): URLSearchParams {
  return new URL(req.url ?? '/', 'http://x').searchParams;
}

function ids(records: unknown[] | undefined): number[] {
  return (records ?? []).map((r) => (r as { id: number }).id);
}

describe('http/pagination', () => {
  let agents: AgentPair;
  const servers: TestServer[] = [];
  beforeEach(() => {
    agents = createAgents({});
  });
  afterEach(async () => {
    agents.destroy();
    await Promise.all(servers.splice(0).map((s) => s.close()));
  });
  async function server(handler: Parameters<typeof startServer>[0]): Promise<TestServer> {
    const s = await startServer(handler);
    servers.push(s);
    return s;
  }

  /** fetchPages through the real pipeline, the test authorizer allowing only `allowed`. */
  function run(
    url: string,
    settings: PaginationSettings,
    allowed: string[],
    options: Partial<PaginationOptions> = {},
    onPage?: (page: Page) => void | Promise<void>,
    request: Partial<AuthorisedRequest> = {},
  ): ReturnType<typeof fetchPages> {
    const authorizer = testAuthorizer(allowed);
    return fetchPages(
      baseRequest(url, { responseMode: 'obj', retry: retryPolicy({ maxAttempts: 1 }), ...request }),
      settings,
      { maxPages: 10, findRecords: (body) => findRecords(body), ...options },
      (req) => sendAuthorised(req, { authorizer, agents }),
      onPage,
    );
  }

  function paths(s: TestServer): string[] {
    return s.seen.map((r) => r.url);
  }

  describe('Link header', () => {
    it('follows rel="next" (absolute) until there is none; every page authorised; other query parameters kept', async () => {
      const s = await server((req, res) => {
        const page = Number(query(req).get('page') ?? '1');
        const next = page < 3 ? { link: `<${s.origin}/items?filter=a%20b&sort=id,desc&page=${page + 1}>; rel="next", <${s.origin}/items?page=1>; rel="first"` } : ({} as Record<string, string>);
        json(res, ALL.slice((page - 1) * 10, page * 10), next);
      });
      const result = await run(`${s.origin}/items?filter=a%20b&sort=id,desc`, { kind: 'link' }, [s.origin]);
      assert.equal(result.complete, true);
      assert.equal(result.stop, 'end');
      assert.equal(result.count, 3);
      assert.deepEqual(result.pages.map((p) => p.index), [0, 1, 2]);
      assert.deepEqual(ids(result.pages.flatMap((p) => p.records ?? [])), ALL.map((r) => r.id));
      assert.deepEqual(paths(s), ['/items?filter=a%20b&sort=id,desc', '/items?filter=a%20b&sort=id,desc&page=2', '/items?filter=a%20b&sort=id,desc&page=3']);
      assert.ok(s.seen.every((r) => r.headers.authorization === `Bearer ${TOKEN_PREFIX}-1`));
      assert.equal(result.pages[1].url, `${s.origin}/items?filter=a%20b&sort=id,desc&page=2`);
      assert.equal(result.last, result.pages[2]);
    });

    it('resolves a relative next link against the URL of the page it came from (after a redirect)', async () => {
      const s = await server((req, res) => {
        const url = new URL(req.url ?? '/', s.origin);
        if (url.pathname === '/old') return void res.writeHead(301, { location: '/v2/list?page=1' }).end();
        const page = Number(url.searchParams.get('page'));
        json(res, { data: [{ id: page }] }, page < 3 ? { link: `<list?page=${page + 1}>; rel="next"` } : {});
      });
      const result = await run(`${s.origin}/old`, { kind: 'link' }, [s.origin]);
      assert.deepEqual(paths(s), ['/old', '/v2/list?page=1', '/v2/list?page=2', '/v2/list?page=3']);
      assert.deepEqual(ids(result.pages.flatMap((p) => p.records ?? [])), [1, 2, 3]);
      assert.equal(result.complete, true);
    });

    it('refuses a next link to an origin the connection does not allow: OAUTH2_ORIGIN_NOT_ALLOWED, nothing sent there', async () => {
      const other = await server((_q, res) => json(res, [{ id: 99 }]));
      const s = await server((_q, res) => json(res, [{ id: 1 }], { link: `<${other.origin}/steal?page=2>; rel="next"` }));
      const seenPages: number[] = [];
      await assert.rejects(
        run(`${s.origin}/items`, { kind: 'link' }, [s.origin], {}, (page) => void seenPages.push(page.index)),
        (err: unknown) => {
          assert.ok(isOAuth2Error(err, 'OAUTH2_ORIGIN_NOT_ALLOWED'));
          assert.ok(!JSON.stringify({ m: err.message, p: err.params }).includes(TOKEN_PREFIX));
          return true;
        },
      );
      assert.deepEqual(seenPages, [0], 'the first page was handed over before the refusal');
      assert.equal(other.connections, 0, 'no connection was even opened to the other origin');
      assert.equal(s.seen.length, 1);
    });

    it('stops (loop) when the next link points back to a page already fetched', async () => {
      const s = await server((req, res) => {
        const page = Number(query(req).get('page') ?? '1');
        json(res, [{ id: page }], { link: `</items?page=${page === 2 ? 1 : 2}>; rel="next"` });
      });
      const result = await run(`${s.origin}/items?page=1`, { kind: 'link' }, [s.origin]);
      assert.equal(result.stop, 'loop');
      assert.equal(result.complete, false);
      assert.deepEqual(paths(s), ['/items?page=1', '/items?page=2']);
    });
  });

  describe('next URL in the body', () => {
    it('follows a relative next URL, resolved against the current page URL', async () => {
      const s = await server((req, res) => {
        const page = Number(query(req).get('p') ?? '1');
        json(res, { items: ALL.slice((page - 1) * 10, page * 10), links: { next: page < 3 ? `?p=${page + 1}` : null } });
      });
      const result = await run(`${s.origin}/api/items`, { kind: 'next-url', path: 'links.next' }, [s.origin]);
      assert.deepEqual(paths(s), ['/api/items', '/api/items?p=2', '/api/items?p=3']);
      assert.equal(ids(result.pages.flatMap((p) => p.records ?? [])).length, 25);
      assert.equal(result.complete, true);
      assert.equal(result.stop, 'end');
    });

    it('follows an absolute next URL, including a dotted key (@odata.nextLink)', async () => {
      const s = await server((req, res) => {
        const skip = Number(query(req).get('$skiptoken') ?? '0');
        const body: Record<string, unknown> = { value: ALL.slice(skip, skip + 10) };
        if (skip + 10 < ALL.length) body['@odata.nextLink'] = `${s.origin}/users?$skiptoken=${skip + 10}`;
        json(res, body);
      });
      const result = await run(`${s.origin}/users`, { kind: 'next-url', path: '@odata.nextLink' }, [s.origin]);
      assert.deepEqual(paths(s), ['/users', '/users?$skiptoken=10', '/users?$skiptoken=20']);
      assert.deepEqual(ids(result.pages.flatMap((p) => p.records ?? [])), ALL.map((r) => r.id));
      assert.equal(result.complete, true);
    });

    it('stops when the next URL is missing, empty or not a string', async () => {
      for (const next of [undefined, '', '   ', 42, { href: '/x' }]) {
        const s = await server((_q, res) => json(res, { data: [{ id: 1 }], next }));
        const result = await run(`${s.origin}/items`, { kind: 'next-url', path: 'next' }, [s.origin]);
        assert.equal(result.count, 1, JSON.stringify(next));
        assert.equal(result.complete, true);
      }
    });
  });

  describe('cursor', () => {
    it('sends the cursor back as the query parameter, replacing (not repeating) it, other parameters kept', async () => {
      const cursors = ['c2', 'c3 with space', ''];
      const s = await server((req, res) => {
        const cursor = query(req).get('cursor');
        const index = cursor === 'start' ? 0 : cursors.indexOf(cursor ?? '') + 1;
        json(res, { data: ALL.slice(index * 10, index * 10 + 10), meta: { next_cursor: cursors[index] } });
      });
      const result = await run(`${s.origin}/items?cursor=start&limit=10&q=x,y`, { kind: 'cursor', path: 'meta.next_cursor', param: 'cursor' }, [s.origin]);
      assert.deepEqual(paths(s), [
        '/items?cursor=start&limit=10&q=x,y',
        '/items?cursor=c2&limit=10&q=x,y',
        '/items?cursor=c3%20with%20space&limit=10&q=x,y',
      ]);
      assert.deepEqual(ids(result.pages.flatMap((p) => p.records ?? [])), ALL.map((r) => r.id));
      assert.equal(result.complete, true, 'an empty cursor is the end');
      assert.equal(result.stop, 'end');
    });

    it('appends the parameter when the first URL has none; a numeric cursor is sent as text; a missing one ends', async () => {
      const s = await server((req, res) => {
        const after = Number(query(req).get('after') ?? '0');
        json(res, after < 20 ? { records: ALL.slice(after, after + 10), next: after + 10 } : { records: ALL.slice(after) });
      });
      const result = await run(`${s.origin}/items`, { kind: 'cursor', path: 'next', param: 'after' }, [s.origin]);
      assert.deepEqual(paths(s), ['/items', '/items?after=10', '/items?after=20']);
      assert.equal(result.complete, true);
    });

    it('stops (loop guard) when the API returns the cursor it was just given', async () => {
      const s = await server((_q, res) => json(res, { data: [{ id: 1 }], cursor: 'same' }));
      const result = await run(`${s.origin}/items`, { kind: 'cursor', path: 'cursor', param: 'c' }, [s.origin]);
      assert.deepEqual(paths(s), ['/items', '/items?c=same']);
      assert.equal(result.stop, 'loop');
      assert.equal(result.complete, false);
    });

    it('stops (loop guard) when the first cursor comes back', async () => {
      const s = await server((req, res) => json(res, { data: [{ id: 1 }], cursor: query(req).get('c') === 'a' ? 'b' : 'a' }));
      const result = await run(`${s.origin}/items?c=a`, { kind: 'cursor', path: 'cursor', param: 'c' }, [s.origin]);
      assert.deepEqual(paths(s), ['/items?c=a', '/items?c=b']);
      assert.equal(result.stop, 'loop');
    });
  });

  describe('cursor in a POST body', () => {
    const bodies = (s: TestServer): unknown[] => s.seen.map((r) => JSON.parse(r.body.toString('utf8')) as unknown);
    const post = (body: unknown): Partial<AuthorisedRequest> => ({ method: 'POST', body });

    it('repeats the first body with the cursor set at a dot path, read back at a path of the answer (a search API)', async () => {
      const s = await server((_req, res, body) => {
        const after = Number((JSON.parse(body.toString('utf8')) as { paging?: { after?: string } }).paging?.after ?? 0);
        json(res, { results: ALL.slice(after, after + 10), ...(after + 10 < ALL.length ? { paging: { next: { after: String(after + 10) } } } : {}) });
      });
      const first = { filter: { q: 'x' }, limit: 10 };
      const result = await run(`${s.origin}/search`, { kind: 'body-cursor', path: 'paging.next.after', param: 'paging.after' }, [s.origin], {}, undefined, post(first));
      assert.deepEqual(bodies(s), [first, { ...first, paging: { after: '10' } }, { ...first, paging: { after: '20' } }]);
      assert.ok(s.seen.every((r) => r.method === 'POST' && r.url === '/search' && String(r.headers['content-type']).startsWith('application/json')));
      assert.deepEqual(ids(result.pages.flatMap((p) => p.records ?? [])), ALL.map((r) => r.id));
      assert.equal(result.complete, true);
      assert.deepEqual(first, { filter: { q: 'x' }, limit: 10 }, 'the first body is not changed');
    });

    it('with a continue URL, later pages go there with the cursor alone; has_more false ends although a cursor comes back', async () => {
      // The first page, then an empty page that says more follow (believed), then the rest.
      const answers: Record<string, unknown> = {
        first: { entries: ALL.slice(0, 10), cursor: 'c10', has_more: true },
        c10: { entries: [], cursor: 'gap', has_more: true },
        gap: { entries: ALL.slice(10, 20), cursor: 'c20', has_more: true },
        c20: { entries: ALL.slice(20), cursor: 'c25', has_more: false },
      };
      const s = await server((req, res, body) => {
        const sent = JSON.parse(body.toString('utf8')) as { cursor?: string };
        json(res, answers[req.url === '/list' ? 'first' : String(sent.cursor)] ?? { error: 'unknown cursor' }, {}, req.url === '/list' || sent.cursor ? 200 : 400);
      });
      const result = await run(
        `${s.origin}/list`,
        { kind: 'body-cursor', path: 'cursor', param: 'cursor', url: '/list/continue', morePath: 'has_more' },
        [s.origin],
        { findRecords: (body) => findRecords(body, 'entries') },
        undefined,
        post({ path: '/docs', recursive: true }),
      );
      assert.deepEqual(paths(s), ['/list', '/list/continue', '/list/continue', '/list/continue']);
      assert.deepEqual(bodies(s), [{ path: '/docs', recursive: true }, { cursor: 'c10' }, { cursor: 'gap' }, { cursor: 'c20' }]);
      assert.deepEqual(ids(result.pages.flatMap((p) => p.records ?? [])), ALL.map((r) => r.id));
      assert.equal(result.stop, 'end');
      assert.equal(result.complete, true);
    });

    it('cut at maxPages, it says where to go on (the next body), and a fetch resumed there reads the rest', async () => {
      const s = await server((_req, res, body) => {
        const after = Number((JSON.parse(body.toString('utf8')) as { after?: string }).after ?? 0);
        json(res, { results: ALL.slice(after, after + 10), next: after + 10 < ALL.length ? String(after + 10) : null });
      });
      const settings: PaginationSettings = { kind: 'body-cursor', path: 'next', param: 'after' };
      const cut = await run(`${s.origin}/q`, settings, [s.origin], { maxPages: 1 }, undefined, post({ limit: 10 }));
      assert.equal(cut.stop, 'max-pages');
      assert.deepEqual(cut.next, { url: `${s.origin}/q`, pages: 1, offset: 0, body: { limit: 10, after: '10' } });
      const rest = await run(`${s.origin}/q`, settings, [s.origin], { resume: cut.next }, undefined, post({ limit: 10 }));
      assert.deepEqual(ids(rest.pages.flatMap((p) => p.records ?? [])), ALL.slice(10).map((r) => r.id));
      assert.equal(rest.complete, true);
    });

    it('stops (loop guard) when the cursor comes back; refuses a GET and a body that is not an object, naming the field', async () => {
      const s = await server((_req, res) => json(res, { data: [{ id: 1 }], next: 'same' }));
      const looped = await run(`${s.origin}/q`, { kind: 'body-cursor', path: 'next', param: 'c' }, [s.origin], {}, undefined, post({}));
      assert.equal(looped.stop, 'loop');
      assert.equal(s.seen.length, 2);
      const settings: PaginationSettings = { kind: 'body-cursor', path: 'next', param: 'c' };
      await assert.rejects(run(`${s.origin}/q`, settings, [s.origin]), (err: unknown) => isOAuth2Error(err, 'OAUTH2_INVALID_CONFIG') && err.params?.field === 'method');
      await assert.rejects(run(`${s.origin}/q`, settings, [s.origin], {}, undefined, post([1])), (err: unknown) => isOAuth2Error(err, 'OAUTH2_INVALID_CONFIG') && err.params?.field === 'body');
      await assert.rejects(run(`${s.origin}/q`, { ...settings, param: 'a.__proto__' }, [s.origin], {}, undefined, post({})), (err: unknown) => isOAuth2Error(err, 'OAUTH2_INVALID_CONFIG') && err.params?.field === 'paginationParam');
      assert.equal(s.seen.length, 2, 'nothing sent for the refused settings');
    });
  });

  describe('page counting', () => {
    function pagedServer(param: string, sizeParam: string, defaultSize = 10): Promise<TestServer> {
      return server((req, res) => {
        const q = query(req);
        const page = Number(q.get(param));
        const size = Number(q.get(sizeParam) ?? defaultSize);
        json(res, { results: ALL.slice((page - 1) * size, page * size) });
      });
    }

    it('starts at 1 by default, sets page and size params (an existing page param replaced in place), stops on the empty page', async () => {
      const s = await pagedServer('page', 'limit');
      const result = await run(`${s.origin}/items?page=7&q=1`, { kind: 'page', param: 'page', start: 1, sizeParam: 'limit', size: 10 }, [s.origin]);
      assert.deepEqual(paths(s), ['/items?page=1&q=1&limit=10', '/items?page=2&q=1&limit=10', '/items?page=3&q=1&limit=10', '/items?page=4&q=1&limit=10']);
      assert.deepEqual(result.pages.map((p) => p.records?.length), [10, 10, 5, 0]);
      assert.equal(result.stop, 'empty');
      assert.equal(result.complete, true);
    });

    it('counts from another start and sends no size param when none is set', async () => {
      const s = await server((req, res) => {
        const page = Number(query(req).get('p'));
        json(res, page <= 1 ? [{ id: page }] : []);
      });
      const result = await run(`${s.origin}/items`, { kind: 'page', param: 'p', start: 0 }, [s.origin]);
      assert.deepEqual(paths(s), ['/items?p=0', '/items?p=1', '/items?p=2']);
      assert.equal(result.complete, true);
    });

    it('stops at maxPages with complete false when the API still has pages', async () => {
      const s = await pagedServer('page', 'per_page');
      const result = await run(`${s.origin}/items`, { kind: 'page', param: 'page', start: 1, sizeParam: 'per_page', size: 5 }, [s.origin], { maxPages: 2 });
      assert.deepEqual(paths(s), ['/items?page=1&per_page=5', '/items?page=2&per_page=5']);
      assert.equal(result.count, 2);
      assert.equal(result.stop, 'max-pages');
      assert.equal(result.complete, false);
    });

    it('is complete when the last page allowed is also the API saying "no more"', async () => {
      const s = await server((req, res) => {
        const page = Number(query(req).get('page') ?? '1');
        json(res, [{ id: page }], page < 2 ? { link: `</items?page=${page + 1}>; rel="next"` } : {});
      });
      const result = await run(`${s.origin}/items`, { kind: 'link' }, [s.origin], { maxPages: 2 });
      assert.equal(result.count, 2);
      assert.equal(result.complete, true);
    });

    it('stops (records-not-found) when a page has no list of records to count', async () => {
      const s = await server((_q, res) => json(res, { total: 3 }));
      const result = await run(`${s.origin}/items`, { kind: 'page', param: 'page', start: 1 }, [s.origin]);
      assert.equal(result.count, 1);
      assert.equal(result.stop, 'records-not-found');
      assert.equal(result.complete, false);
      assert.equal(result.last.records, undefined);
    });

    it('merges a query payload (paytoqs query) into the URL once: it is not repeated on each page', async () => {
      const s = await pagedServer('page', 'limit');
      await run(`${s.origin}/items`, { kind: 'page', param: 'page', start: 1, sizeParam: 'limit', size: 20 }, [s.origin], {}, undefined, {
        body: { q: 'x y', page: 99 },
        paytoqs: 'query',
      });
      assert.deepEqual(paths(s), ['/items?q=x%20y&page=1&limit=20', '/items?q=x%20y&page=2&limit=20', '/items?q=x%20y&page=3&limit=20']);
    });
  });

  describe('offset counting', () => {
    function offsetServer(max = 10): Promise<TestServer> {
      return server((req, res) => {
        const q = query(req);
        const offset = Number(q.get('offset'));
        const size = Math.min(Number(q.get('limit') ?? max), max);
        json(res, { data: ALL.slice(offset, offset + size) });
      });
    }

    it('starts at 0 and adds the number of records on each page, with the size param', async () => {
      // The API caps the size at 10 whatever is asked: the offset follows what came, not what was asked.
      const s = await offsetServer(10);
      const result = await run(`${s.origin}/items?sort=id`, { kind: 'offset', param: 'offset', sizeParam: 'limit', size: 50 }, [s.origin]);
      assert.deepEqual(paths(s), [
        '/items?sort=id&offset=0&limit=50',
        '/items?sort=id&offset=10&limit=50',
        '/items?sort=id&offset=20&limit=50',
        '/items?sort=id&offset=25&limit=50',
      ]);
      assert.deepEqual(ids(result.pages.flatMap((p) => p.records ?? [])), ALL.map((r) => r.id));
      assert.equal(result.complete, true);
      assert.equal(result.stop, 'empty');
    });

    it('works without a size param', async () => {
      const s = await offsetServer(8);
      const result = await run(`${s.origin}/items`, { kind: 'offset', param: 'offset' }, [s.origin]);
      assert.deepEqual(paths(s), ['/items?offset=0', '/items?offset=8', '/items?offset=16', '/items?offset=24', '/items?offset=25']);
      assert.deepEqual(ids(result.pages.flatMap((p) => p.records ?? [])), ALL.map((r) => r.id));
      assert.equal(result.complete, true);
    });
  });

  describe('stops and errors', () => {
    it('returns a non-2xx page mid-way as the last page, complete false', async () => {
      const s = await server((req, res) => {
        const page = Number(query(req).get('page'));
        if (page === 2) return json(res, { error: 'boom' }, {}, 500);
        json(res, [{ id: page }]);
      });
      const result = await run(`${s.origin}/items`, { kind: 'page', param: 'page', start: 1 }, [s.origin]);
      assert.equal(result.count, 2);
      assert.equal(result.stop, 'status');
      assert.equal(result.complete, false);
      assert.equal(result.last.response.statusCode, 500);
      assert.deepEqual(result.last.response.body, { error: 'boom' });
      assert.equal(result.last.records, undefined, 'a non-2xx page has no records');
    });

    it('stops on an empty first page, complete', async () => {
      const s = await server((_q, res) => json(res, { items: [] }, { link: '</items?page=2>; rel="next"' }));
      const result = await run(`${s.origin}/items`, { kind: 'link' }, [s.origin]);
      assert.equal(result.count, 1);
      assert.equal(result.stop, 'empty');
      assert.equal(result.complete, true);
    });

    it("'none' sends the first request only, as it is", async () => {
      const s = await server((_q, res) => json(res, [{ id: 1 }], { link: '</items?page=2>; rel="next"' }));
      const result = await run(`${s.origin}/items?page=1`, { kind: 'none' }, [s.origin]);
      assert.deepEqual(paths(s), ['/items?page=1']);
      assert.equal(result.complete, true);
      assert.equal(result.stop, 'end');
    });

    it('rejects invalid settings before sending anything, naming the field', async () => {
      const s = await server((_q, res) => json(res, []));
      const cases: Array<[PaginationSettings, number, string]> = [
        [{ kind: 'cursor', path: 'next', param: ' ' }, 10, 'paginationParam'],
        [{ kind: 'next-url', path: '' }, 10, 'paginationPath'],
        [{ kind: 'page', param: 'p', start: 1.5 }, 10, 'pageStart'],
        [{ kind: 'offset', param: 'o', sizeParam: 'limit', size: 0 }, 10, 'pageSize'],
        [{ kind: 'sideways' } as unknown as PaginationSettings, 10, 'pagination'],
        [{ kind: 'link' }, 0, 'maxPages'],
        [{ kind: 'link' }, 2.5, 'maxPages'],
      ];
      for (const [settings, maxPages, field] of cases) {
        await assert.rejects(run(`${s.origin}/items`, settings, [s.origin], { maxPages }), (err: unknown) => {
          assert.ok(isOAuth2Error(err, 'OAUTH2_INVALID_CONFIG'));
          assert.equal(err.params.field, field);
          return true;
        });
      }
      assert.equal(s.connections, 0);
    });

    it('propagates an error thrown by onPage and requests no further page', async () => {
      const s = await server((_req, res) => json(res, [{ id: 1 }], { link: `</items?n=${s.seen.length + 1}>; rel="next"` }));
      await assert.rejects(
        run(`${s.origin}/items`, { kind: 'link' }, [s.origin], {}, (page) => {
          if (page.index === 1) throw new Error('stop here');
        }),
        /stop here/,
      );
      assert.equal(s.seen.length, 2);
    });
  });

  describe('the records rule decides the stop', () => {
    /** Pages are objects with the records under response.rows: the automatic lookup finds no list there. */
    async function rowsServer(): Promise<TestServer> {
      return server((req, res) => {
        const offset = Number(query(req).get('offset') ?? '0');
        json(res, { response: { rows: ALL.slice(offset, offset + 10), total: ALL.length } });
      });
    }
    /** A records rule that answers later, as a JSONata expression does. */
    const rows = async (body: unknown): Promise<unknown[] | undefined> => {
      await new Promise((r) => setImmediate(r));
      const found = (body as { response?: { rows?: unknown } } | undefined)?.response?.rows;
      return Array.isArray(found) ? found : undefined;
    };

    it('an async records rule finds each page\'s records, moves the offset by them and stops on its own empty page', async () => {
      const s = await rowsServer();
      const result = await run(`${s.origin}/items`, { kind: 'offset', param: 'offset' }, [s.origin], { findRecords: rows });
      assert.deepEqual(paths(s), ['/items?offset=0', '/items?offset=10', '/items?offset=20', '/items?offset=25']);
      assert.deepEqual(ids(result.pages.flatMap((p) => p.records ?? [])), ALL.map((r) => r.id));
      assert.equal(result.stop, 'empty');
      assert.equal(result.complete, true);
    });

    it('page counting with the same rule reads every page; the automatic lookup alone cannot count them', async () => {
      const s = await server((req, res) => {
        const page = Number(query(req).get('page') ?? '1');
        json(res, { response: { rows: ALL.slice((page - 1) * 10, page * 10) } });
      });
      const result = await run(`${s.origin}/items`, { kind: 'page', param: 'page', start: 1 }, [s.origin], { findRecords: rows });
      assert.equal(result.count, 4);
      assert.equal(result.stop, 'empty');
      assert.deepEqual(ids(result.pages.flatMap((p) => p.records ?? [])), ALL.map((r) => r.id));
      const auto = await run(`${s.origin}/items`, { kind: 'page', param: 'page', start: 1 }, [s.origin]);
      assert.equal(auto.stop, 'records-not-found');
    });
  });

  describe('a records rule that filters: the list the API pages decides the end', () => {
    /** Records 1-25 under data, 10 a page; the open ones are the odd ids above 20, all on the last page. */
    const OPEN = (r: { id: number }): boolean => r.id % 2 === 1 && r.id > 20;
    /** A JSONata-like rule keeping only the open records: pages 1 and 2 filter to nothing. */
    const openOnly = async (body: unknown): Promise<unknown[] | undefined> => {
      await new Promise((r) => setImmediate(r));
      const data = (body as { data?: unknown } | undefined)?.data;
      return Array.isArray(data) ? (data as { id: number }[]).filter(OPEN) : undefined;
    };
    const list = (body: unknown): unknown[] | undefined => findRecords(body);

    it('link pagination reads on past pages the rule filters to nothing when the list is not empty', async () => {
      const s = await server((req, res) => {
        const offset = Number(query(req).get('offset') ?? '0');
        const next: Record<string, string> = offset + 10 < ALL.length ? { link: `</items?offset=${offset + 10}>; rel="next"` } : {};
        json(res, { data: ALL.slice(offset, offset + 10) }, next);
      });
      const result = await run(`${s.origin}/items`, { kind: 'link' }, [s.origin], { findRecords: openOnly, listOf: list });
      assert.equal(result.count, 3);
      assert.equal(result.stop, 'end');
      assert.equal(result.complete, true);
      assert.deepEqual(ids(result.pages.flatMap((p) => p.records ?? [])), [21, 23, 25]);
      // The rule alone would have called page 1 the end of the list: everything after it unseen (and, with
      // deletions on, every remembered record there reported deleted).
      const alone = await run(`${s.origin}/items`, { kind: 'link' }, [s.origin], { findRecords: openOnly });
      assert.equal(alone.count, 1);
      assert.equal(alone.complete, true);
    });

    it('link pagination with no list the lookup can see goes on to the next link instead of stopping on a filtered page', async () => {
      const s = await server((req, res) => {
        const offset = Number(query(req).get('offset') ?? '0');
        const next: Record<string, string> = offset + 10 < ALL.length ? { link: `</items?offset=${offset + 10}>; rel="next"` } : {};
        json(res, { result: { data: ALL.slice(offset, offset + 10) } }, next);
      });
      const nested = async (body: unknown): Promise<unknown[] | undefined> => openOnly((body as { result?: unknown }).result);
      const result = await run(`${s.origin}/items`, { kind: 'link' }, [s.origin], { findRecords: nested, listOf: list });
      assert.equal(result.count, 3);
      assert.equal(result.complete, true);
      assert.deepEqual(ids(result.pages.flatMap((p) => p.records ?? [])), [21, 23, 25]);
    });

    it('offset counting moves by the list, not by the records the rule kept, and ends on the empty list', async () => {
      const s = await server((req, res) => {
        const offset = Number(query(req).get('offset') ?? '0');
        json(res, { data: ALL.slice(offset, offset + 10) });
      });
      const result = await run(`${s.origin}/items`, { kind: 'offset', param: 'offset' }, [s.origin], { findRecords: openOnly, listOf: list });
      assert.deepEqual(paths(s), ['/items?offset=0', '/items?offset=10', '/items?offset=20', '/items?offset=25']);
      assert.equal(result.stop, 'empty');
      assert.equal(result.complete, true);
      assert.deepEqual(ids(result.pages.flatMap((p) => p.records ?? [])), [21, 23, 25]);
    });
  });

  describe('memory: keepPages false and onPage', () => {
    it('returns no pages, hands each page to an awaited onPage in order, and keeps the last', async () => {
      let inFlight = 0;
      let maxInFlight = 0;
      const s = await server((req, res) => {
        inFlight += 1;
        maxInFlight = Math.max(maxInFlight, inFlight);
        const page = Number(query(req).get('page'));
        setTimeout(() => {
          inFlight -= 1;
          json(res, { data: page <= 50 ? Array.from({ length: 100 }, (_, i) => ({ id: (page - 1) * 100 + i })) : [] });
        }, 1);
      });
      let total = 0;
      const order: number[] = [];
      const result = await run(`${s.origin}/items`, { kind: 'page', param: 'page', start: 1 }, [s.origin], { keepPages: false, maxPages: 1000 }, async (page) => {
        order.push(page.index);
        total += page.records?.length ?? 0;
        await new Promise((r) => setTimeout(r, 1));
      });
      assert.deepEqual(result.pages, []);
      assert.equal(result.count, 51);
      assert.equal(result.last.index, 50);
      assert.equal(total, 5000);
      assert.deepEqual(order, Array.from({ length: 51 }, (_, i) => i));
      assert.equal(maxInFlight, 1, 'pages are fetched one after the other');
      assert.equal(result.complete, true);
    });
  });

  describe('parseLinkHeader', () => {
    it('reads several links, quoted and unquoted rel, spaces anywhere', () => {
      const value = '<https://api.example.com/items?page=2>; rel="next",  <https://api.example.com/items?page=9> ;rel=last ,<https://api.example.com/items?page=1>;   rel = "first"';
      assert.deepEqual(parseLinkHeader(value), {
        next: 'https://api.example.com/items?page=2',
        last: 'https://api.example.com/items?page=9',
        first: 'https://api.example.com/items?page=1',
      });
    });

    it('splits rel="prev next" into both, lower-cases relation names, and keeps the first link for a relation', () => {
      assert.deepEqual(parseLinkHeader('</a>; rel="PREV Next"; title="x, y; z", </b>; rel="next"'), { prev: '/a', next: '/a' });
    });

    it('ignores a second rel parameter in one link (RFC 8288 §3.3) and parameters other than rel', () => {
      assert.deepEqual(parseLinkHeader('</a>; type="text/html"; rel="next"; rel="last"; hreflang=en'), { next: '/a' });
    });

    it('keeps commas and semicolons inside the URL', () => {
      assert.deepEqual(parseLinkHeader('<https://x/items?sort=a,b;c=1>; rel="next"'), { next: 'https://x/items?sort=a,b;c=1' });
    });

    it('reads several header lines and skips malformed link-values', () => {
      assert.deepEqual(parseLinkHeader(['garbage; rel="up", </b>; rel="next"', '</c>; rel="last"']), { next: '/b', last: '/c' });
      assert.deepEqual(parseLinkHeader('</a>; rel="next" junk, </b>; rel="last"'), { next: '/a', last: '/b' });
      assert.deepEqual(parseLinkHeader('</a'), {});
      assert.deepEqual(parseLinkHeader('</a>'), {});
      assert.deepEqual(parseLinkHeader(undefined), {});
      assert.deepEqual(parseLinkHeader(''), {});
    });

    it('a rel named __proto__ is an own property, not the prototype', () => {
      const links = parseLinkHeader('</x>; rel="__proto__", </y>; rel="next"');
      assert.equal(Object.getPrototypeOf(links), Object.prototype);
      assert.equal(Object.prototype.hasOwnProperty.call(links, '__proto__'), true);
      assert.equal(links.next, '/y');
    });
  });
});
