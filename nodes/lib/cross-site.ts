/**
 * Whether an admin request comes from the editor's own pages (or from no browser at all), or from a page of
 * another origin. Without an admin login every admin route answers anyone who can reach the port, and a
 * browser lets any web page send requests there: this decides, from the headers a page cannot forge, which
 * requests a browser sent on behalf of another origin.
 *
 * A page cannot set `Sec-Fetch-*`, `Origin` or `Host` (forbidden header names). It can set other headers once a
 * CORS preflight approves them, and Node-RED 4.1's admin app approves every preflight (`cors({origin: '*'})`,
 * reflecting the requested headers): so `X-Forwarded-Host` and the like are never trusted here.
 */

/** The parts of an incoming request the decision reads (Node's IncomingMessage has them). */
export interface RequestFacts {
  method?: string;
  headers: Record<string, string | string[] | undefined>;
}

export type CrossSiteVerdict =
  | { allowed: true }
  /** `fetch-metadata`: the browser said the request comes from another origin; `origin`: its Origin differs. */
  | { allowed: false; reason: 'fetch-metadata' | 'origin' };

const ALLOWED: CrossSiteVerdict = { allowed: true };

function header(req: RequestFacts, name: string): string | undefined {
  const value = req.headers[name];
  const first = Array.isArray(value) ? value[0] : value;
  return first === undefined ? undefined : first.trim().toLowerCase();
}

/**
 * The browser's own account first (Fetch Metadata, sent by Chromium since 76, Firefox since 90, Safari since
 * 16.4): `same-origin` and `none` (typed in the address bar, a bookmark) pass, whatever a reverse proxy did to
 * Host. From another origin, same site included (another port of the same host is same-site), only a
 * top-level GET navigation passes: the OAuth callback is one, reached from the provider's page, and a page that
 * navigates the whole window cannot read the answer. Embedding in a frame, fetches, and form posts are refused.
 *
 * Without Fetch Metadata (an older browser, or no browser), a request carrying Origin passes only when Origin
 * names this server as the browser addressed it (Host). No Origin at all: curl, scripts, Node-RED's own tools,
 * or an older browser's navigation or plain GET, whose answer the page cannot read.
 */
export function crossSiteVerdict(req: RequestFacts): CrossSiteVerdict {
  const site = header(req, 'sec-fetch-site');
  if (site !== undefined) {
    if (site === 'same-origin' || site === 'none') return ALLOWED;
    const method = (req.method ?? 'GET').toUpperCase();
    const topLevelNavigation =
      (method === 'GET' || method === 'HEAD') && header(req, 'sec-fetch-mode') === 'navigate' && header(req, 'sec-fetch-dest') === 'document';
    return topLevelNavigation ? ALLOWED : { allowed: false, reason: 'fetch-metadata' };
  }
  const origin = header(req, 'origin');
  if (origin === undefined) return ALLOWED;
  return sameHost(origin, header(req, 'host')) ? ALLOWED : { allowed: false, reason: 'origin' };
}

/** Origin's host and port against the Host header, both read with Origin's scheme (so default ports compare equal). */
function sameHost(origin: string, host: string | undefined): boolean {
  if (!host || origin === 'null') return false;
  try {
    const from = new URL(origin);
    if (from.protocol !== 'http:' && from.protocol !== 'https:') return false;
    return from.host === new URL(`${from.protocol}//${host}`).host;
  } catch {
    return false;
  }
}
