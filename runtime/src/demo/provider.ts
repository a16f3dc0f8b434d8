/**
 * A small authorization server for the demo (and, with test-only toggles on top, for the package's tests): a
 * real oidc-provider 9 (a certified OpenID Provider) listening on loopback, with its own login and consent
 * pages at /interaction/:uid (devInteractions is off) that a person fills in a browser, or a test drives with
 * fetch and a cookie jar. One fixed account; accounts, grants and tokens live in memory only.
 */
import http from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { randomBytes } from 'node:crypto';

// ---------------------------------------------------------------------------------------------------------
// The slice of oidc-provider's (untyped) API this file uses. oidc-provider ships no type declarations, so we
// describe only what we call; everything else stays `unknown`.
// ---------------------------------------------------------------------------------------------------------

/** Koa's context, reduced to what our middlewares touch. */
export interface KoaContext {
  path: string;
  method: string;
  status: number;
  body: unknown;
  type: string;
  req: IncomingMessage;
  res: ServerResponse;
  set(name: string, value: string): void;
  redirect(url: string): void;
  oidc?: { body?: Record<string, unknown>; params?: Record<string, unknown> };
}
export type KoaMiddleware = (ctx: KoaContext, next: () => Promise<void>) => Promise<void>;

interface InteractionDetails {
  uid: string;
  prompt: { name: string; reasons: string[]; details: Record<string, unknown> };
  params: Record<string, unknown>;
  session?: { accountId?: string };
  grantId?: string;
}

interface GrantModel {
  addOIDCScope(scope: string): void;
  addOIDCClaims(claims: string[]): void;
  addResourceScope(resource: string, scope: string): void;
  save(): Promise<string>;
}

interface TokenModel {
  accountId?: string;
  clientId?: string;
  scope?: string;
  isExpired?: boolean;
}

export interface ClientModel {
  redirectUris: string[];
}

export interface Provider {
  issuer: string;
  callback(): (req: IncomingMessage, res: ServerResponse) => void;
  use(middleware: KoaMiddleware): void;
  on(event: string, listener: (...args: unknown[]) => void): void;
  interactionDetails(req: IncomingMessage, res: ServerResponse): Promise<InteractionDetails>;
  interactionResult(
    req: IncomingMessage,
    res: ServerResponse,
    result: Record<string, unknown>,
    options?: { mergeWithLastSubmission?: boolean },
  ): Promise<string>;
  Grant: { new (init: { accountId: string; clientId: string }): GrantModel; find(id: string): Promise<GrantModel | undefined> };
  AccessToken: { find(value: string): Promise<TokenModel | undefined> };
  ClientCredentials: { find(value: string): Promise<TokenModel | undefined> };
  RefreshToken: { find(value: string): Promise<TokenModel | undefined> };
  Client: { find(id: string): Promise<ClientModel | undefined> };
}

type ProviderConstructor = new (issuer: string, configuration: Record<string, unknown>) => Provider;

// ---------------------------------------------------------------------------------------------------------
// Public API
// ---------------------------------------------------------------------------------------------------------

export interface Account {
  id: string;
  email: string;
  password: string;
}

/** The one account of the demo server. Printed by the demo and written in the README: it guards nothing. */
export const DEMO_ACCOUNT: Readonly<Account> = Object.freeze({ id: 'alice', email: 'alice@example.com', password: 'correct horse battery staple' });

export interface ProviderServerOptions {
  /** Client metadata as oidc-provider takes it (client_id, client_secret, redirect_uris, grant_types...). */
  clients: Record<string, unknown>[];
  host?: string;
  /** Default 0: any free port. */
  port?: number;
  account?: Account;
  /** Heading of the login and consent pages. */
  title?: string;
  /** Lifetime of access tokens (and client-credentials tokens). Default 3600. */
  accessTokenTtlSec?: number;
  /** Rotate refresh tokens on every use (reuse of an old one then revokes the grant). Default true. */
  rotateRefreshToken?: boolean;
  /** Issue refresh tokens to every client allowed the grant, not only with offline_access. Default true. */
  issueRefreshToken?: boolean;
  /** Require PKCE (S256) from every client. Default true. */
  requirePkce?: boolean;
  /** Issue JWT access tokens (typ at+jwt) for this audience instead of opaque ones. */
  jwtAudience?: string;
  /** Koa middlewares run before the login and consent pages (counters, fault injection...). */
  middlewares?: KoaMiddleware[];
}

export interface ProviderServer {
  /** e.g. http://127.0.0.1:PORT (no trailing slash) */
  issuer: string;
  port: number;
  provider: Provider;
  account: Account;
  /** Real lookup of an access token (opaque user tokens and client-credentials tokens). */
  validateAccessToken(token: string): Promise<{ active: boolean; sub?: string; scope?: string; clientId?: string }>;
  /** Adds a redirect URI to a client registered at start (clients are materialised on first use). */
  addRedirectUri(clientId: string, uri: string): Promise<void>;
  close(): Promise<void>;
}

/**
 * oidc-provider 9 and jose 6 are ESM-only. A dynamic import() stays a real import() both under tsx/cjs (mocha)
 * and in tsc's node16 CommonJS output, so Node loads them as ES modules (checked on Node.js 20).
 */
async function loadProviderClass(): Promise<ProviderConstructor> {
  // @ts-expect-error oidc-provider ships no type declarations; the Provider interface above describes our use.
  const mod = (await withoutExpectedWarnings(() => import('oidc-provider'))) as { default: ProviderConstructor };
  return mod.default;
}

/**
 * oidc-provider warns on stderr that Node.js 20 is not its supported runtime (it works: the tests run on it)
 * and that its in-memory store loses everything on restart (the point of a demo). A newcomer reading the
 * demo's terminal would take these for a problem, so exactly these two are dropped; any other warning shows.
 */
const EXPECTED_WARNINGS = [
  'oidc-provider WARNING: Unsupported runtime',
  'oidc-provider WARNING: a quick start development-only in-memory adapter',
];
async function withoutExpectedWarnings<T>(fn: () => T | Promise<T>): Promise<T> {
  const warn = console.warn;
  console.warn = (...args: unknown[]) => {
    const first = args[0];
    if (typeof first === 'string' && EXPECTED_WARNINGS.some((w) => first.includes(w))) return;
    warn.apply(console, args);
  };
  try {
    return await fn();
  } finally {
    console.warn = warn;
  }
}

export async function startProviderServer(options: ProviderServerOptions): Promise<ProviderServer> {
  const ttl = options.accessTokenTtlSec ?? 3600;
  const account = options.account ?? { ...DEMO_ACCOUNT };
  const requirePkce = options.requirePkce ?? true;
  const issueRefresh = options.issueRefreshToken ?? true;
  const title = options.title ?? '';
  const host = options.host ?? '127.0.0.1';

  // Listen first so the issuer can carry the real port.
  let handler: (req: IncomingMessage, res: ServerResponse) => void = (_req, res) => {
    res.statusCode = 503;
    res.end();
  };
  const server = http.createServer((req, res) => handler(req, res));
  const sockets = new Set<Socket>();
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, host, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  const issuer = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;

  const Provider = await loadProviderClass();
  const { generateKeyPair, exportJWK } = await import('jose');
  const { privateKey } = await generateKeyPair('RS256', { extractable: true });
  const signingKey = { ...(await exportJWK(privateKey)), kid: 'signing-key', alg: 'RS256', use: 'sig' };
  const jwtAudience = options.jwtAudience;

  const configuration: Record<string, unknown> = {
    clients: options.clients,
    jwks: { keys: [signingKey] },
    cookies: { keys: [randomBytes(32).toString('hex')] },
    // Put the scope's claims (email...) in the id_token too, as most providers do, not only in userinfo.
    conformIdTokenClaims: false,
    claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['preferred_username'] },
    scopes: ['openid', 'offline_access', 'email', 'profile', 'api:read', 'api:write'],
    pkce: { required: () => requirePkce },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      deviceFlow: { enabled: true },
      revocation: { enabled: true },
      introspection: { enabled: true },
      ...(jwtAudience
        ? {
            resourceIndicators: {
              enabled: true,
              defaultResource: () => jwtAudience,
              useGrantedResource: () => true,
              getResourceServerInfo: () => ({
                scope: 'api:read api:write',
                accessTokenFormat: 'jwt',
                accessTokenTTL: ttl,
                audience: jwtAudience,
              }),
            },
          }
        : {}),
    },
    ttl: {
      AccessToken: ttl,
      ClientCredentials: ttl,
      AuthorizationCode: 60,
      DeviceCode: 600,
      IdToken: 3600,
      Interaction: 3600,
      Session: 86400,
      Grant: 86400,
      RefreshToken: 86400,
    },
    rotateRefreshToken: options.rotateRefreshToken ?? true,
    // Default oidc-provider only issues refresh tokens with offline_access; our connections expect one
    // whenever the client is allowed the grant (like most SaaS providers).
    issueRefreshToken: (_ctx: unknown, client: { grantTypeAllowed(type: string): boolean }) =>
      issueRefresh && client.grantTypeAllowed('refresh_token'),
    findAccount: (_ctx: unknown, id: string) =>
      id === account.id
        ? {
            accountId: account.id,
            claims: () => ({ sub: account.id, email: account.email, email_verified: true, preferred_username: account.id }),
          }
        : undefined,
    renderError: (ctx: KoaContext, out: Record<string, unknown>) => {
      ctx.type = 'html';
      ctx.body = page(title, 'Error', `<pre>${escapeHtml(JSON.stringify(out, null, 2))}</pre>`);
    },
  };

  const provider = await withoutExpectedWarnings(() => new Provider(issuer, configuration));
  // Provider-internal error events are answered over HTTP already; do not print them.
  provider.on('server_error', () => undefined);
  for (const middleware of options.middlewares ?? []) provider.use(middleware);
  provider.use(interactionPages);
  handler = provider.callback();

  async function interactionPages(ctx: KoaContext, next: () => Promise<void>): Promise<void> {
    const match = /^\/interaction\/([\w-]+)(?:\/(login|consent))?$/.exec(ctx.path);
    if (!match) return next();
    const [, uid, action] = match;
    ctx.set('cache-control', 'no-store');
    const details = await provider.interactionDetails(ctx.req, ctx.res);
    if (details.uid !== uid) {
      ctx.status = 400;
      ctx.type = 'html';
      ctx.body = page(title, 'Error', '<p>Unknown interaction.</p>');
      return;
    }

    if (ctx.method === 'GET' && !action) {
      renderPrompt(ctx, details, title);
      return;
    }
    if (ctx.method !== 'POST' || !action) {
      ctx.status = 405;
      return;
    }

    const form = await readForm(ctx.req);
    if (action === 'login') {
      if (details.prompt.name !== 'login') return renderPrompt(ctx, details, title);
      const username = form.get('username') ?? '';
      const password = form.get('password') ?? '';
      if ((username !== account.id && username !== account.email) || password !== account.password) {
        renderLogin(ctx, details, title, 'Invalid username or password.');
        return;
      }
      const returnTo = await provider.interactionResult(ctx.req, ctx.res, { login: { accountId: account.id } }, { mergeWithLastSubmission: false });
      ctx.status = 303;
      ctx.redirect(returnTo);
      return;
    }

    // consent
    if (details.prompt.name !== 'consent') return renderPrompt(ctx, details, title);
    if (form.get('decision') !== 'allow') {
      const returnTo = await provider.interactionResult(
        ctx.req,
        ctx.res,
        { error: 'access_denied', error_description: 'End-User denied the request' },
        { mergeWithLastSubmission: false },
      );
      ctx.status = 303;
      ctx.redirect(returnTo);
      return;
    }
    const result = await grantMissing(details);
    const returnTo = await provider.interactionResult(ctx.req, ctx.res, result, { mergeWithLastSubmission: true });
    ctx.status = 303;
    ctx.redirect(returnTo);
  }

  async function grantMissing(details: InteractionDetails): Promise<Record<string, unknown>> {
    const accountId = details.session?.accountId ?? account.id;
    const clientId = String(details.params.client_id);
    const existing = details.grantId ? await provider.Grant.find(details.grantId) : undefined;
    const grant = existing ?? new provider.Grant({ accountId, clientId });
    const missing = details.prompt.details as {
      missingOIDCScope?: string[];
      missingOIDCClaims?: string[];
      missingResourceScopes?: Record<string, string[]>;
    };
    if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
    if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
    for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes ?? {})) {
      grant.addResourceScope(indicator, scopes.join(' '));
    }
    const grantId = await grant.save();
    return { consent: existing ? {} : { grantId } };
  }

  return {
    issuer,
    port,
    provider,
    account: { ...account },
    async validateAccessToken(token: string) {
      const found = (await provider.AccessToken.find(token)) ?? (await provider.ClientCredentials.find(token));
      if (!found || found.isExpired) return { active: false };
      return { active: true, sub: found.accountId, scope: found.scope, clientId: found.clientId };
    },
    async addRedirectUri(clientId: string, uri: string): Promise<void> {
      const client = await provider.Client.find(clientId);
      if (client && !client.redirectUris.includes(uri)) client.redirectUris.push(uri);
    },
    async close(): Promise<void> {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const socket of sockets) socket.destroy();
      });
    },
  };
}

// ---------------------------------------------------------------------------------------------------------
// Pages
// ---------------------------------------------------------------------------------------------------------

function renderPrompt(ctx: KoaContext, details: InteractionDetails, title: string): void {
  if (details.prompt.name === 'login') renderLogin(ctx, details, title);
  else renderConsent(ctx, details, title);
}

function renderLogin(ctx: KoaContext, details: InteractionDetails, title: string, error?: string): void {
  ctx.type = 'html';
  ctx.status = error ? 401 : 200;
  ctx.body = page(
    title,
    'Sign in',
    `${error ? `<p class="error" role="alert">${escapeHtml(error)}</p>` : ''}
    <p>Sign in to continue to <strong>${escapeHtml(String(details.params.client_id))}</strong>.</p>
    <form id="login-form" method="post" action="/interaction/${escapeHtml(details.uid)}/login" autocomplete="off">
      <label>Username <input type="text" name="username" autofocus required></label>
      <label>Password <input type="password" name="password" required></label>
      <button type="submit">Sign in</button>
    </form>`,
  );
}

function renderConsent(ctx: KoaContext, details: InteractionDetails, title: string): void {
  const scopes = String(details.params.scope ?? '').split(' ').filter(Boolean);
  ctx.type = 'html';
  ctx.status = 200;
  ctx.body = page(
    title,
    'Authorize',
    `<p><strong>${escapeHtml(String(details.params.client_id))}</strong> asks for:</p>
    <ul>${scopes.map((s) => `<li>${escapeHtml(s)}</li>`).join('')}</ul>
    <form id="consent-form" method="post" action="/interaction/${escapeHtml(details.uid)}/consent">
      <button type="submit" name="decision" value="allow">Allow</button>
      <button type="submit" name="decision" value="deny">Deny</button>
    </form>`,
  );
}

const STYLE =
  'body{font-family:system-ui,sans-serif;max-width:26rem;margin:3rem auto;padding:0 1rem;color:#222}' +
  'label{display:block;margin:.8rem 0}input{display:block;width:100%;padding:.4rem;box-sizing:border-box}' +
  'button{padding:.5rem 1rem;margin-right:.5rem}.error{color:#b00}.site{color:#666;font-size:.9rem}';

function page(site: string, heading: string, body: string): string {
  return `<!DOCTYPE html><html><head><meta charset="utf-8"><title>${escapeHtml(heading)}</title>` +
    `<meta name="viewport" content="width=device-width,initial-scale=1"><style>${STYLE}</style></head>` +
    `<body>${site ? `<p class="site">${escapeHtml(site)}</p>` : ''}<h1>${escapeHtml(heading)}</h1>${body}</body></html>`;
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** Reads an urlencoded form body (at most 64 KiB). */
export async function readForm(req: IncomingMessage): Promise<URLSearchParams> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > 64 * 1024) break;
    chunks.push(chunk);
  }
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}
