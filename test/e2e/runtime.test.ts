/**
 * The standalone runtime as an operator runs it: `node-red-http-oauth2 start` in a child process. It serves
 * the editor and /healthz, loads the package, and on SIGTERM closes the nodes and exits 0 with the token and
 * trigger stores on disk.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { openFileTokenStore } from '../../nodes/lib/tokens/file-token-store';
import { openTriggerStateStore } from '../../nodes/lib/changes/state-store';
import { TOKEN_STORE_FILE } from '../../nodes/node-red/token-stores';
import { TRIGGER_STORE_FILE } from '../../nodes/node-red/trigger-stores';
import { startAuthServer, loginThroughProvider, type AuthServer } from '../support/auth-server';
import { startCli, type StartedCli } from '../support/cli';
import { CookieJar, startLogin } from '../support/editor-login';
import { connectionNode, dialogConfig, tab, triggerLane } from '../support/flows';
import { startRecordsApi, type RecordsApi } from '../support/records-api';
import { tempUserDir } from '../support/runtime';

const SECRET = 'runtime-test-credential-secret';
/** The Node-RED the runtime embeds (4.1 in CI, 5 under scripts/node-red-5.sh): /healthz must report it. */
const EMBEDDED_NODE_RED = (
  JSON.parse(fs.readFileSync(require.resolve('node-red/package.json', { paths: [path.join(__dirname, '..', '..', 'runtime')] }), 'utf8')) as {
    version: string;
  }
).version;

async function deploy(cli: StartedCli, flows: unknown[]): Promise<void> {
  const res = await cli.admin('flows', {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'node-red-deployment-type': 'full', 'node-red-api-version': 'v1' },
    body: JSON.stringify(flows),
  });
  assert.ok(res.status === 204 || res.status === 200, `deploy answered ${res.status}`);
}

describe('runtime: node-red-http-oauth2 start', function () {
  this.timeout(40_000);
  let auth: AuthServer;
  let api: RecordsApi;
  let cli: StartedCli | undefined;
  let userDir: string;

  before(async () => {
    auth = await startAuthServer();
    api = await startRecordsApi(auth);
    api.add('first');
    userDir = tempUserDir('nr-oauth2-cli-');
    cli = await startCli(['--port', '0', '--user-dir', userDir, '--log-level', 'warn'], { NODE_RED_CREDENTIAL_SECRET: SECRET });
  });

  after(async () => {
    await cli?.stop('SIGKILL');
    await api?.close();
    await auth?.close();
  });

  it('serves the editor, the health endpoint and the three node types', async () => {
    assert.ok(cli);
    const editor = await fetch(cli.adminUrl);
    assert.equal(editor.status, 200);
    assert.match(editor.headers.get('content-type') ?? '', /text\/html/);
    assert.match(await editor.text(), /<html/i);

    const health = await fetch(new URL('healthz', cli.adminUrl));
    assert.equal(health.status, 200);
    const body = (await health.json()) as Record<string, unknown>;
    assert.deepEqual(Object.keys(body).sort(), ['nodeRed', 'status', 'uptimeSec']);
    assert.equal(body.status, 'ok');
    // The released version, without the "-git" Node-RED adds inside a git checkout such as this clone.
    assert.equal(body.nodeRed, EMBEDDED_NODE_RED);
    assert.equal(typeof body.uptimeSec, 'number');

    const nodes = await cli.admin('nodes', { headers: { accept: 'application/json' } });
    assert.equal(nodes.status, 200);
    const types = ((await nodes.json()) as Array<{ types: string[] }>).flatMap((set) => set.types);
    for (const type of ['oauth2-connection', 'http-oauth2-request', 'oauth2-record-change']) assert.ok(types.includes(type), type);
  });

  it('stops on SIGTERM with exit code 0, the login and the trigger state written right before it on disk', async () => {
    assert.ok(cli);
    const port = Number(new URL(cli.adminUrl).port);
    const redirectUri = new URL('oauth2-connection/callback', cli.adminUrl).href;
    auth.addRedirectUri(redirectUri);
    const conn = connectionNode(auth, {
      clientId: auth.clients.web.clientId,
      clientSecret: auth.clients.web.clientSecret,
      apiBaseUrl: api.url,
      redirectUri,
    });
    await deploy(cli, [tab(), conn, ...triggerLane({ id: 'trig', path: '/poll', config: { url: '/records' } })]);

    // The login: its callback stores the tokens; SIGTERM follows the answer at once.
    const jar = new CookieJar();
    // The secret goes with the dialog's values, as when the deploy has not started the node yet.
    const started = await startLogin(cli, 'conn1', dialogConfig(conn), jar, auth.clients.web.clientSecret);
    assert.ok(started.authorizeUrl, JSON.stringify(started));
    const callback = await loginThroughProvider(started.authorizeUrl);
    const answer = await fetch(callback, { headers: { cookie: jar.header() }, redirect: 'manual' });
    assert.equal(answer.status, 200, await answer.clone().text());

    // One poll (the first one remembers the records), then SIGTERM with nothing waited for in between. POST
    // /flows answers before the flows run: until then the lane's route is a 404.
    let polled = '';
    for (let i = 0; i < 100 && polled !== 'polled'; i += 1) {
      const poll = await fetch(`http://127.0.0.1:${port}/api/poll`);
      polled = await poll.text();
      if (poll.status === 404) await new Promise((r) => setTimeout(r, 100));
      else assert.equal(polled, 'polled');
    }
    const code = await cli.stop('SIGTERM');
    assert.equal(code, 0, `exit code ${code}; stderr: ${cli.stderr()}`);
    assert.match(cli.stdout(), /Stopped\./);

    const tokens = await openFileTokenStore({ filePath: path.join(userDir, TOKEN_STORE_FILE), secret: SECRET });
    const stored = await tokens.get('conn1');
    assert.ok(stored?.tokens.refreshToken, 'the login is on disk');
    const triggers = await openTriggerStateStore({ filePath: path.join(userDir, TRIGGER_STORE_FILE), secret: SECRET });
    const state = await triggers.get('trig');
    assert.ok(state?.initialised, 'the trigger state is on disk');
    assert.equal((fs.statSync(path.join(userDir, TOKEN_STORE_FILE)).mode & 0o777).toString(8), '600');
    cli = undefined;
  });
});
