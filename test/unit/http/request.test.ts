import assert from 'node:assert/strict';
import { OAuth2Error, isOAuth2Error } from '../../../nodes/lib/errors';
import { createAgents, type AgentPair } from '../../../nodes/lib/http/agents';
import { resolveRequestUrl, sendAuthorised } from '../../../nodes/lib/http/request';
import { retryPolicy } from '../../../nodes/lib/http/retry';
import { TOKEN_PREFIX, baseRequest, recordingSleep, startServer, testAuthorizer, type TestServer } from './support';

function expectCode(code: OAuth2Error['code']) {
  return (err: unknown): boolean => {
    assert.ok(isOAuth2Error(err), `expected OAuth2Error, got ${String(err)}`);
    assert.equal(err.code, code);
    assert.ok(!JSON.stringify({ m: err.message, p: err.params }).includes(TOKEN_PREFIX));
    return true;
  };
}

describe('http/request: sendAuthorised', () => {
  let agents: AgentPair;
  const servers: TestServer[] = [];
  beforeEach(() => {
    agents = createAgents({});
  });
  afterEach(async () => {
    agents.destroy();
    await Promise.all(servers.splice(0).map((s) => s.close()));
  });
  async function server(handler: Parameters<typeof startServer>[0]): Promise<TestServer> {
    const s = await startServer(handler);
    servers.push(s);
    return s;
  }

  describe('resolveRequestUrl', () => {
    it('joins relative paths to the base path and keeps absolute URLs', () => {
      assert.equal(resolveRequestUrl('/users?a=1', 'https://api.example.com/v2/').href, 'https://api.example.com/v2/users?a=1');
      assert.equal(resolveRequestUrl('users', 'https://api.example.com/v2').href, 'https://api.example.com/v2/users');
      assert.equal(resolveRequestUrl('https://other.example/x', 'https://api.example.com/v2').href, 'https://other.example/x');
    });
    it("reads a URL that names a host without a scheme as the core node does: http://, or https:// with TLS settings", () => {
      const base = 'https://api.example.com/v2';
      for (const [url, expected] of [
        ['localhost:1880/x', 'http://localhost:1880/x'],
        ['127.0.0.1:1880/x?a=1', 'http://127.0.0.1:1880/x?a=1'],
        ['localhost/x', 'http://localhost/x'],
        ['[::1]:8080/x', 'http://[::1]:8080/x'],
        ['api.other.example:8443/x', 'http://api.other.example:8443/x'],
        // Without a port, a dotted name with an API base URL stays a path of it (items.json, v1.2/...).
        ['items.json', 'https://api.example.com/v2/items.json'],
        ['users', 'https://api.example.com/v2/users'],
      ] as const) {
        assert.equal(resolveRequestUrl(url, base).href, expected, url);
      }
      assert.equal(resolveRequestUrl('localhost:1880/x', base, 'https').href, 'https://localhost:1880/x');
      // No API base URL: a host-like name is a host, as in the core node.
      assert.equal(resolveRequestUrl('api.example.com/x').href, 'http://api.example.com/x');
    });
    it('rejects non-http(s), unparseable and base-less relative URLs with field url', () => {
      for (const [url, base] of [['ftp://a/x', undefined], ['javascript:alert(1)', 'https://a'], ['/x', undefined], ['http://[::1', undefined], ['', 'https://a']] as const) {
        assert.throws(() => resolveRequestUrl(url, base), (e: unknown) => isOAuth2Error(e, 'OAUTH2_INVALID_INPUT') && e.params.field === 'url');
      }
    });
  });

  it("lists each redirect with the cookies it set, as the core node's msg.redirectList", async () => {
    const s = await server((req, res) => {
      if (req.url === '/start') {
        res.writeHead(302, { location: '/next', 'set-cookie': ['session=a%20b; Path=/; HttpOnly', 'theme=dark; Max-Age=60'] });
        res.end();
      } else if (req.url === '/next') {
        res.writeHead(301, { location: `${s.origin}/end` });
        res.end();
      } else {
        res.end('end');
      }
    });
    const res = await sendAuthorised(baseRequest(`${s.origin}/start`), { authorizer: testAuthorizer([s.origin]), agents });
    assert.deepEqual(res.redirectList, [
      { location: `${s.origin}/next`, cookies: { session: { Path: '/', value: 'a b' }, theme: { 'Max-Age': '60', value: 'dark' } } },
      { location: `${s.origin}/end` },
    ]);
  });

  it("sends the core node's default headers: no Accept, no Content-Type for a text or binary body, this package's User-Agent", async () => {
    const seen: Record<string, string | string[] | undefined>[] = [];
    const s = await server((req, res) => {
      seen.push(req.headers);
      res.end('ok');
    });
    const auth = testAuthorizer([s.origin]);
    for (const body of ['plain text', Buffer.from('bytes')]) {
      await sendAuthorised(baseRequest(`${s.origin}/x`, { method: 'POST', body }), { authorizer: auth, agents });
    }
    await sendAuthorised(baseRequest(`${s.origin}/x`, { method: 'POST', body: { a: 1 } }), { authorizer: auth, agents });
    await sendAuthorised(baseRequest(`${s.origin}/x`, { headers: { 'User-Agent': 'mine/1', Accept: 'text/csv' } }), { authorizer: auth, agents });
    for (const headers of seen.slice(0, 2)) {
      assert.equal(headers.accept, undefined);
      assert.equal(headers['content-type'], undefined);
      assert.match(String(headers['user-agent']), /^node-red-contrib-http-oauth2\/\d+\.\d+\.\d+/);
    }
    assert.equal(seen[2]['content-type'], 'application/json');
    assert.equal(seen[3]['user-agent'], 'mine/1');
    assert.equal(seen[3].accept, 'text/csv');
  });

  it('refuses a non-allowed origin before any network I/O', async () => {
    const allowed = await server((_q, res) => res.end('ok'));
    const other = await server((_q, res) => res.end('ok'));
    const auth = testAuthorizer([allowed.origin]);
    let tokenAsked = 0;
    const getAccessToken = auth.getAccessToken;
    auth.getAccessToken = async () => {
      tokenAsked += 1;
      return getAccessToken();
    };
    for (const url of [`${other.origin}/x`, `http://user:pw@127.0.0.1:${allowed.port}/x`, `https://127.0.0.1:${allowed.port}/x`]) {
      await assert.rejects(sendAuthorised(baseRequest(url), { authorizer: auth, agents }), expectCode('OAUTH2_ORIGIN_NOT_ALLOWED'));
    }
    assert.equal(other.connections, 0);
    assert.equal(allowed.connections, 0);
    assert.equal(tokenAsked, 0);
  });

  it("replaces the caller's Authorization (any case) with the connection's token", async () => {
    const s = await server((_q, res) => res.end('ok'));
    const auth = testAuthorizer([s.origin]);
    const res = await sendAuthorised(
      baseRequest(`${s.origin}/me`, { headers: { AUTHORIZATION: 'Basic evil', authorization: 'Bearer mine', 'X-Keep': 'yes' } }),
      { authorizer: auth, agents },
    );
    assert.equal(res.statusCode, 200);
    assert.equal(res.body, 'ok');
    assert.equal(s.seen[0].headers.authorization, `Bearer ${TOKEN_PREFIX}-1`);
    assert.equal(s.seen[0].headers['x-keep'], 'yes');
  });

  it('a cross-origin redirect arrives without Authorization or Cookie, even to another allowed origin', async () => {
    const b = await server((_q, res) => res.end('at b'));
    const a = await server((_req, res) => {
      res.writeHead(302, { location: `${b.origin}/landing` }).end();
    });
    const auth = testAuthorizer([a.origin, b.origin]);
    const res = await sendAuthorised(baseRequest(`${a.origin}/start`, { headers: { Cookie: 'sid=1', 'X-Other': 'kept' } }), { authorizer: auth, agents });
    assert.equal(res.statusCode, 200);
    assert.equal(res.body, 'at b');
    assert.equal(a.seen[0].headers.authorization, `Bearer ${TOKEN_PREFIX}-1`);
    assert.equal(b.seen[0].headers.authorization, undefined);
    assert.equal(b.seen[0].headers.cookie, undefined);
    assert.equal(b.seen[0].headers['x-other'], 'kept');
    assert.equal(res.responseUrl, `${b.origin}/landing`);
    assert.deepEqual(res.redirectList, [{ location: `${b.origin}/landing` }]);
  });

  it('another host name for the same server is another origin: no token (same for an https→http downgrade)', async () => {
    const s = await server((req, res) => {
      if (req.url === '/start') res.writeHead(308, { location: `http://localhost:${s.port}/other` }).end();
      else res.end('other');
    });
    const auth = testAuthorizer([s.origin, `http://localhost:${s.port}`]);
    const res = await sendAuthorised(baseRequest(`${s.origin}/start`, { method: 'PUT', body: 'b' }), { authorizer: auth, agents });
    assert.equal(res.body, 'other');
    assert.equal(s.seen[1].method, 'PUT');
    assert.equal(s.seen[1].body.toString(), 'b');
    assert.equal(s.seen[1].headers.authorization, undefined);
  });

  it('does not re-attach the token when a foreign origin redirects back', async () => {
    let aOrigin = '';
    const b = await server((_q, res) => res.writeHead(302, { location: `${aOrigin}/back` }).end());
    const a = await server((req, res) => {
      if (req.url === '/start') res.writeHead(302, { location: `${b.origin}/bounce` }).end();
      else res.end('back');
    });
    aOrigin = a.origin;
    const res = await sendAuthorised(baseRequest(`${a.origin}/start`), { authorizer: testAuthorizer([a.origin]), agents });
    assert.equal(res.body, 'back');
    assert.equal(a.seen[1].headers.authorization, undefined);
    assert.equal(res.redirectList.length, 2);
  });

  it('a same-origin redirect keeps the token', async () => {
    const s = await server((req, res) => {
      if (req.url === '/old') res.writeHead(301, { location: '/new' }).end();
      else res.end('new');
    });
    const res = await sendAuthorised(baseRequest(`${s.origin}/old`), { authorizer: testAuthorizer([s.origin]), agents });
    assert.equal(res.body, 'new');
    assert.equal(s.seen[1].headers.authorization, `Bearer ${TOKEN_PREFIX}-1`);
    assert.equal(res.responseUrl, `${s.origin}/new`);
  });

  it('303 becomes GET without body; 307 keeps method and body', async () => {
    const s = await server((req, res) => {
      if (req.url === '/see-other') res.writeHead(303, { location: '/result' }).end();
      else if (req.url === '/temp') res.writeHead(307, { location: '/target' }).end();
      else res.end(req.method);
    });
    const auth = testAuthorizer([s.origin]);
    const r1 = await sendAuthorised(baseRequest(`${s.origin}/see-other`, { method: 'POST', body: { a: 1 } }), { authorizer: auth, agents });
    assert.equal(r1.body, 'GET');
    assert.equal(s.seen[1].body.length, 0);
    assert.equal(s.seen[1].headers['content-type'], undefined);
    const r2 = await sendAuthorised(baseRequest(`${s.origin}/temp`, { method: 'POST', body: { a: 1 } }), { authorizer: auth, agents });
    assert.equal(r2.body, 'POST');
    assert.equal(s.seen[3].body.toString(), '{"a":1}');
    assert.equal(s.seen[3].headers['content-type'], 'application/json');
  });

  it('too many redirects → OAUTH2_TOO_MANY_REDIRECTS; followRedirects false returns the 3xx', async () => {
    const s = await server((_req, res) => res.writeHead(302, { location: `/loop${s.seen.length}` }).end());
    const auth = testAuthorizer([s.origin]);
    await assert.rejects(sendAuthorised(baseRequest(`${s.origin}/loop`, { maxRedirects: 3 }), { authorizer: auth, agents }), expectCode('OAUTH2_TOO_MANY_REDIRECTS'));
    assert.equal(s.seen.length, 4);
    const r = await sendAuthorised(baseRequest(`${s.origin}/loop`, { followRedirects: false }), { authorizer: auth, agents });
    assert.equal(r.statusCode, 302);
    assert.deepEqual(r.redirectList, []);
  });

  it('an expired status renews the token once, then succeeds', async () => {
    const s = await server((req, res) => {
      if (req.headers.authorization === `Bearer ${TOKEN_PREFIX}-1`) res.writeHead(401).end('expired');
      else res.end('fresh');
    });
    const auth = testAuthorizer([s.origin]);
    const res = await sendAuthorised(baseRequest(`${s.origin}/x`), { authorizer: auth, agents });
    assert.equal(res.statusCode, 200);
    assert.equal(res.body, 'fresh');
    assert.deepEqual(auth.renewals, [`${TOKEN_PREFIX}-1`]);
    assert.equal(s.seen[1].headers.authorization, `Bearer ${TOKEN_PREFIX}-2`);
  });

  it('401 twice is returned as 401 after one renewal (no loop)', async () => {
    const s = await server((_q, res) => res.writeHead(401, { 'content-type': 'application/json' }).end('{"error":"invalid_token"}'));
    const auth = testAuthorizer([s.origin]);
    const res = await sendAuthorised(baseRequest(`${s.origin}/x`, { responseMode: 'auto' }), { authorizer: auth, agents });
    assert.equal(res.statusCode, 401);
    assert.deepEqual(res.body, { error: 'invalid_token' });
    assert.equal(auth.renewals.length, 1);
    assert.equal(s.seen.length, 2);
  });

  it('errors from the authorizer propagate unchanged', async () => {
    const s = await server((_q, res) => res.writeHead(401).end());
    const auth = testAuthorizer([s.origin]);
    const login = new OAuth2Error('OAUTH2_LOGIN_REQUIRED', 'log in');
    auth.renewAfterRejection = async () => {
      throw login;
    };
    await assert.rejects(sendAuthorised(baseRequest(`${s.origin}/x`), { authorizer: auth, agents }), (e: unknown) => e === login);
  });

  it('retries 503 honouring Retry-After seconds and HTTP-date', async () => {
    const s = await server((_q, res) => {
      const n = s.seen.length;
      if (n === 1) res.writeHead(503, { 'retry-after': '2' }).end();
      else if (n === 2) res.writeHead(503, { 'retry-after': new Date(Date.now() + 4000).toUTCString() }).end();
      else res.end('ok');
    });
    const rec = recordingSleep();
    const res = await sendAuthorised(baseRequest(`${s.origin}/x`, { retry: retryPolicy({ maxAttempts: 3, maxRetryAfterMs: 10_000 }) }), {
      authorizer: testAuthorizer([s.origin]), agents, sleep: rec.sleep,
    });
    assert.equal(res.statusCode, 200);
    assert.equal(res.attempts, 3);
    assert.equal(rec.delays[0], 2000);
    assert.ok(rec.delays[1] > 2000 && rec.delays[1] <= 4000, String(rec.delays[1]));
  });

  it('a Retry-After beyond the cap returns the response as is; exhausted retries return the last status', async () => {
    const s = await server((_q, res) => res.writeHead(503, { 'retry-after': '3600' }).end('busy'));
    const rec = recordingSleep();
    const auth = testAuthorizer([s.origin]);
    const res = await sendAuthorised(baseRequest(`${s.origin}/x`), { authorizer: auth, agents, sleep: rec.sleep });
    assert.equal(res.statusCode, 503);
    assert.equal(res.headers['retry-after'], '3600');
    assert.deepEqual(rec.delays, []);
    const t = await server((_q, res) => res.writeHead(429).end());
    const res2 = await sendAuthorised(baseRequest(`${t.origin}/x`), { authorizer: testAuthorizer([t.origin]), agents, sleep: rec.sleep, random: () => 0.5 });
    assert.equal(res2.statusCode, 429);
    assert.equal(t.seen.length, 3);
    assert.equal(rec.delays.length, 2);
  });

  it('POST is not retried unless opted in', async () => {
    const s = await server((_q, res) => res.writeHead(503).end());
    const rec = recordingSleep();
    const auth = testAuthorizer([s.origin]);
    const r1 = await sendAuthorised(baseRequest(`${s.origin}/x`, { method: 'POST', body: 'x' }), { authorizer: auth, agents, sleep: rec.sleep });
    assert.equal(r1.statusCode, 503);
    assert.equal(s.seen.length, 1);
    const r2 = await sendAuthorised(
      baseRequest(`${s.origin}/x`, { method: 'POST', body: 'x', retry: retryPolicy({ maxAttempts: 3, baseDelayMs: 1, retryUnsafeMethods: true }) }),
      { authorizer: auth, agents, sleep: rec.sleep },
    );
    assert.equal(r2.statusCode, 503);
    assert.equal(r2.attempts, 3);
    assert.equal(s.seen.length, 4);
    assert.equal(s.seen[3].body.toString(), 'x');
  });

  it('a connection reset mid-body is retried, then OAUTH2_REQUEST_FAILED', async () => {
    const s = await server((_q, res) => {
      res.writeHead(200, { 'content-length': '1000' });
      res.write('partial');
      setTimeout(() => res.socket?.destroy(), 10);
    });
    const rec = recordingSleep();
    await assert.rejects(
      sendAuthorised(baseRequest(`${s.origin}/x`), { authorizer: testAuthorizer([s.origin]), agents, sleep: rec.sleep }),
      (err: unknown) => {
        expectCode('OAUTH2_REQUEST_FAILED')(err);
        const e = err as OAuth2Error;
        assert.equal(e.params.attempts, 3);
        assert.equal(e.params.host, `127.0.0.1:${s.port}`);
        assert.equal(e.retryable, true);
        assert.ok(e.params.code === 'ECONNRESET', String(e.params.code));
        return true;
      },
    );
    assert.equal(s.seen.length, 3);
    assert.equal(rec.delays.length, 2);
  });

  it('connection refused → OAUTH2_REQUEST_FAILED after the retries', async () => {
    const s = await server((_q, res) => res.end());
    const origin = s.origin;
    await s.close();
    servers.splice(servers.indexOf(s), 1);
    const rec = recordingSleep();
    await assert.rejects(
      sendAuthorised(baseRequest(`${origin}/x`), { authorizer: testAuthorizer([origin]), agents, sleep: rec.sleep }),
      (err: unknown) => expectCode('OAUTH2_REQUEST_FAILED')(err) && (err as OAuth2Error).params.code === 'ECONNREFUSED',
    );
    assert.equal(rec.delays.length, 2);
  });

  it('a slow server → OAUTH2_REQUEST_TIMEOUT', async () => {
    const s = await server((_q, res) => {
      res.writeHead(200);
      res.write('slow');
      setTimeout(() => res.end('er'), 1000);
    });
    const rec = recordingSleep();
    await assert.rejects(
      sendAuthorised(baseRequest(`${s.origin}/x`, { timeoutMs: 100 }), { authorizer: testAuthorizer([s.origin]), agents, sleep: rec.sleep }),
      (err: unknown) => expectCode('OAUTH2_REQUEST_TIMEOUT')(err) && (err as OAuth2Error).params.attempts === 3,
    );
  });

  it('a cancelled signal stops the request with OAUTH2_REQUEST_FAILED', async () => {
    const s = await server((_q, res) => setTimeout(() => res.end('late'), 500));
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 50);
    await assert.rejects(
      sendAuthorised(baseRequest(`${s.origin}/x`, { signal: controller.signal }), { authorizer: testAuthorizer([s.origin]), agents }),
      (err: unknown) => expectCode('OAUTH2_REQUEST_FAILED')(err) && (err as OAuth2Error).params.reason === 'aborted',
    );
  });

  it('sends the body encodings over the wire', async () => {
    const s = await server((_q, res) => res.end('ok'));
    const auth = testAuthorizer([s.origin]);
    const send = (over: Parameters<typeof baseRequest>[1]) => sendAuthorised(baseRequest(`${s.origin}/x`, over), { authorizer: auth, agents });
    await send({ method: 'POST', body: { a: 1 } });
    assert.equal(s.seen[0].headers['content-type'], 'application/json');
    assert.equal(s.seen[0].body.toString(), '{"a":1}');
    await send({ method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: { a: 'b c' } });
    assert.equal(s.seen[1].body.toString(), 'a=b%20c');
    await send({ method: 'PUT', body: Buffer.from([1, 2, 3]) });
    assert.deepEqual([...s.seen[2].body], [1, 2, 3]);
    await send({ method: 'PATCH', body: '  {"raw": true}  ', headers: { 'content-type': 'application/json' } });
    assert.equal(s.seen[3].body.toString(), '  {"raw": true}  ');
    await send({ method: 'POST', headers: { 'Content-Type': 'multipart/form-data' }, body: { f: { value: Buffer.from('hi'), options: { filename: 'a.txt', contentType: 'text/plain' } }, n: 'v' } });
    const form = await new Response(new Uint8Array(s.seen[4].body), { headers: { 'content-type': String(s.seen[4].headers['content-type']) } }).formData();
    assert.equal((form.get('f') as File).name, 'a.txt');
    assert.equal(await (form.get('f') as File).text(), 'hi');
    assert.equal(form.get('n'), 'v');
    await send({ method: 'GET', body: { q: 'x y', page: 2 }, paytoqs: 'query' });
    assert.equal(s.seen[5].url, '/x?q=x%20y&page=2');
    assert.equal(s.seen[5].body.length, 0);
  });

  it('decodes responses per mode and lower-cases headers', async () => {
    const s = await server((req, res) => {
      if (req.url === '/json') res.writeHead(200, { 'Content-Type': 'application/json', 'X-Mixed-Case': 'v', 'Set-Cookie': ['a=1', 'b=2'] }).end('{"ok":true}');
      else if (req.url === '/bad') res.writeHead(200, { 'Content-Type': 'application/json' }).end('not json');
      else res.writeHead(200, { 'Content-Type': 'application/octet-stream' }).end(Buffer.from([0xde, 0xad]));
    });
    const auth = testAuthorizer([s.origin]);
    const get = (path: string, responseMode: 'txt' | 'bin' | 'obj' | 'auto') =>
      sendAuthorised(baseRequest(`${s.origin}${path}`, { responseMode }), { authorizer: auth, agents });
    const j = await get('/json', 'auto');
    assert.deepEqual(j.body, { ok: true });
    assert.equal(j.headers['x-mixed-case'], 'v');
    assert.deepEqual(j.headers['set-cookie'], ['a=1', 'b=2']);
    assert.equal((await get('/json', 'txt')).body, '{"ok":true}');
    assert.deepEqual((await get('/json', 'obj')).body, { ok: true });
    const bad = await get('/bad', 'obj');
    assert.equal(bad.body, 'not json');
    assert.equal(bad.decodeWarning, 'OAUTH2_RESPONSE_DECODE_FAILED');
    assert.deepEqual((await get('/bin', 'auto')).body, Buffer.from([0xde, 0xad]));
    assert.deepEqual((await get('/bin', 'bin')).body, Buffer.from([0xde, 0xad]));
  });

  it('reuses one keep-alive socket for sequential requests', async () => {
    const s = await server((_q, res) => res.end('ok'));
    const auth = testAuthorizer([s.origin]);
    for (let i = 0; i < 5; i++) {
      await sendAuthorised(baseRequest(`${s.origin}/x${i}`), { authorizer: auth, agents });
    }
    assert.equal(s.seen.length, 5);
    assert.equal(s.connections, 1);
  });

  it('rejects invalid input with OAUTH2_INVALID_INPUT naming the field, never echoing header values', async () => {
    const s = await server((_q, res) => res.end('ok'));
    const auth = testAuthorizer([s.origin]);
    const cases: Array<[Parameters<typeof baseRequest>[1], string]> = [
      [{ headers: { 'X-Bad': 'a\r\nInjected: secretvalue' } }, 'headers'],
      [{ headers: { 'Bad Name': 'x' } }, 'headers'],
      [{ headers: { 'X-Obj': { a: 1 } as unknown as string } }, 'headers'],
      [{ method: 'GE T' }, 'method'],
      [{ timeoutMs: -5 }, 'requestTimeout'],
      [{ body: 'text', paytoqs: 'query' }, 'payload'],
    ];
    for (const [over, field] of cases) {
      await assert.rejects(sendAuthorised(baseRequest(`${s.origin}/x`, over), { authorizer: auth, agents }), (err: unknown) => {
        expectCode('OAUTH2_INVALID_INPUT')(err);
        assert.equal((err as OAuth2Error).params.field, field);
        assert.ok(!(err as OAuth2Error).message.includes('secretvalue'));
        return true;
      });
    }
    assert.equal(s.seen.length, 0);
  });
});
