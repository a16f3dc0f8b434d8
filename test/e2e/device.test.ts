import type { DeviceLoginView } from '../../nodes/lib/login/login-service';
import assert from 'node:assert/strict';
import { approveDeviceCode, type AuthServer } from '../support/auth-server';
import { startApiServer, type ApiServer } from '../support/api-server';
import { adminCall, callLane, caught, connectionStatus, deployAndWait, startWatchedAuthServer, startWatchedRuntime, waitFor } from '../support/e2e';
import { connectionNode, dialogConfig, requestLane, tab } from '../support/flows';
import type { TestRuntime } from '../support/runtime';

type DeviceView = DeviceLoginView;

describe('e2e: device login through the admin routes', function () {
  this.timeout(40_000);
  let auth: AuthServer;
  let api: ApiServer;
  let runtime: TestRuntime;
  let conn: Record<string, unknown>;

  const deviceConnection = (id: string): Record<string, unknown> =>
    connectionNode(auth, {
      id,
      grantType: 'device_code',
      clientId: auth.clients.device.clientId,
      authMethod: 'none',
      scopes: 'openid offline_access api:read',
      apiBaseUrl: api.url,
    });

  async function startDevice(id: string, node: Record<string, unknown>): Promise<DeviceView> {
    const res = await adminCall(runtime, `oauth2-connection/${id}/device`, { body: { config: dialogConfig(node) } });
    assert.equal(res.status, 200, res.text);
    assert.doesNotMatch(res.text, /device_?code/i, 'the device code (a credential) never reaches the editor');
    return res.body as DeviceView;
  }

  before(async () => {
    auth = await startWatchedAuthServer();
    api = await startApiServer(auth);
    runtime = await startWatchedRuntime();
    conn = deviceConnection('conn1');
    await deployAndWait(runtime, [tab(), conn, ...requestLane({ path: '/records', requestNodeId: 'req1', url: '/records' })]);
  });

  after(async () => {
    await runtime?.stop();
    await api?.close();
    await auth?.close();
  });

  it('before the login, a request fails with OAUTH2_LOGIN_REQUIRED', async () => {
    assert.equal((await connectionStatus(runtime)).state, 'logged-out');
    const err = caught(await callLane(runtime, '/records'));
    assert.equal(err.code, 'OAUTH2_LOGIN_REQUIRED');
  });

  it('approved: user code, pending, then approved and ready within the polling interval; requests work', async () => {
    auth.resetCounts();
    const started = await startDevice('conn1', conn);
    assert.equal(started.status, 'pending');
    assert.match(started.userCode, /\S{4,}/);
    assert.ok(started.verificationUri.startsWith(auth.issuer), started.verificationUri);
    assert.ok(started.intervalSec >= 1, String(started.intervalSec));
    assert.equal(auth.counts().deviceAuthorization, 1);

    const pending = await connectionStatus(runtime);
    assert.equal((pending.device as DeviceView).status, 'pending');
    assert.equal((pending.device as DeviceView).userCode, started.userCode);
    assert.equal(pending.state, 'logged-out');

    await approveDeviceCode(started.userCode, { issuer: auth.issuer });
    const approvedAt = Date.now();
    const done = await waitFor(
      async () => {
        const s = await connectionStatus(runtime);
        return (s.device as DeviceView).status === 'approved' && s.state === 'ready' ? s : undefined;
      },
      started.intervalSec * 1000 + 3000,
      'the device login to be approved',
    );
    assert.ok(Date.now() - approvedAt <= started.intervalSec * 1000 + 3000);
    assert.equal(done.hasRefreshToken, true);
    const polls = auth.counts().token['urn:ietf:params:oauth:grant-type:device_code'] ?? 0;
    assert.ok(polls >= 1 && polls <= 3, `device token polls: ${polls}`);

    api.reset();
    const res = await callLane(runtime, '/records');
    assert.equal(res.status, 200, res.text);
    assert.equal(api.requests[0]?.authorised, true);
  });

  it('denied: the status says denied and nothing is stored', async () => {
    const other = deviceConnection('conn-denied');
    const started = await startDevice('conn-denied', other);
    await approveDeviceCode(started.userCode, { issuer: auth.issuer, consent: false });
    const s = await waitFor(
      async () => {
        const st = await connectionStatus(runtime, 'conn-denied');
        return (st.device as DeviceView).status !== 'pending' ? st : undefined;
      },
      started.intervalSec * 1000 + 3000,
      'the device login to end',
    );
    assert.equal((s.device as DeviceView).status, 'denied', JSON.stringify(s.device));
    assert.equal((s.device as DeviceView).code, 'OAUTH2_ACCESS_DENIED');
    assert.equal(s.state, 'logged-out');
  });

  it('a device login for a connection set to another grant is refused with 400', async () => {
    const wrong = { ...conn, grantType: 'authorization_code' };
    const res = await adminCall(runtime, 'oauth2-connection/conn1/device', { body: { config: dialogConfig(wrong) } });
    assert.equal(res.status, 400, res.text);
    assert.equal((res.body as { error: { code: string } }).error.code, 'OAUTH2_INVALID_INPUT');
  });

  it('nothing crashed the runtime', () => {
    assert.deepEqual(runtime.crashes, []);
  });
});
