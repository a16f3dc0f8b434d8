import assert from 'node:assert/strict';
import { startWatchedAuthServer, startWatchedRuntime } from '../support/e2e';
import { runKillCycles } from './kill-harness';

/**
 * Invariant 8 under SIGKILL: access tokens live 1 second and refresh tokens rotate, traffic flows, the runtime
 * is killed at a random moment and restarted on the same user directory and port; the login must survive
 * every cycle. KILL_CYCLES overrides the CI count (25); scripts/kill-cycles.ts runs 500.
 */
/** How far from a provider-side rotation a kill may land and still be "inside the window" (CI machines are slow). */
const WINDOW_MS = 250;

describe('adversarial: SIGKILL during constant refresh-token rotation', function () {
  const cycles = Number(process.env.KILL_CYCLES ?? 25);
  this.timeout(60_000 + cycles * 5_000);

  it(`${cycles} kill/restart cycles lose no login`, async () => {
    const report = await runKillCycles({
      cycles,
      startAuth: startWatchedAuthServer,
      startNodeRed: startWatchedRuntime,
      log: (line) => console.log(`      ${line}`),
    });
    console.log(
      `      ${cycles} cycles in ${Math.round(report.totalMs / 1000)} s (restart ${report.meanStartMs} ms on average), ` +
        `${report.refreshes} refreshes, ${report.okRequests} requests served, ${report.lostLogins} lost logins`,
    );
    assert.equal(report.cycles.length, cycles);
    assert.ok(report.refreshes >= cycles / 2, `refresh tokens rotated during the cycles (${report.refreshes})`);
    assert.deepEqual(report.crashes, []);
    assert.equal(report.otherFailures, 0, JSON.stringify(report.cycles.filter((c) => c.outcome === 'other-failure').slice(0, 3)));
    // With rotating refresh tokens and no reuse grace at the provider, a kill while a refresh request is on its
    // way (sent, not yet answered) or before our first write of the new token loses the login whatever the
    // client does: the provider has spent the old refresh token and the new one dies with the process. The token
    // store's journal (a synchronous write to the page cache before anyone gets the token) shrank that window from
    // the durable write's milliseconds of fsync to the request's round trip: 3 of 50 kills lost the login
    // before, about 1.5 % after, all within 10 ms of a rotation (docs/RELIABILITY.md). A loss far from a rotation
    // would be the store lagging behind a token in use, and fails at once; losses inside the window are bounded.
    const lost = report.cycles.filter((c) => c.outcome === 'login-lost');
    for (const c of lost) {
      assert.ok(c.killMinusRefreshMs !== undefined && Math.abs(c.killMinusRefreshMs) <= WINDOW_MS, `a login lost outside the rotation window: ${JSON.stringify(c)}`);
    }
    assert.ok(lost.length <= Math.max(2, Math.ceil(cycles * 0.1)), `lost logins: ${lost.length} of ${cycles}`);
  });
});
