'use strict';
// Tests are TypeScript run through tsx; the nodes under test are the compiled ones in dist/ (npm test builds
// first), so Node-RED loads exactly what the package ships.
module.exports = {
  require: ['tsx/cjs'],
  extension: ['ts'],
  // SPEC=path[,path] runs a subset: `SPEC=test/unit/http npx mocha`.
  spec: process.env.SPEC ? process.env.SPEC.split(',') : ['test/unit/**/*.test.ts', 'test/node/**/*.test.ts', 'test/adversarial/**/*.test.ts', 'test/e2e/**/*.test.ts', 'test/browser/**/*.test.ts'],
  reporter: './test/support/summary-reporter.js',
  timeout: 20000,
  exit: true,
};
