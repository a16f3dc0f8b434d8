/**
 * 4. Record-change trigger: one poll over 1,000 / 10,000 / 100,000 records, first poll (remembers everything,
 * sends nothing) and a poll after 1% changed (sends those), in a child process per size (record-change-worker.ts)
 * against the loopback records API here. Reports medians of the reps, the state file size, and the child's peak
 * RSS (VmHWM over all its reps) above its RSS before the first poll.
 */
import { fork } from 'node:child_process';
import * as path from 'node:path';
import { startAuthServer } from '../test/support/auth-server';
import { startRecordsApi } from '../test/support/records-api';
import { clientCredentialsToken } from './lib/bench-api';
import { median } from './lib/stats';
import type { WorkerResult } from './record-change-worker';

export interface RecordChangeSize {
  n: number;
  firstMs: number;
  changedMs: number;
  firstFetchMs: number;
  changedFetchMs: number;
  changes: number;
  stateBytes: number;
  rssBeforeBytes: number;
  peakRssBytes: number;
}

export interface RecordChangeResult {
  reps: number;
  sizes: RecordChangeSize[];
  /** t(100k) / t(10k), for the first poll and the changed poll; 10 means linear. */
  growth: { firstPoll: number; changedPoll: number; stateBytes: number; peakAboveBase: number };
}

export async function recordChange(opts: { sizes: number[]; reps: number; log: (s: string) => void }): Promise<RecordChangeResult> {
  const auth = await startAuthServer({ accessTokenTtlSec: 3600 });
  const sizes: RecordChangeSize[] = [];
  try {
    const token = await clientCredentialsToken(auth);
    for (const n of opts.sizes) {
      const api = await startRecordsApi(auth);
      const base = Date.now() - 24 * 3_600_000;
      api.fill(n, new Date(base));
      try {
        const child = fork(path.join(__dirname, 'record-change-worker.ts'), [], {
          env: { ...process.env, RC_WORKER: JSON.stringify({ apiUrl: api.url, token, n, reps: opts.reps }) },
          stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
        });
        const result = await new Promise<WorkerResult>((resolve, reject) => {
          child.on('message', (m: { type: string; rep?: number; result?: WorkerResult; message?: string }) => {
            if (m.type === 'mutate') {
              // 1% of the records, a new updated_at each rep (second precision, as real APIs).
              const at = new Date(base + ((m.rep ?? 0) + 1) * 3_600_000);
              for (let i = 0; i < api.records.length; i += 100) api.records[i].updated_at = at.toISOString().replace('.000Z', 'Z');
              child.send({ type: 'done' });
            } else if (m.type === 'result') resolve(m.result!);
            else if (m.type === 'error') reject(new Error(m.message));
          });
          child.once('exit', (code) => reject(new Error(`record-change worker exited ${code}`)));
        });
        const bad = result.reps.find((r) => r.changes !== Math.ceil(n / 100));
        if (bad) throw new Error(`${n} records: ${bad.changes} changes sent, expected ${Math.ceil(n / 100)}`);
        const size: RecordChangeSize = {
          n,
          firstMs: median(result.reps.map((r) => r.firstMs)),
          changedMs: median(result.reps.map((r) => r.changedMs)),
          firstFetchMs: median(result.reps.map((r) => r.firstFetchMs)),
          changedFetchMs: median(result.reps.map((r) => r.changedFetchMs)),
          changes: result.reps[0].changes,
          stateBytes: median(result.reps.map((r) => r.stateBytes)),
          rssBeforeBytes: result.rssBeforeBytes,
          peakRssBytes: result.peakRssBytes,
        };
        sizes.push(size);
        opts.log(
          `  ${n}: first ${size.firstMs.toFixed(0)} ms (fetch ${size.firstFetchMs.toFixed(0)}), 1% changed ${size.changedMs.toFixed(0)} ms (fetch ${size.changedFetchMs.toFixed(0)}), state ${size.stateBytes} B, ` +
            `RSS ${(size.rssBeforeBytes / 2 ** 20).toFixed(0)} -> peak ${(size.peakRssBytes / 2 ** 20).toFixed(0)} MiB`,
        );
      } finally {
        await api.close();
      }
    }
  } finally {
    await auth.close();
  }
  const at = (n: number): RecordChangeSize | undefined => sizes.find((s) => s.n === n);
  const a = at(10_000);
  const b = at(100_000);
  const growth =
    a && b
      ? {
          firstPoll: b.firstMs / a.firstMs,
          changedPoll: b.changedMs / a.changedMs,
          stateBytes: b.stateBytes / a.stateBytes,
          peakAboveBase: (b.peakRssBytes - b.rssBeforeBytes) / (a.peakRssBytes - a.rssBeforeBytes),
        }
      : { firstPoll: NaN, changedPoll: NaN, stateBytes: NaN, peakAboveBase: NaN };
  return { reps: opts.reps, sizes, growth };
}

if (require.main === module) {
  recordChange({ sizes: [1_000, 10_000, 100_000], reps: Number(process.env.RUNS ?? 5), log: console.log }).then(
    (r) => console.log(JSON.stringify(r.growth, null, 2)),
    (err) => {
      console.error(err);
      process.exitCode = 1;
    },
  );
}
