import assert from 'node:assert/strict';
import hashSum from 'hash-sum';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as path from 'node:path';
import { startApiServer, type ApiServer } from '../support/api-server';
import { startAuthServer, type AuthServer } from '../support/auth-server';
import {
  FLOW,
  catchNodes,
  connectionDef,
  coreRequestModule,
  errorLog,
  eventually,
  helper,
  helperNode,
  loadCatalogs,
  nextInput,
  nodeModules,
  requestNode,
  serviceConnection,
  statusLog,
  tab,
  useTempUserDir,
  type RuntimeNode, collectUnhandledRejections } from './support';

type Msg = Record<string, unknown>;
interface CaughtError {
  message: string;
  code?: string;
  source: { id: string; type: string };
}
interface Echo {
  method: string;
  headers: Record<string, string>;
  body: string;
  authorised: boolean;
}

const RESPONSE_HASH_HEADER = 'x-node-red-request-node';

/** The core node's mark: hash-sum of the headers without it. */
function responseHash(headers: Record<string, unknown>): string {
  const { [RESPONSE_HASH_HEADER]: _mark, ...rest } = headers;
  return hashSum(rest);
}

describe('http-oauth2-request node (node-red-node-test-helper)', function () {
  this.timeout(30_000);
  let auth: AuthServer;
  let api: ApiServer;
  let other: ApiServer;
  let userDir: string;
  const assertNoUnhandledRejections = collectUnhandledRejections('the node tests');

  before(async () => {
    await loadCatalogs();
    auth = await startAuthServer();
    api = await startApiServer(auth);
    other = await startApiServer(auth);
  });

  after(async () => {
    await helper.unload();
    await Promise.all([api?.close(), other?.close(), auth?.close()]);
    // Let late rejections of this file surface before the check.
    await new Promise((r) => setTimeout(r, 50));
    assertNoUnhandledRejections();
  });

  beforeEach(() => {
    userDir = useTempUserDir();
    api.reset();
    other.reset();
    auth.resetCounts();
  });

  afterEach(async () => {
    await helper.unload();
    fs.rmSync(userDir, { recursive: true, force: true });
  });

  /** Loads tab + service connection + the given nodes (the connection's API base URL is the test API). */
  async function loadFlow(nodes: Msg[], connection: Partial<Parameters<typeof serviceConnection>[1]> = {}): Promise<void> {
    const conn = serviceConnection(auth, { apiBaseUrl: api.url, ...connection });
    await helper.load(nodeModules, [tab(), conn.node, ...nodes], conn.credentials);
  }

  /** Sends `msg` into node `id` and resolves with what reaches `outId`. */
  async function send(id: string, msg: Msg, outId = 'out'): Promise<Msg> {
    const received = nextInput(helper.getNode(outId));
    helper.getNode(id).receive(msg);
    return received;
  }

  /** Sends `msg` into node `id` and resolves with what the catch node's helper receives. */
  async function sendAndCatch(id: string, msg: Msg): Promise<Msg & { error: CaughtError }> {
    return (await send(id, msg, 'caught')) as Msg & { error: CaughtError };
  }

  describe('URL and method', () => {
    it('uses msg.url when the node URL is empty, with the connection token', async () => {
      await loadFlow([requestNode('req'), helperNode()]);
      const out = await send('req', { url: `${api.url}/records`, topic: 't' });
      assert.deepEqual(out.payload, [{ id: 1, name: 'first' }, { id: 2, name: 'second' }]);
      assert.equal(out.statusCode, 200);
      assert.equal(out.topic, 't', 'the rest of the message is kept');
      assert.equal(api.requests.length, 1);
      assert.equal(api.requests[0].path, '/records');
      assert.equal(api.requests[0].authorised, true);
      assert.match(api.requests[0].authorization ?? '', /^Bearer \S+$/);
    });

    it('renders the node URL as a mustache template from msg ({{{payload.id}}})', async () => {
      await loadFlow([requestNode('req', { url: `${api.url}/status/{{{payload.id}}}`, non2xxAsOutput: true }), helperNode()]);
      // msg.url is ignored when the node has a URL.
      const out = await send('req', { payload: { id: '418' }, url: `${api.url}/records` });
      assert.equal(out.statusCode, 418);
      assert.deepEqual(out.payload, { status: 418 });
      assert.deepEqual(api.requests.map((r) => r.path), ['/status/418']);
    });

    it("renders the URL example the editor's placeholder and help show", async () => {
      // The view of the template is msg itself, as in the core node: the documented example must use that form.
      const catalog = JSON.parse(fs.readFileSync(path.join(__dirname, '../../locales/en-US/http-oauth2-request.json'), 'utf8')) as {
        'http-oauth2-request': { placeholder: { url: string } };
      };
      const example = /\{\{\{([\w.]+)\}\}\}/.exec(catalog['http-oauth2-request'].placeholder.url);
      assert.ok(example, 'the placeholder shows a template');
      await loadFlow([requestNode('req', { url: `/status/{{{${example[1]}}}}`, non2xxAsOutput: true }), helperNode()]);
      const msg: Record<string, unknown> = {};
      const parts = example[1].split('.');
      parts.reduce<Record<string, unknown>>((o, k, i) => (o[k] = i === parts.length - 1 ? '418' : {}) as Record<string, unknown>, msg);
      const out = await send('req', msg);
      assert.deepEqual(api.requests.map((r) => r.path), ['/status/418']);
      assert.equal(out.statusCode, 418);
    });

    it('resolves a relative URL against the connection API base URL', async () => {
      await loadFlow([requestNode('req', { url: '/echo' }), helperNode()], { apiBaseUrl: `${api.url}/` });
      const out = await send('req', {});
      assert.equal(out.statusCode, 200);
      assert.equal(out.responseUrl, `${api.url}/echo`);
      assert.deepEqual(api.requests.map((r) => r.path), ['/echo']);
    });

    it("uses msg.method when the node's method is 'use'", async () => {
      await loadFlow([requestNode('req', { method: 'use', url: '/echo' }), helperNode()]);
      const out = await send('req', { method: 'delete' });
      assert.equal((out.payload as Echo).method, 'DELETE');
      assert.equal(api.requests[0].method, 'DELETE');
    });

    it('rejects an invalid msg.method with OAUTH2_INVALID_INPUT naming the field; the msg reaches Catch', async () => {
      await loadFlow([requestNode('req', { method: 'use', url: '/echo' }), helperNode(), ...catchNodes(['req'])]);
      const caught = await sendAndCatch('req', { method: 'CONNECT', payload: 'kept', _keep: 42 });
      assert.equal(caught.error.code, 'OAUTH2_INVALID_INPUT');
      assert.equal(caught.error.message, 'Invalid message: msg.method is not a supported method');
      assert.equal(caught.error.source.id, 'req');
      assert.equal(caught.payload, 'kept');
      assert.equal(caught._keep, 42);
      assert.equal(api.requests.length, 0);
      const errors = errorLog(helper.getNode('req'));
      assert.equal(errors.length, 1, 'done(err) called exactly once');
      assert.equal((errors[0].msg as Msg)._keep, 42, 'done(err) carried the msg');
    });

    it('rejects a missing URL (node URL empty, no msg.url) naming msg.url', async () => {
      await loadFlow([requestNode('req'), helperNode(), ...catchNodes(['req'])]);
      const caught = await sendAndCatch('req', { payload: 1 });
      assert.equal(caught.error.code, 'OAUTH2_INVALID_INPUT');
      assert.equal(caught.error.message, 'Invalid message: msg.url is required');
      assert.equal(caught.payload, 1);
      assert.deepEqual(statusLog(helper.getNode('req')).slice(-1), [{ fill: 'red', shape: 'ring', text: 'OAUTH2_INVALID_INPUT' }]);
    });

    it('rejects a relative msg.url when the connection has no API base URL, naming the URL field', async () => {
      await loadFlow([requestNode('req'), helperNode(), ...catchNodes(['req'])], { apiBaseUrl: '' });
      const caught = await sendAndCatch('req', { url: '/records' });
      assert.equal(caught.error.code, 'OAUTH2_INVALID_INPUT');
      assert.match(caught.error.message, /^Invalid message: URL /);
      assert.equal(api.requests.length, 0);
    });
  });

  describe('output', () => {
    it('sets payload (parsed JSON), statusCode, lower-cased headers with the request-node hash, responseUrl, redirectList, attempts', async () => {
      await loadFlow([requestNode('req', { url: '/records', ret: 'obj' }), helperNode()]);
      const out = await send('req', {});
      assert.deepEqual(out.payload, [{ id: 1, name: 'first' }, { id: 2, name: 'second' }]);
      assert.equal(out.statusCode, 200);
      const headers = out.headers as Record<string, string>;
      assert.deepEqual(Object.keys(headers).sort(), ['connection', 'content-type', 'date', 'keep-alive', 'transfer-encoding', RESPONSE_HASH_HEADER]);
      assert.equal(headers['content-type'], 'application/json');
      assert.equal(headers[RESPONSE_HASH_HEADER], responseHash(headers));
      assert.equal(out.responseUrl, `${api.url}/records`);
      assert.deepEqual(out.redirectList, []);
      assert.equal(out.attempts, 1);
    });

    it("returns text with ret 'txt'", async () => {
      await loadFlow([requestNode('req', { url: '/records', ret: 'txt' }), helperNode()]);
      const out = await send('req', {});
      assert.equal(out.payload, JSON.stringify([{ id: 1, name: 'first' }, { id: 2, name: 'second' }]));
    });

    it("returns a Buffer with ret 'bin'", async () => {
      await loadFlow([requestNode('req', { url: '/records', ret: 'bin' }), helperNode()]);
      const out = await send('req', {});
      assert.ok(Buffer.isBuffer(out.payload));
      assert.deepEqual(out.payload, Buffer.from(JSON.stringify([{ id: 1, name: 'first' }, { id: 2, name: 'second' }])));
    });

    it('lists followed redirects in msg.redirectList and the final URL in msg.responseUrl', async () => {
      await loadFlow([requestNode('req'), helperNode()]);
      const out = await send('req', { url: `${api.url}/redirect?to=${encodeURIComponent('/echo')}` });
      assert.equal(out.statusCode, 200);
      assert.deepEqual(out.redirectList, [{ location: `${api.url}/echo` }]);
      assert.equal(out.responseUrl, `${api.url}/echo`);
      assert.equal((out.payload as Echo).authorised, true, 'same-origin redirect keeps the token');
    });
  });

  describe('headers', () => {
    it("merges msg.headers and node headers, the node's winning whatever the case", async () => {
      const headers = [{ k: 'X-Shared', v: 'node' }, { k: 'X-Node-Only', v: 'n-{{{topic}}}' }];
      await loadFlow([requestNode('req', { url: '/echo', headers }), helperNode()]);
      const out = await send('req', { topic: 'tp', headers: { 'x-shared': 'msg', 'X-Msg-Only': 'm' } });
      const seen = (out.payload as Echo).headers;
      assert.equal(seen['x-shared'], 'node');
      assert.equal(seen['x-node-only'], 'n-tp');
      assert.equal(seen['x-msg-only'], 'm');
    });

    it('ignores an Authorization header in msg.headers: the API sees the connection token', async () => {
      await loadFlow([requestNode('req', { url: '/echo' }), helperNode()]);
      const out = await send('req', { headers: { AUTHORIZATION: 'Bearer stolen', authorization: 'Basic eDp5' } });
      const echo = out.payload as Echo;
      assert.equal(echo.authorised, true);
      assert.match(echo.headers.authorization, /^Bearer /);
      assert.notEqual(echo.headers.authorization, 'Bearer stolen');
      assert.equal(api.requests[0].authorization, echo.headers.authorization);
    });

    it('rejects a msg.headers value that is not a string, number or array, naming msg.headers', async () => {
      await loadFlow([requestNode('req', { url: '/echo' }), helperNode(), ...catchNodes(['req'])]);
      const caught = await sendAndCatch('req', { headers: { 'x-object': { nested: true } } });
      assert.equal(caught.error.code, 'OAUTH2_INVALID_INPUT');
      assert.equal(caught.error.message, 'Invalid message: msg.headers is not a valid header');
      assert.equal(api.requests.length, 0);
    });

    it('does not send on the response headers of a previous request node', async () => {
      await loadFlow([
        requestNode('first', { url: '/records' }, [['second']]),
        requestNode('second', { url: '/echo' }),
        helperNode(),
      ]);
      const out = await send('first', {});
      const seen = (out.payload as Echo).headers;
      for (const name of ['date', 'keep-alive', 'content-type', 'transfer-encoding', RESPONSE_HASH_HEADER]) {
        assert.equal(seen[name], undefined, `${name} must not be sent on`);
      }
      assert.equal(api.requests.length, 2);
    });

    it('does send msg.headers that a flow changed after a previous request node', async () => {
      await loadFlow([
        requestNode('first', { url: '/records' }, [['fn']]),
        { id: 'fn', type: 'change', z: FLOW, x: 200, y: 100, rules: [{ t: 'set', p: 'headers.x-extra', pt: 'msg', to: 'yes', tot: 'str' }], wires: [['second']] },
        requestNode('second', { url: '/echo' }),
        helperNode(),
      ]);
      const out = await send('first', {});
      assert.equal((out.payload as Echo).headers['x-extra'], 'yes');
    });
  });

  describe('bodies', () => {
    it('POSTs an object payload as JSON', async () => {
      await loadFlow([requestNode('req', { method: 'POST', url: '/echo' }), helperNode()]);
      const out = await send('req', { payload: { a: 1, b: ['x'] } });
      const echo = out.payload as Echo;
      assert.equal(echo.method, 'POST');
      assert.equal(echo.body, '{"a":1,"b":["x"]}');
      assert.equal(echo.headers['content-type'], 'application/json');
      assert.equal(echo.headers['content-length'], String(echo.body.length));
    });

    it('form-encodes an object payload when the content-type says so', async () => {
      await loadFlow([requestNode('req', { method: 'POST', url: '/echo' }), helperNode()]);
      const out = await send('req', { payload: { a: '1', b: 'x y&z' }, headers: { 'Content-Type': 'application/x-www-form-urlencoded' } });
      const echo = out.payload as Echo;
      assert.equal(echo.body, 'a=1&b=x%20y%26z');
      assert.equal(echo.headers['content-type'], 'application/x-www-form-urlencoded');
    });

    it('sends a string payload as it is', async () => {
      await loadFlow([requestNode('req', { method: 'PUT', url: '/echo' }), helperNode()]);
      const out = await send('req', { payload: 'plain text é' });
      const echo = out.payload as Echo;
      assert.equal(echo.method, 'PUT');
      assert.equal(echo.body, 'plain text é');
      assert.equal(echo.headers['content-length'], String(Buffer.byteLength('plain text é')));
    });

    it('sends a Buffer payload byte for byte', async () => {
      await loadFlow([requestNode('req', { method: 'POST', url: '/echo' }), helperNode()]);
      const bytes = Buffer.from([0x68, 0x69, 0x00, 0x7f]);
      const out = await send('req', { payload: bytes, headers: { 'content-type': 'application/octet-stream' } });
      const echo = out.payload as Echo;
      assert.equal(echo.body, bytes.toString('utf8'));
      assert.equal(echo.headers['content-length'], '4');
      assert.equal(echo.headers['content-type'], 'application/octet-stream');
    });

    it("appends an object payload to the query string on GET with paytoqs 'query'", async () => {
      await loadFlow([requestNode('req', { url: '/echo?x=0', paytoqs: 'query' }), helperNode()]);
      const out = await send('req', { payload: { q: 'a b', n: 2 } });
      assert.equal((out.payload as Echo).body, '');
      assert.deepEqual(api.requests.map((r) => r.path), ['/echo?x=0&q=a%20b&n=2']);
    });
  });

  describe('non-2xx responses', () => {
    it('raise OAUTH2_HTTP_STATUS by default, with statusCode and the body kept on the caught msg', async () => {
      await loadFlow([requestNode('req', { url: '/status/404' }), helperNode(), ...catchNodes(['req'])]);
      const caught = await sendAndCatch('req', { topic: 'x' });
      assert.equal(caught.error.code, 'OAUTH2_HTTP_STATUS');
      assert.equal(caught.error.message, 'The API answered with status 404');
      assert.equal(caught.statusCode, 404);
      assert.deepEqual(caught.payload, { status: 404 });
      assert.equal(caught.topic, 'x');
      assert.deepEqual(statusLog(helper.getNode('req')).slice(-1), [{ fill: 'red', shape: 'ring', text: '404' }]);
    });

    it('go to the output with non2xxAsOutput', async () => {
      await loadFlow([requestNode('req', { url: '/status/500', non2xxAsOutput: true }), helperNode(), ...catchNodes(['req'])]);
      let caught = false;
      helper.getNode('caught').on('input', () => {
        caught = true;
      });
      const out = await send('req', {});
      assert.equal(out.statusCode, 500);
      assert.deepEqual(out.payload, { status: 500 });
      assert.deepEqual(statusLog(helper.getNode('req')).slice(-1), [{ fill: 'yellow', shape: 'dot', text: '500' }]);
      assert.equal(caught, false);
    });
  });

  describe("the core node's outputs (a flow retyped from http request, or a new node)", () => {
    /** The settings a flow retyped from the core node has: neither of this node's output settings. */
    const retyped = { non2xxAsOutput: undefined, senderr: undefined };

    /** An allowed origin where nothing listens: the request fails with ECONNREFUSED. */
    async function closedOrigin(): Promise<string> {
      const server = net.createServer();
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      const { port } = server.address() as net.AddressInfo;
      await new Promise<void>((resolve) => server.close(() => resolve()));
      return `http://127.0.0.1:${port}`;
    }

    function watch(id: string): Msg[] {
      const seen: Msg[] = [];
      helper.getNode(id).on('input', (m: Msg) => seen.push(m));
      return seen;
    }

    it('a non-2xx response goes to the output, not to Catch', async () => {
      await loadFlow([requestNode('req', { url: '/status/503', ...retyped }), helperNode(), ...catchNodes(['req'])]);
      const caught = watch('caught');
      const out = await send('req', { topic: 't' });
      assert.equal(out.statusCode, 503);
      assert.deepEqual(out.payload, { status: 503 });
      await new Promise((r) => setTimeout(r, 100));
      assert.equal(caught.length, 0);
    });

    it('a failed request goes to Catch and to the output, msg.statusCode the socket error code and msg.payload the error text and URL', async () => {
      const origin = await closedOrigin();
      await loadFlow([requestNode('req', { url: `${origin}/x`, ...retyped }), helperNode(), ...catchNodes(['req'])], { allowedOrigins: origin });
      const caught = watch('caught');
      const out = await send('req', { topic: 't' });
      assert.equal(out.statusCode, 'ECONNREFUSED');
      assert.equal(out.topic, 't');
      assert.equal(out.payload, `The request to ${origin.slice(7)} failed on the network after 1 attempt(s) : ${origin}/x`);
      await eventually(() => caught.length === 1);
      assert.equal((caught[0].error as CaughtError).code, 'OAUTH2_REQUEST_FAILED');
    });

    it('with "only send errors to Catch" a failed request goes to Catch only', async () => {
      const origin = await closedOrigin();
      await loadFlow([requestNode('req', { url: `${origin}/x`, ...retyped, senderr: true }), helperNode(), ...catchNodes(['req'])], { allowedOrigins: origin });
      const outputs = watch('out');
      const caught = await sendAndCatch('req', {});
      assert.equal(caught.error.code, 'OAUTH2_REQUEST_FAILED');
      await new Promise((r) => setTimeout(r, 100));
      assert.equal(outputs.length, 0);
    });

    it('a node saved by an earlier version (non2xxAsOutput saved false, no senderr) keeps sending failures to Catch only', async () => {
      const origin = await closedOrigin();
      await loadFlow([requestNode('req', { url: `${origin}/x`, non2xxAsOutput: false }), helperNode(), ...catchNodes(['req'])], { allowedOrigins: origin });
      const outputs = watch('out');
      assert.equal((await sendAndCatch('req', {})).error.code, 'OAUTH2_REQUEST_FAILED');
      await new Promise((r) => setTimeout(r, 100));
      assert.equal(outputs.length, 0);
    });

    it('login and origin errors go to Catch only, whatever the settings: they are not answers of the API', async () => {
      await loadFlow([requestNode('req', { url: `${other.url}/echo`, ...retyped }), helperNode(), ...catchNodes(['req'])]);
      const outputs = watch('out');
      assert.equal((await sendAndCatch('req', {})).error.code, 'OAUTH2_ORIGIN_NOT_ALLOWED');
      await new Promise((r) => setTimeout(r, 100));
      assert.equal(outputs.length, 0);
    });
  });

  describe('"expired when": an API that says the token expired in its body, with a real refresh behind it', () => {
    /** A real API that takes the first token it sees for expired (as a provider that revoked it early would), each way. */
    async function signallingApi(): Promise<{ url: string; close(): Promise<void>; seen: string[] }> {
      const seen: string[] = [];
      let expired: string | undefined;
      const server = http.createServer((req, res) => {
        void (async () => {
          const token = (req.headers.authorization ?? '').replace(/^Bearer /, '');
          const valid = token !== '' && (await auth.validateAccessToken(token)).active;
          expired ??= token;
          const style = new URL(req.url ?? '/', 'http://x').pathname.slice(1);
          seen.push(`${style}:${token === expired ? 'expired' : valid ? 'valid' : 'invalid'}`);
          const answer = (status: number, body: unknown): void => {
            res.writeHead(status, { 'content-type': 'application/json' });
            res.end(JSON.stringify(body));
          };
          if (!valid) return answer(401, { error: 'invalid_token' });
          if (token !== expired) return answer(200, { ok: true });
          if (style === 'ok-false') return answer(200, { ok: false, error: 'token_expired' });
          if (style === 'code-602') return answer(400, { errorCode: 602, message: 'Access token expired' });
          return answer(403, [{ message: 'Session expired or invalid', errorCode: 'INVALID_SESSION_ID' }]);
        })();
      });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      return {
        url: `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`,
        seen,
        close: () => new Promise<void>((resolve) => server.close(() => resolve())),
      };
    }

    const conditions: Record<string, string> = {
      'ok-false': "payload.ok = false and payload.error = 'token_expired'",
      'code-602': 'payload.errorCode = 602',
      session: "statusCode = 401 or payload[0].errorCode = 'INVALID_SESSION_ID'",
    };
    for (const [style, condition] of Object.entries(conditions)) {
      it(`${style}: the condition \`${condition}\` refreshes once and the retry is answered`, async () => {
        const signal = await signallingApi();
        try {
          await loadFlow([requestNode('req', { url: `/${style}` }), helperNode()], { apiBaseUrl: signal.url, expiredWhen: condition });
          const out = await send('req', {});
          assert.equal(out.statusCode, 200);
          assert.deepEqual(out.payload, { ok: true });
          assert.deepEqual(signal.seen, [`${style}:expired`, `${style}:valid`]);
          assert.equal(auth.counts().token.client_credentials, 2, 'one token, then one renewal');
        } finally {
          await signal.close();
        }
      });
    }

    it('without a condition the answer goes back as it is (one token); a condition that is not JSONata fails the connection naming the field', async () => {
      const signal = await signallingApi();
      try {
        await loadFlow([requestNode('req', { url: '/ok-false', non2xxAsOutput: true }), helperNode()], { apiBaseUrl: signal.url });
        const out = await send('req', {});
        assert.deepEqual(out.payload, { ok: false, error: 'token_expired' });
        assert.equal(auth.counts().token.client_credentials, 1);
      } finally {
        await signal.close();
      }
      await helper.unload();
      await loadFlow([requestNode('req', { url: '/x' }), helperNode(), ...catchNodes(['req'])], { expiredWhen: 'payload.ok = = false' });
      const caught = await sendAndCatch('req', {});
      assert.equal(caught.error.code, 'OAUTH2_INVALID_CONFIG');
      assert.match(caught.error.message, /Expired when/);
    });
  });

  describe("URLs as the core node reads them", () => {
    it('a URL naming host and port without a scheme goes to that host (http://), then the origin rules apply', async () => {
      await loadFlow([requestNode('req'), helperNode(), ...catchNodes(['req'])]);
      const out = await send('req', { url: `127.0.0.1:${api.port}/echo` });
      assert.equal(out.statusCode, 200);
      assert.equal(out.responseUrl, `${api.url}/echo`);
      // localhost is another origin than 127.0.0.1: not allowed, nothing sent.
      const caught = await sendAndCatch('req', { url: `localhost:${api.port}/echo` });
      assert.equal(caught.error.code, 'OAUTH2_ORIGIN_NOT_ALLOWED');
    });

    it('a bare % in the query is sent as %25, escapes that are there stay', async () => {
      await loadFlow([requestNode('req'), helperNode()]);
      await send('req', { url: '/echo?a=20%&b=%41%2&c=%zz' });
      assert.equal(api.requests.at(-1)?.path, '/echo?a=20%25&b=%41%252&c=%25zz');
    });

    it('sets msg.responseCookies from the response, as the core node does', async () => {
      await loadFlow([requestNode('req'), helperNode()]);
      const out = await send('req', { url: '/cookie' });
      assert.deepEqual(out.responseCookies, { id: { Path: '/', value: '42' } });
    });
  });

  describe("headers in the core node's forms", () => {
    /** A core http request node with the editor's defaults. */
    function coreNode(id: string, extra: Msg, wires: string[][]): Msg {
      return { id, type: 'http request', z: FLOW, name: '', method: 'GET', ret: 'obj', paytoqs: 'ignore', url: '', tls: '', persist: false, proxy: '', authType: '', senderr: false, headers: [], ...extra, wires };
    }

    async function loadWithCore(nodes: Msg[]): Promise<void> {
      const conn = serviceConnection(auth, { apiBaseUrl: api.url });
      await helper.load([...nodeModules, coreRequestModule], [tab(), conn.node, ...nodes], conn.credentials);
    }

    it("reads a retyped core node's headers: typed names and values, common headers, msg properties, and a blank value that removes a header", async () => {
      const headers = [
        { keyType: 'other', keyValue: 'X-Typed', valueType: 'other', valueValue: 'typed value' },
        { keyType: 'Accept', keyValue: '', valueType: 'application/json', valueValue: '' },
        { keyType: 'msg', keyValue: 'headerName', valueType: 'msg', valueValue: 'values[1].v' },
        { keyType: 'other', keyValue: 'X-Removed', valueType: 'other', valueValue: '' },
      ];
      await loadFlow([requestNode('req', { url: '/echo', headers }), helperNode()]);
      const out = await send('req', { headerName: 'X-From-Msg', values: [{ v: 'no' }, { v: 'from msg' }], headers: { 'x-removed': 'set by msg.headers' } });
      const sent = (out.payload as { headers: Record<string, string> }).headers;
      assert.equal(sent['x-typed'], 'typed value');
      assert.equal(sent.accept, 'application/json');
      assert.equal(sent['x-from-msg'], 'from msg');
      assert.equal(sent['x-removed'], undefined, 'a blank value removes the header');
      assert.match(String(api.requests[0].authorization), /^Bearer /, 'the token still comes from the connection');
    });

    it("this node's own headers: a blank value removes a header msg.headers set", async () => {
      await loadFlow([requestNode('req', { url: '/echo', headers: [{ k: 'X-Gone', v: '' }, { k: 'X-Kept', v: '{{{payload.v}}}' }] }), helperNode()]);
      const out = await send('req', { payload: { v: 'kept' }, headers: { 'X-Gone': 'from msg' } });
      const sent = (out.payload as { headers: Record<string, string> }).headers;
      assert.equal(sent['x-gone'], undefined);
      assert.equal(sent['x-kept'], 'kept');
    });

    it("chained with the core node either way, neither sends the other's response headers on", async () => {
      await loadWithCore([
        coreNode('core1', { url: `${api.url}/open` }, [['req']]),
        requestNode('req', { url: '/echo' }, [['core2']]),
        coreNode('core2', { url: `${api.url}/open?second` }, [['out']]),
        helperNode(),
      ]);
      const out = await send('core1', { payload: 'x' });
      // What each node sent: ours after core1 (no content-type, etag, date... of /open), core2 after ours.
      const ours = api.requests.find((r) => r.path === '/echo' && r.authorization?.startsWith('Bearer '));
      const core2 = api.requests.filter((r) => r.path === '/open?second');
      assert.ok(ours && core2.length === 1, 'both requests reached the API');
      for (const name of ['content-type', 'date', 'content-length', 'x-node-red-request-node']) {
        assert.equal(ours.headers[name], undefined, `ours resent ${name} from the core node's response`);
        assert.equal(core2[0].headers[name], undefined, `the core node resent ${name} from ours`);
      }
      assert.equal(out.statusCode, 200);
    });
  });

  describe('origins', () => {
    it('refuses a URL on another loopback port that is not an allowed origin, sending nothing', async () => {
      await loadFlow([requestNode('req'), helperNode(), ...catchNodes(['req'])]);
      const caught = await sendAndCatch('req', { url: `${other.url}/echo` });
      assert.equal(caught.error.code, 'OAUTH2_ORIGIN_NOT_ALLOWED');
      assert.equal(
        caught.error.message,
        `Not sent: ${other.url} is not an allowed origin of the connection (add it to the API base URL or the other origins)`,
      );
      assert.equal(other.requests.length, 0);
      assert.equal(api.requests.length, 0);
      assert.equal(auth.counts().token.client_credentials ?? 0, 0, 'no token was even fetched');
    });

    it('sends to another origin once it is listed in allowedOrigins', async () => {
      await loadFlow([requestNode('req'), helperNode()], { allowedOrigins: other.url });
      const out = await send('req', { url: `${other.url}/echo` });
      assert.equal((out.payload as Echo).authorised, true);
      assert.equal(other.requests.length, 1);
    });
  });

  describe('status', () => {
    it('shows blue "in flight" while requesting, then green with the status code', async () => {
      await loadFlow([requestNode('req', { url: '/echo' }), helperNode()]);
      const node = helper.getNode('req');
      // Start-up may clear the status once the connection is ready; what matters is the sequence per message.
      const before = statusLog(node).length;
      const out = await send('req', {});
      assert.equal(out.statusCode, 200);
      assert.deepEqual(statusLog(node).slice(before), [
        { fill: 'blue', shape: 'dot', text: '1 in flight' },
        { fill: 'green', shape: 'dot', text: '200' },
      ]);
    });

    it('counts concurrent messages in flight', async () => {
      await loadFlow([requestNode('req', { url: '/echo' }), helperNode()]);
      const node = helper.getNode('req');
      const outs: Msg[] = [];
      helper.getNode('out').on('input', (m: Msg) => outs.push(m));
      const before = statusLog(node).length;
      node.receive({});
      node.receive({});
      await eventually(() => outs.length === 2, 10_000, 'two responses');
      const log = statusLog(node).slice(before);
      assert.deepEqual(log.slice(0, 2), [
        { fill: 'blue', shape: 'dot', text: '1 in flight' },
        { fill: 'blue', shape: 'dot', text: '2 in flight' },
      ]);
      assert.deepEqual(log.at(-1), { fill: 'green', shape: 'dot', text: '200' });
    });
  });

  describe('connection problems', () => {
    it('a connection with an invalid config (no clientId): the request node errors clearly, naming the field, without a crash', async () => {
      const conn = connectionDef(auth, {
        grantType: 'client_credentials',
        clientId: '',
        clientSecret: 'whatever',
        apiBaseUrl: api.url,
      });
      await helper.load(nodeModules, [tab(), conn.node, requestNode('req', { url: '/echo' }), helperNode(), ...catchNodes(['req'])], conn.credentials);
      const node = helper.getNode('req');
      assert.deepEqual(statusLog(node)[0], { fill: 'red', shape: 'ring', text: 'OAUTH2_INVALID_CONFIG' });
      const caught = await sendAndCatch('req', { payload: 'kept' });
      assert.equal(caught.payload, 'kept');
      assert.equal(api.requests.length, 0);
      // The connection IS configured; what is wrong is its Client ID. The message and code should say so.
      assert.equal(caught.error.code, 'OAUTH2_INVALID_CONFIG', `got message: ${caught.error.message}`);
      assert.match(caught.error.message, /Client ID is required/);
    });

    it('a request node without any connection errors with noConnection and keeps the msg', async () => {
      await helper.load(nodeModules, [tab(), requestNode('req', { connection: '', url: 'http://127.0.0.1:1/x' }), helperNode(), ...catchNodes(['req'])]);
      const caught = await sendAndCatch('req', { payload: 'kept' });
      assert.equal(caught.error.message, 'No oauth2-connection is configured');
      assert.equal(caught.payload, 'kept');
    });

    it('a wrong client secret gives OAUTH2_TOKEN_REQUEST_REJECTED mentioning invalid_client, never the secret', async () => {
      const wrongSecret = 'wrong-secret-3f9a1c77d2';
      await loadFlow([requestNode('req', { url: '/echo' }), helperNode(), ...catchNodes(['req'])], { clientSecret: wrongSecret });
      const caught = await sendAndCatch('req', {});
      assert.equal(caught.error.code, 'OAUTH2_TOKEN_REQUEST_REJECTED');
      assert.match(caught.error.message, /invalid_client/);
      const everything = JSON.stringify(caught) + JSON.stringify(errorLog(helper.getNode('req')).map((e) => String(e.err)));
      assert.ok(!everything.includes(wrongSecret), 'the wrong secret leaked');
      assert.ok(!everything.includes(auth.clients.service.clientSecret), 'the real secret leaked');
      assert.equal(api.requests.length, 0);
      assert.equal(auth.counts().token.client_credentials, 1, 'a rejected client is not retried');
    });
  });

  describe('connection status', () => {
    it('a wrong client secret is not shown as "token endpoint unavailable" (the endpoint answered and refused)', async () => {
      await loadFlow([requestNode('req', { url: '/echo' }), helperNode(), ...catchNodes(['req'])], { clientSecret: 'wrong-secret-0000' });
      const caught = await sendAndCatch('req', {});
      assert.equal(caught.error.code, 'OAUTH2_TOKEN_REQUEST_REJECTED');
      // The refusal itself (see connection-status.test.ts for the rest: backoff, log, recovery on deploy).
      assert.deepEqual(statusLog(helper.getNode('req')).slice(-1), [{ fill: 'red', shape: 'ring', text: 'token request refused: invalid_client' }]);
    });
  });

  describe('user directory and closing', () => {
    it('keeps the token store in the runtime userDir', async () => {
      await loadFlow([requestNode('req', { url: '/echo' }), helperNode()]);
      await send('req', {});
      assert.ok(fs.existsSync(path.join(userDir, '.http-oauth2-tokens.json')), 'token store file in userDir');
    });

    it('reuses the stored token for a second message (one token request)', async () => {
      await loadFlow([requestNode('req', { url: '/echo' }), helperNode()]);
      await send('req', {});
      await send('req', {});
      assert.equal(auth.counts().token.client_credentials, 1);
      assert.equal(api.requests[0].authorization, api.requests[1].authorization);
    });

    it('closes: the request node and connection complete close and the connection agents are destroyed', async () => {
      await loadFlow([requestNode('req', { url: '/echo' }), helperNode()]);
      await send('req', {});
      const conn = helper.getNode('conn1') as RuntimeNode & { connection: { agents: { destroy(): void; http: unknown }; listenerCount(event: string): number } };
      const req = helper.getNode('req');
      const agents = conn.connection.agents;
      let destroyed = 0;
      const original = agents.destroy.bind(agents);
      agents.destroy = () => {
        destroyed += 1;
        original();
      };
      const sockets = (): number =>
        Object.values((agents.http as unknown as { freeSockets: Record<string, unknown[]> }).freeSockets).reduce((n, l) => n + l.length, 0);
      assert.ok(sockets() >= 1, 'keep-alive sockets (token endpoint, API) are pooled before close');
      // unload restores the helper's spies before it stops the flows: record close-time statuses directly.
      const closeStatuses: unknown[] = [];
      req.status = (status: Record<string, unknown>) => {
        closeStatuses.push(status);
      };
      let reqClosed = false;
      req.on('close', () => {
        reqClosed = true;
      });
      await helper.unload();
      assert.equal(reqClosed, true);
      assert.equal(destroyed, 1);
      await eventually(() => sockets() === 0, 2_000, 'pooled sockets to close');
      assert.deepEqual(closeStatuses, [{}], 'the request node clears its status on close');
      assert.equal(conn.connection.listenerCount('state'), 0, 'no listener left on the closed connection');
    });
  });
});
