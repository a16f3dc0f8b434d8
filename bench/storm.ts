/**
 * 2. Token expiry storm: 1,000 requests sent at once across 10 request nodes that share one login, right after
 * its access token expired, against the real authorization server (oidc-provider, rotating refresh tokens:
 * reusing a spent refresh token revokes the whole grant) and an API that checks every token there.
 *
 *   ours  one oauth2-connection (authorization code, logged in from the editor's login route), 10
 *         http-oauth2-request nodes.
 *   peer  node-red-contrib-oauth2 put in the request path the way its README refreshes: a function sets
 *         msg.oauth2Request from the refresh token kept in global context, the oauth2 node (grant "set by
 *         credentials") answers from its cached token while valid and otherwise calls the token endpoint, the
 *         README's "Set refreshToken" function keeps the new tokens in global context and sets
 *         Authorization, then 10 core `http request` nodes. Its first login is the README's authorization-code
 *         step, done here directly against the provider (PKCE), its refresh token seeded into global context.
 *
 * Each repetition: a fresh login for the peer (its grant does not survive a storm), one warm-up message through
 * each (both now hold a valid 3 s token), a wait until it has expired, then the storm.
 */
import { createHash, randomBytes } from 'node:crypto';
import { loginThroughProvider, startAuthServer, type AuthServer } from '../test/support/auth-server';
import { startApiServer } from '../test/support/api-server';
import { dialogConfig } from '../test/support/flows';
import { deployAndWait, webConnection } from '../test/support/e2e';
import { loginFromEditor } from '../test/support/editor-login';
import { catchBack, drive, driverNodes, laneRouter, type DriverResult } from './lib/driver';
import { startBenchRuntime } from './lib/runtime';
import { median, sleep } from './lib/stats';

const TTL_SEC = 3;
const LANES = 10;

export interface StormRun {
  tokenCalls: number;
  result: DriverResult;
}

export interface StormResult {
  requests: number;
  runs: number;
  /** Ours with a still-valid token, just before the expiry wait: what the API alone costs for 1,000 at once. */
  baseline: StormRun[];
  ours: StormRun[];
  peer: StormRun[];
  median: {
    baseline: { tokenCalls: number; failed: number; drainMs: number };
    ours: { tokenCalls: number; failed: number; drainMs: number };
    peer: { tokenCalls: number; failed: number; drainMs: number; lost: number };
  };
  peerOutcomes: Record<string, number>;
}

/** The README's authorization-code step for the peer: a login with PKCE, code exchanged with client_secret_post. */
async function peerLogin(auth: AuthServer): Promise<string> {
  const client = auth.clients.webPost;
  const verifier = randomBytes(32).toString('base64url');
  const url = new URL(`${auth.issuer}/auth`);
  url.search = new URLSearchParams({
    client_id: client.clientId,
    response_type: 'code',
    redirect_uri: client.redirectUris[0],
    scope: 'openid api:read',
    state: randomBytes(8).toString('hex'),
    code_challenge: createHash('sha256').update(verifier).digest('base64url'),
    code_challenge_method: 'S256',
  }).toString();
  const callback = await loginThroughProvider(url.href);
  const code = callback.searchParams.get('code');
  if (!code) throw new Error(`peer login: no code in ${callback.pathname}`);
  const res = await fetch(`${auth.issuer}/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({
      grant_type: 'authorization_code', code, redirect_uri: client.redirectUris[0], code_verifier: verifier,
      client_id: client.clientId, client_secret: client.clientSecret,
    }).toString(),
  });
  if (!res.ok) throw new Error(`peer code exchange: ${res.status} ${await res.text()}`);
  const body = (await res.json()) as { refresh_token?: string };
  if (!body.refresh_token) throw new Error('peer login: no refresh token');
  return body.refresh_token;
}

function tokenCalls(auth: AuthServer): number {
  return Object.values(auth.counts().token).reduce((a, b) => a + b, 0);
}

export async function storm(opts: { requests: number; runs: number; log: (s: string) => void }): Promise<StormResult> {
  const auth = await startAuthServer({ accessTokenTtlSec: TTL_SEC });
  const api = await startApiServer(auth);
  const runtime = await startBenchRuntime();
  try {
    const tab = 'storm';
    const conn = { ...webConnection(auth, api, runtime, 'conn-storm'), refreshSkewSec: 0 };
    const oursReqs = Array.from({ length: LANES }, (_, i) => `st-ours-req${i}`);
    const peerReqs = Array.from({ length: LANES }, (_, i) => `st-peer-req${i}`);
    const tokenUrl = `${auth.issuer}/token`;
    const web = auth.clients.webPost;
    const flows: Record<string, unknown>[] = [
      { id: tab, type: 'tab', label: 'storm' },
      conn,
      ...driverNodes('st-ours', tab, 'st-ours-lanes'),
      laneRouter('st-ours-lanes', tab, oursReqs),
      ...oursReqs.map((id) => ({
        id, type: 'http-oauth2-request', z: tab, connection: 'conn-storm', method: 'GET', url: '/records', ret: 'obj', paytoqs: 'ignore',
        headers: [], retryStatuses: '429,502,503,504', maxAttempts: 3, followRedirects: true, maxRedirects: 5, wires: [['st-ours']],
      })),
      catchBack('st-ours-catch', tab, oursReqs, 'st-ours'),

      ...driverNodes('st-peer', tab, 'st-peer-set'),
      {
        id: 'st-peer-set', type: 'function', z: tab, name: 'set msg.oauth2Request', outputs: 1, noerr: 0, initialize: '', finalize: '', libs: [],
        func:
          "let refreshToken = global.get('refreshToken');\n\nmsg.oauth2Request = {\n" +
          `    "access_token_url": ${JSON.stringify(tokenUrl)},\n    "credentials": {\n        "grant_type": "refresh_token",\n` +
          `        "client_id": ${JSON.stringify(web.clientId)},\n        "client_secret": ${JSON.stringify(web.clientSecret)},\n` +
          '        "scope": "openid api:read",\n        "refresh_token": refreshToken\n    },\n};\nreturn msg;',
        wires: [['st-peer-oauth2']],
      },
      {
        id: 'st-peer-oauth2', type: 'oauth2', z: tab, name: 'Set by msg.oauth2Request', container: 'oauth2Response',
        grant_type: 'set_by_credentials', access_token_url: tokenUrl, authorization_endpoint: '', open_authentication: '',
        username: '', password: '', client_id: web.clientId, client_secret: web.clientSecret, scope: 'openid api:read',
        // The provider registers this client with client_secret_post (sending the secret both ways is refused).
        client_credentials_in_body: true, rejectUnauthorized: true, headers: {}, wires: [['st-peer-keep']],
      },
      {
        id: 'st-peer-keep', type: 'function', z: tab, name: 'Set refreshToken + Authorization', outputs: 1, noerr: 0, initialize: '', finalize: '', libs: [],
        func:
          "if (msg.oauth2Response.refresh_token) {\n    global.set('refreshToken', msg.oauth2Response.refresh_token);\n}\n" +
          "if (msg.oauth2Response.access_token) {\n    global.set('accessToken', msg.oauth2Response.access_token);\n}\n" +
          "msg.headers = { Authorization: 'Bearer ' + msg.oauth2Response.access_token };\nreturn msg;",
        wires: [['st-peer-lanes']],
      },
      laneRouter('st-peer-lanes', tab, peerReqs),
      ...peerReqs.map((id) => ({
        id, type: 'http request', z: tab, method: 'GET', ret: 'obj', paytoqs: 'ignore', url: `${api.url}/records`, tls: '',
        persist: true, proxy: '', insecureHTTPParser: false, authType: '', senderr: false, headers: [], wires: [['st-peer']],
      })),
      catchBack('st-peer-catch', tab, ['st-peer-set', 'st-peer-oauth2', 'st-peer-keep', ...peerReqs], 'st-peer'),

      // The README's authorization-code step ends with the refresh token in global context: seed it.
      { id: 'st-seed-in', type: 'http in', z: tab, url: '/bench/seed', method: 'post', wires: [['st-seed']] },
      {
        id: 'st-seed', type: 'function', z: tab, outputs: 1, noerr: 0, initialize: '', finalize: '', libs: [],
        func: "global.set('refreshToken', msg.payload.refresh_token);\nmsg.payload = 'ok';\nreturn msg;",
        wires: [['st-seed-out']],
      },
      { id: 'st-seed-out', type: 'http response', z: tab, statusCode: '', headers: {}, wires: [] },
    ];
    await deployAndWait(runtime, flows, 20_000);
    const page = await loginFromEditor(runtime, 'conn-storm', dialogConfig(conn), auth.clients.web.clientSecret);
    if (page.status !== 200) throw new Error(`our login failed: ${page.status}`);

    const one = async (v: 'ours' | 'peer'): Promise<void> => {
      const r = await drive(runtime.url, `/bench/st-${v}`, { n: 1, c: 1, lanes: LANES, idle: 5_000 });
      if (r.ok !== 1) {
        const errors = runtime.logs.filter((l) => l.level <= 30).slice(-3).map((l) => `${l.node ?? ''}: ${l.text.slice(0, 300)}`);
        throw new Error(`${v} warm-up failed: ${JSON.stringify(r.outcomes)} ${errors.join(' | ')}`);
      }
    };
    const stormOnce = async (v: 'ours' | 'peer'): Promise<StormRun> => {
      auth.resetCounts();
      const result = await drive(runtime.url, `/bench/st-${v}`, { n: opts.requests, c: opts.requests, lanes: LANES, idle: 5_000 });
      return { tokenCalls: tokenCalls(auth), result };
    };

    const baseline: StormRun[] = [];
    const ours: StormRun[] = [];
    const peer: StormRun[] = [];
    const peerOutcomes: Record<string, number> = {};
    for (let i = 0; i < opts.runs; i += 1) {
      // The peer may still cache a token from the last storm (issued, then revoked with its grant): let it expire,
      // or its warm-up would use it and fail.
      if (i > 0) await sleep(TTL_SEC * 1000 + 1200);
      const refreshToken = await peerLogin(auth);
      const seeded = await fetch(new URL('api/bench/seed', `${runtime.url}/`), {
        method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ refresh_token: refreshToken }),
      });
      if (!seeded.ok) throw new Error(`seed: ${seeded.status}`);
      await one('ours');
      await one('peer');
      // Reference: the same storm through ours while its token is still valid (the API's own cost).
      const b = await stormOnce('ours');
      baseline.push(b);
      // Fresh tokens for both again, then let them expire.
      await one('ours');
      await one('peer');
      // Both now hold a token that expires TTL_SEC after it was issued; let it expire (plus the peer's rounding).
      if (!process.env.STORM_NOWAIT) await sleep(TTL_SEC * 1000 + 1200);
      const o = await stormOnce('ours');
      // The peer's token expired too (it was issued before ours' storm began).
      const p = await stormOnce('peer');
      ours.push(o);
      peer.push(p);
      for (const [k, n] of Object.entries(p.result.outcomes)) peerOutcomes[k] = (peerOutcomes[k] ?? 0) + n;
      if (p.result.lost) peerOutcomes.lost = (peerOutcomes.lost ?? 0) + p.result.lost;
      opts.log(
        `  run ${i + 1}: valid-token reference ${b.tokenCalls} token calls, ${b.result.ms} ms; ours ${o.tokenCalls} token calls, ${o.result.failed + o.result.lost} failed, ${o.result.ms} ms; ` +
          `peer ${p.tokenCalls} token calls, ${p.result.failed + p.result.lost} failed (${p.result.lost} lost), ${p.result.ms} ms`,
      );
      if (o.result.ok !== o.result.n) opts.log(`    ours outcomes: ${JSON.stringify(o.result.outcomes)}`);
    }
    const summary = (runs: StormRun[]): StormResult['median']['ours'] => ({
      tokenCalls: median(runs.map((r) => r.tokenCalls)),
      failed: median(runs.map((r) => r.result.failed + r.result.lost)),
      // A run where nothing came back has no drain time (the peer drops failed messages).
      drainMs: median(runs.map((r) => r.result.ms).filter((ms): ms is number => typeof ms === 'number')),
    });
    return {
      requests: opts.requests,
      runs: opts.runs,
      baseline,
      ours,
      peer,
      median: {
        baseline: summary(baseline),
        ours: summary(ours),
        peer: { ...summary(peer), lost: median(peer.map((r) => r.result.lost)) },
      },
      peerOutcomes,
    };
  } finally {
    await runtime.stop();
    await api.close();
    await auth.close();
  }
}

if (require.main === module) {
  storm({ requests: Number(process.env.N ?? 1000), runs: Number(process.env.RUNS ?? 5), log: console.log }).then(
    (r) => console.log(JSON.stringify({ median: r.median, peerOutcomes: r.peerOutcomes }, null, 2)),
    (err) => {
      console.error(err);
      process.exitCode = 1;
    },
  );
}
