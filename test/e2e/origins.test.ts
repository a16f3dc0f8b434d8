import assert from 'node:assert/strict';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { AuthServer } from '../support/auth-server';
import { startApiServer, type ApiServer } from '../support/api-server';
import { callLane, caught, deployAndWait, startWatchedAuthServer, startWatchedRuntime } from '../support/e2e';
import { connectionNode, requestLane, tab } from '../support/flows';
import type { TestRuntime } from '../support/runtime';

/** A bare server that counts TCP connections: proof that nothing at all was sent to it. */
async function startConnectionCounter(): Promise<{ url: string; connections: () => number; close(): Promise<void> }> {
  let connections = 0;
  const server = http.createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end('{"reached":true}');
  });
  server.on('connection', () => {
    connections += 1;
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    connections: () => connections,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/**
 * Invariant 4 end to end: the bearer token goes only to the connection's API origin and its listed origins;
 * a request elsewhere fails before any I/O; a redirect off the origin drops the Authorization header.
 */
describe('e2e: origin allowlist and redirects', function () {
  this.timeout(40_000);
  let auth: AuthServer;
  let api: ApiServer;
  /** Listed in the connection's allowedOrigins. */
  let listed: ApiServer;
  /** Not listed anywhere. */
  let unlisted: ApiServer;
  let counter: Awaited<ReturnType<typeof startConnectionCounter>>;
  let runtime: TestRuntime;

  const lane = (name: string, url: string) => requestLane({ path: `/${name}`, requestNodeId: name, url });

  before(async () => {
    auth = await startWatchedAuthServer();
    api = await startApiServer(auth);
    listed = await startApiServer(auth);
    unlisted = await startApiServer(auth);
    counter = await startConnectionCounter();
    runtime = await startWatchedRuntime();
    const conn = connectionNode(auth, {
      grantType: 'client_credentials',
      clientId: auth.clients.service.clientId,
      clientSecret: auth.clients.service.clientSecret,
      scopes: 'api:read',
      apiBaseUrl: `${api.url}/`,
      allowedOrigins: listed.url,
    });
    const apiPort = api.port;
    await deployAndWait(runtime, [
      tab(),
      conn,
      ...lane('same', '/echo'),
      ...lane('listed', `${listed.url}/echo`),
      ...lane('other', `${counter.url}/anything`),
      ...lane('redirectSame', '/redirect?to=/echo'),
      ...lane('redirectListed', `/redirect?to=${encodeURIComponent(`${listed.url}/open`)}`),
      ...lane('redirectUnlisted', `/redirect?to=${encodeURIComponent(`${unlisted.url}/open`)}`),
      ...lane('redirectBack', `/redirect?to=${encodeURIComponent(`${unlisted.url}/redirect?to=${encodeURIComponent(`${api.url}/echo`)}`)}`),
      ...lane('lookLocalhost', `http://localhost:${apiPort}/echo`),
      ...lane('lookHttps', `https://127.0.0.1:${apiPort}/echo`),
      ...lane('lookUserinfo', `http://user@127.0.0.1:${apiPort}/echo`),
      ...lane('lookUserPass', `http://user:pass@127.0.0.1:${apiPort}/echo`),
      ...lane('lookOtherPort', `http://127.0.0.1:${apiPort === 65535 ? 1 : apiPort + 1}/echo`),
      ...lane('lookMappedV6', `http://[::ffff:127.0.0.1]:${apiPort}/echo`),
      ...lane('lookLoopbackAlias', `http://127.0.0.2:${apiPort}/echo`),
    ]);
  });

  after(async () => {
    await runtime?.stop();
    await counter?.close();
    for (const s of [api, listed, unlisted]) await s?.close();
    await auth?.close();
  });

  beforeEach(() => {
    api.reset();
    listed.reset();
    unlisted.reset();
  });

  it('same origin: the API sees a valid token', async () => {
    const res = await callLane(runtime, '/same', { apiEcho: true });
    assert.equal(res.status, 200, res.text);
    assert.equal((res.body as { authorised: boolean }).authorised, true);
  });

  it('a listed origin gets the token too', async () => {
    const res = await callLane(runtime, '/listed', { apiEcho: true });
    assert.equal(res.status, 200, res.text);
    assert.equal((res.body as { authorised: boolean }).authorised, true);
    assert.equal(listed.requests.length, 1);
  });

  it('another loopback port: OAUTH2_ORIGIN_NOT_ALLOWED, and that server saw no connection at all', async () => {
    const before = counter.connections();
    const res = await callLane(runtime, '/other');
    const err = caught(res);
    assert.equal(err.code, 'OAUTH2_ORIGIN_NOT_ALLOWED');
    assert.match(err.message, new RegExp(counter.url.replace(/[.:/]/g, '\\$&')), err.message);
    assert.equal(counter.connections(), before, 'no TCP connection reached the other server');
  });

  it('a same-origin redirect keeps the token', async () => {
    const res = await callLane(runtime, '/redirectSame', { apiEcho: true });
    assert.equal(res.status, 200, res.text);
    assert.equal((res.body as { authorised: boolean }).authorised, true);
    const hops = api.requests.map((r) => r.path);
    assert.deepEqual(hops, ['/redirect?to=/echo', '/echo']);
    assert.ok(api.requests.every((r) => r.authorised), 'both hops carried the token');
  });

  for (const [name, server] of [['listed', () => listed], ['unlisted', () => unlisted]] as const) {
    it(`a redirect to another origin (${name}) arrives without Authorization`, async () => {
      const res = await callLane(runtime, name === 'listed' ? '/redirectListed' : '/redirectUnlisted');
      assert.equal(res.status, 200, res.text);
      assert.deepEqual(res.body, { open: true, authorizationPresent: false });
      const seen = server().requests;
      assert.equal(seen.length, 1);
      assert.equal(seen[0].path, '/open');
      assert.equal(seen[0].authorization, undefined);
      assert.equal(api.requests[0].authorised, true, 'the first hop, on the API origin, had the token');
    });
  }

  it('a redirect that leaves and comes back to the API origin does not get the token back', async () => {
    const res = await callLane(runtime, '/redirectBack');
    const err = caught(res);
    assert.equal(err.code, 'OAUTH2_HTTP_STATUS');
    assert.equal(err.statusCode, 401);
    const echo = api.requests.find((r) => r.path === '/echo');
    assert.ok(echo, 'the last hop reached the API');
    assert.equal(echo.authorization, undefined);
  });

  for (const lookAlike of ['lookLocalhost', 'lookHttps', 'lookUserinfo', 'lookUserPass', 'lookOtherPort', 'lookMappedV6', 'lookLoopbackAlias']) {
    it(`look-alike origin (${lookAlike}) is refused before anything is sent`, async () => {
      const res = await callLane(runtime, `/${lookAlike}`);
      const err = caught(res);
      assert.equal(err.code, 'OAUTH2_ORIGIN_NOT_ALLOWED', err.message);
      assert.equal(api.requests.length, 0, 'the API saw nothing');
      assert.doesNotMatch(err.message, /pass/, 'user information is not echoed');
    });
  }

  it('nothing crashed the runtime', () => {
    assert.deepEqual(runtime.crashes, []);
  });
});
