import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import catalogue from '../../nodes/lib/providers/catalogue.json';
import {
  FACT_FIELDS,
  PresetError,
  fillTemplate,
  isStandard,
  templateVariables,
  validateCatalogue,
  validatePreset,
  type ProviderPreset,
} from '../../nodes/lib/providers/schema';

const presets = catalogue as unknown as ProviderPreset[];

/** Every string of a value, with the path it sits at. */
function strings(value: unknown, path: string, out: { path: string; text: string }[] = []): { path: string; text: string }[] {
  if (typeof value === 'string') out.push({ path, text: value });
  else if (Array.isArray(value)) value.forEach((v, i) => strings(v, `${path}[${i}]`, out));
  else if (value && typeof value === 'object') for (const [k, v] of Object.entries(value)) strings(v, `${path}.${k}`, out);
  return out;
}

/** Every URL template of a preset: endpoints, issuer, API base, origins, registration page, lookup. */
function urlTemplates(p: ProviderPreset): { field: string; url: string }[] {
  const list = [
    { field: 'registerAppUrl', url: p.registerAppUrl },
    ...Object.entries(p.endpoints).map(([k, url]) => ({ field: `endpoints.${k}`, url: url as string })),
    ...p.allowedOrigins.map((url, i) => ({ field: `allowedOrigins[${i}]`, url })),
    ...p.docs.map((d, i) => ({ field: `docs[${i}].url`, url: d.url })),
  ];
  if (p.issuer) list.push({ field: 'issuer', url: p.issuer });
  if (p.apiBaseUrl) list.push({ field: 'apiBaseUrl', url: p.apiBaseUrl });
  if (p.deviations.postLoginLookup) list.push({ field: 'deviations.postLoginLookup.url', url: p.deviations.postLoginLookup.url });
  return list;
}

function examples(p: ProviderPreset): Record<string, string> {
  return Object.fromEntries(p.variables.map((v) => [v.name, v.example]));
}

function refusal(preset: unknown): PresetError {
  try {
    validatePreset(preset);
  } catch (err) {
    assert.ok(err instanceof PresetError, String(err));
    return err;
  }
  assert.fail('the preset was accepted');
}

describe('provider catalogue', () => {
  it('holds at least 25 presets, ids unique, and every one validates', () => {
    assert.ok(presets.length >= 25, `${presets.length} presets`);
    assert.equal(new Set(presets.map((p) => p.id)).size, presets.length);
    assert.doesNotThrow(() => validateCatalogue(catalogue));
    for (const p of presets) assert.doesNotThrow(() => validatePreset(p), p.id);
  });

  it('every endpoint, docs page and other URL is https once the variables are filled', () => {
    for (const p of presets) {
      for (const { field, url } of urlTemplates(p)) {
        const parsed = new URL(fillTemplate(url, examples(p)));
        assert.equal(parsed.protocol, 'https:', `${p.id}.${field}`);
        assert.equal(templateVariables(parsed.href).length, 0, `${p.id}.${field} keeps a placeholder`);
      }
    }
  });

  it('every {{variable}} used is declared, and every declared variable is used', () => {
    for (const p of presets) {
      const declared = new Set(p.variables.map((v) => v.name));
      const used = new Set(urlTemplates(p).flatMap(({ url }) => templateVariables(url)));
      for (const name of used) assert.ok(declared.has(name), `${p.id} uses {{${name}}} without declaring it`);
      for (const name of declared) assert.ok(used.has(name), `${p.id} declares {{${name}}} and never uses it`);
      // Placeholders anywhere else (parameters, scopes) are not filled by anything: none may appear there.
      const elsewhere = strings({ ...p, endpoints: undefined, issuer: undefined, apiBaseUrl: undefined, allowedOrigins: undefined, registerAppUrl: undefined, deviations: { ...p.deviations, postLoginLookup: undefined } }, p.id)
        .filter((s) => !s.path.includes('.notes.') && templateVariables(s.text).length);
      assert.deepEqual(elsewhere, [], `${p.id} has placeholders outside URL templates`);
    }
  });

  it('every variable names the field as the provider does, gives an example, and its pattern keeps URLs whole', () => {
    for (const p of presets) {
      for (const v of p.variables) {
        const re = new RegExp(v.pattern);
        assert.ok(v.label.length > 2, `${p.id}.${v.name} label`);
        assert.ok(re.test(v.example), `${p.id}.${v.name} example`);
        if (v.default !== undefined) assert.ok(re.test(v.default), `${p.id}.${v.name} default`);
        for (const evil of ['evil.example/', 'x@evil.example', 'a?b', 'a#b', 'a b', '', 'evil.example\\x']) {
          assert.ok(!re.test(evil), `${p.id}.${v.name} accepts ${JSON.stringify(evil)}`);
        }
      }
    }
  });

  it('carries no secret-looking value', () => {
    const secretKey = /^(client_?secret|secret|password|access_?token|refresh_?token|id_?token|api_?key)$/i;
    const secretValue = [
      /\b(xox[abpr]-|gh[pousr]_|glpat-|sk_(live|test)_|EAA[A-Za-z0-9]{20})/, // well-known token prefixes
      /\bBearer\s+[A-Za-z0-9._~+/-]{8,}/i,
      /\beyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}/, // a JWT
    ];
    // A long alphanumeric run with digits in it (hex keys, secrets); dashed words and dates in URL paths are not.
    const opaque = (text: string) => (text.match(/[A-Za-z0-9]{24,}/g) ?? []).some((run) => (run.match(/[0-9]/g) ?? []).length >= 4);
    for (const p of presets) {
      const all = strings(p, p.id);
      for (const { path, text } of all) {
        if (/\.notes\./.test(path)) continue; // prose
        for (const re of secretValue) assert.doesNotMatch(text, re, path);
        assert.ok(!opaque(text), `${path} looks like a key: ${text}`);
      }
      const keys = JSON.stringify(p).match(/"([^"]+)":/g) ?? [];
      for (const k of keys) assert.doesNotMatch(k.slice(1, -2), secretKey, `${p.id} has a key ${k}`);
      for (const param of [...p.authorizeParams, ...p.tokenParams]) {
        assert.doesNotMatch(param.name, /secret|password|token$/i, `${p.id} parameter ${param.name}`);
      }
    }
  });

  it('every fact is traced to a docs page or listed as unverified, and every "unknown" is explained', () => {
    for (const p of presets) {
      const covered = new Set(p.docs.flatMap((d) => d.covers.flatMap((c) => (FACT_FIELDS.includes(c) ? [c] : FACT_FIELDS.filter((f) => f.startsWith(`${c}.`))))));
      const unverified = new Set((p.notes.unverified ?? []).map((u) => u.field));
      for (const fact of FACT_FIELDS) {
        const [head, tail] = fact.split('.') as [keyof ProviderPreset, string | undefined];
        const value = tail === undefined ? p[head] : (p[head] as unknown as Record<string, unknown>)[tail];
        if (value === undefined || (Array.isArray(value) && !value.length) || isStandard(p as unknown as Record<string, unknown>, fact)) continue;
        assert.ok(covered.has(fact) || unverified.has(fact), `${p.id}.${fact} is neither documented nor marked unverified`);
        if (value === 'unknown') assert.ok(unverified.has(fact), `${p.id}.${fact} is unknown without a reason`);
      }
    }
  });

  it('presets fill every connection field the engine checks: https endpoints, known auth method, no reserved parameter', () => {
    for (const p of presets) {
      assert.ok(p.grants.length, p.id);
      if (p.grants.includes('authorization_code')) assert.ok(p.endpoints.authorization, `${p.id} authorization endpoint`);
      assert.ok(['client_secret_basic', 'client_secret_post', 'none'].includes(p.authMethod), p.id);
      for (const v of p.deviations.tokenResponseValues ?? []) {
        if (v.setsApiBaseUrl) {
          const re = new RegExp(v.pattern as string);
          for (const evil of ['https://evil.example', 'http://evil.example', 'https://evil.example/x.salesforce.com']) {
            assert.ok(!re.test(evil), `${p.id} ${v.from} accepts ${evil}`);
          }
        }
      }
    }
  });
});

describe('docs/PROVIDERS.md', () => {
  it('lists every preset with its unverified facts', () => {
    const doc = readFileSync(path.resolve(__dirname, '..', '..', 'docs', 'PROVIDERS.md'), 'utf8');
    for (const p of presets) {
      assert.ok(doc.includes(`| \`${p.id}\` |`), `${p.id} missing from the table`);
      const section = doc.split(`(\`${p.id}\`)`)[1]?.split('\n### ')[0] ?? '';
      for (const u of p.notes.unverified ?? []) assert.ok(section.includes(`\`${u.field}\``), `${p.id}.${u.field} missing from the unverified list`);
    }
  });
});

describe('validatePreset names the bad field', () => {
  const base = presets.find((p) => p.id === 'microsoft') as ProviderPreset;
  const clone = (): ProviderPreset => JSON.parse(JSON.stringify(base)) as ProviderPreset;

  it('an http endpoint', () => {
    const p = clone();
    p.endpoints.token = 'http://login.microsoftonline.com/{{tenant}}/oauth2/v2.0/token';
    assert.equal(refusal(p).field, 'microsoft.endpoints.token');
  });

  it('a placeholder that is not declared', () => {
    const p = clone();
    p.endpoints.authorization = 'https://login.microsoftonline.com/{{tenantId}}/oauth2/v2.0/authorize';
    const err = refusal(p);
    assert.equal(err.field, 'microsoft.endpoints.authorization');
    assert.match(err.reason, /tenantId/);
  });

  it('a variable no template uses', () => {
    const p = clone();
    p.variables.push({ name: 'region', label: 'Region', example: 'eu', pattern: '^[a-z]+$' });
    assert.equal(refusal(p).field, 'microsoft.variables');
  });

  it('a variable pattern that lets a slash into the host', () => {
    const p = clone();
    (p.variables[0] as { pattern: string }).pattern = '^.+$';
    assert.equal(refusal(p).field, 'microsoft.variables[0].pattern');
  });

  it('an example that does not match its pattern', () => {
    const p = clone();
    (p.variables[0] as { example: string }).example = 'not a tenant';
    assert.equal(refusal(p).field, 'microsoft.variables[0].example');
  });

  it('a reserved parameter (state, scope, client_secret...)', () => {
    const p = clone();
    p.authorizeParams = [{ name: 'state', value: 'x' }];
    assert.equal(refusal(p).field, 'microsoft.authorizeParams[0].name');
    const q = clone();
    q.tokenParams = [{ name: 'client_secret', value: 'x' }];
    assert.equal(refusal(q).field, 'microsoft.tokenParams[0].name');
  });

  it('an unknown enum value', () => {
    const p = clone();
    (p as unknown as { pkce: string }).pkce = 'sometimes';
    assert.equal(refusal(p).field, 'microsoft.pkce');
    const q = clone();
    (q as unknown as { scopeSeparator: string }).scopeSeparator = ';';
    assert.equal(refusal(q).field, 'microsoft.scopeSeparator');
  });

  it('a fact no docs page covers and no note marks unverified', () => {
    const p = clone();
    p.notes.unverified = (p.notes.unverified ?? []).filter((u) => u.field !== 'authMethod');
    assert.equal(refusal(p).field, 'microsoft.authMethod');
  });

  it('"unknown" without a reason', () => {
    const p = clone();
    p.refreshTokenRotates = 'unknown';
    p.notes.unverified = (p.notes.unverified ?? []).filter((u) => u.field !== 'refreshTokenRotates');
    assert.equal(refusal(p).field, 'microsoft.refreshTokenRotates');
  });

  it('a value from the provider that would set the API base URL without a strict pattern', () => {
    const p = clone();
    p.deviations = { tokenResponseValues: [{ from: 'instance_url', as: 'instanceUrl', setsApiBaseUrl: true, pattern: '^https://.+$' }] };
    p.notes.unverified = [...(p.notes.unverified ?? []), { field: 'deviations.tokenResponseValues', why: 'test' }];
    assert.equal(refusal(p).field, 'microsoft.deviations.tokenResponseValues[0].pattern');
  });

  it('an unknown field, and a deviation the schema does not know', () => {
    const p = clone() as unknown as Record<string, unknown>;
    p.clientSecret = 'x';
    assert.equal(refusal(p).field, 'microsoft.clientSecret');
    const q = clone();
    (q.deviations as Record<string, unknown>).tokensInHeaders = true;
    assert.equal(refusal(q).field, 'microsoft.deviations.tokensInHeaders');
  });

  it('a duplicate id in a catalogue', () => {
    assert.throws(() => validateCatalogue([base, base]), (err: unknown) => err instanceof PresetError && err.field === 'catalogue[1].id');
  });
});

describe('templates', () => {
  it('fillTemplate puts values in and leaves unknown placeholders', () => {
    assert.equal(fillTemplate('https://{{shop}}.myshopify.com/{{x}}', { shop: 'a' }), 'https://a.myshopify.com/{{x}}');
    assert.deepEqual(templateVariables('https://{{domain}}/realms/{{ realm }}/x'), ['domain', 'realm']);
  });
});
