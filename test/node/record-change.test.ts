/**
 * The record trigger in a real Node-RED runtime (node-red-node-test-helper, the compiled nodes, the shipped
 * catalogs), against the real authorization server and a real records API on loopback: a record dated ahead of
 * the API's clock with watermark polling, a JSONata records setting over paginated object pages, and a list
 * that changes while it is read page by page.
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
  type Spy,
} from './support';
import type { PollOutcome, RecordPoller } from '../../nodes/lib/changes/poller';

type Msg = Record<string, unknown>;
const modules = [...nodeModules, recordChangeModule];
const DAY_MS = 86_400_000;

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** A small seeded generator (mulberry32): every run replays the same changes. */
function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
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
  const warnings = (node: RuntimeNode): string[] =>
    (helper._NodePrototype.warn as unknown as Spy)
      .getCalls()
      .filter((c) => c.thisValue === node)
      .map((c) => String(c.args[0]));

  /** Polls the trigger by message (as an inject would); resolves with the outcome, once its messages are delivered. */
  async function poll(node: RuntimeNode): Promise<PollOutcome> {
    const ended = new Promise<PollOutcome>((resolve) => poller(node).once('poll-end', resolve));
    node.receive({});
    const outcome = await ended;
    await sleep(100); // Node-RED delivers sent messages on a later tick
    return outcome;
  }

  /** Polls until a poll reads the list to its end (a poll cut at Max pages goes on in the next). */
  async function readToEnd(node: RuntimeNode): Promise<void> {
    for (let i = 0; i < 10; i += 1) {
      const outcome = await poll(node);
      if (outcome.skipped) continue;
      assert.ok(!('error' in outcome), 'error' in outcome ? outcome.error.message : '');
      if (!outcome.continuing) return;
    }
    assert.fail('the list was never read to its end');
  }

  async function firstPollDone(node: RuntimeNode): Promise<void> {
    await eventually(() => texts(node).some((t) => t.startsWith('remembered ')), 5000, `the first poll of ${node.id}`);
  }

  /** The `updated_since` values the trigger sent, as epoch ms. */
  const sentSince = (): number[] => api.listRequests.filter((r) => r.query.updated_since).map((r) => Date.parse(r.query.updated_since));

  for (const overlap of [0, 60]) {
    it(`watermark (overlap ${overlap} s): a record dated a day ahead is sent once, and every later change is still sent exactly once, also after a restart`, async () => {
      const watermark = { watermarkParam: 'updated_since', watermarkOverlapSec: overlap, watermarkFormat: 'iso' };
      const longAgo = new Date(Date.now() - 120_000);
      const alpha = api.add('alpha', longAgo);
      const trig = await load(recordChangeNode('trig', watermark));
      await firstPollDone(trig);

      const future = api.add('from the future', new Date(Date.now() + DAY_MS));
      await poll(trig);
      assert.deepEqual(arrivals, [`created ${future.id}`]);
      // Said in the status and in the log, naming the record.
      const status = statusLog(trig, currentStatusSpy()).at(-1);
      assert.equal(status?.fill, 'yellow', JSON.stringify(status));
      assert.match(String(status?.text), new RegExp(`^1 created, 0 updated, 0 deleted at .+; record ${future.id} is dated in the future$`), String(status?.text));
      assert.equal(warnings(trig).length, 1, warnings(trig).join('\n'));
      assert.match(warnings(trig)[0], new RegExp(`^Record ${future.id} has an updated-at in the future \\(${future.updated_at.replace('Z', '.000Z')}, the API's time is `));

      // Records written right after that poll, and an update, with honest times.
      const beta = api.add('beta');
      await poll(trig);
      api.update(alpha.id, { name: 'alpha 2' });
      const gamma = api.add('gamma');
      await poll(trig);
      await poll(trig);
      assert.deepEqual(arrivals, [`created ${future.id}`, `created ${beta.id}`, `updated ${alpha.id}`, `created ${gamma.id}`]);
      // The watermark never asked for more than the API's clock allows: nothing sent lies a day ahead.
      for (const since of sentSince()) assert.ok(since <= Date.now(), `updated_since ${new Date(since).toISOString()} is in the future`);
      assert.equal(warnings(trig).length, 1, 'said once, not on every poll');
      assert.equal(texts(trig).at(-1)?.includes('future'), false, 'the status goes back to the usual one');

      // A restart: the future record is remembered, so it is neither sent nor reported again.
      await helper.unload();
      const again = await load(recordChangeNode('trig', watermark));
      await eventually(() => texts(again).some((t) => / deleted at /.test(t)), 5000, 'the first poll after the restart');
      const delta = api.add('delta');
      await poll(again);
      assert.deepEqual(arrivals.slice(4), [`created ${delta.id}`]);
      assert.deepEqual(warnings(again), []);
    });
  }

  // A list read page by page while records on pages already read are deleted or updated (moved to the end):
  // the records after them move up, and the first ones of the next page are never read in that poll. Each poll
  // changes the list at one page boundary, up to 3 records of 7 a page, and at most one record goes between
  // polls: a record hidden by one poll's shift is then always read by the next poll (hiding it again would
  // need 7 changes in front of it), so every `deleted` is for a record really gone.
  const shifting = [
    { style: 'page', config: { pagination: 'page', paginationParam: 'page', pageStart: 1 } },
    { style: 'offset', config: { pagination: 'offset', paginationParam: 'offset' } },
    { style: 'link', config: { pagination: 'link' } },
  ] as const;
  for (const [index, { style, config }] of shifting.entries()) {
    it(`a list that changes while it is read (${style} pagination): over 200 polls no record still there is sent deleted or created again, no version twice, every delete within two polls`, async function () {
      this.timeout(180_000);
      const POLLS = 200;
      const SIZE = 35;
      const random = seededRandom(7919 * (index + 1));
      const pageSize = api.pageSize;
      api.pageSize = 7;
      api.shifts.length = 0;
      try {
        for (let i = 0; i < SIZE; i += 1) api.add(`record ${i}`).rev = 0;
        const trig = await load(recordChangeNode('trig', { url: `/records/${style}`, detection: 'version', versionPath: 'rev', emitDeleted: true, ...config }));
        const sent: Array<{ event: string; id: string; version: string | undefined }> = [];
        helper.getNode('out').on('input', (msg: Msg) => sent.push({ event: String(msg.event), id: String(msg.topic), version: msg.version as string | undefined }));
        await firstPollDone(trig);

        /** Ids that exist or existed: created for one of them is a record sent as created a second time. */
        const known = new Set(api.records.map((r) => String(r.id)));
        const versions = new Set<string>();
        /** Record gone → the poll during (or before) which it went. */
        const goneAt = new Map<string, number>();
        const deletedSent = new Map<string, number>();
        const faults = { falseDeleted: [] as string[], falseCreated: [] as string[], twice: [] as string[], late: [] as string[] };

        const pollDelivered = async (): Promise<void> => {
          const from = sent.length;
          const ended = new Promise<PollOutcome>((resolve) => poller(trig).once('poll-end', resolve));
          trig.receive({});
          const outcome = await ended;
          assert.ok(!outcome.skipped && !('error' in outcome) && outcome.stats.complete, JSON.stringify(outcome));
          await eventually(() => sent.length >= from + outcome.changes, 5000, 'the messages of a poll');
          for (const change of sent.slice(from)) {
            if (change.event === 'deleted') {
              if (api.records.some((r) => String(r.id) === change.id)) faults.falseDeleted.push(change.id);
              deletedSent.set(change.id, (deletedSent.get(change.id) ?? 0) + 1);
              continue;
            }
            if (change.event === 'created') {
              if (known.has(change.id)) faults.falseCreated.push(change.id);
              known.add(change.id);
            }
            const key = `${change.id}@${String(change.version)}`;
            if (versions.has(key)) faults.twice.push(`${change.event} ${key}`);
            versions.add(key);
          }
        };

        api.shiftLists({ random, maxChanges: 3 });
        for (let poll = 0; poll < POLLS; poll += 1) {
          // Between polls: a real delete now and then, and new records to keep the list about SIZE long.
          if (random() < 0.2 && api.records.length > 0) {
            const [gone] = api.records.splice(Math.floor(random() * api.records.length), 1);
            goneAt.set(String(gone.id), poll);
          }
          while (api.records.length < SIZE) api.add(`new ${poll}`).rev = 0;
          const shiftsBefore = api.shifts.length;
          await pollDelivered();
          for (const shift of api.shifts.slice(shiftsBefore)) if (shift.event === 'deleted') goneAt.set(String(shift.id), poll);
          for (const [id, at] of goneAt) if (poll >= at + 2 && !deletedSent.has(id) && !faults.late.includes(id)) faults.late.push(id);
        }
        api.shiftLists(undefined);
        await pollDelivered();
        await pollDelivered();

        const updates = api.shifts.filter((c) => c.event === 'updated').length;
        console.log(
          `      ${style}: ${POLLS} polls, ${api.shifts.length} changes between page requests (${updates} updates), ${goneAt.size} deletes; ` +
            `false deleted ${faults.falseDeleted.length}, false created ${faults.falseCreated.length}, versions sent twice ${faults.twice.length}, ` +
            `deletes later than two polls ${faults.late.length}`,
        );
        assert.ok(updates > 50 && goneAt.size > 50, 'the list really changed while it was read');
        assert.deepEqual(faults, { falseDeleted: [], falseCreated: [], twice: [], late: [] });
        // Every delete sent once, and only those; every record's last version sent (or remembered at the start).
        assert.deepEqual([...deletedSent.keys()].sort(), [...goneAt.keys()].sort());
        assert.ok([...deletedSent.values()].every((n) => n === 1));
        for (const record of api.records) {
          const last = sent.filter((c) => c.id === String(record.id) && c.event !== 'deleted').at(-1);
          assert.equal(last?.version ?? '0', String(record.rev), `record ${record.id}`);
        }
      } finally {
        api.shiftLists(undefined);
        api.pageSize = pageSize;
      }
    });
  }

  it('first poll "send the records changed since": the records updated since then arrive as created, the others are remembered', async () => {
    const old = api.add('old', new Date(Date.now() - 3 * DAY_MS));
    const recent = api.add('recent', new Date(Date.now() - DAY_MS));
    const since = new Date(Date.now() - 2 * DAY_MS).toISOString();
    const trig = await load(recordChangeNode('trig', { firstRun: 'since', firstRunSince: since }));
    await eventually(() => arrivals.length >= 1, 5000, 'the first poll');
    await sleep(200);
    assert.deepEqual(arrivals, [`created ${recent.id}`]);
    api.update(old.id, { name: 'old, changed' });
    await poll(trig);
    assert.deepEqual(arrivals, [`created ${recent.id}`, `updated ${old.id}`]);
  });

  it("connection values: {{{connection.name}}} in the list URL, and msg.oauth2 on every change (never a token)", async () => {
    const conn = serviceConnection(auth, { apiBaseUrl: api.url });
    // A token-response field kept as a connection value (oidc-provider's token_type).
    const connection = { ...conn.node, tokenValues: [{ from: 'token_type', as: 'tokenKind' }] };
    const trigger = recordChangeNode('trig', { url: '/records?kind={{{connection.tokenKind}}}&base={{connection.apiBaseUrl}}' });
    const sent: Msg[] = [];
    await helper.load(modules, [tab(), connection, trigger, helperNode()], conn.credentials);
    helper.getNode('out').on('input', (msg: Msg) => sent.push(msg));
    const trig = helper.getNode('trig');
    await firstPollDone(trig);
    api.add('one');
    await poll(trig);
    const last = api.listRequests.at(-1);
    assert.equal(last?.query.kind, 'Bearer');
    assert.equal(last?.query.base, api.url);
    assert.equal(sent.length, 1);
    assert.deepEqual(sent[0].oauth2, { tokenKind: 'Bearer', apiBaseUrl: api.url });
    assert.ok(!JSON.stringify(sent[0]).includes('eyJ'), 'no token on the message');
  });

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
      // A complete list: 6, on the last page, is created; record 1, gone from it, is deleted once the next
      // complete list lacks it too.
      assert.deepEqual([...arrivals].sort(), ['created 6']);
      await poll(trig);
      assert.deepEqual([...arrivals].sort(), ['created 6', 'deleted 1']);
      await poll(trig);
      assert.deepEqual([...arrivals].sort(), ['created 6', 'deleted 1']);
    } finally {
      await helper.unload();
      await pagesApi.close();
    }
  });

  // Lists that page by POST, with the cursor in the body: a search API that takes its "since" and its cursor in
  // the body (HubSpot's search, Notion's query), and a listing whose later pages go to a "continue" endpoint
  // that refuses any body member but the cursor (Dropbox). The records API of the other tests serves both.
  it('POST search with {{since}} and the cursor in the body, cut at Max pages: every change once, the watermark in the body', async () => {
    const old = new Date(Date.now() - 120_000);
    const [a] = ['a', 'b', 'c'].map((name) => api.add(name, old));
    const settings = {
      url: '/records/search', method: 'POST', body: '{"filter": {"updated_since": "{{since}}"}, "limit": 2}', recordsPathType: 'path', recordsPath: 'results',
      pagination: 'body-cursor', paginationPath: 'paging.next.after', paginationParam: 'after', maxPages: 1, watermarkOverlapSec: 0,
    };
    const trig = await load(recordChangeNode('trig', settings));
    // The first poll reads from the earliest time, over two polls (3 records, 2 a page, 1 page a poll).
    await readToEnd(trig);
    const firstBody = api.listRequests[0]?.body as { filter: { updated_since: string } };
    assert.equal(firstBody.filter.updated_since, '1970-01-01T00:00:00.000Z');
    assert.deepEqual(api.listRequests.map((r) => (r.body as { after?: string }).after), [undefined, String(a.id + 1)]);
    assert.deepEqual(arrivals, []);

    const requestsBefore = api.listRequests.length;
    const added = ['d', 'e', 'f', 'g'].map((n) => api.add(n));
    api.update(a.id, { name: 'a 2' });
    // One poll reads one page, then a restart: the next poll goes on from the cursor it kept.
    const cut = await poll(trig);
    assert.ok(!cut.skipped && !('error' in cut) && cut.continuing, JSON.stringify(cut));
    await helper.unload();
    const restarted = await load(recordChangeNode('trig', settings));
    await readToEnd(restarted);
    assert.deepEqual([...arrivals].sort(), [...added.map((r) => `created ${r.id}`), `updated ${a.id}`].sort());
    const bodies = api.listRequests.slice(requestsBefore).map((r) => r.body as { filter: { updated_since: string }; after?: string });
    // Every request was a POST with the watermark (the newest updated-at seen, not the earliest time) in the body.
    assert.ok(api.listRequests.slice(requestsBefore).every((r) => r.method === 'POST' && r.path === '/records/search'));
    assert.ok(bodies.every((b) => Date.parse(b.filter.updated_since) >= old.getTime() - 1000), JSON.stringify(bodies));
    assert.ok(bodies.some((b) => b.after !== undefined), 'later pages carry the cursor in the body');

    const resumed = api.listRequests.slice(requestsBefore).map((r) => (r.body as { after?: string }).after);
    // since is inclusive: the three old records (updated at the watermark) are read again, 7 records in 4 pages.
    assert.equal(resumed.length, 4, JSON.stringify(api.listRequests.slice(requestsBefore).map((r) => r.body)));
    assert.equal(new Set(resumed).size, 4, 'no page read twice');
    assert.equal(resumed[0], undefined);
    assert.ok(resumed.slice(1).every((after) => after !== undefined), 'after the restart, the kept cursor');
    // Nothing again on the next polls.
    await readToEnd(restarted);
    assert.equal(arrivals.length, 5, arrivals.join(', '));
  });

  it('POST list with a continue URL and has_more: later pages send the cursor alone, and deletes come from complete lists', async () => {
    const old = new Date(Date.now() - 120_000);
    const [, b] = ['a', 'b', 'c', 'd', 'e'].map((name) => api.add(name, old));
    const trig = await load(
      recordChangeNode('trig', {
        url: '/records/list',
        method: 'POST',
        body: '{"limit": 2}',
        recordsPathType: 'path',
        recordsPath: 'entries',
        pagination: 'body-cursor',
        paginationPath: 'cursor',
        paginationParam: 'cursor',
        paginationUrl: '/records/list/continue',
        paginationMorePath: 'has_more',
        emitDeleted: true,
      }),
    );
    await firstPollDone(trig);
    assert.deepEqual(api.listRequests.map((r) => r.path), ['/records/list', '/records/list/continue', '/records/list/continue']);
    assert.deepEqual(Object.keys(api.listRequests[1]?.body as object), ['cursor'], 'the continue endpoint got the cursor alone');

    const f = api.add('f');
    api.remove(b.id);
    const outcome = await poll(trig);
    assert.ok(!outcome.skipped && !('error' in outcome) && outcome.stats.complete, JSON.stringify(outcome));
    await poll(trig);
    assert.deepEqual([...arrivals].sort(), [`created ${f.id}`, `deleted ${b.id}`]);
    // The API answers 400 to a continue body with any other member: no poll failed.
    assert.ok(!texts(trig).some((t) => /error|failed/i.test(t)), texts(trig).join('\n'));
  });
});
