import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Page } from 'playwright-core';
import catalogue from '../../nodes/lib/providers/catalogue.json';
import type { ProviderPreset } from '../../nodes/lib/providers/schema';
import type { AuthServer } from '../support/auth-server';
import { startDeviantProvider, type DeviantProvider } from '../support/deviant-provider';
import {
  closeTrays,
  deployWithButton,
  dialogLayoutProblems,
  dismissNotifications,
  openEditor,
  providerPages,
  settleTray,
  startBrowser,
  step,
  trayText,
  type BrowserSession,
  type EditorGlobal,
} from '../support/browser';
import { adminCall, deployAndWait, startWatchedAuthServer, startWatchedRuntime } from '../support/e2e';
import { connectionNode, tab } from '../support/flows';
import { watchText } from '../support/leaks';
import type { TestRuntime } from '../support/runtime';
import { needsSystemPackage } from '../support/system-packages';
import { closeConnectionDialog, openConnectionDialog, waitConnectionDialog } from './dialogs';

/** A connection saved before presets existed: no provider field at all. */
const LEGACY = 'legacy-conn';
const presets = catalogue as unknown as ProviderPreset[];
const preset = (id: string): ProviderPreset => {
  const found = presets.find((p) => p.id === id);
  if (!found) throw new Error(`no preset ${id} in the catalogue`);
  return found;
};

/** The German texts the test reads, as locales/de/oauth2-connection.json has them. */
const TEXT = {
  'en-US': { required: 'required', invalid: 'not a valid value (for example', register: 'Register an app at', empty: 'Empty: common' },
  de: { required: 'erforderlich', invalid: 'kein gültiger Wert (zum Beispiel', register: 'App bei', empty: 'Leer: common' },
} as const;

/**
 * The connection dialog's Provider field (issue 15) in a real editor and a real browser, in English and in
 * German: search the preset list, pick a provider, see the fields it fills, the value it asks for under the
 * provider's own name for it, the redirect URI to register and the registration link; type the value and see
 * the templated endpoints follow; then pick a preset, override its endpoints with the test authorization
 * server's (oidc-provider on 127.0.0.1), log in with the dialog's Log in button, deploy, and read the flow back
 * through the admin API: it names the preset and carries no secret. BROWSER_SHOTS=docs/screenshots refreshes
 * the pictures of the Provider field in docs/screenshots.
 */
describe('browser: the Provider field of the connection dialog (chromium)', function () {
  needsSystemPackage(this, 'chromium');
  this.timeout(90_000);
  let auth: AuthServer;
  let runtime: TestRuntime;
  let redirectUri = '';
  const sessions: BrowserSession[] = [];

  before(async () => {
    auth = await startWatchedAuthServer();
    runtime = await startWatchedRuntime();
    redirectUri = new URL('oauth2-connection/callback', runtime.adminUrl).href;
    auth.addRedirectUri(redirectUri);
    const legacy = connectionNode(auth, { id: LEGACY, clientId: auth.clients.web.clientId, redirectUri });
    delete legacy.credentials;
    await deployAndWait(runtime, [tab(), legacy]);
  });

  afterEach(async () => {
    for (const s of sessions) await closeTrays(s.page);
  });

  after(async () => {
    for (const s of sessions) await s.close();
    await runtime?.stop();
    await auth?.close();
  });

  async function editorIn(locale: 'en-US' | 'de'): Promise<BrowserSession> {
    const session = await startBrowser({ locale });
    sessions.push(session);
    await openEditor(session.page, runtime.adminUrl);
    return session;
  }

  /** The editor's "add a new connection" dialog, once its Provider list has the catalogue. */
  async function openNewConnection(page: Page): Promise<void> {
    await dismissNotifications(page);
    await page.evaluate(() => (window as unknown as EditorGlobal).RED.editor.editConfig('', 'oauth2-connection', '_ADD_'));
    await waitConnectionDialog(page);
    await page.waitForFunction((n) => document.querySelectorAll('#node-config-oauth2-provider-list option').length === n, presets.length + 1);
  }

  async function search(page: Page, text: string): Promise<string[]> {
    await page.fill('#node-config-oauth2-provider-search', text);
    return page.locator('#node-config-oauth2-provider-list option').allInnerTexts();
  }

  /** Clicks the dialog's tab `index` (0 Provider, 1 Client, 2 API, 3 Advanced) until `shown` is visible. */
  async function openTab(page: Page, index: number, shown: string): Promise<void> {
    for (let attempt = 0; attempt < 3; attempt += 1) {
      await page.locator('#node-config-oauth2-connection-tabs li a').nth(index).click();
      if (await page.locator(shown).waitFor({ state: 'visible', timeout: 2000 }).then(() => true, () => false)) return;
    }
    throw new Error(`tab ${index} did not show ${shown}`);
  }

  const value = (page: Page, field: string): Promise<string> => page.inputValue(`#node-config-input-${field}`);

  /** Layout problems of the open dialog, and its picture (BROWSER_SHOTS=docs/screenshots refreshes the docs' ones). */
  async function look(session: BrowserSession, name: string): Promise<string[]> {
    await settleTray(session.page);
    await dismissNotifications(session.page);
    const problems = await dialogLayoutProblems(session.page);
    await session.shot(name);
    return problems.map((p) => `${name}: ${p}`);
  }

  for (const locale of ['en-US', 'de'] as const) {
    it(`${locale}: search, pick Shopify, see what it fills and asks for; its shop name fills the endpoints; Microsoft's tenant has a default`, async () => {
      const session = await editorIn(locale);
      const { page } = session;
      const text = TEXT[locale];
      const problems: string[] = [];
      const shopify = preset('shopify');
      const variable = shopify.variables[0];

      await step(session, `${locale}-pick-shopify`, async () => {
        await openNewConnection(page);
        // A new connection is Custom: today's fields, nothing filled.
        assert.equal(await page.inputValue('#node-config-oauth2-provider-list'), '');
        assert.equal(await page.locator('#node-config-oauth2-provider-info').isVisible(), false);
        assert.equal(await value(page, 'tokenEndpoint'), '');

        assert.deepEqual(await search(page, 'SHOP'), ['Shopify'], 'the filter ignores case and leaves Shopify alone');
        assert.ok((await search(page, 'sla')).includes('Slack (bot token)'));
        assert.deepEqual(await search(page, 'no such provider'), []);
        assert.match(await page.locator('#node-config-oauth2-provider-message').innerText(), /./, 'says nothing matches');
        await search(page, 'shop');
        await page.selectOption('#node-config-oauth2-provider-list', 'shopify');

        // The value the provider needs, under its own name for it, with its example as placeholder; still empty.
        const label = page.locator(`label[for="node-config-oauth2-provider-var-${variable.name}"]`);
        assert.equal((await label.innerText()).trim(), variable.label);
        const input = page.locator(`#node-config-oauth2-provider-var-${variable.name}`);
        assert.equal(await input.getAttribute('placeholder'), variable.example);
        const error = page.locator(`#node-config-oauth2-provider-var-${variable.name}-error`);
        assert.equal((await error.innerText()).trim(), `${variable.label}: ${text.required}`);
        assert.equal(await value(page, 'tokenEndpoint'), shopify.endpoints.token, 'unfilled until the shop is given');

        // The redirect URI to register, the registration page (a new tab) and the documentation.
        assert.equal((await page.locator('#node-config-oauth2-provider-redirect').innerText()).trim(), redirectUri);
        assert.equal(await value(page, 'redirectUri'), redirectUri, 'the same URI as the Client tab');
        const register = page.locator('#node-config-oauth2-provider-register');
        assert.equal(await register.getAttribute('href'), shopify.registerAppUrl);
        assert.equal(await register.getAttribute('target'), '_blank');
        assert.match(await register.getAttribute('rel') ?? '', /noopener/);
        assert.ok((await register.innerText()).includes(text.register) && (await register.innerText()).includes('Shopify'));
        const docs = await page.locator('#node-config-oauth2-provider-docs a').evaluateAll((as) => as.map((a) => (a as HTMLAnchorElement).href));
        assert.deepEqual(docs, shopify.docs.map((d) => d.url));
        const remarks = await page.locator('#node-config-oauth2-provider-remarks li').allInnerTexts();
        assert.deepEqual(remarks.map((r) => r.trim()), shopify.notes.remarks);

        // Typing the shop fills every templated field; the rest of the preset is filled as it states it.
        await input.fill('my-store');
        assert.equal(await value(page, 'authorizationEndpoint'), 'https://my-store.myshopify.com/admin/oauth/authorize');
        assert.equal(await value(page, 'tokenEndpoint'), 'https://my-store.myshopify.com/admin/oauth/access_token');
        assert.equal(await value(page, 'apiBaseUrl'), 'https://my-store.myshopify.com/admin/api');
        assert.equal(await value(page, 'allowedOrigins'), 'https://my-store.myshopify.com');
        assert.equal((await error.innerText()).trim(), '');
        assert.equal(await value(page, 'scopes'), shopify.defaultScopes.join(' '));
        assert.equal(await page.inputValue('#node-config-input-authMethod'), shopify.authMethod);
        assert.equal(await page.inputValue('#node-config-input-scopeSeparator'), ',');
        assert.equal(await page.inputValue('#node-config-input-pkce'), 'S256');
        assert.equal(await value(page, 'name'), 'Shopify');
        const callbackFrom = await page.locator('#node-config-oauth2-callbackValues .node-config-oauth2-value-from').evaluateAll((is) => is.map((i) => (i as HTMLInputElement).value));
        assert.deepEqual(callbackFrom, ['shop']);
        problems.push(...(await look(session, `connection-provider-shopify-${locale}`)));

        // A value its pattern refuses: the field says so, naming it, and the endpoints are not built from it.
        await input.fill('bad/store');
        assert.equal((await error.innerText()).trim(), `${variable.label}: ${text.invalid} ${variable.example})`);
        assert.equal(await input.getAttribute('aria-invalid'), 'true');
        assert.ok((await value(page, 'tokenEndpoint')).includes('{{shop}}'));
        await input.fill('other-store');
        assert.equal(await value(page, 'tokenEndpoint'), 'https://other-store.myshopify.com/admin/oauth/access_token');

        // An override stays: the scopes field is the user's, a new shop changes only the templated fields.
        await openTab(page, 1, '#node-config-input-scopes');
        await page.fill('#node-config-input-scopes', 'read_orders');
        await input.fill('third-store');
        assert.equal(await value(page, 'scopes'), 'read_orders');
        assert.equal(await value(page, 'apiBaseUrl'), 'https://third-store.myshopify.com/admin/api');
      });

      await step(session, `${locale}-pick-microsoft`, async () => {
        const microsoft = preset('microsoft');
        assert.deepEqual(await search(page, 'microsoft'), [microsoft.name]);
        await page.selectOption('#node-config-oauth2-provider-list', 'microsoft');
        const tenant = page.locator('#node-config-oauth2-provider-var-tenant');
        assert.equal((await page.locator('label[for="node-config-oauth2-provider-var-tenant"]').innerText()).trim(), 'Directory (tenant) ID');
        // Empty, the tenant is its default; the dialog says so.
        assert.equal(await tenant.inputValue(), '');
        assert.ok((await trayText(page)).includes(text.empty));
        assert.equal(await value(page, 'tokenEndpoint'), 'https://login.microsoftonline.com/common/oauth2/v2.0/token');
        assert.equal(await value(page, 'issuer'), 'https://login.microsoftonline.com/common/v2.0');
        await tenant.fill('contoso.onmicrosoft.com');
        assert.equal(await value(page, 'authorizationEndpoint'), 'https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/authorize');
        assert.equal(await value(page, 'deviceAuthorizationEndpoint'), 'https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/devicecode');
        // The other preset's settings went with it: Shopify's comma, its callback value, the user's scopes.
        assert.equal(await page.inputValue('#node-config-input-scopeSeparator'), ' ');
        assert.equal(await page.locator('#node-config-oauth2-callbackValues .node-config-oauth2-value-from').count(), 0);
        assert.equal(await value(page, 'scopes'), microsoft.defaultScopes.join(' '));
        assert.equal(await value(page, 'name'), microsoft.name, 'the name the previous preset gave follows the preset');
        problems.push(...(await look(session, `connection-provider-microsoft-${locale}`)));

        // Back to Custom: the fields stay as they are, the preset's panel goes.
        await search(page, '');
        await page.selectOption('#node-config-oauth2-provider-list', '');
        assert.equal(await page.locator('#node-config-oauth2-provider-info').isVisible(), false);
        assert.equal(await value(page, 'tokenEndpoint'), 'https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token');

        // The behaviour settings, collapsed in the Advanced tab until asked for.
        await openTab(page, 3, '#node-config-input-refreshSkewSec');
        assert.equal(await page.locator('#node-config-input-tokenPath').isVisible(), false);
        await page.click('#node-config-oauth2-behaviour-toggle');
        assert.equal(await page.getAttribute('#node-config-oauth2-behaviour-toggle', 'aria-expanded'), 'true');
        await page.locator('#node-config-input-tokenPath').waitFor({ state: 'visible' });
        await page.locator('.red-ui-editableList:has(#node-config-oauth2-tokenValues) .red-ui-editableList-addButton').first().click();
        await page.locator('#node-config-oauth2-behaviour').scrollIntoViewIfNeeded();
        problems.push(...(await look(session, `connection-provider-behaviour-${locale}`)));
        await closeConnectionDialog(page);
      });
      assert.deepEqual(problems, []);
      assert.deepEqual(session.pageErrors, []);
    });
  }

  it('en-US: a preset with its endpoints overridden by the test server\'s logs in through Log in; the deployed flow names the preset and holds no secret', async () => {
    const session = await editorIn('en-US');
    const { page } = session;
    const spotify = preset('spotify');
    let connectionId = '';
    await step(session, 'legacy-is-custom', async () => {
      await openConnectionDialog(page, LEGACY);
      await page.waitForFunction((n) => document.querySelectorAll('#node-config-oauth2-provider-list option').length === n, presets.length + 1);
      assert.equal(await page.inputValue('#node-config-oauth2-provider-list'), '', 'an existing flow loads as Custom');
      assert.equal(await page.locator('#node-config-oauth2-provider-info').isVisible(), false);
      assert.equal(await value(page, 'tokenEndpoint'), `${auth.issuer}/token`, 'its fields as saved');
      assert.equal(await page.inputValue('#node-config-input-pkce'), 'S256');
      assert.equal(await page.inputValue('#node-config-input-scopeSeparator'), ' ');
      await closeConnectionDialog(page);
    });
    await step(session, 'override-login', async () => {
      await openNewConnection(page);
      connectionId = await page.evaluate(() => {
        const { RED } = window as unknown as { RED: { editor: { getEditStack?: () => { id: string }[] } } };
        const stack = RED.editor.getEditStack?.() ?? [];
        return stack[stack.length - 1]?.id ?? '';
      });
      // Enter picks the only preset the filter leaves.
      await page.fill('#node-config-oauth2-provider-search', 'spoti');
      await page.press('#node-config-oauth2-provider-search', 'Enter');
      assert.equal(await page.inputValue('#node-config-input-provider'), 'spotify');
      assert.equal(await value(page, 'tokenEndpoint'), spotify.endpoints.token);
      assert.equal(await value(page, 'authorizationEndpoint'), spotify.endpoints.authorization);

      // Override: the test provider's endpoints and scopes, the test client.
      await page.fill('#node-config-input-authorizationEndpoint', `${auth.issuer}/auth`);
      await page.fill('#node-config-input-tokenEndpoint', `${auth.issuer}/token`);
      await page.fill('#node-config-input-revocationEndpoint', `${auth.issuer}/token/revocation`);
      await openTab(page, 1, '#node-config-input-clientId');
      await page.fill('#node-config-input-clientId', auth.clients.web.clientId);
      await page.fill('#node-config-input-clientSecret', auth.clients.web.clientSecret);
      await page.fill('#node-config-input-scopes', 'openid offline_access api:read');
      assert.equal(await page.inputValue('#node-config-input-authMethod'), 'client_secret_basic', 'Spotify\'s client auth, as the test client\'s');

      auth.resetCounts();
      const popupPromise = session.context.waitForEvent('page');
      await page.click('#node-config-oauth2-login');
      const popup = await popupPromise;
      const closed = popup.waitForEvent('close', { timeout: 30_000 });
      // The popup went to the overridden authorize URL, not Spotify's.
      await popup.waitForURL((u) => u.href.startsWith(auth.issuer), { timeout: 15_000 });
      const pages = await providerPages(popup, auth.account);
      assert.deepEqual(pages, ['login-form', 'consent-form']);
      await closed;
      await page.locator('#node-config-oauth2-details li', { hasText: 'Logged in as' }).waitFor({ timeout: 15_000 });
      const details = (await page.locator('#node-config-oauth2-details').innerText()).replace(/\s+/g, ' ');
      watchText(await trayText(page));
      assert.match(details, /Granted scopes: [^.]*api:read/, details);
      const tokenCalls = Object.values(auth.counts().token).reduce((a, b) => a + b, 0);
      assert.ok(tokenCalls >= 1, 'the code was exchanged at the overridden token URL');
      await session.shot('connection-provider-login');
      await closeConnectionDialog(page, 'ok');
    });

    await step(session, 'deploy-export', async () => {
      await deployWithButton(page);
      const flows = await adminCall(runtime, 'flows', { headers: { 'node-red-api-version': 'v1' } });
      assert.equal(flows.status, 200, flows.text);
      const conn = (flows.body as Record<string, unknown>[]).find((n) => n.type === 'oauth2-connection' && n.id !== LEGACY);
      assert.ok(conn, flows.text);
      if (connectionId) assert.equal(conn.id, connectionId);
      assert.equal(conn.provider, 'spotify');
      assert.deepEqual(conn.providerValues, {});
      assert.equal(conn.tokenEndpoint, `${auth.issuer}/token`, 'the override is what was saved');
      assert.equal(conn.pkce, 'S256');
      assert.equal(conn.scopeSeparator, ' ');
      assert.equal(conn.credentials, undefined);
      assert.ok(!flows.text.includes(auth.clients.web.clientSecret), 'no client secret in the exported flow');
      const saved = fs.readFileSync(path.join(runtime.userDir, 'flows.json'), 'utf8');
      assert.match(saved, /"provider": ?"spotify"/);
      assert.ok(!saved.includes(auth.clients.web.clientSecret), 'no client secret in flows.json');
    });

    await step(session, 'reopen', async () => {
      // Opened again, the connection shows its preset with the overrides it was saved with.
      const id = connectionId || String(((await adminCall(runtime, 'flows', { headers: { 'node-red-api-version': 'v1' } })).body as { id: string; type: string }[])
        .find((n) => n.type === 'oauth2-connection' && n.id !== LEGACY)?.id);
      await openConnectionDialog(page, id);
      await page.locator('#node-config-oauth2-provider-info').waitFor({ state: 'visible' });
      assert.equal((await page.locator('#node-config-oauth2-provider-title').innerText()).trim(), spotify.name);
      assert.equal(await page.inputValue('#node-config-oauth2-provider-list'), 'spotify');
      assert.equal(await value(page, 'tokenEndpoint'), `${auth.issuer}/token`);
      assert.match(await page.locator('#node-config-oauth2-state').innerText(), /^Logged in$/);
      await closeConnectionDialog(page);
    });
    assert.deepEqual(runtime.crashes, []);
    assert.deepEqual(session.pageErrors, []);
  });
  it('en-US: the Slack (user token) preset logs in against a provider that behaves as Slack does (tokens under authed_user, comma-separated scopes, refusals as ok:false, no lifetime): its behaviour settings make the login work', async () => {
    const session = await editorIn('en-US');
    const { page } = session;
    const slack = preset('slack-user');
    const provider: DeviantProvider = await startDeviantProvider({
      tokenPath: 'authed_user',
      topLevelToken: true,
      errorIn200: 'ok-false',
      scopeSeparator: ',',
      expiry: 'none',
      neverExpires: true,
      onSecret: () => undefined,
    });
    try {
      provider.addRedirectUri(redirectUri);
      await step(session, 'slack-like-login', async () => {
        await openNewConnection(page);
        await page.fill('#node-config-oauth2-provider-search', 'Slack (user');
        await page.press('#node-config-oauth2-provider-search', 'Enter');
        assert.equal(await page.inputValue('#node-config-input-provider'), 'slack-user');
        assert.equal(await value(page, 'tokenEndpoint'), slack.endpoints.token);
        // The preset's behaviour, as the Advanced tab shows it.
        assert.equal(await value(page, 'tokenPath'), 'authed_user');
        assert.equal(await value(page, 'scopeSeparator'), ',');

        // Its endpoints pointed at the imitation, the imitation's client.
        await page.fill('#node-config-input-authorizationEndpoint', provider.authorizeUrl);
        await page.fill('#node-config-input-tokenEndpoint', provider.tokenUrl);
        await page.fill('#node-config-input-revocationEndpoint', '');
        await openTab(page, 1, '#node-config-input-clientId');
        await page.fill('#node-config-input-clientId', provider.client.clientId);
        await page.fill('#node-config-input-clientSecret', provider.client.clientSecret);
        await page.fill('#node-config-input-scopes', 'chat:write users:read');

        const popupPromise = session.context.waitForEvent('page');
        await page.click('#node-config-oauth2-login');
        const popup = await popupPromise;
        await popup.waitForEvent('close', { timeout: 30_000 }).catch(() => undefined);
        await page.locator('#node-config-oauth2-details li', { hasText: 'until the API refuses it' }).waitFor({ timeout: 15_000 });
        watchText(await trayText(page));
        // The scopes went comma-separated (the imitation refuses a space), the code was exchanged, and the token
        // read is the user's under authed_user, not the top-level bot token.
        assert.equal(provider.authorizeRequests[0]?.params.scope, 'chat:write,users:read');
        assert.equal(provider.authorizeRequests[0]?.params.user_scope, 'users:read', 'the preset\'s extra authorize parameter');
        assert.deepEqual(provider.tokenRequests.map((r) => r.outcome), ['issued']);
        const details = (await page.locator('#node-config-oauth2-details').innerText()).replace(/\s+/g, ' ');
        assert.match(details, /Granted scopes: [^.]*chat:write/, details);
        await session.shot('connection-provider-slack-login');
        await closeConnectionDialog(page);
      });
    } finally {
      await provider.close();
    }
    assert.deepEqual(runtime.crashes, []);
    assert.deepEqual(session.pageErrors, []);
  });
});
