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
  changes?: Record<string, { previous?: unknown; value: unknown }>;
}

describe('e2e: oauth2-record-change with watched fields and a condition', function () {
  this.timeout(60_000);
  let auth: AuthServer;
  let api: RecordsApi;
  let runtime: TestRuntime;
  let flows: Record<string, unknown>[];
  let second = Math.floor(Date.now() / 1000) * 1000;
  /** Each change a second later than the last, so updated-at detection sees it. */
  const later = (): Date => new Date((second += 1000));

  const arrivals = (lane: string): Arrival[] => (api.sink as Arrival[]).filter((a) => a.lane === lane);

  async function poll(lane: string): Promise<void> {
    const res = await callLane(runtime, `/poll/${lane}`);
    assert.equal(res.status, 200, res.text);
    await sleep(150);
  }

  before(async () => {
    auth = await startWatchedAuthServer();
    api = await startRecordsApi(auth);
    runtime = await startWatchedRuntime();
    const conn = serviceConnection(auth, api);
    flows = [
      tab(),
      conn,
      ...triggerLane({ id: 'watch', path: '/poll/watch', config: { url: '/records', watchFields: 'status, owner', watchValues: true } }),
      ...triggerLane({
        id: 'done',
        path: '/poll/done',
        config: { url: '/records', watchFields: 'status', condition: "status = 'done' and $previous.status != 'done'" },
      }),
      ...triggerLane({ id: 'bad', path: '/poll/bad', config: { url: '/records', condition: 'status = = ' } }),
    ];
    api.add('ticket', later());
    api.update(1, { status: 'open', owner: 'ann', title: 'first' }, later());
    await deployAndWait(runtime, flows);
    await sleep(1200); // the poll every start runs after a second
    await poll('watch');
    await poll('done');
  });

  after(async () => {
    await runtime?.stop();
    await api?.close();
    await auth?.close();
  });

  it('a change to an unwatched field sends nothing; a watched one sends msg.changes with previous and new values', async () => {
    api.update(1, { title: 'renamed' }, later());
    await poll('watch');
    assert.deepEqual(arrivals('watch'), []);
    api.update(1, { owner: 'bob' }, later());
    await poll('watch');
    assert.equal(arrivals('watch').length, 1);
    assert.deepEqual(arrivals('watch')[0].changes, { owner: { previous: 'ann', value: 'bob' } });
  });

  it('"status changed to done": once when it becomes done, not while it stays, again after it leaves and returns', async () => {
    api.update(1, { status: 'done' }, later());
    await poll('done');
    assert.equal(arrivals('done').length, 1);
    assert.deepEqual(arrivals('done')[0].changes, { status: { previous: 'open', value: 'done' } });
    api.update(1, { title: 'still done' }, later());
    await poll('done');
    api.update(1, { owner: 'cy' }, later());
    await poll('done');
    assert.equal(arrivals('done').length, 1, 'not again while it stays done');
    api.update(1, { status: 'open' }, later());
    await poll('done');
    assert.equal(arrivals('done').length, 1, 'leaving done is not "changed to done"');
    api.update(1, { status: 'done' }, later());
    await poll('done');
    assert.equal(arrivals('done').length, 2, 'again after it returned');
  });

  it('a restart between the change and the poll: still exactly once, with the right previous value', async () => {
    api.update(1, { status: 'open' }, later());
    await poll('done');
    api.update(1, { status: 'done' }, later());
    const before = arrivals('done').length;
    await runtime.stop();
    runtime = await startWatchedRuntime({ userDir: runtime.userDir, port: runtime.port });
    await waitFor(() => callLane(runtime, '/poll/done').then((r) => r.status === 200), 10_000, 'the restarted runtime');
    await sleep(1200);
    await poll('done');
    const after = arrivals('done').slice(before);
    assert.equal(after.length, 1, JSON.stringify(after));
    assert.deepEqual(after[0].changes, { status: { previous: 'open', value: 'done' } });
  });

  it('the preview shows which records would pass, with their msg.changes', async () => {
    api.update(1, { status: 'open' }, later());
    await poll('done');
    api.update(1, { status: 'done' }, later());
    const preview = await adminCall(runtime, 'oauth2-record-change/done/preview', { method: 'POST', body: {} });
    assert.equal(preview.status, 200, preview.text);
    const body = preview.body as { changes: Array<{ id: string; changes: unknown }> };
    assert.deepEqual(body.changes.map((c) => [c.id, c.changes]), [['1', { status: { previous: 'open', value: 'done' } }]]);
  });

  it('an invalid condition is a clear node error at deploy, naming the parser\'s message', async () => {
    const res = await callLane(runtime, '/poll/bad');
    assert.equal(res.status, 599, res.text);
    const error = res.body as { code: string; message: string };
    assert.equal(error.code, 'OAUTH2_INVALID_CONFIG');
    assert.match(error.message, /condition/i);
  });
});
