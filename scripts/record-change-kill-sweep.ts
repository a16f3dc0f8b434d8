/**
 * The full kill sweep behind docs/RELIABILITY.md ("Record trigger: SIGKILL across a poll"): for the file store
 * and Redis, at least once and at most once, a SIGKILL every SWEEP_STEP_MS (default 1) from 0 to SWEEP_TO_MS
 * (default: 15 ms past the later of the calibrated "first message at the next node" and "memory recorded") after
 * the list was answered (see test/adversarial/record-change-kill-harness.ts); SWEEP_PASSES (default 1) times.
 *
 *   node scripts/build.js && npx tsx scripts/record-change-kill-sweep.ts
 *   SWEEP_STEP_MS=2 SWEEP_PASSES=3 npx tsx scripts/record-change-kill-sweep.ts
 *
 * Needs /usr/bin/redis-server (REDIS_SERVER overrides). Prints a line per kill and a JSON summary per case; exits
 * 1 when at least once lost a change or at most once repeated one.
 */
import { startAuthServer } from '../test/support/auth-server';
import { startRedis } from '../test/support/redis';
import { runKillSweep, type Delivery, type SweepReport } from '../test/adversarial/record-change-kill-harness';

const step = Number(process.env.SWEEP_STEP_MS ?? 1);
const to = process.env.SWEEP_TO_MS === undefined ? undefined : Number(process.env.SWEEP_TO_MS);
const passes = Number(process.env.SWEEP_PASSES ?? 1);

async function main(): Promise<void> {
  const auth = await startAuthServer({ accessTokenTtlSec: 3600 });
  const redis = await startRedis();
  const reports: SweepReport[] = [];
  try {
    for (const store of ['file', 'redis'] as const) {
      for (const delivery of ['at-least-once', 'at-most-once'] as Delivery[]) {
        const report = await runKillSweep({
          auth,
          delivery,
          redis: store === 'redis' ? redis : undefined,
          offsets: ({ sentMs, recordedMs }) => {
            const end = to ?? Math.max(sentMs, recordedMs) + 15;
            const one = Array.from({ length: Math.floor(end / step) + 1 }, (_, i) => i * step);
            return Array.from({ length: passes }, () => one).flat();
          },
          log: (line) => console.log(line),
        });
        reports.push(report);
        const { cycles: _cycles, crashes, ...summary } = report;
        console.log(JSON.stringify({ ...summary, crashes: crashes.length }));
      }
    }
  } finally {
    await redis.close();
    await auth.close();
  }
  console.log('\n| store | delivery | kills | changes | lost | repeated | window (ms after the list: first message at the next node / memory recorded) |');
  console.log('|---|---|---|---|---|---|---|');
  for (const r of reports) {
    console.log(`| ${r.store} | ${r.delivery} | ${r.kills} | ${r.changes} | ${r.lost} | ${r.repeated} | ${r.window.sentMs} / ${r.window.recordedMs} |`);
  }
  const broken = reports.some((r) => (r.delivery === 'at-least-once' ? r.lost > 0 : r.repeated > 0) || r.keyMismatches > 0 || r.crashes.length > 0);
  process.exitCode = broken ? 1 : 0;
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
