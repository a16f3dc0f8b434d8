/**
 * Helpers shared by the browser tests: open each of the package's three dialogs as the editor does, check
 * their layout, take their screenshots, and read the help the sidebar shows.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Page } from 'playwright-core';
import { dialogLayoutProblems, dismissNotifications, settleTray, type BrowserSession, type EditorGlobal } from '../support/browser';

export interface PackageNodes {
  connection: string;
  request: string;
  recordChange: string;
}

/** Opens the connection's dialog (the config-node editor) and waits until it has read the login status. */
export async function openConnectionDialog(page: Page, id: string): Promise<void> {
  await dismissNotifications(page);
  await page.evaluate((conn) => (window as unknown as EditorGlobal).RED.editor.editConfig('', 'oauth2-connection', conn), id);
  await waitConnectionDialog(page);
}

export async function waitConnectionDialog(page: Page): Promise<void> {
  await page.locator('#node-config-oauth2-login').waitFor({ state: 'attached' });
  await page.waitForFunction(() => (document.querySelector('#node-config-oauth2-state')?.textContent ?? '').trim() !== '');
}

export async function closeConnectionDialog(page: Page, how: 'ok' | 'cancel' = 'cancel'): Promise<void> {
  await page.click(how === 'ok' ? '#node-config-dialog-ok' : '#node-config-dialog-cancel');
  await page.locator('#node-config-oauth2-login').waitFor({ state: 'detached' });
}

export async function openNodeDialog(page: Page, id: string): Promise<void> {
  await dismissNotifications(page);
  await page.evaluate((nodeId) => {
    const { RED } = window as unknown as EditorGlobal;
    RED.editor.edit(RED.nodes.node(nodeId));
  }, id);
  await page.locator('#node-input-connection').waitFor({ state: 'attached' });
}

export async function closeNodeDialog(page: Page): Promise<void> {
  await page.click('#node-dialog-cancel');
  await page.locator('#node-input-connection').waitFor({ state: 'detached' });
}

/**
 * Each dialog (every tab of the connection's) checked for layout problems and shot as
 * <shotDir>/<tag>-dialog-<name>.png. Returns the files and the problems found, each named by its dialog.
 */
export async function checkDialogs(session: BrowserSession, nodes: PackageNodes, tag: string): Promise<{ shots: string[]; problems: string[] }> {
  const { page } = session;
  const shots: string[] = [];
  const problems: string[] = [];
  const look = async (name: string): Promise<void> => {
    await settleTray(page);
    await dismissNotifications(page);
    problems.push(...(await dialogLayoutProblems(page)).map((p) => `${tag} ${name}: ${p}`));
    shots.push(await session.shot(`${tag}-dialog-${name}`));
  };

  await openConnectionDialog(page, nodes.connection);
  const tabs = page.locator('#node-config-oauth2-connection-tabs li a');
  const count = await tabs.count();
  if (count < 4) problems.push(`${tag} connection: ${count} tabs`);
  for (let i = 0; i < count; i += 1) {
    await tabs.nth(i).click();
    await look(`connection-${i + 1}`);
  }
  await closeConnectionDialog(page);

  await openNodeDialog(page, nodes.request);
  await look('request');
  await closeNodeDialog(page);

  await openNodeDialog(page, nodes.recordChange);
  await look('record-change');
  // The preview's result table too, as the user sees it after pressing the button.
  await page.click('#node-input-oauth2-rc-preview');
  await page.waitForFunction(() => {
    const summary = document.querySelector('#node-input-oauth2-rc-preview-summary');
    const button = document.querySelector<HTMLButtonElement>('#node-input-oauth2-rc-preview');
    return summary && (summary.textContent ?? '').trim() !== '' && button && !button.disabled;
  });
  await page.locator('#node-input-oauth2-rc-preview-section').scrollIntoViewIfNeeded();
  await look('record-change-preview');
  // A list by POST with the cursor in the body shows the body and three more pagination rows.
  await page.selectOption('#node-input-method', 'POST');
  await page.fill('#node-input-body', '{"filter": {"updated_since": "{{since}}"}, "limit": 100}');
  await page.selectOption('#node-input-pagination', 'body-cursor');
  await page.locator('#node-input-paginationMorePath').scrollIntoViewIfNeeded();
  await look('record-change-post');
  await closeNodeDialog(page);
  return { shots, problems };
}

/** The headings (h3) of a node's help in a language, read from the package's own help file. */
export function helpHeadings(lang: string, type: string): string[] {
  const file = path.join(__dirname, '../../locales', lang, `${type}.html`);
  const html = fs.readFileSync(file, 'utf8');
  return [...html.matchAll(/<h3>([^<]+)<\/h3>/g)].map((m) => m[1].trim());
}

/**
 * Shows a node type's help in the sidebar's help tab (what the book buttons of the editor do) and returns what
 * the tab shows: its title and its section headings.
 */
export async function sidebarHelp(page: Page, type: string): Promise<{ title: string; headings: string[]; text: string }> {
  await page.evaluate((t) => {
    const { RED } = window as unknown as EditorGlobal & { RED: { sidebar: { help: { show(type: string): void } } } };
    RED.sidebar.help.show(t);
  }, type);
  // The help tab's panel holds the help as a .red-ui-help inside its own .red-ui-help section.
  const help = page.locator('.red-ui-sidebar-help-stack .red-ui-help .red-ui-help').last();
  await help.waitFor({ state: 'visible' });
  await page.waitForFunction(() => document.querySelectorAll('.red-ui-sidebar-help-stack .red-ui-help .red-ui-help h3').length > 0);
  return help.evaluate((el) => ({
    title: (el.closest('.red-ui-sidebar-help-stack')?.querySelector('.red-ui-help-title, h1')?.textContent ?? '').trim(),
    headings: Array.from(el.querySelectorAll('h3')).map((h) => (h.textContent ?? '').trim()),
    text: (el as HTMLElement).innerText,
  }));
}
