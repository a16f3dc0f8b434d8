import { randomBytes } from 'node:crypto';
import type { Request, RequestHandler, Response } from 'express';
import session from 'express-session';
import { Connection } from './lib/connection';
import { snapshotOf, type TokenSnapshot } from './lib/tokens/token-manager';
import {
  credentialTarget,
  parseConnectionConfig,
  type ConnectionConfig,
  type ConnectionSettings,
} from './lib/connection-settings';
import { OAuth2Error, isOAuth2Error, translateError, type ErrorParams } from './lib/errors';
import { LoginFailure, LoginService, type DeviceLoginView } from './lib/login/login-service';
import { BoundedMemorySessionStore } from './lib/login/session-store';
import { agentFetch } from './lib/http/agent-fetch';
import { sharedAgents } from './lib/http/agents';
import { discoverProvider, discoveryFailureForCaller } from './lib/oauth/discovery';

import type { RevocationResult } from './lib/oauth/revocation';
import type { TokenEndpointClient } from './lib/oauth/token-endpoint';
import { keepPreviousRefreshToken } from './lib/tokens/relogin';
import type { StoredTokens } from './lib/tokens/token-store';
import type { ProviderMetadata, TokenSet } from './lib/types';
import type { NodeAPI } from './node-red/types';
import type { ConnectionNode } from './node-red/connection-node';
import type { RuntimeTokenStore } from './node-red/token-stores';
import { renderCallbackPage } from './oauth2-connection-callback-page';
import { refuseCrossSite } from './node-red/admin-origin-guard';
import { proxyOf } from './node-red/proxy-node';
import { editorCatalogue } from './node-red/provider-catalogue';

export interface RouteDeps {
  store: RuntimeTokenStore;
  translate: (key: string, params?: ErrorParams) => string;
  /** Engine errors translated as the connection node does (store failures say why). */
  errorText?: (err: unknown) => string;
  mirrorToCredentials: (id: string, stored: StoredTokens | undefined) => void;
  /** The Redis behind a shared token store (absent for the file store): host:port and whether it is away now. */
  redis?: { where: string; unavailable(): boolean };
}

/** Login transactions live ten minutes: the cookie binding the browser to them lives as long. */
const LOGIN_LIFETIME_MS = 10 * 60 * 1000;
const NODE_ID = /^[0-9a-zA-Z._-]{1,64}$/;

const HTTP_STATUS_FOR: Partial<Record<string, number>> = {
  OAUTH2_INVALID_CONFIG: 400,
  OAUTH2_INVALID_INPUT: 400,
  OAUTH2_INVALID_STATE: 400,
  OAUTH2_ISSUER_MISMATCH: 400,
  OAUTH2_PROVIDER_ERROR: 400,
  OAUTH2_ACCESS_DENIED: 400,
  OAUTH2_LOGIN_REQUIRED: 400,
  OAUTH2_TOKEN_REQUEST_REJECTED: 400,
  OAUTH2_DEVICE_CODE_EXPIRED: 400,
};

/**
 * Whether the user behind a request that passed a needsPermission guard may also `oauth2-connection.write`:
 * Node-RED's rule (@node-red/editor-api/lib/auth/permissions.js, hasPermission) on the scope the guard's login
 * left in req.authInfo. Asking the write guard itself would answer the same, but it writes a permission.fail
 * line to the audit log each time a read-only user's dialog polls the status. No user: no adminAuth, all may.
 */
function mayWrite(req: Request): boolean {
  if (!(req as Request & { user?: unknown }).user) return true;
  return scopeAllows((req as Request & { authInfo?: { scope?: unknown } }).authInfo?.scope, 'oauth2-connection.write');
}

/** Node-RED's hasPermission for one permission: '*', the permission itself, or read / write for every type. */
export function scopeAllows(scope: unknown, permission: string): boolean {
  if (Array.isArray(scope)) return scope.some((one) => scopeAllows(one, permission));
  if (scope === '*' || scope === permission) return true;
  if (scope === 'read' || scope === '*.read') return /^((.+)\.)?read$/.test(permission);
  if (scope === 'write' || scope === '*.write') return /^((.+)\.)?write$/.test(permission);
  return false;
}

/**
 * The connection's admin routes, registered once per runtime (never in a node constructor). Every route that
 * reads or changes anything needs the `oauth2-connection.read` / `.write` permission; the callback is reached
 * by the provider's redirect (no admin token on a navigation) and is guarded by a single-use, expiring state
 * bound to the browser session that started the login, plus PKCE and `iss`.
 */
export function registerConnectionRoutes(RED: NodeAPI, deps: RouteDeps): void {
  const sessionStore = new BoundedMemorySessionStore({ maxEntries: 1000, ttlMs: LOGIN_LIFETIME_MS });
  const login = new LoginService({ lifetimeMs: LOGIN_LIFETIME_MS });
  const adminRoot = typeof RED.settings.httpAdminRoot === 'string' ? RED.settings.httpAdminRoot : '/';
  const cookiePath = `${adminRoot.replace(/\/+$/, '')}/oauth2-connection/`;
  const sessions = session({
    name: 'nr-oauth2-login',
    // Per process: a restart ends pending logins, which live ten minutes anyway.
    secret: randomBytes(32).toString('hex'),
    store: sessionStore,
    resave: false,
    saveUninitialized: false,
    rolling: false,
    cookie: { httpOnly: true, sameSite: 'lax', secure: 'auto', maxAge: LOGIN_LIFETIME_MS, path: cookiePath },
  });
  const read = RED.auth.needsPermission('oauth2-connection.read');
  const write = RED.auth.needsPermission('oauth2-connection.write');
  RED.httpAdmin.use('/oauth2-connection', refuseCrossSite(RED));

  function sendError(res: Response, err: unknown): void {
    const code = err instanceof OAuth2Error ? err.code : 'OAUTH2_INVALID_INPUT';
    const status = HTTP_STATUS_FOR[code] ?? 502;
    res.status(status).json({ error: { code, message: translateError(err, deps.translate) } });
  }

  function liveConnection(id: string): Connection | undefined {
    return (RED.nodes.getNode(id) as ConnectionNode | null)?.connection;
  }

  function validId(req: Request): string {
    const id = req.params.id;
    if (typeof id !== 'string' || !NODE_ID.test(id)) {
      throw new OAuth2Error('OAUTH2_INVALID_INPUT', 'Invalid input: id', { params: { field: 'id', reason: 'invalidValue' } });
    }
    return id;
  }

  /**
   * The settings a login or logout uses: the dialog's current values (a login works before the first deploy).
   * The client secret is the one typed in the dialog, else the deployed one, but only when the dialog sends
   * it exactly where the deployed connection does (same client id, authentication method, issuer and every
   * endpoint): a dialog must not be able to send the stored secret to another server. `withheld` says the
   * deployed secret was not reused for that reason.
   */
  async function settingsFromBody(id: string, body: unknown): Promise<{ settings: ConnectionSettings; withheld: boolean }> {
    const chosen = await secretFor(id, body);
    // The dialog's proxy node, as the deployed connection's: the login goes out the way its calls will.
    const config = (body as { config: ConnectionConfig }).config;
    return { ...chosen, settings: { ...chosen.settings, proxy: proxyOf(RED, config.proxy) } };
  }

  async function secretFor(id: string, body: unknown): Promise<{ settings: ConnectionSettings; withheld: boolean }> {
    const b = (body && typeof body === 'object' ? body : {}) as { config?: unknown; clientSecret?: unknown };
    if (!b.config || typeof b.config !== 'object' || Array.isArray(b.config)) {
      throw new OAuth2Error('OAUTH2_INVALID_INPUT', 'Invalid input: config', { params: { field: 'config', reason: 'required' } });
    }
    const config = b.config as ConnectionConfig;
    const typed = typeof b.clientSecret === 'string' && b.clientSecret && b.clientSecret !== '__PWRD__' ? b.clientSecret : undefined;
    if (typed) return { settings: parseConnectionConfig(config, typed), withheld: false };
    const live = liveConnection(id);
    // Only compared with the deployed settings: a client-credentials config without a secret must not throw here.
    const candidate = parseConnectionConfig(config, undefined, { secretRequired: false });
    const stored = live?.settings.client.clientSecret;
    if (!live || !stored) return { settings: parseConnectionConfig(config), withheld: false };
    // Where the deployed connection really sends it: for an issuer alone, the endpoints it discovers there (the
    // dialog's Discover fills in exactly those).
    if (await live.sendsTo(credentialTarget(candidate))) {
      return { settings: parseConnectionConfig(config, stored), withheld: false };
    }
    return { settings: parseConnectionConfig(config), withheld: true };
  }

  /** A login that authenticates the client needs its secret now, not at the callback after the user consented. */
  async function loginSettings(id: string, body: unknown): Promise<ConnectionSettings> {
    const { settings, withheld } = await settingsFromBody(id, body);
    if (settings.client.authMethod !== 'none' && !settings.client.clientSecret) {
      throw new OAuth2Error('OAUTH2_INVALID_CONFIG', 'Invalid configuration: clientSecret is required', {
        params: { field: 'clientSecret', reason: withheld ? 'retypeSecret' : 'required' },
      });
    }
    return settings;
  }

  /**
   * Who may revoke stored tokens at logout: only a client sending them to the endpoints the login was made
   * with (kept with the tokens), by the same client authentication. The deployed connection when it matches
   * (or for tokens that do not say where they come from, which it obtained itself); else the dialog's
   * settings when they match; else nobody, and the tokens are only forgotten here.
   */
  async function revokerFor(
    id: string,
    connection: Connection | undefined,
    stored: StoredTokens | undefined,
    body: unknown,
  ): Promise<{ revoker: Pick<TokenEndpointClient, 'revoke'>; close(): void } | undefined> {
    if (!stored) return undefined;
    const issuedTo = stored.tokens.issuedTo;
    if (connection && (!issuedTo || (await connection.sendsTo(issuedTo)))) {
      return { revoker: connection.client, close: () => undefined };
    }
    if (!issuedTo || !(body as { config?: unknown } | undefined)?.config) return undefined;
    const { settings } = await settingsFromBody(id, body);
    const temp = new Connection({ id, settings, store: deps.store });
    if (!(await temp.sendsTo(issuedTo))) {
      temp.close();
      return undefined;
    }
    return { revoker: temp.client, close: () => temp.close() };
  }

  /**
   * Stores a completed login for the connection. The deployed connection uses it only when it was made with the
   * deployed authorization-server settings; otherwise it is kept for the deploy of the settings it was made
   * with, and the deployed connection sends its tokens nowhere. Resolves whether the login waits for Deploy.
   */
  async function adoptLogin(id: string, tokens: TokenSet): Promise<boolean> {
    const stored: StoredTokens = { tokens, updatedAt: Date.now() };
    const connection = liveConnection(id);
    let awaitsDeploy = false;
    if (connection) awaitsDeploy = !(await connection.adoptTokens(tokens));
    else {
      // Not deployed yet: the store alone says what the previous login left (relogin.ts).
      const previous = tokens.refreshToken ? undefined : await deps.store.get(id).catch(() => undefined);
      stored.tokens = keepPreviousRefreshToken(tokens, previous?.tokens);
      await deps.store.set(id, stored);
    }
    deps.mirrorToCredentials(id, stored);
    return awaitsDeploy;
  }

  /**
   * A pending device login as the status shows it. The user code and the verification links let whoever holds
   * them approve the login with their own account: only a user who may log the connection in sees them.
   */
  function deviceView(view: DeviceLoginView | undefined, writer: boolean): Partial<DeviceLoginView> | undefined {
    if (!view || writer) return view;
    const { userCode: _userCode, verificationUri: _verificationUri, verificationUriComplete: _complete, ...rest } = view;
    return rest;
  }

  const handle =
    (fn: (req: Request, res: Response) => Promise<void>): RequestHandler =>
    (req, res) => {
      fn(req, res).catch((err: unknown) => sendError(res, err));
    };

  // The server fetches a URL the caller names: only a user who may change connections may ask.
  RED.httpAdmin.post('/oauth2-connection/discover', write, handle(async (req, res) => {
    const { issuer, proxy } = (req.body as { issuer?: unknown; proxy?: unknown } | undefined) ?? {};
    if (typeof issuer !== 'string' || !issuer.trim()) {
      throw new OAuth2Error('OAUTH2_INVALID_INPUT', 'Invalid input: issuer', { params: { field: 'issuer', reason: 'required' } });
    }
    let md: ProviderMetadata;
    try {
      md = await discoverProvider(issuer.trim(), { timeoutMs: 15_000, fetchImpl: agentFetch(sharedAgents(proxyOf(RED, proxy))) });
    } catch (err) {
      // A reader may probe with any issuer: what the network answered goes to the log, the caller gets one error.
      const shown = discoveryFailureForCaller(issuer.trim(), err);
      if (shown.logDetail) RED.log.warn(deps.translate('discover.failedLog', { issuer: issuer.trim(), detail: shown.logDetail }));
      throw shown.error;
    }
    res.json({
      issuer: md.issuer,
      authorizationEndpoint: md.authorizationEndpoint,
      tokenEndpoint: md.tokenEndpoint,
      revocationEndpoint: md.revocationEndpoint,
      deviceAuthorizationEndpoint: md.deviceAuthorizationEndpoint,
      issParameterSupported: md.authorizationResponseIssParameterSupported === true,
      scopesSupported: md.scopesSupported,
    });
  }));

  // The provider presets the dialog's Provider field lists (no secret in them: endpoints, labels, links).
  RED.httpAdmin.get('/oauth2-connection/providers', read, handle(async (_req, res) => {
    res.set('cache-control', 'no-cache');
    res.json({ providers: editorCatalogue() });
  }));

  RED.httpAdmin.get('/oauth2-connection/:id/status', read, handle(async (req, res) => {
    const id = validId(req);
    const node = RED.nodes.getNode(id) as ConnectionNode | null;
    const connection = node?.connection;
    let snapshot: TokenSnapshot;
    // Whether the shared token store (Redis) can be reached: the deployed node follows its connection's
    // status; for a connection not deployed, the runtime's Redis connection (and the read just tried) tells.
    let storeUnavailable = false;
    if (connection) {
      // Just deployed or started: the state once the stored tokens are loaded, not the one before.
      await connection.whenStarted(3000);
      snapshot = connection.snapshot();
      storeUnavailable = node?.storeUnavailable === true;
    } else {
      try {
        snapshot = snapshotOf(await deps.store.get(id));
      } catch (err) {
        // Redis away: what is stored is unknown, and the answer says why rather than failing the dialog.
        if (!deps.redis || !isOAuth2Error(err, 'OAUTH2_TOKEN_STORE_FAILED') || !String(err.params.reason).startsWith('redis-')) throw err;
        snapshot = snapshotOf(undefined, { kind: 'unavailable', error: err });
        storeUnavailable = true;
      }
      storeUnavailable ||= deps.redis?.unavailable() === true;
    }
    res.set('cache-control', 'no-store');
    // Why the connection is unavailable, refused or needs a login (when more is known), translated; never a token.
    const why = 'error' in snapshot.state ? snapshot.state.error : undefined;
    res.json({
      ...snapshot,
      state: snapshot.state.kind,
      stateCode: why?.code,
      // Why a login is required when more is known: 'awaitsDeploy' lets the dialog say its login waits for Deploy.
      stateReason: typeof why?.params.reason === 'string' ? why.params.reason : undefined,
      stateMessage: why ? (deps.errorText ?? ((e: unknown) => translateError(e, deps.translate)))(why) : undefined,
      store: deps.store.kind,
      // Redis only: host:port (never the URL, which may hold a password), and whether it can be reached now.
      storeWhere: deps.redis?.where,
      storeUnavailable,
      storeMessage: storeUnavailable ? deps.translate('store.redisUnavailable', { where: deps.redis?.where ?? 'redis' }) : undefined,
      device: deviceView(login.deviceStatus(id), mayWrite(req)),
    });
  }));

  RED.httpAdmin.post('/oauth2-connection/:id/login', write, sessions, handle(async (req, res) => {
    const id = validId(req);
    const settings = await loginSettings(id, req.body);
    if (settings.grant !== 'authorization_code') {
      throw new OAuth2Error('OAUTH2_INVALID_INPUT', 'Invalid input: grantType', { params: { field: 'grantType', reason: 'invalidValue' } });
    }
    if (!settings.redirectUri) {
      throw new OAuth2Error('OAUTH2_INVALID_CONFIG', 'Invalid configuration: redirectUri is required', {
        params: { field: 'redirectUri', reason: 'required' },
      });
    }
    // Marks the session so express-session stores it and sets the cookie that binds this browser to the state.
    (req.session as session.Session & { started?: number }).started = Date.now();
    const { authorizeUrl } = await login.begin({ connectionId: id, settings, sessionId: req.sessionID, redirectUri: settings.redirectUri });
    res.set('cache-control', 'no-store');
    res.json({ authorizeUrl });
  }));

  RED.httpAdmin.get('/oauth2-connection/callback', sessions, (req, res) => {
    const query = req.query as Record<string, unknown>;
    res.set('cache-control', 'no-store');
    res.set('referrer-policy', 'no-referrer');
    login
      .complete(query, req.session ? req.sessionID : '')
      .then(async ({ connectionId, tokens }) => {
        const awaitsDeploy = await adoptLogin(connectionId, tokens);
        renderCallbackPage(res, 200, { ok: true, id: connectionId, ...(awaitsDeploy ? { awaitsDeploy } : {}) }, deps.translate);
      })
      .catch((failure: unknown) => {
        const id = failure instanceof LoginFailure ? failure.connectionId : undefined;
        const err = failure instanceof LoginFailure ? failure.reason : failure;
        const code = err instanceof OAuth2Error ? err.code : 'OAUTH2_INVALID_STATE';
        renderCallbackPage(res, 400, { ok: false, id, code, message: translateError(err, deps.translate) }, deps.translate);
      });
  });

  RED.httpAdmin.post('/oauth2-connection/:id/device', write, handle(async (req, res) => {
    const id = validId(req);
    const settings = await loginSettings(id, req.body);
    if (settings.grant !== 'device_code') {
      throw new OAuth2Error('OAUTH2_INVALID_INPUT', 'Invalid input: grantType', { params: { field: 'grantType', reason: 'invalidValue' } });
    }
    const started = await login.startDevice({ connectionId: id, settings }, async (tokens) => {
      await adoptLogin(id, tokens);
    });
    res.set('cache-control', 'no-store');
    res.json(started);
  }));

  RED.httpAdmin.post('/oauth2-connection/:id/logout', write, handle(async (req, res) => {
    const id = validId(req);
    login.cancelDevice(id);
    const connection = liveConnection(id);
    const stored = await deps.store.get(id);
    const revocation = await revokerFor(id, connection, stored, req.body);
    let result: RevocationResult = { refreshTokenRevoked: false, accessTokenRevoked: false };
    try {
      if (connection) {
        result = await connection.logout(revocation?.revoker ?? null);
      } else {
        if (stored && revocation) result = await revocation.revoker.revoke(stored.tokens);
        await deps.store.delete(id);
      }
    } finally {
      revocation?.close();
    }
    deps.mirrorToCredentials(id, undefined);
    // Tokens the provider would not revoke may still work there: said in the log as in the dialog.
    if (result.failure) RED.log.warn(deps.translate('logout.revocationRefusedLog', { id, detail: result.failure }));
    res.json(result);
  }));
}
