/**
 * The first minute of the demo, walked in a real browser as the README tells a newcomer: `start --demo`, the
 * editor opens on the Debug sidebar with the start comment on the canvas, double-click the trigger, the pencil
 * by its Connection, Log in through the demo provider's own pages, Update, Done, Deploy, and the changes show
 * in the Debug sidebar. BROWSER_SHOTS=docs/screenshots refreshes the README's pictures of it.
 */
import assert from 'node:assert/strict';
import type { Page } from 'playwright-core';
import { DEMO_ACCOUNT } from '../../runtime/src/demo/provider';
import { DEMO_IDS } from '../../runtime/src/demo/flow';
import { deployWithButton, dismissNotifications, openEditor, providerPages, startBrowser, step, type BrowserSession } from '../support/browser';
import { startCli, type StartedCli } from '../support/cli';
import { tempUserDir } from '../support/runtime';
import { needsSystemPackage } from '../support/system-packages';
import { waitConnectionDialog } from './dialogs';

describe('browser: the demo, first screen and first minute (chromium)', function () {
  needsSystemPackage(this, 'chromium');
  this.timeout(90_000);
  let cli: StartedCli | undefined;
  let session: BrowserSession;
  let page: Page;

  before(async () => {
    cli = await startCli(['--demo', '--port', '0', '--user-dir', tempUserDir('nr-oauth2-demo-browser-'), '--log-level', 'warn']);
    session = await startBrowser();
    page = session.page;
  });

  after(async () => {
    await session?.close();
    await cli?.stop('SIGKILL');
  });

  it('opens on the Debug sidebar, logs in from the trigger\'s pencil, and the changes arrive in the Debug sidebar', async () => {
    assert.ok(cli);
    const url = cli.adminUrl;
    await step(session, 'first-screen', async () => {
      await openEditor(page, url);
      await page.locator('#red-ui-sidebar-content .red-ui-debug-content-list').waitFor({ state: 'visible' });
      const active = await page.locator('#red-ui-sidebar .red-ui-tabs li.active').first().innerText();
      assert.match(active, /debug/i, `the sidebar opened on "${active}"`);
      const comment = (await page.locator('#red-ui-workspace-chart [id="demo0000note0001"]').textContent()) ?? '';
      assert.match(comment, /double-click "demo records changed"/, comment);
      // Nothing is cut at the canvas's left edge.
      const box = await page.locator('#red-ui-workspace-chart [id="demo0000note0001"]').boundingBox();
      const chart = await page.locator('#red-ui-workspace-chart').boundingBox();
      assert.ok(box && chart && box.x >= chart.x, `the start comment begins at ${box?.x}, left of the canvas at ${chart?.x}`);
      // Before the first login the trigger says so in words, in red, as every node on the connection does.
      const status = page.locator(`[id="${DEMO_IDS.trigger}"] .red-ui-flow-node-status-label`);
      await status.filter({ hasText: 'login required' }).waitFor({ timeout: 15_000 });
      assert.doesNotMatch((await status.textContent()) ?? '', /OAUTH2_/);
      await session.shot('demo-first-screen');
    });

    await step(session, 'login', async () => {
      await dismissNotifications(page);
      await page.locator(`[id="${DEMO_IDS.trigger}"] .red-ui-flow-node`).dblclick();
      await page.locator('#node-input-connection').waitFor({ state: 'attached' });
      assert.match(await page.locator('#node-input-connection option:checked').innerText(), /Demo provider/);
      await page.click('#node-input-btn-connection-edit');
      await waitConnectionDialog(page);
      assert.match(await page.locator('#node-config-oauth2-state').innerText(), /not logged in|login required/i);
      const popupPromise = session.context.waitForEvent('page');
      await page.click('#node-config-oauth2-login');
      const popup = await popupPromise;
      const closed = popup.waitForEvent('close', { timeout: 30_000 }).catch(() => undefined);
      assert.deepEqual(await providerPages(popup, DEMO_ACCOUNT), ['login-form', 'consent-form']);
      await closed;
      await page.locator('#node-config-oauth2-details li', { hasText: 'Logged in as' }).waitFor({ timeout: 15_000 });
      // Opened from the trigger, the connection's button says Update (the README and the comment say so).
      assert.equal((await page.locator('#node-config-dialog-ok').innerText()).trim(), 'Update');
      await page.click('#node-config-dialog-ok');
      await page.locator('#node-config-oauth2-login').waitFor({ state: 'detached' });
      assert.equal((await page.locator('#node-dialog-ok').innerText()).trim(), 'Done');
      await page.click('#node-dialog-ok');
      await page.locator('#node-input-connection').waitFor({ state: 'detached' });
    });

    await step(session, 'first-minute', async () => {
      const deployable = await page.evaluate(() => !document.querySelector('#red-ui-header-button-deploy')?.classList.contains('disabled'));
      if (deployable) await deployWithButton(page);
      // The demo API changes a record every 3 s and the trigger polls every 5 s: within seconds of the login.
      await page.locator('.red-ui-debug-msg', { hasText: 'updated' }).first().waitFor({ timeout: 30_000 });
      await page.locator(`[id="${DEMO_IDS.trigger}"] .red-ui-flow-node-status-label`).filter({ hasText: /updated/ }).waitFor({ timeout: 15_000 });
      await session.shot('demo-first-minute');
    });
  });
});
