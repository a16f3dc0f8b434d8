import assert from 'node:assert/strict';
/**
 * The core `http request` node's contract, as data: each case is one input (node settings in the core node's
 * format, a message, the environment) and the facts the core node's own test suite holds for it. Every case runs
 * twice in the same Node-RED runtime (node-red-node-test-helper with the real runtime's flows, catalogs and
 * config nodes): once on the core `http request` node, once on the same node retyped to `http-oauth2-request`
 * with a client-credentials connection, as a user moving a flow would do. Issue 22 ("Tests") asks for this.
 *
 * A case fails when our node does not hold a fact the core node holds; the message says what each node did.
 * The core node failing a case is a defect of this harness and fails the test too. The pass counts of both
 * nodes are printed when the file ends.
 *
 * For our node, the OAuth2 rules are checked on top, in every case: each request that reached an allowed origin
 * (the connection's API base URL `http://localhost:<port>` and its listed origins) carried a valid bearer
 * token from the connection, none that reached another origin (`http://127.0.0.1:<port>`) carried an
 * Authorization header, and where a case's message has headers, an `Authorization` header of its own is added
 * and must never be sent.
 *
 * Left out of the core suite (an OAuth2 node authenticates with its connection, and offers neither):
 * - basic authentication, a user name and password (2 cases),
 * - digest authentication, MD5, MD5-sess, MD5 with qop, SHA-256, SHA-512-256 (5 cases).
 * The core suite's own skipped and commented-out cases (invalid proxy URLs, failed proxy authentication)
 * are not counted either. Its bearer case stays: the bearer is the node's credential there, the connection's here.
 */
import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import * as os from 'node:os';
import * as path from 'node:path';
import { startAuthServer, type AuthServer } from '../support/auth-server';
import { startContractServer, startForwardProxy, type ContractServer, type ForwardProxy, type SeenRequest } from '../support/contract-server';
import {
  FLOW,
  collectUnhandledRejections,
  helper,
  helperNode,
  loadCatalogs,
  nodeModules,
  serviceConnection,
  tab,
  type RuntimeNode,
  type Spy,
} from './support';

const load = createRequire(__filename);
type Msg = Record<string, unknown>;
type NodeModule = (RED: Record<string, unknown>) => unknown;
const coreDir = path.dirname(load.resolve('@node-red/nodes/package.json'));
const coreModules = ['core/network/21-httprequest.js', 'core/network/05-tls.js', 'core/network/06-httpproxy.js'].map(
  (file) => load(path.join(coreDir, file)) as NodeModule,
);
/** The core node's own mark on the response headers it sends on (a hash of them, from its own dependency). */
const hashSum = load(load.resolve('hash-sum', { paths: [coreDir] })) as (value: unknown) => string;

type Kind = 'core' | 'ours';
const NODE_TYPE: Record<Kind, string> = { core: 'http request', ours: 'http-oauth2-request' };
const NODE_LABEL: Record<Kind, string> = { core: 'core http request', ours: 'http-oauth2-request' };
const OWN_AUTHORIZATION = 'Bearer the-message-own-token';

interface Env {
  server: ContractServer;
  proxy: ForwardProxy;
  kind: Kind;
}

/** What one node did with one message. */
interface Outcome {
  sent: Msg[];
  errors: string[];
  warnings: string[];
  seen: SeenRequest[];
  proxied: { forwarded: string[]; tunnels: string[]; proxyAuthorization: boolean[] };
}

interface ContractCase {
  name: string;
  /** Which of issue 22's items the case is about, when it is about one. */
  items?: number[];
  /** The node's settings, in the core node's format (what a retyped node keeps). */
  node(e: Env): Msg;
  /** Config nodes the node uses (tls-config, http proxy) with their credentials. */
  config?(e: Env): { nodes: Msg[]; credentials?: Record<string, Record<string, string>> };
  /** Credentials of the request node itself, for the core node (its bearer). */
  nodeCredentials?: Record<string, string>;
  msg(e: Env): Msg;
  /** Environment variables for the run (every *proxy* variable is cleared first). */
  environment?(e: Env): Record<string, string>;
  /** Runtime settings for the run. */
  settings?: Msg;
  /** The message's headers must reach the node as given (no Authorization of its own added). */
  exactHeaders?: boolean;
  /** Only where the runtime's tls-config offers it. */
  needs?: 'pfx';
  expect(o: Outcome, e: Env): void;
}

// ---- small readers of an outcome ----

function describeOutcome(o: Outcome | undefined): string {
  if (!o) return 'did not run';
  const parts: string[] = [];
  for (const m of o.sent) {
    const payload = Buffer.isBuffer(m.payload) ? `<Buffer ${m.payload.length} bytes>` : JSON.stringify(m.payload);
    parts.push(`sent statusCode=${String(m.statusCode)} payload=${(payload ?? 'undefined').slice(0, 160)}`);
  }
  if (o.sent.length === 0) parts.push('sent nothing');
  if (o.errors.length > 0) parts.push(`node.error ${JSON.stringify(o.errors.map((e) => e.slice(0, 160)))}`);
  if (o.warnings.length > 0) parts.push(`node.warn ${JSON.stringify(o.warnings.map((w) => w.slice(0, 120)))}`);
  // The connection's token is echoed by the inspect route; it has no place in test output.
  return parts.join('; ').replace(/Bearer [^"\s]+/g, 'Bearer <redacted>');
}

/** The one message on the output. */
function output(o: Outcome): Msg {
  assert.equal(o.sent.length, 1, `one message on the output (got ${o.sent.length}; errors: ${JSON.stringify(o.errors)})`);
  return o.sent[0];
}

function header(m: Msg, name: string): unknown {
  return (m.headers as Record<string, unknown> | undefined)?.[name];
}

function startsWith(value: unknown, prefix: string, what: string): void {
  assert.ok(typeof value === 'string' && value.startsWith(prefix), `${what} starts with ${JSON.stringify(prefix)} (got ${JSON.stringify(value)})`);
}

/** The JSON the /inspect route answered with (what the server received). */
interface Inspected {
  method: string;
  body: string;
  headers: Record<string, string>;
  rawHeaders: Record<string, string>;
  url: string;
  query: Record<string, string>;
}
function inspected(o: Outcome): Inspected {
  const m = output(o);
  assert.equal(m.statusCode, 200, `statusCode 200 from the inspect route (got ${String(m.statusCode)})`);
  assert.ok(m.payload && typeof m.payload === 'object', `payload parsed as JSON (got ${JSON.stringify(m.payload)})`);
  return m.payload as Inspected;
}

function textAnswer(o: Outcome, opts: { https?: boolean } = {}): Msg {
  const m = output(o);
  assert.equal(m.payload, 'hello', 'payload is the body, as text');
  assert.equal(m.statusCode, 200, 'statusCode');
  assert.equal(header(m, 'content-length'), '5', 'response header content-length');
  startsWith(header(m, 'content-type'), 'text/html', 'response header content-type');
  if (opts.https) startsWith(m.responseUrl, 'https://', 'msg.responseUrl');
  return m;
}

/** Nothing goes out, and the user is told (the core node raises an error for a missing URL, warns for a scheme). */
function nothingSent(o: Outcome): void {
  assert.equal(o.sent.length, 0, `nothing on the output (got ${describeOutcome(o)})`);
  assert.ok(o.errors.length + o.warnings.length >= 1, 'the node raised an error or a warning');
}

function hostOf(server: ContractServer, which: 'same' | 'other'): string {
  return which === 'same' ? `localhost:${server.port}` : `127.0.0.1:${server.port}`;
}

function cookiesAt(o: Outcome, host: string, p: string): Record<string, string> | undefined {
  return o.seen.find((r) => r.host === host && r.url === p)?.cookies;
}

interface RedirectEntry {
  location?: unknown;
  cookies?: Record<string, { value?: unknown; Path?: unknown }>;
}
function redirectEntry(m: Msg, index: number, location: string, cookie: string, value: string): void {
  const list = m.redirectList as unknown[] | undefined;
  assert.ok(Array.isArray(list) && list.length > index, `msg.redirectList has entry ${index} (got ${JSON.stringify(list)})`);
  const entry = list[index] as RedirectEntry;
  assert.ok(entry && typeof entry === 'object', `msg.redirectList[${index}] is {location, cookies} (got ${JSON.stringify(entry)})`);
  assert.equal(entry.location, location, `msg.redirectList[${index}].location`);
  assert.equal(entry.cookies?.[cookie]?.value, value, `msg.redirectList[${index}].cookies.${cookie}.value`);
  assert.equal(entry.cookies?.[cookie]?.Path, '/', `msg.redirectList[${index}].cookies.${cookie}.Path`);
}

function proxiedTo(o: Outcome, hostPort: string): boolean {
  return o.proxied.forwarded.some((u) => u.includes(`//${hostPort}/`)) || o.proxied.tunnels.includes(hostPort);
}

// ---- the cases ----

const GET_TEXT = (e: Env): Msg => ({ method: 'GET', ret: 'txt', url: e.server.url('/text') });
const POST_INSPECT = (e: Env): Msg => ({ method: 'POST', ret: 'obj', url: e.server.url('/inspect') });
/** A tls-config that trusts the test certificate. */
const TRUSTING_TLS = (e: Env): { nodes: Msg[] } => ({
  nodes: [{ id: 'tls1', type: 'tls-config', cert: '', key: '', ca: e.server.certificate.cert, verifyservercert: true }],
});
const PROXY_NODE = (e: Env, noproxy: string[] = []): { nodes: Msg[] } => ({
  nodes: [{ id: 'proxy1', type: 'http proxy', url: e.proxy.url, noproxy }],
});

function nonSuccess(code: number): ContractCase {
  return {
    name: `sends a ${code} answer on to the output with its status and body`,
    items: [1],
    node: (e) => ({ method: 'GET', ret: 'obj', url: e.server.url(`/status/${code}`) }),
    msg: () => ({}),
    expect(o) {
      const m = output(o);
      assert.deepEqual(m.payload, { gotError: String(code) }, 'payload');
      assert.equal(m.statusCode, code, 'statusCode');
    },
  };
}

function timeoutCase(name: string, settings: Msg | undefined, msg: Msg): ContractCase {
  return {
    name,
    items: [1],
    node: (e) => ({ method: 'GET', ret: 'obj', url: e.server.url('/slow?ms=3000') }),
    settings,
    msg: () => msg,
    expect(o) {
      const m = output(o);
      assert.match(String(m.statusCode), /TIMEDOUT/, 'msg.statusCode names the timeout');
      assert.equal(o.errors.length, 1, 'node.error called once');
    },
  };
}

function badTimeout(name: string, value: unknown): ContractCase {
  return {
    name,
    node: (e) => ({ method: 'GET', ret: 'obj', url: e.server.url('/text') }),
    msg: () => ({ payload: 'foo', requestTimeout: value }),
    expect(o) {
      assert.equal(output(o).statusCode, 200, 'the request is made with the default timeout');
      // ret obj on a text answer adds a warning of its own; one of the warnings is about the timeout.
      assert.equal(o.warnings.filter((w) => /timeout/i.test(w)).length, 1, `one warning about msg.requestTimeout (got ${JSON.stringify(o.warnings)})`);
    },
  };
}

function cookieCase(name: string, cookies: Msg, expected: Record<string, string>, headers?: Msg): ContractCase {
  return {
    name,
    items: [6],
    node: (e) => ({ method: 'GET', ret: 'obj', url: e.server.url('/cookies') }),
    msg: () => ({ payload: 'foo', cookies, ...(headers ? { headers } : {}) }),
    expect(o) {
      const m = output(o);
      assert.equal(m.statusCode, 200, 'statusCode');
      for (const [k, v] of Object.entries(expected)) {
        assert.equal((m.payload as Record<string, unknown>)[k], v, `cookie ${k} as the server received it`);
      }
    },
  };
}

function envProxyCase(name: string, env: (e: Env) => Record<string, string>, https: boolean, viaProxy: boolean): ContractCase {
  return {
    name,
    items: [6],
    node: (e) => ({ method: 'POST', ret: 'obj', url: https ? e.server.sslUrl('/inspect') : e.server.url('/inspect'), ...(https ? { tls: 'tls1' } : {}) }),
    config: https ? TRUSTING_TLS : undefined,
    environment: env,
    msg: () => ({ payload: 'foo' }),
    expect(o, e) {
      inspected(o);
      const target = `localhost:${https ? e.server.sslPort : e.server.port}`;
      assert.equal(proxiedTo(o, target), viaProxy, viaProxy ? `the request went through the proxy to ${target}` : 'the request did not go through the proxy');
    },
  };
}

function configProxyCase(name: string, opts: { noproxy: string[]; https: boolean; viaMsg: boolean; viaProxy: boolean }): ContractCase {
  const target = (e: Env): string => (opts.https ? e.server.sslUrl('/inspect') : e.server.url('/inspect'));
  return {
    name,
    items: [6],
    node: (e) => ({ method: 'POST', ret: 'obj', url: opts.viaMsg ? '' : target(e), proxy: 'proxy1', ...(opts.https ? { tls: 'tls1' } : {}) }),
    config: (e) => ({ nodes: [...PROXY_NODE(e, opts.noproxy).nodes, ...(opts.https ? TRUSTING_TLS(e).nodes : [])] }),
    msg: (e) => (opts.viaMsg ? { url: target(e), payload: 'foo' } : { payload: 'foo' }),
    expect(o, e) {
      inspected(o);
      const hostPort = `localhost:${opts.https ? e.server.sslPort : e.server.port}`;
      assert.equal(proxiedTo(o, hostPort), opts.viaProxy, opts.viaProxy ? `the request went through the http proxy node's proxy to ${hostPort}` : 'the request did not go through the proxy');
    },
  };
}

function redirectCookieCase(name: string, opts: { site: 'same' | 'other'; msg: Msg; sentFirst: Record<string, string> }): ContractCase {
  const start = opts.site === 'same' ? '/redirect-same' : '/redirect-other';
  const hopCookie = opts.site === 'same' ? 'sameSiteHop' : 'otherSiteHop';
  const hopValue = opts.site === 'same' ? 'same1' : 'other1';
  return {
    name,
    items: [5, 6],
    node: (e) => ({ method: 'GET', ret: 'obj', url: e.server.url(start) }),
    msg: () => structuredClone(opts.msg),
    expect(o, e) {
      const m = output(o);
      assert.deepEqual(cookiesAt(o, hostOf(e.server, 'same'), start), opts.sentFirst, `cookies the first request carried`);
      const endHost = hostOf(e.server, opts.site);
      const expectedEnd = opts.site === 'same' ? { ...opts.sentFirst, [hopCookie]: hopValue } : {};
      assert.deepEqual(cookiesAt(o, endHost, '/redirect-end'), expectedEnd, `cookies the redirected request to ${endHost} carried`);
      const location = opts.site === 'same' ? e.server.url('/redirect-end') : e.server.otherUrl('/redirect-end');
      redirectEntry(m, 0, location, hopCookie, hopValue);
    },
  };
}

function brokenHeadersCase(name: string, insecure: boolean): ContractCase {
  return {
    name,
    items: insecure ? [6] : [1],
    node: (e) => ({ method: 'GET', ret: 'obj', url: e.server.brokenUrl('/'), ...(insecure ? { insecureHTTPParser: true } : {}) }),
    msg: () => ({ payload: 'foo' }),
    expect(o) {
      const m = output(o);
      if (insecure) assert.equal(m.payload, 'HelloWorld', 'payload read through the lenient parser');
      else assert.match(String(m.payload), /Parse Error/, 'the parse error is the payload of the message sent on');
    },
  };
}

const CASES: ContractCase[] = [
  // -- requests and answers --
  {
    name: 'gets a text answer with its headers and an empty redirect list',
    node: GET_TEXT,
    msg: () => ({ payload: 'foo' }),
    expect(o) {
      const m = textAnswer(o);
      assert.deepEqual(m.redirectList, [], 'msg.redirectList');
    },
  },
  {
    name: 'parses a JSON answer with ret obj',
    node: (e) => ({ method: 'GET', ret: 'obj', url: e.server.url('/json') }),
    msg: () => ({ payload: 'foo' }),
    expect(o) {
      const m = output(o);
      assert.deepEqual(m.payload, { a: 1 }, 'payload');
      assert.equal(m.statusCode, 200, 'statusCode');
      startsWith(header(m, 'content-type'), 'application/json', 'response header content-type');
    },
  },
  {
    name: 'POSTs an object payload as JSON with an application/json content type',
    items: [8],
    node: POST_INSPECT,
    msg: () => ({ payload: { foo: 'abcde' } }),
    expect(o) {
      const seen = inspected(o);
      assert.equal(seen.body, '{"foo":"abcde"}', 'body the server received');
      startsWith(seen.headers['content-type'], 'application/json', 'request content-type');
      startsWith(header(output(o), 'content-type'), 'application/json', 'response content-type');
    },
  },
  {
    name: 'POSTs a payload of 0 as the text "0" with the content type of msg.headers',
    items: [8],
    node: POST_INSPECT,
    msg: () => ({ payload: 0, headers: { 'content-type': 'text/plain' } }),
    expect(o) {
      const seen = inspected(o);
      assert.equal(seen.body, '0', 'body the server received');
      assert.equal(seen.headers['content-length'], '1', 'request content-length');
      startsWith(seen.headers['content-type'], 'text/plain', 'request content-type');
    },
  },
  {
    name: 'POSTs an object payload serialised as JSON under a text/plain content type from msg.headers',
    items: [8],
    node: POST_INSPECT,
    msg: () => ({ payload: { foo: 'abcde' }, headers: { 'content-type': 'text/plain' } }),
    expect(o) {
      const seen = inspected(o);
      assert.equal(seen.body, '{"foo":"abcde"}', 'body the server received');
      startsWith(seen.headers['content-type'], 'text/plain', 'request content-type');
    },
  },
  {
    name: 'POSTs a Buffer payload as its bytes',
    node: POST_INSPECT,
    msg: () => ({ payload: Buffer.from('hello'), headers: { 'content-type': 'text/plain' } }),
    expect(o) {
      const seen = inspected(o);
      assert.equal(seen.body, 'hello', 'body the server received');
      startsWith(seen.headers['content-type'], 'text/plain', 'request content-type');
    },
  },
  {
    name: 'POSTs an object as a form when msg.headers says application/x-www-form-urlencoded',
    node: POST_INSPECT,
    msg: () => ({ payload: { foo: '1 2 3', bar: '' }, headers: { 'content-type': 'application/x-www-form-urlencoded' } }),
    expect(o) {
      const seen = inspected(o);
      assert.equal(seen.body, 'foo=1%202%203&bar=', 'form body the server received (spaces as %20)');
      assert.equal(seen.headers['content-type'], 'application/x-www-form-urlencoded', 'request content-type');
    },
  },
  {
    name: 'sends a PUT with a text body',
    node: (e) => ({ method: 'PUT', ret: 'obj', url: e.server.url('/inspect') }),
    msg: () => ({ payload: 'foo', headers: { 'content-type': 'text/plain' } }),
    expect(o) {
      const seen = inspected(o);
      assert.equal(seen.method, 'PUT', 'method');
      assert.equal(seen.body, 'foo', 'body');
      startsWith(seen.headers['content-type'], 'text/plain', 'request content-type');
    },
  },
  {
    name: 'sends a DELETE; a 204 answer with ret obj gives an empty object',
    node: (e) => ({ method: 'DELETE', ret: 'obj', url: e.server.url('/inspect') }),
    msg: () => ({ payload: { foo: 'abcde' } }),
    expect(o) {
      const m = output(o);
      assert.equal(m.statusCode, 204, 'statusCode');
      assert.deepEqual(m.payload, {}, 'payload');
      assert.equal(o.seen.at(-1)?.method, 'DELETE', 'method the server received');
    },
  },
  {
    name: 'sends a HEAD chosen by msg.method; the payload is empty text',
    node: (e) => ({ method: 'use', ret: 'txt', url: e.server.url('/inspect') }),
    msg: () => ({ payload: 'foo', method: 'head' }),
    expect(o) {
      const m = output(o);
      assert.equal(m.statusCode, 204, 'statusCode');
      assert.equal(m.payload, '', 'payload');
      assert.equal(o.seen.at(-1)?.method, 'HEAD', 'method the server received');
    },
  },
  {
    name: 'sends a PATCH with a text body and passes the ETag on',
    node: (e) => ({ method: 'PATCH', ret: 'obj', url: e.server.url('/inspect') }),
    msg: () => ({ payload: 'foo', headers: { 'content-type': 'text/plain' } }),
    expect(o) {
      const seen = inspected(o);
      assert.equal(seen.method, 'PATCH', 'method');
      assert.equal(seen.body, 'foo', 'body');
      assert.ok(header(output(o), 'etag'), 'response header etag');
    },
  },
  {
    name: 'sends an OPTIONS chosen by msg.method',
    node: (e) => ({ method: 'use', ret: 'obj', url: e.server.url('/inspect') }),
    msg: () => ({ payload: 'foo', method: 'options' }),
    expect(o) {
      assert.equal(output(o).statusCode, 200, 'statusCode');
      assert.equal(o.seen.at(-1)?.method, 'OPTIONS', 'method the server received');
    },
  },
  {
    name: 'sends a TRACE chosen by msg.method, with its body',
    items: [6],
    node: (e) => ({ method: 'use', ret: 'obj', url: e.server.url('/inspect') }),
    msg: () => ({ payload: 'foo', method: 'trace', headers: { 'content-type': 'text/plain' } }),
    expect(o) {
      const seen = inspected(o);
      assert.equal(seen.method, 'TRACE', 'method');
      assert.equal(seen.body, 'foo', 'body');
    },
  },
  {
    name: 'returns a Buffer with ret bin',
    node: (e) => ({ method: 'GET', ret: 'bin', url: e.server.url('/text') }),
    msg: () => ({ payload: 'foo' }),
    expect(o) {
      const m = output(o);
      assert.ok(Buffer.isBuffer(m.payload), 'payload is a Buffer');
      assert.equal(m.statusCode, 200, 'statusCode');
      assert.ok(header(m, 'content-type'), 'response header content-type');
    },
  },
  {
    name: 'returns the text when a JSON answer does not parse',
    node: (e) => ({ method: 'GET', ret: 'obj', url: e.server.url('/bad-json') }),
    msg: () => ({ payload: 'foo' }),
    expect(o) {
      const m = output(o);
      assert.equal(m.payload, '{a:1', 'payload');
      assert.equal(m.statusCode, 200, 'statusCode');
      startsWith(header(m, 'content-type'), 'application/json', 'response header content-type');
    },
  },
  {
    name: 'returns the status code of a 204 with an empty text payload',
    node: (e) => ({ method: 'GET', ret: 'txt', url: e.server.url('/no-content') }),
    msg: () => ({ payload: 'foo' }),
    expect(o) {
      const m = output(o);
      assert.equal(m.payload, '', 'payload');
      assert.equal(m.statusCode, 204, 'statusCode');
    },
  },
  {
    name: "keeps the node's URL when msg.url is set too",
    node: (e) => ({ method: 'GET', ret: 'obj', url: e.server.url('/text') }),
    msg: () => ({ payload: 'foo', url: '/foo' }),
    expect(o) {
      const m = output(o);
      assert.equal(m.payload, 'hello', 'payload');
      assert.equal(m.statusCode, 200, 'statusCode');
    },
  },
  {
    name: 'sends nothing on and raises an error when there is no URL',
    node: () => ({ method: 'GET', ret: 'obj', url: '' }),
    msg: () => ({ payload: 'foo' }),
    expect: nothingSent,
  },
  {
    name: 'takes the URL from msg.url when the node has none',
    node: () => ({ method: 'GET', ret: 'txt' }),
    msg: (e) => ({ payload: 'foo', url: e.server.url('/text') }),
    expect: (o) => void textAnswer(o),
  },
  {
    name: 'renders mustache placeholders in the URL from msg',
    node: (e) => ({ method: 'GET', ret: 'txt', url: e.server.url('/te{{placeholder}}') }),
    msg: () => ({ payload: 'foo', placeholder: 'xt' }),
    expect: (o) => void textAnswer(o),
  },
  {
    name: 'adds http:// to a URL without a scheme',
    items: [4],
    node: (e) => ({ method: 'GET', ret: 'txt', url: `localhost:${e.server.port}/text` }),
    msg: () => ({ payload: 'foo' }),
    expect: (o) => void textAnswer(o),
  },
  {
    name: "refuses a non-http scheme in the node's URL",
    node: () => ({ method: 'GET', ret: 'txt', url: 'ftp://foo' }),
    msg: () => ({ payload: 'foo' }),
    expect: nothingSent,
  },
  {
    name: 'refuses a non-http scheme in msg.url',
    node: () => ({ method: 'GET', ret: 'txt' }),
    msg: () => ({ payload: 'foo', url: 'ftp://foo' }),
    expect: nothingSent,
  },
  {
    name: "keeps the node's method when msg.method is set too",
    node: (e) => ({ method: 'GET', ret: 'obj', url: e.server.url('/text') }),
    msg: () => ({ payload: 'foo', method: 'POST' }),
    expect(o) {
      assert.equal(output(o).payload, 'hello', 'payload (the GET route answered)');
      assert.equal(o.seen.at(-1)?.method, 'GET', 'method the server received');
    },
  },
  {
    name: 'takes the method from msg.method when the node says so',
    node: (e) => ({ method: 'use', ret: 'txt', url: e.server.url('/text') }),
    msg: () => ({ payload: 'foo', method: 'get' }),
    expect: (o) => void textAnswer(o),
  },
  {
    name: 'sets msg.responseUrl',
    node: GET_TEXT,
    msg: () => ({ payload: 'foo' }),
    expect(o, e) {
      assert.equal(output(o).responseUrl, e.server.url('/text'), 'msg.responseUrl');
    },
  },
  {
    name: 'sets msg.responseUrl to the URL redirected to',
    node: (e) => ({ method: 'GET', ret: 'txt', url: e.server.url('/redirect-to-text') }),
    msg: () => ({ payload: 'foo' }),
    expect(o, e) {
      const m = output(o);
      assert.equal(m.payload, 'hello', 'payload');
      assert.equal(m.statusCode, 200, 'statusCode');
      assert.equal(m.responseUrl, e.server.url('/text'), 'msg.responseUrl');
    },
  },
  {
    name: 'does not follow a redirect when msg.followRedirects is false, and sends the 302 on',
    items: [6, 1],
    node: (e) => ({ method: 'GET', ret: 'txt', url: e.server.url('/redirect-to-text') }),
    msg: () => ({ payload: 'foo', followRedirects: false }),
    expect(o, e) {
      const m = output(o);
      assert.equal(m.statusCode, 302, 'statusCode');
      assert.equal(m.responseUrl, e.server.url('/redirect-to-text'), 'msg.responseUrl');
    },
  },
  timeoutCase('on a timeout from the httpRequestTimeout setting, sends the message on with the error code and raises an error', { httpRequestTimeout: 50 }, { payload: 'foo' }),
  timeoutCase('on a timeout from msg.requestTimeout, sends the message on with the error code and raises an error', undefined, { payload: 'foo', requestTimeout: 50 }),
  badTimeout('warns about a msg.requestTimeout that is not a number, and makes the request', 'foo'),
  badTimeout('warns about a negative msg.requestTimeout, and makes the request', -4),
  badTimeout('warns about a msg.requestTimeout of 0, and makes the request', 0),
  {
    name: 'answers normally when the server is faster than msg.requestTimeout',
    node: (e) => ({ method: 'GET', ret: 'obj', url: e.server.url('/slow?ms=50') }),
    msg: () => ({ payload: 'foo', requestTimeout: 1500 }),
    expect(o) {
      assert.equal(output(o).statusCode, 200, 'statusCode');
    },
  },
  {
    name: "appends an object payload to the query string with paytoqs",
    node: (e) => ({ method: 'GET', paytoqs: true, ret: 'obj', url: e.server.url('/inspect') }),
    msg: () => ({ payload: { a: 1, b: 2, c: 3 } }),
    expect(o) {
      const seen = inspected(o);
      assert.equal(seen.url, '/inspect?a=1&b=2&c=3', 'request target');
      assert.deepEqual(seen.query, { a: '1', b: '2', c: '3' }, 'query');
    },
  },
  nonSuccess(400),
  nonSuccess(404),
  nonSuccess(500),
  {
    name: 'encodes special characters in msg.url, a bare % included, and keeps %XX escapes',
    items: [5],
    node: () => ({ method: 'GET', ret: 'obj' }),
    msg: (e) => ({ url: `${e.server.url('/inspect')}?a=b&c[0].Text=T24,0°|H80%|W%20S8,3m/s` }),
    expect(o) {
      const seen = inspected(o);
      assert.equal(seen.url, '/inspect?a=b&c[0].Text=T24,0%C2%B0|H80%25|W%20S8,3m/s', 'request target as the server received it');
      assert.equal(seen.query['c[0].Text'], 'T24,0°|H80%|W S8,3m/s', 'the decoded value');
    },
  },

  // -- headers and cookies --
  {
    name: 'parses the Set-Cookie of the answer into msg.responseCookies',
    items: [6],
    node: (e) => ({ method: 'GET', ret: 'obj', url: e.server.url('/set-cookie') }),
    msg: () => ({ payload: 'foo' }),
    expect(o) {
      const m = output(o);
      const cookies = m.responseCookies as Record<string, { value?: unknown }> | undefined;
      assert.equal(cookies?.data?.value, 'hello', `msg.responseCookies.data.value (msg.responseCookies: ${JSON.stringify(cookies)})`);
      assert.equal(m.statusCode, 200, 'statusCode');
    },
  },
  cookieCase('sends a cookie given as a string in msg.cookies', { data: 'abc' }, { data: 'abc' }),
  cookieCase('sends several cookies given as strings in msg.cookies', { data: 'abc', foo: 'bar' }, { data: 'abc', foo: 'bar' }),
  cookieCase('sends a cookie given as {value} in msg.cookies', { data: { value: 'abc' } }, { data: 'abc' }),
  cookieCase('sends several cookies given as {value} in msg.cookies', { data: { value: 'abc' }, foo: { value: 'bar' } }, { data: 'abc', foo: 'bar' }),
  cookieCase('URL-encodes a cookie value by default', { data: ';,/?:@ &=+$#' }, { data: encodeURIComponent(';,/?:@ &=+$#') }),
  cookieCase('URL-encodes a cookie value with encode: true', { data: { value: ';,/?:@ &=+$#', encode: true } }, { data: encodeURIComponent(';,/?:@ &=+$#') }),
  cookieCase("sends a cookie value as it is with encode: false", { data: { value: "!#$%&'()*+-./:<>?@[]^_`{|}~", encode: false } }, { data: "!#$%&'()*+-./:<>?@[]^_`{|}~" }),
  cookieCase('sends a cookie from msg.headers.cookie', { boo: '123' }, { data: 'abc' }, { cookie: 'data=abc' }),
  cookieCase('sends several cookies from msg.headers.cookie', { boo: '123' }, { data: 'abc', foo: 'bar' }, { cookie: 'data=abc; foo=bar;' }),
  {
    name: 'sends headers given in any case, Content-Length included',
    node: POST_INSPECT,
    msg: () => ({ payload: 'foo', headers: { 'Content-Type': 'text/plain', 'Content-Length': '3', 'If-Modified-Since': 'Sun, 01 Jun 2000 00:00:00 GMT' } }),
    expect(o) {
      const seen = inspected(o);
      startsWith(seen.headers['content-type'], 'text/plain', 'request content-type');
      assert.equal(seen.headers['content-length'], '3', 'request content-length');
      assert.equal(seen.headers['if-modified-since'], 'Sun, 01 Jun 2000 00:00:00 GMT', 'request if-modified-since');
    },
  },
  {
    name: 'keeps the case of header names as the message gives them',
    node: (e) => ({ method: 'GET', ret: 'obj', url: e.server.url('/inspect') }),
    msg: () => ({ payload: 'foo', headers: { 'Content-Type': 'text/plain', 'X-Test-HEAD': 'foo' } }),
    expect(o) {
      const seen = inspected(o);
      startsWith(seen.rawHeaders['Content-Type'], 'text/plain', 'raw header Content-Type');
      assert.equal(seen.rawHeaders['X-Test-HEAD'], 'foo', `raw header X-Test-HEAD (raw names: ${Object.keys(seen.rawHeaders).join(', ')})`);
    },
  },
  {
    name: 'passes response headers on in msg.headers',
    node: (e) => ({ method: 'GET', ret: 'txt', url: e.server.url('/response-header') }),
    msg: () => ({ payload: 'foo' }),
    expect(o) {
      const m = output(o);
      assert.equal(m.statusCode, 200, 'statusCode');
      assert.equal(header(m, 'x-test-header'), 'bar', 'response header x-test-header');
    },
  },
  {
    name: "ignores msg.headers that carry the core node's unmodified response mark",
    items: [3],
    exactHeaders: true,
    node: POST_INSPECT,
    msg() {
      const headers: Record<string, string> = { 'content-type': 'text/plain' };
      headers['x-node-red-request-node'] = hashSum(headers);
      return { payload: { foo: 'bar' }, headers };
    },
    expect(o) {
      const seen = inspected(o);
      startsWith(seen.headers['content-type'], 'application/json', 'request content-type (the marked headers were not sent)');
      assert.equal(seen.headers['x-node-red-request-node'], undefined, 'the mark is not sent');
    },
  },
  {
    name: 'sends msg.headers whose response mark no longer matches, without the mark',
    items: [3],
    exactHeaders: true,
    node: POST_INSPECT,
    msg: () => ({ payload: { foo: 'bar' }, headers: { 'content-type': 'text/plain', 'x-node-red-request-node': 'INVALID_SUM' } }),
    expect(o) {
      const seen = inspected(o);
      startsWith(seen.headers['content-type'], 'text/plain', 'request content-type');
      assert.equal(seen.headers['x-node-red-request-node'], undefined, 'the mark is not sent');
    },
  },
  {
    name: "applies the node's headers in the core format: fixed and msg names and values, a blank value removes",
    items: [2],
    node: (e) => ({
      method: 'GET',
      ret: 'obj',
      url: e.server.url('/inspect'),
      headers: [
        { keyType: 'Accept', keyValue: '', valueType: 'application/json', valueValue: '' },
        { keyType: 'Content-Type', keyValue: '', valueType: 'application/json', valueValue: '' },
        { keyType: 'msg', keyValue: 'dynamicHeaderName', valueType: 'msg', valueValue: 'dynamicHeaderValue' },
        { keyType: 'other', keyValue: 'static-header-name', valueType: 'other', valueValue: 'static-header-value' },
        { keyType: 'Location', keyValue: '', valueType: 'other', valueValue: '' },
      ],
    }),
    msg: () => ({
      payload: { foo: 'bar' },
      dynamicHeaderName: 'dyn-header-name',
      dynamicHeaderValue: 'dyn-header-value',
      headers: { 'content-type': 'text/plain', location: 'london' },
    }),
    expect(o) {
      const raw = inspected(o).rawHeaders;
      startsWith(raw.Accept, 'application/json', 'raw header Accept');
      startsWith(raw['Content-Type'], 'application/json', "raw header Content-Type (the node's header over msg.headers)");
      startsWith(raw['dyn-header-name'], 'dyn-header-value', 'header named and valued from msg');
      startsWith(raw['static-header-name'], 'static-header-value', 'fixed custom header');
      assert.equal(raw.location ?? raw.Location, undefined, 'a blank value removes the header from msg.headers');
    },
  },

  // -- TLS --
  {
    name: 'skips certificate checks with msg.rejectUnauthorized false',
    items: [6],
    node: (e) => ({ method: 'GET', ret: 'txt', url: e.server.sslUrl('/text') }),
    msg: () => ({ payload: 'foo', rejectUnauthorized: false }),
    expect: (o) => void textAnswer(o, { https: true }),
  },
  {
    name: 'uses a tls-config (no server check) and https:// for a URL without a scheme',
    items: [4],
    node: (e) => ({ method: 'GET', ret: 'txt', url: `localhost:${e.server.sslPort}/text`, tls: 'tls1' }),
    config: (e) => ({ nodes: [{ id: 'tls1', type: 'tls-config', cert: e.server.certificate.cert, key: e.server.certificate.key, ca: '', verifyservercert: false }] }),
    msg: () => ({ payload: 'foo' }),
    expect: (o) => void textAnswer(o, { https: true }),
  },
  {
    name: "checks the server's certificate against a tls-config CA",
    node: (e) => ({ method: 'GET', ret: 'txt', url: e.server.sslUrl('/text'), tls: 'tls1' }),
    config: (e) => ({
      nodes: [{ id: 'tls1', type: 'tls-config', cert: e.server.certificate.cert, key: e.server.certificate.key, ca: e.server.certificate.cert, verifyservercert: true }],
    }),
    msg: () => ({ payload: 'foo' }),
    expect: (o) => void textAnswer(o, { https: true }),
  },
  {
    name: "presents a tls-config's certificate and key as the client certificate",
    node: (e) => ({ method: 'GET', ret: 'txt', url: e.server.clientCertUrl('/client-cert'), tls: 'tls1' }),
    config: (e) => ({
      nodes: [{ id: 'tls1', type: 'tls-config', cert: e.server.certificate.cert, key: e.server.certificate.key, ca: e.server.certificate.cert, verifyservercert: false }],
    }),
    msg: () => ({ payload: 'foo' }),
    expect: (o) => void textAnswer(o, { https: true }),
  },
  {
    // The core suite uses the pfx on a server that asks for no client certificate; presenting it is the fact
    // that matters, so here the server asks for one.
    name: "presents a tls-config's PKCS#12 (pfx) file as the client certificate",
    items: [7],
    needs: 'pfx',
    node: (e) => ({ method: 'GET', ret: 'txt', url: e.server.clientCertUrl('/client-cert'), tls: 'tls1' }),
    config: (e) => ({
      nodes: [{ id: 'tls1', type: 'tls-config', certType: 'pfx', p12: e.server.certificate.pfx, cert: '', key: '', ca: '', verifyservercert: false }],
      credentials: { tls1: { passphrase: e.server.certificate.pfxPassphrase } },
    }),
    msg: () => ({ payload: 'foo' }),
    expect: (o) => void textAnswer(o, { https: true }),
  },

  // -- proxies --
  envProxyCase('goes through the proxy in http_proxy', (e) => ({ http_proxy: e.proxy.url }), false, true),
  envProxyCase('goes through the proxy in https_proxy for an https URL', (e) => ({ https_proxy: e.proxy.url }), true, true),
  envProxyCase('does not use http_proxy or https_proxy for a host in no_proxy', (e) => ({ http_proxy: e.proxy.url, https_proxy: e.proxy.url, no_proxy: 'localhost' }), true, false),
  envProxyCase('goes through the proxy in HTTP_PROXY', (e) => ({ HTTP_PROXY: e.proxy.url }), false, true),
  envProxyCase('does not use the proxy for a host listed in no_proxy', (e) => ({ http_proxy: e.proxy.url, no_proxy: 'foo,localhost' }), false, false),
  envProxyCase('does not use the proxy for a host listed in NO_PROXY', (e) => ({ HTTP_PROXY: e.proxy.url, NO_PROXY: 'foo,localhost' }), false, false),
  configProxyCase("goes through the node's http proxy config node", { noproxy: [], https: false, viaMsg: false, viaProxy: true }),
  configProxyCase("does not use the http proxy config node for a host in its no-proxy list", { noproxy: ['foo', 'localhost'], https: false, viaMsg: false, viaProxy: false }),
  configProxyCase("uses the http proxy config node for the node's own URL when its no-proxy list does not name the host", { noproxy: ['foo'], https: false, viaMsg: false, viaProxy: true }),
  configProxyCase('uses the http proxy config node for an http msg.url', { noproxy: ['foo,bar'], https: false, viaMsg: true, viaProxy: true }),
  configProxyCase('uses the http proxy config node for an https msg.url', { noproxy: ['foo,bar,baz'], https: true, viaMsg: true, viaProxy: true }),
  configProxyCase("does not use the http proxy config node for an msg.url whose host its no-proxy list names", { noproxy: ['foo,localhost,baz'], https: true, viaMsg: true, viaProxy: false }),

  // -- a moved flow: one core node with every setting it has, retyped --
  {
    name: 'a node with every setting at once (a moved flow): method, URL template, headers in every form, TLS, proxy, keep-alive, senderr, return type',
    items: [1, 2, 4, 6],
    node: (e) => ({
      method: 'PUT',
      ret: 'obj',
      paytoqs: 'ignore',
      // No scheme: https:// with the tls-config; the path from the message.
      url: `localhost:${e.server.sslPort}/{{{route}}}`,
      tls: 'tls1',
      proxy: 'proxy1',
      persist: true,
      senderr: true,
      insecureHTTPParser: false,
      authType: '',
      headers: [
        { keyType: 'other', keyValue: 'X-Typed', valueType: 'other', valueValue: 'typed' },
        { keyType: 'Content-Type', keyValue: '', valueType: 'application/json', valueValue: '' },
        { keyType: 'msg', keyValue: 'headerName', valueType: 'msg', valueValue: 'headerValue' },
        { keyType: 'other', keyValue: 'X-Dropped', valueType: 'other', valueValue: '' },
      ],
    }),
    config: (e) => ({ nodes: [...PROXY_NODE(e).nodes, ...TRUSTING_TLS(e).nodes] }),
    msg: () => ({
      route: 'inspect',
      payload: { moved: true },
      headerName: 'X-From-Msg',
      headerValue: 'from msg',
      headers: { 'X-Dropped': 'set by msg.headers' },
      cookies: { session: { value: 'a b' } },
    }),
    expect(o, e) {
      const seen = inspected(o);
      assert.equal(seen.method, 'PUT', 'method');
      assert.equal(seen.body, '{"moved":true}', 'body');
      assert.equal(seen.headers['x-typed'], 'typed', 'a typed header');
      startsWith(seen.headers['content-type'], 'application/json', 'a common header');
      assert.equal(seen.headers['x-from-msg'], 'from msg', 'a header named and valued from msg');
      assert.equal(seen.headers['x-dropped'], undefined, 'a blank header removes the one msg.headers set');
      assert.equal(seen.headers.cookie, 'session=a%20b', 'msg.cookies');
      assert.ok(proxiedTo(o, `localhost:${e.server.sslPort}`), "through the http proxy node's proxy");
      startsWith(output(o).responseUrl, 'https://', 'msg.responseUrl');
    },
  },

  // -- authentication --
  {
    name: 'sends a bearer token (the node credential for the core node, the connection token for ours)',
    node: (e) => ({ method: 'GET', ret: 'obj', authType: 'bearer', url: e.server.url('/bearer') }),
    nodeCredentials: { password: 'passwordfoo' },
    msg: () => ({ payload: 'foo' }),
    expect(o, e) {
      const m = output(o);
      assert.equal(m.statusCode, 200, 'statusCode');
      const token = (m.payload as { token?: unknown }).token;
      if (e.kind === 'core') assert.equal(token, 'passwordfoo', 'the bearer the server received');
      else assert.ok(o.seen.at(-1)?.bearerValid, `the bearer the server received is the connection's valid token (got ${JSON.stringify(token)})`);
    },
  },
  {
    name: 'authenticates to a proxy with the user and password in its URL',
    items: [6],
    node: (e) => ({ method: 'GET', ret: 'obj', url: e.server.url('/inspect') }),
    environment: (e) => ({ http_proxy: e.proxy.url.replace('http://', 'http://foouser:barpassword@') }),
    msg: () => ({ payload: 'foo' }),
    expect(o, e) {
      inspected(o);
      assert.ok(proxiedTo(o, `localhost:${e.server.port}`), 'the request went through the proxy');
      assert.ok(o.proxied.proxyAuthorization.some(Boolean), 'the proxy received credentials');
    },
  },
  {
    name: "authenticates to the http proxy config node's proxy with its credentials",
    items: [6],
    node: (e) => ({ method: 'GET', ret: 'obj', url: e.server.url('/inspect'), proxy: 'proxy1' }),
    config: (e) => ({ nodes: PROXY_NODE(e).nodes, credentials: { proxy1: { username: 'foouser', password: 'barpassword' } } }),
    msg: () => ({ payload: 'foo' }),
    expect(o, e) {
      inspected(o);
      assert.ok(proxiedTo(o, `localhost:${e.server.port}`), 'the request went through the proxy');
      assert.ok(o.proxied.proxyAuthorization.some(Boolean), 'the proxy received credentials');
    },
  },

  // -- file upload --
  {
    name: 'uploads a file as multipart/form-data chosen by a header of the node',
    items: [2],
    node: (e) => ({
      method: 'POST',
      ret: 'obj',
      url: e.server.url('/upload'),
      headers: [{ keyType: 'Content-Type', keyValue: '', valueType: 'multipart/form-data', valueValue: '' }],
    }),
    msg: () => ({ payload: { file: { value: Buffer.from('Hello World'), options: { filename: 'file.txt' } }, other: 123 } }),
    expect(o) {
      const m = output(o);
      const answer = m.payload as { fields?: unknown; files?: { fieldname: string; originalname?: string; value: string }[] };
      assert.deepEqual(answer.fields, { other: '123' }, `form fields the server received (answer: ${JSON.stringify(answer)})`);
      assert.equal(answer.files?.length, 1, 'one file');
      assert.equal(answer.files?.[0].fieldname, 'file', 'field name');
      assert.equal(answer.files?.[0].originalname, 'file.txt', 'file name');
      assert.equal(answer.files?.[0].value, 'Hello World', 'file content');
    },
  },

  // -- redirects and cookies --
  redirectCookieCase('on a same-site redirect, sends the cookie it set; msg.redirectList has it', { site: 'same', msg: {}, sentFirst: {} }),
  redirectCookieCase('on a redirect to another site, sends no cookie; msg.redirectList has the one set', { site: 'other', msg: {}, sentFirst: {} }),
  redirectCookieCase('on a same-site redirect, sends msg.cookies and the cookie set', { site: 'same', msg: { cookies: { requestCookie: 'request1' } }, sentFirst: { requestCookie: 'request1' } }),
  redirectCookieCase('on a redirect to another site, does not send msg.cookies', { site: 'other', msg: { cookies: { requestCookie: 'request1' } }, sentFirst: { requestCookie: 'request1' } }),
  redirectCookieCase('on a same-site redirect, sends the cookie of msg.headers and the cookie set', { site: 'same', msg: { headers: { cookie: 'requestCookie=request1' } }, sentFirst: { requestCookie: 'request1' } }),
  redirectCookieCase('on a redirect to another site, does not send the cookie of msg.headers', { site: 'other', msg: { headers: { cookie: 'requestCookie=request1' } }, sentFirst: { requestCookie: 'request1' } }),
  {
    name: 'lists every hop of several redirects in msg.redirectList with the cookies each set',
    items: [5, 6],
    node: (e) => ({ method: 'GET', ret: 'obj', url: e.server.url('/redirect-twice') }),
    msg: () => ({ headers: { cookie: 'requestCookie=request1' } }),
    expect(o, e) {
      const m = output(o);
      redirectEntry(m, 0, e.server.url('/redirect-other'), 'firstHop', 'first1');
      redirectEntry(m, 1, e.server.otherUrl('/redirect-end'), 'otherSiteHop', 'other1');
    },
  },

  // -- malformed answers --
  brokenHeadersCase('reads a malformed answer with insecureHTTPParser', true),
  brokenHeadersCase('on a malformed answer, sends the message on with the parse error', false),
];

// ---- the harness ----

interface Tally {
  passed: Record<Kind, number>;
  ran: number;
  skipped: string[];
  failures: { name: string; items: number[]; core: string; ours: string; why: string }[];
}

describe('core http request contract: the core node and http-oauth2-request on the same cases', function () {
  this.timeout(30_000);
  let auth: AuthServer;
  let server: ContractServer;
  let proxy: ForwardProxy;
  let pfxSupported = false;
  const tally: Tally = { passed: { core: 0, ours: 0 }, ran: 0, skipped: [], failures: [] };
  const assertNoUnhandledRejections = collectUnhandledRejections('the core-contract tests');

  before(async () => {
    await loadCatalogs();
    auth = await startAuthServer();
    server = await startContractServer({ checkBearer: async (token) => (await auth.validateAccessToken(token)).active });
    proxy = await startForwardProxy();
    pfxSupported = await runtimeTlsOffersPfx();
  });

  after(async () => {
    await helper.unload();
    await Promise.all([server?.close(), proxy?.close(), auth?.close()]);
    const total = tally.ran;
    console.log(`\n  core contract: ${NODE_LABEL.ours} ${tally.passed.ours}/${total}, ${NODE_LABEL.core} ${tally.passed.core}/${total}`);
    if (tally.skipped.length > 0) console.log(`  not run in this runtime: ${tally.skipped.join('; ')}`);
    const byItem = new Map<string, typeof tally.failures>();
    for (const f of tally.failures) {
      const key = f.items.length > 0 ? `issue 22 item ${f.items.join('/')}` : 'issue 22, no item';
      byItem.set(key, [...(byItem.get(key) ?? []), f]);
    }
    for (const [key, list] of [...byItem].sort()) {
      console.log(`  ${key}:`);
      for (const f of list) console.log(`    - ${f.name}: ${f.why}`);
    }
    await new Promise((r) => setTimeout(r, 50));
    assertNoUnhandledRejections();
  });

  /** Whether this runtime's tls-config turns a PKCS#12 file into a `pfx` TLS option (Node-RED 5 does; 4.1 has none). */
  async function runtimeTlsOffersPfx(): Promise<boolean> {
    const probe = { id: 'tls1', type: 'tls-config', certType: 'pfx', p12: server.certificate.pfx, cert: '', key: '', ca: '', verifyservercert: false };
    await helper.load(coreModules, [probe]);
    const node = helper.getNode('tls1') as RuntimeNode & { addTLSOptions(o: Record<string, unknown>): Record<string, unknown> };
    const offers = node.addTLSOptions({}).pfx !== undefined;
    await helper.unload();
    return offers;
  }

  /** Runs one case on one node type and reports what happened. */
  async function run(c: ContractCase, kind: Kind): Promise<Outcome> {
    const e: Env = { server, proxy, kind };
    const saved = Object.fromEntries(Object.entries(process.env).filter(([k]) => /proxy/i.test(k)));
    for (const k of Object.keys(saved)) delete process.env[k];
    Object.assign(process.env, c.environment?.(e) ?? {});
    const userDir = fs.mkdtempSync(path.join(os.tmpdir(), 'core-contract-'));
    try {
      helper.settings({ userDir, ...c.settings });
      server.reset();
      proxy.reset();
      const config = c.config?.(e) ?? { nodes: [] };
      const node: Msg = { id: 'n1', z: FLOW, x: 100, y: 100, wires: [['out']], ...c.node(e), type: NODE_TYPE[kind] };
      const credentials: Record<string, Record<string, string>> = { ...config.credentials };
      const flow: Msg[] = [tab(), node, helperNode('out'), ...config.nodes];
      if (kind === 'ours') {
        const conn = serviceConnection(auth, {
          apiBaseUrl: server.url(''),
          allowedOrigins: [`https://localhost:${server.sslPort}`, `https://localhost:${server.clientCertPort}`, `http://localhost:${server.brokenPort}`].join(' '),
        });
        node.connection = 'conn1';
        flow.push(conn.node);
        Object.assign(credentials, conn.credentials);
      } else if (c.nodeCredentials) {
        credentials.n1 = c.nodeCredentials;
      }
      await helper.load([...nodeModules, ...coreModules], flow, credentials);
      const req = helper.getNode('n1');
      const sent: Msg[] = [];
      helper.getNode('out').on('input', (m: Msg) => sent.push(m));
      const msg = c.msg(e);
      if (kind === 'ours' && !c.exactHeaders && msg.headers && typeof msg.headers === 'object') {
        (msg.headers as Record<string, unknown>).Authorization = OWN_AUTHORIZATION;
      }
      req.receive(msg);
      const errors = (): string[] => calls(req, 'error').map((args) => errorText(args[0]));
      const told = (): boolean => sent.length > 0 || errors().length > 0 || calls(req, 'warn').length > 0;
      // Wait for the first result (a message out, an error, a warning), then a little longer for what follows it.
      const until = Date.now() + 10_000;
      while (!told() && Date.now() < until) await new Promise((r) => setTimeout(r, 10));
      await new Promise((r) => setTimeout(r, 150));
      const outcome: Outcome = {
        sent: [...sent],
        errors: errors(),
        warnings: calls(req, 'warn').map((args) => errorText(args[0])),
        seen: [...server.seen],
        proxied: {
          forwarded: proxy.forwarded.map((f) => f.url),
          tunnels: proxy.tunnels.map((t) => t.authority),
          proxyAuthorization: [...proxy.forwarded, ...proxy.tunnels].map((x) => Boolean(x.headers['proxy-authorization'])),
        },
      };
      await helper.unload();
      return outcome;
    } finally {
      for (const k of Object.keys(process.env)) if (/proxy/i.test(k)) delete process.env[k];
      Object.assign(process.env, saved);
      fs.rmSync(userDir, { recursive: true, force: true });
    }
  }

  /** The OAuth2 rules, for our node: the token only to allowed origins, never the message's own Authorization. */
  function checkOAuth2Rules(o: Outcome): void {
    const allowed = new Set([`localhost:${server.port}`, `localhost:${server.sslPort}`, `localhost:${server.clientCertPort}`]);
    for (const r of o.seen) {
      const where = `${r.tls ? 'https' : 'http'}://${r.host}${r.url}`;
      assert.notEqual(r.headers.authorization, OWN_AUTHORIZATION, `the message's own Authorization header reached ${where}`);
      if (allowed.has(r.host)) assert.ok(r.bearerValid, `a request to the allowed origin ${where} carried the connection's valid token`);
      else assert.equal(r.headers.authorization, undefined, `a request to ${where} (not an allowed origin) carried no Authorization`);
    }
  }

  for (const c of CASES) {
    it(c.name, async function () {
      if (c.needs === 'pfx' && !pfxSupported) {
        tally.skipped.push(`"${c.name}" (this Node-RED's tls-config has no PKCS#12 option; scripts/node-red-5.sh runs it)`);
        this.skip();
      }
      tally.ran += 1;
      const results: Partial<Record<Kind, { outcome?: Outcome; failure?: string }>> = {};
      for (const kind of ['core', 'ours'] as const) {
        const result: { outcome?: Outcome; failure?: string } = {};
        results[kind] = result;
        try {
          result.outcome = await run(c, kind);
          // The OAuth2 rules first: they hold in every case, including those where the core facts do not.
          if (kind === 'ours') checkOAuth2Rules(result.outcome);
          c.expect(result.outcome, { server, proxy, kind });
          tally.passed[kind] += 1;
        } catch (err) {
          result.failure = failureText(err);
        }
      }
      const core = results.core ?? {};
      const ours = results.ours ?? {};
      if (ours.failure) {
        tally.failures.push({ name: c.name, items: c.items ?? [], core: describeOutcome(core.outcome), ours: describeOutcome(ours.outcome), why: ours.failure });
      }
      if (core.failure) assert.fail(`harness defect: the core http request node fails this case: ${core.failure}\n  core: ${describeOutcome(core.outcome)}`);
      if (ours.failure) {
        assert.fail(
          `http-oauth2-request differs from the core node: ${ours.failure}\n` +
            `  core http request:   ${describeOutcome(core.outcome)}\n` +
            `  http-oauth2-request: ${describeOutcome(ours.outcome)}`,
        );
      }
    });
  }
});

/** An assertion's own words, with what was expected and what came when the words do not say it. */
function failureText(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const first = err.message.split('\n')[0];
  const text = err instanceof assert.AssertionError && !err.generatedMessage
    ? `${first} (expected ${JSON.stringify(err.expected)}, got ${JSON.stringify(err.actual)})`
    : first;
  return text.replace(/Bearer [^"\s]+/g, 'Bearer <redacted>');
}

function calls(node: RuntimeNode, method: 'error' | 'warn'): unknown[][] {
  const spy = helper._NodePrototype[method] as unknown as Spy;
  return spy.getCalls().filter((call) => call.thisValue === node).map((call) => call.args);
}

function errorText(value: unknown): string {
  if (value instanceof Error) return value.message;
  return typeof value === 'string' ? value : JSON.stringify(value);
}
