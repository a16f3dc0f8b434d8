import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { AuthServer } from '../support/auth-server';
import { startApiServer, type ApiServer } from '../support/api-server';
import { callLane, caught, connectionStatus, deployAndWait, sleep, startWatchedAuthServer, startWatchedRuntime } from '../support/e2e';
import { connectionNode, requestLane, tab } from '../support/flows';
import { addSecret } from '../support/leaks';
import type { TestRuntime } from '../support/runtime';

const TTL_SEC = 4;

describe('e2e: client credentials', function () {
  this.timeout(40_000);
  let auth: AuthServer;
  let api: ApiServer;
  let runtime: TestRuntime;
  const wrongSecret = `wrong-secret-${randomBytes(12).toString('hex')}`;
  addSecret(wrongSecret);

  const ccCalls = (): number => auth.counts().token.client_credentials ?? 0;

  /** The test flows; `badSecret` is what conn-bad is deployed with. */
  function flows(badSecret: string): unknown[] {
    const base = {
      grantType: 'client_credentials' as const,
      clientId: auth.clients.service.clientId,
      scopes: 'api:read',
      apiBaseUrl: api.url,
    };
    return [
      tab(),
      connectionNode(auth, { ...base, clientSecret: auth.clients.service.clientSecret }),
      connectionNode(auth, { ...base, id: 'conn-bad', clientSecret: badSecret }),
      connectionNode(auth, { ...base, id: 'conn-disc', clientSecret: auth.clients.service.clientSecret, useDiscovery: true }),
      // As an imported flow (or an example) arrives: no credentials at all.
      connectionNode(auth, { ...base, id: 'conn-nosecret' }),
      ...requestLane({ path: '/records', requestNodeId: 'req1', url: '/records' }),
      ...[2, 3, 4, 5].flatMap((n) => requestLane({ path: `/records${n}`, requestNodeId: `req${n}`, url: '/records' })),
      ...requestLane({ path: '/bad', requestNodeId: 'reqBad', connectionId: 'conn-bad', url: '/records' }),
      ...requestLane({ path: '/disc', requestNodeId: 'reqDisc', connectionId: 'conn-disc', url: '/records' }),
      ...requestLane({ path: '/nosecret', requestNodeId: 'reqNoSecret', connectionId: 'conn-nosecret', url: '/records' }),
    ];
  }

  before(async () => {
    auth = await startWatchedAuthServer({ accessTokenTtlSec: TTL_SEC });
    api = await startApiServer(auth);
    runtime = await startWatchedRuntime();
    auth.resetCounts();
    await deployAndWait(runtime, flows(wrongSecret));
  });

  after(async () => {
    await runtime?.stop();
    await api?.close();
    await auth?.close();
  });

  it('the connection is ready without any login', async () => {
    assert.equal((await connectionStatus(runtime, 'conn1')).state, 'ready');
  });

  it('100 concurrent requests over 5 nodes with a cold cache: exactly one token call, all authorised', async () => {
    assert.equal(ccCalls(), 0, 'no token fetched before the first request (or count this one)');
    api.reset();
    const results = await Promise.all(Array.from({ length: 100 }, (_, i) => callLane(runtime, i % 5 === 0 ? '/records' : `/records${(i % 5) + 1}`)));
    const failed = results.filter((r) => r.status !== 200);
    assert.equal(failed.length, 0, JSON.stringify(failed.slice(0, 3).map((f) => f.text)));
    assert.equal(ccCalls(), 1);
    assert.equal(api.requests.length, 100);
    assert.ok(api.requests.every((r) => r.authorised));
    assert.equal(new Set(api.requests.map((r) => r.authorization)).size, 1, 'every request used the same token');
  });

  it('the token is reused until it expires, then exactly one new call', async () => {
    auth.resetCounts();
    for (let i = 0; i < 5; i += 1) assert.equal((await callLane(runtime, '/records')).status, 200);
    assert.equal(ccCalls(), 0, 'cached token reused');
    await sleep(TTL_SEC * 1000 + 300);
    const after = await Promise.all(Array.from({ length: 10 }, () => callLane(runtime, '/records')));
    assert.ok(after.every((r) => r.status === 200));
    assert.equal(ccCalls(), 1, 'one new token after expiry');
    assert.equal(new Set(api.requests.slice(-10).map((r) => r.authorization)).size, 1);
    assert.notEqual(api.requests.at(-1)?.authorization, api.requests.at(-11)?.authorization, 'a new token');
  });

  it('a wrong secret: OAUTH2_TOKEN_REQUEST_REJECTED, and the message does not contain the secret', async () => {
    const res = await callLane(runtime, '/bad');
    const err = caught(res);
    assert.equal(err.code, 'OAUTH2_TOKEN_REQUEST_REJECTED', err.message);
    assert.ok(!err.message.includes(wrongSecret), err.message);
    assert.ok(!res.text.includes(wrongSecret));
    assert.ok(!err.message.includes(auth.clients.service.clientSecret));
    assert.match(err.message, /invalid_client|client/i);
    const logged = runtime.logs.filter((l) => l.text.includes(wrongSecret));
    assert.equal(logged.length, 0);
  });

  it('a refused secret: the dialog shows the refusal, requests fail fast, and a deploy with the right secret works at once', async () => {
    const status = await connectionStatus(runtime, 'conn-bad');
    assert.equal(status.state, 'refused');
    assert.equal(status.stateCode, 'OAUTH2_TOKEN_REQUEST_REJECTED');
    assert.match(String(status.stateMessage), /^The token endpoint refused the request: invalid_client/);
    assert.ok(typeof status.retryAt === 'number' && status.retryAt > Date.now(), 'the dialog can say when it is asked again');
    assert.ok(!JSON.stringify(status).includes(wrongSecret));

    auth.resetCounts();
    const err = caught(await callLane(runtime, '/bad'));
    assert.equal(err.code, 'OAUTH2_TOKEN_REQUEST_REJECTED', err.message);
    assert.equal(ccCalls(), 0, 'refused: the token endpoint is not asked again during the backoff');
    assert.equal(runtime.logs.filter((l) => l.id === 'conn-bad' && /refused the connection/.test(l.text)).length, 1, 'logged once');

    await deployAndWait(runtime, flows(auth.clients.service.clientSecret));
    const res = await callLane(runtime, '/bad');
    assert.equal(res.status, 200, res.text);
    assert.equal(ccCalls(), 1);
    assert.equal((await connectionStatus(runtime, 'conn-bad')).state, 'ready');
  });

  it('discovery at run time: a connection with only the issuer set works', async () => {
    const res = await callLane(runtime, '/disc');
    assert.equal(res.status, 200, res.text);
    assert.deepEqual(res.body, [
      { id: 1, name: 'first' },
      { id: 2, name: 'second' },
    ]);
  });

  it('no secret configured yet: the connection deploys, and a request fails naming the client secret, with no token call', async () => {
    assert.equal(runtime.logs.filter((l) => l.id === 'conn-nosecret' && l.level <= 20).length, 0, 'no error at deploy');
    auth.resetCounts();
    const err = caught(await callLane(runtime, '/nosecret'));
    assert.equal(err.code, 'OAUTH2_INVALID_CONFIG', err.message);
    assert.match(err.message, /secret/i);
    assert.equal(ccCalls(), 0);
  });

  it('nothing crashed the runtime', () => {
    assert.deepEqual(runtime.crashes, []);
  });
});
