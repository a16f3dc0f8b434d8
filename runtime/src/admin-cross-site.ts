/**
 * The runtime's admin app answers its own editor and non-browser clients only. Node-RED 4.1's admin app sends
 * `Access-Control-Allow-Origin: *` on every answer and approves every CORS preflight, whatever httpAdminCors
 * says (@node-red/editor-api/lib/index.js installs `cors({origin: '*'})` before anything else); without an
 * admin login that lets any web page the user opens read the flows and deploy new ones. Node-RED 5 no longer
 * sends the header by default, but a page's simple requests (a form post, a no-cors fetch) still reach it.
 *
 * So, ahead of Node-RED: a request a browser sent for a page of another origin is refused (the palette
 * package's crossSiteVerdict decides, the rule its own routes use on any Node-RED), and the admin app's CORS
 * headers are dropped, so no cross-origin page can read an answer. The editor's WebSocket (<admin root>/comms,
 * which carries debug messages and status) is refused the same way. The user's HTTP endpoints (httpNodeRoot)
 * keep their own CORS settings and are not checked.
 */
import type * as http from 'node:http';
import type { Duplex } from 'node:stream';
import * as path from 'node:path';
import type { RequestHandler } from 'express';
import { isLoopback } from './production-settings';

interface RequestFacts {
  method?: string;
  headers: Record<string, string | string[] | undefined>;
}
type CrossSiteVerdict = { allowed: true } | { allowed: false; reason: string };

/** The palette package's decision (dist/nodes/lib/cross-site.js): one rule for the runtime and the routes. */
function loadVerdict(paletteRoot: string): (req: RequestFacts) => CrossSiteVerdict {
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- compiled palette package, typed by the interface above
  const mod = require(path.join(paletteRoot, 'dist', 'nodes', 'lib', 'cross-site.js')) as { crossSiteVerdict: (req: RequestFacts) => CrossSiteVerdict };
  return mod.crossSiteVerdict;
}

/** The package's English text for the code its routes answer with (OAUTH2_CROSS_SITE_REFUSED, in their help). */
function refusal(paletteRoot: string): { code: string; message: string } {
  const code = 'OAUTH2_CROSS_SITE_REFUSED';
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- a JSON catalog of the compiled palette package
  const catalog = require(path.join(paletteRoot, 'dist', 'nodes', 'locales', 'en-US', 'oauth2-connection.json')) as {
    'oauth2-connection'?: { errors?: Record<string, string> };
  };
  return { code, message: catalog['oauth2-connection']?.errors?.[code] ?? code };
}

/**
 * The host name of a Host header ("name:port", "[::1]:port", "name"), lower-cased; undefined when there is none.
 */
function hostName(header: string | string[] | undefined): string | undefined {
  const value = Array.isArray(header) ? header[0] : header;
  if (typeof value !== 'string' || value.trim() === '') return undefined;
  const host = value.trim().toLowerCase();
  if (host.startsWith('[')) return host.slice(0, host.indexOf(']') + 1 || undefined);
  const colon = host.lastIndexOf(':');
  return colon === -1 || host.indexOf(':') !== colon ? host : host.slice(0, colon);
}

/**
 * With no admin login on a loopback address, only a loopback name may be asked for (localhost, *.localhost,
 * 127.x, [::1]). A page whose own name an attacker points at 127.0.0.1 (DNS rebinding) is same-origin to the
 * browser, so neither Origin nor Sec-Fetch-Site gives it away; the name it asks for does.
 */
export function loopbackNameRequired(adminAuth: unknown, listenHost: string): boolean {
  return adminAuth === undefined && isLoopback(listenHost);
}

function namesThisMachine(header: string | string[] | undefined): boolean {
  const name = hostName(header);
  return name !== undefined && isLoopback(name);
}

const NOT_A_LOOPBACK_NAME = {
  code: 'OAUTH2_HOST_REFUSED',
  message:
    'Without an admin login this editor answers only under a loopback name (localhost, 127.0.0.1, [::1]); set an admin login to serve it under another name',
};

/**
 * Mounted on the server's app ahead of RED.httpAdmin. `nodeRoot` is httpNodeRoot: requests under it (when the
 * admin root is `/` they pass here too) belong to the user's flows and are left alone.
 */
export function adminCrossSiteGuard(options: { paletteRoot: string; nodeRoot: string; loopbackNamesOnly?: boolean }): RequestHandler {
  const verdictOf = loadVerdict(options.paletteRoot);
  const refused = refusal(options.paletteRoot);
  const nodeRoot = options.nodeRoot.replace(/\/+$/, '').toLowerCase();
  // Express matches mount paths case-insensitively: so does this.
  const underNodeRoot = (url: string): boolean => {
    const pathname = url.split('?')[0].toLowerCase();
    return nodeRoot !== '' && (pathname === nodeRoot || pathname.startsWith(`${nodeRoot}/`));
  };
  return (req, res, next) => {
    if (underNodeRoot(req.originalUrl)) {
      next();
      return;
    }
    if (options.loopbackNamesOnly && !namesThisMachine(req.headers.host)) {
      res.set('cache-control', 'no-store');
      res.status(403).json({ error: NOT_A_LOOPBACK_NAME });
      return;
    }
    const verdict = verdictOf(req);
    if (!verdict.allowed) {
      res.set('cache-control', 'no-store');
      res.status(403).json({ error: refused });
      return;
    }
    const setHeader = res.setHeader.bind(res);
    res.setHeader = (name: string, value: number | string | readonly string[]) =>
      /^access-control-/i.test(name) ? res : setHeader(name, value);
    next();
  };
}

/**
 * Refuses the editor's WebSocket (`commsPath`, as Node-RED's comms.js computes it) to pages of another origin.
 * Browsers send Origin on every WebSocket handshake and CORS does not apply to them, so without this a page
 * could follow the debug sidebar. Runs ahead of Node-RED's own upgrade listener, which then finds the socket
 * closed and leaves it.
 */
export function refuseCrossSiteUpgrades(server: http.Server, options: { paletteRoot: string; commsPath: string; loopbackNamesOnly?: boolean }): void {
  const verdictOf = loadVerdict(options.paletteRoot);
  server.prependListener('upgrade', (req: http.IncomingMessage, socket: Duplex) => {
    const pathname = (req.url ?? '').split('?')[0];
    if (pathname !== options.commsPath) return;
    if ((!options.loopbackNamesOnly || namesThisMachine(req.headers.host)) && verdictOf(req).allowed) return;
    socket.end('HTTP/1.1 403 Forbidden\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
    socket.destroy();
  });
}
