import { OAuth2Error } from '../errors';

/**
 * The origins a connection's bearer token may be sent to (invariant 4): the API base URL's origin plus any
 * listed extra origins. Matching is exact on the WHATWG serialised origin (scheme, lower-cased punycode host,
 * port with the scheme's default port elided), so `https://a:443` equals `https://a`, while another scheme,
 * another port, a trailing-dot host or a look-alike suffix (`https://a.example.com.evil.test`) never match.
 */
export class OriginAllowlist {
  private readonly set: ReadonlySet<string>;

  /**
   * @param apiBaseUrl the connection's API base URL (a path is allowed and ignored here); empty for none.
   * @param extraOrigins more origins, as a list or as one whitespace/comma separated string.
   * @throws OAuth2Error OAUTH2_INVALID_CONFIG naming the field ('apiBaseUrl' or 'allowedOrigins').
   */
  constructor(apiBaseUrl: string | undefined, extraOrigins: string | readonly string[] = []) {
    const origins = new Set<string>();
    const base = (apiBaseUrl ?? '').trim();
    if (base) origins.add(normaliseOrigin(base, 'apiBaseUrl', true));
    for (const entry of parseOriginList(extraOrigins)) {
      origins.add(normaliseOrigin(entry, 'allowedOrigins', false));
    }
    this.set = origins;
  }

  /** The normalised origins, for display. */
  get origins(): string[] {
    return [...this.set];
  }

  /** True only for an http(s) URL without userinfo whose origin is exactly one of the allowed origins. */
  allows(url: URL): boolean {
    if (!(url instanceof URL)) return false;
    if (url.protocol !== 'https:' && url.protocol !== 'http:') return false;
    // `https://api.example.com@evil.test/` has host evil.test, but any userinfo at all is refused: a URL that
    // carries its own credentials is not one our token should accompany, and it is the classic confusion trick.
    if (url.username !== '' || url.password !== '') return false;
    return this.set.has(url.origin);
  }
}

/** Splits a configured origin list on whitespace and commas; accepts an array of such strings too. */
export function parseOriginList(value: string | readonly string[] | undefined | null): string[] {
  if (value === undefined || value === null) return [];
  const parts = typeof value === 'string' ? [value] : value;
  const out: string[] = [];
  for (const part of parts) {
    if (typeof part !== 'string') continue;
    for (const item of part.split(/[\s,]+/)) {
      if (item !== '') out.push(item);
    }
  }
  return out;
}

/** Normalises one configured entry to its origin, or throws OAUTH2_INVALID_CONFIG naming the field. */
function normaliseOrigin(value: string, field: 'apiBaseUrl' | 'allowedOrigins', pathAllowed: boolean): string {
  const invalid = (reason: string): OAuth2Error =>
    new OAuth2Error('OAUTH2_INVALID_CONFIG', `Invalid ${field} entry "${redactUserinfo(value)}": ${reason}`, {
      params: { field, value: redactUserinfo(value), reason },
    });
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw invalid('not an absolute URL');
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw invalid('scheme must be http or https');
  if (url.username !== '' || url.password !== '') throw invalid('must not contain user information');
  if (!pathAllowed && ((url.pathname !== '/' && url.pathname !== '') || url.search !== '' || url.hash !== '')) {
    // An origin entry with a path would suggest path scoping, which origins do not do: refuse rather than mislead.
    throw invalid('an origin has no path, query or fragment');
  }
  return url.origin;
}

/** Config values may be pasted URLs with credentials in them: never echo those back in an error. */
function redactUserinfo(value: string): string {
  return value.replace(/^([a-z][a-z\d+.-]*:\/\/)[^/?#]*@/i, '$1***@');
}
