/**
 * The README's test command sets itself up: scripts/provision.js installs the Debian packages the suites need,
 * or says in one line which are missing and that their suites are skipped; a suite whose package is missing is
 * reported as skipped with that reason, never as a failing hook.
 */
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

const repo = path.resolve(__dirname, '../..');
const provision = path.join(repo, 'scripts/provision.js');
const missing = { CHROMIUM_PATH: '/nonexistent/chromium', REDIS_SERVER: '/nonexistent/redis-server', GLEWLWYD: '/nonexistent/glewlwyd' };

function run(args: string[], env: NodeJS.ProcessEnv, opts: { uid?: number; gid?: number } = {}) {
  const r = spawnSync(process.execPath, [provision, ...args], { cwd: repo, env: { ...process.env, ...env }, encoding: 'utf8', ...opts });
  return { status: r.status, out: r.stdout.trim(), err: r.stderr.trim() };
}

describe('scripts/provision.js: the test command provisions what the suites need', function () {
  this.timeout(60000);

  it('--check reports the missing packages in one line, names the suites that are skipped, installs nothing', () => {
    const r = run(['--check'], missing);
    assert.equal(r.status, 0);
    const lines = r.out.split('\n');
    assert.equal(lines.length, 1, r.out);
    assert.match(lines[0], /chromium, redis-server, glewlwyd not installed \(report only, nothing installed\)/);
    assert.match(lines[0], /the browser tests \(test\/browser\) need chromium/);
    assert.match(lines[0], /test\/unit\/redis.*need redis-server/);
    assert.match(lines[0], /test\/e2e\/glewlwyd.*need glewlwyd/);
    assert.match(lines[0], /those suites are skipped/);
  });

  it('--strict fails when a package is missing, so CI never passes without them', () => {
    assert.equal(run(['--check', '--strict'], missing).status, 1);
  });

  it('with nothing missing, says where each program is', () => {
    const present = { CHROMIUM_PATH: process.execPath, REDIS_SERVER: process.execPath, GLEWLWYD: process.execPath };
    const r = run(['--check', '--strict'], present);
    assert.equal(r.status, 0);
    assert.match(r.out, /chromium \(.+\), redis-server \(.+\), glewlwyd \(.+\) present/);
  });

  it('as a user who cannot install (not root, no sudo), says why in one line and goes on', function () {
    // Run as nobody, which has no passwordless sudo; a test run that is not root cannot switch users.
    if (typeof process.getuid !== 'function' || process.getuid() !== 0) this.skip();
    const r = run([], missing, { uid: 65534, gid: 65534 });
    assert.equal(r.status, 0, r.err);
    assert.equal(r.out.split('\n').length, 1, r.out);
    assert.match(r.out, /chromium, redis-server, glewlwyd not installed \(not root, and sudo is missing or asks for a password\)/);
  });

  it('on a machine without apt-get, says so in one line and goes on', () => {
    // A PATH holding only sh: no apt-get, no sudo, whoever runs the tests.
    const bin = fs.mkdtempSync(path.join(os.tmpdir(), 'provision-path-'));
    try {
      fs.symlinkSync('/bin/sh', path.join(bin, 'sh'));
      const r = run([], { ...missing, PATH: bin });
      assert.equal(r.status, 0, r.err);
      assert.equal(r.out.split('\n').length, 1, r.out);
      assert.match(r.out, /not installed \(apt-get is not available \(not a Debian or Ubuntu machine\)\)/);
    } finally {
      fs.rmSync(bin, { recursive: true, force: true });
    }
  });

  it('a suite whose package is missing is skipped with the reason, and the summary counts it', () => {
    const r = spawnSync(process.execPath, [path.join(repo, 'node_modules/mocha/bin/mocha.js')], {
      cwd: repo,
      env: { ...process.env, ...missing, SPEC: 'test/unit/redis/lock.test.ts' },
      encoding: 'utf8',
    });
    assert.equal(r.status, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /skipped \d+ test\(s\) in 1 suite\(s\): redis-server is not installed \(\/nonexistent\/redis-server missing/);
    assert.match(r.stdout, /^0 passed, 0 failed, [1-9]\d* skipped$/m);
    assert.doesNotMatch(r.stdout, /hook/);
  });
});
