/**
 * Connection values: what a provider tells a connection besides its tokens, kept with the tokens and readable by
 * request and trigger nodes (`{{{connection.instanceUrl}}}` in a URL, `msg.oauth2`). They come from three places,
 * each a setting of the connection (a provider preset fills them): fields of the token response (Salesforce's
 * `instance_url`, Zoho's `api_domain`), query parameters of the login callback (Intuit's `realmId`), and a call
 * made once after login (Xero's connections). Every value is checked before it is kept: against its pattern,
 * and, when it becomes the API base URL (so bearer tokens go there), as a URL that is https (http on loopback
 * only) with no user information.
 */
import { OAuth2Error } from './errors';
import { isLoopbackHost } from './url-policy';
import type { TokenSet } from './types';

export interface ValueSource {
  /** The token-response field (top level) or callback query parameter. */
  from: string;
  /** The connection value's name. */
  as: string;
  /** The value becomes the connection's API base URL, and its origin an allowed origin. */
  setsApiBaseUrl: boolean;
  /** What the whole value must match. */
  pattern?: RegExp;
}

/** A call made once after a login whose answer names the tenant or site the requests need. */
export interface PostLoginLookup {
  url: string;
  /** The field of the first item of the answer's list. */
  pick: string;
  as: string;
  /** Sent with this value on every request of the connection (unless the request sets it). */
  header?: string;
}

export interface ProviderBehaviour {
  /** Where the tokens sit in the token response (`['authed_user']`); empty for the top level. */
  tokenPath: string[];
  tokenValues: ValueSource[];
  callbackValues: ValueSource[];
  lookup?: PostLoginLookup;
}

export const NO_BEHAVIOUR: ProviderBehaviour = { tokenPath: [], tokenValues: [], callbackValues: [] };

/** A connection value's name: a JavaScript identifier, as templates and `msg.oauth2` use it. */
const VALUE_NAME = /^[A-Za-z_$][\w$]{0,63}$/;
/** A field of a provider's answer: letters, digits, `_`, `-`, `.` (no path). */
const FIELD_NAME = /^[\w.-]{1,100}$/;
/**
 * Fields that hold a credential, never a connection value: a value goes into URLs, headers and `msg.oauth2`, and
 * a token or code there would leave the connection (a token response's top level holds Slack's bot token, say).
 */
const CREDENTIAL_FIELDS: ReadonlySet<string> = new Set([
  'access_token', 'refresh_token', 'id_token', 'token', 'code', 'state', 'code_verifier', 'device_code', 'client_secret',
]);
/** Longest value kept: an id or a URL, never a document. */
const MAX_VALUE_LENGTH = 2048;

function invalid(field: string, reason: string, value?: string): OAuth2Error {
  return new OAuth2Error('OAUTH2_INVALID_CONFIG', `Invalid configuration: ${field} ${reason}`, { params: { field, reason, value } });
}

/** An anchored regular expression from its source, or the config error naming the field. */
function parsePattern(value: unknown, field: string): RegExp | undefined {
  if (value === undefined || value === null || value === '') return undefined;
  if (typeof value !== 'string') throw invalid(field, 'invalidPattern');
  try {
    // Anchored whatever the source says: a pattern checks the whole value, never a part of it.
    return new RegExp(`^(?:${value})$`);
  } catch {
    throw invalid(field, 'invalidPattern', value);
  }
}

/** The `tokenValues` / `callbackValues` setting: a list of {from, as, setsApiBaseUrl, pattern}. */
export function parseValueSources(value: unknown, field: 'tokenValues' | 'callbackValues'): ValueSource[] {
  if (value === undefined || value === null || value === '') return [];
  if (!Array.isArray(value)) throw invalid(field, 'invalidValue');
  const sources: ValueSource[] = [];
  const names = new Set<string>();
  for (const entry of value as unknown[]) {
    const record = (typeof entry === 'object' && entry !== null ? entry : {}) as Record<string, unknown>;
    const from = typeof record.from === 'string' ? record.from.trim() : '';
    const as = typeof record.as === 'string' && record.as.trim() ? record.as.trim() : from;
    if (!FIELD_NAME.test(from)) throw invalid(field, 'invalidValue', from);
    if (CREDENTIAL_FIELDS.has(from.toLowerCase())) throw invalid(field, 'credentialField', from);
    if (!VALUE_NAME.test(as) || as === 'apiBaseUrl' || names.has(as)) throw invalid(field, 'invalidName', as);
    names.add(as);
    const setsApiBaseUrl = record.setsApiBaseUrl === true || record.setsApiBaseUrl === 'true';
    const pattern = parsePattern(record.pattern, field);
    // A provider's answer choosing where bearer tokens go must be held to a pattern the user has seen.
    if (setsApiBaseUrl && !pattern) throw invalid(field, 'patternRequired', as);
    sources.push({ from, as, setsApiBaseUrl, pattern });
  }
  if (field === 'callbackValues' && sources.some((s) => s.setsApiBaseUrl)) throw invalid(field, 'invalidValue');
  if (sources.filter((s) => s.setsApiBaseUrl).length > 1) throw invalid(field, 'invalidValue');
  return sources;
}

/** The `tokenPath` setting: a dot path of plain field names. */
export function parseTokenPath(value: unknown): string[] {
  const text = typeof value === 'string' ? value.trim() : '';
  if (!text) return [];
  const parts = text.split('.');
  if (parts.some((p) => !/^[\w-]{1,100}$/.test(p))) throw invalid('tokenPath', 'invalidValue', text);
  return parts;
}

/**
 * The lookup settings (`lookupUrl`, `lookupPick`, `lookupAs`, `lookupHeader`): all empty for none. `checkUrl`
 * validates the URL as the connection's other URLs are.
 */
export function parseLookup(config: Record<string, unknown>, checkUrl: (url: string, field: string) => URL): PostLoginLookup | undefined {
  const text = (name: string): string => (typeof config[name] === 'string' ? (config[name] as string).trim() : '');
  const url = text('lookupUrl');
  if (!url) return undefined;
  checkUrl(url, 'lookupUrl');
  const pick = text('lookupPick');
  if (!FIELD_NAME.test(pick)) throw invalid('lookupPick', 'required');
  const as = text('lookupAs') || pick;
  if (!VALUE_NAME.test(as) || as === 'apiBaseUrl') throw invalid('lookupAs', 'invalidName', as);
  const header = text('lookupHeader');
  if (header && !/^[!#$%&'*+.^_`|~\w-]{1,100}$/.test(header)) throw invalid('lookupHeader', 'invalidValue', header);
  if (header && ['authorization', 'cookie', 'proxy-authorization', 'host', 'content-length'].includes(header.toLowerCase())) {
    throw invalid('lookupHeader', 'notPermitted', header);
  }
  return { url, pick, as, ...(header ? { header } : {}) };
}

/** A URL a provider's answer gives as the API base URL: https (http on loopback only), no user information. */
function isSafeBaseUrl(value: string): boolean {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return false;
  }
  if (url.username || url.password || url.search || url.hash) return false;
  return url.protocol === 'https:' || (url.protocol === 'http:' && isLoopbackHost(url.hostname));
}

/** Text of a provider's value for an error: bounded and printable, or nothing. */
function shown(value: string): string {
  return /^[\x20-\x7e]{1,200}$/.test(value) ? value : '';
}

/**
 * The values `sources` name in `answer` (a token response or a callback query), each checked. A source whose
 * field is absent is left out (a refresh need not repeat it); one present but refused throws, so nothing of the
 * answer is used: `code` is the error the caller's answer deserves.
 */
export function pickValues(
  answer: Record<string, unknown>,
  sources: readonly ValueSource[],
  code: 'OAUTH2_INVALID_TOKEN_RESPONSE' | 'OAUTH2_INVALID_INPUT',
): Record<string, string> {
  const values: Record<string, string> = {};
  for (const source of sources) {
    const raw = answer[source.from];
    if (raw === undefined || raw === null || raw === '') continue;
    const value = typeof raw === 'string' ? raw : typeof raw === 'number' ? String(raw) : undefined;
    const refused =
      value === undefined ||
      value.length > MAX_VALUE_LENGTH ||
      (source.pattern !== undefined && !source.pattern.test(value)) ||
      (source.setsApiBaseUrl && !isSafeBaseUrl(value));
    if (refused) {
      const where = code === 'OAUTH2_INVALID_INPUT' ? 'callback' : 'tokenResponse';
      throw new OAuth2Error(code, `The provider's ${source.from} is not what this connection accepts; the login was not used`, {
        params: { field: source.from, reason: 'valueRefused', value: value === undefined ? '' : shown(value), where, messageKey: 'values.refused' },
      });
    }
    values[source.as] = value;
  }
  return values;
}

/** The API base URL a token set's values set, if any. */
export function valueApiBaseUrl(behaviour: ProviderBehaviour, tokens: Pick<TokenSet, 'values'> | undefined): string | undefined {
  const source = behaviour.tokenValues.find((s) => s.setsApiBaseUrl);
  const value = source ? tokens?.values?.[source.as] : undefined;
  // Checked when kept; checked again here, so a stored value edited by hand cannot choose where tokens go.
  return value && source?.pattern?.test(value) && isSafeBaseUrl(value) ? value : undefined;
}

/**
 * Replaces `{{{connection.name}}}` and `{{connection.name}}` with connection values (an unknown name with
 * nothing), leaving every other `{{...}}` as it is (the trigger's `{{since}}`).
 */
export function renderConnectionValues(template: string, values: Readonly<Record<string, string>>): string {
  if (!template.includes('connection.')) return template;
  return template.replace(/\{\{\{\s*connection\.([A-Za-z_$][\w$]*)\s*\}\}\}|\{\{\s*connection\.([A-Za-z_$][\w$]*)\s*\}\}/g, (_m, triple?: string, double?: string) => {
    const name = triple ?? double ?? '';
    return Object.prototype.hasOwnProperty.call(values, name) ? values[name] : '';
  });
}
