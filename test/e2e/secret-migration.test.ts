import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { openTriggerStateStore } from '../../nodes/lib/changes/state-store';
import { openFileTokenStore } from '../../nodes/lib/tokens/file-token-store';
import { GENERATED_SECRET_COPY_FILE, TOKEN_STORE_FILE, TRIGGER_STORE_FILE } from '../../nodes/node-red/instance-secret';
import type { AuthServer } from '../support/auth-server';
import { callLane, deployAndWait, sleep, startWatchedAuthServer, startWatchedRuntime, waitFor, webConnection } from '../support/e2e';
import { loginFromEditor } from '../support/editor-login';
import { dialogConfig, requestLane, tab, triggerLane } from '../support/flows';
import { startRecordsApi, type RecordsApi } from '../support/records-api';
import type { TestRuntime } from '../support/runtime';

const NEW_SECRET = 'credential-secret-set-after-a-while';

function runtimeConfig(userDir: string): Record<string, unknown> {
  return JSON.parse(fs.readFileSync(path.join(userDir, '.config.runtime.json'), 'utf8')) as Record<string, unknown>;
}

/**
 * The step every production guide asks for: a user directory that ran on Node-RED's generated secret gets
 * `credentialSecret` in its settings. Node-RED re-encrypts its own credentials and deletes `_credentialSecret`
 * (at the first deploy after the restart); the login and the trigger's memory must come along.
 */
describe('e2e: setting credentialSecret on an instance that ran on the generated one', function () {
  this.timeout(90_000);
  let auth: AuthServer;
  let api: RecordsApi;
  let runtime: TestRuntime;
  let userDir: string;
  let flows: Record<string, unknown>[];

  const created = (): string[] =>
    (api.sink as Array<{ event: string; id: string }>).filter((a) => a.event === 'created').map((a) => a.id);

  async function poll(): Promise<void> {
    const res = await callLane(runtime, '/poll');
    assert.equal(res.status, 200, res.text);
    await sleep(150); // the sink POSTs leave after the poll's messages are sent
  }

  async function restart(credentialSecret: string | null): Promise<void> {
    await runtime.stop();
    runtime = await startWatchedRuntime({ userDir, port: runtime.port, credentialSecret });
    await waitFor(() => callLane(runtime, '/records').then((r) => r.status !== 404), 10_000, 'the restarted flows');
    // Let the poll every start runs after a second go by: a poll asked for meanwhile would be skipped.
    await sleep(1200);
  }

  before(async () => {
    // Access tokens outlive no restart: after one, the request needs the rotated refresh token from the store.
    auth = await startWatchedAuthServer({ accessTokenTtlSec: 2 });
    api = await startRecordsApi(auth);
    runtime = await startWatchedRuntime({ credentialSecret: null });
    userDir = runtime.userDir;
    const conn = webConnection(auth, api, runtime);
    flows = [
      tab(),
      conn,
      ...requestLane({ path: '/records', requestNodeId: 'req1', url: '/records' }),
      ...triggerLane({ id: 'trig', path: '/poll', config: { url: '/records' } }),
    ];
    api.add('alpha', new Date(Date.now() - 60_000));
    await deployAndWait(runtime, flows);
    const page = await loginFromEditor(runtime, 'conn1', dialogConfig(conn));
    assert.equal(page.status, 200, page.html);
    assert.equal((await callLane(runtime, '/records')).status, 200);
    await sleep(1200);
    await poll(); // the first poll remembers alpha and sends nothing
    const beta = api.add('beta');
    await poll();
    assert.deepEqual(created(), [String(beta.id)]);
  });

  after(async () => {
    await runtime?.stop();
    await api?.close();
    await auth?.close();
  });

  it('ran on the generated secret, a copy of it kept owner-only beside the stores', () => {
    const generated = runtimeConfig(userDir)._credentialSecret;
    assert.equal(typeof generated, 'string');
    const copy = path.join(userDir, GENERATED_SECRET_COPY_FILE);
    assert.equal(fs.readFileSync(copy, 'utf8').trim(), generated);
    if (process.platform !== 'win32') assert.equal(fs.statSync(copy).mode & 0o777, 0o600);
  });

  it('after the restart with credentialSecret the login still authorises and no record is sent twice', async () => {
    await restart(NEW_SECRET);
    await sleep(2100); // the access token of the first run has expired
    const res = await callLane(runtime, '/records');
    assert.equal(res.status, 200, res.text);
    const gamma = api.add('gamma');
    await poll();
    await poll();
    assert.deepEqual(created().slice(1), [String(gamma.id)]);
    // Sealed with the new secret now, and the copy of the old one is gone.
    await openFileTokenStore({ filePath: path.join(userDir, TOKEN_STORE_FILE), secret: NEW_SECRET });
    await openTriggerStateStore({ filePath: path.join(userDir, TRIGGER_STORE_FILE), secret: NEW_SECRET });
    assert.equal(fs.existsSync(path.join(userDir, GENERATED_SECRET_COPY_FILE)), false);
  });

  it('after Node-RED deleted its generated secret (a deploy) and another restart, everything still holds', async () => {
    await deployAndWait(runtime, flows.map((n) => (n.id === 'req1' ? { ...n, name: 'renamed' } : n)));
    await waitFor(() => !('_credentialSecret' in runtimeConfig(userDir)), 5000, 'Node-RED deleting _credentialSecret');
    await restart(NEW_SECRET);
    await sleep(2100);
    const res = await callLane(runtime, '/records');
    assert.equal(res.status, 200, res.text);
    const before = created().length;
    const delta = api.add('delta');
    await poll();
    await poll();
    assert.deepEqual(created().slice(before), [String(delta.id)]);
    assert.equal(new Set(created()).size, created().length, `no record twice: ${JSON.stringify(created())}`);
    assert.equal(runtime.crashes.length, 0, runtime.crashes.join('\n'));
  });
});
