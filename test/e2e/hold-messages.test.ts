/**
 * Messages held while the login is gone, in the embedded runtime (a child process) killed with SIGKILL: the
 * login revoked at the provider, 200 messages, a kill, a restart, a new login from the editor's route, and
 * every message reaching the API once, in order. The held file is decrypted by the test to know the messages are
 * on disk before the kill.
 */
import assert from 'node:assert/strict';
import * as path from 'node:path';
import * as fs from 'node:fs';
import { openWithAny } from '../../nodes/lib/sealed/crypto';
import { HELD_STORE_FILE, storeKeys } from '../../nodes/node-red/instance-secret';
import { startApiServer, type ApiServer } from '../support/api-server';
import type { AuthServer } from '../support/auth-server';
import { loginFromEditor } from '../support/editor-login';
import { connectionStatus, deployAndWait, sleep, startWatchedAuthServer, startWatchedRuntime, waitFor, webConnection } from '../support/e2e';
import { dialogConfig, tab } from '../support/flows';
import { watchText, watchUserDir } from '../support/leaks';
import { tempUserDir, type TestRuntime } from '../support/runtime';

describe('e2e: held messages survive a killed runtime and go out after a new login', function () {
  this.timeout(90_000);
  let auth: AuthServer;
  let api: ApiServer;
  let runtime: TestRuntime;
  let userDir: string;
  let conn: Record<string, unknown>;
  const refreshTokens: string[] = [];
  const accessTokens: string[] = [];

  // http in answers at once and sends the message on to the request node, which holds it while no login works.
  const flows = (): Record<string, unknown>[] => [
    tab(),
    conn,
    { id: 'feed', type: 'http in', z: 'tab1', url: '/feed', method: 'get', wires: [['ack', 'body']] },
    { id: 'ack', type: 'http response', z: 'tab1', statusCode: '202', headers: {}, wires: [] },
    {
      id: 'body',
      type: 'change',
      z: 'tab1',
      rules: [{ t: 'set', p: 'payload', pt: 'msg', to: '{"n": $number(req.query.n)}', tot: 'jsonata' }],
      wires: [['req']],
    },
    {
      id: 'req',
      type: 'http-oauth2-request',
      z: 'tab1',
      connection: 'conn1',
      method: 'POST',
      url: '/echo',
      ret: 'obj',
      paytoqs: 'ignore',
      headers: [],
      retryStatuses: '429,502,503,504',
      maxAttempts: 3,
      maxRetryAfterSec: 5,
      followRedirects: true,
      maxRedirects: 5,
      non2xxAsOutput: false,
      holdWhileLoginNeeded: true,
      holdMaxMessages: 1000,
      holdMaxHours: 24,
      wires: [[]],
    },
    // What Catch gets, in the runtime's log (a test failure shows it).
    { id: 'caught', type: 'catch', z: 'tab1', scope: ['req'], uncaught: false, wires: [['log']] },
    { id: 'log', type: 'debug', z: 'tab1', active: true, tosidebar: false, console: true, complete: 'error', wires: [] },
  ];

  /** The numbers the API received with a valid token, in order. */
  const received = (): number[] => api.requests.filter((r) => r.path === '/echo' && r.authorised).map((r) => (JSON.parse(r.body) as { n: number }).n);

  /**
   * The messages of node `req` in the held file, read and decrypted without opening the store (opening it would
   * clear the runtime's temp files: one process owns the file).
   */
  async function heldOnDisk(): Promise<number> {
    const keys = await storeKeys(userDir, () => ({ credentialSecret: 'test-credential-secret' }));
    let blob: Buffer;
    try {
      blob = await fs.promises.readFile(path.join(userDir, HELD_STORE_FILE));
    } catch {
      return 0;
    }
    const doc = openWithAny(blob, [keys.secret]).value as { nodes: Record<string, Record<string, unknown>> };
    return Object.keys(doc.nodes.req ?? {}).length;
  }

  before(async () => {
    auth = await startWatchedAuthServer({ accessTokenTtlSec: 3600, rotateRefreshToken: true });
    auth.provider.on('refresh_token.saved', (model: unknown) => refreshTokens.push((model as { jti: string }).jti));
    auth.provider.on('access_token.saved', (model: unknown) => accessTokens.push((model as { jti: string }).jti));
    api = await startApiServer(auth);
    userDir = tempUserDir();
    watchUserDir(userDir);
    runtime = await startWatchedRuntime({ userDir });
    conn = webConnection(auth, api, runtime);
  });
  after(async () => {
    await runtime?.stop();
    await api?.close();
    await auth?.close();
  });

  it('login revoked, 200 messages held, SIGKILL, restart, a new login: all 200 sent once, in order', async () => {
    await deployAndWait(runtime, flows());
    const page = await loginFromEditor(runtime, 'conn1', dialogConfig(conn), auth.clients.web.clientSecret);
    watchText(page.html);
    assert.equal(page.status, 200, page.html);
    await waitFor(async () => (await connectionStatus(runtime)).state === 'ready', 10_000, 'logged in');

    // The user removes the app's access at the provider: its refresh and access tokens are gone.
    for (const jti of refreshTokens) {
      const token = (await auth.provider.RefreshToken.find(jti)) as { destroy(): Promise<void> } | undefined;
      await token?.destroy();
    }
    for (const jti of accessTokens) {
      const token = (await auth.provider.AccessToken.find(jti)) as { destroy(): Promise<void> } | undefined;
      await token?.destroy();
    }

    for (let n = 0; n < 200; n += 1) {
      const res = await fetch(new URL(`api/feed?n=${n}`, runtime.url + '/'));
      assert.equal(res.status, 202);
    }
    let held = 0;
    await waitFor(async () => (held = await heldOnDisk()) === 200, 20_000, '200 held on disk').catch((err: Error) => {
      throw new Error(`${err.message}: ${held} held; caught: ${JSON.stringify(runtime.logs.filter((l) => l.level <= 40 && l.node !== undefined).slice(-5))}`);
    });
    assert.deepEqual(received(), [], 'the API got no message with a valid token');
    assert.equal((await connectionStatus(runtime)).state, 'login-required');

    await runtime.kill();
    runtime = await startWatchedRuntime({ userDir, port: runtime.port });
    await sleep(1500);
    assert.deepEqual(received(), [], 'nothing sent before the new login');
    assert.equal(await heldOnDisk(), 200);

    const again = await loginFromEditor(runtime, 'conn1', dialogConfig(conn), auth.clients.web.clientSecret);
    watchText(again.html);
    assert.equal(again.status, 200, again.html);
    await waitFor(() => received().length >= 200, 30_000, `200 received (got ${received().length})`);
    await sleep(500);
    assert.deepEqual(received(), Array.from({ length: 200 }, (_, i) => i), 'each once, in arrival order');
    await waitFor(async () => (await heldOnDisk()) === 0, 5000, 'nothing left held');
    assert.equal(runtime.crashes.length, 0, runtime.crashes.join('\n'));
  });
});
