/**
 * Cookies as the core `http request` node shows them: `msg.responseCookies` and each `msg.redirectList` entry's
 * `cookies` map a cookie's name to its attributes (`Path`, `Domain`, `Expires`, `Max-Age`, `SameSite`, as the
 * server spelt them) and its `value` (percent-decoded where it decodes). Flags without a value (`HttpOnly`,
 * `Secure`) are not kept, as there.
 */
export type CookieMap = Record<string, Record<string, string>>;

function decoded(value: string): string {
  const unquoted = value.length >= 2 && value.startsWith('"') && value.endsWith('"') ? value.slice(1, -1) : value;
  try {
    return decodeURIComponent(unquoted);
  } catch {
    return unquoted;
  }
}

/** The cookies of a response's `set-cookie` headers; malformed ones are skipped. */
export function parseSetCookies(header: string | string[] | undefined): CookieMap {
  const cookies: CookieMap = {};
  for (const line of Array.isArray(header) ? header : header === undefined ? [] : [header]) {
    if (typeof line !== 'string') continue;
    const [pair, ...attributes] = line.split(';');
    const eq = pair.indexOf('=');
    const name = eq === -1 ? '' : pair.slice(0, eq).trim();
    if (!name) continue;
    const cookie: Record<string, string> = {};
    for (const attribute of attributes) {
      const at = attribute.indexOf('=');
      if (at === -1) continue;
      const key = attribute.slice(0, at).trim();
      // The first of a repeated attribute counts, and an attribute never hides the value.
      if (key && key !== 'value' && !(key in cookie)) cookie[key] = decoded(attribute.slice(at + 1).trim());
    }
    cookie.value = decoded(pair.slice(eq + 1).trim());
    cookies[name] = cookie;
  }
  return cookies;
}

interface JarCookie {
  name: string;
  value: string;
  /** The origin the cookie was given for or set by: it goes there only (see CookieJar). */
  origin: string;
  path: string;
  secure: boolean;
}

/** RFC 6265 5.1.4: the directory of the request path. */
function defaultPath(url: URL): string {
  const at = url.pathname.lastIndexOf('/');
  return at <= 0 ? '/' : url.pathname.slice(0, at);
}

function pathMatches(requestPath: string, cookiePath: string): boolean {
  return requestPath === cookiePath || (requestPath.startsWith(cookiePath) && (cookiePath.endsWith('/') || requestPath[cookiePath.length] === '/'));
}

/**
 * The cookies of one request and its redirects, as the core node's cookie jar keeps them: those the message
 * gives (`msg.cookies`, a Cookie header) for the URL it asks for, and those each redirect sets, sent on the next
 * hops they match. Stricter than a browser's jar in one way: a cookie goes only to the origin (scheme, host and
 * port) it was given for or set by, never to another port or a subdomain (`Domain` is not honoured), as the
 * Cookie header never follows a redirect off its origin here.
 */
export class CookieJar {
  private readonly cookies: JarCookie[] = [];

  private put(cookie: JarCookie): void {
    const at = this.cookies.findIndex((c) => c.name === cookie.name && c.origin === cookie.origin && c.path === cookie.path);
    if (at !== -1) this.cookies.splice(at, 1);
    this.cookies.push(cookie);
  }

  /** A Cookie header's pairs (`a=1; b=2`), for `url`'s origin. */
  addHeader(header: string | string[], url: URL): void {
    for (const line of Array.isArray(header) ? header : [header]) {
      for (const pair of String(line).split(';')) {
        const eq = pair.indexOf('=');
        const name = (eq === -1 ? '' : pair.slice(0, eq)).trim();
        if (name) this.put({ name, value: pair.slice(eq + 1).trim(), origin: url.origin, path: '/', secure: false });
      }
    }
  }

  /**
   * The core node's msg.cookies: `{name: value}` or `{name: {value, encode}}`, each value percent-encoded unless
   * `encode` is false; a null value removes the cookie.
   */
  addMessageCookies(cookies: Record<string, unknown>, url: URL): void {
    for (const [name, given] of Object.entries(cookies)) {
      if (!/^[!#$%&'*+.^_`|~\w-]+$/.test(name)) continue;
      const entry = typeof given === 'object' && given !== null ? (given as { value?: unknown; encode?: unknown }) : { value: given };
      if (entry.value === null || entry.value === undefined) {
        this.remove(name, url.origin);
        continue;
      }
      const text = String(entry.value);
      this.put({ name, value: entry.encode === false ? text : encodeURIComponent(text), origin: url.origin, path: '/', secure: false });
    }
  }

  /** The `set-cookie` headers of a response from `url` (a redirect's). */
  addSetCookies(header: string | string[] | undefined, url: URL, now = Date.now()): void {
    for (const line of Array.isArray(header) ? header : header === undefined ? [] : [header]) {
      const [pair, ...attributes] = String(line).split(';');
      const eq = pair.indexOf('=');
      const name = (eq === -1 ? '' : pair.slice(0, eq)).trim();
      if (!name) continue;
      let path = defaultPath(url);
      let secure = false;
      let expired = false;
      for (const attribute of attributes) {
        const at = attribute.indexOf('=');
        const key = (at === -1 ? attribute : attribute.slice(0, at)).trim().toLowerCase();
        const value = at === -1 ? '' : attribute.slice(at + 1).trim();
        if (key === 'path' && value.startsWith('/')) path = value;
        else if (key === 'secure') secure = true;
        else if (key === 'max-age' && /^-?\d+$/.test(value) && Number(value) <= 0) expired = true;
        else if (key === 'expires' && Number.isFinite(Date.parse(value)) && Date.parse(value) <= now) expired = true;
      }
      if (expired) this.remove(name, url.origin, path);
      else this.put({ name, value: pair.slice(eq + 1).trim(), origin: url.origin, path, secure });
    }
  }

  private remove(name: string, origin: string, path?: string): void {
    for (let i = this.cookies.length - 1; i >= 0; i--) {
      const c = this.cookies[i];
      if (c.name === name && c.origin === origin && (path === undefined || c.path === path)) this.cookies.splice(i, 1);
    }
  }

  /** The Cookie header for a request to `url`, or undefined when no cookie matches. */
  header(url: URL): string | undefined {
    const matching = this.cookies.filter((c) => c.origin === url.origin && pathMatches(url.pathname, c.path) && (!c.secure || url.protocol === 'https:'));
    // RFC 6265 5.4: longer paths first.
    matching.sort((a, b) => b.path.length - a.path.length);
    return matching.length > 0 ? matching.map((c) => `${c.name}=${c.value}`).join('; ') : undefined;
  }

  get size(): number {
    return this.cookies.length;
  }
}
