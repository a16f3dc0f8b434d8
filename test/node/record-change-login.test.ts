/**
 * A record trigger on a connection that has never been logged in, as a newcomer's demo is before its first
 * Log in: a normal state, not a failure of each poll. The log and a Catch node hear it once, not at every poll,
 * and the status is the same red "login required" as the request node's, translated, with no raw code.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { startAuthServer, type AuthServer } from '../support/auth-server';
import { startRecordsApi, type RecordsApi } from '../support/records-api';
import {
  collectUnhandledRejections,
  connectionDef,
  currentStatusSpy,
  errorLog,
  helper,
  helperNode,
  loadCatalogs,
  nodeModules,
  recordChangeModule,
  recordChangeNode,
  requestNode,
  shown,
  statusLog,
  tab,
  useTempUserDir,
  type RuntimeNode,
} from './support';
import type { RecordPoller } from '../../nodes/lib/changes/poller';

describe('node: oauth2-record-change on a connection not logged in yet', function () {
  this.timeout(30_000);
  let auth: AuthServer;
  let api: RecordsApi;
  let userDir: string;
  const assertNoUnhandledRejections = collectUnhandledRejections('the never-logged-in trigger tests');

  before(async () => {
    await loadCatalogs();
    auth = await startAuthServer();
    api = await startRecordsApi(auth);
  });
  after(async () => {
    await Promise.all([api?.close(), auth?.close()]);
    assertNoUnhandledRejections();
  });
  beforeEach(() => {
    userDir = useTempUserDir();
  });
  afterEach(async () => {
    await helper.unload();
    fs.rmSync(userDir, { recursive: true, force: true });
  });

  it('says "login required" once in the log and to Catch over several polls, red like the request node, no code in the status', async () => {
    const conn = connectionDef(auth, {
      grantType: 'authorization_code',
      clientId: auth.clients.web.clientId,
      clientSecret: auth.clients.web.clientSecret,
      scopes: 'openid offline_access api:read',
      apiBaseUrl: api.url,
    });
    await helper.load(
      [...nodeModules, recordChangeModule],
      [tab(), conn.node, recordChangeNode('trigger'), requestNode('request', { url: '/records' }), helperNode()],
      conn.credentials,
    );
    const trigger = helper.getNode('trigger') as RuntimeNode;
    const request = helper.getNode('request') as RuntimeNode;
    const poller = trigger.poller as RecordPoller;
    // Scheduled polls (not started by a message), as the interval makes them.
    for (let i = 0; i < 4; i += 1) {
      const outcome = await poller.pollNow();
      assert.ok('error' in outcome && outcome.error.code === 'OAUTH2_LOGIN_REQUIRED', JSON.stringify(outcome));
    }
    const errors = errorLog(trigger);
    assert.equal(errors.length, 1, `said ${errors.length} times over 4 polls`);
    assert.match(String((errors[0].err as Error).message ?? errors[0].err), /log in/i);
    const last = statusLog(trigger, currentStatusSpy()).at(-1);
    assert.deepEqual({ fill: last?.fill, shape: last?.shape }, { fill: 'red', shape: 'ring' });
    assert.equal(last?.text, 'oauth2-record-change.status.loginRequired', 'the catalog key, which the editor says in its language');
    assert.equal(shown(last?.text), 'login required');
    assert.doesNotMatch(statusLog(trigger, currentStatusSpy()).map((s) => String(s.text)).join('\n'), /OAUTH2_/);

    // The request node shows the same words for the same state when a message meets it.
    request.receive({ payload: '' });
    const deadline = Date.now() + 5_000;
    const loginStatus = (s: Record<string, unknown>): boolean => String(s.text) === 'http-oauth2-request.status.loginRequired';
    while (!statusLog(request, currentStatusSpy()).some(loginStatus) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
    }
    // A catalog key the editor translates (the request node's statuses for connection states are keys).
    const requestStatus = statusLog(request, currentStatusSpy()).filter(loginStatus).at(-1);
    assert.deepEqual({ fill: requestStatus?.fill, shape: requestStatus?.shape }, { fill: 'red', shape: 'ring' });
    assert.doesNotMatch(statusLog(request, currentStatusSpy()).map((s) => String(s.text)).join('\n'), /OAUTH2_/);
  });
});
