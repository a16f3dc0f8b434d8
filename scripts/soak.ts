/**
 * Soak: a steady rate of requests through 10 http-oauth2-request nodes sharing one authorization-code
 * connection whose access tokens live 2 seconds (rotating refresh tokens), for SOAK_MINUTES (default 10).
 *
 *   npx tsx scripts/soak.ts                 # 10 minutes, 40 requests/s
 *   SOAK_MINUTES=1 SOAK_RATE=20 npx tsx scripts/soak.ts
 *
 * Reports: requests sent / ok / failed (failures for authorisation reasons apart: goal 0), the runtime's
 * memory (RSS of its process) sampled every 10 s with a least-squares trend, and refreshes at the provider
 * versus the number expected (one per token lifetime). Prints a JSON summary on the last line.
 * Builds nothing: run `node scripts/build.js` first. Traffic stays on 127.0.0.1.
 */
import * as fs from 'node:fs';
import { startAuthServer } from '../test/support/auth-server';
import { startApiServer } from '../test/support/api-server';
import { loginFromEditor } from '../test/support/editor-login';
import { deployAndWait, webConnection } from '../test/support/e2e';
import { dialogConfig, requestLane, tab } from '../test/support/flows';
import { startRuntime } from '../test/support/runtime';

const MINUTES = Number(process.env.SOAK_MINUTES ?? 10);
const RATE = Number(process.env.SOAK_RATE ?? 40);
const TOKEN_TTL_SEC = 2;
const LANES = 10;
const SAMPLE_MS = 10_000;

/** Codes that mean "not authorised": a lost login, a failed refresh, or the API refusing the token. */
const AUTH_CODES = new Set(['OAUTH2_LOGIN_REQUIRED', 'OAUTH2_TOKEN_ENDPOINT_UNAVAILABLE', 'OAUTH2_TOKEN_REQUEST_REJECTED', 'OAUTH2_INVALID_TOKEN_RESPONSE', 'OAUTH2_TOKEN_STORE_FAILED']);

function rssMb(pid: number): number {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
  return Math.round((kb / 1024) * 10) / 10;
}

/** Least-squares slope of y over x (MB per minute when x is minutes). */
function slope(points: Array<[number, number]>): number {
  const n = points.length;
  if (n < 2) return 0;
  const mx = points.reduce((s, [x]) => s + x, 0) / n;
  const my = points.reduce((s, [, y]) => s + y, 0) / n;
  const num = points.reduce((s, [x, y]) => s + (x - mx) * (y - my), 0);
  const den = points.reduce((s, [x]) => s + (x - mx) ** 2, 0);
  return den === 0 ? 0 : num / den;
}

async function main(): Promise<void> {
  const auth = await startAuthServer({ accessTokenTtlSec: TOKEN_TTL_SEC, rotateRefreshToken: true });
  const api = await startApiServer(auth);
  const runtime = await startRuntime();
  const conn = webConnection(auth, api, runtime);
  const page = await loginFromEditor(runtime, 'conn1', dialogConfig(conn), auth.clients.web.clientSecret);
  if (page.status !== 200) throw new Error(`login failed: ${page.status}`);
  await deployAndWait(runtime, [
    tab(),
    conn,
    ...Array.from({ length: LANES }, (_, i) => requestLane({ path: `/soak${i}`, requestNodeId: `soak${i}`, url: '/records' })).flat(),
  ]);
  auth.resetCounts();

  const counts = { sent: 0, ok: 0, failed: 0, authFailed: 0, otherFailed: 0 };
  const failureCodes: Record<string, number> = {};
  const latencies: number[] = [];
  const samples: Array<{ atMin: number; rssMb: number }> = [];
  const started = Date.now();
  const endAt = started + MINUTES * 60_000;
  samples.push({ atMin: 0, rssMb: rssMb(runtime.pid) });
  const sampler = setInterval(() => {
    const atMin = Math.round(((Date.now() - started) / 60_000) * 100) / 100;
    const sample = { atMin, rssMb: rssMb(runtime.pid) };
    samples.push(sample);
    console.log(`t=${atMin.toFixed(2)} min rss=${sample.rssMb} MB sent=${counts.sent} ok=${counts.ok} authFailed=${counts.authFailed} otherFailed=${counts.otherFailed} refreshes=${auth.counts().token.refresh_token ?? 0}`);
  }, SAMPLE_MS);

  const inFlight = new Set<Promise<void>>();
  const one = async (lane: number): Promise<void> => {
    const t0 = Date.now();
    counts.sent += 1;
    try {
      const res = await fetch(`${runtime.url}/api/soak${lane}`);
      const text = await res.text();
      latencies.push(Date.now() - t0);
      if (res.status === 200) {
        counts.ok += 1;
        return;
      }
      counts.failed += 1;
      let code = `HTTP_${res.status}`;
      let statusCode: number | undefined;
      try {
        const body = JSON.parse(text) as { code?: string; statusCode?: number };
        code = body.code ?? code;
        statusCode = body.statusCode;
      } catch {
        // not JSON
      }
      const key = statusCode ? `${code}:${statusCode}` : code;
      failureCodes[key] = (failureCodes[key] ?? 0) + 1;
      if (AUTH_CODES.has(code) || statusCode === 401 || statusCode === 403) counts.authFailed += 1;
      else counts.otherFailed += 1;
    } catch (err) {
      counts.failed += 1;
      counts.otherFailed += 1;
      const key = `FETCH_${(err as Error).message}`;
      failureCodes[key] = (failureCodes[key] ?? 0) + 1;
    }
  };

  // A steady open-loop rate: one request every 1000/RATE ms, round-robin over the lanes.
  const intervalMs = 1000 / RATE;
  let next = Date.now();
  let i = 0;
  while (Date.now() < endAt) {
    const p = one(i % LANES).finally(() => inFlight.delete(p));
    inFlight.add(p);
    i += 1;
    next += intervalMs;
    const wait = next - Date.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  }
  await Promise.all(inFlight);
  clearInterval(sampler);
  const elapsedSec = (Date.now() - started) / 1000;
  samples.push({ atMin: Math.round((elapsedSec / 60) * 100) / 100, rssMb: rssMb(runtime.pid) });
  const refreshes = auth.counts().token.refresh_token ?? 0;
  latencies.sort((a, b) => a - b);
  const trend = slope(samples.map((s) => [s.atMin, s.rssMb]));
  // The second half's trend says whether memory keeps growing once warmed up.
  const secondHalf = samples.filter((s) => s.atMin >= (elapsedSec / 60) / 2);
  const summary = {
    minutes: Math.round((elapsedSec / 60) * 100) / 100,
    ratePerSec: RATE,
    lanes: LANES,
    tokenTtlSec: TOKEN_TTL_SEC,
    ...counts,
    failureCodes,
    latencyMs: { p50: latencies[Math.floor(latencies.length * 0.5)], p99: latencies[Math.floor(latencies.length * 0.99)], max: latencies.at(-1) },
    refreshes,
    refreshesExpected: Math.round(elapsedSec / TOKEN_TTL_SEC),
    memory: {
      startMb: samples[0].rssMb,
      endMb: samples.at(-1)?.rssMb,
      maxMb: Math.max(...samples.map((s) => s.rssMb)),
      trendMbPerMin: Math.round(trend * 100) / 100,
      secondHalfTrendMbPerMin: Math.round(slope(secondHalf.map((s) => [s.atMin, s.rssMb])) * 100) / 100,
      samples: samples.map((s) => `${s.atMin}:${s.rssMb}`).join(' '),
    },
    crashes: runtime.crashes.length,
    tokenEndpointCalls: auth.counts().token,
  };
  await runtime.stop();
  await api.close();
  await auth.close();
  console.log(JSON.stringify(summary));
  process.exitCode = counts.authFailed === 0 && runtime.crashes.length === 0 ? 0 : 1;
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
