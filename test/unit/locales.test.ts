import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { ERROR_CODES, ERROR_PLACEHOLDERS, OAuth2Error, translateError, type ErrorParams, type OAuth2ErrorCode } from '../../nodes/lib/errors';
import { validateCallback } from '../../nodes/lib/oauth/callback';
import { mapEndpointFailure } from '../../nodes/lib/oauth/error-mapping';

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

// Every error message is filled: the catalogs' `errors.<code>` placeholders are exactly what ERROR_PLACEHOLDERS
// lists, and the OAuth2Error constructor's type requires those params (tsc checks every construction site; the
// expected type errors below fail the type check if it stops doing so). Then each code, built with the params its
// type requires and nothing more, translates to a text without a single `__` in every language.


function errorCatalog(lang: string, type: string): Map<string, unknown> {
  return flatten(JSON.parse(fs.readFileSync(path.join(root, 'locales', lang, `${type}.json`), 'utf8')));
}

/** Node-RED's `_` for one node's catalog: i18next's __name__ interpolation; a missing param stays as it is. */
function translator(lang: string, type: string): (key: string, params?: ErrorParams) => string {
  const entries = errorCatalog(lang, type);
  return (key, params) => {
    const text = entries.get(`${type}.${key}`);
    if (typeof text !== 'string') return key;
    return text.replace(/__([A-Za-z0-9]+)__/g, (whole, name: string) => (params?.[name] !== undefined ? String(params[name]) : whole));
  };
}

const required = (code: OAuth2ErrorCode): readonly string[] => {
  const names: readonly string[] = (ERROR_PLACEHOLDERS as Partial<Record<OAuth2ErrorCode, readonly string[]>>)[code] ?? [];
  // translateError fills `reason` when a field is named (see RequiredErrorParams).
  return names.includes('field') ? names.filter((n) => n !== 'reason') : names;
};

/** An error of `code` with exactly the params its constructor's type requires. */
function minimalError(code: OAuth2ErrorCode): OAuth2Error {
  const params: ErrorParams = {};
  for (const name of required(code)) params[name] = name === 'field' ? 'clientId' : `${name}-value`;
  // The code is a runtime value here: the per-code type of the options cannot be named, hence the cast.
  const make = OAuth2Error as unknown as new (c: OAuth2ErrorCode, m: string, o: { params: ErrorParams }) => OAuth2Error;
  return new make(code, `English ${code}`, { params });
}

describe('error messages: every placeholder is filled', () => {
  for (const lang of REQUIRED_LANGUAGES) {
    for (const type of nodeTypes()) {
      it(`${lang}/${type}: each errors.<code> uses exactly the placeholders its code lists`, () => {
        for (const [key, text] of errorCatalog(lang, type)) {
          const match = new RegExp(`^${type}\\.errors\\.(OAUTH2_[A-Z_]+)$`).exec(key);
          if (!match || typeof text !== 'string') continue;
          const code = match[1] as OAuth2ErrorCode;
          assert.ok(ERROR_CODES.includes(code), `${key}: not an error code`);
          const listed = [...((ERROR_PLACEHOLDERS as Partial<Record<string, readonly string[]>>)[code] ?? [])].sort();
          const used = placeholders(text).map((p) => p.slice(2, -2)).sort();
          const extra = used.filter((name) => !listed.includes(name));
          assert.deepEqual(extra, [], `${key} uses placeholders its code does not require: ${text}`);
          if (type === 'oauth2-connection') assert.deepEqual(used, listed, `${key}: ${text}`);
        }
      });
    }

    it(`${lang}: every code, built with only the params its type requires, translates with no __ left`, () => {
      for (const type of nodeTypes()) {
        const t = translator(lang, type);
        for (const code of ERROR_CODES) {
          if (!errorCatalog(lang, type).has(`${type}.errors.${code}`)) {
            assert.notEqual(type, 'oauth2-connection', `${lang}: the connection catalog has no message for ${code}`);
            continue;
          }
          const text = translateError(minimalError(code), t);
          assert.ok(!text.includes('__'), `${lang}/${type} ${code}: ${text}`);
          assert.notEqual(text, `English ${code}`, `${lang}/${type} ${code} was not translated`);
        }
      }
    });
  }

  it('errors as the engine raises them reach Catch filled: a 503 from the token endpoint, a login error without description', () => {
    const caught = (fn: () => unknown): unknown => {
      try {
        fn();
      } catch (err) {
        return err;
      }
      throw new Error('did not throw');
    };
    const raised = [
      mapEndpointFailure({ kind: 'http', status: 503, body: { error: 'temporarily_unavailable' } }, { host: 'auth.example', endpoint: 'token' }),
      mapEndpointFailure({ kind: 'http', status: 400, body: { error: 'invalid_client' } }, { host: 'auth.example', endpoint: 'token' }),
      caught(() => validateCallback({ state: 's', error: 'server_error' }, { state: 's', issRequired: false })),
    ];
    for (const lang of REQUIRED_LANGUAGES) {
      const t = translator(lang, 'oauth2-connection');
      for (const err of raised) {
        const text = translateError(err, t);
        assert.ok(!text.includes('__'), `${lang} ${(err as OAuth2Error).code}: ${text}`);
      }
    }
  });

  it('the constructor refuses, at compile time, an error missing a placeholder of its message', () => {
    const built = [
      // @ts-expect-error -- OAUTH2_REQUEST_FAILED's message needs host and attempts
      () => new OAuth2Error('OAUTH2_REQUEST_FAILED', 'x', { params: { host: 'h' } }),
      // @ts-expect-error -- OAUTH2_HTTP_STATUS's message needs statusCode
      () => new OAuth2Error('OAUTH2_HTTP_STATUS', 'x', { statusCode: 500 }),
      // @ts-expect-error -- an undefined value does not fill a placeholder
      () => new OAuth2Error('OAUTH2_PROVIDER_ERROR', 'x', { params: { error: 'e', description: undefined } }),
      () => new OAuth2Error('OAUTH2_INVALID_CONFIG', 'x', { params: { field: 'clientId' } }),
      () => new OAuth2Error('OAUTH2_LOGIN_REQUIRED', 'x'),
    ];
    for (const make of built) assert.ok(make() instanceof OAuth2Error);
  });
});
