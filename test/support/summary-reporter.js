'use strict';
// Mocha's spec output, closed by the one line CI reads: "N passed, N failed", counted from the real results.
// Suites skipped for a missing Debian package (test/support/system-packages.ts) are listed before it, with why.
const Mocha = require('mocha');

const { EVENT_RUN_END, EVENT_TEST_PASS, EVENT_TEST_FAIL, EVENT_TEST_PENDING } = Mocha.Runner.constants;

/** The reason the nearest enclosing suite was skipped for, if it was skipped for one. */
function skipReasonOf(test) {
  for (let suite = test.parent; suite; suite = suite.parent) {
    if (typeof suite.skipReason === 'string') return { suite: suite.fullTitle(), reason: suite.skipReason };
  }
  return undefined;
}

class SummaryReporter extends Mocha.reporters.Spec {
  constructor(runner, options) {
    super(runner, options);
    let passed = 0;
    let failed = 0;
    let skipped = 0;
    /** reason -> { suites, count } for the suites skipped for a missing package */
    const skippedFor = new Map();
    runner.on(EVENT_TEST_PASS, () => { passed += 1; });
    runner.on(EVENT_TEST_FAIL, () => { failed += 1; });
    runner.on(EVENT_TEST_PENDING, (test) => {
      skipped += 1;
      const why = skipReasonOf(test);
      if (!why) return;
      const entry = skippedFor.get(why.reason) ?? { suites: new Set(), count: 0 };
      entry.suites.add(why.suite);
      entry.count += 1;
      skippedFor.set(why.reason, entry);
    });
    runner.once(EVENT_RUN_END, () => {
      let out = '\n';
      for (const [reason, { suites, count }] of skippedFor) {
        out += `skipped ${count} test(s) in ${suites.size} suite(s): ${reason}\n`;
      }
      out += `${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}\n`;
      process.stdout.write(out);
    });
  }
}

module.exports = SummaryReporter;
