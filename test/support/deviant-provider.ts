/**
 * A small OAuth2 authorization server and API on loopback that does the protocol for real (codes bound to the
 * client, the redirect URI and a PKCE S256 challenge; client authentication; refresh tokens; access tokens that
 * expire so the API answers 401) and reproduces, one option each, the deviations from RFC 6749 that real
 * providers show (issue 15). Every option is off by default, which is the standard behaviour: JSON answers,
 * refusals as 4xx `{error}`, tokens at the top level with `expires_in`, the same refresh token on a refresh.
 *
 * The login is auto-approved (a consent already given): GET /authorize redirects straight back to the
 * redirect URI with a code and the state. Logs record what each request carried, never a token, code, verifier
 * or secret: the values the server issues are handed to `onSecret` (the leak scan) and to `secrets()` only.
 *
 * Routes (auth origin): GET /authorize, POST /token. API (the same origin, or its own with `separateApi`):
 * GET /api/me (200 `{sub, kind}` for a valid unexpired bearer token, 401 otherwise), GET /api/company/:id (the
 * same, and 404 unless :id is the `realmId` callback parameter), GET /connections (with `lookup`).
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';

/** Refusals as HTTP 200: `{error, error_description}` (GitHub) or `{ok: false, error}` (Slack, whose successes carry `ok: true`). */
export type ErrorIn200 = 'error-field' | 'ok-false';
/** How a token answer states the access token's end: `expires_in` (standard), absolute `expires_at` (epoch seconds), or not at all. */
export type ExpiryStyle = 'expires-in' | 'expires-at' | 'none';
/** What a refresh answer carries: the same refresh token (default), a new one that kills the old (rotation), or none (the old one stays valid). */
export type RefreshStyle = 'same' | 'rotate' | 'keep';
/** Whether the server takes PKCE: with or without (default), only with, or never (a code_challenge or code_verifier is refused). */
export type PkceSupport = 'optional' | 'required' | 'refused';

export interface ProviderOrigins {
  /** The authorization server's origin. */
  url: string;
  /** The API's origin. */
  apiUrl: string;
}

export interface DeviantProviderOptions {
  clientId?: string;
  clientSecret?: string;
  /** Access-token lifetime (s). Default 3600. */
  accessTokenTtlSec?: number;
  /** The account the tokens are for, as /api/me names it. Default 'user-1'. */
  subject?: string;
  /** The token endpoint answers form-encoded unless the request says `Accept: application/json`. */
  acceptJsonRequired?: boolean;
  /** The token endpoint always answers `application/x-www-form-urlencoded`. */
  formEncoded?: boolean;
  errorIn200?: ErrorIn200;
  /** The tokens sit under this field of the token answer (Slack user tokens: `authed_user`). */
  tokenPath?: string;
  /**
   * With tokenPath: the answer also carries a top-level access token of another kind (Slack's bot token, which
   * /api/me names as kind `bot`): a client that reads the top level gets the wrong token, not a failure.
   */
  topLevelToken?: boolean;
  expiry?: ExpiryStyle;
  /** Access tokens never expire and no refresh token is issued (GitHub OAuth apps); no expiry field is sent. */
  neverExpires?: boolean;
  refresh?: RefreshStyle;
  /** Extra top-level fields of every token answer (Salesforce's `instance_url`); a function gets the server's origins. */
  tokenValues?: Record<string, string | ((origins: ProviderOrigins) => string)>;
  /** Extra query parameters on the redirect back after a login (Intuit's `realmId`). */
  callbackParams?: Record<string, string>;
  /**
   * Serve GET /connections (Xero): a JSON array naming the tenant, for a valid bearer token. The API then wants
   * the tenant in the `xero-tenant-id` header and answers 403 without it.
   */
  lookup?: boolean;
  /** How the authorize request's scope is split. With ',' a scope holding a space is refused (invalid_scope). */
  scopeSeparator?: ' ' | ',';
  pkce?: PkceSupport;
  /** The API on an origin of its own (Salesforce's instance, away from its login server). */
  separateApi?: boolean;
  /** Called with every token, code and client secret the server issues or holds, for the leak scan. */
  onSecret?: (value: string) => void;
}

export interface AuthorizeRecord {
  /** The query parameters' names and values (state and code_challenge are no secrets). */
  params: Record<string, string>;
  /** 'code' when a code was issued, else the error sent back (or 'bad-request' for a page that redirects nowhere). */
  outcome: string;
}

export interface TokenRecord {
  grantType: string;
  /** The request's Accept header. */
  accept?: string;
  /** How the client authenticated: HTTP Basic, in the body, neither, or with a wrong secret. */
  clientAuth: 'basic' | 'post' | 'none' | 'wrong';
  /** Whether a code_verifier came, and for a code with a challenge, whether it matched. */
  codeVerifier: 'absent' | 'matched' | 'mismatched' | 'unexpected';
  /** For a refresh: the serial number of the refresh token presented (1 = the login's), and whether it was alive. */
  refreshGeneration?: number;
  refreshTokenAlive?: boolean;
  /** 'issued', or the error code the answer carried. */
  outcome: string;
  /** The real end of the access token issued (epoch ms), null for one that never expires. */
  accessTokenExpiresAt?: number | null;
  /** The `expires_at` the answer stated (epoch seconds), with `expiry: 'expires-at'`. */
  statedExpiresAt?: number;
  /** The content type of the answer. */
  answeredAs: 'json' | 'form';
}

export interface ApiRecord {
  method: string;
  path: string;
  /** The request headers, the Authorization header left out. */
  headers: Record<string, string>;
  /** Whose valid token came: the subject, or undefined when none or an invalid or expired one. */
  subject?: string;
  status: number;
}

export interface DeviantProvider extends ProviderOrigins {
  authorizeUrl: string;
  tokenUrl: string;
  /** GET /connections on the API origin (with `lookup`). */
  lookupUrl: string;
  client: { clientId: string; clientSecret: string };
  /** The tenant GET /connections names (with `lookup`). */
  tenantId: string;
  authorizeRequests: AuthorizeRecord[];
  tokenRequests: TokenRecord[];
  apiRequests: ApiRecord[];
  /** Registers a redirect URI for the client (exact match, as RFC 9700 wants). */
  addRedirectUri(uri: string): void;
  /** Ends every access token issued so far: the API answers 401 to each. */
  expireAccessTokens(): void;
  /** Kills every refresh token issued so far (a revoked app or grant). */
  revokeRefreshTokens(): void;
  /** Every token, code and secret the server issued or holds (to check none of them left the runtime). */
  secrets(): readonly string[];
  /** Empties the request logs (tokens stay as they are). */
  reset(): void;
  close(): Promise<void>;
}

interface IssuedCode {
  clientId: string;
  redirectUri: string;
  scope: string[];
  challenge?: string;
  expiresAt: number;
  used: boolean;
}

interface IssuedAccessToken {
  subject: string;
  kind: 'user' | 'bot';
  /** Epoch ms; null never expires. */
  expiresAt: number | null;
}

interface IssuedRefreshToken {
  generation: number;
  scope: string[];
  alive: boolean;
}

const CODE_TTL_MS = 60_000;

/** Provider error codes per refusal style: the standard's, GitHub's (error-field) and Slack's (ok-false). */
const ERRORS = {
  standard: { badCode: 'invalid_grant', badRefresh: 'invalid_grant', badClient: 'invalid_client' },
  'error-field': { badCode: 'bad_verification_code', badRefresh: 'bad_refresh_token', badClient: 'incorrect_client_credentials' },
  'ok-false': { badCode: 'invalid_code', badRefresh: 'invalid_refresh_token', badClient: 'bad_client_secret' },
} as const;

function secretValue(prefix: string): string {
  return `${prefix}-${randomBytes(24).toString('base64url')}`;
}

function sameText(a: string, b: string): boolean {
  const left = Buffer.from(a);
  const right = Buffer.from(b);
  return left.length === right.length && timingSafeEqual(left, right);
}

function s256(verifier: string): string {
  return createHash('sha256').update(verifier).digest('base64url');
}

function readBody(req: http.IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

/** Decodes one half of an HTTP Basic client credential (RFC 6749 2.3.1: form-urlencoded first). */
function formDecode(text: string): string {
  return decodeURIComponent(text.replace(/\+/g, ' '));
}

function listen(server: http.Server): Promise<string> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve(`http://127.0.0.1:${(server.address() as AddressInfo).port}`));
  });
}

function closeServer(server: http.Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}

export async function startDeviantProvider(options: DeviantProviderOptions = {}): Promise<DeviantProvider> {
  if ((options.formEncoded || options.acceptJsonRequired) && options.tokenPath) {
    throw new Error('a form-encoded answer cannot carry tokens under a nested path');
  }
  const clientId = options.clientId ?? 'deviant-client';
  const clientSecret = options.clientSecret ?? secretValue('secret');
  const ttlMs = (options.accessTokenTtlSec ?? 3600) * 1000;
  const subject = options.subject ?? 'user-1';
  const separator = options.scopeSeparator ?? ' ';
  const pkce = options.pkce ?? 'optional';
  const refreshStyle = options.refresh ?? 'same';
  const expiry = options.neverExpires ? 'none' : (options.expiry ?? 'expires-in');
  const errors = ERRORS[options.errorIn200 ?? 'standard'];
  const tenantId = 'tenant-7d1c4b';

  const redirectUris = new Set<string>();
  const codes = new Map<string, IssuedCode>();
  const accessTokens = new Map<string, IssuedAccessToken>();
  const refreshTokens = new Map<string, IssuedRefreshToken>();
  const issued: string[] = [];
  let generations = 0;

  const authorizeRequests: AuthorizeRecord[] = [];
  const tokenRequests: TokenRecord[] = [];
  const apiRequests: ApiRecord[] = [];

  function remember(value: string): string {
    issued.push(value);
    options.onSecret?.(value);
    return value;
  }
  remember(clientSecret);

  const origins: ProviderOrigins = { url: '', apiUrl: '' };

  // ---- /authorize -----------------------------------------------------------------------------------------

  function authorize(url: URL, res: http.ServerResponse): void {
    const params = Object.fromEntries(url.searchParams);
    const record: AuthorizeRecord = { params, outcome: 'code' };
    authorizeRequests.push(record);
    const redirectUri = params.redirect_uri ?? '';
    if (params.client_id !== clientId || !redirectUris.has(redirectUri)) {
      // Never redirect to an unregistered URI (RFC 6749 4.1.2.1): a page that stays here.
      record.outcome = 'bad-request';
      res.writeHead(400, { 'content-type': 'text/plain' }).end('unknown client or redirect_uri');
      return;
    }
    const back = new URL(redirectUri);
    const fail = (error: string, description: string): void => {
      record.outcome = error;
      back.searchParams.set('error', error);
      back.searchParams.set('error_description', description);
      if (params.state !== undefined) back.searchParams.set('state', params.state);
      res.writeHead(302, { location: back.href }).end();
    };
    if (params.response_type !== 'code') return fail('unsupported_response_type', 'only code');
    const scope = (params.scope ?? '').split(separator).filter(Boolean);
    if (separator === ',' && scope.some((s) => /\s/.test(s))) return fail('invalid_scope', 'scopes are separated by commas');
    const challenge = params.code_challenge;
    if (pkce === 'refused' && (challenge !== undefined || params.code_challenge_method !== undefined)) {
      return fail('invalid_request', 'code_challenge is not supported');
    }
    if (pkce === 'required' && challenge === undefined) return fail('invalid_request', 'code_challenge required');
    if (challenge !== undefined && params.code_challenge_method !== 'S256') return fail('invalid_request', 'code_challenge_method must be S256');

    const code = remember(secretValue('code'));
    codes.set(code, { clientId, redirectUri, scope, challenge, expiresAt: Date.now() + CODE_TTL_MS, used: false });
    back.searchParams.set('code', code);
    if (params.state !== undefined) back.searchParams.set('state', params.state);
    for (const [name, value] of Object.entries(options.callbackParams ?? {})) back.searchParams.set(name, value);
    res.writeHead(302, { location: back.href }).end();
  }

  // ---- /token ---------------------------------------------------------------------------------------------

  function wantsJson(req: http.IncomingMessage): boolean {
    return /\bapplication\/json\b/i.test(String(req.headers.accept ?? ''));
  }

  function answer(req: http.IncomingMessage, res: http.ServerResponse, record: TokenRecord, status: number, body: Record<string, unknown>): void {
    const form = options.formEncoded === true || (options.acceptJsonRequired === true && !wantsJson(req));
    record.answeredAs = form ? 'form' : 'json';
    if (form) {
      const text = new URLSearchParams(Object.entries(body).map(([k, v]) => [k, String(v)])).toString();
      res.writeHead(status, { 'content-type': 'application/x-www-form-urlencoded; charset=utf-8', 'cache-control': 'no-store' }).end(text);
    } else {
      res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' }).end(JSON.stringify(body));
    }
  }

  function refuse(req: http.IncomingMessage, res: http.ServerResponse, record: TokenRecord, status: number, error: string, description: string): void {
    record.outcome = error;
    if (options.errorIn200 === 'ok-false') return answer(req, res, record, 200, { ok: false, error });
    if (options.errorIn200 === 'error-field') return answer(req, res, record, 200, { error, error_description: description });
    answer(req, res, record, status, { error, error_description: description });
  }

  /** The client's credentials from the Basic header or the body: its method, or 'wrong' / 'none'. */
  function clientAuthOf(req: http.IncomingMessage, form: URLSearchParams): TokenRecord['clientAuth'] {
    const header = req.headers.authorization;
    if (header?.startsWith('Basic ')) {
      const decoded = Buffer.from(header.slice(6), 'base64').toString('utf8');
      const colon = decoded.indexOf(':');
      if (colon < 0) return 'wrong';
      const ok = formDecode(decoded.slice(0, colon)) === clientId && sameText(formDecode(decoded.slice(colon + 1)), clientSecret);
      return ok ? 'basic' : 'wrong';
    }
    const id = form.get('client_id');
    const secret = form.get('client_secret');
    if (id === null && secret === null) return 'none';
    return id === clientId && secret !== null && sameText(secret, clientSecret) ? 'post' : 'wrong';
  }

  /** A token answer: the tokens (under tokenPath when set) and the top-level extras this provider adds. */
  function issueTokens(record: TokenRecord, scope: string[], refresh: { carried: string } | undefined): Record<string, unknown> {
    const now = Date.now();
    const accessToken = remember(secretValue('at'));
    const end = options.neverExpires ? null : now + ttlMs;
    accessTokens.set(accessToken, { subject, kind: 'user', expiresAt: end });
    record.accessTokenExpiresAt = end;
    const tokens: Record<string, unknown> = { access_token: accessToken, token_type: options.tokenPath ? 'user' : 'Bearer', scope: scope.join(separator) };
    if (end !== null && expiry === 'expires-in') tokens.expires_in = ttlMs / 1000;
    if (end !== null && expiry === 'expires-at') {
      // Whole seconds, rounded down: the stated end is never after the real one.
      record.statedExpiresAt = Math.floor(end / 1000);
      tokens.expires_at = record.statedExpiresAt;
    }
    if (!options.neverExpires) {
      if (refresh === undefined) {
        const fresh = remember(secretValue('rt'));
        refreshTokens.set(fresh, { generation: (generations += 1), scope, alive: true });
        tokens.refresh_token = fresh;
      } else if (refreshStyle === 'rotate') {
        (refreshTokens.get(refresh.carried) as IssuedRefreshToken).alive = false;
        const fresh = remember(secretValue('rt'));
        refreshTokens.set(fresh, { generation: (generations += 1), scope, alive: true });
        tokens.refresh_token = fresh;
      } else if (refreshStyle === 'same') {
        tokens.refresh_token = refresh.carried;
      }
      // 'keep': no refresh_token in the answer; the one presented stays valid.
    }
    let body: Record<string, unknown> = tokens;
    if (options.tokenPath) {
      body = {};
      let at = body;
      const parts = options.tokenPath.split('.');
      parts.forEach((part, i) => {
        at[part] = i === parts.length - 1 ? { id: 'U-1', ...tokens } : {};
        at = at[part] as Record<string, unknown>;
      });
      body.app_id = 'A-1';
      body.team = { id: 'T-1', name: 'Test team' };
      if (options.topLevelToken) {
        const bot = remember(secretValue('bot'));
        accessTokens.set(bot, { subject: 'bot-1', kind: 'bot', expiresAt: null });
        Object.assign(body, { access_token: bot, token_type: 'bot', scope: 'chat:write', bot_user_id: 'B-1' });
      }
    }
    if (options.errorIn200 === 'ok-false') body = { ok: true, ...body };
    for (const [name, value] of Object.entries(options.tokenValues ?? {})) body[name] = typeof value === 'function' ? value(origins) : value;
    record.outcome = 'issued';
    return body;
  }

  async function token(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const form = new URLSearchParams(await readBody(req));
    const grantType = form.get('grant_type') ?? '';
    const verifier = form.get('code_verifier');
    const record: TokenRecord = {
      grantType,
      accept: req.headers.accept,
      clientAuth: clientAuthOf(req, form),
      codeVerifier: verifier === null ? 'absent' : 'unexpected',
      outcome: '',
      answeredAs: 'json',
    };
    tokenRequests.push(record);
    if (record.clientAuth === 'wrong' || record.clientAuth === 'none') return refuse(req, res, record, 401, errors.badClient, 'client authentication failed');

    if (grantType === 'authorization_code') {
      const code = codes.get(form.get('code') ?? '');
      if (!code || code.used || code.expiresAt < Date.now() || code.clientId !== clientId) {
        return refuse(req, res, record, 400, errors.badCode, 'the code is invalid, used or expired');
      }
      code.used = true;
      if (form.get('redirect_uri') !== code.redirectUri) return refuse(req, res, record, 400, errors.badCode, 'redirect_uri does not match');
      if (verifier !== null && pkce === 'refused') return refuse(req, res, record, 400, 'invalid_request', 'code_verifier is not supported');
      if (code.challenge !== undefined) {
        record.codeVerifier = verifier !== null && sameText(s256(verifier), code.challenge) ? 'matched' : verifier === null ? 'absent' : 'mismatched';
        if (record.codeVerifier !== 'matched') return refuse(req, res, record, 400, errors.badCode, 'code_verifier does not match');
      } else if (verifier !== null) {
        // A verifier for a code issued without a challenge: a PKCE downgrade (RFC 9700 2.1.1).
        return refuse(req, res, record, 400, errors.badCode, 'code_verifier without code_challenge');
      }
      return answer(req, res, record, 200, issueTokens(record, code.scope, undefined));
    }

    if (grantType === 'refresh_token') {
      const presented = form.get('refresh_token') ?? '';
      const stored = refreshTokens.get(presented);
      record.refreshGeneration = stored?.generation;
      record.refreshTokenAlive = stored?.alive ?? false;
      if (!stored?.alive) return refuse(req, res, record, 400, errors.badRefresh, 'the refresh token is invalid or revoked');
      return answer(req, res, record, 200, issueTokens(record, stored.scope, { carried: presented }));
    }

    refuse(req, res, record, 400, 'unsupported_grant_type', 'only authorization_code and refresh_token');
  }

  // ---- the API --------------------------------------------------------------------------------------------

  function api(req: http.IncomingMessage, url: URL, res: http.ServerResponse): void {
    const { authorization, ...headers } = req.headers;
    const record: ApiRecord = {
      method: req.method ?? 'GET',
      path: url.pathname + url.search,
      headers: Object.fromEntries(Object.entries(headers).map(([k, v]) => [k, Array.isArray(v) ? v.join(', ') : String(v)])),
      status: 0,
    };
    apiRequests.push(record);
    const json = (status: number, body: unknown, extra: Record<string, string> = {}): void => {
      record.status = status;
      res.writeHead(status, { 'content-type': 'application/json', ...extra }).end(JSON.stringify(body));
    };
    const bearer = authorization?.startsWith('Bearer ') ? authorization.slice(7) : '';
    const held = accessTokens.get(bearer);
    if (!held || (held.expiresAt !== null && held.expiresAt <= Date.now())) {
      return json(401, { error: 'invalid_token' }, { 'www-authenticate': 'Bearer error="invalid_token"' });
    }
    record.subject = held.subject;
    if (options.lookup && url.pathname === '/connections') {
      return json(200, [{ id: 'connection-1', tenantId, tenantType: 'ORGANISATION', tenantName: 'Demo Company' }]);
    }
    if (options.lookup && req.headers['xero-tenant-id'] !== tenantId) return json(403, { error: 'missing or unknown xero-tenant-id' });
    if (url.pathname === '/api/me') return json(200, { sub: held.subject, kind: held.kind });
    const company = /^\/api\/company\/([^/]+)$/.exec(url.pathname);
    if (company) {
      const realm = options.callbackParams?.realmId;
      if (realm === undefined || decodeURIComponent(company[1] as string) !== realm) return json(404, { error: 'no such company' });
      return json(200, { companyId: realm, sub: held.subject, kind: held.kind });
    }
    json(404, { error: 'not found' });
  }

  function handler(role: 'auth' | 'api' | 'both'): http.RequestListener {
    return (req, res) => {
      const url = new URL(req.url ?? '/', 'http://127.0.0.1');
      const isApi = url.pathname.startsWith('/api/') || url.pathname === '/connections';
      void (async () => {
        if (role !== 'api' && req.method === 'GET' && url.pathname === '/authorize') return authorize(url, res);
        if (role !== 'api' && req.method === 'POST' && url.pathname === '/token') return token(req, res);
        if (role !== 'auth' && isApi) {
          req.resume();
          return api(req, url, res);
        }
        req.resume();
        res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":"not found"}');
      })().catch(() => {
        if (!res.headersSent) res.writeHead(500).end();
      });
    };
  }

  const servers: http.Server[] = [];
  const authServer = http.createServer(handler(options.separateApi ? 'auth' : 'both'));
  servers.push(authServer);
  origins.url = await listen(authServer);
  origins.apiUrl = origins.url;
  if (options.separateApi) {
    const apiServer = http.createServer(handler('api'));
    servers.push(apiServer);
    origins.apiUrl = await listen(apiServer);
  }

  return {
    url: origins.url,
    apiUrl: origins.apiUrl,
    authorizeUrl: `${origins.url}/authorize`,
    tokenUrl: `${origins.url}/token`,
    lookupUrl: `${origins.apiUrl}/connections`,
    client: { clientId, clientSecret },
    tenantId,
    authorizeRequests,
    tokenRequests,
    apiRequests,
    addRedirectUri: (uri) => void redirectUris.add(uri),
    expireAccessTokens() {
      const now = Date.now();
      for (const t of accessTokens.values()) t.expiresAt = now;
    },
    revokeRefreshTokens() {
      for (const t of refreshTokens.values()) t.alive = false;
    },
    secrets: () => [...issued],
    reset() {
      authorizeRequests.length = 0;
      tokenRequests.length = 0;
      apiRequests.length = 0;
    },
    close: async () => {
      await Promise.all(servers.map(closeServer));
    },
  };
}
