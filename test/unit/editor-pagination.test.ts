import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import * as vm from 'node:vm';
import { PAGINATION_KINDS, paginationFromConfig, validatePagination, type PaginationConfig } from '../../nodes/lib/http/pagination';
import { FORBIDDEN_SEGMENTS, readPath } from '../../nodes/lib/http/records';

interface EditorPagination {
  KINDS: string[];
  FIELDS: Record<string, string[]>;
  FORBIDDEN_SEGMENTS: string[];
  kindOf(kind: unknown): string;
  uses(kind: string, field: string): boolean;
  isDotPath(value: unknown): boolean;
  isParamName(value: unknown): boolean;
}

const root = path.resolve(__dirname, '..', '..');

/** resources/editor.js as the browser runs it: a script that sets window.HttpOAuth2Editor. */
function editorPagination(): EditorPagination {
  const window: { HttpOAuth2Editor?: { pagination: EditorPagination } } = {};
  vm.runInNewContext(readFileSync(path.join(root, 'resources', 'editor.js'), 'utf8'), { window });
  assert.ok(window.HttpOAuth2Editor, 'editor.js defines window.HttpOAuth2Editor');
  return window.HttpOAuth2Editor.pagination;
}

/** Which saved settings the engine reads for a kind: each one set to a value of its own, then looked for. */
const SETTING_OF: Record<string, keyof PaginationConfig> = {
  path: 'paginationPath', param: 'paginationParam', start: 'pageStart', sizeParam: 'pageSizeParam', size: 'pageSize', url: 'paginationUrl', morePath: 'paginationMorePath',
};
const EVERY_SETTING: PaginationConfig = { paginationPath: 'p', paginationParam: 'q', pageStart: 3, pageSizeParam: 'limit', pageSize: 7, paginationUrl: '/more', paginationMorePath: 'has_more' };
function engineFields(kind: string): string[] {
  const settings = paginationFromConfig({ pagination: kind, ...EVERY_SETTING }) as unknown as Record<string, unknown>;
  return Object.keys(settings)
    .filter((key) => key !== 'kind' && settings[key] !== undefined)
    .map((key) => SETTING_OF[key]!)
    .sort();
}

describe('editor pagination section (resources/editor.js) pinned to the engine', () => {
  const pages = editorPagination();

  it('offers exactly the engine\'s kinds, in its order', () => {
    assert.deepEqual([...pages.KINDS], [...PAGINATION_KINDS]);
  });

  it('shows for each kind exactly the settings the engine reads for it', () => {
    for (const kind of PAGINATION_KINDS) {
      assert.deepEqual([...(pages.FIELDS[kind] ?? [])].sort(), engineFields(kind), kind);
      validatePagination(paginationFromConfig({ pagination: kind, ...EVERY_SETTING }));
    }
  });

  it('accepts a dot path exactly when the engine can read it', () => {
    assert.deepEqual([...pages.FORBIDDEN_SEGMENTS].sort(), [...FORBIDDEN_SEGMENTS].sort());
    const body = { a: { b: [1] }, '@odata.nextLink': 'x', 'with space': { x: 1 } };
    const cases = ['a.b', 'a', '@odata.nextLink', 'a..b', '.a', 'a.', '__proto__', 'a.constructor', 'prototype.x', 'with space.x', ' a.b '];
    for (const p of cases) {
      // The engine refuses a path it will not walk: readPath answers undefined even on a body that has it.
      const segmentsOk = p.trim().split('.').every((s) => s !== '' && !FORBIDDEN_SEGMENTS.has(s));
      assert.equal(pages.isDotPath(p), segmentsOk, p);
      if (!segmentsOk) assert.equal(readPath(body, p), undefined, p);
    }
    assert.equal(readPath(body, 'a.b')?.toString(), '1');
    assert.equal(pages.isDotPath(''), false);
  });

  it('both node editors use the shared section and keep no list of their own', () => {
    for (const file of ['http-oauth2-request.html', 'oauth2-record-change.html']) {
      const html = readFileSync(path.join(root, 'nodes', file), 'utf8');
      assert.match(html, /HttpOAuth2Editor\.pagination|editor\.pagination/, file);
      assert.doesNotMatch(html, /\['none', 'link', 'next-url'/, `${file} keeps its own list of kinds`);
      assert.doesNotMatch(html, /__proto__/, `${file} keeps its own forbidden segments`);
    }
  });
});
