import assert from 'node:assert/strict';
import { Connection } from '../../../nodes/lib/connection';
import { parseConnectionConfig } from '../../../nodes/lib/connection-settings';
import { bypassesProxy, proxyFor, proxySettingsFromEnv, proxySettingsFromNode, type ProxySettings } from '../../../nodes/lib/http/proxy';
import { sendAuthorised } from '../../../nodes/lib/http/request';
import { startApiServer, type ApiServer } from '../../support/api-server';
import { startAuthServer, type AuthServer } from '../../support/auth-server';
import { startConnectProxy, type ConnectProxy } from '../../support/connect-proxy';
import { RecordingTokenStore } from '../tokens/support/scripted-token-endpoint';

describe('http/proxy: one transport for every call of a connection', () => {
  describe('which targets go through the proxy', () => {
    const settings: ProxySettings = { httpsProxy: 'http://proxy.example:3128', httpProxy: 'http://plain.example:8080', noProxy: ['.internal.example', 'direct.example:8443', '10.0.0.7', '[::1]'] };

    it('picks the proxy by the target\'s scheme and honours NO_PROXY by host, domain, port and address', () => {
      assert.equal(proxyFor({ protocol: 'https:', hostname: 'api.example', port: 443 }, settings)?.host, 'proxy.example:3128');
      assert.equal(proxyFor({ protocol: 'http:', hostname: 'api.example', port: 80 }, settings)?.host, 'plain.example:8080');
      assert.equal(proxyFor({ protocol: 'https:', hostname: 'a.internal.example', port: 443 }, settings), undefined);
      assert.equal(proxyFor({ protocol: 'https:', hostname: 'internal.example', port: 443 }, settings), undefined);
      assert.equal(proxyFor({ protocol: 'https:', hostname: 'notinternal.example', port: 443 }, settings)?.host, 'proxy.example:3128');
      assert.equal(proxyFor({ protocol: 'https:', hostname: 'direct.example', port: 8443 }, settings), undefined);
      assert.equal(proxyFor({ protocol: 'https:', hostname: 'direct.example', port: 443 }, settings)?.host, 'proxy.example:3128');
      assert.equal(proxyFor({ protocol: 'https:', hostname: '10.0.0.7', port: 443 }, settings), undefined);
      assert.equal(proxyFor({ protocol: 'https:', hostname: '[::1]', port: 443 }, settings), undefined);
      assert.equal(bypassesProxy('anything.example', 1, ['*']), true);
      assert.equal(proxyFor({ protocol: 'https:', hostname: 'api.example', port: 443 }, undefined), undefined);
    });

    it('reads the environment as curl does, and a Node-RED http proxy node', () => {
      assert.equal(proxySettingsFromEnv({}), undefined);
      assert.deepEqual(proxySettingsFromEnv({ HTTPS_PROXY: 'http://p:1', https_proxy: 'http://lower:2', NO_PROXY: 'a.example, b.example' }), {
        httpsProxy: 'http://lower:2',
        httpProxy: undefined,
        noProxy: ['a.example', 'b.example'],
      });
      assert.deepEqual(proxySettingsFromNode({ type: 'http proxy', url: 'http://p:3', noproxy: ['x.example'], credentials: { username: 'u', password: 'pw' } }), {
        httpsProxy: 'http://p:3',
        httpProxy: 'http://p:3',
        noProxy: ['x.example'],
        username: 'u',
        password: 'pw',
      });
      assert.equal(proxySettingsFromNode({ type: 'http proxy', url: '' }), undefined);
      // A dialog may send any node id: a node of another type is no proxy, whatever url it carries.
      assert.equal(proxySettingsFromNode({ type: 'http request', url: 'http://attacker.example:8080' }), undefined);
    });
  });

  describe('Node-RED\'s proxyOptions and variables, as its http request node reads them', () => {
    const env = {
      https_proxy: 'http://lower-https:1',
      HTTPS_PROXY: 'http://upper-https:2',
      npm_config_http_proxy: 'http://npm-http:3',
      http_proxy: 'http://lower-http:4',
      no_proxy: 'lower.example',
      NO_PROXY: 'upper.example',
    };

    it('reads npm_config_* first, then the scheme\'s variable, npm_config_proxy and all_proxy; lowercase before uppercase', () => {
      assert.deepEqual(proxySettingsFromEnv(env, {}), { httpsProxy: 'http://lower-https:1', httpProxy: 'http://npm-http:3', noProxy: ['lower.example'] });
      assert.deepEqual(proxySettingsFromEnv({ all_proxy: 'http://all:5', npm_config_no_proxy: 'npm.example' }, {}), {
        httpsProxy: 'http://all:5', httpProxy: 'http://all:5', noProxy: ['npm.example'],
      });
      assert.equal(proxySettingsFromEnv({ npm_config_proxy: 'http://npm:6' }, {})?.httpsProxy, 'http://npm:6');
    });

    it('favourUpperCase, lowerCaseOnly and excludeNpm change which variable wins', () => {
      assert.deepEqual(proxySettingsFromEnv(env, { favourUpperCase: true }), { httpsProxy: 'http://upper-https:2', httpProxy: 'http://npm-http:3', noProxy: ['upper.example'] });
      assert.deepEqual(proxySettingsFromEnv({ HTTPS_PROXY: 'http://upper-https:2' }, { lowerCaseOnly: true }), undefined);
      assert.deepEqual(proxySettingsFromEnv(env, { excludeNpm: true }), { httpsProxy: 'http://lower-https:1', httpProxy: 'http://lower-http:4', noProxy: ['lower.example'] });
    });

    it('env replaces the process environment; legacy mode (or NR_PROXY_MODE=legacy) uses HTTP_PROXY for both schemes', () => {
      assert.deepEqual(proxySettingsFromEnv({ https_proxy: 'http://ignored:1' }, { env: { http_proxy: 'http://given:7' } }), {
        httpsProxy: undefined, httpProxy: 'http://given:7', noProxy: [],
      });
      const legacy = { HTTP_PROXY: 'http://legacy:8', http_proxy: 'http://legacy-lower:9', https_proxy: 'http://unused:1', NO_PROXY: 'a.example,b.example' };
      assert.deepEqual(proxySettingsFromEnv(legacy, { mode: 'legacy' }), { httpsProxy: 'http://legacy:8', httpProxy: 'http://legacy:8', noProxy: ['a.example', 'b.example'] });
      assert.deepEqual(proxySettingsFromEnv({ ...legacy, NR_PROXY_MODE: 'legacy' }, {}), proxySettingsFromEnv(legacy, { mode: 'legacy' }));
      assert.equal(proxySettingsFromEnv({ https_proxy: 'http://unused:1', NR_PROXY_MODE: 'legacy' }, {}), undefined);
    });
  });

  describe('a connection behind a proxy (real oidc-provider, real API, a recording CONNECT proxy)', () => {
    let auth: AuthServer;
    let api: ApiServer;
    let proxy: ConnectProxy;
    const connections: Connection[] = [];
    before(async () => {
      auth = await startAuthServer();
      api = await startApiServer(auth);
      proxy = await startConnectProxy();
    });
    after(async () => {
      for (const c of connections) c.close();
      await Promise.all([proxy.close(), api.close(), auth.close()]);
    });
    beforeEach(() => proxy.reset());

    function connection(proxySettings: ProxySettings): Connection {
      const settings = parseConnectionConfig(
        { grantType: 'client_credentials', issuer: auth.issuer, clientId: auth.clients.service.clientId, scopes: 'api:read', apiBaseUrl: api.url },
        auth.clients.service.clientSecret,
      );
      const c = new Connection({ id: `proxied-${connections.length}`, settings: { ...settings, proxy: proxySettings }, store: new RecordingTokenStore([]) });
      connections.push(c);
      return c;
    }

    it('discovery, the token request, the API call and the revocation all go through the tunnel; the proxy sees no credential', async () => {
      const c = connection({ httpProxy: proxy.url, noProxy: [] });
      const { accessToken } = await c.getAccessToken();
      const response = await sendAuthorised({ method: 'GET', url: `${api.url}/echo`, headers: {} } as Parameters<typeof sendAuthorised>[0], { authorizer: c, agents: c.agents });
      assert.equal(response.statusCode, 200);
      const body = (Buffer.isBuffer(response.body) || typeof response.body === 'string' ? JSON.parse(String(response.body)) : response.body) as { authorised: boolean };
      assert.equal(body.authorised, true);
      const authority = (url: string): string => new URL(url).host;
      assert.ok(proxy.tunnels.includes(authority(auth.issuer)), `token and discovery through the proxy: ${proxy.tunnels.join(', ')}`);
      assert.ok(proxy.tunnels.includes(authority(api.url)), `API through the proxy: ${proxy.tunnels.join(', ')}`);
      auth.resetCounts();
      const loggedOut = await c.logout();
      assert.equal(auth.counts().revocation, 1);
      assert.equal(loggedOut.accessTokenRevoked, true);
      assert.deepEqual(proxy.plain, [], 'nothing was sent to the proxy outside a tunnel');
      const seen = JSON.stringify(proxy.connectHeaders);
      for (const secret of [accessToken, auth.clients.service.clientSecret]) assert.ok(!seen.includes(secret), 'a credential reached the proxy');
    });

    it('discovery alone goes through the tunnel too', async () => {
      const c = connection({ httpProxy: proxy.url, noProxy: [] });
      const md = await c.metadata();
      assert.equal(md.tokenEndpoint, `${auth.issuer}/token`);
      assert.deepEqual(proxy.tunnels, [new URL(auth.issuer).host]);
    });

    it('NO_PROXY sends a host direct', async () => {
      const c = connection({ httpProxy: proxy.url, noProxy: ['127.0.0.1'] });
      await c.getAccessToken();
      assert.deepEqual(proxy.tunnels, []);
    });

    it('sends the proxy node\'s credentials to the proxy, and a refusing proxy fails the call clearly', async () => {
      proxy.requireAuth({ username: 'nr', password: 'proxy-pw' });
      try {
        const refused = connection({ httpProxy: proxy.url, noProxy: [] });
        await assert.rejects(refused.getAccessToken(), (err: Error) => !String(err.message).includes('proxy-pw'));
        const c = connection({ httpProxy: proxy.url, noProxy: [], username: 'nr', password: 'proxy-pw' });
        await c.getAccessToken();
        assert.ok(proxy.tunnels.length >= 2);
      } finally {
        proxy.requireAuth(undefined);
      }
    });
  });
});
