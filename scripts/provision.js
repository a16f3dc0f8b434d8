#!/usr/bin/env node
'use strict';
// Installs the Debian packages the test suites need (scripts/system-packages.js) when they are missing, with
// apt-get as root or through passwordless sudo. `npm test` runs it before mocha, `.ci/run` with --strict.
//
//   node scripts/provision.js           install what is missing if it can; otherwise say in one line what
//                                        is missing and that its suites are skipped (exit 0)
//   node scripts/provision.js --check   only report, install nothing (also TEST_NO_INSTALL=1)
//   node scripts/provision.js --strict  install, and exit 1 when something is still missing (CI)
const { spawnSync } = require('node:child_process');
const { SYSTEM_PACKAGES, binaryOf, missingPackages } = require('./system-packages');

const args = new Set(process.argv.slice(2));
const checkOnly = args.has('--check') || process.env.TEST_NO_INSTALL === '1';
const strict = args.has('--strict');

function names(pkgs) {
  return pkgs.map((p) => p.name).join(', ');
}

function commandExists(cmd) {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
}

/** How to run apt-get here: directly as root, through passwordless sudo, or not at all (and why not). */
function installer() {
  if (!commandExists('apt-get')) return { why: 'apt-get is not available (not a Debian or Ubuntu machine)' };
  if (typeof process.getuid === 'function' && process.getuid() === 0) return { prefix: [] };
  if (commandExists('sudo') && spawnSync('sudo', ['-n', 'true'], { stdio: 'ignore' }).status === 0) {
    return { prefix: ['sudo', '-n'] };
  }
  return { why: 'not root, and sudo is missing or asks for a password' };
}

function aptGet(prefix, aptArgs) {
  const [cmd, ...rest] = [...prefix, 'env', 'DEBIAN_FRONTEND=noninteractive', 'apt-get', ...aptArgs];
  return spawnSync(cmd, rest, { stdio: ['ignore', 'ignore', 'inherit'] }).status === 0;
}

function skippedLine(missing, reason) {
  const suites = missing.map((p) => `${p.neededBy} need ${p.name}`).join('; ');
  const fixes = missing.map((p) =>
    binaryOf(p) === p.binary ? `apt-get install -y ${p.name} as root` : `point ${p.env} at a ${p.name} program (it names ${binaryOf(p)})`,
  );
  return `provision: ${names(missing)} not installed (${reason}): ${suites}; those suites are skipped. To run them: ${fixes.join('; ')}`;
}

function main() {
  let missing = missingPackages();
  if (missing.length === 0) {
    console.log(`provision: ${SYSTEM_PACKAGES.map((p) => `${p.name} (${binaryOf(p)})`).join(', ')} present`);
    return 0;
  }
  if (checkOnly) {
    console.log(skippedLine(missing, 'report only, nothing installed'));
    return strict ? 1 : 0;
  }
  const how = installer();
  if (!how.prefix) {
    console.log(skippedLine(missing, how.why));
    return strict ? 1 : 0;
  }
  // Only packages whose program is at its Debian path can be installed; a program pointed elsewhere by its
  // environment variable is the user's to provide.
  const installable = missing.filter((p) => binaryOf(p) === p.binary);
  if (installable.length > 0) {
    console.log(`provision: installing ${names(installable)} with apt-get (needed by ${installable.map((p) => p.neededBy).join(', ')})`);
    const ok =
      aptGet(how.prefix, ['update', '-qq']) && aptGet(how.prefix, ['install', '-y', '-qq', ...installable.map((p) => p.name)]);
    if (!ok) console.log('provision: apt-get failed (see its messages above)');
  }
  missing = missingPackages();
  if (missing.length > 0) {
    console.log(skippedLine(missing, installable.length > 0 ? 'apt-get could not install them' : 'their programs are pointed elsewhere'));
    return strict ? 1 : 0;
  }
  console.log(`provision: ${SYSTEM_PACKAGES.map((p) => `${p.name} (${binaryOf(p)})`).join(', ')} present`);
  return 0;
}

if (require.main === module) process.exitCode = main();
