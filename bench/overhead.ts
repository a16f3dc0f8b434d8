/**
 * 3. CPU per request of our authorisation layer, in-process. A keep-alive loopback API runs in a child process
 * (so its CPU is not counted); this process sends R sequential GETs three ways on the same keep-alive agent
 * and reads process.cpuUsage() (user + system) around each batch:
 *   axios    axios.request with a fixed Authorization header: the transport alone, no authorisation
 *   fixed    sendAuthorised (nodes/lib/http/request.ts) with an authorizer that returns a constant token: the
 *            pipeline (URL and header checks, origin check, timer, retry/redirect bookkeeping, decoding)
 *   ours     sendAuthorised with a real Connection (nodes/lib/connection.ts) holding a cached, valid token:
 *            pipeline + token manager
 * Batches alternate (axios, fixed, ours) B times; per-request µs are medians over batches, and the overheads
 * (ours − axios, ours − fixed) are medians of the per-batch differences.
 */
import { fork } from 'node:child_process';
import axios from 'axios';
import { Connection } from '../nodes/lib/connection';
import { parseConnectionConfig } from '../nodes/lib/connection-settings';
import { sendAuthorised, type AuthorisedRequest } from '../nodes/lib/http/request';
import { retryPolicy } from '../nodes/lib/http/retry';
import type { Authorizer } from '../nodes/lib/http/authorizer';
import type { StoredTokens, TokenStore } from '../nodes/lib/tokens/token-store';
import { median } from './lib/stats';

export interface OverheadResult {
  requestsPerBatch: number;
  batches: number;
  usPerRequest: { axios: number; fixed: number; ours: number };
  overheadUs: { oursMinusAxios: number; oursMinusFixed: number; fixedMinusAxios: number };
}

const SERVER = `
const http = require('node:http');
const body = JSON.stringify({ items: [{ id: 1, name: 'first' }, { id: 2, name: 'second' }], next: null });
const server = http.createServer((req, res) => { req.resume(); req.on('end', () => {
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }); res.end(body); }); });
server.keepAliveTimeout = 60000;
server.listen(0, '127.0.0.1', () => process.send(server.address().port));
process.on('disconnect', () => process.exit(0));
`;

function memoryStore(initial: StoredTokens): TokenStore {
  const map = new Map<string, StoredTokens>([['bench', initial]]);
  return {
    get: async (id) => map.get(id),
    set: async (id, value) => void map.set(id, value),
    delete: async (id) => void map.delete(id),
    ids: async () => [...map.keys()],
    flush: async () => undefined,
  };
}

export async function overhead(opts: { requests: number; batches: number }): Promise<OverheadResult> {
  const child = fork('-e', [SERVER], { execArgv: [], stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
  // fork('-e') runs the code through node's -e with a dummy module path.
  const port = await new Promise<number>((resolve, reject) => {
    child.once('message', (m) => resolve(Number(m)));
    child.once('exit', (code) => reject(new Error(`API child exited ${code}`)));
  });
  const base = `http://127.0.0.1:${port}`;
  const settings = parseConnectionConfig(
    { grantType: 'client_credentials', tokenEndpoint: `${base}/token`, clientId: 'bench', apiBaseUrl: base, refreshSkewSec: 60 },
    'secret',
  );
  const now = Date.now();
  const token = 'a'.repeat(43);
  const store = memoryStore({
    tokens: { accessToken: token, tokenType: 'Bearer', expiresAt: now + 3_600_000, expirySource: 'expires_in', scopes: ['api:read'], obtainedAt: now },
    updatedAt: now,
  });
  const connection = new Connection({ id: 'bench', settings, store });
  await connection.start();
  const agents = connection.agents;
  const fixed: Authorizer = {
    allows: () => true,
    getAccessToken: async () => ({ accessToken: token, tokenType: 'Bearer' }),
    renewAfterRejection: async () => ({ accessToken: token, tokenType: 'Bearer' }),
    expiredStatuses: [401],
  };
  const request: AuthorisedRequest = {
    method: 'GET', url: `${base}/data`, headers: {}, timeoutMs: 120_000, responseMode: 'obj',
    followRedirects: true, maxRedirects: 5, retry: retryPolicy({ maxAttempts: 3 }),
  };
  const variants: Record<'axios' | 'fixed' | 'ours', () => Promise<unknown>> = {
    // The same transport settings sendOnce uses, JSON decoding included.
    axios: async () => {
      const res = await axios.request<Buffer>({
        url: `${base}/data`, method: 'GET', headers: { Authorization: `Bearer ${token}` }, maxRedirects: 0,
        validateStatus: () => true, responseType: 'arraybuffer', decompress: true, httpAgent: agents.http, httpsAgent: agents.https,
        transformRequest: [(d: unknown) => d], transformResponse: [(d: unknown) => d],
      });
      return JSON.parse(res.data.toString('utf8'));
    },
    fixed: () => sendAuthorised(request, { authorizer: fixed, agents }),
    ours: () => sendAuthorised(request, { authorizer: connection, agents }),
  };
  const batch = async (fn: () => Promise<unknown>): Promise<number> => {
    const start = process.cpuUsage();
    for (let i = 0; i < opts.requests; i += 1) await fn();
    const used = process.cpuUsage(start);
    return (used.user + used.system) / opts.requests;
  };
  try {
    // Warm-up (JIT, sockets).
    for (const fn of Object.values(variants)) for (let i = 0; i < 500; i += 1) await fn();
    const per: Record<'axios' | 'fixed' | 'ours', number[]> = { axios: [], fixed: [], ours: [] };
    const d1: number[] = [];
    const d2: number[] = [];
    const d3: number[] = [];
    for (let b = 0; b < opts.batches; b += 1) {
      const a = await batch(variants.axios);
      const f = await batch(variants.fixed);
      const o = await batch(variants.ours);
      per.axios.push(a);
      per.fixed.push(f);
      per.ours.push(o);
      d1.push(o - a);
      d2.push(o - f);
      d3.push(f - a);
    }
    return {
      requestsPerBatch: opts.requests,
      batches: opts.batches,
      usPerRequest: { axios: median(per.axios), fixed: median(per.fixed), ours: median(per.ours) },
      overheadUs: { oursMinusAxios: median(d1), oursMinusFixed: median(d2), fixedMinusAxios: median(d3) },
    };
  } finally {
    connection.close();
    child.kill();
  }
}

if (require.main === module) {
  overhead({ requests: Number(process.env.N ?? 2000), batches: Number(process.env.RUNS ?? 7) }).then(
    (r) => console.log(JSON.stringify(r, null, 2)),
    (err) => {
      console.error(err);
      process.exitCode = 1;
    },
  );
}
