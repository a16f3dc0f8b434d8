/**
 * Memory under oversized answers, run on demand (not part of `npm run bench`): `npx tsx bench/size-caps.ts
 * [--dist <dir>]`. Each case runs in a fresh child process that loads the compiled engine from <dir> (default
 * dist/; point it at a build of an older commit to compare) and prints its RSS before and at its peak:
 *   request    sendAuthorised (ret 'bin') against a gzip bomb: about 1 MB on the wire, 1 GiB of zeros decoded
 *   discovery  discoverProvider against a 300 MB metadata document (both well-known URLs answer it)
 * each once and six at a time. The servers run in this process, so their memory is not counted.
 */
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import { startBombServer, type BombServer } from '../test/support/compression-bomb';
import { ROOT } from './lib/runtime';

const MIB = 1024 * 1024;

interface ChildResult {
  baseMiB: number;
  peakMiB: number;
  outcomes: string[];
}

/** The child: one case, `parallel` at once, RSS sampled every 10 ms. */
async function child(dist: string, kind: string, url: string, parallel: number): Promise<void> {
  const load = createRequire(__filename);
  const request = load(path.join(dist, 'nodes/lib/http/request.js')) as typeof import('../nodes/lib/http/request');
  const agents = (load(path.join(dist, 'nodes/lib/http/agents.js')) as typeof import('../nodes/lib/http/agents')).createAgents({});
  const discovery = load(path.join(dist, 'nodes/lib/oauth/discovery.js')) as typeof import('../nodes/lib/oauth/discovery');
  const retry = (load(path.join(dist, 'nodes/lib/http/retry.js')) as typeof import('../nodes/lib/http/retry')).retryPolicy({ maxAttempts: 1 });
  const authorizer = {
    allows: () => true,
    getAccessToken: async () => ({ accessToken: 'bench', tokenType: 'Bearer' }),
    renewAfterRejection: async () => ({ accessToken: 'bench', tokenType: 'Bearer' }),
    expiredStatuses: [],
  };
  const once = async (): Promise<string> => {
    try {
      if (kind === 'discovery') {
        await discovery.discoverProvider(url, { timeoutMs: 120_000 });
        return 'ok';
      }
      const res = await request.sendAuthorised(
        { method: 'GET', url, headers: {}, timeoutMs: 120_000, responseMode: 'bin', followRedirects: true, maxRedirects: 5, retry },
        { authorizer, agents },
      );
      return `ok ${(res.body as Buffer).length} bytes`;
    } catch (err) {
      return (err as { code?: string }).code ?? String(err);
    }
  };
  global.gc?.();
  const base = process.memoryUsage().rss;
  let peak = base;
  const sampler = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage().rss);
  }, 10);
  const outcomes = await Promise.all(Array.from({ length: parallel }, once));
  peak = Math.max(peak, process.memoryUsage().rss);
  clearInterval(sampler);
  agents.destroy();
  const result: ChildResult = { baseMiB: base / MIB, peakMiB: peak / MIB, outcomes: [...new Set(outcomes)] };
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

function runChild(dist: string, kind: string, url: string, parallel: number): Promise<ChildResult> {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, ['--expose-gc', '--require', 'tsx/cjs', __filename, 'child', dist, kind, url, String(parallel)], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    proc.stdout.on('data', (c: Buffer) => (out += c.toString()));
    proc.on('error', reject);
    proc.on('close', (code) => {
      try {
        resolve(JSON.parse(out.trim().split('\n').pop() ?? '') as ChildResult);
      } catch {
        reject(new Error(`child exited ${String(code)} without a result: ${out}`));
      }
    });
  });
}

async function main(): Promise<void> {
  const at = process.argv.indexOf('--dist');
  const dist = path.resolve(at > 0 ? process.argv[at + 1] : path.join(ROOT, 'dist'));
  const servers: BombServer[] = [];
  try {
    const bomb = await startBombServer({ encoding: 'gzip', pieces: 1024, pieceBytes: MIB, paceMs: 0 });
    const document = await startBombServer({ encoding: 'identity', pieces: 300, pieceBytes: MIB, paceMs: 0 });
    servers.push(bomb, document);
    console.log(`engine: ${dist}`);
    console.log('| case | at once | RSS before (MiB) | peak (MiB) | growth (MiB) | outcome |');
    console.log('|---|---:|---:|---:|---:|---|');
    for (const [kind, url] of [['request', bomb.url], ['discovery', document.origin]] as const) {
      for (const parallel of [1, 6]) {
        const r = await runChild(dist, kind, url, parallel);
        console.log(`| ${kind} | ${parallel} | ${r.baseMiB.toFixed(0)} | ${r.peakMiB.toFixed(0)} | ${(r.peakMiB - r.baseMiB).toFixed(0)} | ${r.outcomes.join(', ')} |`);
      }
    }
  } finally {
    await Promise.all(servers.map((s) => s.close()));
  }
}

if (process.argv[2] === 'child') {
  const [, , , dist, kind, url, parallel] = process.argv;
  void child(dist, kind, url, Number(parallel));
} else {
  main().catch((err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  });
}
