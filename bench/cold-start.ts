/**
 * 5. Cold start to editor served: time from spawning the process to the first GET / answering 200, for
 *   ours   the embedded runtime the way users start it: `node runtime/dist/cli.js start` in a child process
 *   plain  Node-RED's own CLI (node-red/red.js) with a minimal settings.js loading the same nodes (nodesDir)
 * Both start the same flows.json (a connection, a request node, a record-change trigger, http in/out) from a
 * fresh copy of the same user directory, with the same credential secret. Starts alternate; ratio per pair.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { tempUserDir } from '../test/support/runtime';
import { ROOT } from './lib/runtime';
import { median, sleep } from './lib/stats';

export interface ColdStartResult {
  runs: number;
  oursMs: number[];
  plainMs: number[];
  ratios: number[];
  median: { ours: number; plain: number; oursOverPlain: number };
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const port = (server.address() as net.AddressInfo).port;
      server.close(() => resolve(port));
    });
  });
}

async function waitForEditor(url: string, since: number, timeoutMs = 60_000): Promise<number> {
  for (;;) {
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(2000) });
      await res.arrayBuffer();
      if (res.status === 200) return performance.now() - since;
    } catch {
      // not listening yet
    }
    if (performance.now() - since > timeoutMs) throw new Error(`${url} did not answer 200 within ${timeoutMs} ms`);
    await sleep(10);
  }
}

const FLOWS = [
  { id: 'cs-tab', type: 'tab', label: 'cold start' },
  {
    id: 'cs-conn', type: 'oauth2-connection', name: 'api', grantType: 'client_credentials', issuer: '',
    authorizationEndpoint: '', tokenEndpoint: 'http://127.0.0.1:9/token', revocationEndpoint: '', deviceAuthorizationEndpoint: '',
    issParameterSupported: false, clientId: 'bench', authMethod: 'client_secret_basic', scopes: 'api:read', resources: '',
    authorizeParams: [], tokenParams: [], apiBaseUrl: 'http://127.0.0.1:9', allowedOrigins: '', expiredStatuses: '401',
    refreshSkewSec: 60, redirectUri: '',
  },
  { id: 'cs-in', type: 'http in', z: 'cs-tab', url: '/x', method: 'get', wires: [['cs-req']] },
  { id: 'cs-req', type: 'http-oauth2-request', z: 'cs-tab', connection: 'cs-conn', method: 'GET', url: '/data', ret: 'obj', paytoqs: 'ignore', headers: [], wires: [['cs-out']] },
  { id: 'cs-out', type: 'http response', z: 'cs-tab', statusCode: '', headers: {}, wires: [] },
  {
    id: 'cs-trigger', type: 'oauth2-record-change', z: 'cs-tab', connection: 'cs-conn', url: '/records', interval: 1, intervalUnit: 'd',
    recordsPath: '', recordsPathType: 'auto', idPath: 'id', detection: 'updatedAt', versionPath: 'updated_at', emitCreated: true,
    emitUpdated: true, emitDeleted: false, firstRun: 'remember', includePrevious: false, batch: false, watermarkParam: '',
    pagination: 'none', maxPages: 100, maxRemembered: 100000, wires: [[]],
  },
];

const SECRET = 'bench-credential-secret';

function userDirWithFlows(): string {
  const dir = tempUserDir('nr-oauth2-bench-cs-');
  fs.writeFileSync(path.join(dir, 'flows.json'), JSON.stringify(FLOWS));
  return dir;
}

/** Waits for a child to exit after SIGTERM. */
async function stop(child: ReturnType<typeof spawn>): Promise<void> {
  await new Promise<void>((resolve) => {
    if (child.exitCode !== null) return resolve();
    child.once('exit', () => resolve());
    child.kill('SIGTERM');
  });
}

async function startOurs(): Promise<number> {
  const port = await freePort();
  const userDir = userDirWithFlows();
  const cli = path.join(ROOT, 'runtime', 'dist', 'cli.js');
  const since = performance.now();
  const child = spawn(process.execPath, [cli, 'start', '--port', String(port), '--user-dir', userDir, '--log-level', 'fatal'], {
    stdio: 'ignore',
    env: { ...process.env, NODE_RED_CREDENTIAL_SECRET: SECRET },
  });
  try {
    return await waitForEditor(`http://127.0.0.1:${port}/`, since);
  } finally {
    await stop(child);
    fs.rmSync(userDir, { recursive: true, force: true });
  }
}

async function startPlain(): Promise<number> {
  const port = await freePort();
  const userDir = userDirWithFlows();
  fs.writeFileSync(
    path.join(userDir, 'settings.js'),
    `module.exports = ${JSON.stringify({
      uiHost: '127.0.0.1', uiPort: port, flowFile: 'flows.json', credentialSecret: SECRET, nodesDir: [ROOT],
      logging: { console: { level: 'fatal', metrics: false, audit: false } },
    })};\n`,
  );
  const red = require.resolve('node-red/red.js', { paths: [ROOT] });
  const since = performance.now();
  const child = spawn(process.execPath, [red, '--userDir', userDir, '--settings', path.join(userDir, 'settings.js')], { stdio: 'ignore' });
  try {
    return await waitForEditor(`http://127.0.0.1:${port}/`, since);
  } finally {
    await stop(child);
    fs.rmSync(userDir, { recursive: true, force: true });
  }
}

export async function coldStart(opts: { runs: number; log: (s: string) => void }): Promise<ColdStartResult> {
  // One untimed start of each warms the OS file cache.
  await startOurs();
  await startPlain();
  const oursMs: number[] = [];
  const plainMs: number[] = [];
  const ratios: number[] = [];
  for (let i = 0; i < opts.runs; i += 1) {
    const [o, p] = i % 2 ? [0, await startPlain()] : [await startOurs(), 0];
    const other = i % 2 ? await startOurs() : await startPlain();
    const ours = i % 2 ? other : o;
    const plain = i % 2 ? p : other;
    oursMs.push(ours);
    plainMs.push(plain);
    ratios.push(ours / plain);
    opts.log(`  run ${i + 1}: ours ${ours.toFixed(0)} ms, plain ${plain.toFixed(0)} ms`);
  }
  return { runs: opts.runs, oursMs, plainMs, ratios, median: { ours: median(oursMs), plain: median(plainMs), oursOverPlain: median(ratios) } };
}

if (require.main === module) {
  coldStart({ runs: Number(process.env.RUNS ?? 5), log: console.log }).then(
    (r) => console.log(JSON.stringify(r.median, null, 2)),
    (err) => {
      console.error(err);
      process.exitCode = 1;
    },
  );
}
