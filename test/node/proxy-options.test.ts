/**
 * Node-RED's `proxyOptions` setting reaches every call of a connection, as it does the core http request node:
 * a real Node-RED runtime (node-red-node-test-helper) whose settings name a proxy in `proxyOptions.env`, the
 * real authorization server and API, and a recording CONNECT proxy on loopback.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { startApiServer, type ApiServer } from '../support/api-server';
import { startAuthServer, type AuthServer } from '../support/auth-server';
import { startConnectProxy, type ConnectProxy } from '../support/connect-proxy';
import { collectUnhandledRejections, helper, helperNode, loadCatalogs, nextInput, nodeModules, requestNode, serviceConnection, tab, useTempUserDir } from './support';

describe('proxyOptions from Node-RED settings (node-red-node-test-helper)', function () {
  this.timeout(30_000);
  let auth: AuthServer;
  let api: ApiServer;
  let proxy: ConnectProxy;
  let userDir: string;
  const assertNoUnhandledRejections = collectUnhandledRejections('the proxyOptions tests');

  before(async () => {
    await loadCatalogs();
    auth = await startAuthServer();
    [api, proxy] = await Promise.all([startApiServer(auth), startConnectProxy()]);
  });
  after(async () => {
    await helper.unload();
    await Promise.all([api?.close(), auth?.close(), proxy?.close()]);
    assertNoUnhandledRejections();
  });
  afterEach(async () => {
    await helper.unload();
    fs.rmSync(userDir, { recursive: true, force: true });
    proxy.reset();
  });

  async function requestThrough(proxyOptions: Record<string, unknown> | undefined): Promise<Record<string, unknown>> {
    userDir = useTempUserDir();
    helper.settings({ userDir, ...(proxyOptions ? { proxyOptions } : {}) });
    const conn = serviceConnection(auth, { apiBaseUrl: api.url });
    await helper.load(nodeModules, [tab(), conn.node, requestNode('req', { url: `${api.url}/echo` }), helperNode()], conn.credentials);
    const out = nextInput(helper.getNode('out'));
    helper.getNode('req').receive({});
    return out;
  }

  it('proxyOptions.env names the proxy: the token request and the API call go through its tunnel, no credential seen', async () => {
    const msg = await requestThrough({ env: { http_proxy: proxy.url } });
    assert.equal(msg.statusCode, 200);
    assert.equal((msg.payload as { authorised: boolean }).authorised, true);
    assert.ok(proxy.tunnels.includes(new URL(auth.issuer).host), proxy.tunnels.join(', '));
    assert.ok(proxy.tunnels.includes(new URL(api.url).host), proxy.tunnels.join(', '));
    assert.deepEqual(proxy.plain, []);
    assert.ok(!JSON.stringify(proxy.connectHeaders).includes(auth.clients.service.clientSecret));
  });

  it('its no_proxy sends the hosts direct, and without proxyOptions the process environment (no proxy here) applies', async () => {
    assert.equal((await requestThrough({ env: { http_proxy: proxy.url, no_proxy: '127.0.0.1' } })).statusCode, 200);
    assert.deepEqual(proxy.tunnels, []);
    await helper.unload();
    fs.rmSync(userDir, { recursive: true, force: true });
    assert.equal((await requestThrough(undefined)).statusCode, 200);
    assert.deepEqual(proxy.tunnels, []);
  });
});
