import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { AuthServer } from '../support/auth-server';
import { callLane, deployAndWait, sleep, startWatchedAuthServer, startWatchedRuntime, waitFor, serviceConnection } from '../support/e2e';
import { tab, triggerLane } from '../support/flows';
import { startRecordsApi, type RecordsApi } from '../support/records-api';
import type { TestRuntime } from '../support/runtime';

/** Resident and peak resident memory of a process, in MiB (Linux /proc). */
function memory(pid: number): { rssMiB: number; peakMiB: number } {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = (name: string): number => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? 0);
  return { rssMiB: Math.round(kib('VmRSS') / 1024), peakMiB: Math.round(kib('VmHWM') / 1024) };
}

describe('e2e: oauth2-record-change over 100,000 records', function () {
  this.timeout(180_000);
  const N = 100_000;
  let auth: AuthServer;
  let api: RecordsApi;
  let runtime: TestRuntime;

  before(async () => {
    auth = await startWatchedAuthServer();
    api = await startRecordsApi(auth);
    runtime = await startWatchedRuntime();
    api.fill(N, new Date(Date.now() - 3_600_000));
    const conn = serviceConnection(auth, api);
    await deployAndWait(runtime, [tab(), conn, ...triggerLane({ id: 'big', path: '/poll/big', config: { url: '/records' } })]);
  });

  after(async () => {
    await runtime?.stop();
    await api?.close();
    await auth?.close();
  });

  it('remembers 100,000 records, then sends exactly the 1% that changed', async () => {
    const idle = memory(runtime.pid);
    // The poll every start runs after a second remembers the list; wait for it, then poll again (nothing new).
    const pollsDone = (): number => runtime.logs.filter((l) => l.id === 'big' && l.text.startsWith('poll done')).length;
    await waitFor(() => pollsDone() >= 1, 30_000, 'the first poll');
    let started = Date.now();
    let res = await callLane(runtime, '/poll/big');
    const unchangedMs = Date.now() - started;
    assert.equal(res.status, 200, res.text);
    assert.equal(pollsDone(), 2, 'the poll ran (was not skipped)');
    assert.equal(api.sink.length, 0);

    const later = new Date();
    for (let id = 1; id <= N; id += 100) api.update(id, { name: `changed ${id}` }, later);
    started = Date.now();
    res = await callLane(runtime, '/poll/big');
    const changedMs = Date.now() - started;
    assert.equal(res.status, 200, res.text);
    await waitFor(() => api.sink.length >= N / 100, 60_000, 'the changed records at the sink', 100);
    await sleep(300);
    const ids = (api.sink as Array<{ id: string; event: string }>).map((a) => `${a.event} ${a.id}`);
    assert.equal(ids.length, N / 100);
    assert.equal(new Set(ids).size, N / 100);
    assert.ok(ids.every((i) => i.startsWith('updated ')));
    const after = memory(runtime.pid);
    const stateBytes = fs.statSync(path.join(runtime.userDir, '.http-oauth2-triggers.json')).size;
    console.log(
      `      100k records: unchanged poll ${unchangedMs} ms, 1% changed poll ${changedMs} ms; runtime RSS ${idle.rssMiB} -> ${after.rssMiB} MiB, ` +
        `peak ${after.peakMiB} MiB; state file ${(stateBytes / 1024 / 1024).toFixed(1)} MiB (${Math.round(stateBytes / N)} B per record)`,
    );
    // A bound that catches keeping whole records or page bodies around (100k records are ~6 MB of JSON).
    assert.ok(after.peakMiB < 600, `peak RSS ${after.peakMiB} MiB`);
  });
});
