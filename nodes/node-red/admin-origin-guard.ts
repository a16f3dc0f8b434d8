import type { RequestHandler } from 'express';
import { crossSiteVerdict } from '../lib/cross-site';
import { OAuth2Error, translateError } from '../lib/errors';
import type { NodeAPI } from './types';

/**
 * Middleware for the package's admin routes: a request a browser sent for a page of another origin is answered
 * 403 `OAUTH2_CROSS_SITE_REFUSED` before any route reads or changes anything, whatever Node-RED's settings
 * (no admin login, `httpAdminCors`, Node-RED 4.1's permissive default CORS). Mounted with
 * `RED.httpAdmin.use('/<type>', refuseCrossSite(RED))` ahead of a file's routes, so every route under the prefix
 * is covered, new ones included. The OAuth callback still works: it is a top-level navigation (see crossSiteVerdict).
 */
export function refuseCrossSite(RED: NodeAPI): RequestHandler {
  // The code's text lives in the connection's catalog, which holds every code; the record-change routes use it too.
  const translate = (key: string, params?: Record<string, unknown>): string =>
    RED._(`node-red-contrib-http-oauth2/oauth2-connection:oauth2-connection.${key}`, params);
  return (req, res, next) => {
    const verdict = crossSiteVerdict(req);
    if (verdict.allowed) {
      next();
      return;
    }
    const err = new OAuth2Error('OAUTH2_CROSS_SITE_REFUSED', `Refused a cross-site admin request (${verdict.reason})`);
    res.set('cache-control', 'no-store');
    res.status(403).json({ error: { code: err.code, message: translateError(err, translate) } });
  };
}
