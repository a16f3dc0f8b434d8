import assert from 'node:assert/strict';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import fc from 'fast-check';
import type { AuthServer } from '../support/auth-server';
import { startApiServer, type ApiServer } from '../support/api-server';
import { deployAndWait, startWatchedAuthServer, startWatchedRuntime, webConnection } from '../support/e2e';
import { connectionNode, dialogConfig, tab, triggerLane } from '../support/flows';
import { watchText } from '../support/leaks';
import { startRecordsApi, type RecordsApi } from '../support/records-api';
import type { TestRuntime } from '../support/runtime';
import { ERROR_CODES, OAuth2Error } from '../../nodes/lib/errors';
import { createAgents, type AgentPair } from '../../nodes/lib/http/agents';
import { sendAuthorised, type AuthorisedRequest } from '../../nodes/lib/http/request';
import { retryPolicy } from '../../nodes/lib/http/retry';
import { fetchPages, type PaginationSettings } from '../../nodes/lib/http/pagination';
import { findRecords } from '../../nodes/lib/http/records';
import { createTokenEndpointClient } from '../../nodes/lib/oauth/simple-oauth2-client';
import { normalizeTokenResponse } from '../../nodes/lib/oauth/token-response';
import { detectChanges } from '../../nodes/lib/changes/detect';
import type { TriggerSettings, TriggerState } from '../../nodes/lib/changes/types';
import { TOKEN_PREFIX, recordingSleep, testAuthorizer } from '../unit/http/support';

/**
 * Property-based fuzzing (fast-check) of everything the network or a user can send: message inputs to both
 * flow nodes and every admin route (through a real runtime), and token-endpoint and API responses (served by a
 * loopback server) into the engine. Properties: no crash or unhandled rejection; every failure is an
 * OAuth2Error (or, for routes, a 4xx/5xx JSON {error: {code, message}}) with a known code; no secret in any
 * error. Run counts are sized for CI; FUZZ_SCALE multiplies them.
 */
const SCALE = Number(process.env.FUZZ_SCALE ?? 1);
const runs = (n: number): number => Math.max(1, Math.round(n * SCALE));
const KNOWN = new Set<string>(ERROR_CODES);
/** Every property adds its case count here; the last test prints the total. */
const tried: Record<string, number> = {};
const count = (name: string): void => {
  tried[name] = (tried[name] ?? 0) + 1;
};

/** Secrets planted in inputs: none may come back in an error. */
const MARK = 'FuZzSeCrEt';

function assertCleanError(err: unknown, secrets: string[]): void {
  assert.ok(err instanceof OAuth2Error, `not an OAuth2Error: ${err instanceof Error ? err.stack : String(err)}`);
  assert.ok(KNOWN.has(err.code), err.code);
  const text = JSON.stringify({ m: err.message, p: err.params, c: String(err.cause ?? ''), s: err.stack });
  for (const secret of [MARK, TOKEN_PREFIX, ...secrets]) assert.ok(!text.includes(secret), `secret in error: ${text.slice(0, 300)}`);
}

/** Unhandled rejections and uncaught exceptions in this process while a property runs. */
function trapCrashes(): { crashes: string[]; release(): void } {
  const crashes: string[] = [];
  const onRejection = (reason: unknown): void => void crashes.push(`unhandledRejection: ${String(reason)}`);
  const onException = (err: unknown): void => void crashes.push(`uncaughtException: ${String(err)}`);
  process.on('unhandledRejection', onRejection);
  process.on('uncaughtException', onException);
  return {
    crashes,
    release() {
      process.removeListener('unhandledRejection', onRejection);
      process.removeListener('uncaughtException', onException);
    },
  };
}

/** A loopback server answering whatever the current case scripts. */
interface Scripted {
  origin: string;
  port: number;
  next: (req: http.IncomingMessage, res: http.ServerResponse, body: string) => void;
  close(): Promise<void>;
}

async function startScripted(): Promise<Scripted> {
  const s: Scripted = { origin: '', port: 0, next: (_req, res) => res.end(), close: () => Promise.resolve() };
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      try {
        s.next(req, res, Buffer.concat(chunks).toString('utf8'));
      } catch {
        res.destroy();
      }
    });
  });
  server.on('clientError', (_e, socket) => socket.destroy());
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  s.port = (server.address() as AddressInfo).port;
  s.origin = `http://127.0.0.1:${s.port}`;
  s.close = () =>
    new Promise<void>((r) => {
      server.close(() => r());
      server.closeAllConnections();
    });
  return s;
}

/** As a body: an OAuth error whose description reflects the request's form and query (a server echoing secrets). */
const ECHO = '$echo';

/** A random HTTP answer: status, headers and body, including the awkward ones. */
const headerValue = fc.oneof(
  fc.string({ maxLength: 20 }).filter((v) => /^[\x20-\x7e]*$/.test(v)),
  fc.constantFrom('application/json', 'application/json; charset=utf-8', 'text/html', 'text/plain', 'application/x-www-form-urlencoded', '0', '-1', '999999999', 'Wed, 21 Oct 2015 07:28:00 GMT'),
);
const answer = fc.record({
  status: fc.oneof({ weight: 3, arbitrary: fc.constantFrom(200, 200, 201, 204, 301, 302, 400, 401, 403, 404, 429, 500, 502, 503) }, fc.integer({ min: 200, max: 599 })),
  contentType: fc.constantFrom('application/json', 'application/json; charset=utf-8', 'text/html', 'text/plain', '', 'application/problem+json'),
  headers: fc.dictionary(fc.constantFrom('retry-after', 'location', 'link', 'www-authenticate', 'x-other', 'content-encoding'), headerValue, { maxKeys: 3 }),
  body: fc.oneof(
    fc.json({ maxDepth: 3 }),
    fc.string({ maxLength: 200 }),
    fc.constantFrom('', '{', '{"access_token":', '<html><body>error</body></html>', '[]', 'null', '"x"', '{"error":"invalid_grant"}', ECHO),
    fc.record(
      {
        access_token: fc.oneof(fc.string({ maxLength: 30 }), fc.integer(), fc.constant(null), fc.object({ maxDepth: 1 })),
        token_type: fc.oneof(fc.constantFrom('Bearer', 'bearer', 'mac', ''), fc.integer(), fc.array(fc.string(), { maxLength: 2 })),
        expires_in: fc.oneof(fc.integer({ min: -10, max: 1e9 }), fc.double(), fc.string({ maxLength: 8 }), fc.constant(null), fc.object({ maxDepth: 1 })),
        refresh_token: fc.oneof(fc.string({ maxLength: 30 }), fc.integer(), fc.boolean()),
        scope: fc.oneof(fc.string({ maxLength: 20 }), fc.array(fc.string(), { maxLength: 2 })),
        id_token: fc.oneof(fc.string({ maxLength: 40 }), fc.constant('a.eyJzdWIiOjF9.b'), fc.constant('a.!!!.b')),
        error: fc.oneof(fc.constantFrom('invalid_grant', 'invalid_client', 'slow_down', 'authorization_pending'), fc.string({ maxLength: 10 })),
      },
      { requiredKeys: [] },
    ).map((o) => JSON.stringify(o)),
  ),
  cut: fc.constantFrom('none', 'none', 'none', 'none', 'mid-body', 'no-answer'),
});
type Answer = typeof answer extends fc.Arbitrary<infer T> ? T : never;

function serve(a: Answer): (req: http.IncomingMessage, res: http.ServerResponse, requestBody: string) => void {
  return (req, res, requestBody) => {
    if (a.cut === 'no-answer') {
      req.socket.destroy();
      return;
    }
    const headers: Record<string, string> = { ...a.headers };
    if (a.contentType) headers['content-type'] = a.contentType;
    delete headers['content-encoding'];
    if (a.headers['content-encoding']) headers['content-encoding'] = 'gzip';
    const reflected = JSON.stringify({ error: 'invalid_request', error_description: `${decodeURIComponent(requestBody.replace(/\+/g, ' '))} ${req.url ?? ''}` });
    const body = a.status === 204 ? '' : a.body === ECHO ? reflected : a.body;
    try {
      res.writeHead(a.status, { ...headers, 'content-length': Buffer.byteLength(body) });
    } catch {
      res.writeHead(a.status, { 'content-length': Buffer.byteLength(body) });
    }
    if (a.cut === 'mid-body' && body.length > 1) {
      res.write(body.slice(0, body.length >> 1), () => req.socket.destroy());
      return;
    }
    res.end(body);
  };
}

describe('adversarial: fuzzing (fast-check)', function () {
  this.timeout(180_000);

  describe('engine: token-endpoint responses', () => {
    let server: Scripted;
    let agents: AgentPair;
    before(async () => {
      server = await startScripted();
      agents = createAgents({});
    });
    after(async () => {
      agents.destroy();
      await server.close();
    });

    it('normalizeTokenResponse: a TokenSet or OAUTH2_INVALID_TOKEN_RESPONSE, never a secret in the error', () => {
      const tokenish = fc.oneof(fc.string({ maxLength: 30 }).map((s) => `${MARK}${s}`), fc.integer(), fc.double(), fc.boolean(), fc.constant(null), fc.object({ maxDepth: 1 }), fc.array(fc.anything(), { maxLength: 2 }));
      const body = fc.oneof(
        fc.anything({ maxDepth: 3, withNullPrototype: true, withBigInt: true, withDate: true }),
        fc.record(
          { access_token: tokenish, refresh_token: tokenish, id_token: tokenish, token_type: tokenish, expires_in: fc.oneof(tokenish, fc.integer(), fc.string({ maxLength: 6 })), scope: tokenish },
          { requiredKeys: [] },
        ),
      );
      fc.assert(
        fc.property(body, fc.option(fc.record({ refreshToken: fc.string().map((s) => `${MARK}r${s}`), accessToken: fc.constant(`${MARK}a`) }), { nil: undefined }), (raw, prev) => {
          count('normalizeTokenResponse');
          try {
            const previous = prev ? { ...prev, tokenType: 'Bearer', expiresAt: 0, expirySource: 'default' as const, scopes: [], obtainedAt: 0 } : undefined;
            const tokens = normalizeTokenResponse(raw, { now: Date.now(), defaultLifetimeSec: 3600, requestedScopes: ['a'], previous });
            assert.equal(typeof tokens.accessToken, 'string');
            assert.ok(Number.isFinite(tokens.expiresAt), `expiresAt ${tokens.expiresAt}`);
            assert.ok(Array.isArray(tokens.scopes));
          } catch (err) {
            assertCleanError(err, []);
            assert.equal((err as OAuth2Error).code, 'OAUTH2_INVALID_TOKEN_RESPONSE');
          }
        }),
        { numRuns: runs(3000) },
      );
    });

    it('createTokenEndpointClient: random answers to every grant give tokens or a known OAuth2Error', async () => {
      const trap = trapCrashes();
      const clientSecret = `${MARK}-client-secret`;
      const client = createTokenEndpointClient({
        metadata: { tokenEndpoint: `${server.origin}/token`, revocationEndpoint: `${server.origin}/revoke`, deviceAuthorizationEndpoint: `${server.origin}/device` },
        client: { clientId: 'fuzz-client', clientSecret, authMethod: 'client_secret_basic', scopes: ['a'], resources: [], extraAuthorizeParams: {}, extraTokenParams: {} },
        timeoutMs: 500,
        httpAgent: agents.http,
      });
      const grant = fc.constantFrom('clientCredentials', 'refresh', 'exchangeCode', 'pollDevice', 'startDevice', 'revoke');
      try {
        await fc.assert(
          fc.asyncProperty(answer, grant, async (a, g) => {
            count('token endpoint client');
            server.next = serve(a);
            const previous = { accessToken: `${MARK}-access`, refreshToken: `${MARK}-refresh`, tokenType: 'Bearer', expiresAt: 0, expirySource: 'default' as const, scopes: ['a'], obtainedAt: 0 };
            try {
              switch (g) {
                case 'clientCredentials':
                  await client.clientCredentials();
                  break;
                case 'refresh':
                  await client.refresh(previous);
                  break;
                case 'exchangeCode':
                  await client.exchangeCode({ code: `${MARK}-code`, codeVerifier: `${MARK}-verifier`, redirectUri: 'http://127.0.0.1/cb' });
                  break;
                case 'pollDevice':
                  await client.pollDeviceToken(`${MARK}-device`);
                  break;
                case 'startDevice':
                  await client.startDeviceAuthorization();
                  break;
                case 'revoke': {
                  const result = await client.revoke(previous);
                  assert.equal(typeof result.refreshTokenRevoked, 'boolean');
                  break;
                }
              }
            } catch (err) {
              assertCleanError(err, [clientSecret]);
            }
          }),
          { numRuns: runs(400) },
        );
        await new Promise((r) => setImmediate(r));
        assert.deepEqual(trap.crashes, []);
      } finally {
        trap.release();
      }
    });
  });

  describe('engine: API responses', () => {
    let server: Scripted;
    let agents: AgentPair;
    before(async () => {
      server = await startScripted();
      agents = createAgents({});
    });
    after(async () => {
      agents.destroy();
      await server.close();
    });

    const request = (url: string, mode: AuthorisedRequest['responseMode']): AuthorisedRequest => ({
      method: 'GET',
      url,
      headers: {},
      timeoutMs: 500,
      responseMode: mode,
      followRedirects: true,
      maxRedirects: 3,
      retry: retryPolicy({ maxAttempts: 2, baseDelayMs: 1, maxDelayMs: 5, maxRetryAfterMs: 5 }),
    });

    it('sendAuthorised: random statuses, headers and bodies give a response or a known OAuth2Error', async () => {
      const trap = trapCrashes();
      try {
        await fc.assert(
          fc.asyncProperty(answer, fc.constantFrom('txt', 'bin', 'obj', 'auto') as fc.Arbitrary<AuthorisedRequest['responseMode']>, async (a, mode) => {
            count('sendAuthorised responses');
            server.next = serve(a);
            const rec = recordingSleep();
            try {
              const res = await sendAuthorised(request(`${server.origin}/x`, mode), { authorizer: testAuthorizer([server.origin]), agents, sleep: rec.sleep });
              assert.ok(Number.isInteger(res.statusCode));
              assert.ok(!JSON.stringify({ h: res.headers, u: res.responseUrl }).includes(TOKEN_PREFIX));
            } catch (err) {
              assertCleanError(err, []);
            }
          }),
          { numRuns: runs(400) },
        );
        assert.deepEqual(trap.crashes, []);
      } finally {
        trap.release();
      }
    });

    it('fetchPages: random pages under every pagination style end with a result or a known OAuth2Error', async () => {
      const trap = trapCrashes();
      const styles: PaginationSettings[] = [
        { kind: 'none' },
        { kind: 'link' },
        { kind: 'next-url', path: 'next' },
        { kind: 'cursor', path: 'next_cursor', param: 'cursor' },
        { kind: 'page', param: 'page', start: 1 },
        { kind: 'offset', param: 'offset' },
      ];
      const pageBody = fc.oneof(
        answer.map((a) => a.body),
        fc.record(
          {
            items: fc.oneof(fc.array(fc.record({ id: fc.integer({ min: 0, max: 5 }) }), { maxLength: 3 }), fc.anything({ maxDepth: 1 })),
            next: fc.oneof(fc.constantFrom('/p?x=1', '/p?x=2', 'http://127.0.0.1:1/elsewhere', '', '::'), fc.string({ maxLength: 10 }), fc.integer()),
            next_cursor: fc.oneof(fc.string({ maxLength: 5 }), fc.integer(), fc.constant(null)),
          },
          { requiredKeys: [] },
        ).map((o) => JSON.stringify(o)),
      );
      try {
        await fc.assert(
          fc.asyncProperty(fc.constantFrom(...styles), fc.array(fc.tuple(answer, pageBody), { minLength: 1, maxLength: 4 }), async (style, pages) => {
            count('fetchPages');
            let n = 0;
            server.next = (req, res, requestBody) => {
              const [a, body] = pages[Math.min(n, pages.length - 1)];
              n += 1;
              serve({ ...a, body, headers: { ...a.headers, link: n < pages.length ? '</p?page=' + n + '>; rel="next"' : (a.headers.link ?? '') } })(req, res, requestBody);
            };
            try {
              const result = await fetchPages(
                request(`${server.origin}/p`, 'obj'),
                style,
                { maxPages: 5, findRecords: (b) => findRecords(b), keepPages: false },
                (req) => sendAuthorised(req, { authorizer: testAuthorizer([server.origin]), agents, sleep: recordingSleep().sleep }),
              );
              assert.ok(result.count >= 1 && result.count <= 5);
            } catch (err) {
              assertCleanError(err, []);
            }
          }),
          { numRuns: runs(250) },
        );
        assert.deepEqual(trap.crashes, []);
      } finally {
        trap.release();
      }
    });

    it('detectChanges: random lists and remembered state never throw and never emit an id twice', () => {
      const record = fc.oneof(
        { weight: 4, arbitrary: fc.record({ id: fc.oneof(fc.integer({ min: 0, max: 8 }), fc.constantFrom('a', 'b', '', '1')), updated_at: fc.oneof(fc.date({ noInvalidDate: false }).map((d) => (Number.isNaN(d.getTime()) ? 'not a date' : d.toISOString())), fc.integer(), fc.double(), fc.string({ maxLength: 8 }), fc.constant(null)), v: fc.anything({ maxDepth: 1 }) }, { requiredKeys: [] }) },
        fc.anything({ maxDepth: 2 }),
      );
      const settingsArb: fc.Arbitrary<TriggerSettings> = fc.record({
        idPath: fc.constantFrom('id', 'v', 'id.x', ''),
        detection: fc.constantFrom<TriggerSettings['detection']>({ kind: 'updatedAt', path: 'updated_at' }, { kind: 'version', path: 'v' }, { kind: 'hash' }),
        events: fc.record({ created: fc.boolean(), updated: fc.boolean(), deleted: fc.boolean() }),
        emitExistingOnFirstPoll: fc.boolean(),
        includePrevious: fc.boolean(),
        maxRemembered: fc.integer({ min: 1, max: 10 }),
        watermark: fc.option(fc.record({ param: fc.constant('since'), overlapMs: fc.integer({ min: 0, max: 1000 }), format: fc.constantFrom('iso', 'epoch-s', 'epoch-ms') as fc.Arbitrary<'iso' | 'epoch-s' | 'epoch-ms'> }), { nil: undefined }),
        watch: fc.option(fc.record({ fields: fc.constantFrom(['v'], ['updated_at', 'v.x']), keepValues: fc.boolean() }), { nil: undefined }),
      });
      const stateArb: fc.Arbitrary<TriggerState> = fc.record({
        version: fc.constant(1 as const),
        configKey: fc.constant('k'),
        initialised: fc.boolean(),
        watermark: fc.option(fc.oneof(fc.integer(), fc.double()), { nil: undefined }),
        seen: fc.array(fc.tuple(fc.constantFrom('0', '1', 'a', 'b', ''), fc.string({ maxLength: 12 })), { maxLength: 6 }),
        missing: fc.option(fc.array(fc.constantFrom('0', '1', 'a', 'b', 'c'), { maxLength: 4 }), { nil: undefined }),
      });
      fc.assert(
        fc.property(stateArb, fc.array(record, { maxLength: 8 }), settingsArb, fc.boolean(), fc.option(fc.oneof(fc.integer(), fc.double()), { nil: undefined }), (state, list, settings, fullList, apiNow) => {
          count('detectChanges');
          const result = detectChanges(state, list, settings, { fullList, apiNow });
          const ids = result.changes.map((c) => `${c.event}:${c.id}`);
          assert.equal(new Set(ids).size, ids.length, `an id emitted twice: ${ids.join(',')}`);
          // Records missing once are kept beyond the cap until the next complete list decides about them.
          const missing = result.next.missing ?? [];
          assert.ok(result.next.seen.length - missing.length <= settings.maxRemembered);
          const remembered = new Set(result.next.seen.map(([id]) => id));
          assert.ok(missing.every((id) => remembered.has(id)), 'a missing mark for an id not remembered');
          JSON.stringify(result.next);
        }),
        { numRuns: runs(1500) },
      );
    });
  });

  describe('a real runtime: message inputs and admin routes', () => {
    let auth: AuthServer;
    let api: ApiServer;
    let records: RecordsApi;
    let runtime: TestRuntime;
    const serviceSecret = (): string => auth.clients.service.clientSecret;

    before(async () => {
      auth = await startWatchedAuthServer();
      api = await startApiServer(auth);
      records = await startRecordsApi(auth);
      records.add('one', new Date(Date.now() - 60_000));
      runtime = await startWatchedRuntime();
      const cc = (id: string, apiBaseUrl: string): Record<string, unknown> =>
        connectionNode(auth, { id, grantType: 'client_credentials', clientId: auth.clients.service.clientId, clientSecret: serviceSecret(), scopes: 'api:read', apiBaseUrl });
      // http in (POST, JSON {fields}) -> function that builds the message from the fields -> node under test.
      const build = [
        'const out = { _msgid: msg._msgid, req: msg.req, res: msg.res };',
        'const revive = (v) => {',
        "  if (Array.isArray(v)) return v.map(revive);",
        "  if (v && typeof v === 'object') {",
        "    if ('$buffer' in v) return Buffer.from(String(v.$buffer));",
        "    if ('$undefined' in v) return undefined;",
        '    const o = {}; for (const k of Object.keys(v)) o[k] = revive(v[k]); return o;',
        '  }',
        '  return v;',
        '};',
        'const fields = (msg.payload && msg.payload.fields) || {};',
        "for (const k of Object.keys(fields)) if (k !== 'req' && k !== 'res' && k !== '_msgid') out[k] = revive(fields[k]);",
        'return out;',
      ].join('\n');
      const fuzzLane = (id: string, node: Record<string, unknown>): Record<string, unknown>[] => [
        { id: `${id}-in`, type: 'http in', z: 'tab1', url: `/fuzz/${id}`, method: 'post', wires: [[`${id}-build`]] },
        { id: `${id}-build`, type: 'function', z: 'tab1', func: build, outputs: 1, wires: [[id]] },
        { ...node, id, z: 'tab1', wires: [[`${id}-strip`]] },
        { id: `${id}-strip`, type: 'change', z: 'tab1', rules: [{ t: 'delete', p: 'headers', pt: 'msg' }, { t: 'set', p: 'statusCode', pt: 'msg', to: '200', tot: 'num' }, { t: 'set', p: 'payload', pt: 'msg', to: 'ok', tot: 'str' }], wires: [[`${id}-out`]] },
        { id: `${id}-out`, type: 'http response', z: 'tab1', statusCode: '', headers: {}, wires: [] },
        { id: `${id}-catch`, type: 'catch', z: 'tab1', scope: [id], uncaught: false, wires: [[`${id}-err`]] },
        {
          id: `${id}-err`,
          type: 'change',
          z: 'tab1',
          rules: [
            { t: 'set', p: 'payload', pt: 'msg', to: '{"code": error.code, "message": error.message}', tot: 'jsonata' },
            { t: 'set', p: 'statusCode', pt: 'msg', to: '599', tot: 'num' },
            { t: 'delete', p: 'headers', pt: 'msg' },
          ],
          wires: [[`${id}-out`]],
        },
      ];
      const requestNode = (extra: Record<string, unknown>): Record<string, unknown> => ({
        type: 'http-oauth2-request',
        connection: 'fz',
        method: 'use',
        url: '',
        ret: 'obj',
        paytoqs: 'ignore',
        headers: [],
        retryStatuses: '429,503',
        maxAttempts: 2,
        maxRetryAfterSec: 0,
        followRedirects: true,
        maxRedirects: 3,
        requestTimeout: 1000,
        ...extra,
      });
      const trigger = triggerLane({ id: 'ftrig', path: '/unused', connectionId: 'fzr', config: { url: '/records' } }).filter((n) => n.id === 'ftrig');
      await deployAndWait(runtime, [
        tab(),
        cc('fz', api.url),
        cc('fzr', records.url),
        webConnection(auth, api, runtime, 'fzweb'),
        ...fuzzLane('freq', requestNode({})),
        ...fuzzLane('freqtpl', requestNode({ method: 'POST', url: '/records?q={{payload}}&h={{headers.x}}', paytoqs: 'query', ret: 'auto' })),
        // The trigger emits its own messages (no http response object): only its completion answers.
        ...fuzzLane('ftrig', { ...trigger[0] }).map((n) => (n.id === 'ftrig' ? { ...n, wires: [[]] } : n)),
        { id: 'ftrig-done', type: 'complete', z: 'tab1', scope: ['ftrig'], uncaught: false, wires: [['ftrig-strip']] },
      ]);
    });

    after(async () => {
      await runtime?.stop();
      await api?.close();
      await records?.close();
      await auth?.close();
    });

    async function post(path: string, body: unknown): Promise<{ status: number; text: string }> {
      const res = await fetch(`${runtime.url}/api${path}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
        signal: AbortSignal.timeout(10_000),
      });
      const text = await res.text();
      watchText(text);
      return { status: res.status, text };
    }

    function assertNodeAnswer(r: { status: number; text: string }): void {
      if (r.status === 200) return;
      assert.equal(r.status, 599, r.text.slice(0, 300));
      const body = JSON.parse(r.text) as { code?: string; message?: string };
      assert.ok(body.code && KNOWN.has(body.code), `unknown code: ${r.text.slice(0, 300)}`);
      assert.ok(body.message, 'a message');
      for (const secret of [MARK, serviceSecret()]) assert.ok(!r.text.includes(secret), r.text);
    }

    /** JSON values with the odd types the builder function can revive (Buffer, undefined). */
    const odd = fc.oneof(
      fc.json({ maxDepth: 2 }).map((s) => JSON.parse(s) as unknown),
      fc.string({ maxLength: 20 }).map((s) => ({ $buffer: s })),
      fc.constant({ $undefined: true }),
      fc.constantFrom(0, -1, 1e12, Number.MAX_SAFE_INTEGER, '', ' ', 'NaN', true, null, [], {}),
    );
    const urls = fc.oneof(
      { weight: 4, arbitrary: fc.constantFrom('/records', '/open', '/nope', '/redirect?to=/records', '/redirect?to=/open', '/status/404', 'records', '') },
      fc.webPath().map((p) => `/records${p}`),
      fc.constantFrom('http://127.0.0.1:1/x', 'https://127.0.0.1:1/x', 'ftp://127.0.0.1/', 'http://[::1', '//127.0.0.1:1/x', 'javascript:alert(1)', 'http://user:FuZzSeCrEt@127.0.0.1:1/', '\u0000', '/%zz'),
      fc.string({ maxLength: 20 }),
      odd,
    );
    const headerDict = fc.oneof(
      fc.dictionary(fc.constantFrom('authorization', 'Authorization', 'content-type', 'x', 'host', 'content-length', 'cookie', 'x-node-red-request-node', 'bad name'), odd, { maxKeys: 4 }),
      odd,
      fc.constant({ authorization: `Bearer ${MARK}` }),
    );

    it('http-oauth2-request: random msg.url / method / headers / payload / requestTimeout', async () => {
      await fc.assert(
        fc.asyncProperty(
          fc.record(
            {
              url: urls,
              method: fc.oneof(fc.constantFrom('GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD', 'OPTIONS', 'get', 'TRACE', 'CONNECT', ''), odd),
              headers: headerDict,
              payload: odd,
              requestTimeout: fc.oneof(fc.integer({ min: -10, max: 1500 }), fc.double(), odd),
              statusCode: odd,
              responseUrl: odd,
              reset: odd,
            },
            { requiredKeys: [] },
          ),
          fc.constantFrom('freq', 'freqtpl'),
          async (fields, lane) => {
            count('request node inputs');
            assertNodeAnswer(await post(`/fuzz/${lane}`, { fields }));
          },
        ),
        { numRuns: runs(300) },
      );
      assert.deepEqual(runtime.crashes, []);
    });

    it('oauth2-record-change: random msg.reset / payload / odd properties', async () => {
      await fc.assert(
        fc.asyncProperty(fc.record({ reset: odd, payload: odd, topic: odd, url: odd, interval: odd }, { requiredKeys: [] }), async (fields) => {
          count('trigger inputs');
          assertNodeAnswer(await post('/fuzz/ftrig', { fields }));
        }),
        { numRuns: runs(120) },
      );
      assert.deepEqual(runtime.crashes, []);
    });

    /** A route's answer: 2xx, or an error status with {error: {code, message}} and a known code. */
    function assertRouteAnswer(r: { status: number; text: string }, opts: { jsonBody: boolean }): void {
      for (const secret of [MARK, serviceSecret(), auth.clients.web.clientSecret]) assert.ok(!r.text.includes(secret), `secret in route answer: ${r.text.slice(0, 200)}`);
      if (r.status >= 200 && r.status < 300) return;
      // A body that is not JSON at all is refused by Node-RED's own body parser before any route of ours runs.
      if (!opts.jsonBody && r.status === 400) return;
      assert.ok(r.status >= 400 && r.status < 600, `status ${r.status}`);
      let body: { error?: { code?: string; message?: string } };
      try {
        body = JSON.parse(r.text) as typeof body;
      } catch {
        assert.fail(`not JSON (${r.status}): ${r.text.slice(0, 200)}`);
      }
      assert.ok(body.error?.code && KNOWN.has(body.error.code), `unknown error shape (${r.status}): ${r.text.slice(0, 300)}`);
      assert.ok(body.error.message, 'a message');
      if (['OAUTH2_INVALID_INPUT', 'OAUTH2_INVALID_CONFIG'].includes(body.error.code)) assert.ok(r.status >= 400 && r.status < 500, `${body.error.code} is a 4xx (${r.status})`);
    }

    async function route(method: string, path: string, body: string | undefined): Promise<{ status: number; text: string }> {
      const res = await runtime.admin(path, {
        method,
        headers: body === undefined ? {} : { 'content-type': 'application/json' },
        body,
        signal: AbortSignal.timeout(20_000),
      });
      const text = await res.text();
      watchText(text);
      return { status: res.status, text };
    }

    it('every admin route: random ids, queries and bodies', async () => {
      // Endpoints all on loopback: the fuzz never sends anything off this machine.
      const dead = 'http://127.0.0.1:1';
      const baseConfig = dialogConfig(webConnection(auth, api, runtime, 'fzweb'));
      const configArb = fc.oneof(
        odd,
        fc.record(
          {
            grantType: fc.oneof(fc.constantFrom('authorization_code', 'client_credentials', 'device_code', 'password'), odd),
            issuer: fc.oneof(fc.constantFrom(auth.issuer, dead, '', 'not a url'), odd),
            tokenEndpoint: fc.oneof(fc.constantFrom(`${dead}/token`, 'http://example.invalid/token', 'ftp://127.0.0.1/', ''), odd),
            deviceAuthorizationEndpoint: fc.oneof(fc.constantFrom(`${dead}/device`, ''), odd),
            authorizationEndpoint: fc.oneof(fc.constantFrom(`${auth.issuer}/auth`, 'javascript:x', ''), odd),
            revocationEndpoint: fc.oneof(fc.constantFrom(`${dead}/revoke`, ''), odd),
            clientId: fc.oneof(fc.constantFrom('web-client', '', 'a\u0000b'), odd),
            authMethod: fc.oneof(fc.constantFrom('client_secret_basic', 'client_secret_post', 'none', 'x'), odd),
            scopes: odd,
            resources: odd,
            authorizeParams: fc.oneof(fc.constant([{ k: 'state', v: 'x' }]), fc.array(fc.record({ k: odd, v: odd }, { requiredKeys: [] }), { maxLength: 2 }), odd),
            tokenParams: fc.oneof(fc.constant([{ k: 'client_secret', v: 'x' }]), odd),
            apiBaseUrl: odd,
            allowedOrigins: odd,
            expiredStatuses: odd,
            refreshSkewSec: odd,
            redirectUri: fc.oneof(fc.constantFrom(baseConfig.redirectUri as string, 'https://evil.example/cb', ''), odd),
            useDiscovery: odd,
          },
          { requiredKeys: [] },
        ).map((over) => ({ ...baseConfig, tokenEndpoint: `${dead}/token`, deviceAuthorizationEndpoint: `${dead}/device`, revocationEndpoint: `${dead}/revoke`, ...over })),
      );
      const bodyArb = fc.oneof(
        fc.record({ config: configArb, clientSecret: fc.oneof(fc.string({ maxLength: 10 }).map((s) => `${MARK}${s}`), odd), issuer: fc.oneof(fc.constantFrom(auth.issuer, api.url, dead, '', 'x'), odd) }, { requiredKeys: [] }),
        odd,
      );
      const idArb = fc.oneof(
        { weight: 3, arbitrary: fc.constantFrom('fzweb', 'fz', 'fzr', 'ftrig', 'freq', 'nope', 'x.y-z_1') },
        // (an empty id matches no route at all: express answers its own 404)
        fc.string({ minLength: 1, maxLength: 70 }),
        fc.constantFrom('%2e%2e', 'a/b', '__proto__', 'constructor', 'a'.repeat(65)),
        // ('.' and '..' are resolved away by the URL parser before a request leaves: no route of ours sees them)
      ).filter((id) => id !== '.' && id !== '..');
      const queryArb = fc.dictionary(fc.constantFrom('code', 'state', 'iss', 'error', 'error_description', 'tokens', 'clientSecret', 'redirect', 'x', 'state[]'), fc.oneof(fc.string({ maxLength: 30 }), fc.constant(MARK)), { maxKeys: 5 });
      const routes = fc.constantFrom('discover', 'status', 'login', 'device', 'logout', 'callback', 'preview', 'reset');
      await fc.assert(
        fc.asyncProperty(routes, idArb, bodyArb, queryArb, fc.boolean(), async (which, id, body, query, rawString) => {
          count('admin routes');
          const seg = encodeURIComponent(id);
          // Half the bodies as raw strings: some are not JSON at all.
          const text = rawString && typeof body === 'string' ? body : JSON.stringify(body ?? null);
          // Node-RED's body parser (strict) refuses anything but a JSON object or array before our routes run.
          const jsonBody = (() => {
            try {
              const parsed: unknown = JSON.parse(text);
              return typeof parsed === 'object' && parsed !== null;
            } catch {
              return false;
            }
          })();
          switch (which) {
            case 'discover':
              return assertRouteAnswer(await route('POST', 'oauth2-connection/discover', text), { jsonBody });
            case 'status':
              return assertRouteAnswer(await route('GET', `oauth2-connection/${seg}/status?${new URLSearchParams(query)}`, undefined), { jsonBody: true });
            case 'login':
            case 'device':
            case 'logout':
              return assertRouteAnswer(await route('POST', `oauth2-connection/${seg}/${which}`, text), { jsonBody });
            case 'preview':
            case 'reset':
              return assertRouteAnswer(await route('POST', `oauth2-record-change/${seg}/${which}`, text), { jsonBody });
            case 'callback': {
              const res = await runtime.admin(`oauth2-connection/callback?${new URLSearchParams(query)}`, { redirect: 'manual', signal: AbortSignal.timeout(20_000) });
              const html = await res.text();
              watchText(html);
              assert.equal(res.status, 400, html.slice(0, 200));
              assert.equal(res.headers.get('location'), null, 'a callback never redirects');
              assert.ok(!html.includes(MARK), 'the query is not echoed');
              assert.match(html, /OAUTH2_[A-Z_]+/);
              return undefined;
            }
          }
          return undefined;
        }),
        { numRuns: runs(700) },
      );
      // Nothing the fuzz sent logged the web connection in or changed it.
      const status = await route('GET', 'oauth2-connection/fzweb/status', undefined);
      assert.equal((JSON.parse(status.text) as { state: string }).state, 'logged-out');
      assert.deepEqual(runtime.crashes, []);
    });
  });

  after(() => {
    const total = Object.values(tried).reduce((s, n) => s + n, 0);
    console.log(`      fuzz cases: ${total} (${Object.entries(tried).map(([k, n]) => `${k} ${n}`).join(', ')})`);
  });
});
