/**
 * A real browser for the editor tests: Debian's chromium (/usr/bin/chromium, installed by .ci/run) driven by
 * playwright-core, with a fresh profile per session and a screenshot directory. `step` wraps a test body so a
 * failure leaves a screenshot of every open page and names it in the error.
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

export async function startBrowser(opts: { viewport?: { width: number; height: number }; locale?: string } = {}): Promise<BrowserSession> {
  if (!fs.existsSync(CHROMIUM)) {
    throw new Error(`${CHROMIUM} is missing: install Debian's chromium (apt-get install -y chromium; .ci/run does it)`);
  }
  const shotDir = fs.mkdtempSync(path.join(os.tmpdir(), 'nr-oauth2-browser-'));
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'nr-oauth2-chromium-'));
  // A persistent context is how playwright takes a user-data dir: a fresh one, so no state leaks between runs.
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    args: CHROMIUM_ARGS,
    headless: true,
    viewport: opts.viewport ?? { width: 1400, height: 950 },
    locale: opts.locale ?? 'en-US',
    colorScheme: 'light',
  });
  const page = context.pages()[0] ?? (await context.newPage());
  // Short waits: every step waits for a condition, and a failure should not eat the suite's time budget.
  context.setDefaultTimeout(10_000);
  const pageErrors: string[] = [];
  page.on('pageerror', (e) => pageErrors.push(String(e)));
  const browser: Browser | null = context.browser();
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
      await context.close();
      await browser?.close();
      fs.rmSync(profile, { recursive: true, force: true });
    },
  };
}

/**
 * Runs `body`; when it throws, screenshots every open page of the session into its shot dir and rethrows with
 * their paths (and the editor's uncaught errors) added to the message.
 */
export async function step<T>(session: BrowserSession, name: string, body: () => Promise<T>): Promise<T> {
  try {
    return await body();
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
