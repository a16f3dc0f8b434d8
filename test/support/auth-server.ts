/**
 * The test authorization server: the runtime's demo authorization server (runtime/src/demo/provider.ts, a real
 * oidc-provider 9 on 127.0.0.1 with its own login and consent pages) with the clients and test-only toggles the
 * tests need: request counts, fault injection in front of the token endpoint, and variants that omit
 * refresh_token or expires_in. Tests talk to it over real HTTP; nothing is mocked.
 *
 * Login and consent are real HTML pages served at /interaction/:uid, so a browser test can fill them and
 * `loginThroughProvider` can drive them with plain fetch and a cookie jar.
 */
import { randomBytes } from 'node:crypto';
import {
  DEMO_ACCOUNT,
  readForm,
  startProviderServer,
  type KoaContext,
  type Provider,
} from '../../runtime/src/demo/provider';

export type { KoaContext, KoaMiddleware, Provider } from '../../runtime/src/demo/provider';

// ---------------------------------------------------------------------------------------------------------
// Public API
// ---------------------------------------------------------------------------------------------------------

export interface AuthServerOptions {
  /** Lifetime of access tokens (and client-credentials tokens). Default 3600. */
  accessTokenTtlSec?: number;
  /** Rotate refresh tokens on every use (reuse of an old one then revokes the grant). Default true. */
  rotateRefreshToken?: boolean;
  /** Issue refresh tokens to every client allowed the grant, not only with offline_access. Default true. */
  issueRefreshToken?: boolean;
  /** Issue JWT access tokens (typ at+jwt, audience `jwtAudience`) instead of opaque ones. Default false. */
  jwtAccessTokens?: boolean;
  /** Require PKCE (S256) from every client. Default true. */
  requirePkce?: boolean;
  /**
   * When false, a refresh_token grant's response carries no `refresh_token` member (the old one stays valid,
   * as RFC 6749 section 6 allows): for the "keep the previous refresh token" case. Implies no rotation.
   * Default true.
   */
  returnRefreshTokenOnRefresh?: boolean;
  /** When false, token responses carry no `expires_in` (for the JWT-exp / default fallbacks). Default true. */
  sendExpiresIn?: boolean;
  /**
   * A reuse grace period, as some providers have (a reuse interval): a rotated refresh token presented again
   * within this many seconds of its first use gets that first use's answer again (the same new tokens), instead
   * of the provider's reuse detection, which revokes the whole grant. Default 0: none.
   */
  refreshReuseGraceSec?: number;
}

export interface ConfidentialClient { clientId: string; clientSecret: string; redirectUris: string[] }

export interface AuthServerClients {
  /** Confidential web client, client_secret_basic; authorization_code + refresh_token. */
  web: ConfidentialClient;
  /** Same as web but authenticating with client_secret_post. */
  webPost: ConfidentialClient;
  /** Confidential client_credentials client, client_secret_basic. */
  service: { clientId: string; clientSecret: string };
  /** Public device-flow client (token_endpoint_auth_method none); device_code + refresh_token. */
  device: { clientId: string; clientSecret?: string };
  /** Public (none) authorization_code + refresh_token client. */
  public: { clientId: string; redirectUris: string[] };
}

export interface AuthServer {
  /** e.g. http://127.0.0.1:PORT (no trailing slash) */
  issuer: string;
  port: number;
  provider: Provider;
  clients: AuthServerClients;
  /** Allows a callback URI picked at run time for the web, webPost and public clients. */
  addRedirectUri(uri: string): void;
  account: { id: string; email: string; password: string };
  /** Token endpoint calls by grant_type (including ones failed by the fault toggle), revocation and device calls. */
  counts(): { token: Record<string, number>; revocation: number; deviceAuthorization: number };
  resetCounts(): void;
  /** token_type_hint of each revocation request, in arrival order (reset by resetCounts). */
  revocationLog(): string[];
  /** Real lookup of an access token (opaque user tokens and client-credentials tokens). */
  validateAccessToken(token: string): Promise<{ active: boolean; sub?: string; scope?: string; clientId?: string }>;
  /** Fault toggle in front of POST /token: answer `status` with `body`, or reset the connection. null clears. */
  setTokenEndpointFailure(mode: null | { status: number; body?: string } | 'reset'): void;
  /**
   * The next POST /token is carried out by the provider (a refresh rotates), and its answer is then held until
   * `release`: the request "is at the provider" in between. `reached` resolves once the provider has acted.
   */
  holdNextTokenAnswer(): { reached: Promise<void>; release: () => void };
  /** Audience of JWT access tokens when `jwtAccessTokens` is on. */
  jwtAudience: string;
  close(): Promise<void>;
}

const ACCOUNT = DEMO_ACCOUNT;
const JWT_AUDIENCE = 'urn:test:api';
const DEFAULT_REDIRECT = 'http://127.0.0.1/callback';
/** approveDeviceCode without an explicit issuer uses the last server started in this process. */
let lastIssuer: string | undefined;

export async function startAuthServer(options: AuthServerOptions = {}): Promise<AuthServer> {
  const returnRefreshOnRefresh = options.returnRefreshTokenOnRefresh ?? true;
  const rotate = (options.rotateRefreshToken ?? true) && returnRefreshOnRefresh;
  const sendExpiresIn = options.sendExpiresIn ?? true;

  const clients: AuthServerClients = {
    web: { clientId: 'web-client', clientSecret: `web-secret-${randomBytes(12).toString('hex')}`, redirectUris: [DEFAULT_REDIRECT] },
    webPost: { clientId: 'web-post-client', clientSecret: `post-secret-${randomBytes(12).toString('hex')}`, redirectUris: [DEFAULT_REDIRECT] },
    service: { clientId: 'service-client', clientSecret: `service-secret-${randomBytes(12).toString('hex')}` },
    device: { clientId: 'device-client' },
    public: { clientId: 'public-client', redirectUris: [DEFAULT_REDIRECT] },
  };

  const counters = { token: {} as Record<string, number>, revocation: 0, deviceAuthorization: 0 };
  let revocationHints: string[] = [];
  let failure: null | { status: number; body?: string } | 'reset' = null;
  /** holdNextTokenAnswer: the next token request's answer waits for `gate`. */
  let heldAnswer: { reached: () => void; gate: Promise<void> } | undefined;

  const server = await startProviderServer({
    accessTokenTtlSec: options.accessTokenTtlSec,
    rotateRefreshToken: rotate,
    issueRefreshToken: options.issueRefreshToken,
    requirePkce: options.requirePkce,
    jwtAudience: options.jwtAccessTokens ? JWT_AUDIENCE : undefined,
    middlewares: [countAndFault, ...(options.refreshReuseGraceSec ? [reuseGrace] : []), stripTokenResponseMembers],
    clients: [
      {
        client_id: clients.web.clientId,
        client_secret: clients.web.clientSecret,
        redirect_uris: clients.web.redirectUris,
        grant_types: ['authorization_code', 'refresh_token'],
        response_types: ['code'],
        token_endpoint_auth_method: 'client_secret_basic',
      },
      {
        client_id: clients.webPost.clientId,
        client_secret: clients.webPost.clientSecret,
        redirect_uris: clients.webPost.redirectUris,
        grant_types: ['authorization_code', 'refresh_token'],
        response_types: ['code'],
        token_endpoint_auth_method: 'client_secret_post',
      },
      {
        client_id: clients.service.clientId,
        client_secret: clients.service.clientSecret,
        redirect_uris: [],
        grant_types: ['client_credentials'],
        response_types: [],
        token_endpoint_auth_method: 'client_secret_basic',
        scope: 'api:read api:write',
      },
      {
        client_id: clients.device.clientId,
        redirect_uris: [],
        grant_types: ['urn:ietf:params:oauth:grant-type:device_code', 'refresh_token'],
        response_types: [],
        token_endpoint_auth_method: 'none',
      },
      {
        client_id: clients.public.clientId,
        redirect_uris: clients.public.redirectUris,
        grant_types: ['authorization_code', 'refresh_token'],
        response_types: ['code'],
        token_endpoint_auth_method: 'none',
      },
    ],
  });
  lastIssuer = server.issuer;

  async function countAndFault(ctx: KoaContext, next: () => Promise<void>): Promise<void> {
    const route = ctx.method === 'POST' ? ctx.path : '';
    if (route === '/device/auth') counters.deviceAuthorization += 1;
    if (route === '/token/revocation') {
      counters.revocation += 1;
      await next();
      const hint = ctx.oidc?.params?.token_type_hint;
      revocationHints.push(typeof hint === 'string' ? hint : '');
      return;
    }
    if (route !== '/token') return next();

    if (failure !== null) {
      // The provider never sees this request, so read the body ourselves to count its grant type.
      const form = await readForm(ctx.req);
      bump(form.get('grant_type') ?? 'unknown');
      if (failure === 'reset') {
        ctx.req.socket.destroy();
        return;
      }
      ctx.status = failure.status;
      ctx.type = 'application/json';
      ctx.body = failure.body ?? JSON.stringify({ error: 'temporarily_unavailable' });
      return;
    }
    const held = heldAnswer;
    heldAnswer = undefined;
    try {
      await next();
      if (held) {
        held.reached();
        await held.gate;
      }
    } finally {
      // A grace-period answer never reached the provider: the form the grace middleware parsed says the grant.
      const grantType = ctx.oidc?.body?.grant_type ?? (ctx.req as unknown as { body?: Record<string, string> }).body?.grant_type;
      bump(typeof grantType === 'string' ? grantType : 'unknown');
    }
  }

  function bump(grantType: string): void {
    counters.token[grantType] = (counters.token[grantType] ?? 0) + 1;
  }

  /** First answers to refresh_token grants by the refresh token presented, for the reuse grace period. */
  const refreshAnswers = new Map<string, { at: number; status: number; body: unknown }>();

  /**
   * The grace period (options.refreshReuseGraceSec): reads the form itself (the provider then takes the parsed
   * body from ctx.req.body), answers a refresh token used again within the period with its first answer, and
   * remembers every first answer.
   */
  async function reuseGrace(ctx: KoaContext, next: () => Promise<void>): Promise<void> {
    if (ctx.method !== 'POST' || ctx.path !== '/token') return next();
    const form = await readForm(ctx.req);
    (ctx.req as unknown as { body: Record<string, string> }).body = Object.fromEntries(form);
    const presented = form.get('grant_type') === 'refresh_token' ? form.get('refresh_token') : null;
    const first = presented ? refreshAnswers.get(presented) : undefined;
    if (first && Date.now() - first.at <= (options.refreshReuseGraceSec ?? 0) * 1000) {
      ctx.status = first.status;
      ctx.type = 'application/json';
      ctx.body = structuredClone(first.body);
      return;
    }
    await next();
    if (presented && ctx.status === 200 && ctx.body && typeof ctx.body === 'object') {
      refreshAnswers.set(presented, { at: Date.now(), status: 200, body: JSON.parse(JSON.stringify(ctx.body)) as unknown });
    }
  }

  /** Post-processes token responses for the server variants that omit refresh_token or expires_in. */
  async function stripTokenResponseMembers(ctx: KoaContext, next: () => Promise<void>): Promise<void> {
    await next();
    if (ctx.method !== 'POST' || ctx.path !== '/token' || ctx.status !== 200) return;
    if (typeof ctx.body !== 'object' || ctx.body === null) return;
    const body = ctx.body as Record<string, unknown>;
    if (!returnRefreshOnRefresh && ctx.oidc?.body?.grant_type === 'refresh_token') delete body.refresh_token;
    if (!sendExpiresIn) delete body.expires_in;
  }

  // Static clients are instantiated lazily; materialise them now so addRedirectUri can stay synchronous.
  const redirectClientIds = [clients.web.clientId, clients.webPost.clientId, clients.public.clientId];
  const redirectClients = await Promise.all(redirectClientIds.map((id) => server.provider.Client.find(id)));

  return {
    issuer: server.issuer,
    port: server.port,
    provider: server.provider,
    clients,
    account: { ...ACCOUNT },
    jwtAudience: JWT_AUDIENCE,
    addRedirectUri(uri: string): void {
      for (const client of redirectClients) {
        if (client && !client.redirectUris.includes(uri)) client.redirectUris.push(uri);
      }
      for (const c of [clients.web, clients.webPost, clients.public]) {
        if (!c.redirectUris.includes(uri)) c.redirectUris.push(uri);
      }
    },
    counts: () => ({ token: { ...counters.token }, revocation: counters.revocation, deviceAuthorization: counters.deviceAuthorization }),
    resetCounts(): void {
      counters.token = {};
      counters.revocation = 0;
      counters.deviceAuthorization = 0;
      revocationHints = [];
    },
    revocationLog: () => [...revocationHints],
    validateAccessToken: (token) => server.validateAccessToken(token),
    setTokenEndpointFailure(mode): void {
      failure = mode;
    },
    holdNextTokenAnswer() {
      let reached!: () => void;
      const reachedPromise = new Promise<void>((r) => (reached = r));
      let release!: () => void;
      const gate = new Promise<void>((r) => (release = r));
      heldAnswer = { reached, gate };
      return { reached: reachedPromise, release };
    },
    close: () => server.close(),
  };
}

// ---------------------------------------------------------------------------------------------------------
// Browser-less drivers for tests
// ---------------------------------------------------------------------------------------------------------

/** A minimal cookie jar: one host, names only (paths ignored; the provider's cookies do not collide). */
class CookieJar {
  private readonly cookies = new Map<string, string>();

  store(response: Response): void {
    for (const line of response.headers.getSetCookie()) {
      const [pair, ...attributes] = line.split(';');
      const eq = pair.indexOf('=');
      if (eq < 1) continue;
      const name = pair.slice(0, eq).trim();
      const value = pair.slice(eq + 1).trim();
      const expired = attributes.some((a) => {
        const [k, v = ''] = a.trim().split('=');
        if (k.toLowerCase() === 'max-age') return Number(v) <= 0;
        if (k.toLowerCase() === 'expires') return Date.parse(v) <= Date.now();
        return false;
      });
      if (expired || value === '') this.cookies.delete(name);
      else this.cookies.set(name, value);
    }
  }

  header(): string {
    return [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
  }
}

interface Browser {
  jar: CookieJar;
  request(url: string, init?: { method?: string; form?: Record<string, string> }): Promise<Response>;
}

function newBrowser(): Browser {
  const jar = new CookieJar();
  return {
    jar,
    async request(url, init = {}) {
      const headers: Record<string, string> = { cookie: jar.header(), accept: 'text/html' };
      let body: string | undefined;
      if (init.form) {
        headers['content-type'] = 'application/x-www-form-urlencoded';
        body = new URLSearchParams(init.form).toString();
      }
      const response = await fetch(url, { method: init.method ?? (body ? 'POST' : 'GET'), headers, body, redirect: 'manual' });
      jar.store(response);
      return response;
    },
  };
}

interface ParsedForm { id: string; action: string; fields: Record<string, string> }

/** Extracts forms with their hidden inputs; good enough for the provider's and our own generated pages. */
function parseForms(html: string, baseUrl: string): ParsedForm[] {
  const forms: ParsedForm[] = [];
  for (const m of html.matchAll(/<form\b([^>]*)>([\s\S]*?)<\/form>/gi)) {
    const attrs = m[1];
    const id = /\bid="([^"]*)"/i.exec(attrs)?.[1] ?? '';
    const action = new URL(decodeEntities(/\baction="([^"]*)"/i.exec(attrs)?.[1] ?? ''), baseUrl).href;
    const fields: Record<string, string> = {};
    for (const input of m[2].matchAll(/<input\b([^>]*)>/gi)) {
      const name = /\bname="([^"]*)"/i.exec(input[1])?.[1];
      const value = /\bvalue="([^"]*)"/i.exec(input[1])?.[1];
      if (name && value !== undefined) fields[name] = decodeEntities(value);
    }
    forms.push({ id, action, fields });
  }
  return forms;
}

function decodeEntities(text: string): string {
  return text
    .replace(/&#(\d+);/g, (_, d: string) => String.fromCharCode(Number(d)))
    .replace(/&quot;/g, '"').replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&');
}

export interface LoginOptions { username?: string; password?: string; consent?: boolean }

/**
 * Drives the provider's side of an authorization request: follows redirects within the provider's origin,
 * fills the login and consent pages, and returns the redirect aimed at the client (with code, state and iss,
 * or error) without requesting it. Throws if the login page rejects the credentials.
 */
export async function loginThroughProvider(authorizeUrl: string, opts: LoginOptions = {}): Promise<URL> {
  const browser = newBrowser();
  const origin = new URL(authorizeUrl).origin;
  return drive(browser, origin, authorizeUrl, opts);
}

async function drive(browser: Browser, origin: string, startUrl: string, opts: LoginOptions, firstForm?: Record<string, string>): Promise<URL> {
  let response = await browser.request(startUrl, firstForm ? { form: firstForm } : {});
  let url = startUrl;
  let submittedLogin = false;
  for (let step = 0; step < 30; step += 1) {
    if (response.status >= 300 && response.status < 400) {
      const location = response.headers.get('location');
      if (!location) throw new Error(`redirect without Location from ${url}`);
      const next = new URL(location, url);
      if (next.origin !== origin) return next;
      url = next.href;
      response = await browser.request(url);
      continue;
    }
    const html = await response.text();
    const forms = parseForms(html, url);
    const login = forms.find((f) => f.id === 'login-form');
    const consent = forms.find((f) => f.id === 'consent-form');
    const deviceConfirm = forms.find((f) => f.id === 'op.deviceConfirmForm');
    // form_post style auto-submitting forms (used by oidc-provider for resume steps)
    const autoSubmit = forms.find((f) => f.id === '' && /onload|submit\(\)/i.test(html));
    if (login) {
      if (submittedLogin && /role="alert"/.test(html)) throw new Error('login rejected: invalid username or password');
      submittedLogin = true;
      response = await browser.request(login.action, {
        form: { username: opts.username ?? ACCOUNT.id, password: opts.password ?? ACCOUNT.password },
      });
      url = login.action;
      continue;
    }
    if (consent) {
      response = await browser.request(consent.action, { form: { decision: opts.consent === false ? 'deny' : 'allow' } });
      url = consent.action;
      continue;
    }
    if (deviceConfirm) {
      const form = opts.consent === false ? { ...deviceConfirm.fields, abort: 'yes' } : deviceConfirm.fields;
      if (opts.consent === false) delete form.confirm;
      response = await browser.request(deviceConfirm.action, { form });
      url = deviceConfirm.action;
      continue;
    }
    if (autoSubmit) {
      response = await browser.request(autoSubmit.action, { form: autoSubmit.fields });
      url = autoSubmit.action;
      continue;
    }
    // A terminal page on the provider (device success / error page).
    if (response.status >= 400) throw new Error(`provider answered ${response.status} at ${new URL(url).pathname}: ${html.replace(/<[^>]+>/g, ' ').replace(/\s+/g, ' ').slice(0, 300)}`);
    return new URL(url);
  }
  throw new Error('too many steps while driving the provider pages');
}

/**
 * Completes the device verification pages (RFC 8628 section 3.3) for `userCode` as the demo account:
 * enter the code, confirm, sign in, consent. With `consent: false` the user aborts on the confirm page.
 */
export async function approveDeviceCode(
  userCode: string,
  opts: LoginOptions & { /** The auth server's issuer; defaults to the last one started. */ issuer?: string } = {},
): Promise<void> {
  const browser = newBrowser();
  const issuer = opts.issuer ?? lastIssuer;
  if (!issuer) throw new Error('approveDeviceCode: no auth server started');
  const start = await browser.request(`${issuer}/device`);
  const input = parseForms(await start.text(), `${issuer}/device`).find((f) => f.id === 'op.deviceInputForm');
  if (!input) throw new Error('device input form not found');
  await drive(browser, new URL(issuer).origin, input.action, opts, { ...input.fields, user_code: userCode });
}
