/**
 * The request node's "While the connection needs a login" section in a real editor and a real browser (Debian's
 * chromium), in English and in German: off by default with its limits hidden, ticked shows them (the defaults as
 * placeholders for a node saved before they existed), a bad count marks the field with its translated hint, and Done keeps what was set (read back from
 * the deployed flow through the admin API).
 */
import assert from 'node:assert/strict';
import {
  closeTrays,
  deployWithButton,
  dialogLayoutProblems,
  openEditor,
  settleTray,
  startBrowser,
  step,
  type BrowserSession,
  type EditorGlobal,
} from '../support/browser';
import { adminCall, deployAndWait, startWatchedAuthServer, startWatchedRuntime } from '../support/e2e';
import { connectionNode, tab } from '../support/flows';
import type { AuthServer } from '../support/auth-server';
import type { TestRuntime } from '../support/runtime';
import { needsSystemPackage } from '../support/system-packages';
import { openNodeDialog } from './dialogs';

/** The texts the test reads, as locales/<lang>/http-oauth2-request.json has them. */
const TEXT = {
  'en-US': { section: 'While the connection needs a login', box: 'Hold messages until the connection is usable again', invalid: 'Must be empty or a whole number from 1 to 100000' },
  de: { section: 'Solange die Verbindung eine Anmeldung braucht', box: 'Nachrichten zurückhalten, bis die Verbindung wieder nutzbar ist', invalid: 'Muss leer oder eine ganze Zahl von 1 bis 100000 sein' },
} as const;

/** A request node as versions before the hold setting saved it. */
function savedBefore(): Record<string, unknown> {
  return {
    id: 'req1', type: 'http-oauth2-request', z: 'tab1', x: 200, y: 100, name: '', connection: 'conn1', method: 'GET', url: '/items', ret: 'obj',
    paytoqs: 'ignore', headers: [], requestTimeout: '', followRedirects: true, maxRedirects: 5, retryStatuses: '429,502,503,504', maxAttempts: 3,
    retryUnsafe: false, maxRetryAfterSec: 60, non2xxAsOutput: true, senderr: false, wires: [[]],
  };
}

describe('browser: the request dialog holds messages while a login is needed (chromium)', function () {
  needsSystemPackage(this, 'chromium');
  this.timeout(90_000);
  let auth: AuthServer;
  let runtime: TestRuntime;
  const sessions: BrowserSession[] = [];

  before(async () => {
    auth = await startWatchedAuthServer();
    runtime = await startWatchedRuntime();
    const conn = connectionNode(auth, { id: 'conn1', grantType: 'client_credentials', clientId: auth.clients.service.clientId, apiBaseUrl: 'http://127.0.0.1:9' });
    delete conn.credentials;
    await deployAndWait(runtime, [tab(), conn, savedBefore()]);
  });
  afterEach(async () => {
    for (const s of sessions) await closeTrays(s.page);
  });
  after(async () => {
    for (const s of sessions) await s.close();
    await runtime?.stop();
    await auth?.close();
  });

  for (const locale of ['en-US', 'de'] as const) {
    it(`${locale}: off by default, ticked shows the limits, a bad count is marked, Done and Deploy keep the settings`, async () => {
      const session = await startBrowser({ locale });
      sessions.push(session);
      const { page } = session;
      const text = TEXT[locale];
      await openEditor(page, runtime.adminUrl);
      await step(session, `${locale}-hold-section`, async () => {
        await openNodeDialog(page, 'req1');
        await settleTray(page);
        const tray = page.locator('.red-ui-tray').last();
        assert.ok((await tray.innerText()).includes(text.section), 'the section is in the editor\'s language');
        assert.ok((await tray.innerText()).includes(text.box));
        assert.equal(await page.isChecked('#node-input-holdWhileLoginNeeded'), false, 'off by default (a node saved before it existed)');
        assert.equal(await page.locator('#node-input-holdMaxMessages').isVisible(), false, 'limits hidden while off');
        await page.check('#node-input-holdWhileLoginNeeded');
        await page.locator('#node-input-holdMaxMessages').waitFor({ state: 'visible' });
        // Saved before the setting existed: empty, which means the defaults the placeholders show.
        assert.equal(await page.inputValue('#node-input-holdMaxMessages'), '');
        assert.equal(await page.getAttribute('#node-input-holdMaxMessages', 'placeholder'), '1000');
        assert.equal(await page.getAttribute('#node-input-holdMaxHours', 'placeholder'), '24');
        assert.deepEqual(await dialogLayoutProblems(page), []);
        await session.shot(`${locale}-request-hold`);

        await page.fill('#node-input-holdMaxMessages', '0');
        await page.locator('#node-input-holdMaxHours').focus();
        await page.waitForFunction(() => document.querySelector('#node-input-holdMaxMessages')?.classList.contains('input-error'));
        const title = await page.evaluate(() => {
          const { RED } = window as unknown as EditorGlobal;
          const node = RED.nodes.node('req1') as unknown as { _def: { defaults: Record<string, { validate(v: string, opt?: unknown): unknown }> } };
          return node._def.defaults.holdMaxMessages.validate('0', {});
        });
        assert.equal(title, text.invalid, 'the hint names what the field takes, translated');
        await page.fill('#node-input-holdMaxMessages', '250');
        await page.fill('#node-input-holdMaxHours', '2.5');
        await page.click('#node-dialog-ok');
        await page.locator('#node-input-connection').waitFor({ state: 'detached' });
        const saved = await page.evaluate(() => {
          const node = (window as unknown as EditorGlobal).RED.nodes.node('req1') as unknown as { valid: boolean; validationErrors?: string[]; holdMaxHours: unknown; holdMaxMessages: unknown };
          return { valid: node.valid, errors: node.validationErrors, hours: node.holdMaxHours, max: node.holdMaxMessages };
        });
        assert.equal(saved.valid, true, JSON.stringify(saved));
        await deployWithButton(page);
      });
      const flows = (await adminCall(runtime, 'flows')).body as Array<Record<string, unknown>>;
      const req = flows.find((n) => n.id === 'req1');
      assert.deepEqual(
        { hold: req?.holdWhileLoginNeeded, max: Number(req?.holdMaxMessages), hours: Number(req?.holdMaxHours) },
        { hold: true, max: 250, hours: 2.5 },
      );
      // Back to off for the next locale's run.
      await deployAndWait(runtime, flows.map((n) => (n.id === 'req1' ? savedBefore() : n)));
    });
  }
});
