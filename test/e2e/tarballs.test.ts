/**
 * The install a newcomer can do before anything is on the registry: `npm run tarballs` packs both packages,
 * the runtime tarball installs globally into a scratch prefix, and its `node-red-http-oauth2 start --demo` runs
 * the nodes it carries. In a clone, `npm ci` links the same command (`npx node-red-http-oauth2`).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { runCli, startCli, type StartedCli } from '../support/cli';
import { REPO_ROOT } from '../support/packaging';

const run = promisify(execFile);
const PALETTE = 'node-red-contrib-http-oauth2';
const RUNTIME = 'node-red-contrib-http-oauth2-runtime';
const VERSION = (JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string }).version;

/** npm's lifecycle variables name the repository `npm test` runs in; the child npm must act on the scratch folder. */
function npmEnv(): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(process.env).filter(([key]) => !/^npm_/i.test(key)));
}

describe('e2e: both tarballs, the runtime installed globally from its tarball', function () {
  this.timeout(180_000);
  let tmp: string;
  let prefix: string;
  let cli: StartedCli | undefined;

  before(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'nr-oauth2-tarballs-'));
    prefix = path.join(tmp, 'prefix');
    // npm test built dist/ already: packing must not rebuild it under the other suites.
    await run(process.execPath, [path.join(REPO_ROOT, 'scripts', 'pack.js'), '--out', path.join(tmp, 'out'), '--no-build'], { env: npmEnv() });
  });

  after(async () => {
    await cli?.stop('SIGKILL');
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  it('packs the palette package and the runtime, which carries the palette package and no path of this machine', async () => {
    const out = path.join(tmp, 'out');
    assert.deepEqual(fs.readdirSync(out).sort(), [`${PALETTE}-${VERSION}.tgz`, `${RUNTIME}-${VERSION}.tgz`]);
    const listing = (await run('tar', ['-tzf', path.join(out, `${RUNTIME}-${VERSION}.tgz`)], { maxBuffer: 8 * 1024 * 1024 })).stdout.split('\n');
    for (const file of ['package/package.json', 'package/bin/node-red-http-oauth2.js', 'package/dist/cli.js', 'package/assets/demo-editor.js', 'package/palette/package.json', 'package/palette/dist/nodes/oauth2-connection.js']) {
      assert.ok(listing.includes(file), file);
    }
    assert.ok(!listing.some((f) => f.endsWith('.map')), 'no source maps');
    assert.ok(!listing.some((f) => f.includes('/node_modules/')), 'nothing bundled');
    const manifest = JSON.parse((await run('tar', ['-xzOf', path.join(out, `${RUNTIME}-${VERSION}.tgz`), 'package/package.json'])).stdout) as {
      dependencies: Record<string, string>;
      bin: Record<string, string>;
    };
    assert.equal(manifest.dependencies[PALETTE], undefined, 'no dependency on an unpublished package');
    assert.ok(!Object.values(manifest.dependencies).some((spec) => spec.startsWith('file:')), JSON.stringify(manifest.dependencies));
    const palette = JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')) as { dependencies: Record<string, string> };
    for (const [name, spec] of Object.entries(palette.dependencies)) assert.equal(manifest.dependencies[name], spec, name);
    assert.equal(manifest.bin['node-red-http-oauth2'], 'bin/node-red-http-oauth2.js');
  });

  it('installs globally from the tarball, and the installed command starts the demo with the nodes it carries', async () => {
    await run('npm', ['install', '-g', '--prefix', prefix, '--no-audit', '--no-fund', '--no-update-notifier', path.join(tmp, 'out', `${RUNTIME}-${VERSION}.tgz`)], {
      env: npmEnv(),
      cwd: tmp,
      timeout: 150_000,
      maxBuffer: 16 * 1024 * 1024,
    });
    const bin = path.join(prefix, 'bin', 'node-red-http-oauth2');
    assert.ok(fs.existsSync(bin), 'the command is on the prefix PATH');
    const installed = path.join(prefix, 'lib', 'node_modules', RUNTIME);
    cli = await startCli(['--demo', '--port', '0', '--user-dir', path.join(tmp, 'demo'), '--log-level', 'warn'], {}, 40_000, fs.realpathSync(bin));
    const health = (await (await fetch(new URL('healthz', cli.adminUrl))).json()) as { status: string };
    assert.equal(health.status, 'ok');
    const sets = (await (await cli.admin('nodes', { headers: { accept: 'application/json' } })).json()) as Array<{ module: string; types: string[]; enabled: boolean; err?: string }>;
    const ours = sets.filter((set) => set.module === PALETTE);
    assert.deepEqual(ours.flatMap((set) => set.types).sort(), ['http-oauth2-request', 'oauth2-connection', 'oauth2-connection-status', 'oauth2-record-change']);
    assert.ok(ours.every((set) => set.enabled && !set.err), JSON.stringify(ours));
    // The demo flow is deployed from the installed copy: its trigger waits for the login.
    const flows = (await (await cli.admin('flows', { headers: { 'node-red-api-version': 'v1' } })).json()) as Array<{ type: string }>;
    assert.ok(flows.some((n) => n.type === 'oauth2-record-change'));
    // Its editor page loads the demo's page script from the installed package.
    const page = await (await fetch(cli.adminUrl)).text();
    // The template HTML-escapes the path's slashes (&#x2F;).
    const script = /<script src="([^"]*demo-editor\.js)"/.exec(page)?.[1]?.replace(/&#x2F;/g, '/');
    assert.ok(script, 'the editor page loads demo-editor.js');
    assert.match(await (await fetch(new URL(script, cli.adminUrl))).text(), /last-sidebar-tab/);
    assert.ok(fs.existsSync(path.join(installed, 'palette', 'package.json')));
    assert.equal(await cli.stop('SIGTERM'), 0);
    cli = undefined;
  });

  it('in this clone, npm ci links the command: node_modules/.bin/node-red-http-oauth2 answers --help', async () => {
    const linked = path.join(REPO_ROOT, 'node_modules', '.bin', 'node-red-http-oauth2');
    assert.ok(fs.existsSync(linked), 'npx node-red-http-oauth2 works after npm ci');
    const help = runCli(['--help'], {}, undefined, fs.realpathSync(linked));
    assert.equal(await help.exited, 0);
    assert.match(help.stdout(), /Usage: node-red-http-oauth2 start/);
  });
});
