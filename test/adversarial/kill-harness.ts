/**
 * SIGKILL cycles against invariant 8 ("a rotated refresh token is on disk before the new access token is
 * used; a restart never loses a login"), shared by test/adversarial/kill.test.ts (CI) and
 * scripts/kill-cycles.ts (the long run).
 *
 * One authorization-code login with access tokens living 1 second and rotating refresh tokens (reusing a spent
 * refresh token revokes the grant, so any window between rotation and disk shows up as a lost login). Each
 * cycle: traffic through the http-in lanes (so refreshes run constantly), SIGKILL at a random moment, restart
 * on the same user directory and port, and one request that must succeed without a new login.
 */
import { startAuthServer, type AuthServer, type AuthServerOptions } from '../support/auth-server';
import { startApiServer, type ApiServer } from '../support/api-server';
import { loginFromEditor } from '../support/editor-login';
import { deployAndWait, webConnection } from '../support/e2e';
import { dialogConfig, requestLane, tab } from '../support/flows';
import { startRuntime, tempUserDir, type RuntimeOptions, type TestRuntime } from '../support/runtime';

export interface KillOptions {
  cycles: number;
  /** The kill comes at a uniformly random moment in [minMs, maxMs] after the traffic starts. */
  minMs?: number;
  maxMs?: number;
  /** Concurrent request loops during a cycle. */
  loops?: number;
  /** Starters (the CI test passes the leak-watched ones). */
  startAuth?: (o: AuthServerOptions) => Promise<AuthServer>;
  startNodeRed?: (o: RuntimeOptions) => Promise<TestRuntime>;
  log?: (line: string) => void;
}

export interface CycleResult {
  killedAtMs: number;
  /** Requests answered 200 during the traffic before the kill. */
  okBeforeKill: number;
  startMs: number;
  /** 'ok', or why the login check failed. */
  outcome: 'ok' | 'login-lost' | 'other-failure';
  detail?: string;
  /**
   * Kill time minus the nearest refresh the provider completed (negative: the provider finished rotating after
   * the kill, on a request the dying runtime had already sent). Undefined when no refresh ran in the cycle.
   */
  killMinusRefreshMs?: number;
  /** Refresh grants the provider saw during the cycle. */
  refreshes: number;
}

export interface KillReport {
  cycles: CycleResult[];
  lostLogins: number;
  otherFailures: number;
  totalMs: number;
  meanStartMs: number;
  refreshes: number;
  okRequests: number;
  crashes: string[];
}

const LANES = 3;

async function lane(runtime: TestRuntime, i: number): Promise<{ status: number; text: string }> {
  const res = await fetch(`${runtime.url}/api/k${i}`);
  return { status: res.status, text: await res.text() };
}

export async function runKillCycles(o: KillOptions): Promise<KillReport> {
  const minMs = o.minMs ?? 100;
  const maxMs = o.maxMs ?? 900;
  const loops = o.loops ?? 4;
  const log = o.log ?? (() => undefined);
  const startAuth = o.startAuth ?? startAuthServer;
  const startNodeRed = o.startNodeRed ?? startRuntime;
  const auth = await startAuth({ accessTokenTtlSec: 1, rotateRefreshToken: true });
  // When the provider rotated refresh tokens: a lost login must sit in the window around one of these.
  let refreshTimes: number[] = [];
  auth.provider.on('grant.success', (ctx: unknown) => {
    if ((ctx as { oidc?: { params?: { grant_type?: unknown } } }).oidc?.params?.grant_type === 'refresh_token') refreshTimes.push(Date.now());
  });
  const api: ApiServer = await startApiServer(auth);
  const userDir = tempUserDir('nr-oauth2-kill-');
  let runtime = await startNodeRed({ userDir });
  const port = runtime.port;
  const conn = webConnection(auth, api, runtime);
  const relogin = async (): Promise<void> => {
    const page = await loginFromEditor(runtime, 'conn1', dialogConfig(conn), auth.clients.web.clientSecret);
    if (page.status !== 200) throw new Error(`login failed: ${page.status}`);
  };
  await relogin();
  await deployAndWait(runtime, [
    tab(),
    conn,
    ...Array.from({ length: LANES }, (_, i) => requestLane({ path: `/k${i}`, requestNodeId: `k${i}`, url: '/records' })).flat(),
  ]);

  const cycles: CycleResult[] = [];
  const crashes: string[] = [];
  const started = Date.now();
  try {
    for (let c = 0; c < o.cycles; c += 1) {
      auth.resetCounts();
      refreshTimes = [];
      let stop = false;
      let ok = 0;
      const current = runtime;
      const traffic = Array.from({ length: loops }, async (_, loop) => {
        for (let n = 0; !stop; n += 1) {
          try {
            if ((await lane(current, (loop + n) % LANES)).status === 200) ok += 1;
          } catch {
            // the runtime was killed under this request
          }
        }
      });
      const killAt = minMs + Math.floor(Math.random() * (maxMs - minMs));
      await new Promise((r) => setTimeout(r, killAt));
      const killedAt = Date.now();
      await current.kill();
      stop = true;
      await Promise.all(traffic);
      crashes.push(...current.crashes);

      const t0 = Date.now();
      runtime = await startNodeRed({ userDir, port });
      const startMs = Date.now() - t0;
      // The flows start with the runtime; an http-in route can still be registering for a few ms.
      let check = await lane(runtime, c % LANES);
      for (let i = 0; i < 50 && check.status === 404; i += 1) {
        await new Promise((r) => setTimeout(r, 20));
        check = await lane(runtime, c % LANES);
      }
      let outcome: CycleResult['outcome'] = 'ok';
      let detail: string | undefined;
      if (check.status !== 200) {
        detail = `${check.status} ${check.text.slice(0, 200)}`;
        outcome = /OAUTH2_LOGIN_REQUIRED/.test(check.text) ? 'login-lost' : 'other-failure';
        const nearestNow = refreshTimes.map((t) => killedAt - t).sort((a, b) => Math.abs(a) - Math.abs(b))[0];
        log(`cycle ${c + 1}: ${outcome} (killed after ${killAt} ms, ${nearestNow} ms after the nearest provider-side rotation): ${detail}`);
        // Log in again so the next cycles measure something.
        if (outcome === 'login-lost') await relogin();
      }
      const nearest = refreshTimes.map((t) => killedAt - t).sort((a, b) => Math.abs(a) - Math.abs(b))[0];
      cycles.push({ killedAtMs: killAt, okBeforeKill: ok, startMs, outcome, detail, refreshes: auth.counts().token.refresh_token ?? 0, killMinusRefreshMs: nearest });
      if ((c + 1) % 10 === 0) log(`${c + 1} cycles, ${cycles.filter((x) => x.outcome === 'login-lost').length} lost logins, ${Math.round((Date.now() - started) / 1000)} s`);
    }
  } finally {
    crashes.push(...runtime.crashes);
    await runtime.stop();
    await api.close();
    await auth.close();
  }
  return {
    cycles,
    lostLogins: cycles.filter((x) => x.outcome === 'login-lost').length,
    otherFailures: cycles.filter((x) => x.outcome === 'other-failure').length,
    totalMs: Date.now() - started,
    meanStartMs: Math.round(cycles.reduce((s, x) => s + x.startMs, 0) / Math.max(1, cycles.length)),
    refreshes: cycles.reduce((s, x) => s + x.refreshes, 0),
    okRequests: cycles.reduce((s, x) => s + x.okBeforeKill, 0),
    crashes,
  };
}
