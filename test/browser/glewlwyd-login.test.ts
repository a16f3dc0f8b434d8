import assert from 'node:assert/strict';
import type { Page } from 'playwright-core';
import { startApiServer, type ApiServer } from '../support/api-server';
import { openEditor, startBrowser, step, trayText, type BrowserSession } from '../support/browser';
import { callLane, connectionStatus, deployAndWait, startWatchedRuntime } from '../support/e2e';
import { connectionNode, requestLane, tab } from '../support/flows';
import { startGlewlwyd, type Glewlwyd } from '../support/glewlwyd';
import { watchText } from '../support/leaks';
import type { TestRuntime } from '../support/runtime';
import { closeConnectionDialog, openConnectionDialog } from './dialogs';
import { needsSystemPackage } from '../support/system-packages';

/**
 * The editor login (authorization code + PKCE) through a server this project did not write: the connection's
 * dialog, Log in, and in the popup Glewlwyd's own web UI (served from the package's webapp, copied with cp -rL):
 * its login form, its grant page (tick the scopes, Grant access, Continue), then the runtime's callback.
 */
describe('browser: the editor login through Glewlwyd (chromium)', function () {
  needsSystemPackage(this, 'chromium');
  needsSystemPackage(this, 'glewlwyd');
  this.timeout(60_000);
  let gw: Glewlwyd;
  let api: ApiServer;
  let runtime: TestRuntime;
  let session: BrowserSession;
  let page: Page;

  before(async () => {
    gw = await startGlewlwyd();
    api = await startApiServer(gw);
    runtime = await startWatchedRuntime();
    const redirectUri = new URL('oauth2-connection/callback', runtime.adminUrl).href;
    await gw.addRedirectUri(redirectUri);
    const conn = connectionNode(gw, {
      clientId: gw.clients.web.clientId,
      clientSecret: gw.clients.web.clientSecret,
      scopes: 'openid api:read',
      apiBaseUrl: api.url,
      redirectUri,
      issParameterSupported: false,
    });
    Object.assign(conn, {
      authorizationEndpoint: gw.endpoints.authorization,
      tokenEndpoint: gw.endpoints.token,
      revocationEndpoint: gw.endpoints.revocation,
      deviceAuthorizationEndpoint: gw.endpoints.deviceAuthorization,
    });
    await deployAndWait(runtime, [tab(), conn, ...requestLane({ path: '/records', requestNodeId: 'req1', url: '/records' })]);
    session = await startBrowser();
    page = session.page;
  });

  after(async () => {
    await session?.close();
    await runtime?.stop();
    await api?.close();
    await gw?.close();
  });

  it("Log in opens Glewlwyd's login and grant pages in the popup; the dialog then shows who, and requests are authorised", async () => {
    await step(session, 'open-editor', () => openEditor(page, runtime.adminUrl));
    await step(session, 'login', async () => {
      await openConnectionDialog(page, 'conn1');
      assert.match(await page.locator('#node-config-oauth2-state').innerText(), /not logged in/i);
      const popupPromise = session.context.waitForEvent('page');
      await page.click('#node-config-oauth2-login');
      const popup = await popupPromise;
      const closed = popup.waitForEvent('close', { timeout: 30_000 });
      await popup.locator('#username').waitFor({ timeout: 15_000 });
      assert.match(await popup.title(), /Glewlwyd/);
      await popup.fill('#username', gw.account.username);
      await popup.fill('#password', gw.account.password);
      await popup.click('#loginbut');
      // The grant page: every scope the client asks for that is not granted yet has an unticked box.
      await popup.locator('button', { hasText: 'Grant access' }).waitFor({ timeout: 15_000 });
      for (const box of await popup.locator('input[type=checkbox][id^="grant-"]').all()) {
        if (!(await box.isChecked())) await box.check();
      }
      await session.shot('glewlwyd-grant', popup);
      await popup.click('button:has-text("Grant access")');
      await popup.locator('button', { hasText: 'Continue' }).waitFor();
      await popup.click('button:has-text("Continue")', { noWaitAfter: true });
      await closed;
      await page.locator('#node-config-oauth2-details li', { hasText: 'Logged in as' }).waitFor({ timeout: 15_000 });
      const text = (await page.locator('#node-config-oauth2-details').innerText()).replace(/\s+/g, ' ');
      watchText(await trayText(page));
      assert.match(text, /Granted scopes: [^.]*api:read/, text);
      await closeConnectionDialog(page, 'cancel');
    });
    assert.equal((await connectionStatus(runtime)).state, 'ready');
    api.reset();
    const res = await callLane(runtime, '/records');
    assert.equal(res.status, 200, res.text);
    assert.equal(api.requests.at(-1)?.authorised, true, 'Glewlwyd says the token is active');
    assert.deepEqual(runtime.crashes, []);
  });
});
