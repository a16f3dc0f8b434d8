/**
 * The record trigger over a list longer than Max pages × page size, in a real Node-RED runtime
 * (node-red-node-test-helper, the compiled nodes and catalogs), against the real authorization server and the
 * records API on loopback, ordered oldest first, newest first and in no order, paged by Link header, page number
 * and offset. A poll cut at Max pages leaves where it stopped in the trigger's memory; the next polls read on with
 * the same `since` until the list's end, so nothing is skipped, nothing is sent twice, and the trigger never stalls.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
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

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

const PAGINATIONS: Record<string, Record<string, unknown>> = {
  link: { url: '/records/link', pagination: 'link' },
  page: { url: '/records/page', pagination: 'page', paginationParam: 'page', pageStart: 1 },
  offset: { url: '/records/offset', pagination: 'offset', paginationParam: 'offset' },
};
const ORDERS = ['oldest', 'newest', 'none'] as const;

describe('record trigger: lists longer than Max pages (node-red-node-test-helper)', function () {
  this.timeout(120_000);
  let auth: AuthServer;
  let api: RecordsApi;
  let userDir: string;
  let arrivals: string[];
  const assertNoUnhandledRejections = collectUnhandledRejections('the record trigger continuation tests');

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
    api.order = 'id';
    api.pageSize = 10;
    arrivals = [];
  });
  afterEach(async () => {
    await helper.unload();
    fs.rmSync(userDir, { recursive: true, force: true });
  });

  async function load(trigger: Record<string, unknown>): Promise<RuntimeNode> {
    const conn = serviceConnection(auth, { apiBaseUrl: api.url });
    await helper.load(modules, [tab(), conn.node, trigger, helperNode()], conn.credentials);
    helper.getNode('out').on('input', (msg: Msg) => arrivals.push(`${String(msg.event)} ${String(msg.topic)}`));
    return helper.getNode(String(trigger.id));
  }

  const poller = (node: RuntimeNode): RecordPoller => node.poller as RecordPoller;
  const texts = (node: RuntimeNode): string[] => statusLog(node, currentStatusSpy()).map((s) => String(s.text));
  const calls = (node: RuntimeNode, kind: 'warn' | 'error'): unknown[][] =>
    (helper._NodePrototype[kind] as unknown as Spy)
      .getCalls()
      .filter((c) => c.thisValue === node)
      .map((c) => c.args);

  async function poll(node: RuntimeNode): Promise<PollOutcome> {
    const ended = new Promise<PollOutcome>((resolve) => poller(node).once('poll-end', resolve));
    node.receive({});
    const outcome = await ended;
    await sleep(50); // Node-RED delivers sent messages on a later tick
    return outcome;
  }

  /** Polls until a poll reads its list to the end (at most `limit` polls); returns how many it took. */
  async function pollToEnd(node: RuntimeNode, limit: number): Promise<number> {
    for (let n = 1; n <= limit; n += 1) {
      const outcome = await poll(node);
      assert.ok(!outcome.skipped && !('error' in outcome), JSON.stringify(outcome));
      if (!outcome.continuing) return n;
    }
    assert.fail(`the list was still not read to its end after ${limit} polls`);
  }

  const watermark = { watermarkParam: 'updated_since', watermarkOverlapSec: 60, watermarkFormat: 'iso' };

  function assertEachOnce(expected: string[]): void {
    const counts = new Map<string, number>();
    for (const a of arrivals) counts.set(a, (counts.get(a) ?? 0) + 1);
    const twice = [...counts].filter(([, n]) => n > 1).map(([a]) => a);
    assert.deepEqual(twice, [], 'sent twice');
    const missing = expected.filter((e) => !counts.has(e));
    assert.deepEqual(missing, [], `never sent (${missing.length} of ${expected.length})`);
    assert.equal(arrivals.length, expected.length, arrivals.join(', '));
  }

  /** Remembered records, then a bulk of `bulk` records in one second (inside one overlap), then `late` newer ones. */
  async function bulkThenLate(node: RuntimeNode, bulk: number, late: number): Promise<{ bulkIds: number[]; lateIds: number[] }> {
    const start = api.records.length;
    api.fill(bulk, new Date(Date.now() - 20_000));
    const bulkIds = api.records.slice(start).map((r) => r.id);
    const lateIds: number[] = [];
    for (let i = 0; i < late; i += 1) lateIds.push(api.add(`late ${i}`, new Date(Date.now() - 5_000)).id);
    void node;
    return { bulkIds, lateIds };
  }

  for (const order of ORDERS) {
    for (const [kind, pagination] of Object.entries(PAGINATIONS)) {
      it(`${order === 'none' ? 'in no order' : `${order} first`} / ${kind}: Max pages 2, 100 records, then 5 new: all 105 sent exactly once, the watermark moves once the window is read`, async () => {
        api.order = order;
        for (let i = 0; i < 3; i += 1) api.add(`old ${i}`, new Date(Date.now() - 600_000));
        const trig = await load(recordChangeNode('trig', { ...watermark, ...pagination, maxPages: 2 }));
        await eventually(() => texts(trig).some((t) => t.startsWith('remembered 3 records')), 5000, 'the first poll');
        const { bulkIds, lateIds } = await bulkThenLate(trig, 100, 5);

        const first = await poll(trig);
        assert.ok(!first.skipped && !('error' in first) && first.continuing, 'the first poll over the bulk is cut at Max pages');
        assert.match(texts(trig).at(-1) ?? '', /; read 2 pages, continuing$/);
        const polls = 1 + (await pollToEnd(trig, 12));
        assert.ok(polls >= 6, `105 records at 10 a page, 2 pages a poll: ${polls} polls`);
        assertEachOnce([...bulkIds, ...lateIds].map((id) => `created ${id}`));
        // Every poll of the episode asked with the same since; the poll after it asks from later on.
        const sinces = api.listRequests.filter((r) => r.query.updated_since).map((r) => r.query.updated_since);
        const episode = sinces.slice(0, -1);
        assert.equal(new Set(episode).size, 1, `one since for the episode: ${[...new Set(episode)].join(', ')}`);
        const warned = calls(trig, 'warn').map((args) => String(args[0])).filter((w) => w.includes('Max pages'));
        assert.equal(warned.length, 1, 'the log says it once per episode');
        assert.match(warned[0], /^The list is longer than Max pages allows in one poll: this poll read 2 pages/);
        assert.doesNotMatch(texts(trig).at(-1) ?? '', /continuing/);

        api.listRequests.length = 0;
        const after = api.add('after');
        await pollToEnd(trig, 12);
        assert.ok(Date.parse(api.listRequests[0].query.updated_since) > Date.parse(sinces[0]), 'the watermark moved');
        assertEachOnce([...bulkIds, ...lateIds, after.id].map((id) => `created ${id}`));
        assert.deepEqual(calls(trig, 'error'), []);
      });
    }
  }

  it('the bulk case scaled down: 600 records in one overlap, then 60 more, Max pages 3: all 660 sent once', async () => {
    api.order = 'oldest';
    api.pageSize = 20;
    api.add('old', new Date(Date.now() - 600_000));
    const trig = await load(recordChangeNode('trig', { ...watermark, ...PAGINATIONS.link, maxPages: 3 }));
    await eventually(() => texts(trig).some((t) => t.startsWith('remembered 1 records')), 5000, 'the first poll');
    const { bulkIds, lateIds } = await bulkThenLate(trig, 600, 60);
    await pollToEnd(trig, 20);
    assertEachOnce([...bulkIds, ...lateIds].map((id) => `created ${id}`));
  });

  it('a restart in the middle of a continuation reads on from where the stored memory says', async () => {
    api.order = 'oldest';
    api.add('old', new Date(Date.now() - 600_000));
    const config = recordChangeNode('trig', { ...watermark, ...PAGINATIONS.link, maxPages: 2 });
    let trig = await load(config);
    await eventually(() => texts(trig).some((t) => t.startsWith('remembered 1 records')), 5000, 'the first poll');
    const { bulkIds, lateIds } = await bulkThenLate(trig, 100, 5);
    await poll(trig);
    await poll(trig);
    await helper.unload();

    api.listRequests.length = 0;
    trig = await load(config);
    // The first poll after the restart is the scheduled one (1 s after start): it reads pages 5 and 6.
    await eventually(() => api.listRequests.length >= 2, 5000, 'the first poll after the restart');
    await sleep(200);
    assert.deepEqual(
      api.listRequests.slice(0, 2).map((r) => r.query.page),
      ['5', '6'],
      'went on from page 5, not from page 1',
    );
    await pollToEnd(trig, 12);
    assertEachOnce([...bulkIds, ...lateIds].map((id) => `created ${id}`));
  });

  it('a next page that never advances: after 3 polls in a row with nothing new, OAUTH2_TRIGGER_INCOMPLETE goes to Catch', async () => {
    for (let i = 0; i < 5; i += 1) api.add(`r ${i}`, new Date(Date.now() - 60_000));
    api.pageSize = 2;
    // The API ignores the parameter the trigger sends its cursor in: every page is the first one again.
    const trig = await load(recordChangeNode('trig', { url: '/records/cursor', pagination: 'cursor', paginationPath: 'next_cursor', paginationParam: 'ignored', maxPages: 5 }));
    await eventually(() => texts(trig).some((t) => t.startsWith('remembered ')), 5000, 'the first poll');
    assert.deepEqual(calls(trig, 'error'), []);
    await poll(trig);
    const third = await poll(trig);
    assert.ok(!third.skipped && !('error' in third) && third.incomplete);
    const errors = calls(trig, 'error');
    assert.equal(errors.length, 1, JSON.stringify(errors));
    const err = errors[0][0] as { code?: string; message: string };
    assert.equal(err.code, 'OAUTH2_TRIGGER_INCOMPLETE');
    assert.match(err.message, /^The list was not read to its end: 3 polls in a row, cut at Max pages, read no new page .*Check the pagination setting/);
    assert.match(texts(trig).at(-1) ?? '', /OAUTH2_TRIGGER_INCOMPLETE$/);
  });
});
