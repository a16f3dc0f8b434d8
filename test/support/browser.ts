/**
 * A real browser for the editor tests: Debian's chromium (/usr/bin/chromium, installed by .ci/run) driven by
 * playwright-core, one chromium shared by the sessions of a run, a fresh context per session and a screenshot
 * directory. `step` wraps a test body so a failure leaves a screenshot of every open page and names it in the error.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';

export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

/** Flags that keep chromium quiet and offline apart from the loopback servers the test starts. */
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

export interface BrowserSession {
  context: BrowserContext;
  page: Page;
  /** Where screenshots go (a fresh temp dir). */
  shotDir: string;
  /** Uncaught errors of the editor page. */
  pageErrors: string[];
  /** Saves a full-window screenshot of `page` (default: the editor) as <shotDir>/<name>.png; returns the path. */
  shot(name: string, page?: Page): Promise<string>;
  close(): Promise<void>;
}

/** One chromium for every session of the process; each session is its own context (cookies, locale, theme). */
let shared: { browser: Promise<Browser>; users: number } | null = null;

function acquireBrowser(): Promise<Browser> {
  if (!shared) {
    shared = { browser: chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, headless: true }), users: 0 };
  }
  shared.users += 1;
  return shared.browser;
}

async function releaseBrowser(): Promise<void> {
  if (!shared) return;
  shared.users -= 1;
  if (shared.users > 0) return;
  const { browser } = shared;
  shared = null;
  await (await browser).close();
}

/**
 * A fresh browser context (no cookies, no storage) on the shared chromium. BROWSER_SHOTS=<dir> keeps the
 * screenshots there instead of a fresh temp dir (to look at them).
 */
export async function startBrowser(opts: { viewport?: { width: number; height: number }; locale?: string; colorScheme?: 'light' | 'dark' } = {}): Promise<BrowserSession> {
  if (!fs.existsSync(CHROMIUM)) {
    throw new Error(`${CHROMIUM} is missing: install Debian's chromium (apt-get install -y chromium; .ci/run does it)`);
  }
  const shotDir = process.env.BROWSER_SHOTS ?? fs.mkdtempSync(path.join(os.tmpdir(), 'nr-oauth2-browser-'));
  fs.mkdirSync(shotDir, { recursive: true });
  const browser = await acquireBrowser();
  let context: BrowserContext;
  try {
    context = await browser.newContext({
      viewport: opts.viewport ?? { width: 1400, height: 950 },
      locale: opts.locale ?? 'en-US',
      colorScheme: opts.colorScheme ?? 'light',
    });
  } catch (err) {
    await releaseBrowser();
    throw err;
  }
  // tsx (esbuild, keepNames) wraps named functions in __name(): functions passed to page.evaluate carry that
  // call into the page, which has no such helper.
  await context.addInitScript({ content: 'window.__name = function (f) { return f; };' });
  const page = await context.newPage();
  // Short waits: every step waits for a condition, and a failure should not eat the suite's time budget.
  context.setDefaultTimeout(10_000);
  const pageErrors: string[] = [];
  page.on('pageerror', (e) => pageErrors.push(String(e)));
  let closed = false;
  return {
    context,
    page,
    shotDir,
    pageErrors,
    async shot(name, target = page) {
      const file = path.join(shotDir, `${name.replace(/[^\w.-]+/g, '-')}.png`);
      await target.screenshot({ path: file });
      return file;
    },
    async close() {
      if (closed) return;
      closed = true;
      await context.close().catch(() => undefined);
      await releaseBrowser();
    },
  };
}

/**
 * Runs `body`; when it throws, screenshots every open page of the session into its shot dir and rethrows with
 * their paths (and the editor's uncaught errors) added to the message.
 */
export async function step<T>(session: BrowserSession, name: string, body: () => Promise<T>): Promise<T> {
  const started = Date.now();
  try {
    const result = await body();
    if (process.env.STEP_TIMES) console.log(`      step ${name}: ${Date.now() - started} ms`);
    return result;
  } catch (err) {
    const shots: string[] = [];
    for (const [i, p] of session.context.pages().entries()) {
      try {
        shots.push(await session.shot(`FAILED-${name}-${i}`, p));
      } catch {
        // a page that closed meanwhile
      }
    }
    const extra = `\n  screenshots: ${shots.join(', ') || 'none'} (in ${session.shotDir})` +
      (session.pageErrors.length ? `\n  editor page errors: ${session.pageErrors.join(' | ')}` : '');
    // A new error: mocha prints the stack, which carries the message as it was when the error was made.
    const failure = new Error(`${name}: ${err instanceof Error ? err.message : String(err)}${extra}`, { cause: err });
    if (err instanceof Error && err.stack) failure.stack = `${failure.message}\n${err.stack.split('\n').filter((l) => /^\s+at /.test(l)).join('\n')}`;
    throw failure;
  }
}

// ---------------------------------------------------------------------------------------------------------
// The Node-RED editor
// ---------------------------------------------------------------------------------------------------------

/** The editor API the tests reach through page.evaluate (only what they use). */
export interface EditorGlobal {
  RED: {
    nodes: {
      getType(type: string): unknown;
      node(id: string): unknown;
      eachNode(cb: (n: { id: string; type: string }) => void): void;
    };
    editor: { editConfig(name: string, type: string, id: string): void; edit(node: unknown): void };
    view: { importNodes(flow: unknown): void };
  };
}

/** Opens the editor and waits until it has loaded the palette, this package's node types and the flows. */
export async function openEditor(page: Page, url: string): Promise<void> {
  await page.goto(url);
  await page.waitForSelector('#red-ui-palette-container .red-ui-palette-node', { timeout: 30_000 });
  await page.waitForFunction(
    () => {
      const { RED } = window as unknown as EditorGlobal;
      return Boolean(RED?.nodes?.getType('oauth2-connection') && RED.nodes.getType('http-oauth2-request') && RED.nodes.getType('oauth2-record-change'));
    },
    undefined,
    { timeout: 30_000 },
  );
  // The loading overlay goes away once the flows are in.
  await page.waitForSelector('#red-ui-loading-progress', { state: 'hidden', timeout: 30_000 }).catch(() => undefined);
  await page.waitForSelector('#red-ui-workspace-chart svg', { timeout: 30_000 });
}

/** Menu -> Import -> paste the JSON -> Import, as a user would (the flow carries its own tab). */
export async function importThroughDialog(page: Page, flow: unknown[]): Promise<void> {
  await page.click('#red-ui-header-button-sidemenu');
  await page.click('#menu-item-import');
  const text = page.locator('#red-ui-clipboard-dialog-import-text');
  await text.waitFor({ state: 'visible' });
  await text.fill(JSON.stringify(flow));
  // The dialog validates the JSON on keyup (and paste), not on input: end with a key press as typing would.
  await text.press('End');
  const ok = page.locator('#red-ui-clipboard-dialog-ok');
  await ok.waitFor({ state: 'visible' });
  await page.waitForFunction(() => !document.querySelector<HTMLButtonElement>('#red-ui-clipboard-dialog-ok')?.disabled);
  await ok.click();
  await text.waitFor({ state: 'hidden' });
}

/**
 * Hides the editor's transient notifications (they can cover the buttons the test clicks). Hidden, not
 * removed: the editor removes them itself later and throws if they are gone.
 */
export async function dismissNotifications(page: Page): Promise<void> {
  await page.evaluate(() => document.querySelectorAll<HTMLElement>('.red-ui-notification').forEach((n) => {
    n.style.visibility = 'hidden';
    n.style.pointerEvents = 'none';
  }));
}

/** Closes every open edit dialog (as Cancel would): a failed test leaves none behind for the next one. */
export async function closeTrays(page: Page): Promise<void> {
  if (page.isClosed()) return;
  await page.evaluate(() => {
    const { RED } = window as unknown as { RED?: { tray?: { close(): void } } };
    for (let i = 0; i < 5 && document.querySelector('.red-ui-tray'); i += 1) RED?.tray?.close();
  }).catch(() => undefined);
  await page.waitForFunction(() => !document.querySelector('.red-ui-tray'), undefined, { timeout: 5_000 }).catch(() => undefined);
}

/** Text of the editor's open tray (the edit dialog), whitespace collapsed. */
export async function trayText(page: Page): Promise<string> {
  const text = await page.locator('.red-ui-tray').last().innerText();
  return text.replace(/\s+/g, ' ');
}

/** Waits until the edit tray has finished sliding in (its position stops moving), so a screenshot shows all of it. */
export async function settleTray(page: Page): Promise<void> {
  await page.locator('.red-ui-tray').last().waitFor({ state: 'visible' });
  await page.waitForFunction(() => {
    const trays = document.querySelectorAll<HTMLElement>('.red-ui-tray');
    const tray = trays[trays.length - 1];
    const w = window as unknown as { __trayLeft?: number };
    const left = tray?.getBoundingClientRect().left;
    const settled = left !== undefined && left === w.__trayLeft && tray.getBoundingClientRect().right <= window.innerWidth;
    w.__trayLeft = left;
    return settled;
  }, undefined, { polling: 100 });
}

/** Presses Deploy and waits until the editor says the flows are deployed (confirming a warning if one shows). */
export async function deployWithButton(page: Page): Promise<void> {
  await dismissNotifications(page);
  await page.waitForFunction(() => !document.querySelector('#red-ui-header-button-deploy')?.classList.contains('disabled'));
  await page.locator('#red-ui-header-button-deploy').click();
  // A confirmation (unused config, invalid nodes) would stop here: confirm it if it shows. German says
  // "Erfolgreich übernommen (deploy)".
  const confirm = page.locator('button:has-text("Confirm deploy"):visible');
  const done = page.locator('.red-ui-notification-success', { hasText: /deployed|bereitgestellt|übernommen/i });
  await Promise.race([done.waitFor({ timeout: 15_000 }), confirm.first().waitFor({ timeout: 15_000 }).then(() => confirm.first().click())]);
  await done.waitFor({ timeout: 15_000 });
  await page.waitForFunction(() => document.querySelector('#red-ui-header-button-deploy')?.classList.contains('disabled'));
}

/**
 * Goes through the provider's own pages in a login popup until our callback page shows (#result): the login
 * form as `account` (skipped by the provider when its session is still on), then the consent form (skipped
 * when the grant exists). Returns which provider pages were shown; stops when the popup closes itself.
 */
export async function providerPages(popup: Page, account: { id: string; password: string }): Promise<string[]> {
  const seen: string[] = [];
  for (let i = 0; i < 4; i += 1) {
    const shown = popup.locator('form#login-form, form#consent-form, #result').first();
    const appeared = await shown.waitFor({ timeout: 15_000 }).then(() => true, (err: unknown) => {
      if (popup.isClosed()) return false;
      throw err;
    });
    if (!appeared) return seen;
    const id = (await shown.getAttribute('id').catch(() => null)) ?? '';
    if (id === 'result' || popup.isClosed()) return seen;
    seen.push(id);
    if (id === 'login-form') {
      await popup.fill('form#login-form input[name=username]', account.id);
      await popup.fill('form#login-form input[name=password]', account.password);
      await popup.click('form#login-form [type=submit]');
    } else {
      await popup.click('form#consent-form [type=submit]');
    }
    // Wait for this very form to go (the union above would match the next page's form at once).
    await popup.locator(`form#${id}`).waitFor({ state: 'detached', timeout: 15_000 }).catch((err: unknown) => {
      if (!popup.isClosed()) throw err;
    });
    if (popup.isClosed()) return seen;
  }
  throw new Error(`the provider kept showing forms: ${seen.join(', ')}`);
}

/**
 * What a user would find broken in the open edit dialog, read from the live layout (not from a picture):
 * a visible label, button or hint whose text is cut or runs into its input, content wider than the tray, an
 * icon that did not render, and text too faint on its background (contrast below 3:1, WCAG's floor for large
 * text and UI parts). An empty list: nothing found.
 */
export async function dialogLayoutProblems(page: Page): Promise<string[]> {
  return page.evaluate(() => {
    const problems: string[] = [];
    const trays = document.querySelectorAll<HTMLElement>('.red-ui-tray');
    const tray = trays[trays.length - 1];
    const body = tray?.querySelector<HTMLElement>('.red-ui-tray-body');
    if (!tray || !body) return ['no edit dialog is open'];
    const visible = (el: Element): boolean => {
      const r = el.getBoundingClientRect();
      const style = getComputedStyle(el);
      return r.width > 0 && r.height > 0 && style.visibility !== 'hidden' && style.display !== 'none';
    };
    const name = (el: Element): string => `${el.tagName.toLowerCase()}${el.id ? `#${el.id}` : ''} "${(el.textContent ?? '').trim().replace(/\s+/g, ' ').slice(0, 60)}"`;
    const trayRect = tray.getBoundingClientRect();
    if (body.scrollWidth > body.clientWidth + 1) problems.push(`the dialog scrolls sideways (${body.scrollWidth} > ${body.clientWidth})`);

    for (const el of Array.from(body.querySelectorAll<HTMLElement>('label, button, .form-tips, .red-ui-button, strong, li, td, th, [role=status] > div'))) {
      // Node-RED's own tab strips clip their labels by design (and are not ours).
      if (!visible(el) || (el.textContent ?? '').trim() === '' || el.closest('.red-ui-tabs')) continue;
      const style = getComputedStyle(el);
      // Screen-reader-only labels are 1px boxes on purpose.
      if (style.clip === 'rect(0px, 0px, 0px, 0px)' || (el.getBoundingClientRect().width <= 1 && style.overflow === 'hidden')) continue;
      // Content wider than its box: clipped, or spilling over what is next to it.
      if (el.clientWidth > 0 && el.scrollWidth > el.clientWidth + 1 && style.textOverflow !== 'ellipsis') {
        problems.push(`${name(el)} is cut (${el.scrollWidth} > ${el.clientWidth})`);
      }
      const r = el.getBoundingClientRect();
      if (r.right > trayRect.right + 1) problems.push(`${name(el)} runs out of the dialog`);
      if (el.tagName === 'LABEL') {
        const forId = el.getAttribute('for');
        const input = forId ? document.getElementById(forId) : null;
        if (input && visible(input) && input.getAttribute('type') !== 'checkbox') {
          const ir = input.getBoundingClientRect();
          const sameLine = ir.top < r.bottom && r.top < ir.bottom;
          if (sameLine && r.right > ir.left + 1) problems.push(`${name(el)} runs into its input`);
        }
      }
    }
    for (const icon of Array.from(body.querySelectorAll<HTMLElement>('i.fa'))) {
      if (!visible(icon)) continue;
      const glyph = getComputedStyle(icon, '::before').content;
      if (!glyph || glyph === 'none' || glyph === 'normal' || glyph === '""') problems.push(`icon ${icon.className} shows nothing`);
    }

    // Contrast of text against the background it is drawn on.
    const rgb = (c: string): number[] | null => {
      const m = c.match(/rgba?\(([^)]+)\)/);
      if (!m) return null;
      const parts = m[1].split(/[,/\s]+/).filter(Boolean).map(Number);
      return parts.length >= 3 ? parts : null;
    };
    const luminance = ([r, g, b]: number[]): number => {
      const lin = (v: number): number => {
        const s = v / 255;
        return s <= 0.03928 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4;
      };
      return 0.2126 * lin(r) + 0.7152 * lin(g) + 0.0722 * lin(b);
    };
    const backgroundOf = (el: Element | null): number[] => {
      for (let e = el; e; e = e.parentElement) {
        const c = rgb(getComputedStyle(e).backgroundColor);
        if (c && (c.length < 4 || c[3] > 0.5)) return c;
      }
      return [255, 255, 255];
    };
    for (const el of Array.from(body.querySelectorAll<HTMLElement>('label, .form-tips, [role=status] > div, #node-config-oauth2-details li, strong, td'))) {
      if (!visible(el) || (el.textContent ?? '').trim() === '') continue;
      const fg = rgb(getComputedStyle(el).color);
      if (!fg) continue;
      const l1 = luminance(fg);
      const l2 = luminance(backgroundOf(el));
      const ratio = (Math.max(l1, l2) + 0.05) / (Math.min(l1, l2) + 0.05);
      if (ratio < 3) problems.push(`${name(el)} is hard to read (contrast ${ratio.toFixed(2)}:1)`);
    }
    return problems;
  });
}
