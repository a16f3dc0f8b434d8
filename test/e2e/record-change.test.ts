import assert from 'node:assert/strict';
import type { AuthServer } from '../support/auth-server';
import { adminCall, callLane, deployAndWait, sleep, startWatchedAuthServer, startWatchedRuntime, waitFor, serviceConnection } from '../support/e2e';
import { tab, triggerLane } from '../support/flows';
import { startRecordsApi, type RecordsApi } from '../support/records-api';
import type { TestRuntime } from '../support/runtime';

interface Arrival {
  lane: string;
  event: string;
  id: string;
  version?: string;
  previous?: string;
}

describe('e2e: oauth2-record-change emits each change exactly once', function () {
  this.timeout(90_000);
  let auth: AuthServer;
  let api: RecordsApi;
  let runtime: TestRuntime;
  let userDir: string;
  let flows: Record<string, unknown>[];

  const arrivals = (lane: string): Arrival[] => (api.sink as Arrival[]).filter((a) => a.lane === lane);
  const summary = (lane: string): string[] => arrivals(lane).map((a) => `${a.event} ${a.id}`);

  async function poll(lane: string): Promise<void> {
    const res = await callLane(runtime, `/poll/${lane}`);
    assert.equal(res.status, 200, res.text);
    await sleep(150); // the sink POSTs leave after the poll's messages are sent
  }

  before(async () => {
    auth = await startWatchedAuthServer();
    api = await startRecordsApi(auth);
    runtime = await startWatchedRuntime();
    userDir = runtime.userDir;
    const conn = serviceConnection(auth, api);
    flows = [
      tab(),
      conn,
      ...triggerLane({ id: 'basic', path: '/poll/basic', config: { url: '/records', emitDeleted: true, includePrevious: true } }),
      ...triggerLane({
        id: 'mark',
        path: '/poll/mark',
        config: { url: '/records', watermarkParam: 'updated_since', watermarkOverlapSec: 0, watermarkFormat: 'iso' },
      }),
      ...triggerLane({ id: 'paged', path: '/poll/paged', config: { url: '/records/cursor', pagination: 'cursor', paginationPath: 'next_cursor', paginationParam: 'cursor' } }),
      ...triggerLane({ id: 'broken', path: '/poll/broken', config: { url: '/records', recordsPathType: 'path', recordsPath: 'nothing.here' } }),
    ];
    const at = new Date(Date.now() - 60_000);
    api.add('alpha', at);
    api.add('beta', at);
    await deployAndWait(runtime, flows);
    for (const lane of ['basic', 'mark', 'paged']) await poll(lane);
  });

  after(async () => {
    await runtime?.stop();
    await api?.close();
    await auth?.close();
  });

  it('first poll remembers what exists and emits nothing', () => {
    assert.deepEqual(api.sink, []);
  });

  it('created, updated and deleted records are each emitted once; unchanged ones never', async () => {
    const gamma = api.add('gamma');
    api.update(1, { name: 'alpha 2' }, new Date(Date.now() + 1000));
    api.remove(2);
    await poll('basic');
    // Record 2 is deleted once a second complete list lacks it too.
    assert.deepEqual(summary('basic').sort(), [`created ${gamma.id}`, 'updated 1']);
    const updated = arrivals('basic').find((a) => a.event === 'updated');
    assert.ok(updated?.previous && updated.version && updated.previous !== updated.version, JSON.stringify(updated));
    await poll('basic');
    assert.deepEqual(summary('basic').sort(), [`created ${gamma.id}`, 'deleted 2', 'updated 1']);
    await poll('basic');
    assert.equal(arrivals('basic').length, 3);
  });

  it('"Preview next poll" shows what would be sent without moving the memory', async () => {
    const delta = api.add('delta');
    const preview = await adminCall(runtime, 'oauth2-record-change/basic/preview', { method: 'POST', body: {} });
    assert.equal(preview.status, 200, preview.text);
    const body = preview.body as { changes: Array<{ event: string; id: string }>; total: number };
    assert.deepEqual(body.changes.map((c) => `${c.event} ${c.id}`), [`created ${delta.id}`]);
    const before = arrivals('basic').length;
    await poll('basic');
    assert.deepEqual(summary('basic').slice(before), [`created ${delta.id}`]);
  });

  it('"Forget remembered records" in the editor makes the next poll a first poll', async () => {
    await poll('mark');
    const before = arrivals('mark').length;
    const reset = await adminCall(runtime, 'oauth2-record-change/mark/reset', { method: 'POST', body: {} });
    assert.equal(reset.status, 200, reset.text);
    await poll('mark'); // a first poll: remembers, sends nothing
    await poll('mark');
    assert.equal(arrivals('mark').length, before);
    const none = await adminCall(runtime, 'oauth2-record-change/nope/reset', { method: 'POST', body: {} });
    assert.equal(none.status, 409);
  });

  it('restart and redeploy between polls: nothing repeated, nothing lost', async () => {
    const epsilon = api.add('epsilon');
    await runtime.stop();
    runtime = await startWatchedRuntime({ userDir, port: runtime.port });
    await waitFor(() => callLane(runtime, '/poll/basic').then((r) => r.status === 200), 10_000, 'the restarted runtime');
    await sleep(150);
    assert.deepEqual(summary('basic').filter((s) => s.endsWith(` ${epsilon.id}`)), [`created ${epsilon.id}`]);
    await deployAndWait(runtime, flows.map((n) => (n.id === 'basic' ? { ...n, name: 'renamed' } : n)));
    await poll('basic');
    const zeta = api.update(epsilon.id, { name: 'epsilon 2' }, new Date(Date.now() + 2000));
    await deployAndWait(runtime, flows);
    await poll('basic');
    await poll('basic');
    const about = summary('basic').filter((s) => s.endsWith(` ${zeta.id}`));
    assert.deepEqual(about, [`created ${epsilon.id}`, `updated ${epsilon.id}`]);
  });

  it('watermark: a record updated in the same second as the watermark and arriving late is emitted exactly once', async () => {
    await poll('mark'); // catch up with the changes of the tests before
    const before = arrivals('mark').length;
    // A second after every record written so far (some tests before date their updates a second or two ahead)
    // and not ahead of the API's clock, which bounds the watermark: wait until it is that second.
    const newest = Math.max(...api.records.map((r) => Date.parse(r.updated_at)));
    const second = new Date(Math.max(Math.floor(Date.now() / 1000) * 1000, newest + 1000));
    await sleep(Math.max(0, second.getTime() - Date.now()));
    const first = api.add('same second A', second);
    await poll('mark');
    assert.deepEqual(summary('mark').slice(before), [`created ${first.id}`]);
    const late = api.add('same second B', second);
    await poll('mark');
    await poll('mark');
    assert.deepEqual(summary('mark').slice(before), [`created ${first.id}`, `created ${late.id}`]);
    const lastQuery = api.listRequests.filter((r) => r.path === '/records' && r.query.updated_since).at(-1);
    assert.equal(Date.parse(String(lastQuery?.query.updated_since)), second.getTime());
    const sent = api.listRequests.filter((r) => r.path === '/records' && r.query.updated_since);
    assert.ok(sent.length >= 2, 'the watermark went out as a query parameter');
  });

  it('a poll that fails reaches a Catch node with a stable code and keeps the memory', async () => {
    // The last redeploy restarted this lane too: a poll asked for while its first poll (a second after the
    // start) runs is skipped and answers 200, so let that one go by (a timing race, first seen in a slower run
    // under Node-RED 5 on Node.js 22).
    await sleep(1200);
    const res = await callLane(runtime, '/poll/broken');
    assert.equal(res.status, 599, res.text);
    assert.equal((res.body as { code: string }).code, 'OAUTH2_RECORDS_NOT_FOUND');
  });

  it('a failing preview answers the catalog key and params (the editor translates), the runtime\'s text, and no secret', async () => {
    const preview = await adminCall(runtime, 'oauth2-record-change/broken/preview', { method: 'POST', body: {} });
    assert.equal(preview.status, 502, preview.text);
    assert.deepEqual((preview.body as { error: unknown }).error, {
      code: 'OAUTH2_RECORDS_NOT_FOUND',
      key: 'node-red-contrib-http-oauth2/oauth2-connection:oauth2-connection.errors.OAUTH2_RECORDS_NOT_FOUND',
      params: { path: 'nothing.here' },
      message: 'No list of records was found in the response (looked at: nothing.here)',
    });
    const missing = await adminCall(runtime, 'oauth2-record-change/nope/preview', { method: 'POST', body: {} });
    assert.equal(missing.status, 409);
    assert.equal((missing.body as { error: { key: string } }).error.key, 'node-red-contrib-http-oauth2/oauth2-record-change:oauth2-record-change.errors.previewNotDeployed');
    for (const answer of [preview.text, missing.text]) assert.equal(answer.includes(auth.clients.service.clientSecret), false, 'the client secret is in the answer');
  });

  it('killed between fetch and send: the records arrive after the restart, once', async () => {
    api.pageSize = 2;
    // Let the poll that every (re)start runs after a second go by: a poll asked for meanwhile would be skipped.
    await sleep(1200);
    await poll('paged');
    const before = arrivals('paged').length;
    const fresh = [api.add('k1'), api.add('k2'), api.add('k3')];
    // The last page of the paged list waits: the poll has fetched the first pages and sent nothing.
    const pages = Math.ceil(api.records.length / 2);
    const hold = api.holdPage(pages - 1);
    const from = api.listRequests.length;
    const polling = callLane(runtime, '/poll/paged').catch(() => undefined);
    await Promise.race([
      hold.reached,
      sleep(15_000).then(() => {
        throw new Error(`the poll never reached page ${pages - 1}: ${JSON.stringify(api.listRequests.slice(from))}`);
      }),
    ]);
    await runtime.kill();
    hold.release();
    await polling;
    assert.equal(arrivals('paged').length, before, 'nothing was sent before the kill');
    runtime = await startWatchedRuntime({ userDir, port: runtime.port });
    await waitFor(() => callLane(runtime, '/poll/paged').then((r) => r.status === 200), 10_000, 'the restarted runtime');
    await sleep(200);
    await poll('paged');
    const got = summary('paged').slice(before);
    const expected = [...new Set([...fresh.map((r) => `created ${r.id}`)])];
    for (const e of expected) assert.equal(got.filter((g) => g === e).length, 1, `${e} once in ${JSON.stringify(got)}`);
    assert.equal(runtime.crashes.length, 0, runtime.crashes.join('\n'));
  });
});
