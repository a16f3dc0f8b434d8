/**
 * 1. Throughput: N messages, C in flight, through one request node to a loopback keep-alive API, driven from
 * inside Node-RED (lib/driver.ts). Variants, each in its own lane of one deployed flow, run interleaved so each
 * repetition's ratios compare runs made moments apart:
 *   ours  http-oauth2-request, token from an oauth2-connection (client credentials, 1 h token: no refresh)
 *   core  core `http request`, bearer auth with a fixed token, keep-alive ("persist") on
 *   peer  node-red-contrib-oauth2 as its README wires it: oauth2 node (client credentials; it caches the token
 *         while valid) -> function putting msg.oauth2Response.access_token in msg.headers -> core `http request`
 */
import { startAuthServer } from '../test/support/auth-server';
import { connectionNode } from '../test/support/flows';
import { deployAndWait } from '../test/support/e2e';
import { clientCredentialsToken, startBenchApi } from './lib/bench-api';
import { catchBack, drive, driverNodes, type DriverResult } from './lib/driver';
import { startBenchRuntime } from './lib/runtime';
import { median } from './lib/stats';

export interface ThroughputResult {
  n: number;
  c: number;
  runs: number;
  perVariant: Record<Variant, { msgPerSec: number[]; failed: number }>;
  /** ours/core and ours/peer per run (each from the same repetition). */
  ratiosCore: number[];
  ratiosPeer: number[];
  median: Record<Variant, number> & { oursOverCore: number; oursOverPeer: number };
}

export type Variant = 'ours' | 'core' | 'peer';
const VARIANTS: Variant[] = ['ours', 'core', 'peer'];

export async function throughput(opts: { n: number; c: number; runs: number; log: (s: string) => void }): Promise<ThroughputResult> {
  const auth = await startAuthServer({ accessTokenTtlSec: 3600 });
  const api = await startBenchApi(auth);
  const runtime = await startBenchRuntime();
  try {
    const fixedToken = await clientCredentialsToken(auth);
    const tab = 'tp';
    const conn = connectionNode(auth, {
      id: 'conn-tp',
      grantType: 'client_credentials',
      clientId: auth.clients.service.clientId,
      clientSecret: auth.clients.service.clientSecret,
      apiBaseUrl: api.url,
      scopes: 'api:read',
    });
    const coreRequest = (id: string, back: string, extra: Record<string, unknown> = {}): Record<string, unknown> => ({
      id, type: 'http request', z: tab, method: 'GET', ret: 'obj', paytoqs: 'ignore', url: `${api.url}/data`, tls: '',
      persist: true, proxy: '', insecureHTTPParser: false, authType: '', senderr: false, headers: [], wires: [[back]], ...extra,
    });
    const flows: Record<string, unknown>[] = [
      { id: tab, type: 'tab', label: 'throughput' },
      conn,
      // ours
      ...driverNodes('tp-ours', tab, 'tp-ours-req'),
      {
        id: 'tp-ours-req', type: 'http-oauth2-request', z: tab, connection: 'conn-tp', method: 'GET', url: '/data', ret: 'obj',
        paytoqs: 'ignore', headers: [], retryStatuses: '429,502,503,504', maxAttempts: 3, followRedirects: true, maxRedirects: 5,
        wires: [['tp-ours']],
      },
      catchBack('tp-ours-catch', tab, ['tp-ours-req'], 'tp-ours'),
      // core, fixed bearer token
      ...driverNodes('tp-core', tab, 'tp-core-req'),
      { ...coreRequest('tp-core-req', 'tp-core', { authType: 'bearer' }), credentials: { user: '', password: fixedToken } },
      catchBack('tp-core-catch', tab, ['tp-core-req'], 'tp-core'),
      // peer, as its README wires it
      ...driverNodes('tp-peer', tab, 'tp-peer-oauth2'),
      {
        id: 'tp-peer-oauth2', type: 'oauth2', z: tab, name: 'Client Credentials', container: 'oauth2Response',
        grant_type: 'client_credentials', access_token_url: `${auth.issuer}/token`, authorization_endpoint: '', redirect_uri: '',
        open_authentication: '', username: '', password: '', client_id: auth.clients.service.clientId,
        client_secret: auth.clients.service.clientSecret, scope: 'api:read', client_credentials_in_body: false,
        rejectUnauthorized: true, headers: {}, wires: [['tp-peer-auth']],
      },
      {
        id: 'tp-peer-auth', type: 'function', z: tab, name: 'set Authorization', outputs: 1, noerr: 0, initialize: '', finalize: '', libs: [],
        func: "msg.headers = { Authorization: 'Bearer ' + msg.oauth2Response.access_token };\nreturn msg;",
        wires: [['tp-peer-req']],
      },
      coreRequest('tp-peer-req', 'tp-peer'),
      catchBack('tp-peer-catch', tab, ['tp-peer-oauth2', 'tp-peer-auth', 'tp-peer-req'], 'tp-peer'),
    ];
    await deployAndWait(runtime, flows, 20_000);

    const run = async (v: Variant, n: number): Promise<DriverResult> => {
      const r = await drive(runtime.url, `/bench/tp-${v}`, { n, c: opts.c, idle: 10_000 });
      if (r.ok !== r.n) opts.log(`    ${v}: ${r.failed} failed, ${r.lost} lost: ${JSON.stringify(r.outcomes)}`);
      return r;
    };
    // Warm-up: JIT, sockets, the peer's and our first token fetch.
    for (const v of VARIANTS) await run(v, Math.min(2000, opts.n));

    const perVariant = Object.fromEntries(VARIANTS.map((v) => [v, { msgPerSec: [] as number[], failed: 0 }])) as ThroughputResult['perVariant'];
    const ratiosCore: number[] = [];
    const ratiosPeer: number[] = [];
    for (let i = 0; i < opts.runs; i += 1) {
      const rate: Partial<Record<Variant, number>> = {};
      // Rotate the order so no variant always runs first after an idle gap.
      const order = VARIANTS.map((_, k) => VARIANTS[(k + i) % VARIANTS.length]);
      for (const v of order) {
        const r = await run(v, opts.n);
        rate[v] = (r.ok / r.ms) * 1000;
        perVariant[v].msgPerSec.push(rate[v]);
        perVariant[v].failed += r.failed + r.lost;
      }
      ratiosCore.push(rate.ours! / rate.core!);
      ratiosPeer.push(rate.ours! / rate.peer!);
      opts.log(`  run ${i + 1}: ours ${rate.ours!.toFixed(0)}, core ${rate.core!.toFixed(0)}, peer ${rate.peer!.toFixed(0)} msg/s; ours/core ${(rate.ours! / rate.core!).toFixed(3)}`);
    }
    return {
      n: opts.n,
      c: opts.c,
      runs: opts.runs,
      perVariant,
      ratiosCore,
      ratiosPeer,
      median: {
        ours: median(perVariant.ours.msgPerSec),
        core: median(perVariant.core.msgPerSec),
        peer: median(perVariant.peer.msgPerSec),
        oursOverCore: median(ratiosCore),
        oursOverPeer: median(ratiosPeer),
      },
    };
  } finally {
    await runtime.stop();
    await api.close();
    await auth.close();
  }
}

if (require.main === module) {
  throughput({ n: Number(process.env.N ?? 20_000), c: Number(process.env.C ?? 32), runs: Number(process.env.RUNS ?? 5), log: console.log }).then(
    (r) => console.log(JSON.stringify(r.median, null, 2)),
    (err) => {
      console.error(err);
      process.exitCode = 1;
    },
  );
}
