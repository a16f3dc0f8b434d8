/**
 * A second, independent authorization server for the e2e suites: Glewlwyd 2.7 from Debian (`apt-get install
 * glewlwyd`), a standalone SSO server written in C, run as a private process on 127.0.0.1 with its OpenID
 * Connect plugin. Nothing about it is written by this project; the tests only configure it.
 *
 * What `startGlewlwyd` sets up, in a temp directory it removes on close:
 * - its own config file (port, 127.0.0.1, sqlite3 backend, console log) and an sqlite3 database initialised
 *   from the package's SQL init script (/usr/share/dbconfig-common/data/glewlwyd/install/sqlite3, which also
 *   creates the `admin` user with the password `password`, the scopes and the database user/client backends);
 * - its web UI (login, grant and device pages) copied with `cp -rL` from /usr/share/glewlwyd/webapp, whose
 *   files are symlinks, and served by Glewlwyd itself (its packaged config.json is a symlink to a directory that
 *   holds the real config.json: the copy puts the file in its place);
 * - through the admin REST API (logged in as admin with a session cookie): an OIDC plugin instance `oidc`
 *   signing with an RSA key generated here (RS256), short access tokens, PKCE (S256) required, one-time-use
 *   (rotating) refresh tokens, introspection and revocation, device authorization (interval 1 s), the `iss`
 *   authorization response parameter; a scope `api:read`; a user with a password; three confidential clients
 *   (client_secret_basic or _post): `web-client` (authorization code + refresh_token), `service-client`
 *   (client_credentials, scope api:read) and `device-client` (device code + refresh_token).
 *
 * Glewlwyd listens on a private port; the issuer, every endpoint and every page the product or a browser sees
 * are on a small pass-through front (`url`) that counts token-endpoint calls by grant type, revocation and
 * device calls, and hands each token, code, verifier and device code that passes to the leak scan. It never
 * changes a request or an answer: what the product gets is Glewlwyd's own answer.
 *
 * The login without a browser (`login`), exactly what Glewlwyd's login page does:
 * 1. GET the authorize URL: Glewlwyd answers 302 to its login page, `login.html?...&callback_url=<the
 *    authorize URL>`;
 * 2. POST /api/auth/ {username, password}: the session cookie (the login form's "password" step);
 * 3. PUT /api/auth/grant/<client_id>/ {scope: "<scopes separated by spaces>"}: the grant screen's consent (its
 *    API documentation says commas; its code splits on spaces);
 * 4. GET callback_url + `&g_continue` (the login page's "Continue" button): 302 to the client's redirect URI
 *    with code, state and iss.
 * The device verification is the same with `/api/oidc/device?code=<user code>` as the callback URL, ending in a
 * 302 to `login.html?...prompt=deviceComplete`.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { addSecret } from './leaks';

interface SystemPackages {
  systemPackage(name: string): { name: string; binary: string; env: string };
  binaryOf(pkg: { name: string; binary: string; env: string }): string;
  isExecutable(file: string): boolean;
}
// eslint-disable-next-line @typescript-eslint/no-require-imports -- plain CommonJS, shared with scripts/provision.js
const packages = require('../../scripts/system-packages') as SystemPackages;

/** The glewlwyd program (GLEWLWYD overrides /usr/bin/glewlwyd). */
export const GLEWLWYD_BINARY = packages.binaryOf(packages.systemPackage('glewlwyd'));
export const GLEWLWYD_SQL_INIT = '/usr/share/dbconfig-common/data/glewlwyd/install/sqlite3';
export const GLEWLWYD_WEBAPP = '/usr/share/glewlwyd/webapp';
const MODULES = '/usr/lib/glewlwyd';

export function glewlwydInstalled(): boolean {
  return packages.isExecutable(GLEWLWYD_BINARY) && fs.existsSync(GLEWLWYD_SQL_INIT);
}

export interface GlewlwydOptions {
  /** Lifetime of access tokens, all grants. Default 3600. */
  accessTokenTtlSec?: number;
  /** One-time-use refresh tokens (a new one on every refresh; a reused one breaks the chain). Default true. */
  rotateRefreshToken?: boolean;
}

export interface GlewlwydClient {
  clientId: string;
  clientSecret: string;
}

export interface Glewlwyd {
  /** The front's root, e.g. http://127.0.0.1:PORT (no trailing slash). */
  url: string;
  /** The OIDC plugin's issuer: `${url}/api/oidc`; discovery at `${issuer}/.well-known/openid-configuration`. */
  issuer: string;
  endpoints: { authorization: string; token: string; revocation: string; introspection: string; deviceAuthorization: string };
  clients: { web: GlewlwydClient; service: GlewlwydClient; device: GlewlwydClient };
  account: { username: string; password: string };
  /** Registers one more redirect URI for the web client (admin API). */
  addRedirectUri(uri: string): Promise<void>;
  /** Logs in as the account and consents, from an authorize URL; returns the redirect to the client. */
  login(authorizeUrl: string): Promise<URL>;
  /** Approves a device login's user code as the account. */
  approveDevice(userCode: string): Promise<void>;
  /**
   * Through the front: token endpoint calls by grant_type and by how the client authenticated
   * (client_secret_basic, client_secret_post, none), revocation and device authorization calls.
   */
  counts(): { token: Record<string, number>; tokenAuth: Record<string, number>; revocation: number; deviceAuthorization: number };
  resetCounts(): void;
  /** Every refresh token Glewlwyd issued through the front, oldest first. */
  refreshTokens(): string[];
  /** Revokes a token at Glewlwyd (RFC 7009) as `client` (not counted). */
  revoke(token: string, client: GlewlwydClient, hint?: 'refresh_token' | 'access_token'): Promise<number>;
  /** Glewlwyd's introspection of an access token (RFC 7662), asked as the client the token names. */
  validateAccessToken(token: string): Promise<{ active: boolean; sub?: string; scope?: string; clientId?: string }>;
  /** Glewlwyd's own log lines (console mode). */
  logs: string[];
  close(): Promise<void>;
}

const ADMIN = { username: 'admin', password: 'password' }; // created by the package's SQL init script

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

class Cookies {
  private readonly jar = new Map<string, string>();
  store(res: Response): void {
    for (const line of res.headers.getSetCookie()) {
      const [pair] = line.split(';');
      const eq = pair.indexOf('=');
      if (eq > 0) this.jar.set(pair.slice(0, eq).trim(), pair.slice(eq + 1).trim());
    }
  }
  header(): string {
    return [...this.jar].map(([k, v]) => `${k}=${v}`).join('; ');
  }
}

function configFile(o: { port: number; externalUrl: string; dir: string }): string {
  const mime = [
    ['.html', 'text/html'],
    ['.css', 'text/css'],
    ['.js', 'application/javascript'],
    ['.json', 'application/json'],
    ['.png', 'image/png'],
    ['.ico', 'image/x-icon'],
    ['.woff', 'font/woff'],
    ['.woff2', 'font/woff2'],
    ['.ttf', 'font/ttf'],
    ['.svg', 'image/svg+xml'],
  ]
    .map(([extension, type]) => `  { extension = "${extension}" mime_type = "${type}" }`)
    .join(',\n');
  // Keys as in the package's /etc/glewlwyd/glewlwyd.conf. `use_secure_connection` is left out: its mere
  // presence makes Glewlwyd ask for a certificate.
  return `port=${o.port}
bind_address="127.0.0.1"
external_url="${o.externalUrl}"
login_url="login.html"
api_prefix="api"
static_files_path="${o.dir}/webapp/"
allow_origin="*"
log_mode="console"
log_level="INFO"
cookie_secure=0
cookie_same_site="empty"
session_expiration=3600
session_key="GLEWLWYD2_SESSION_ID"
admin_session_authentication="cookie"
profile_session_authentication="cookie"
allow_multiple_user_per_session=true
login_api_enabled=true
admin_scope="g_admin"
profile_scope="g_profile"
user_module_path="${MODULES}/user"
client_module_path="${MODULES}/client"
user_auth_scheme_module_path="${MODULES}/scheme"
plugin_module_path="${MODULES}/plugin"
hash_algorithm="SHA512"
database = { type = "sqlite3" path = "${o.dir}/glewlwyd.sqlite3" };
static_files_mime_types = (
${mime}
);
`;
}

const urlEncoded = (body: string): URLSearchParams => new URLSearchParams(body);

export async function startGlewlwyd(options: GlewlwydOptions = {}): Promise<Glewlwyd> {
  if (!glewlwydInstalled()) throw new Error(`glewlwyd is not installed (${GLEWLWYD_BINARY}, ${GLEWLWYD_SQL_INIT})`);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'glewlwyd-'));
  const clients = {
    web: { clientId: 'web-client', clientSecret: `gw-web-${randomBytes(12).toString('hex')}` },
    service: { clientId: 'service-client', clientSecret: `gw-service-${randomBytes(12).toString('hex')}` },
    device: { clientId: 'device-client', clientSecret: `gw-device-${randomBytes(12).toString('hex')}` },
  };
  const account = { username: 'alice', password: `gw-alice-${randomBytes(9).toString('hex')}` };
  for (const c of Object.values(clients)) addSecret(c.clientSecret);
  addSecret(account.password);

  // The database, from the package's own init script.
  const sql = spawnSync('sqlite3', [path.join(dir, 'glewlwyd.sqlite3')], { input: fs.readFileSync(GLEWLWYD_SQL_INIT), encoding: 'utf8' });
  if (sql.status !== 0) throw new Error(`sqlite3 could not initialise the database: ${sql.stderr}`);
  // The web UI: its files are symlinks; config.json links to a directory holding the real config.json.
  const cp = spawnSync('cp', ['-rL', GLEWLWYD_WEBAPP, path.join(dir, 'webapp')], { encoding: 'utf8' });
  if (cp.status !== 0) throw new Error(`cp -rL ${GLEWLWYD_WEBAPP}: ${cp.stderr}`);
  const webConfig = path.join(dir, 'webapp', 'config.json');
  if (fs.statSync(webConfig).isDirectory()) {
    const real = fs.readFileSync(path.join(webConfig, 'config.json'));
    fs.rmSync(webConfig, { recursive: true });
    fs.writeFileSync(webConfig, real);
  }

  // The front first: its address is Glewlwyd's external URL (issuer, login page, verification URI).
  const counters = { token: {} as Record<string, number>, tokenAuth: {} as Record<string, number>, revocation: 0, deviceAuthorization: 0 };
  const issuedRefreshTokens: string[] = [];
  const backendPort = await freePort();
  const front = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const pathname = new URL(req.url ?? '/', 'http://x').pathname.replace(/\/+$/, '');
      const isToken = req.method === 'POST' && pathname === '/api/oidc/token';
      if (isToken) {
        const params = urlEncoded(body.toString('utf8'));
        const grant = params.get('grant_type') ?? '';
        counters.token[grant] = (counters.token[grant] ?? 0) + 1;
        const how = /^basic /i.test(req.headers.authorization ?? '') ? 'client_secret_basic' : params.has('client_secret') ? 'client_secret_post' : 'none';
        counters.tokenAuth[how] = (counters.tokenAuth[how] ?? 0) + 1;
        for (const k of ['code', 'code_verifier', 'refresh_token', 'device_code']) addSecret(params.get(k) ?? undefined);
      }
      if (req.method === 'POST' && pathname === '/api/oidc/revoke') counters.revocation += 1;
      if (req.method === 'POST' && pathname === '/api/oidc/device_authorization') counters.deviceAuthorization += 1;
      const upstream = http.request(
        { host: '127.0.0.1', port: backendPort, method: req.method, path: req.url, headers: { ...req.headers, host: `127.0.0.1:${backendPort}` } },
        (up) => {
          const out: Buffer[] = [];
          up.on('data', (c: Buffer) => out.push(c));
          up.on('end', () => {
            const answer = Buffer.concat(out);
            const location = up.headers.location;
            if (location) addSecret(new URL(location, 'http://x').searchParams.get('code') ?? undefined);
            if (String(up.headers['content-type'] ?? '').includes('json') && (up.statusCode ?? 0) < 300) {
              try {
                const json = JSON.parse(answer.toString('utf8')) as Record<string, unknown>;
                for (const k of ['access_token', 'refresh_token', 'id_token', 'device_code']) {
                  if (typeof json[k] === 'string') addSecret(json[k]);
                }
                if (isToken && typeof json.refresh_token === 'string') issuedRefreshTokens.push(json.refresh_token);
              } catch {
                // not JSON after all: nothing to record
              }
            }
            res.writeHead(up.statusCode ?? 502, up.headers);
            res.end(answer);
          });
        },
      );
      upstream.on('error', () => {
        res.writeHead(502);
        res.end();
      });
      upstream.end(body);
    });
  });
  await new Promise<void>((resolve) => front.listen(0, '127.0.0.1', resolve));
  const frontPort = (front.address() as net.AddressInfo).port;
  const url = `http://127.0.0.1:${frontPort}`;
  const backend = `http://127.0.0.1:${backendPort}`;
  const issuer = `${url}/api/oidc`;

  const confPath = path.join(dir, 'glewlwyd.conf');
  fs.writeFileSync(confPath, configFile({ port: backendPort, externalUrl: url, dir }));
  const logs: string[] = [];
  const child: ChildProcess = spawn(GLEWLWYD_BINARY, [`--config-file=${confPath}`], { stdio: ['ignore', 'pipe', 'pipe'] });
  const onData = (d: Buffer): void => {
    logs.push(...d.toString('utf8').split('\n').filter(Boolean));
  };
  child.stdout?.on('data', onData);
  child.stderr?.on('data', onData);
  let exited = false;
  const exitedPromise = new Promise<void>((resolve) => child.once('exit', () => ((exited = true), resolve())));

  const closeAll = async (): Promise<void> => {
    if (!exited) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exitedPromise;
      clearTimeout(timer);
    }
    await new Promise<void>((resolve) => {
      front.close(() => resolve());
      front.closeAllConnections();
    });
    fs.rmSync(dir, { recursive: true, force: true });
  };

  try {
    const deadline = Date.now() + 10_000;
    for (;;) {
      if (exited) throw new Error(`glewlwyd exited before it was ready:\n${logs.slice(-20).join('\n')}`);
      const ok = await fetch(`${backend}/config`).then((r) => r.ok, () => false);
      if (ok) break;
      if (Date.now() > deadline) throw new Error(`glewlwyd did not answer within 10 s:\n${logs.slice(-20).join('\n')}`);
      await new Promise((r) => setTimeout(r, 50));
    }

    const admin = new Cookies();
    const adminCall = async (method: string, pathname: string, body?: unknown): Promise<void> => {
      const res = await fetch(`${backend}/api${pathname}`, {
        method,
        headers: { 'content-type': 'application/json', cookie: admin.header() },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      admin.store(res);
      if (!res.ok) throw new Error(`glewlwyd admin ${method} ${pathname}: ${res.status} ${await res.text()}`);
    };
    await adminCall('POST', '/auth/', ADMIN);

    const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    await adminCall('POST', '/mod/plugin/', {
      module: 'oidc',
      name: 'oidc',
      display_name: 'OpenID Connect',
      enabled: true,
      parameters: {
        iss: issuer,
        'jwt-type': 'rsa',
        'jwt-key-size': '256',
        key: privateKey.export({ type: 'pkcs8', format: 'pem' }),
        cert: publicKey.export({ type: 'spki', format: 'pem' }),
        'jwks-show': true,
        'subject-type': 'public',
        'access-token-duration': options.accessTokenTtlSec ?? 3600,
        'refresh-token-duration': 1_209_600,
        'code-duration': 600,
        'refresh-token-rolling': true,
        'refresh-token-one-use': options.rotateRefreshToken === false ? 'never' : 'always',
        'allow-non-oidc': true,
        'auth-type-code-enabled': true,
        'auth-type-code-revoke-replayed': true,
        'auth-type-token-enabled': false,
        'auth-type-password-enabled': false,
        'auth-type-client-enabled': true,
        'auth-type-refresh-enabled': true,
        'auth-type-device-enabled': true,
        'device-authorization-expiration': 600,
        'device-authorization-interval': 1,
        'pkce-allowed': true,
        'pkce-method-plain-allowed': false,
        'pkce-required': true,
        'introspection-revocation-allowed': true,
        'introspection-revocation-allow-target-client': true,
        'oauth-as-iss-id': true,
      },
    });
    await adminCall('POST', '/scope/', { name: 'api:read', display_name: 'API read', description: 'Read the test API', password_required: false });
    await adminCall('POST', '/user/', {
      username: account.username,
      password: account.password,
      name: 'Alice Example',
      email: 'alice@example.test',
      enabled: true,
      scope: ['openid', 'g_profile', 'api:read'],
    });
    const authMethods = ['client_secret_basic', 'client_secret_post'];
    const webClient = {
      client_id: clients.web.clientId,
      name: 'Node-RED web client',
      client_secret: clients.web.clientSecret,
      confidential: true,
      enabled: true,
      redirect_uri: ['http://127.0.0.1/callback'],
      authorization_type: ['code', 'refresh_token'],
      token_endpoint_auth_method: authMethods,
      scope: [] as string[],
    };
    await adminCall('POST', '/client/', webClient);
    await adminCall('POST', '/client/', {
      client_id: clients.service.clientId,
      name: 'Node-RED service client',
      client_secret: clients.service.clientSecret,
      confidential: true,
      enabled: true,
      authorization_type: ['client_credentials'],
      token_endpoint_auth_method: authMethods,
      scope: ['api:read'],
    });
    await adminCall('POST', '/client/', {
      client_id: clients.device.clientId,
      name: 'Node-RED device client',
      client_secret: clients.device.clientSecret,
      confidential: true,
      enabled: true,
      authorization_type: ['device_authorization', 'refresh_token'],
      token_endpoint_auth_method: authMethods,
      scope: [] as string[],
    });

    /** The login page's steps for one session: password, consent, "Continue" on `callbackUrl`. */
    const authenticateAndContinue = async (clientId: string, scope: string, callbackUrl: string): Promise<Response> => {
      const user = new Cookies();
      const auth = await fetch(`${url}/api/auth/`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ username: account.username, password: account.password }),
      });
      if (!auth.ok) throw new Error(`glewlwyd password login: ${auth.status}`);
      user.store(auth);
      const grant = await fetch(`${url}/api/auth/grant/${encodeURIComponent(clientId)}/`, {
        method: 'PUT',
        headers: { 'content-type': 'application/json', cookie: user.header() },
        body: JSON.stringify({ scope }),
      });
      if (!grant.ok) throw new Error(`glewlwyd grant of "${scope}" to ${clientId}: ${grant.status}`);
      const next = `${callbackUrl}${callbackUrl.includes('?') ? '&' : '?'}g_continue`;
      return fetch(next, { headers: { cookie: user.header() }, redirect: 'manual' });
    };

    /** The login page URL Glewlwyd redirects an unauthenticated browser to, with its callback_url. */
    const loginPage = async (start: string): Promise<{ clientId: string; scope: string; callbackUrl: string }> => {
      const res = await fetch(start, { redirect: 'manual' });
      const location = res.headers.get('location');
      if (res.status !== 302 || !location) throw new Error(`glewlwyd ${start}: expected a redirect to its login page, got ${res.status}`);
      const page = new URL(location, url);
      const callbackUrl = page.searchParams.get('callback_url');
      if (!page.pathname.endsWith('/login.html') || !callbackUrl) throw new Error(`glewlwyd redirected to ${page.origin}${page.pathname}, not its login page`);
      return { clientId: page.searchParams.get('client_id') ?? '', scope: page.searchParams.get('scope') ?? '', callbackUrl };
    };

    const glewlwyd: Glewlwyd = {
      url,
      issuer,
      endpoints: {
        authorization: `${issuer}/auth`,
        token: `${issuer}/token`,
        revocation: `${issuer}/revoke`,
        introspection: `${issuer}/introspect`,
        deviceAuthorization: `${issuer}/device_authorization`,
      },
      clients,
      account,
      logs,
      async addRedirectUri(uri) {
        if (webClient.redirect_uri.includes(uri)) return;
        webClient.redirect_uri.push(uri);
        await adminCall('PUT', `/client/${clients.web.clientId}`, webClient);
      },
      async login(authorizeUrl) {
        const page = await loginPage(authorizeUrl);
        const res = await authenticateAndContinue(page.clientId, page.scope, page.callbackUrl);
        const location = res.headers.get('location');
        if (res.status !== 302 || !location) throw new Error(`glewlwyd authorize after the login: ${res.status} ${await res.text()}`);
        return new URL(location);
      },
      async approveDevice(userCode) {
        const page = await loginPage(`${issuer}/device?code=${encodeURIComponent(userCode)}`);
        const res = await authenticateAndContinue(page.clientId, page.scope, page.callbackUrl);
        const location = res.headers.get('location') ?? '';
        if (res.status !== 302 || !location.includes('prompt=deviceComplete')) {
          throw new Error(`glewlwyd device verification: ${res.status} ${location}`);
        }
      },
      counts: () => ({
        token: { ...counters.token },
        tokenAuth: { ...counters.tokenAuth },
        revocation: counters.revocation,
        deviceAuthorization: counters.deviceAuthorization,
      }),
      resetCounts() {
        counters.token = {};
        counters.tokenAuth = {};
        counters.revocation = 0;
        counters.deviceAuthorization = 0;
      },
      refreshTokens: () => [...issuedRefreshTokens],
      async revoke(token, client, hint = 'refresh_token') {
        const res = await fetch(`${backend}/api/oidc/revoke`, {
          method: 'POST',
          headers: {
            'content-type': 'application/x-www-form-urlencoded',
            authorization: `Basic ${Buffer.from(`${client.clientId}:${client.clientSecret}`).toString('base64')}`,
          },
          body: new URLSearchParams({ token, token_type_hint: hint }).toString(),
        });
        await res.arrayBuffer();
        return res.status;
      },
      async validateAccessToken(token) {
        // Glewlwyd lets a client introspect its own tokens: ask as the client the (JWT) token names.
        let clientId: string | undefined;
        try {
          clientId = (JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString('utf8')) as { client_id?: string }).client_id;
        } catch {
          return { active: false };
        }
        const client = Object.values(clients).find((c) => c.clientId === clientId);
        if (!client) return { active: false };
        const res = await fetch(`${backend}/api/oidc/introspect`, {
          method: 'POST',
          headers: {
            'content-type': 'application/x-www-form-urlencoded',
            authorization: `Basic ${Buffer.from(`${client.clientId}:${client.clientSecret}`).toString('base64')}`,
          },
          body: new URLSearchParams({ token, token_type_hint: 'access_token' }).toString(),
        });
        if (!res.ok) return { active: false };
        const answer = (await res.json()) as { active?: boolean; sub?: string; scope?: string; client_id?: string };
        return { active: answer.active === true, sub: answer.sub, scope: answer.scope, clientId: answer.client_id };
      },
      close: closeAll,
    };
    return glewlwyd;
  } catch (err) {
    await closeAll();
    throw err;
  }
}
