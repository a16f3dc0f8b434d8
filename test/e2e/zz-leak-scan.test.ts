import assert from 'node:assert/strict';
import { watchedRuntimeLogs } from '../support/e2e';
import { scanForLeaks, type LeakReport } from '../support/leaks';

/**
 * Invariant 1 across the whole e2e run: no token, client secret, code, verifier or password that any e2e file
 * issued or configured appears in a user directory (flows.json, flows_cred.json, token store, ...), a log line
 * at any level, or any text that left a runtime. The file name sorts last so the describe runs after the other
 * e2e files; the root-level `after` scans once more at the very end whatever the file order.
 */

/** Node-RED's numeric log levels (@node-red/util/lib/log.js): higher is chattier. */
const LEVEL = { info: 40, debug: 50, trace: 60, audit: 98, metric: 99 };

function describeHits(report: LeakReport): string {
  return `${report.hits.length} leak(s):\n${report.hits.slice(0, 20).join('\n')}`;
}

function assertScanned(report: LeakReport): void {
  const hint = 'run it together with the other e2e files (SPEC=test/e2e npx mocha)';
  assert.ok(report.secrets > 0, `no secrets were registered: ${hint}`);
  assert.ok(report.files > 0, `no user directory files were scanned: ${hint}`);
  assert.ok(report.logLines > 0, `no log lines were scanned: ${hint}`);
  assert.ok(report.texts > 0, `no runtime output was scanned: ${hint}`);
}

describe('e2e: leak scan over everything the e2e files produced', () => {
  it('scanned something real: secrets, files, log lines and outputs', () => {
    assertScanned(scanForLeaks());
  });

  it('the runtimes logged at every level down to trace, so the scan covered debug and trace output', () => {
    const lines = watchedRuntimeLogs();
    const count = (level: number): number => lines.filter((l) => l.level === level).length;
    assert.ok(count(LEVEL.trace) > 0, 'trace lines (level 60) arrive');
    assert.ok(count(LEVEL.debug) > 0, 'debug lines (level 50) arrive');
    assert.ok(count(LEVEL.info) > 0, 'info lines (level 40) arrive');
    const ours = lines.filter((l) => l.level === LEVEL.debug && (l.node === 'oauth2-connection' || l.node === 'http-oauth2-request'));
    assert.ok(ours.length > 0, "the package's own node.debug lines arrive");
  });

  it('no secret appears in any file, log line or output', () => {
    const report = scanForLeaks();
    assert.deepEqual(report.hits, [], describeHits(report));
  });
});

after(function () {
  const report = scanForLeaks();
  assertScanned(report);
  assert.deepEqual(report.hits, [], describeHits(report));
});
