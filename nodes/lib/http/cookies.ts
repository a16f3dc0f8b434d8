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
