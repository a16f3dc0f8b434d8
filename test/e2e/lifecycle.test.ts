import assert from 'node:assert/strict';
import * as path from 'node:path';
import { openFileTokenStore } from '../../nodes/lib/tokens/file-token-store';
import type { AuthServer } from '../support/auth-server';
import { startApiServer, type ApiServer } from '../support/api-server';
import { callLane, connectionStatus, deployAndWait, startWatchedAuthServer, startWatchedRuntime, webConnection } from '../support/e2e';
import { loginFromEditor } from '../support/editor-login';
import { dialogConfig, requestLane, tab } from '../support/flows';
import type { TestRuntime } from '../support/runtime';

const SECRET = 'lifecycle-credential-secret';

/** The ids the runtime's encrypted token store holds, read the way the runtime reads it. */
async function storedIds(runtime: TestRuntime): Promise<string[]> {
  const store = await openFileTokenStore({ filePath: path.join(runtime.userDir, '.http-oauth2-tokens.json'), secret: SECRET });
  return (await store.ids()).sort();
}

describe('e2e: a connection\'s login follows the connection through deploys', function () {
  this.timeout(60_000);
  let auth: AuthServer;
  let api: ApiServer;
  let runtime: TestRuntime;
  let conn: Record<string, unknown>;

  const flows = (opts: { disabled?: boolean; withConnection?: boolean } = {}): Record<string, unknown>[] => {
    const t = { ...tab('tab1'), disabled: opts.disabled ?? false };
    const nodes: Record<string, unknown>[] = [t, ...requestLane({ path: '/records', requestNodeId: 'req1', url: '/records' })];
    // A connection scoped to the tab: disabling the tab closes it as "removed".
    if (opts.withConnection !== false) nodes.push({ ...conn, z: 'tab1' });
    return nodes;
  };

  before(async () => {
    auth = await startWatchedAuthServer();
    api = await startApiServer(auth);
    runtime = await startWatchedRuntime({ credentialSecret: SECRET });
    conn = webConnection(auth, api, runtime);
    await deployAndWait(runtime, flows());
    const page = await loginFromEditor(runtime, 'conn1', dialogConfig(conn));
    assert.equal(page.status, 200, page.html);
    assert.equal((await callLane(runtime, '/records')).status, 200);
  });

  after(async () => {
    await runtime?.stop();
    await api?.close();
    await auth?.close();
  });

  it('disabling the flow that holds the connection keeps its login', async () => {
    await deployAndWait(runtime, flows({ disabled: true }));
    assert.deepEqual(await storedIds(runtime), ['conn1']);
    await deployAndWait(runtime, flows({ disabled: false }));
    assert.equal((await connectionStatus(runtime)).state, 'ready');
    const res = await callLane(runtime, '/records');
    assert.equal(res.status, 200, res.text);
  });

  it('deleting the connection removes its tokens from the token store', async () => {
    await deployAndWait(runtime, flows({ withConnection: false }));
    assert.deepEqual(await storedIds(runtime), []);
    assert.equal((await connectionStatus(runtime)).state, 'logged-out');
    assert.equal(runtime.crashes.length, 0, runtime.crashes.join('\n'));
  });
});
