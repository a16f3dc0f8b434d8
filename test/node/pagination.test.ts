import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { startAuthServer, type AuthServer } from '../support/auth-server';
import {
  catchNodes,
  errorLog,
  eventually,
  helper,
  helperNode,
  loadCatalogs,
  nextInput,
  nodeModules,
  requestNode,
  serviceConnection,
  statusLog,
  tab,
  useTempUserDir, collectUnhandledRejections } from './support';

type Msg = Record<string, unknown>;
interface CaughtError {
  message: string;
  code?: string;
}

/** 25 records, ids 1..25. */
const ALL = Array.from({ length: 25 }, (_, i) => ({ id: i + 1 }));

interface PagedApi {
  url: string;
  /** Path and query of every request, and whether its bearer token was valid at the authorization server. */
  requests: Array<{ path: string; authorised: boolean; authorization?: string }>;
  close(): Promise<void>;
}

/**
 * A loopback list API that checks tokens against the test authorization server and pages its records in the
 * styles the node follows. `leakTo` is where /leak's next link points (another origin).
 */
async function startPagedApi(auth: AuthServer, leakTo = 'http://127.0.0.1:1'): Promise<PagedApi> {
  const requests: PagedApi['requests'] = [];
  const server = http.createServer((req, res) => {
    void (async () => {
      const url = new URL(req.url ?? '/', 'http://127.0.0.1');
      const bearer = req.headers.authorization?.startsWith('Bearer ') ? req.headers.authorization.slice(7) : undefined;
      const authorised = bearer ? (await auth.validateAccessToken(bearer)).active : false;
      requests.push({ path: url.pathname + url.search, authorised, authorization: req.headers.authorization });
      const json = (status: number, value: unknown, headers: Record<string, string> = {}): void => {
        res.writeHead(status, { 'content-type': 'application/json', ...headers });
        res.end(JSON.stringify(value));
      };
      if (!authorised) return json(401, { error: 'invalid_token' });
      const q = url.searchParams;
      const page = Number(q.get('page') ?? '1');
      switch (url.pathname) {
        case '/link': {
          const next = page * 10 < ALL.length ? { link: `<${origin}/link?page=${page + 1}&sort=${q.get('sort') ?? ''}>; rel="next"` } : ({} as Record<string, string>);
          return json(200, ALL.slice((page - 1) * 10, page * 10), next);
        }
        case '/cursor': {
          const at = Number(q.get('cursor') ?? '0');
          return json(200, { data: ALL.slice(at, at + 10), meta: { next: at + 10 < ALL.length ? String(at + 10) : null } });
        }
        case '/offset': {
          const offset = Number(q.get('offset'));
          const limit = Number(q.get('limit') ?? '10');
          return json(200, { result: { list: ALL.slice(offset, offset + limit) } });
        }
        case '/nolist':
          return json(200, { total: 25 }, { link: `<${origin}/nolist?page=2>; rel="next"` });
        case '/fail':
          return page === 2 ? json(503, { error: 'down' }) : json(200, [{ id: page }], { link: `</fail?page=${page + 1}>; rel="next"` });
        case '/leak':
          return json(200, [{ id: 1 }], { link: `<${leakTo}/steal>; rel="next"` });
        default:
          return json(404, { error: 'not_found' });
      }
    })();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url: origin,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

describe('http-oauth2-request node: pagination (node-red-node-test-helper)', function () {
  this.timeout(30_000);
  let auth: AuthServer;
  let other: PagedApi;
  let api: PagedApi;
  let userDir: string;
  const assertNoUnhandledRejections = collectUnhandledRejections('the pagination node tests');

  before(async () => {
    await loadCatalogs();
    auth = await startAuthServer();
    other = await startPagedApi(auth);
    api = await startPagedApi(auth, other.url);
  });

  after(async () => {
    await helper.unload();
    await Promise.all([api?.close(), other?.close(), auth?.close()]);
    await new Promise((r) => setTimeout(r, 50));
    assertNoUnhandledRejections();
  });

  beforeEach(() => {
    userDir = useTempUserDir();
    api.requests.length = 0;
    other.requests.length = 0;
  });

  afterEach(async () => {
    await helper.unload();
    fs.rmSync(userDir, { recursive: true, force: true });
  });

  async function loadFlow(nodes: Msg[]): Promise<void> {
    const conn = serviceConnection(auth, { apiBaseUrl: api.url });
    await helper.load(nodeModules, [tab(), conn.node, ...nodes], conn.credentials);
  }

  /** Every message reaching `outId` from now on. */
  function collect(outId = 'out'): Msg[] {
    const got: Msg[] = [];
    helper.getNode(outId).on('input', (msg: Msg) => got.push(msg));
    return got;
  }

  /** Waits until the node's last status is no longer blue (the message is finished). */
  async function settled(id = 'req'): Promise<Record<string, unknown>> {
    const node = helper.getNode(id);
    await eventually(() => {
      const last = statusLog(node).slice(-1)[0];
      return last !== undefined && last.fill !== 'blue';
    }, 10_000, 'the node to finish');
    return statusLog(node).slice(-1)[0];
  }

  describe("pageOutput 'all'", () => {
    it('sends one message with the records of every page (Link header), pages and complete, the last page as statusCode/headers', async () => {
      await loadFlow([requestNode('req', { url: '/link?sort=id', pagination: 'link', pageOutput: 'all' }), helperNode()]);
      // One listener only: Node-RED calls a node's input callbacks from a list that a `once` listener's removal
      // shortens mid-loop (runtime/lib/nodes/Node.js), so a second listener would miss the message.
      const got = collect();
      helper.getNode('req').receive({ topic: 'sync', payload: 'in' });
      await eventually(() => got.length > 0, 10_000, 'the output');
      const out = got[0];
      assert.deepEqual(out.payload, ALL);
      assert.equal(out.pages, 3);
      assert.equal(out.complete, true);
      assert.equal(out.statusCode, 200);
      assert.equal(out.topic, 'sync', 'the rest of the message is kept');
      assert.equal(out.responseUrl, `${api.url}/link?page=3&sort=id`);
      assert.equal((out.headers as Record<string, string>)['content-type'], 'application/json');
      assert.deepEqual(api.requests.map((r) => r.path), ['/link?sort=id', '/link?page=2&sort=id', '/link?page=3&sort=id']);
      assert.ok(api.requests.every((r) => r.authorised), 'every page carried a valid token');
      assert.deepEqual(await settled(), { fill: 'green', shape: 'dot', text: '200 · 3 pages' });
      assert.equal(got.length, 1, 'one message only');
      assert.ok(statusLog(helper.getNode('req')).some((s) => s.text === 'page 2'), 'the status counts pages');
    });

    it('follows offset counting with a size param and a records path', async () => {
      await loadFlow([
        requestNode('req', {
          url: '/offset?q=a%20b',
          pagination: 'offset',
          paginationParam: 'offset',
          pageSizeParam: 'limit',
          pageSize: '10',
          recordsPath: 'result.list',
        }),
        helperNode(),
      ]);
      const out = await new Promise<Msg>((resolve) => {
        helper.getNode('out').once('input', resolve);
        helper.getNode('req').receive({});
      });
      assert.deepEqual(out.payload, ALL);
      assert.equal(out.pages, 4);
      assert.equal(out.complete, true);
      assert.deepEqual(api.requests.map((r) => r.path), [
        '/offset?q=a%20b&offset=0&limit=10',
        '/offset?q=a%20b&offset=10&limit=10',
        '/offset?q=a%20b&offset=20&limit=10',
        '/offset?q=a%20b&offset=25&limit=10',
      ]);
    });

    it('stops at max pages: complete false and a yellow status', async () => {
      await loadFlow([requestNode('req', { url: '/link', pagination: 'link', maxPages: 2 }), helperNode()]);
      const received = nextInput(helper.getNode('out'));
      helper.getNode('req').receive({});
      const out = await received;
      assert.deepEqual(out.payload, ALL.slice(0, 20));
      assert.equal(out.pages, 2);
      assert.equal(out.complete, false);
      assert.equal(api.requests.length, 2);
      assert.deepEqual(await settled(), { fill: 'yellow', shape: 'dot', text: '200 · 2 pages (incomplete)' });
    });

    it('raises OAUTH2_RECORDS_NOT_FOUND when a page has no list of records; the caught msg has that body', async () => {
      await loadFlow([requestNode('req', { url: '/nolist', pagination: 'link' }), helperNode(), ...catchNodes(['req'])]);
      const caught = nextInput(helper.getNode('caught'));
      helper.getNode('req').receive({ topic: 't' });
      const msg = (await caught) as Msg & { error: CaughtError };
      assert.equal(msg.error.code, 'OAUTH2_RECORDS_NOT_FOUND');
      assert.ok(msg.error.message.length > 0);
      assert.deepEqual(msg.payload, { total: 25 });
      assert.equal(msg.topic, 't');
      assert.equal(api.requests.length, 1, 'no further page was fetched');
      assert.deepEqual(await settled(), { fill: 'red', shape: 'ring', text: 'OAUTH2_RECORDS_NOT_FOUND' });
    });

    it('raises OAUTH2_HTTP_STATUS for a non-2xx page mid-way, with its status and body', async () => {
      await loadFlow([requestNode('req', { url: '/fail', pagination: 'link' }), helperNode(), ...catchNodes(['req'])]);
      const got = collect();
      const caught = nextInput(helper.getNode('caught'));
      helper.getNode('req').receive({});
      const msg = (await caught) as Msg & { error: CaughtError };
      assert.equal(msg.error.code, 'OAUTH2_HTTP_STATUS');
      assert.equal(msg.error.message, 'The API answered with status 503');
      assert.equal(msg.statusCode, 503);
      assert.deepEqual(msg.payload, { error: 'down' });
      assert.equal(msg.pages, 2);
      assert.equal(msg.complete, false);
      assert.equal(got.length, 0);
      assert.equal(errorLog(helper.getNode('req')).length, 1);
    });

    it('with non2xxAsOutput outputs the records so far, the failing status and complete false', async () => {
      await loadFlow([requestNode('req', { url: '/fail', pagination: 'link', non2xxAsOutput: true }), helperNode()]);
      const received = nextInput(helper.getNode('out'));
      helper.getNode('req').receive({});
      const out = await received;
      assert.deepEqual(out.payload, [{ id: 1 }]);
      assert.equal(out.statusCode, 503);
      assert.equal(out.complete, false);
    });
  });

  describe("pageOutput 'each'", () => {
    it('sends one message per page as it arrives (cursor), each with its page index, body, status and URL', async () => {
      await loadFlow([
        requestNode('req', { url: '/cursor', pagination: 'cursor', paginationPath: 'meta.next', paginationParam: 'cursor', pageOutput: 'each' }),
        helperNode(),
      ]);
      const got = collect();
      helper.getNode('req').receive({ topic: 'each', payload: 'in' });
      const status = await settled();
      assert.deepEqual(status, { fill: 'green', shape: 'dot', text: '200 · 3 pages' });
      assert.equal(got.length, 3);
      assert.deepEqual(got.map((m) => m.page), [0, 1, 2]);
      assert.deepEqual(got.map((m) => (m.payload as { data: unknown[] }).data.length), [10, 10, 5]);
      assert.deepEqual((got[2].payload as { meta: unknown }).meta, { next: null });
      assert.deepEqual(got.map((m) => m.responseUrl), [`${api.url}/cursor`, `${api.url}/cursor?cursor=10`, `${api.url}/cursor?cursor=20`]);
      assert.ok(got.every((m) => m.statusCode === 200 && m.topic === 'each'));
      assert.equal(new Set(got).size, 3, 'every page is its own message object');
      assert.ok(got.every((m) => !('pages' in m) && !('complete' in m)), "no msg.complete: a Join node would close its group on it");
    });

    it('sends the pages before a next link to another origin, then raises OAUTH2_ORIGIN_NOT_ALLOWED; nothing reaches that origin', async () => {
      await loadFlow([requestNode('req', { url: '/leak', pagination: 'link', pageOutput: 'each' }), helperNode(), ...catchNodes(['req'])]);
      const got = collect();
      const caught = nextInput(helper.getNode('caught'));
      helper.getNode('req').receive({});
      const msg = (await caught) as Msg & { error: CaughtError };
      assert.equal(msg.error.code, 'OAUTH2_ORIGIN_NOT_ALLOWED');
      assert.ok(!msg.error.message.includes('Bearer'));
      assert.equal(got.length, 1);
      assert.deepEqual(got[0].payload, [{ id: 1 }]);
      assert.equal(other.requests.length, 0);
    });

    it('with non2xxAsOutput the failing page is the last message', async () => {
      await loadFlow([requestNode('req', { url: '/fail', pagination: 'link', pageOutput: 'each', non2xxAsOutput: true }), helperNode()]);
      const got = collect();
      helper.getNode('req').receive({});
      await settled();
      assert.deepEqual(got.map((m) => m.statusCode), [200, 503]);
      assert.deepEqual(got.map((m) => m.page), [0, 1]);
    });
  });

  describe('configuration', () => {
    it('an invalid pagination setting shows red at deploy and fails each message naming the field; nothing is sent', async () => {
      await loadFlow([requestNode('req', { url: '/cursor', pagination: 'cursor', paginationPath: 'meta.next' }), helperNode(), ...catchNodes(['req'])]);
      await eventually(() => statusLog(helper.getNode('req')).some((s) => s.text === 'OAUTH2_INVALID_CONFIG'), 5_000, 'the red status');
      const caught = nextInput(helper.getNode('caught'));
      helper.getNode('req').receive({ payload: 'kept' });
      const msg = (await caught) as Msg & { error: CaughtError };
      assert.equal(msg.error.code, 'OAUTH2_INVALID_CONFIG');
      // The field's name comes from the connection's catalog (field.paginationParam).
      assert.match(msg.error.message, /^Invalid configuration: .+ is required$/);
      assert.equal(msg.payload, 'kept');
      assert.equal(api.requests.length, 0);
    });

    it("pagination 'none' (the default) sends one request even when the API offers a next link", async () => {
      await loadFlow([requestNode('req', { url: '/link' }), helperNode()]);
      const received = nextInput(helper.getNode('out'));
      helper.getNode('req').receive({});
      const out = await received;
      assert.deepEqual(out.payload, ALL.slice(0, 10));
      assert.equal(api.requests.length, 1);
      assert.ok(!('pages' in out) && !('complete' in out) && !('page' in out));
      assert.deepEqual(await settled(), { fill: 'green', shape: 'dot', text: '200' });
    });
  });
});
