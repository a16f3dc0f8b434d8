/**
 * The runtime's production settings: it refuses to listen beyond loopback without a credential secret and an
 * admin login; with an admin login from the environment, the editor's admin API (ours included) refuses
 * anonymous callers and accepts a token obtained with the password; hash-password makes the hash.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import bcrypt from 'bcryptjs';
import { runCli, startCli, type StartedCli } from '../support/cli';
import { tempUserDir } from '../support/runtime';

const SECRET = 'production-test-credential-secret';

/** The editor's password login (Node-RED's admin token endpoint) as the operator. */
function passwordLogin(cli: StartedCli, password: string): Promise<Response> {
  return cli.admin('auth/token', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ client_id: 'node-red-admin', grant_type: 'password', scope: '*', username: 'operator', password }),
  });
}

describe('runtime: production settings', function () {
  this.timeout(40_000);

  describe('refusals', () => {
    it('refuses a non-loopback address without NODE_RED_CREDENTIAL_SECRET', async () => {
      const run = runCli(['start', '--host', '0.0.0.0', '--port', '0', '--user-dir', tempUserDir()]);
      assert.equal(await run.exited, 2);
      assert.match(run.stderr(), /Refusing to listen on 0\.0\.0\.0 without NODE_RED_CREDENTIAL_SECRET/);
    });

    it('refuses a non-loopback address without an admin login, unless --insecure-no-admin-auth', async () => {
      const userDir = tempUserDir();
      const run = runCli(['start', '--port', '0', '--user-dir', userDir], { NR_OAUTH2_HOST: '0.0.0.0', NODE_RED_CREDENTIAL_SECRET: SECRET });
      assert.equal(await run.exited, 2);
      assert.match(run.stderr(), /NR_OAUTH2_ADMIN_USER and NR_OAUTH2_ADMIN_PASSWORD_HASH/);
      assert.match(run.stderr(), /--insecure-no-admin-auth/);
      assert.deepEqual(fs.readdirSync(userDir), [], 'nothing was started');
    });

    it('refuses the demo beyond loopback, a half-set admin login, and a password that is not a bcrypt hash', async () => {
      const demo = runCli(['start', '--demo', '--host', '0.0.0.0', '--user-dir', tempUserDir()], { NODE_RED_CREDENTIAL_SECRET: SECRET });
      assert.equal(await demo.exited, 2);
      assert.match(demo.stderr(), /demo runs on loopback only/);
      const half = runCli(['start', '--user-dir', tempUserDir()], { NR_OAUTH2_ADMIN_USER: 'admin' });
      assert.equal(await half.exited, 2);
      assert.match(half.stderr(), /Set both NR_OAUTH2_ADMIN_USER and NR_OAUTH2_ADMIN_PASSWORD_HASH/);
      const plain = runCli(['start', '--user-dir', tempUserDir()], { NR_OAUTH2_ADMIN_USER: 'admin', NR_OAUTH2_ADMIN_PASSWORD_HASH: 'secret' });
      assert.equal(await plain.exited, 2);
      assert.match(plain.stderr(), /not a bcrypt hash/);
    });

    it('refuses Redis without NODE_RED_CREDENTIAL_SECRET (even on loopback), and a URL that is not redis://, never repeating its password', async () => {
      const userDir = tempUserDir();
      const noSecret = runCli(['start', '--port', '0', '--user-dir', userDir, '--redis', 'redis://:hunter2-redis@127.0.0.1:6390/0']);
      assert.equal(await noSecret.exited, 2);
      assert.match(noSecret.stderr(), /Refusing to use Redis \(redis:\/\/127\.0\.0\.1:6390\) without NODE_RED_CREDENTIAL_SECRET/);
      assert.match(noSecret.stderr(), /same long random value .* on every instance/);
      assert.deepEqual(fs.readdirSync(userDir), [], 'nothing was started, no secret generated');
      const fromEnv = runCli(['start', '--port', '0', '--user-dir', tempUserDir()], { HTTP_OAUTH2_REDIS_URL: 'redis://:hunter2-redis@127.0.0.1:6390' });
      assert.equal(await fromEnv.exited, 2);
      assert.match(fromEnv.stderr(), /without NODE_RED_CREDENTIAL_SECRET/);
      const http = runCli(['start', '--port', '0', '--user-dir', tempUserDir(), '--redis', 'http://:hunter2-redis@127.0.0.1:6390'], { NODE_RED_CREDENTIAL_SECRET: SECRET });
      assert.equal(await http.exited, 2);
      assert.match(http.stderr(), /must be a redis:\/\/ or rediss:\/\/ URL/);
      const lease = runCli(['start', '--port', '0', '--user-dir', tempUserDir(), '--redis', 'redis://127.0.0.1:6390'], {
        NODE_RED_CREDENTIAL_SECRET: SECRET,
        HTTP_OAUTH2_REDIS_TRIGGER_LEASE_MS: '5s',
      });
      assert.equal(await lease.exited, 2);
      assert.match(lease.stderr(), /HTTP_OAUTH2_REDIS_TRIGGER_LEASE_MS must be a whole number of milliseconds/);
      const prefixAlone = runCli(['start', '--port', '0', '--user-dir', tempUserDir()], { NODE_RED_CREDENTIAL_SECRET: SECRET, HTTP_OAUTH2_REDIS_PREFIX: 'x:' });
      assert.equal(await prefixAlone.exited, 2);
      assert.match(prefixAlone.stderr(), /needs --redis/);
      const timeout = runCli(['start', '--port', '0', '--user-dir', tempUserDir(), '--redis', 'redis://127.0.0.1:6390'], {
        NODE_RED_CREDENTIAL_SECRET: SECRET,
        HTTP_OAUTH2_REDIS_COMMAND_TIMEOUT_MS: '99',
      });
      assert.equal(await timeout.exited, 2);
      assert.match(timeout.stderr(), /HTTP_OAUTH2_REDIS_COMMAND_TIMEOUT_MS must be a whole number of milliseconds from 100 to 60000/);
      for (const run of [noSecret, fromEnv, http, lease, timeout, prefixAlone]) assert.doesNotMatch(run.stdout() + run.stderr(), /hunter2/);
    });

    it('refuses a weak NODE_RED_CREDENTIAL_SECRET beyond loopback and with Redis, warns on loopback, and new-secret makes a strong one', async () => {
      for (const weak of ['x', 'changeme', 'Change-Me-2024!', 'your-secret-here', 'aaaaaaaaaaaaaaaaaaaaaaaaaa', 'abababababababababab']) {
        const run = runCli(['start', '--host', '0.0.0.0', '--port', '0', '--user-dir', tempUserDir(), '--insecure-no-admin-auth'], {
          NODE_RED_CREDENTIAL_SECRET: weak,
        });
        assert.equal(await run.exited, 2, weak);
        assert.match(run.stderr(), /weak NODE_RED_CREDENTIAL_SECRET/, weak);
        assert.match(run.stderr(), /node-red-http-oauth2 new-secret/, weak);
        assert.ok(!run.stderr().includes(weak) || weak.length < 3, `the refusal repeats the secret ${weak}`);
      }
      const redis = runCli(['start', '--port', '0', '--user-dir', tempUserDir(), '--redis', 'redis://127.0.0.1:6390'], { NODE_RED_CREDENTIAL_SECRET: 'changeme' });
      assert.equal(await redis.exited, 2);
      assert.match(redis.stderr(), /Refusing to share tokens through Redis with a weak NODE_RED_CREDENTIAL_SECRET/);

      const fresh = runCli(['new-secret']);
      assert.equal(await fresh.exited, 0);
      const secret = fresh.stdout().trim();
      assert.match(secret, /^[0-9a-f]{64}$/);
      const again = runCli(['new-secret']);
      await again.exited;
      assert.notEqual(again.stdout().trim(), secret);

      const loopback = await startCli(['--port', '0', '--user-dir', tempUserDir(), '--log-level', 'warn'], { NODE_RED_CREDENTIAL_SECRET: 'short' });
      try {
        assert.match(loopback.stderr(), /NODE_RED_CREDENTIAL_SECRET is weak \(it has 5 characters, at least 16 are needed\): allowed on loopback only/);
      } finally {
        await loopback.stop('SIGKILL');
      }
    });

    it('listening on all addresses, prints a URL a person can open and says it listens everywhere', async () => {
      const cli = await startCli(['--host', '0.0.0.0', '--port', '0', '--user-dir', tempUserDir(), '--log-level', 'warn', '--insecure-no-admin-auth'], {
        NODE_RED_CREDENTIAL_SECRET: SECRET,
      });
      try {
        assert.match(cli.adminUrl, /^http:\/\/127\.0\.0\.1:\d+\/$/);
        assert.doesNotMatch(cli.stdout(), /0\.0\.0\.0:\d+/);
        assert.match(cli.stdout(), /listening on all addresses \(0\.0\.0\.0\); from another machine: http:\/\/\S+:\d+\//);
        assert.equal((await fetch(new URL('healthz', cli.adminUrl))).status, 200);
      } finally {
        await cli.stop('SIGKILL');
      }
    });

    it('--help explains every option and its environment variable', async () => {
      const run = runCli(['--help']);
      assert.equal(await run.exited, 0);
      for (const text of [
        '--port', '--host', '--user-dir', '--flows', '--demo', '--log-level', '--insecure-no-admin-auth', 'hash-password',
        'NR_OAUTH2_PORT', 'NR_OAUTH2_HOST', 'NR_OAUTH2_USER_DIR', 'NR_OAUTH2_FLOWS', 'NR_OAUTH2_DEMO', 'NR_OAUTH2_LOG_LEVEL',
        'NR_OAUTH2_INSECURE_NO_ADMIN_AUTH', 'NODE_RED_CREDENTIAL_SECRET', 'NR_OAUTH2_ADMIN_USER', 'NR_OAUTH2_ADMIN_PASSWORD_HASH', '/healthz',
        '--redis', '--redis-prefix', 'HTTP_OAUTH2_REDIS_URL', 'HTTP_OAUTH2_REDIS_PREFIX', 'HTTP_OAUTH2_REDIS_TRIGGER_LEASE_MS',
        'HTTP_OAUTH2_REDIS_LOCK_TTL_MS', 'HTTP_OAUTH2_REDIS_COMMAND_TIMEOUT_MS', 'rediss://', 'new-secret', 'owner-only',
      ]) {
        assert.ok(run.stdout().includes(text), text);
      }
    });

    it('hash-password prints a bcrypt hash of the password read from stdin, and nothing else', async () => {
      const run = runCli(['hash-password'], {}, 'pa55 word\n');
      assert.equal(await run.exited, 0);
      const hash = run.stdout().trim();
      assert.ok(bcrypt.compareSync('pa55 word', hash), hash);
      assert.doesNotMatch(run.stdout() + run.stderr(), /pa55/);
    });
  });

  describe('with an admin login from the environment', () => {
    let cli: StartedCli | undefined;
    let userDir: string;

    before(async () => {
      userDir = tempUserDir('nr-oauth2-admin-');
      // Left readable by an earlier start or by hand: the runtime makes them owner-only.
      fs.mkdirSync(userDir, { recursive: true, mode: 0o755 });
      fs.chmodSync(userDir, 0o755);
      fs.writeFileSync(path.join(userDir, 'flows.json'), '[]', { mode: 0o644 });
      fs.writeFileSync(path.join(userDir, '.sessions.json'), '{}', { mode: 0o644 });
      cli = await startCli(['--port', '0', '--user-dir', userDir, '--log-level', 'warn'], {
        NR_OAUTH2_ADMIN_USER: 'operator',
        NR_OAUTH2_ADMIN_PASSWORD_HASH: bcrypt.hashSync('op-password', 8),
      });
    });

    after(async () => {
      await cli?.stop('SIGKILL');
    });

    it('keeps a generated credential secret owner-only in the user directory, with a warning', () => {
      const file = path.join(userDir, '.credential-secret');
      assert.equal((fs.statSync(file).mode & 0o777).toString(8), '600');
      assert.match(cli?.stderr() ?? '', /NODE_RED_CREDENTIAL_SECRET is not set: using a generated secret kept owner-only/);
      assert.doesNotMatch(cli?.stderr() ?? '', new RegExp(fs.readFileSync(file, 'utf8').trim()));
    });

    it('refuses anonymous callers on the admin API and our routes, and accepts the password login', async () => {
      assert.ok(cli);
      const guarded: Array<[string, RequestInit]> = [
        ['flows', {}],
        ['nodes', { headers: { accept: 'application/json' } }],
        ['oauth2-connection/conn1/status', {}],
        ['oauth2-connection/conn1/login', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' }],
        ['oauth2-connection/discover', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"issuer":"http://127.0.0.1:9"}' }],
      ];
      for (const [route, init] of guarded) {
        const res = await cli.admin(route, init);
        assert.equal(res.status, 401, `${route} answered ${res.status} to an anonymous caller`);
      }
      // The editor asks for a login: the settings say which kind, and nothing of the flows.
      const login = await cli.admin('auth/login');
      assert.equal(((await login.json()) as { type?: string }).type, 'credentials');

      assert.equal((await passwordLogin(cli, 'nope')).status, 403);
      const res = await passwordLogin(cli, 'op-password');
      assert.equal(res.status, 200);
      const token = ((await res.json()) as { access_token: string }).access_token;
      assert.equal((await cli.admin('flows', { token })).status, 200);
      assert.equal((await cli.admin('nodes', { token, headers: { accept: 'application/json' } })).status, 200);
      assert.equal((await cli.admin('oauth2-connection/conn1/status', { token })).status, 200);

      // The health endpoint stays open to a monitor.
      assert.equal((await fetch(new URL('healthz', cli.adminUrl))).status, 200);
    });

    it('keeps the user directory and every file in it owner-only, the editor sessions written after a login included', async () => {
      assert.ok(cli);
      const res = await passwordLogin(cli, 'op-password');
      assert.equal(res.status, 200);
      const token = ((await res.json()) as { access_token: string }).access_token;
      // A deploy writes flows, credentials and their backups.
      const deployed = await cli.admin('flows', {
        method: 'POST',
        token,
        headers: { 'content-type': 'application/json', 'node-red-deployment-type': 'full', 'node-red-api-version': 'v1' },
        body: JSON.stringify([{ id: 'tab1', type: 'tab', label: 'one' }]),
      });
      assert.ok(deployed.status === 200 || deployed.status === 204, String(deployed.status));
      const sessions = path.join(userDir, '.sessions.json');
      const deadline = Date.now() + 5_000;
      while (!fs.readFileSync(sessions, 'utf8').includes('node-red-admin') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      assert.match(fs.readFileSync(sessions, 'utf8'), /node-red-admin/, 'the login was written to .sessions.json');
      assert.equal((fs.statSync(userDir).mode & 0o777).toString(8), '700');
      const files = fs.readdirSync(userDir, { withFileTypes: true }).filter((e) => e.isFile()).map((e) => e.name);
      for (const name of ['.sessions.json', 'flows.json', '.config.runtime.json']) assert.ok(files.includes(name), `${name} in ${files.join(', ')}`);
      for (const name of files) assert.equal((fs.statSync(path.join(userDir, name)).mode & 0o777).toString(8), '600', name);
    });
  });
});
