import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { AuthServer } from '../support/auth-server';
import { adminCall, startWatchedAuthServer, startWatchedRuntime } from '../support/e2e';
import { addSecret } from '../support/leaks';
import type { TestRuntime } from '../support/runtime';

interface RouteError {
  error: { code: string; message: string };
}

describe('e2e: POST oauth2-connection/discover', function () {
  this.timeout(30_000);
  let auth: AuthServer;
  let runtime: TestRuntime;
  let readerToken: string;
  const adminPassword = `admin-${randomBytes(12).toString('hex')}`;
  const readerPassword = `reader-${randomBytes(12).toString('hex')}`;
  addSecret(adminPassword);
  addSecret(readerPassword);
  const servers: http.Server[] = [];

  /** A loopback HTTP server; its origin. */
  async function serve(handler: http.RequestListener): Promise<{ origin: string; port: number; hits: () => number }> {
    let hits = 0;
    const server = http.createServer((req, res) => {
      hits += 1;
      handler(req, res);
    });
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    return { origin: `http://127.0.0.1:${port}`, port, hits: () => hits };
  }

  before(async () => {
    auth = await startWatchedAuthServer();
    runtime = await startWatchedRuntime({ adminAuth: { adminPassword, readerPassword } });
    readerToken = await runtime.adminToken('reader', readerPassword, 'read');
  });

  after(async () => {
    for (const server of servers) {
      server.closeAllConnections();
      server.close();
    }
    await runtime?.stop();
    await auth?.close();
  });

  const discover = (body: unknown) => adminCall(runtime, 'oauth2-connection/discover', { body });

  it("returns the provider's endpoints and that it sends iss (RFC 9207)", async () => {
    const res = await discover({ issuer: auth.issuer });
    assert.equal(res.status, 200, res.text);
    const md = res.body as Record<string, unknown>;
    assert.equal(md.issuer, auth.issuer);
    assert.equal(md.authorizationEndpoint, `${auth.issuer}/auth`);
    assert.equal(md.tokenEndpoint, `${auth.issuer}/token`);
    assert.equal(md.revocationEndpoint, `${auth.issuer}/token/revocation`);
    assert.equal(md.deviceAuthorizationEndpoint, `${auth.issuer}/device/auth`);
    assert.equal(md.issParameterSupported, true);
    assert.ok(Array.isArray(md.scopesSupported) && (md.scopesSupported as string[]).includes('api:read'), res.text);
  });

  it('tolerates surrounding whitespace in the issuer', async () => {
    const res = await discover({ issuer: `  ${auth.issuer}  ` });
    assert.equal(res.status, 200, res.text);
    assert.equal((res.body as { issuer: string }).issuer, auth.issuer);
  });

  for (const [name, issuer] of [
    ['an issuer on another path (no metadata there)', (a: AuthServer) => `${a.issuer}/other`],
    ['an issuer the document does not name (localhost vs 127.0.0.1)', (a: AuthServer) => a.issuer.replace('127.0.0.1', 'localhost')],
    ['a port where nothing listens', () => 'http://127.0.0.1:9/'],
    ['plain http on a non-loopback host', () => 'http://auth.example.com'],
    ['not a URL', () => 'not a url'],
  ] as const) {
    it(`${name} -> an error response with OAUTH2_DISCOVERY_FAILED`, async () => {
      const res = await discover({ issuer: issuer(auth) });
      assert.ok(res.status >= 400 && res.status < 600, `${res.status} ${res.text}`);
      assert.equal(res.headers.get('content-type')?.split(';')[0], 'application/json');
      const body = res.body as RouteError;
      assert.equal(body.error?.code, 'OAUTH2_DISCOVERY_FAILED', res.text);
      assert.equal(typeof body.error.message, 'string');
      assert.ok(body.error.message.length > 10, body.error.message);
      assert.doesNotMatch(body.error.message, /__\w+__/, 'every placeholder of the message is filled in');
    });
  }

  for (const [name, body] of [
    ['missing', {}],
    ['empty', { issuer: '  ' }],
    ['not a string', { issuer: 42 }],
    ['no body at all', undefined],
  ] as const) {
    it(`issuer ${name} -> 400 naming the field`, async () => {
      const res = body === undefined
        ? await adminCall(runtime, 'oauth2-connection/discover', { method: 'POST' })
        : await discover(body);
      assert.equal(res.status, 400, res.text);
      const err = (res.body as RouteError).error;
      assert.equal(err.code, 'OAUTH2_INVALID_INPUT');
      assert.match(err.message, /issuer/i);
    });
  }

  it('a reader may not make the server fetch a URL: refused before anything is sent', async () => {
    const target = await serve((_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end('{}'));
    const res = await adminCall(runtime, 'oauth2-connection/discover', { body: { issuer: target.origin }, token: readerToken });
    assert.ok(res.status === 401 || res.status === 403, `${res.status} ${res.text}`);
    assert.equal(target.hits(), 0);
  });

  it('probing internal ports learns nothing: every network failure answers alike, the log says why', async () => {
    // The probe's targets: a closed port, an internal service answering 404, one answering a page that is not
    // JSON, and one reached only through a redirect to 0.0.0.0 from a server the policy allows.
    const closed = await serve(() => undefined);
    servers.pop()?.close();
    const notFound = await serve((_req, res) => res.writeHead(404).end());
    const html = await serve((_req, res) => res.writeHead(200, { 'content-type': 'text/html' }).end('<html>router login</html>'));
    const internal = await serve((_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end('{"issuer":"x"}'));
    const redirector = await serve((_req, res) => res.writeHead(302, { location: `http://0.0.0.0:${internal.port}/` }).end());
    const probes = [closed.origin, notFound.origin, html.origin, redirector.origin];
    const logsBefore = runtime.logs.length;
    const answers: string[] = [];
    for (const issuer of probes) {
      const res = await discover({ issuer });
      answers.push(`${res.status} ${JSON.stringify(res.body)}`);
    }
    assert.equal(new Set(answers).size, 1, answers.join('\n'));
    const body = JSON.parse(answers[0].slice(4)) as RouteError;
    assert.equal(answers[0].slice(0, 3), '502');
    assert.deepEqual(body, {
      error: {
        code: 'OAUTH2_DISCOVERY_FAILED',
        message: 'Discovery failed: no usable provider metadata was found at this issuer (the Node-RED log says why)',
      },
    });
    assert.equal(internal.hits(), 0, 'the redirect to 0.0.0.0 was not followed');
    // The details went to the log, one warning per probe, each naming its issuer.
    const warnings = runtime.logs.slice(logsBefore).filter((l) => l.level === 30 && l.text.startsWith('Discovery of ')) // 30: Node-RED's warn;
    assert.equal(warnings.length, probes.length, JSON.stringify(runtime.logs.slice(logsBefore)));
    assert.match(warnings[0].text, new RegExp(`^Discovery of ${closed.origin} failed: .*unreachable`));
    assert.match(warnings[1].text, /HTTP 404/);
    assert.match(warnings[2].text, /not JSON/);
    assert.match(warnings[3].text, /redirected to http:\/\/0\.0\.0\.0:\d+\/, which is not https/);
  });

  it('a mistake in the issuer itself is shown as it is', async () => {
    const res = await discover({ issuer: 'http://auth.example.com' });
    const err = (res.body as RouteError).error;
    assert.equal(err.code, 'OAUTH2_DISCOVERY_FAILED');
    assert.match(err.message, /must be an https URL/);
  });

  it('nothing crashed the runtime', () => {
    assert.deepEqual(runtime.crashes, []);
  });
});
