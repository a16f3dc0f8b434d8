/**
 * The long kill run behind docs/RELIABILITY.md: KILL_CYCLES (default 500) SIGKILL/restart cycles with access
 * tokens living 1 second and rotating refresh tokens, traffic flowing (see test/adversarial/kill-harness.ts).
 *
 *   node scripts/build.js && npx tsx scripts/kill-cycles.ts
 *   KILL_CYCLES=100 npx tsx scripts/kill-cycles.ts
 *
 * Prints progress every 10 cycles and a JSON summary last; exits 1 when a login was lost.
 */
import { runKillCycles } from '../test/adversarial/kill-harness';

const cycles = Number(process.env.KILL_CYCLES ?? 500);

runKillCycles({ cycles, log: (line) => console.log(line) })
  .then((report) => {
    const killTimes = report.cycles.map((c) => c.killedAtMs);
    console.log(
      JSON.stringify({
        cycles: report.cycles.length,
        lostLogins: report.lostLogins,
        otherFailures: report.otherFailures,
        failures: report.cycles.filter((c) => c.outcome !== 'ok').map((c) => ({ outcome: c.outcome, killedAtMs: c.killedAtMs, detail: c.detail })),
        refreshes: report.refreshes,
        requestsServed: report.okRequests,
        meanRestartMs: report.meanStartMs,
        killWindowMs: [Math.min(...killTimes), Math.max(...killTimes)],
        totalSec: Math.round(report.totalMs / 1000),
        crashes: report.crashes.length,
      }),
    );
    process.exitCode = report.lostLogins === 0 && report.otherFailures === 0 ? 0 : 1;
  })
  .catch((err: unknown) => {
    console.error(err);
    process.exit(1);
  });
