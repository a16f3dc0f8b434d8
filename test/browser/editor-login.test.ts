import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Page } from 'playwright-core';
import { startApiServer, type ApiServer } from '../support/api-server';
import type { AuthServer } from '../support/auth-server';
import {
  closeTrays,
  deployWithButton,
  dismissNotifications,
  importThroughDialog,
  openEditor,
  providerPages,
  startBrowser,
  step,
  trayText,
  type BrowserSession,
  type EditorGlobal,
} from '../support/browser';
import { startWatchedAuthServer, startWatchedRuntime, webConnection } from '../support/e2e';
import { watchText } from '../support/leaks';
import { startRecordsApi, type RecordsApi } from '../support/records-api';
import type { TestRuntime } from '../support/runtime';
import {
  checkDialogs,
  closeConnectionDialog,
  closeNodeDialog,
  helpHeadings,
  openConnectionDialog as openDialogOf,
  openNodeDialog,
  sidebarHelp,
  waitConnectionDialog,
  type PackageNodes,
} from './dialogs';
import { needsSystemPackage } from '../support/system-packages';

/**
 * Journeys 1 and 2 in a real editor and a real browser: import a flow through the Import dialog, log in from
 * the connection's dialog through the provider's own login and consent pages in the popup, deploy with the
 * Deploy button, press the inject button and read the API's answer in the debug sidebar; the record-change
 * node's "Preview next poll"; log out; a wrong client secret; the connection opened from the flow and
 * discovery; keyboard access; help in the sidebar; every dialog's layout and screenshots, in English and in
 * German. The tests run in order on one editor, as one user session would (one runtime, one chromium).
 */
describe('browser: the editor login journey (chromium)', function () {
  needsSystemPackage(this, 'chromium');
  this.timeout(60_000);
  let auth: AuthServer;
  let api: ApiServer;
  let records: RecordsApi;
  let runtime: TestRuntime;
  let session: BrowserSession;
  let page: Page;
  /** The access token the API received for the inject's request (for the revocation check). */
  let apiToken = '';
  /** The example's connection id (kept on import: the workspace is empty). */
  let CONN = '';
  /** A record-change trigger added to the example's flow, watching the records API through the connection. */
  const TRIGGER = 'b5-record-change';
  let nodes: PackageNodes;

  before(async () => {
    auth = await startWatchedAuthServer();
    api = await startApiServer(auth);
    records = await startRecordsApi(auth);
    records.fill(3, new Date(Date.now() - 60_000));
    runtime = await startWatchedRuntime();
    CONN = exampleNode('oauth2-connection');
    nodes = { connection: CONN, request: exampleNode('http-oauth2-request'), recordChange: TRIGGER };
    session = await startBrowser();
    page = session.page;
  });

  afterEach(async () => {
    if (page) await closeTrays(page);
  });

  after(async () => {
    await session?.close();
    await runtime?.stop();
    await records?.close();
    await api?.close();
    await auth?.close();
  });

  /**
   * The package's example "Log in from the editor - call an API" (inject -> request -> debug, a catch), with
   * its connection pointed at the test provider and API (what the user would type in the Provider and API
   * tabs) and no secret: the user types it in the dialog, and an exported flow carries none. A record-change
   * trigger on the records API (an allowed origin of the connection) joins it, polling once a day: its first
   * poll remembers the list after the deploy, and the test's previews are the only reads after that.
   */
  function exampleFlow(): Record<string, unknown>[] {
    const file = path.join(__dirname, '../../examples/Log in from the editor - call an API.json');
    const flow = JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>[];
    const conn = webConnection(auth, api, runtime, CONN);
    delete conn.credentials;
    const { id: _id, name: _name, ...settings } = conn;
    const mapped = flow.map((n) => {
      if (n.type === 'oauth2-connection') return { ...n, ...settings, allowedOrigins: records.url, id: CONN };
      if (n.type === 'http-oauth2-request') return { ...n, url: '/records' };
      return n;
    });
    const z = mapped.find((n) => n.type === 'http-oauth2-request')?.z;
    // The trigger as the package's example "Record changed - send it to another API" has it.
    const example = path.join(__dirname, '../../examples/Record changed - send it to another API.json');
    const trigger = (JSON.parse(fs.readFileSync(example, 'utf8')) as Record<string, unknown>[]).find((n) => n.type === 'oauth2-record-change');
    assert.ok(trigger, 'the example has a record-change node');
    mapped.push({
      ...trigger, id: TRIGGER, z, name: 'Records changed', connection: CONN, url: `${records.url}/records`,
      interval: 1, intervalUnit: 'd', x: 160, y: 300, wires: [[]],
    });
    return mapped;
  }

  /** The example's nodes by type (ids as in the example file). */
  function exampleNode(type: string): string {
    const file = path.join(__dirname, '../../examples/Log in from the editor - call an API.json');
    const node = (JSON.parse(fs.readFileSync(file, 'utf8')) as { id: string; type: string }[]).find((n) => n.type === type);
    if (!node) throw new Error(`the example has no ${type} node`);
    return node.id;
  }

  const openConnectionDialog = (): Promise<void> => openDialogOf(page, CONN);

  async function openClientTab(): Promise<void> {
    await page.click('.red-ui-tabs li a:has-text("Client")');
    await page.locator('#node-config-input-clientSecret').waitFor({ state: 'visible' });
  }

  /** Runs `press` (a click or a key) and returns the login popup it opens. */
  async function popupFrom(press: () => Promise<void>): Promise<Page> {
    const popupPromise = session.context.waitForEvent('page');
    await press();
    return popupPromise;
  }

  const pressLogIn = (): Promise<Page> => popupFrom(() => page.click('#node-config-oauth2-login'));

  /** The popup's whole login (provider pages, then our callback closing it); the dialog then shows who. */
  async function completeLogin(popup: Page): Promise<string[]> {
    const closed = popup.isClosed() ? Promise.resolve() : popup.waitForEvent('close', { timeout: 30_000 }).then(() => undefined);
    const pages = await providerPages(popup, auth.account);
    await closed;
    await page.locator('#node-config-oauth2-details li', { hasText: 'Logged in as' }).waitFor({ timeout: 15_000 });
    return pages;
  }

  it('imports a flow, logs in through the provider in the popup, deploys, and the inject shows the API answer in debug', async () => {
    await step(session, 'open-editor', () => openEditor(page, runtime.adminUrl));

    await step(session, 'import', async () => {
      await importThroughDialog(page, exampleFlow());
      await page.waitForFunction((ids) => {
        const { RED } = window as unknown as EditorGlobal;
        return ids.every((id) => RED.nodes.node(id));
      }, [CONN, exampleNode('http-oauth2-request'), exampleNode('inject'), TRIGGER]);
      // The flow came with its own tab: switch to it, as the user would, to see its nodes.
      await page.click('#red-ui-workspace-tabs .red-ui-tab:has-text("Log in from the editor") a');
      await page.locator(`#red-ui-workspace-chart [id="${TRIGGER}"]`).waitFor({ state: 'visible' });
    });

    await step(session, 'login', async () => {
      await openConnectionDialog();
      assert.match(await page.locator('#node-config-oauth2-state').innerText(), /not logged in/i);
      await openClientTab();
      await page.fill('#node-config-input-clientSecret', auth.clients.web.clientSecret);
      const popup = await pressLogIn();
      const pages = await completeLogin(popup);
      assert.deepEqual(pages, ['login-form', 'consent-form'], 'the provider showed its login and consent pages');
      // The callback page told the dialog and closed itself.
      const text = (await page.locator('#node-config-oauth2-details').innerText()).replace(/\s+/g, ' ');
      watchText(await trayText(page)); // what the dialog shows is output too: the leak scan searches it
      assert.match(text, new RegExp(`Logged in as (${auth.account.id}|${auth.account.email})`), text);
      assert.match(text, /Granted scopes: [^.]*api:read/, text);
      assert.match(text, /Access token expires at .+ \(in \d+ min\)/, text);
      assert.match(await page.locator('#node-config-oauth2-state').innerText(), /^Logged in$/);
      await session.shot('connection-logged-in');
      await closeConnectionDialog(page, 'ok');
    });

    await step(session, 'deploy', () => deployWithButton(page));

    await step(session, 'inject', async () => {
      await page.click('a.red-ui-tab-link-button[href="#debug"]');
      await page.locator('#red-ui-sidebar-content .red-ui-debug-content-list').waitFor({ state: 'visible' });
      await dismissNotifications(page);
      await page.locator(`[id="${exampleNode('inject')}"] .red-ui-flow-node-button`).click();
      const msg = page.locator('.red-ui-debug-msg', { hasText: 'API answer' }).last();
      await msg.waitFor({ timeout: 15_000 });
      const text = (await msg.innerText()).replace(/\s+/g, ' ');
      watchText(await page.locator('#red-ui-sidebar-content').innerText());
      assert.match(text, /array\[2\]/, text);
      await session.shot('debug-answer');
    });

    const seen = api.requests.filter((r) => r.path === '/records');
    assert.equal(seen.length, 1, 'one request reached the API');
    assert.ok(seen[0].authorised, 'with a token the provider accepts');
    apiToken = seen[0].authorization?.slice('Bearer '.length) ?? '';
    assert.ok(apiToken);
    assert.deepEqual(runtime.crashes, []);
    assert.deepEqual(session.pageErrors, [], 'no uncaught errors in the editor page');
  });

  it('"Preview next poll" in the record-change dialog lists what the next poll would send, and what a first poll does', async () => {
    assert.ok(apiToken, 'needs the login of the first test');
    const summary = page.locator('#node-input-oauth2-rc-preview-summary');
    const rows = page.locator('#node-input-oauth2-rc-preview-table tbody tr');
    /** Presses the button and waits for its answer (the button is disabled while the API is read). */
    async function preview(): Promise<string> {
      const before = records.listRequests.length;
      await page.click('#node-input-oauth2-rc-preview');
      await page.waitForFunction(() => {
        const text = document.querySelector('#node-input-oauth2-rc-preview-summary')?.textContent ?? '';
        return text.trim() !== '' && !/Reading the list/.test(text) && !document.querySelector<HTMLButtonElement>('#node-input-oauth2-rc-preview')?.disabled;
      });
      assert.equal(records.listRequests.length, before + 1, 'the preview read the real list once');
      // The answer is where the user looks: scrolled into the dialog's view, not below its fold.
      const inView = await page.evaluate(() => {
        const trays = document.querySelectorAll('.red-ui-tray');
        const tray = trays[trays.length - 1];
        const shown = document.querySelector('#node-input-oauth2-rc-preview-summary')?.getBoundingClientRect();
        const top = tray?.querySelector('.red-ui-tray-body')?.getBoundingClientRect().top ?? 0;
        const bottom = tray?.querySelector('.red-ui-tray-footer')?.getBoundingClientRect().top ?? window.innerHeight;
        return shown ? `${Math.round(shown.top)}..${Math.round(shown.bottom)} in ${Math.round(top)}..${Math.round(bottom)}: ${shown.top >= top && shown.bottom <= bottom}` : 'no summary';
      });
      assert.match(inView, /true$/, `the preview's answer is in view (${inView})`);
      return (await summary.innerText()).trim();
    }
    await step(session, 'preview', async () => {
      // The deploy's first poll remembered the list: the node's status says so under it in the flow.
      const status = page.locator(`[id="${TRIGGER}"] .red-ui-flow-node-status-label`);
      await page.waitForFunction((id) => /remembered 3 records/.test(document.querySelector(`[id="${id}"] .red-ui-flow-node-status-label`)?.textContent ?? ''), TRIGGER, { timeout: 15_000 });
      assert.match(await status.textContent() ?? '', /remembered 3 records/);

      // Opened from the flow, as a user does: double-click the node.
      await dismissNotifications(page);
      await page.locator(`[id="${TRIGGER}"] .red-ui-flow-node`).dblclick();
      await page.locator('#node-input-oauth2-rc-preview').waitFor({ state: 'visible' });
      assert.equal(await preview(), 'Nothing would be sent: no record was created or changed since the last poll.');
      assert.equal(await rows.count(), 0);

      // Two changes at the API: one record created, one updated.
      const created = records.add('created while the editor was open');
      const updated = records.update(2, { name: 'renamed' }, new Date(Date.now() + 2000));
      assert.equal(await preview(), '1 created, 1 updated would be sent.');
      const table = await rows.evaluateAll((trs) => trs.map((tr) => Array.from(tr.querySelectorAll('td')).map((td) => (td.textContent ?? '').trim())));
      assert.equal(table.length, 2, JSON.stringify(table));
      const byId = new Map(table.map((cells) => [cells[1], cells]));
      assert.equal(byId.get(String(created.id))?.[0], 'created', JSON.stringify(table));
      assert.match(byId.get(String(created.id))?.[3] ?? '', /created while the editor was open/);
      assert.equal(byId.get('2')?.[0], 'updated', JSON.stringify(table));
      // The new version, shown as a date (the update's second).
      assert.ok((byId.get('2')?.[2] ?? '').startsWith(updated.updated_at.replace(/Z$/, '')), JSON.stringify(table));
      assert.match(byId.get('2')?.[3] ?? '', /renamed/);
      assert.match(await page.locator('#node-input-oauth2-rc-preview-stats').innerText(), /Records in the list: 4/);
      await session.shot('preview-changes');
      // A preview neither sends nor remembers: asked again, it lists the same two changes.
      assert.equal(await preview(), '1 created, 1 updated would be sent.');

      // "Forget remembered records" (confirmed in the browser's dialog): the next poll is a first poll again.
      page.once('dialog', (d) => void d.accept());
      await page.click('#node-input-oauth2-rc-reset');
      await page.waitForFunction(() => /forgot|cleared|Forgot/i.test(document.querySelector('#node-input-oauth2-rc-preview-summary')?.textContent ?? ''));
      assert.equal(await preview(), 'First poll: 4 records would be remembered, nothing sent.');
      assert.equal(await rows.count(), 0);
      await session.shot('preview-first-poll');
      await closeNodeDialog(page);
    });
    assert.deepEqual(session.pageErrors, []);
  });

  it('Log out in the dialog revokes the tokens at the provider and shows logged out', async () => {
    assert.ok(apiToken, 'needs the login of the first test');
    await step(session, 'logout', async () => {
      await openConnectionDialog();
      await page.locator('#node-config-oauth2-details li', { hasText: 'Logged in as' }).waitFor();
      auth.resetCounts();
      await page.click('#node-config-oauth2-logout');
      await page.locator('.red-ui-tray', { hasText: 'Logged out (tokens revoked at the provider).' }).waitFor({ timeout: 15_000 });
      await page.waitForFunction(() => /not logged in/i.test(document.querySelector('#node-config-oauth2-state')?.textContent ?? ''));
      assert.equal(await page.locator('#node-config-oauth2-details').isVisible(), false, 'no account, scopes or expiry shown');
      assert.equal(await page.locator('#node-config-oauth2-logout').isDisabled(), true);
      await session.shot('connection-logged-out');
    });
    assert.ok(auth.counts().revocation >= 1, 'the provider was asked to revoke');
    assert.equal((await auth.validateAccessToken(apiToken)).active, false, 'the token the API saw is no longer active');
    await closeConnectionDialog(page);
  });

  it('a wrong client secret shows the translated error in the popup and the dialog; the popup\'s Close button closes it', async () => {
    await step(session, 'wrong-secret', async () => {
      await openConnectionDialog();
      await openClientTab();
      await page.fill('#node-config-input-clientSecret', 'not-the-secret');
      const popup = await pressLogIn();
      await providerPages(popup, auth.account);
      // The callback page stays open with the reason (it only closes itself on success).
      await popup.waitForSelector('#detail', { timeout: 15_000 });
      const popupText = (await popup.locator('body').innerText()).replace(/\s+/g, ' ');
      watchText(await popup.content());
      assert.match(popupText, /Log in failed/, popupText);
      assert.match(popupText, /The token endpoint refused the request: invalid_client/, popupText);
      assert.match(popupText, /OAUTH2_TOKEN_REQUEST_REJECTED/, popupText);
      await session.shot('popup-wrong-secret', popup);
      // The page's Close button: window.close() of the window the editor opened. The page closes during the
      // click, so the wait for its close event must be in place before the click.
      const closed = popup.waitForEvent('close', { timeout: 10_000 });
      await popup.click('#close', { noWaitAfter: true });
      await closed;
      assert.ok(popup.isClosed(), 'the Close button closed the popup');
      assert.match(await page.locator('#node-config-oauth2-state').innerText(), /not logged in/i);
      // The dialog says why too, translated, not only the popup.
      const message = page.locator('.red-ui-tray', { hasText: 'Log in failed: The token endpoint refused the request' });
      await message.waitFor({ timeout: 15_000 });
      assert.match(await trayText(page), /check the client id, secret and client auth method/);
      await session.shot('connection-wrong-secret');
    });
    await closeConnectionDialog(page);
  });

  it('a redirect URI the provider does not know: the provider shows its error page, and the dialog says what to check instead of waiting', async () => {
    await step(session, 'unknown-redirect', async () => {
      await openConnectionDialog();
      await openClientTab();
      const unknown = `${runtime.adminUrl.replace(/\/$/, '')}/not-registered/callback`;
      await page.fill('#node-config-input-redirectUri', unknown);
      // The wait before the hint, shortened for the test (45 s in use).
      await page.evaluate(() => {
        (window as unknown as { HttpOAuth2Editor: { loginHintMs: number } }).HttpOAuth2Editor.loginHintMs = 1500;
      });
      const popup = await pressLogIn();
      // oidc-provider refuses the authorization request with its own error page; nothing comes back.
      await popup.waitForLoadState('domcontentloaded');
      await popup.waitForFunction(() => /redirect_uri/i.test(document.body?.innerText ?? ''), undefined, { timeout: 15_000 });
      const hint = page.locator('.red-ui-tray', { hasText: 'No answer from the login window yet' });
      await hint.waitFor({ timeout: 15_000 });
      const text = await trayText(page);
      assert.ok(text.includes(unknown), text);
      assert.ok(text.includes(auth.clients.web.clientId), text);
      await session.shot('connection-unknown-redirect');
      await popup.close();
      await page.evaluate(() => {
        (window as unknown as { HttpOAuth2Editor: { loginHintMs: number } }).HttpOAuth2Editor.loginHintMs = 45000;
      });
    });
    await closeConnectionDialog(page);
  });

  it('the connection opened from the flow (double-click the request node, then the pencil): Discover fills the endpoints from the provider', async () => {
    const discovery = (await (await fetch(`${auth.issuer}/.well-known/openid-configuration`)).json()) as Record<string, string>;
    await step(session, 'discover', async () => {
      await dismissNotifications(page);
      await page.locator(`[id="${nodes.request}"] .red-ui-flow-node`).dblclick();
      await page.locator('#node-input-connection').waitFor({ state: 'attached' });
      // The config field shows the connection by its label, with a pencil to edit it.
      const selected = await page.locator('#node-input-connection option:checked').innerText();
      assert.match(selected, /./, 'the request node shows its connection');
      await page.click('#node-input-btn-connection-edit');
      await waitConnectionDialog(page);

      // Provider tab: the endpoints as saved; cleared, then found again from the issuer alone.
      for (const field of ['authorizationEndpoint', 'tokenEndpoint', 'revocationEndpoint']) {
        await page.fill(`#node-config-input-${field}`, '');
      }
      await page.fill('#node-config-input-issuer', auth.issuer);
      await page.click('#node-config-oauth2-discover');
      const result = page.locator('#node-config-oauth2-discover-result');
      await page.waitForFunction(() => !document.querySelector<HTMLButtonElement>('#node-config-oauth2-discover')?.disabled &&
        !/…|\.\.\./.test(document.querySelector('#node-config-oauth2-discover-result')?.textContent ?? ''));
      assert.match(await result.innerText(), new RegExp(auth.issuer.replace(/[.:/]/g, '\\$&')), await result.innerText());
      assert.equal(await page.inputValue('#node-config-input-authorizationEndpoint'), discovery.authorization_endpoint);
      assert.equal(await page.inputValue('#node-config-input-tokenEndpoint'), discovery.token_endpoint);
      assert.equal(await page.inputValue('#node-config-input-revocationEndpoint'), discovery.revocation_endpoint);
      assert.equal(await page.isChecked('#node-config-input-issParameterSupported'), true, 'iss in the response (RFC 9207) is advertised');
      await session.shot('connection-discovered');

      // A wrong issuer: the dialog says why, and keeps what it had.
      await page.fill('#node-config-input-issuer', `${api.url}/no-provider-here`);
      await page.click('#node-config-oauth2-discover');
      await page.waitForFunction(() => /Discovery failed|failed/i.test(document.querySelector('#node-config-oauth2-discover-result')?.textContent ?? ''));
      assert.equal(await page.inputValue('#node-config-input-tokenEndpoint'), discovery.token_endpoint);
      await closeConnectionDialog(page);
      await closeNodeDialog(page);
    });
  });

  it('keyboard: every input of the connection dialog has a label; Log in is reached with Tab and works with Enter and with Space', async () => {
    await step(session, 'keyboard', async () => {
      await openConnectionDialog();
      const unlabelled = await page.evaluate(() => {
        const form = document.querySelector('#node-config-dialog-edit-form');
        if (!form) return ['no form'];
        const missing: string[] = [];
        for (const el of Array.from(form.querySelectorAll<HTMLElement>('input, select, textarea, button'))) {
          // Node-RED's own traps for the browser's password autofill (hidden, never focused) are not ours.
          if (el.getAttribute('type') === 'hidden' || el.id.startsWith('red-ui-trap-')) continue;
          const byFor = el.id ? Array.from(document.querySelectorAll(`label[for="${CSS.escape(el.id)}"]`)).some((l) => (l.textContent ?? '').trim() !== '') : false;
          const wrapped = (el.closest('label')?.textContent ?? '').trim() !== '';
          const aria = (el.getAttribute('aria-label') ?? '').trim() !== '';
          const labelledBy = (el.getAttribute('aria-labelledby') ?? '').split(/\s+/).filter(Boolean)
            .some((id: string) => (document.getElementById(id)?.textContent ?? '').trim() !== '');
          const ownText = el.tagName === 'BUTTON' && ((el.textContent ?? '').trim() !== '' || (el.getAttribute('title') ?? '') !== '');
          if (!(byFor || wrapped || aria || labelledBy || ownText)) missing.push(`${el.tagName.toLowerCase()}#${el.id || '?'}.${el.className}`);
        }
        return missing;
      });
      assert.deepEqual(unlabelled, [], 'inputs without a label');
      // The editable lists' rows (authorize and token parameters) too: add one and check it.
      await page.click('.red-ui-tabs li a:has-text("Advanced")');
      await page.locator('.red-ui-editableList:has(#node-config-oauth2-tokenParams) .red-ui-editableList-addButton').first().click();
      const paramLabels = await page.evaluate(() => Array.from(document.querySelectorAll<HTMLInputElement>('#node-config-oauth2-tokenParams input'))
        .map((i) => (document.querySelector(`label[for="${CSS.escape(i.id)}"]`)?.textContent ?? '').trim()));
      assert.ok(paramLabels.length >= 2 && paramLabels.every(Boolean), `parameter row labels: ${JSON.stringify(paramLabels)}`);
      await page.click('.red-ui-tabs li a:has-text("Provider")');

      /** Tabs from the name field until Log in has the focus; returns how many presses it took. */
      async function tabToLogIn(): Promise<number> {
        await page.focus('#node-config-input-name');
        for (let presses = 1; presses <= 60; presses += 1) {
          await page.keyboard.press('Tab');
          if (await page.evaluate(() => document.activeElement?.id === 'node-config-oauth2-login')) return presses;
        }
        throw new Error('Tab never reached the Log in button');
      }
      await tabToLogIn();
      const focusRing = await page.evaluate(() => {
        const el = document.activeElement as HTMLElement;
        const s = getComputedStyle(el);
        return `${s.outlineStyle} ${s.outlineWidth} ${s.boxShadow}`;
      });
      assert.ok(!/^none 0px none$/.test(focusRing), `the focused Log in button shows focus: ${focusRing}`);
      const byEnter = await popupFrom(() => page.keyboard.press('Enter'));
      await completeLogin(byEnter);
      assert.match(await page.locator('#node-config-oauth2-state').innerText(), /^Logged in$/);

      await page.click('#node-config-oauth2-logout');
      await page.waitForFunction(() => /not logged in/i.test(document.querySelector('#node-config-oauth2-state')?.textContent ?? ''));
      await tabToLogIn();
      const bySpace = await popupFrom(() => page.keyboard.press('Space'));
      await completeLogin(bySpace);
      assert.match(await page.locator('#node-config-oauth2-state').innerText(), /^Logged in$/);
      await closeConnectionDialog(page);
    });
  });

  it('help renders in the sidebar for each node, with its sections (en-US)', async () => {
    await step(session, 'help', async () => {
      await page.click('a.red-ui-tab-link-button[href="#help"]').catch(() => undefined);
      for (const type of ['oauth2-connection', 'http-oauth2-request', 'oauth2-record-change']) {
        const help = await sidebarHelp(page, type);
        assert.deepEqual(help.headings.filter((h) => helpHeadings('en-US', type).includes(h)), helpHeadings('en-US', type), `${type}: ${help.headings.join(' | ')}`);
        assert.match(help.text, /OAUTH2_[A-Z_]+/, `${type}: its error codes are listed`);
        await session.shot(`help-en-US-${type}`);
      }
    });
  });

  it('every dialog in en-US: labels fit, nothing overflows, icons show, text is readable (screenshots)', async () => {
    const result = await step(session, 'screenshots', () => checkDialogs(session, nodes, 'en-US-light'));
    assert.deepEqual(result.problems, []);
    for (const file of result.shots) assert.ok(fs.statSync(file).size > 10_000, `${file} is a real picture`);
    console.log(`      screenshots: ${session.shotDir}`);
  });

  describe('in German (the browser\'s language is de)', () => {
    let de: BrowserSession;
    before(async () => {
      de = await startBrowser({ locale: 'de' });
    });
    after(async () => {
      await de?.close();
    });

    it('the editor and the package speak German; help renders in the sidebar in German', async () => {
      await step(de, 'de-help', async () => {
        await openEditor(de.page, runtime.adminUrl);
        await de.page.click('#red-ui-workspace-tabs .red-ui-tab:has-text("Log in from the editor") a');
        assert.match(await de.page.locator('#red-ui-header-button-deploy').innerText(), /Übernahme/, 'the editor is in German');
        await de.page.click('a.red-ui-tab-link-button[href="#help"]').catch(() => undefined);
        for (const type of ['oauth2-connection', 'http-oauth2-request', 'oauth2-record-change']) {
          const help = await sidebarHelp(de.page, type);
          assert.deepEqual(help.headings.filter((h) => helpHeadings('de', type).includes(h)), helpHeadings('de', type), `${type}: ${help.headings.join(' | ')}`);
          await de.shot(`help-de-${type}`);
        }
        await openDialogOf(de.page, CONN);
        const tabs = await de.page.locator('#node-config-oauth2-connection-tabs li a').allInnerTexts();
        assert.ok(tabs.some((t) => /Anbieter/.test(t)), `German tab names: ${tabs.join(', ')}`);
        await closeConnectionDialog(de.page);
      });
    });

    it('a failing "Preview next poll" says why in German (the editor translates the error, not the runtime)', async () => {
      await step(de, 'de-preview-error', async () => {
        records.failLists(true);
        try {
          await openNodeDialog(de.page, TRIGGER);
          await de.page.click('#node-input-oauth2-rc-preview');
          await de.page.waitForFunction(() => {
            const text = document.querySelector('#node-input-oauth2-rc-preview-summary')?.textContent ?? '';
            return text.trim() !== '' && !document.querySelector<HTMLButtonElement>('#node-input-oauth2-rc-preview')?.disabled && !/…/.test(text);
          });
          const text = (await de.page.locator('#node-input-oauth2-rc-preview-summary').innerText()).trim();
          assert.equal(text, 'Vorschau fehlgeschlagen: Die API hat mit Status 500 geantwortet (OAUTH2_HTTP_STATUS)');
          await de.shot('de-preview-error');
        } finally {
          records.failLists(false);
          await closeNodeDialog(de.page);
        }
      });
      assert.deepEqual(de.pageErrors, []);
    });

    it('every dialog in de: labels fit, nothing overflows, icons show, text is readable (screenshots)', async () => {
      const result = await step(de, 'de-screenshots', () => checkDialogs(de, nodes, 'de-light'));
      assert.deepEqual(result.problems, []);
      assert.deepEqual(de.pageErrors, []);
    });
  });
});
