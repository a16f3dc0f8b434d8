// The palette-manager path, end to end: pack the root package as `npm publish` would, install the tarball into a
// fresh Node-RED user directory with the arguments Node-RED's own installer uses, and run a stock `node-red`
// (red.js, not our embedding) on that user directory. Nothing here reaches into the repository's node_modules
// from the installed package: its runtime dependencies come from the registry, as they would for a user.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';

export const REPO_ROOT = path.resolve(__dirname, '..', '..');

/** One entry of `npm pack --json`. */
export interface PackResult {
  filename: string;
  /** Compressed size in bytes. */
  size: number;
  unpackedSize: number;
  entryCount: number;
  files: { path: string; size: number }[];
}

/**
 * npm's lifecycle variables (npm_config_*, npm_package_*, npm_lifecycle_*) describe the repository `npm test` was
 * started in; a child npm must not inherit them, or it could act on the repository instead of the temp folder.
 */
function cleanNpmEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) if (!/^npm_/i.test(key)) env[key] = value;
  return env;
}

function npm(args: string[], cwd: string, timeoutMs: number): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    execFile('npm', args, { cwd, env: cleanNpmEnv(), timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`npm ${args.join(' ')} failed in ${cwd}: ${err.message}\n${stderr.slice(-3000)}`));
      else resolve({ stdout, stderr });
    });
  });
}

/**
 * `npm pack` of the repository root into `dest`. Lifecycle scripts are skipped: the caller packs what the build
 * already put in dist/ (npm test builds first), and a second build here would swap dist/ under other tests.
 */
export async function packRoot(dest: string): Promise<PackResult & { tarball: string }> {
  const { stdout } = await npm(['pack', '--json', '--ignore-scripts', '--pack-destination', dest], REPO_ROOT, 60_000);
  const [result] = JSON.parse(stdout) as PackResult[];
  return { ...result, tarball: path.join(dest, result.filename) };
}

/** Node-RED's default user-directory package.json (@node-red/runtime/lib/storage/localfilesystem). */
export const NODE_RED_PROJECT_PACKAGE = { name: 'node-red-project', description: 'A Node-RED Project', version: '0.0.1', private: true };

/** The arguments of the palette manager's install (@node-red/registry/lib/installer.js, Node-RED 4.1). */
export const PALETTE_INSTALL_ARGS = ['--no-audit', '--no-update-notifier', '--no-fund', '--save', '--save-prefix=~', '--omit=dev', '--engine-strict'];

/** Creates a user directory as Node-RED does and installs `tarball` into it the way the palette manager does. */
export async function installLikePalette(userDir: string, tarball: string): Promise<{ stdout: string; stderr: string }> {
  fs.mkdirSync(userDir, { recursive: true });
  // A package.json in the folder makes it npm's prefix, so nothing is installed into a parent folder.
  fs.writeFileSync(path.join(userDir, 'package.json'), JSON.stringify(NODE_RED_PROJECT_PACKAGE, null, 4));
  return npm(['install', ...PALETTE_INSTALL_ARGS, '--', tarball], userDir, 120_000);
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

export interface NodeRedProcess {
  url: string;
  /** Everything Node-RED printed, stdout and stderr interleaved. */
  output(): string;
  stop(): Promise<void>;
}

/** The `node-red` package of the workspace: the root's devDependency, or the runtime workspace's dependency. */
function redJs(): string {
  const pkg = require.resolve('node-red/package.json', { paths: [REPO_ROOT, path.join(REPO_ROOT, 'runtime')] });
  return path.join(path.dirname(pkg), 'red.js');
}

/** The subset of semver the scorecard checks use. */
export interface Semver {
  validRange(range: string): string | null;
  satisfies(version: string, range: string): boolean;
}

/**
 * Node-RED's own semver (a dependency of @node-red/registry), so the test needs no extra devDependency: resolved
 * from Node-RED's folder, which works wherever npm placed it.
 */
export function nodeRedSemver(): Semver {
  const registry = require.resolve('@node-red/registry/package.json', { paths: [path.dirname(redJs())] });
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- untyped here; typed by the interface above
  return require(require.resolve('semver', { paths: [path.dirname(registry)] })) as Semver;
}

async function startOnce(userDir: string, port: number): Promise<NodeRedProcess> {
  const child: ChildProcess = spawn(
    process.execPath,
    [redJs(), '--userDir', userDir, '--port', String(port), '--define', 'uiHost=127.0.0.1', '--no-telemetry'],
    { cwd: userDir, env: cleanNpmEnv(), stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let output = '';
  const url = `http://127.0.0.1:${port}/`;
  const stop = (): Promise<void> =>
    new Promise<void>((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) return resolve();
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      child.once('exit', () => {
        clearTimeout(timer);
        resolve();
      });
      child.kill('SIGTERM');
    });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      void stop();
      reject(new Error(`node-red did not start within 30 s:\n${output.slice(-3000)}`));
    }, 30_000);
    const onData = (d: Buffer): void => {
      output += d.toString();
      if (output.includes(`Server now running at ${url}`)) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`node-red exited (${code ?? signal}) before it was ready:\n${output.slice(-3000)}`));
    });
  });
  return { url, output: () => output, stop };
}

/** Starts a stock Node-RED (red.js) on `userDir` on a free loopback port; a port taken meanwhile is retried. */
export async function startNodeRed(userDir: string): Promise<NodeRedProcess> {
  for (let attempt = 1; ; attempt += 1) {
    try {
      return await startOnce(userDir, await freePort());
    } catch (err) {
      if (attempt >= 3 || !/EADDRINUSE/.test(String(err))) throw err;
    }
  }
}
