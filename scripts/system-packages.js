'use strict';
// The Debian packages some test suites need, in one list: scripts/provision.js installs them (npm test and
// .ci/run both call it), and test/support/system-packages.ts skips a suite whose package is missing, naming it.
const fs = require('node:fs');

/**
 * @typedef {object} SystemPackage
 * @property {string} name      the Debian package
 * @property {string} binary    the program the suites run (an environment variable may point elsewhere)
 * @property {string} env       that environment variable
 * @property {string} neededBy  the suites that need it, as a reader of the test output knows them
 */

/** @type {SystemPackage[]} */
const SYSTEM_PACKAGES = [
  { name: 'chromium', binary: '/usr/bin/chromium', env: 'CHROMIUM_PATH', neededBy: 'the browser tests (test/browser)' },
  {
    name: 'redis-server',
    binary: '/usr/bin/redis-server',
    env: 'REDIS_SERVER',
    neededBy: 'the Redis store tests (test/unit/redis, test/node/redis-*, test/e2e/cluster, test/e2e/runtime-redis)',
  },
  {
    name: 'glewlwyd',
    binary: '/usr/bin/glewlwyd',
    env: 'GLEWLWYD',
    neededBy: 'the grant suites against a second authorization server (test/e2e/glewlwyd)',
  },
];

/** Where the suites look for the package's program: its environment variable, else the Debian path. */
function binaryOf(pkg, env = process.env) {
  return env[pkg.env] || pkg.binary;
}

function isExecutable(file) {
  try {
    fs.accessSync(file, fs.constants.X_OK);
    return fs.statSync(file).isFile();
  } catch {
    return false;
  }
}

/** The packages whose program is not there. */
function missingPackages(env = process.env) {
  return SYSTEM_PACKAGES.filter((pkg) => !isExecutable(binaryOf(pkg, env)));
}

/** Looks a package up by name (the suites name the package they need). */
function systemPackage(name) {
  const pkg = SYSTEM_PACKAGES.find((p) => p.name === name);
  if (!pkg) throw new Error(`no system package named ${name} in scripts/system-packages.js`);
  return pkg;
}

module.exports = { SYSTEM_PACKAGES, binaryOf, isExecutable, missingPackages, systemPackage };
