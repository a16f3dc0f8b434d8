import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';

// Keeps every language's message catalogs and help in step with en-US, the reference language.
// For each node of package.json's `node-red.nodes` and each directory under locales/:
//   - locales/<lang>/<node>.json exists, parses, and has exactly en-US's keys (flattened paths);
//   - every string is non-empty, and keeps the __placeholders__ of its en-US string (and adds none);
//   - locales/<lang>/<node>.html exists, has exactly one help script for the node type, and the same
//     headings and sections (h3/h4, definition lists, lists) and the same links as en-US's help.
// Adding a key or a help section to en-US without translating it makes this test fail.

const root = path.resolve(__dirname, '..', '..');
const localesDir = path.join(root, 'locales');
const REFERENCE = 'en-US';
// The languages the package promises (issue 4); any other directory under locales/ is checked too.
const REQUIRED_LANGUAGES = ['en-US', 'de', 'ja'];

type Catalog = Map<string, unknown>;

function nodeTypes(): string[] {
  const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as {
    'node-red'?: { nodes?: Record<string, string> };
  };
  return Object.keys(pkg['node-red']?.nodes ?? {});
}

function languages(): string[] {
  return fs
    .readdirSync(localesDir, { withFileTypes: true })
    .filter((entry) => entry.isDirectory())
    .map((entry) => entry.name)
    .sort();
}

/** Flattens a parsed catalog into dotted key paths → leaf values (objects are walked, everything else is a leaf). */
export function flatten(value: unknown, prefix = '', out: Catalog = new Map()): Catalog {
  if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
    for (const [key, child] of Object.entries(value as Record<string, unknown>)) {
      flatten(child, prefix ? `${prefix}.${key}` : key, out);
    }
  } else {
    out.set(prefix, value);
  }
  return out;
}

/** The keys of `reference` that `other` lacks, and the keys of `other` that `reference` does not have. */
export function diffKeys(reference: Catalog, other: Catalog): { missing: string[]; extra: string[] } {
  return {
    missing: [...reference.keys()].filter((key) => !other.has(key)).sort(),
    extra: [...other.keys()].filter((key) => !reference.has(key)).sort(),
  };
}

/** i18next interpolation tokens as Node-RED configures them: __name__. */
export function placeholders(text: string): string[] {
  return [...new Set(text.match(/__[A-Za-z0-9]+(?:[._-][A-Za-z0-9]+)*__/g) ?? [])].sort();
}

function readCatalog(lang: string, type: string): Catalog {
  const file = path.join(localesDir, lang, `${type}.json`);
  assert.ok(fs.existsSync(file), `${path.relative(root, file)} is missing`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (err) {
    assert.fail(`${path.relative(root, file)} does not parse: ${(err as Error).message}`);
  }
  assert.ok(parsed && typeof parsed === 'object' && !Array.isArray(parsed), `${path.relative(root, file)} is not an object`);
  assert.deepEqual(Object.keys(parsed as object), [type], `${path.relative(root, file)} must have the single top-level key "${type}"`);
  return flatten(parsed);
}

function readHelp(lang: string, type: string): string {
  const file = path.join(localesDir, lang, `${type}.html`);
  assert.ok(fs.existsSync(file), `${path.relative(root, file)} is missing`);
  return fs.readFileSync(file, 'utf8');
}

interface HelpShape {
  scripts: string[];
  headings: string[];
  counts: Record<string, number>;
  links: string[];
  unbalanced: string[];
}

const SECTION_TAGS = ['h3', 'h4', 'dl', 'dt', 'dd', 'ul', 'ol', 'li', 'pre'];
const VOID_TAGS = new Set(['br', 'hr', 'img', 'input', 'wbr']);

export function helpShape(html: string): HelpShape {
  const scripts = [...html.matchAll(/<script\b[^>]*\bdata-help-name\s*=\s*"([^"]*)"[^>]*>/g)].map((m) => m[1]);
  const headings = [...html.matchAll(/<(h[1-6])\b/gi)].map((m) => m[1].toLowerCase());
  const counts: Record<string, number> = {};
  for (const tag of SECTION_TAGS) counts[tag] = (html.match(new RegExp(`<${tag}\\b`, 'gi')) ?? []).length;
  const links = [...html.matchAll(/\bhref\s*=\s*"([^"]*)"/g)].map((m) => m[1]).sort();
  // Tags opened and closed out of order, or left open: a translation that broke the markup.
  const unbalanced: string[] = [];
  const stack: string[] = [];
  const body = html.replace(/<!--[\s\S]*?-->/g, '');
  for (const m of body.matchAll(/<(\/?)([a-zA-Z][a-zA-Z0-9]*)\b[^>]*?(\/?)>/g)) {
    const [, closing, rawName, selfClosing] = m;
    const name = rawName.toLowerCase();
    if (VOID_TAGS.has(name) || selfClosing) continue;
    if (!closing) {
      stack.push(name);
    } else if (stack[stack.length - 1] === name) {
      stack.pop();
    } else {
      unbalanced.push(`</${name}> at offset ${m.index} (open: ${stack.join(' > ') || 'none'})`);
      const at = stack.lastIndexOf(name);
      if (at >= 0) stack.length = at;
    }
  }
  for (const name of stack) unbalanced.push(`<${name}> never closed`);
  return { scripts, headings, counts, links, unbalanced };
}

const types = nodeTypes();
const langs = languages();

describe('locales', () => {
  it('package.json lists the nodes and locales/ holds en-US, de and ja', () => {
    assert.ok(types.length > 0, 'package.json has no node-red.nodes');
    for (const lang of REQUIRED_LANGUAGES) assert.ok(langs.includes(lang), `locales/${lang}/ is missing`);
  });

  describe('the checks themselves', () => {
    it('report a key that en-US gained and a translation lacks, and a key only the translation has', () => {
      const en = flatten({ n: { label: { name: 'Name', url: 'URL' }, status: { ok: '__code__' } } });
      const de = flatten({ n: { label: { name: 'Name' }, status: { ok: '__code__', old: 'alt' } } });
      assert.deepEqual(diffKeys(en, de), { missing: ['n.label.url'], extra: ['n.status.old'] });
    });

    it('find __placeholders__, including ones with dots, and nothing else', () => {
      assert.deepEqual(placeholders('__count__ of __total__ (__a.b__), not _x_ or __ alone'), ['__a.b__', '__count__', '__total__']);
    });

    it('see headings, sections, links and broken markup in help', () => {
      const shape = helpShape('<script type="text/html" data-help-name="x"><h3>A</h3><dl><dt>a<dd>b</dd></dl><a href="u">u</a></script>');
      assert.deepEqual(shape.scripts, ['x']);
      assert.deepEqual(shape.headings, ['h3']);
      assert.equal(shape.counts.dt, 1);
      assert.deepEqual(shape.links, ['u']);
      assert.ok(shape.unbalanced.length > 0);
    });
  });

  for (const type of types) {
    describe(type, () => {
      const reference = (): Catalog => readCatalog(REFERENCE, type);

      for (const lang of langs) {
        describe(lang, () => {
          it('has a catalog that parses, with no empty value', () => {
            const catalog = readCatalog(lang, type);
            const bad = [...catalog].filter(([, value]) => typeof value !== 'string' || value.trim() === '').map(([key]) => key);
            assert.deepEqual(bad, [], `locales/${lang}/${type}.json: empty or non-string values at ${bad.join(', ')}`);
          });

          if (lang !== REFERENCE) {
            it(`has exactly the keys of ${REFERENCE}`, () => {
              const { missing, extra } = diffKeys(reference(), readCatalog(lang, type));
              assert.ok(
                missing.length === 0 && extra.length === 0,
                `locales/${lang}/${type}.json is out of step with ${REFERENCE}:\n` +
                  `  missing (${missing.length}): ${missing.join(', ') || '-'}\n` +
                  `  extra (${extra.length}): ${extra.join(', ') || '-'}`,
              );
            });

            it(`keeps the __placeholders__ of every ${REFERENCE} string`, () => {
              const catalog = readCatalog(lang, type);
              const problems: string[] = [];
              for (const [key, enValue] of reference()) {
                const value = catalog.get(key);
                if (typeof enValue !== 'string' || typeof value !== 'string') continue;
                const expected = placeholders(enValue);
                const found = placeholders(value);
                const lost = expected.filter((p) => !value.includes(p));
                const added = found.filter((p) => !expected.includes(p));
                if (lost.length) problems.push(`${key}: lacks ${lost.join(', ')}`);
                if (added.length) problems.push(`${key}: has unknown ${added.join(', ')}`);
              }
              assert.deepEqual(problems, [], `locales/${lang}/${type}.json:\n  ${problems.join('\n  ')}`);
            });
          }

          it('has a help file with one help script for the node type and well-formed markup', () => {
            const shape = helpShape(readHelp(lang, type));
            assert.deepEqual(shape.scripts, [type], `locales/${lang}/${type}.html must hold exactly one <script data-help-name="${type}">`);
            assert.deepEqual(shape.unbalanced, [], `locales/${lang}/${type}.html has broken markup`);
          });

          if (lang !== REFERENCE) {
            it(`has the headings, sections and links of the ${REFERENCE} help`, () => {
              const en = helpShape(readHelp(REFERENCE, type));
              const tr = helpShape(readHelp(lang, type));
              assert.deepEqual(tr.headings, en.headings, `locales/${lang}/${type}.html: headings differ from ${REFERENCE}`);
              assert.deepEqual(tr.counts, en.counts, `locales/${lang}/${type}.html: sections differ from ${REFERENCE}`);
              assert.deepEqual(tr.links, en.links, `locales/${lang}/${type}.html: links differ from ${REFERENCE}`);
            });
          }
        });
      }
    });
  }
});
