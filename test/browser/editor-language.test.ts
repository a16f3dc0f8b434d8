import assert from 'node:assert/strict';
import type { Page } from 'playwright-core';
import type { AuthServer } from '../support/auth-server';
import { closeTrays, dialogLayoutProblems, openEditor, settleTray, startBrowser, step, type BrowserSession } from '../support/browser';
import { adminCall, deployAndWait, serviceConnection, startWatchedAuthServer, startWatchedRuntime, waitFor } from '../support/e2e';
import { RECORD_CHANGE_DEFAULTS, tab } from '../support/flows';
import { startRecordsApi, type RecordsApi } from '../support/records-api';
import type { TestRuntime } from '../support/runtime';
import { needsSystemPackage } from '../support/system-packages';
import { closeConnectionDialog, closeNodeDialog, openConnectionDialog, openNodeDialog, waitConnectionDialog } from './dialogs';

/**
 * Every text a German or Japanese user reads about a failing flow is in that language (issue 27): the canvas
 * statuses of a trigger that polled, a trigger whose polls fail, a request that failed; the error of a failing
 * preview; the connection dialog's status area after choosing another grant. The runtime runs in English
 * (the tests' default), so a text rendered on the server in its language would show up here. What may stay as
 * it is: codes (OAUTH2_...), URLs, numbers and times, and the names below.
 */
const ALLOWED = /OAUTH2_[A-Z_]+|https?:\/\/\S+|\b(?:API|URL|HTTP|OAuth2?|JSON|ID|Token|Tokens|Scopes?|Bearer|Redis|Node-RED|PKCE|iss|deploy|Deploy)\b/g;
/** Words of the English texts of these places that are no German or Japanese word. */
const ENGLISH = /\b(?:the|and|with|at|of|for|from|is|are|not|created|updated|deleted|remembered|records?|retrying|retry|failed|answered|request|requests|logged|login|required|waiting|polling|would|send|changes|granted|expires|minutes|nothing|first|poll|error|errors|connection|preview|there|this|client|credentials)\b/i;

function englishIn(texts: string[]): string[] {
  return texts.filter((text) => ENGLISH.test(text.replace(ALLOWED, ' ')));
}

const CONN = 'conn-lang';
const TRIG_OK = 'trig-ok';
const TRIG_FAIL = 'trig-fail';
const REQ_FAIL = 'req-fail';
const CONN_STATUS = 'conn-status';

describe('browser: statuses and error details in the editor language (chromium, de and ja)', function () {
  needsSystemPackage(this, 'chromium');
  this.timeout(90_000);
  let auth: AuthServer;
  let api: RecordsApi;
  let runtime: TestRuntime;
  const sessions: BrowserSession[] = [];

  before(async () => {
    auth = await startWatchedAuthServer();
    api = await startRecordsApi(auth);
    api.add('first');
    runtime = await startWatchedRuntime();
    const trigger = (id: string, url: string, y: number): Record<string, unknown> => ({
      id, type: 'oauth2-record-change', z: 'tab1', connection: CONN, name: '', ...RECORD_CHANGE_DEFAULTS, url, x: 200, y, wires: [[]],
    });
    await deployAndWait(runtime, [
      tab(),
      serviceConnection(auth, api, CONN),
      trigger(TRIG_OK, '/records', 80),
      trigger(TRIG_FAIL, '/records/missing', 160),
      { id: 'inj', type: 'inject', z: 'tab1', name: '', props: [{ p: 'payload' }], repeat: '', once: false, onceDelay: 0.1, topic: '', payload: '', payloadType: 'date', x: 100, y: 240, wires: [[REQ_FAIL]] },
      {
        id: REQ_FAIL, type: 'http-oauth2-request', z: 'tab1', name: '', connection: CONN, method: 'GET', url: 'http://127.0.0.2:9/nowhere', ret: 'obj',
        paytoqs: 'ignore', headers: [], maxAttempts: 1, x: 300, y: 240, wires: [[]],
      },
      { id: CONN_STATUS, type: 'oauth2-connection-status', z: 'tab1', name: '', connection: CONN, routineRefreshes: false, sendAtStart: true, x: 200, y: 320, wires: [[]] },
    ]);
  });

  afterEach(async () => {
    for (const s of sessions) await closeTrays(s.page);
  });

  after(async () => {
    for (const s of sessions) await s.close();
    await runtime?.stop();
    await api?.close();
    await auth?.close();
  });

  /** The status label of a node on the canvas, once it says something. */
  async function statusOf(page: Page, id: string): Promise<string> {
    const selector = `[id="${id}"] .red-ui-flow-node-status-label`;
    await page.waitForFunction((s) => (document.querySelector(s)?.textContent ?? '').trim() !== '', selector, { timeout: 20_000 });
    return (await page.locator(selector).textContent())?.trim() ?? '';
  }

  for (const locale of ['de', 'ja'] as const) {
    it(`${locale}: canvas statuses, a failing preview's error and the connection's status area are in ${locale}`, async () => {
      const session = await startBrowser({ locale });
      sessions.push(session);
      const { page } = session;
      await openEditor(page, runtime.adminUrl);
      const texts: string[] = [];
      // The failing request, once the triggers have their token (a connection state change clears a request
      // node's last status).
      await waitFor(() => runtime.logs.length > 0, 5000, 'the runtime log');
      const injected = await adminCall(runtime, 'inject/inj', { method: 'POST' });
      assert.equal(injected.status, 200, injected.text);

      await step(session, 'canvas', async () => {
        // The failing trigger retries: its status names the next attempt; the other has read the list.
        await page.waitForFunction((id) => /OAUTH2_HTTP_STATUS/.test(document.querySelector(`[id="${id}"] .red-ui-flow-node-status-label`)?.textContent ?? ''), TRIG_FAIL, { timeout: 20_000 });
        for (const id of [TRIG_OK, TRIG_FAIL, REQ_FAIL, CONN_STATUS]) texts.push(await statusOf(page, id));
        assert.match(texts[2], /OAUTH2_ORIGIN_NOT_ALLOWED/, texts[2]);
        // Pictures of the German editor only: this machine's Chromium has no Japanese font (the texts are read
        // from the page, not the picture).
        if (locale === 'de') await session.shot(`editor-language-${locale}-canvas`);
      });

      await step(session, 'status-node-dialog', async () => {
        // The connection status node's dialog: in the editor's language, and laid out.
        await openNodeDialog(page, CONN_STATUS);
        await settleTray(page);
        const problems = await dialogLayoutProblems(page);
        assert.deepEqual(problems, []);
        // Its labels and hints (the connection select shows the connection's own name, which is the user's).
        texts.push(...(await page.locator('.red-ui-tray-body label, .red-ui-tray-body .form-tips').allInnerTexts()).map((t) => t.trim()));
        if (locale === 'de') await session.shot(`editor-language-${locale}-connection-status`);
        await closeNodeDialog(page);
      });

      await step(session, 'preview', async () => {
        await openNodeDialog(page, TRIG_FAIL);
        await page.click('#node-input-oauth2-rc-preview');
        const message = page.locator('#node-input-oauth2-rc-preview-message');
        await page.waitForFunction(() => (document.querySelector('#node-input-oauth2-rc-preview-message')?.textContent ?? '').trim() !== '', undefined, { timeout: 20_000 });
        texts.push(((await message.textContent()) ?? '').trim());
        await settleTray(page);
        if (locale === 'de') await session.shot(`editor-language-${locale}-preview`);
        await closeNodeDialog(page);
      });

      await step(session, 'connection', async () => {
        await openConnectionDialog(page, CONN);
        // Choosing another grant redraws the login section: no contradiction between its lines.
        await page.selectOption('#node-config-input-grantType', 'authorization_code');
        await page.selectOption('#node-config-input-grantType', 'client_credentials');
        for (const selector of ['#node-config-oauth2-state', '#node-config-oauth2-details', '#node-config-oauth2-no-refresh']) {
          const visible = await page.locator(selector).isVisible();
          if (visible) texts.push(((await page.locator(selector).innerText()) ?? '').trim());
        }
        await closeConnectionDialog(page);

        // A new connection switched to client credentials: its login section says nothing of a login any more.
        await page.evaluate(() => (window as unknown as { RED: { editor: { editConfig(a: string, b: string, c: string): void } } }).RED.editor.editConfig('', 'oauth2-connection', '_ADD_'));
        await waitConnectionDialog(page);
        await page.selectOption('#node-config-input-grantType', 'client_credentials');
        await page.waitForFunction(() => (document.querySelector('#node-config-oauth2-state')?.textContent ?? '').trim() === '', undefined, { timeout: 5000 });
        assert.equal(((await page.locator('#node-config-oauth2-state-explain').textContent()) ?? '').trim(), '', 'no login explanation for client credentials');
        await closeConnectionDialog(page);
      });

      const english = englishIn(texts.filter(Boolean));
      assert.deepEqual(english, [], `English in the ${locale} editor:\n${english.join('\n')}\n(all texts: ${JSON.stringify(texts)})`);
      assert.deepEqual(session.pageErrors, []);
    });
  }
});
