/**
 * Journey 1 driven by a test: `start --demo`, the deployed flow with its connection in "login required", Log
 * in through the demo provider's real login and consent pages (by HTTP), Deploy, and the records the demo API
 * changes arrive at its second endpoint. A second start keeps the user's flows.
 */
import assert from 'node:assert/strict';
import { DEMO_ACCOUNT } from '../../runtime/src/demo/provider';
import { loginThroughProvider } from '../support/auth-server';
import { startCli, type StartedCli } from '../support/cli';
import { CookieJar, openCallback, startLogin } from '../support/editor-login';
import { dialogConfig } from '../support/flows';
import { tempUserDir } from '../support/runtime';

type FlowNode = Record<string, unknown> & { id: string; type: string };

async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 25_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

async function flows(cli: StartedCli): Promise<FlowNode[]> {
  const res = await cli.admin('flows', { headers: { 'node-red-api-version': 'v1' } });
  assert.equal(res.status, 200);
  return (await res.json()) as FlowNode[];
}

async function deploy(cli: StartedCli, nodes: FlowNode[]): Promise<void> {
  const res = await cli.admin('flows', {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'node-red-deployment-type': 'full', 'node-red-api-version': 'v1' },
    body: JSON.stringify(nodes),
  });
  assert.ok(res.status === 204 || res.status === 200, `deploy answered ${res.status}`);
}

describe('runtime: --demo', function () {
  this.timeout(40_000);
  const userDir = tempUserDir('nr-oauth2-demo-');
  let cli: StartedCli | undefined;

  afterEach(async () => {
    await cli?.stop('SIGKILL');
    cli = undefined;
  });

  it('prints where everything is, logs in through the demo provider, and sends the changed records on', async () => {
    cli = await startCli(['--demo', '--port', '0', '--user-dir', userDir, '--log-level', 'fatal']);
    const out = cli.stdout();
    assert.ok(cli.demo, out);
    assert.match(out, /Node-RED editor: http:\/\/127\.0\.0\.1:\d+\//);
    assert.ok(out.includes(`username: ${DEMO_ACCOUNT.id}`) && out.includes(`password: ${DEMO_ACCOUNT.password}`), out);
    assert.match(out, /Press Ctrl\+C to stop/);
    assert.equal((await fetch(new URL('healthz', cli.adminUrl))).status, 200);

    // The deployed flow: trigger → change → request, and a connection waiting for its login.
    const deployed = await flows(cli);
    const types = deployed.map((n) => n.type);
    for (const type of ['oauth2-record-change', 'change', 'http-oauth2-request', 'debug', 'oauth2-connection']) assert.ok(types.includes(type), type);
    const connection = deployed.find((n) => n.type === 'oauth2-connection');
    assert.ok(connection);
    assert.equal(connection.issuer, cli.demo.issuer);
    assert.equal(connection.grantType, 'authorization_code');
    assert.equal(connection.redirectUri, new URL('oauth2-connection/callback', cli.adminUrl).href);
    assert.equal(JSON.stringify(deployed).includes('clientSecret"'), false, 'the client secret is a credential');
    const before = (await (await cli.admin(`oauth2-connection/${connection.id}/status`)).json()) as { state: string };
    assert.ok(['logged-out', 'login-required'].includes(before.state), before.state);

    // Log in: the editor's AJAX call, the provider's login and consent pages, the callback in the popup.
    const jar = new CookieJar();
    const started = await startLogin(cli, connection.id, dialogConfig(connection), jar);
    assert.ok(started.authorizeUrl, JSON.stringify(started));
    assert.ok(started.authorizeUrl.startsWith(`${cli.demo.issuer}/`));
    const callback = await loginThroughProvider(started.authorizeUrl, { username: DEMO_ACCOUNT.id, password: DEMO_ACCOUNT.password });
    const popup = await openCallback(callback, jar);
    assert.equal(popup.status, 200, popup.html);
    const after = (await (await cli.admin(`oauth2-connection/${connection.id}/status`)).json()) as { state: string };
    assert.equal(after.state, 'ready');

    // Done, Deploy: the trigger starts over with the login, and the demo API changes a record every 3 s.
    await deploy(cli, await flows(cli));
    const apiUrl = cli.demo.apiUrl;
    const received = await waitFor('records at the second endpoint', async () => {
      const body = (await (await fetch(`${apiUrl}/received`)).json()) as { count: number; items: Array<Record<string, unknown>> };
      return body.count > 0 ? body.items : undefined;
    });
    assert.equal(received[0].event, 'updated');
    assert.equal(typeof received[0].record, 'number');
    assert.equal(typeof received[0].name, 'string');

    // The user edits the flow; SIGTERM; the next start keeps the edit instead of deploying the demo again.
    const edited = (await flows(cli)).map((n) => (n.type === 'tab' ? { ...n, label: 'my edited demo' } : n));
    await deploy(cli, edited);
    assert.equal(await cli.stop('SIGTERM'), 0);

    cli = await startCli(['--demo', '--port', '0', '--user-dir', userDir, '--log-level', 'fatal']);
    assert.match(cli.stdout(), /has flows already/);
    const kept = await flows(cli);
    assert.equal(kept.find((n) => n.type === 'tab')?.label, 'my edited demo');
    assert.equal(kept.length, deployed.length);
  });
});
