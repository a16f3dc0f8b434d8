import assert from 'node:assert/strict';
import fc from 'fast-check';
import { OAuth2Error } from '../../../nodes/lib/errors';
import { createAgents, type AgentPair } from '../../../nodes/lib/http/agents';
import { sendAuthorised } from '../../../nodes/lib/http/request';
import { retryPolicy } from '../../../nodes/lib/http/retry';
import { TOKEN_PREFIX, recordingSleep, startServer, testAuthorizer, type TestServer } from './support';

describe('http/request: property', () => {
  let agents: AgentPair;
  let server: TestServer;
  before(async () => {
    agents = createAgents({});
    // Answers by path: redirects (same and cross origin), 401, 503, resets, bodies.
    server = await startServer((req, res) => {
      const path = req.url ?? '/';
      if (path.startsWith('/r')) res.writeHead(302, { location: path.includes('x') ? 'http://127.0.0.1:1/away' : '/done' }).end();
      else if (path.startsWith('/u')) res.writeHead(401).end();
      else if (path.startsWith('/s')) res.writeHead(503, { 'retry-after': '1' }).end();
      else if (path.startsWith('/k')) res.socket?.destroy();
      else res.writeHead(200, { 'content-type': path.startsWith('/j') ? 'application/json' : 'text/plain' }).end(path);
    });
  });
  after(async () => {
    agents.destroy();
    await server.close();
  });

  it('never throws a non-OAuth2Error and never puts the token in an error', async () => {
    const headerName = fc.oneof(
      fc.constantFrom('Authorization', 'authorization', 'AUTHORIZATION', 'Cookie', 'Content-Type', 'content-length', 'Host', 'X-A', 'Bad Name', ''),
      fc.string({ maxLength: 12 }),
    );
    const headerValue = fc.oneof(
      fc.string({ maxLength: 20 }),
      fc.constantFrom('multipart/form-data', 'application/x-www-form-urlencoded', 'application/json', 'a\r\nb', `Bearer ${TOKEN_PREFIX}-x`),
      fc.integer(),
      fc.array(fc.string({ maxLength: 5 }), { maxLength: 3 }),
      fc.constant(null),
      fc.object({ maxDepth: 1 }),
    );
    const path = fc.oneof(fc.constantFrom('/ok', '/json', '/r', '/rx', '/u', '/s', '/k'), fc.webPath(), fc.webSegment().map((s) => `/${s}?q=${s}`));
    const url = fc.oneof(
      { weight: 6, arbitrary: path.map((p) => `${server.origin}${p.startsWith('/') ? p : `/${p}`}`) },
      path.map((p) => `${server.origin}${p.startsWith('/') ? p : `/${p}`}`),
      fc.webUrl(),
      fc.string({ maxLength: 30 }),
      fc.constantFrom(`http://u:p@127.0.0.1:${server.port}/`, 'ftp://x/', 'http://[::1', `https://127.0.0.1:${server.port}/`),
    );
    const payload = fc.oneof(
      fc.anything({ maxDepth: 2, withBigInt: true, withDate: true, withTypedArray: true, withNullPrototype: true }),
      fc.uint8Array({ maxLength: 16 }).map((a) => Buffer.from(a)),
      fc.dictionary(fc.string({ maxLength: 5 }), fc.oneof(fc.string(), fc.uint8Array().map((a) => Buffer.from(a)), fc.record({ value: fc.anything({ maxDepth: 1 }), options: fc.anything({ maxDepth: 1 }) }))),
    );
    const request = fc.record({
      method: fc.oneof({ weight: 4, arbitrary: fc.constantFrom('GET', 'POST', 'PUT') }, fc.constantFrom('GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD', 'get'), fc.string({ maxLength: 6 })),
      url,
      headers: fc.oneof({ weight: 2, arbitrary: fc.dictionary(headerName, fc.string({ maxLength: 10 }).filter((v) => /^[\x20-\x7e]*$/.test(v)), { maxKeys: 3 }) }, fc.dictionary(headerName, headerValue, { maxKeys: 5 })),
      body: fc.option(payload, { nil: undefined }),
      paytoqs: fc.constantFrom('ignore', 'query', 'body', undefined),
      timeoutMs: fc.oneof({ weight: 4, arbitrary: fc.constant(2000) }, fc.integer({ min: -5, max: 5000 }), fc.double()),
      responseMode: fc.constantFrom('txt', 'bin', 'obj', 'auto'),
      followRedirects: fc.boolean(),
      maxRedirects: fc.integer({ min: -1, max: 3 }),
    });

    let sent = 0;
    await fc.assert(
      fc.asyncProperty(request, async (r) => {
        const auth = testAuthorizer([server.origin]);
        const rec = recordingSleep();
        try {
          // The generated values deliberately break the static types: that is the point of the property.
          const res = await sendAuthorised(
            { ...(r as unknown as Parameters<typeof sendAuthorised>[0]), retry: retryPolicy({ maxAttempts: 2 }) },
            { authorizer: auth, agents, sleep: rec.sleep },
          );
          sent += 1;
          assert.ok(!JSON.stringify({ h: res.headers, u: res.responseUrl, l: res.redirectList }).includes(TOKEN_PREFIX));
        } catch (err) {
          assert.ok(err instanceof OAuth2Error, `non-OAuth2Error: ${String(err)}`);
          const text = JSON.stringify({ m: err.message, p: err.params, s: err.stack, c: String(err.cause ?? '') });
          assert.ok(!text.includes(TOKEN_PREFIX), text);
        }
      }),
      { numRuns: 300 },
    );
    assert.ok(sent > 20, `only ${sent} requests got through`);
  });
});
