/**
 * Provider presets: what a connection needs to talk to one named provider, as data (catalogue.json), each fact
 * traceable to the provider's own documentation. This file holds the shape and its validation only; filling a
 * connection from a preset (the editor's Provider field) and the deviation mechanisms (the engine) read it.
 *
 * Templates: endpoint URLs, the issuer, the API base URL, allowed origins, the registration page and a post-login
 * lookup URL may contain `{{name}}` placeholders, one per value the provider asks the user for (tenant, shop,
 * region...). Each placeholder is declared in `variables` with a pattern its value must match; a value is put in
 * as is (no encoding), so the patterns themselves keep `/`, `@`, `?`, `#` and whitespace out of a URL.
 *
 * Traceability: every fact a preset states (see FACT_FIELDS) is either listed in the `covers` of one of its
 * `docs` entries or named in `notes.unverified` with the reason it could not be confirmed. A value of 'unknown'
 * is always named there. The standard space separator of scopes needs no citation (isStandard).
 */
import { RESERVED_AUTHORIZE_PARAMS, RESERVED_TOKEN_PARAMS } from '../oauth/reserved-params';
import { REVOCATION_STYLES } from '../oauth/revocation';
import type { ClientAuthMethod, GrantType, RevocationStyle } from '../types';

export type PkceSupport = 'required' | 'optional' | 'refused' | 'unknown';
export type Tristate = true | false | 'unknown';
/**
 * When a refresh token comes with the tokens: always; only when an authorize or token parameter asks for it
 * (access_type=offline, token_access_type=offline); only when a scope asks for it (offline_access,
 * offline.access, refresh_token); only when the app's settings at the provider turn it on (Slack token rotation,
 * LinkedIn's partner programme); never.
 */
export type RefreshTokenIssued = 'always' | 'only-with-param' | 'only-with-scope' | 'only-with-app-setting' | 'never' | 'unknown';
export type ScopeSeparator = ' ' | ',';

export interface PresetDoc {
  /** A page of the provider's own documentation that was read for this preset. */
  url: string;
  /** The fact fields (FACT_FIELDS, or a group such as `endpoints` or `deviations`) that page confirms. */
  covers: string[];
}

export interface PresetVariable {
  /** The placeholder's name: `{{name}}`. */
  name: string;
  /** The field's label as the provider names it ("Directory (tenant) ID", "Store name"). */
  label: string;
  /** Filled in when the user gives nothing (Microsoft's `common`). */
  default?: string;
  /** A value that matches `pattern`, shown as the field's placeholder. */
  example: string;
  /** A regular expression (source, anchored with ^ and $) the whole value must match. */
  pattern: string;
}

export interface PresetParam {
  name: string;
  value: string;
}

export interface PresetEndpoints {
  authorization?: string;
  token: string;
  revocation?: string;
  device?: string;
}

/** A value a connection keeps from the provider's answers, readable by request and trigger nodes. */
export interface ConnectionValueSource {
  /** The field of the token response, or the callback's query parameter. */
  from: string;
  /** The connection value's name (`{{{connection.<as>}}}`), camelCase. */
  as: string;
  /** The value becomes the connection's API base URL (Salesforce instance_url, Zoho and Pipedrive api_domain). */
  setsApiBaseUrl?: boolean;
  /**
   * What the value must look like before it is kept (and before any token goes there): required when it sets the
   * API base URL, so a token response cannot send the bearer token to another host.
   */
  pattern?: string;
}

/** A call made once after login whose answer names the tenant or site the requests need (Xero, Atlassian). */
export interface PostLoginLookup {
  /** GET with the new access token; the answer is a JSON array. */
  url: string;
  /** The field of an array item to keep (the first item unless the user picks another). */
  pick: string;
  /** The connection value's name. */
  as: string;
  /** When the value must go in a request header rather than the URL (Xero: `xero-tenant-id`). */
  header?: string;
}

/**
 * The generic deviation classes of issue 15 a provider shows. Absent means standard behaviour (RFC 6749: JSON
 * answers, errors as 4xx with `error`, tokens at the top level, `expires_in`).
 */
export interface PresetDeviations {
  /** The token endpoint answers JSON only when the request says `Accept: application/json` (else form-encoded). */
  acceptJsonRequired?: boolean;
  /** The token endpoint answers `application/x-www-form-urlencoded` whatever is asked. */
  formEncodedTokenResponse?: boolean;
  /** An HTTP 200 answer can be an error: an `error` field, or `ok: false`. */
  errorInSuccessStatus?: 'error-field' | 'ok-false';
  /** The tokens sit under this field of the token response (Slack user tokens: `authed_user`). */
  tokenPath?: string;
  /**
   * The API says "token expired" in the body: a JSONata condition over `{statusCode, headers, payload}`, the
   * connection's "Expired when" (`payload.ok = false and payload.error = 'token_expired'`).
   */
  expiredWhen?: string;
  /** How the access token's lifetime is given: `expires_in` (standard), an absolute `expires_at`, or not at all. */
  tokenExpiry?: 'expires-in' | 'expires-at' | 'none';
  /** Token-response fields that become connection values. */
  tokenResponseValues?: ConnectionValueSource[];
  /** Callback query parameters that become connection values. */
  callbackValues?: ConnectionValueSource[];
  /** A call after login that finds the tenant or site id. */
  postLoginLookup?: PostLoginLookup;
}

export interface PresetNotes {
  /** Facts this preset states that the provider's documentation read did not confirm, and why. */
  unverified?: { field: string; why: string }[];
  /** Anything else the user or the next maintainer should know. */
  remarks?: string[];
}

export interface ProviderPreset {
  /** Stable identifier, saved in flows (lowercase, digits, dashes). */
  id: string;
  /** The provider's name as shown in the list. */
  name: string;
  docs: PresetDoc[];
  /** Where an app (client) is registered with the provider. */
  registerAppUrl: string;
  grants: GrantType[];
  endpoints: PresetEndpoints;
  /** How the revocation endpoint wants tokens (oauth/revocation.ts); default rfc7009. */
  revocationStyle?: RevocationStyle;
  /** Set when the provider serves OpenID Connect / RFC 8414 discovery at this issuer. */
  issuer?: string;
  variables: PresetVariable[];
  defaultScopes: string[];
  scopeSeparator: ScopeSeparator;
  authorizeParams: PresetParam[];
  tokenParams: PresetParam[];
  authMethod: ClientAuthMethod;
  pkce: PkceSupport;
  apiBaseUrl?: string;
  allowedOrigins: string[];
  refreshTokenRotates: Tristate;
  refreshTokenIssued: RefreshTokenIssued;
  deviations: PresetDeviations;
  notes: PresetNotes;
}

/** The facts a preset states, each to be traced to a docs page or marked unverified. */
export const FACT_FIELDS: readonly string[] = [
  'grants',
  'endpoints.authorization',
  'endpoints.token',
  'endpoints.revocation',
  'endpoints.device',
  'revocationStyle',
  'issuer',
  'variables',
  'defaultScopes',
  'scopeSeparator',
  'authorizeParams',
  'tokenParams',
  'authMethod',
  'pkce',
  'apiBaseUrl',
  'refreshTokenRotates',
  'refreshTokenIssued',
  'deviations.acceptJsonRequired',
  'deviations.formEncodedTokenResponse',
  'deviations.errorInSuccessStatus',
  'deviations.tokenPath',
  'deviations.expiredWhen',
  'deviations.tokenExpiry',
  'deviations.tokenResponseValues',
  'deviations.callbackValues',
  'deviations.postLoginLookup',
];

/** Groups a docs entry may cover at once. */
const FACT_GROUPS: readonly string[] = ['endpoints', 'deviations'];

export class PresetError extends Error {
  constructor(
    /** The bad field's path, prefixed with the preset's id when known: `google.endpoints.token`. */
    readonly field: string,
    readonly reason: string,
  ) {
    super(`Invalid provider preset: ${field} ${reason}`);
    this.name = 'PresetError';
  }
}

const ID = /^[a-z0-9]+(-[a-z0-9]+)*$/;
const VARIABLE_NAME = /^[a-z][A-Za-z0-9]*$/;
const VALUE_NAME = /^[a-z][A-Za-z0-9]*$/;
const PLACEHOLDER = /\{\{\s*([^{}]*?)\s*\}\}/g;
const GRANTS: readonly GrantType[] = ['authorization_code', 'client_credentials', 'device_code'];
const AUTH_METHODS: readonly ClientAuthMethod[] = ['client_secret_basic', 'client_secret_post', 'none'];
const PKCE: readonly PkceSupport[] = ['required', 'optional', 'refused', 'unknown'];
const ISSUED: readonly RefreshTokenIssued[] = ['always', 'only-with-param', 'only-with-scope', 'only-with-app-setting', 'never', 'unknown'];
const EXPIRY = ['expires-in', 'expires-at', 'none'] as const;
const ERROR_200 = ['error-field', 'ok-false'] as const;
/** Characters a variable's value may never carry into a URL: they would change its host, path or query. */
const URL_BREAKERS = ['/', '@', '?', '#', ' ', '\\'];

/** The placeholder names a template uses, in order, duplicates kept. */
export function templateVariables(text: string): string[] {
  return [...text.matchAll(PLACEHOLDER)].map((m) => m[1] as string);
}

/** Puts values in for placeholders; a placeholder with no value is left as it is. */
export function fillTemplate(text: string, values: Readonly<Record<string, string>>): string {
  return text.replace(PLACEHOLDER, (whole, name: string) => (Object.prototype.hasOwnProperty.call(values, name) ? values[name] as string : whole));
}

type Json = Record<string, unknown>;

function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function fail(field: string, reason: string): never {
  throw new PresetError(field, reason);
}

function text(obj: Json, key: string, field: string, optional = false): string | undefined {
  const value = obj[key];
  if (value === undefined && optional) return undefined;
  if (typeof value !== 'string' || !value.trim()) fail(field, 'must be a non-empty string');
  if (value !== value.trim()) fail(field, 'must not start or end with whitespace');
  return value;
}

function oneOf<T>(value: unknown, allowed: readonly T[], field: string): T {
  if (!allowed.includes(value as T)) fail(field, `must be one of ${allowed.map((a) => JSON.stringify(a)).join(', ')}`);
  return value as T;
}

function stringList(value: unknown, field: string): string[] {
  if (!Array.isArray(value)) fail(field, 'must be an array');
  value.forEach((item, i) => {
    if (typeof item !== 'string' || !item.trim() || item !== item.trim()) fail(`${field}[${i}]`, 'must be a non-empty string');
  });
  return value as string[];
}

function anchoredPattern(source: string, field: string): RegExp {
  if (!source.startsWith('^') || !source.endsWith('$')) fail(field, 'must be anchored with ^ and $');
  try {
    return new RegExp(source);
  } catch {
    return fail(field, 'is not a valid regular expression');
  }
}

/**
 * Checks a URL template: every placeholder declared, and the URL with each variable's example put in is an https
 * URL with no credentials. Returns the placeholders it uses.
 */
function checkUrlTemplate(value: string, field: string, examples: ReadonlyMap<string, string>): string[] {
  const used = templateVariables(value);
  for (const name of used) if (!examples.has(name)) fail(field, `uses {{${name}}}, which is not declared in variables`);
  let url: URL;
  try {
    url = new URL(fillTemplate(value, Object.fromEntries(examples)));
  } catch {
    return fail(field, 'is not a URL once its variables are filled');
  }
  if (url.protocol !== 'https:') fail(field, 'must be https');
  if (url.username || url.password) fail(field, 'must not carry credentials');
  return used;
}

function checkParams(value: unknown, field: string, reserved: ReadonlySet<string>): PresetParam[] {
  if (!Array.isArray(value)) fail(field, 'must be an array');
  const seen = new Set<string>();
  value.forEach((entry, i) => {
    const at = `${field}[${i}]`;
    if (!isObject(entry)) fail(at, 'must be an object with name and value');
    const name = text(entry, 'name', `${at}.name`) as string;
    if (typeof entry.value !== 'string') fail(`${at}.value`, 'must be a string');
    if (reserved.has(name.toLowerCase())) fail(`${at}.name`, `"${name}" is set by the connection itself and may not be preset`);
    if (seen.has(name)) fail(`${at}.name`, `"${name}" is given twice`);
    seen.add(name);
    const extra = Object.keys(entry).filter((k) => k !== 'name' && k !== 'value');
    if (extra.length) fail(`${at}.${extra[0]}`, 'is not a field of a parameter');
  });
  return value as PresetParam[];
}

function checkValueSources(value: unknown, field: string): void {
  if (!Array.isArray(value) || !value.length) fail(field, 'must be a non-empty array');
  value.forEach((entry, i) => {
    const at = `${field}[${i}]`;
    if (!isObject(entry)) fail(at, 'must be an object');
    text(entry, 'from', `${at}.from`);
    const as = text(entry, 'as', `${at}.as`) as string;
    if (!VALUE_NAME.test(as)) fail(`${at}.as`, 'must be a camelCase name');
    if (entry.setsApiBaseUrl !== undefined && typeof entry.setsApiBaseUrl !== 'boolean') fail(`${at}.setsApiBaseUrl`, 'must be a boolean');
    const pattern = text(entry, 'pattern', `${at}.pattern`, true);
    if (pattern) {
      const re = anchoredPattern(pattern, `${at}.pattern`);
      // A provider-supplied base URL receives the bearer token: the pattern must pin https and the provider's hosts.
      if (entry.setsApiBaseUrl && (!pattern.startsWith('^https://') || re.test('https://evil.example'))) {
        fail(`${at}.pattern`, 'must start with ^https:// and refuse hosts outside the provider');
      }
    } else if (entry.setsApiBaseUrl) {
      fail(`${at}.pattern`, 'is required for a value that sets the API base URL');
    }
  });
}

function checkDeviations(value: unknown, field: string, examples: ReadonlyMap<string, string>, used: Set<string>): void {
  if (!isObject(value)) fail(field, 'must be an object');
  const known = new Set(FACT_FIELDS.filter((f) => f.startsWith('deviations.')).map((f) => f.slice('deviations.'.length)));
  for (const key of Object.keys(value)) if (!known.has(key)) fail(`${field}.${key}`, 'is not a known deviation');
  for (const key of ['acceptJsonRequired', 'formEncodedTokenResponse'] as const) {
    if (value[key] !== undefined && value[key] !== true) fail(`${field}.${key}`, 'must be true or absent');
  }
  if (value.errorInSuccessStatus !== undefined) oneOf(value.errorInSuccessStatus, ERROR_200, `${field}.errorInSuccessStatus`);
  if (value.tokenPath !== undefined) {
    const path = text(value, 'tokenPath', `${field}.tokenPath`) as string;
    if (!/^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$/.test(path)) fail(`${field}.tokenPath`, 'must be a dotted field path');
  }
  if (value.tokenExpiry !== undefined) oneOf(value.tokenExpiry, EXPIRY, `${field}.tokenExpiry`);
  if (value.expiredWhen !== undefined) text(value, 'expiredWhen', `${field}.expiredWhen`);
  if (value.tokenResponseValues !== undefined) checkValueSources(value.tokenResponseValues, `${field}.tokenResponseValues`);
  if (value.callbackValues !== undefined) checkValueSources(value.callbackValues, `${field}.callbackValues`);
  if (value.postLoginLookup !== undefined) {
    const lookup = value.postLoginLookup;
    const at = `${field}.postLoginLookup`;
    if (!isObject(lookup)) fail(at, 'must be an object');
    const url = text(lookup, 'url', `${at}.url`) as string;
    checkUrlTemplate(url, `${at}.url`, examples).forEach((n) => used.add(n));
    text(lookup, 'pick', `${at}.pick`);
    const as = text(lookup, 'as', `${at}.as`) as string;
    if (!VALUE_NAME.test(as)) fail(`${at}.as`, 'must be a camelCase name');
    text(lookup, 'header', `${at}.header`, true);
  }
}

/** Whether the preset states the fact at `path` (a FACT_FIELDS entry): present and not empty. */
function states(preset: Json, path: string): boolean {
  const [head, tail] = path.split('.') as [string, string | undefined];
  const value = tail === undefined ? preset[head] : (preset[head] as Json | undefined)?.[tail];
  if (value === undefined) return false;
  if (Array.isArray(value)) return value.length > 0;
  return true;
}

/**
 * Facts whose value is what the standards say (RFC 6749 section 3.3 and OpenID Connect: space-delimited scopes)
 * need no citation; stating the deviation does.
 */
export function isStandard(preset: Readonly<Record<string, unknown>>, fact: string): boolean {
  return fact === 'scopeSeparator' && preset.scopeSeparator === ' ';
}

function checkTraceability(preset: Json, docs: PresetDoc[], unverified: { field: string; why: string }[]): void {
  const covered = new Set<string>();
  docs.forEach((doc, i) => {
    doc.covers.forEach((c, j) => {
      const at = `docs[${i}].covers[${j}]`;
      if (FACT_GROUPS.includes(c)) {
        FACT_FIELDS.filter((f) => f.startsWith(`${c}.`)).forEach((f) => covered.add(f));
      } else if (FACT_FIELDS.includes(c)) {
        if (!states(preset, c)) fail(at, `names ${c}, which this preset does not state`);
        covered.add(c);
      } else {
        fail(at, `"${c}" is not a fact field`);
      }
    });
  });
  const doubtful = new Set<string>();
  unverified.forEach((u, i) => {
    if (!FACT_FIELDS.includes(u.field)) fail(`notes.unverified[${i}].field`, `"${u.field}" is not a fact field`);
    if (!states(preset, u.field)) fail(`notes.unverified[${i}].field`, `names ${u.field}, which this preset does not state`);
    doubtful.add(u.field);
  });
  for (const fact of FACT_FIELDS) {
    if (!states(preset, fact) || isStandard(preset, fact)) continue;
    const [head, tail] = fact.split('.') as [string, string | undefined];
    const value = tail === undefined ? preset[head] : (preset[head] as Json)[tail];
    if (value === 'unknown' && !doubtful.has(fact)) fail(fact, 'is "unknown": say why in notes.unverified');
    if (!covered.has(fact) && !doubtful.has(fact)) fail(fact, 'is confirmed by no docs entry: add it to one\'s covers or to notes.unverified');
  }
}

const TOP_LEVEL = new Set([
  'id', 'name', 'docs', 'registerAppUrl', 'grants', 'endpoints', 'revocationStyle', 'issuer', 'variables', 'defaultScopes',
  'scopeSeparator', 'authorizeParams', 'tokenParams', 'authMethod', 'pkce', 'apiBaseUrl', 'allowedOrigins',
  'refreshTokenRotates', 'refreshTokenIssued', 'deviations', 'notes',
]);

function validateFields(input: unknown): ProviderPreset {
  if (!isObject(input)) fail('preset', 'must be an object');
  for (const key of Object.keys(input)) if (!TOP_LEVEL.has(key)) fail(key, 'is not a preset field');
  const id = text(input, 'id', 'id') as string;
  if (!ID.test(id)) fail('id', 'must be lowercase letters, digits and dashes');
  text(input, 'name', 'name');

  // Variables first: every URL template is checked with their examples.
  if (!Array.isArray(input.variables)) fail('variables', 'must be an array');
  const examples = new Map<string, string>();
  input.variables.forEach((v, i) => {
    const at = `variables[${i}]`;
    if (!isObject(v)) fail(at, 'must be an object');
    const name = text(v, 'name', `${at}.name`) as string;
    if (!VARIABLE_NAME.test(name)) fail(`${at}.name`, 'must be a camelCase name');
    if (examples.has(name)) fail(`${at}.name`, `"${name}" is declared twice`);
    text(v, 'label', `${at}.label`);
    const pattern = anchoredPattern(text(v, 'pattern', `${at}.pattern`) as string, `${at}.pattern`);
    const example = text(v, 'example', `${at}.example`) as string;
    if (!pattern.test(example)) fail(`${at}.example`, 'does not match the pattern');
    const def = text(v, 'default', `${at}.default`, true);
    if (def !== undefined && !pattern.test(def)) fail(`${at}.default`, 'does not match the pattern');
    for (const ch of URL_BREAKERS) {
      if (pattern.test(`${example}${ch}x`) || pattern.test(`x${ch}${example}`)) fail(`${at}.pattern`, `lets "${ch}" into a URL`);
    }
    const extra = Object.keys(v).filter((k) => !['name', 'label', 'default', 'example', 'pattern'].includes(k));
    if (extra.length) fail(`${at}.${extra[0]}`, 'is not a field of a variable');
    examples.set(name, example);
  });

  const used = new Set<string>();
  const url = (value: unknown, field: string) => {
    checkUrlTemplate(value as string, field, examples).forEach((n) => used.add(n));
  };

  if (!Array.isArray(input.docs) || !input.docs.length) fail('docs', 'must list at least one documentation page');
  input.docs.forEach((doc, i) => {
    if (!isObject(doc)) fail(`docs[${i}]`, 'must be an object with url and covers');
    const docUrl = text(doc, 'url', `docs[${i}].url`) as string;
    if (templateVariables(docUrl).length) fail(`docs[${i}].url`, 'must be a plain URL');
    url(docUrl, `docs[${i}].url`);
    if (!stringList(doc.covers, `docs[${i}].covers`).length) fail(`docs[${i}].covers`, 'must name at least one fact');
  });
  url(text(input, 'registerAppUrl', 'registerAppUrl'), 'registerAppUrl');

  const grants = stringList(input.grants, 'grants');
  if (!grants.length) fail('grants', 'must name at least one grant');
  grants.forEach((g, i) => oneOf(g, GRANTS, `grants[${i}]`));

  if (!isObject(input.endpoints)) fail('endpoints', 'must be an object');
  for (const key of Object.keys(input.endpoints)) {
    if (!['authorization', 'token', 'revocation', 'device'].includes(key)) fail(`endpoints.${key}`, 'is not an endpoint');
  }
  url(text(input.endpoints, 'token', 'endpoints.token'), 'endpoints.token');
  for (const key of ['authorization', 'revocation', 'device'] as const) {
    const value = text(input.endpoints, key, `endpoints.${key}`, true);
    if (value) url(value, `endpoints.${key}`);
  }
  if (grants.includes('authorization_code') && input.endpoints.authorization === undefined) fail('endpoints.authorization', 'is required for authorization_code');
  if (grants.includes('device_code') && input.endpoints.device === undefined) fail('endpoints.device', 'is required for device_code');
  if (input.revocationStyle !== undefined) {
    oneOf(input.revocationStyle, REVOCATION_STYLES, 'revocationStyle');
    if (input.endpoints.revocation === undefined) fail('revocationStyle', 'needs endpoints.revocation');
  }
  const issuer = text(input, 'issuer', 'issuer', true);
  if (issuer) url(issuer, 'issuer');

  stringList(input.defaultScopes, 'defaultScopes').forEach((s, i) => {
    if (/[\s,]/.test(s)) fail(`defaultScopes[${i}]`, 'must be one scope (no space or comma)');
  });
  oneOf(input.scopeSeparator, [' ', ','] as const, 'scopeSeparator');
  checkParams(input.authorizeParams, 'authorizeParams', RESERVED_AUTHORIZE_PARAMS);
  checkParams(input.tokenParams, 'tokenParams', RESERVED_TOKEN_PARAMS);
  oneOf(input.authMethod, AUTH_METHODS, 'authMethod');
  oneOf(input.pkce, PKCE, 'pkce');

  const apiBaseUrl = text(input, 'apiBaseUrl', 'apiBaseUrl', true);
  if (apiBaseUrl) url(apiBaseUrl, 'apiBaseUrl');
  stringList(input.allowedOrigins, 'allowedOrigins').forEach((origin, i) => {
    const at = `allowedOrigins[${i}]`;
    url(origin, at);
    const parsed = new URL(fillTemplate(origin, Object.fromEntries(examples)));
    if (parsed.origin !== fillTemplate(origin, Object.fromEntries(examples))) fail(at, 'must be an origin (scheme and host, no path)');
  });
  oneOf(input.refreshTokenRotates, [true, false, 'unknown'] as const, 'refreshTokenRotates');
  oneOf(input.refreshTokenIssued, ISSUED, 'refreshTokenIssued');
  if (input.refreshTokenIssued === 'never' && input.refreshTokenRotates === true) fail('refreshTokenRotates', 'cannot be true when no refresh token is issued');

  checkDeviations(input.deviations, 'deviations', examples, used);

  if (!isObject(input.notes)) fail('notes', 'must be an object');
  for (const key of Object.keys(input.notes)) if (key !== 'unverified' && key !== 'remarks') fail(`notes.${key}`, 'is not a notes field');
  const unverified = input.notes.unverified === undefined ? [] : input.notes.unverified;
  if (!Array.isArray(unverified)) fail('notes.unverified', 'must be an array');
  unverified.forEach((u, i) => {
    if (!isObject(u)) fail(`notes.unverified[${i}]`, 'must be an object with field and why');
    text(u, 'field', `notes.unverified[${i}].field`);
    text(u, 'why', `notes.unverified[${i}].why`);
  });
  if (input.notes.remarks !== undefined) stringList(input.notes.remarks, 'notes.remarks');

  for (const name of examples.keys()) if (!used.has(name)) fail('variables', `declares {{${name}}}, which no template uses`);

  const preset = input as unknown as ProviderPreset;
  checkTraceability(input, preset.docs, unverified as { field: string; why: string }[]);
  return preset;
}

/** Validates one preset; throws PresetError naming the first bad field, prefixed with the preset's id. */
export function validatePreset(preset: unknown): ProviderPreset {
  try {
    return validateFields(preset);
  } catch (err) {
    if (err instanceof PresetError && isObject(preset) && typeof preset.id === 'string') {
      throw new PresetError(`${preset.id}.${err.field}`, err.reason);
    }
    throw err;
  }
}

/** Validates a whole catalogue: every preset, and ids unique. */
export function validateCatalogue(catalogue: unknown): ProviderPreset[] {
  if (!Array.isArray(catalogue)) throw new PresetError('catalogue', 'must be an array of presets');
  const ids = new Set<string>();
  return catalogue.map((entry, i) => {
    const preset = validatePreset(entry);
    if (ids.has(preset.id)) throw new PresetError(`catalogue[${i}].id`, `"${preset.id}" is used twice`);
    ids.add(preset.id);
    return preset;
  });
}
