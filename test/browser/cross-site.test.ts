import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import type { Page } from 'playwright-core';
import { startApiServer, type ApiServer } from '../support/api-server';
import type { AuthServer } from '../support/auth-server';
import { startBrowser, step, type BrowserSession } from '../support/browser';
import { sleep, startWatchedAuthServer, startWatchedRuntime, waitFor } from '../support/e2e';
import { connectionNode, dialogConfig, requestLane, tab } from '../support/flows';
import { REPO_ROOT, startNodeRed } from '../support/packaging';
import { tempUserDir } from '../support/runtime';

/**
 * A web page of another origin, opened in the same browser as the editor, tries what the admin routes would let
 * it do: read a connection's status and the flows, start a device login (which sends the client secret to the
 * token endpoint), run discovery against an internal port, log the connection out, preview a trigger, press an
 * inject button, follow the editor's WebSocket. It tries with fetch (CORS), no-cors simple requests (form
 * encoded, which skip the preflight), and a real form post, from another port of the same host (same-site) and
 * from `localhost` (cross-site). Against the runtime (without and with an admin login, the page even holding an
 * admin token) and a stock Node-RED with the package (without and with a login). Nothing may be read or done;
 * the editor's own calls and non-browser clients still work.
 */

interface Target {
  /** The admin root, ending with '/'. */
  adminUrl: string;
  /** Where the flows' http-in endpoints are (ending with '/'). */
  nodeUrl: string;
  /** An admin bearer token when the target has a login. */
  token?: string;
  /** The runtime of this repository (which also guards Node-RED's own admin API), or a stock Node-RED. */
  ours: boolean;
  stop(): Promise<void>;
}

const PASSWORD = 'cross-site-admin-password';
const CONFIG = 'conn1';
const DEVICE = 'dev1';
const DEVICE_SECRET = 'device-client-secret-never-sent';

/** Bcrypt hash of a password, from Node-RED's own bcryptjs. */
function bcryptHash(password: string): string {
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- bcryptjs ships with node-red, untyped here
  return (require('bcryptjs') as { hashSync(s: string, rounds: number): string }).hashSync(password, 8);
}

async function adminToken(adminUrl: string): Promise<string> {
  const res = await fetch(new URL('auth/token', adminUrl), {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ client_id: 'node-red-admin', grant_type: 'password', scope: '*', username: 'admin', password: PASSWORD }),
  });
  assert.equal(res.status, 200, 'admin login');
  return ((await res.json()) as { access_token: string }).access_token;
}

/** A non-browser admin call (no Origin, no Sec-Fetch-Site), as curl or a script makes it. */
async function admin(target: Target, pathname: string, init: RequestInit = {}): Promise<Response> {
  const headers = new Headers(init.headers);
  if (target.token) headers.set('authorization', `Bearer ${target.token}`);
  return fetch(new URL(pathname, target.adminUrl), { ...init, headers });
}

async function startStock(login: boolean): Promise<Target> {
  const userDir = tempUserDir('nr-oauth2-stock-');
  // The package as a user's Node-RED loads a module from a folder (nodesDir), with Node-RED's own defaults.
  const settings = {
    flowFile: 'flows.json',
    credentialSecret: 'test-credential-secret',
    nodesDir: [REPO_ROOT],
    editorTheme: { tours: false },
    ...(login ? { adminAuth: { type: 'credentials', users: [{ username: 'admin', password: bcryptHash(PASSWORD), permissions: '*' }] } } : {}),
  };
  fs.writeFileSync(path.join(userDir, 'settings.js'), `module.exports = ${JSON.stringify(settings, null, 2)};\n`);
  const red = await startNodeRed(userDir);
  return { adminUrl: red.url, nodeUrl: red.url, ours: false, token: login ? await adminToken(red.url) : undefined, stop: () => red.stop() };
}

async function startOurs(login: boolean): Promise<Target> {
  const runtime = await startWatchedRuntime(login ? { adminAuth: { adminPassword: PASSWORD, readerPassword: `${PASSWORD}-reader` } } : {});
  return {
    adminUrl: runtime.adminUrl,
    nodeUrl: `${runtime.url}/api/`,
    ours: true,
    token: login ? await runtime.adminToken('admin', PASSWORD) : undefined,
    stop: () => runtime.stop(),
  };
}

/** The page of the other origin: a blank page on its own port. */
async function startAttackerSite(): Promise<{ port: number; close(): Promise<void> }> {
  const server = http.createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/html' });
    res.end('<!doctype html><title>another site</title><p>another site</p>');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    close: () => new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    }),
  };
}

/** What the page got from one attempt: 'blocked' when the browser gave it nothing, else what it could read. */
type Outcome = 'blocked' | { status: number; code?: string; text: string };

interface Attempts {
  statusRead: Outcome;
  deviceJson: Outcome;
  discoverJson: Outcome;
  previewJson: Outcome;
  deviceForm: Outcome;
  logoutForm: Outcome;
  flowsRead?: Outcome;
  injectForm?: Outcome;
  comms?: 'open' | 'refused';
}

/** Runs every attempt from `page` (on the other origin) against `adminUrl`. */
function attack(page: Page, args: { adminUrl: string; token?: string; internalUrl: string; deviceConfig: Record<string, unknown>; ours: boolean }): Promise<Attempts> {
  return page.evaluate(async ({ adminUrl, token, internalUrl, deviceConfig, ours }) => {
    const auth: Record<string, string> = token ? { authorization: `Bearer ${token}` } : {};
    const call = async (pathname: string, init: RequestInit): Promise<Outcome> => {
      try {
        const res = await fetch(new URL(pathname, adminUrl), init);
        // A no-cors answer is opaque: status 0, nothing to read.
        if (res.type === 'opaque') return 'blocked';
        const text = await res.text();
        let code: string | undefined;
        try {
          code = (JSON.parse(text) as { error?: { code?: string } }).error?.code;
        } catch {
          // not JSON
        }
        return { status: res.status, code, text };
      } catch {
        return 'blocked';
      }
    };
    const json = (body: unknown): RequestInit => ({ method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: JSON.stringify(body) });
    // application/x-www-form-urlencoded without custom headers: a simple request, no preflight; Node-RED's
    // body parser reads config[clientId]=... as an object.
    const form = (fields: Record<string, string>): RequestInit => ({
      method: 'POST',
      mode: 'no-cors',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams(fields).toString(),
    });
    const configFields: Record<string, string> = {};
    for (const [key, value] of Object.entries(deviceConfig)) if (typeof value !== 'object') configFields[`config[${key}]`] = String(value);

    const out: Attempts = {
      statusRead: await call('oauth2-connection/conn1/status', { headers: auth }),
      deviceJson: await call('oauth2-connection/dev1/device', json({ config: deviceConfig })),
      discoverJson: await call('oauth2-connection/discover', json({ issuer: internalUrl })),
      previewJson: await call('oauth2-record-change/none/preview', json({})),
      deviceForm: await call('oauth2-connection/dev1/device', form(configFields)),
      logoutForm: await call('oauth2-connection/conn1/logout', form({ x: '1' })),
    };
    if (ours) {
      out.flowsRead = await call('flows', { headers: auth });
      out.injectForm = await call('inject/inj1', form({}));
      out.comms = await new Promise<'open' | 'refused'>((resolve) => {
        const ws = new WebSocket(new URL('comms', adminUrl.replace(/^http/, 'ws')));
        ws.onopen = () => {
          ws.close();
          resolve('open');
        };
        ws.onerror = () => resolve('refused');
      });
    }
    return out;
  }, args);
}

/** Why an attempt was not refused ('' when it was): refused is the browser giving the page nothing, or the package's 403. */
function notRefused(name: string, outcome: Outcome | 'open' | 'refused' | undefined): string {
  if (outcome === 'blocked' || outcome === 'refused') return '';
  if (outcome === undefined || outcome === 'open') return `${name}: ${String(outcome ?? 'not tried')}`;
  const refused = outcome.status === 403 && outcome.code === 'OAUTH2_CROSS_SITE_REFUSED' && !outcome.text.includes(DEVICE_SECRET);
  return refused ? '' : `${name}: ${outcome.status} ${outcome.text.slice(0, 200)}`;
}

for (const [label, start] of [
  ['the runtime, no admin login', () => startOurs(false)],
  ['the runtime, admin login (the page even holds an admin token)', () => startOurs(true)],
  ["a user's own Node-RED with the package, no admin login", () => startStock(false)],
  ["a user's own Node-RED with the package, admin login (the page even holds an admin token)", () => startStock(true)],
] as const) {
  describe(`browser: pages of another origin cannot drive the admin routes: ${label} (chromium)`, function () {
    this.timeout(90_000);
    let auth: AuthServer;
    let api: ApiServer;
    /** Stands for a service on an internal port, and the device connection's provider: must hear nothing. */
    let internal: ApiServer;
    let attacker: Awaited<ReturnType<typeof startAttackerSite>>;
    let target: Target;
    let session: BrowserSession;
    let deviceNode: Record<string, unknown>;
    let expiresAt: unknown;

    const status = async (id: string): Promise<Record<string, unknown>> => {
      const res = await admin(target, `oauth2-connection/${id}/status`);
      assert.equal(res.status, 200, `status of ${id}`);
      return (await res.json()) as Record<string, unknown>;
    };

    before(async () => {
      auth = await startWatchedAuthServer();
      api = await startApiServer(auth);
      internal = await startApiServer(undefined, { checkTokens: false });
      attacker = await startAttackerSite();
      target = await start();
      deviceNode = {
        ...connectionNode(auth, { id: DEVICE, grantType: 'device_code', clientId: 'device-client', clientSecret: DEVICE_SECRET, scopes: 'api:read' }),
        issuer: internal.url,
        tokenEndpoint: `${internal.url}/token`,
        deviceAuthorizationEndpoint: `${internal.url}/device`,
      };
      const flows = [
        tab(),
        connectionNode(auth, { grantType: 'client_credentials', clientId: auth.clients.service.clientId, clientSecret: auth.clients.service.clientSecret, scopes: 'api:read', apiBaseUrl: api.url }),
        deviceNode,
        ...requestLane({ path: '/records', requestNodeId: 'req1', url: '/records' }),
        // An inject whose flow calls the internal service: pressing its button from another page would show there.
        { id: 'inj1', type: 'inject', z: 'tab1', props: [], repeat: '', once: false, wires: [['hit1']] },
        { id: 'hit1', type: 'http request', z: 'tab1', method: 'GET', ret: 'txt', url: `${internal.url}/inject-pressed`, wires: [[]] },
      ];
      const deployed = await admin(target, 'flows', {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'node-red-deployment-type': 'full', 'node-red-api-version': 'v1' },
        body: JSON.stringify(flows),
      });
      assert.ok(deployed.status === 204 || deployed.status === 200, `deploy: ${deployed.status}`);
      // One request through the connection: it then holds a token a logout would drop.
      await waitFor(async () => (await fetch(new URL('records', target.nodeUrl))).status === 200, 15_000, 'the request lane answering 200');
      expiresAt = (await status(CONFIG)).expiresAt;
      assert.equal(typeof expiresAt, 'number', 'the connection holds a token');
      internal.reset();
      session = await startBrowser();
    });

    after(async () => {
      await session?.close();
      await target?.stop();
      await attacker?.close();
      await internal?.close();
      await api?.close();
      await auth?.close();
    });

    for (const host of ['127.0.0.1', 'localhost']) {
      it(`refuses everything a page on http://${host}:<other port> tries, and nothing is read or done`, async () => {
        const { page } = session;
        internal.reset();
        const problems: string[] = [];
        const kept = async (what: string): Promise<void> => {
          if ((await status(CONFIG)).expiresAt !== expiresAt) problems.push(`${what} logged the connection out`);
        };
        await step(session, `form-post-from-${host}`, async () => {
          // A real form post: the page navigates itself to the logout route (a top-level POST navigation).
          await page.goto(`http://${host}:${attacker.port}/`);
          await page.evaluate((action) => {
            const form = document.createElement('form');
            form.method = 'POST';
            form.action = action;
            document.body.appendChild(form);
            form.submit();
          }, new URL(`oauth2-connection/${CONFIG}/logout`, target.adminUrl).href);
          await page.waitForURL(/logout/);
          await page.waitForLoadState();
        });
        await kept('the form post');
        const got = await step(session, `attack-from-${host}`, async () => {
          await page.goto(`http://${host}:${attacker.port}/`);
          return attack(page, { adminUrl: target.adminUrl, token: target.token, internalUrl: internal.url, deviceConfig: dialogConfig(deviceNode), ours: target.ours });
        });
        problems.push(...Object.entries(got).map(([name, outcome]) => notRefused(name, outcome)).filter(Boolean));
        // Requests in flight when the page gave up would land within moments: give them the time.
        await sleep(300);
        problems.push(...internal.requests.map((r) => `the internal service heard ${r.method} ${r.path}`));
        await kept('a fetch');
        if ((await status(DEVICE)).device !== undefined) problems.push('a device login started');
        assert.deepEqual(problems, [], 'nothing read or done');
      });
    }

    it("still answers the editor's own calls, scripts, and a top-level navigation from another site", async () => {
      const { page } = session;
      // The editor's origin: its page makes same-origin calls (the login screen first when there is a login).
      await page.goto(target.adminUrl);
      const own = await page.evaluate(async ({ adminUrl, token }) => {
        const auth: Record<string, string> = token ? { authorization: `Bearer ${token}` } : {};
        const a = await fetch(new URL('oauth2-connection/conn1/status', adminUrl), { headers: auth });
        const b = await fetch(new URL('oauth2-record-change/none/preview', adminUrl), { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: '{}' });
        return { status: a.status, preview: b.status };
      }, { adminUrl: target.adminUrl, token: target.token });
      assert.deepEqual(own, { status: 200, preview: 409 }, 'the routes answered the editor (409: that trigger is not deployed)');
      // A link from another site to a route that is only read (as the provider's redirect to the callback is).
      await page.goto(`http://localhost:${attacker.port}/`);
      await page.evaluate((href) => {
        window.location.href = href;
      }, new URL('oauth2-connection/callback?state=unknown', target.adminUrl).href);
      await page.waitForURL(/callback/);
      assert.match(await page.locator('body').innerText(), /OAUTH2_INVALID_STATE/, 'the callback ran (and refused the unknown state)');
      // The flows' own HTTP endpoints are the user's to open to other sites: a page of another origin still reaches them.
      const before = api.requests.length;
      await page.goto(`http://localhost:${attacker.port}/`);
      await page.evaluate((href) => fetch(href, { mode: 'no-cors' }).then(() => undefined), new URL('records', target.nodeUrl).href);
      await waitFor(() => api.requests.length > before, 10_000, "the flow's http-in endpoint answering another site's page");
      if (target.ours) {
        // The runtime's admin API sends no CORS headers, so no answer is ever readable by another origin.
        const flows = await admin(target, 'flows', { headers: { origin: target.adminUrl.replace(/\/$/, '') } });
        assert.equal(flows.status, 200);
        const cors: string[] = [];
        flows.headers.forEach((_value, name) => {
          if (name.startsWith('access-control-')) cors.push(name);
        });
        assert.deepEqual(cors, [], 'no CORS headers');
      }
      // Without a browser: the inject button as a script presses it, which the page could not.
      const pressed = await admin(target, 'inject/inj1', { method: 'POST' });
      assert.equal(pressed.status, 200);
      await waitFor(() => internal.requests.some((r) => r.path === '/inject-pressed'), 10_000, 'the inject flow calling the internal service');
    });
  });
}
