/**
 * The record trigger in a real Node-RED runtime (node-red-node-test-helper, the compiled nodes, the shipped
 * catalogs), against the real authorization server and a real list API on loopback: a JSONata records setting
 * over paginated object pages.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { startAuthServer, type AuthServer } from '../support/auth-server';
import { startRecordsApi, type RecordsApi } from '../support/records-api';
import {
  collectUnhandledRejections,
  currentStatusSpy,
  eventually,
  helper,
  helperNode,
  loadCatalogs,
  nodeModules,
  recordChangeModule,
  recordChangeNode,
  serviceConnection,
  statusLog,
  tab,
  useTempUserDir,
  type RuntimeNode,
} from './support';
import type { PollOutcome, RecordPoller } from '../../nodes/lib/changes/poller';

type Msg = Record<string, unknown>;
const modules = [...nodeModules, recordChangeModule];

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/**
 * A list API whose pages are objects, `{ "result": { "rows": [...] }, "page": N }`, two records a page by page
 * counting (`?page=1`, 2, ...; an empty page past the end), protected by the authorization server. No property
 * the automatic records lookup knows (data, items, results, records, value) holds the list.
 */
async function startObjectPagesApi(auth: AuthServer): Promise<{ url: string; rows: Array<Record<string, unknown>>; pages: number[]; close(): Promise<void> }> {
  const rows: Array<Record<string, unknown>> = [];
  const pages: number[] = [];
  const server = http.createServer((req, res) => {
    void (async () => {
      const bearer = req.headers.authorization?.startsWith('Bearer ') ? req.headers.authorization.slice(7) : '';
      if (!bearer || !(await auth.validateAccessToken(bearer)).active) {
        res.writeHead(401, { 'content-type': 'application/json' });
        res.end('{"error":"invalid_token"}');
        return;
      }
      const page = Number(new URL(req.url ?? '/', 'http://127.0.0.1').searchParams.get('page') ?? '1');
      pages.push(page);
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ result: { rows: rows.slice((page - 1) * 2, page * 2) }, page }));
    })().catch(() => {
      res.writeHead(500);
      res.end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    rows,
    pages,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

describe('record trigger node (node-red-node-test-helper)', function () {
  this.timeout(60_000);
  let auth: AuthServer;
  let api: RecordsApi;
  let userDir: string;
  /** What reached the trigger's output, as "event id", in order. */
  let arrivals: string[];
  const assertNoUnhandledRejections = collectUnhandledRejections('the record trigger node tests');

  before(async () => {
    await loadCatalogs();
    auth = await startAuthServer({ accessTokenTtlSec: 3600 });
    api = await startRecordsApi(auth);
  });
  after(async () => {
    await Promise.all([api?.close(), auth?.close()]);
    assertNoUnhandledRejections();
  });
  beforeEach(() => {
    userDir = useTempUserDir();
    api.records.length = 0;
    api.listRequests.length = 0;
    arrivals = [];
  });
  afterEach(async () => {
    await helper.unload();
    fs.rmSync(userDir, { recursive: true, force: true });
  });

  async function load(trigger: Record<string, unknown>, apiBaseUrl = api.url): Promise<RuntimeNode> {
    const conn = serviceConnection(auth, { apiBaseUrl });
    await helper.load(modules, [tab(), conn.node, trigger, helperNode()], conn.credentials);
    helper.getNode('out').on('input', (msg: Msg) => arrivals.push(`${String(msg.event)} ${String(msg.topic)}`));
    return helper.getNode(String(trigger.id));
  }

  const poller = (node: RuntimeNode): RecordPoller => node.poller as RecordPoller;
  const texts = (node: RuntimeNode): string[] => statusLog(node, currentStatusSpy()).map((s) => String(s.text));
  /** Polls the trigger by message (as an inject would); resolves with the outcome, once its messages are delivered. */
  async function poll(node: RuntimeNode): Promise<PollOutcome> {
    const ended = new Promise<PollOutcome>((resolve) => poller(node).once('poll-end', resolve));
    node.receive({});
    const outcome = await ended;
    await sleep(100); // Node-RED delivers sent messages on a later tick
    return outcome;
  }

  async function firstPollDone(node: RuntimeNode): Promise<void> {
    await eventually(() => texts(node).some((t) => t.startsWith('remembered ')), 5000, `the first poll of ${node.id}`);
  }

  it('JSONata records over object pages: the expression\'s records decide the empty page, so every page is read and each record sent once', async () => {
    const pagesApi = await startObjectPagesApi(auth);
    try {
      const at = new Date(Date.now() - 60_000).toISOString();
      for (let id = 1; id <= 5; id += 1) pagesApi.rows.push({ id, updated_at: at });
      const trig = await load(
        recordChangeNode('trig', {
          url: '/list',
          recordsPathType: 'jsonata',
          recordsPath: 'result.rows',
          pagination: 'page',
          paginationParam: 'page',
          pageStart: 1,
          emitDeleted: true,
        }),
        pagesApi.url,
      );
      await firstPollDone(trig);
      assert.match(texts(trig).at(-1) ?? '', /^remembered 5 records at /);
      assert.deepEqual(pagesApi.pages, [1, 2, 3, 4], 'pages 1 to 3, then the empty page 4 ends the list');

      pagesApi.rows.push({ id: 6, updated_at: new Date().toISOString() });
      pagesApi.rows.splice(0, 1);
      const outcome = await poll(trig);
      assert.ok(!outcome.skipped && !('error' in outcome) && outcome.stats.complete, JSON.stringify(outcome));
      // A complete list: record 1, gone from it, is deleted; 6, on the last page, is created.
      assert.deepEqual([...arrivals].sort(), ['created 6', 'deleted 1']);
      await poll(trig);
      assert.deepEqual([...arrivals].sort(), ['created 6', 'deleted 1']);
    } finally {
      await helper.unload();
      await pagesApi.close();
    }
  });
});
