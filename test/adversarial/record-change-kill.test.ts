import assert from 'node:assert/strict';
import type { AuthServer } from '../support/auth-server';
import { startWatchedAuthServer, startWatchedRuntime } from '../support/e2e';
import { startRedis, type RedisServer } from '../support/redis';
import { needsSystemPackage } from '../support/system-packages';
import { runKillSweep, type Delivery } from './record-change-kill-harness';

/**
 * Invariant 11 under SIGKILL, for both Delivery settings and both trigger stores: a runtime polling a records
 * API is killed at moments across a poll (before the first message reached the next node, between that and the
 * memory being recorded, just after), restarted, and its next poll runs. At least once loses no change; at most
 * once repeats none. CI kills at three points per case, placed from a calibration poll;
 * scripts/record-change-kill-sweep.ts sweeps every few ms (docs/RELIABILITY.md has its figures).
 */
describe('adversarial: SIGKILL swept across a record trigger poll (Delivery: at least once / at most once)', function () {
  needsSystemPackage(this, 'redis-server');
  this.timeout(120_000);
  let auth: AuthServer;
  let redis: RedisServer;

  before(async () => {
    [auth, redis] = await Promise.all([startWatchedAuthServer({ accessTokenTtlSec: 3600 }), startRedis()]);
  });
  after(async () => {
    await Promise.all([auth?.close(), redis?.close()]);
  });

  // Both stores at once (two runtimes side by side): the CI budget is tight, and the window is calibrated per run.
  for (const delivery of ['at-least-once', 'at-most-once'] as Delivery[]) {
    it(`${delivery}, file store and Redis: ${delivery === 'at-least-once' ? 'no change lost' : 'no change repeated'}`, async () => {
      const reports = await Promise.all(
        (['file', 'redis'] as const).map((store) =>
          runKillSweep({
            auth,
            delivery,
            redis: store === 'redis' ? redis : undefined,
            // Just before the first of (first message at the next node, memory recorded), between them, just after both.
            offsets: ({ sentMs, recordedMs }) => {
              const [first, last] = [Math.min(sentMs, recordedMs), Math.max(sentMs, recordedMs)];
              return [...new Set([Math.max(0, first - 1), Math.round((first + last) / 2), last + 1])];
            },
            startNodeRed: startWatchedRuntime,
          }),
        ),
      );
      for (const report of reports) {
        console.log(
          `      ${report.store}: window ${report.window.sentMs} → ${report.window.recordedMs} ms; kills at ${report.offsets.join(', ')} ms: ` +
            `${report.changes} changes, ${report.lost} lost, ${report.repeated} repeated (${Math.round(report.totalMs / 1000)} s)`,
        );
        assert.deepEqual(report.crashes, [], report.store);
        assert.equal(report.keyMismatches, 0, `${report.store}: a change sent again carries the same msg.changeKey`);
        if (delivery === 'at-least-once') assert.equal(report.lost, 0, `${report.store}: ${JSON.stringify(report.cycles)}`);
        else assert.equal(report.repeated, 0, `${report.store}: ${JSON.stringify(report.cycles)}`);
      }
    });
  }
});
