/**
 * Every deviation class of issue 15, end to end against a provider that shows it (test/support/deviant-provider)
 * and one real Node-RED: log in through the editor's login route, a request through an http-oauth2-request
 * node, a refresh after the access token expired, a restart without a deploy, a request again. The classes share
 * one runtime and one wait per phase (tokens live 2 s), so each phase has one `it` per class.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { startDeviantProvider, type DeviantProvider, type DeviantProviderOptions, type TokenRecord } from '../support/deviant-provider';
import { CookieJar, openCallback, startLogin } from '../support/editor-login';
import { connectionStatus, deployAndWait, sleep, startWatchedRuntime } from '../support/e2e';
import { catchToResponse, dialogConfig, tab } from '../support/flows';
import { addSecret, watchText } from '../support/leaks';
import { tempUserDir, type TestRuntime } from '../support/runtime';

const TTL_SEC = 2;

interface Case {
  id: string;
  title: string;
  provider: DeviantProviderOptions;
  /** Connection fields of the contract (and overrides of the defaults below). */
  connection?: (p: DeviantProvider) => Record<string, unknown>;
  /** The request node's URL. Default `/api/me` (relative to the API base URL). */
  url?: string;
  /** The connection values msg.oauth2 must carry. */
  values?: (p: DeviantProvider) => Record<string, string>;
  /** No refresh ever: the token never expires. */
  neverExpires?: boolean;
  /** The tokens say nothing of their end: the API's 401 is what starts the refresh. */
  reactive?: boolean;
  afterLogin?: (p: DeviantProvider, status: Record<string, unknown>) => void;
  /** After a refresh (phase 2 and after the restart): the token requests of that phase. */
  afterRefresh?: (p: DeviantProvider, refreshes: TokenRecord[], phase: 'expired' | 'restarted') => void;
}

interface Running extends Case {
  p: DeviantProvider;
  node: Record<string, unknown>;
  /** Why the login failed, when it did (later phases say so instead of failing obscurely). */
  loginFailure?: string;
}

/** What a callback page says went wrong (its detail paragraph), or the start of the text. */
function pageDetail(html: string): string {
  const detail = /<p id="detail">([^<]*)<\/p>/.exec(html)?.[1];
  return detail ?? html.slice(0, 300);
}

const refreshesOf = (p: DeviantProvider): TokenRecord[] => p.tokenRequests.filter((r) => r.grantType === 'refresh_token');
const trimSlash = (url: string): string => url.replace(/\/+$/, '');

/** The org id the Salesforce-like provider puts in its token answers (changed after the login). */
let salesforceOrg = '00D-org-1';

const CASES: Case[] = [
  {
    id: 'standard',
    title: 'standard RFC 6749 provider (the control)',
    provider: {},
    afterLogin(p, status) {
      const [authorize] = p.authorizeRequests;
      assert.equal(authorize?.params.code_challenge_method, 'S256');
      assert.equal(authorize?.params.scope, 'read write');
      const [exchange] = p.tokenRequests;
      assert.equal(exchange?.clientAuth, 'basic');
      assert.equal(exchange?.codeVerifier, 'matched', 'PKCE S256 verified by the provider');
      assert.equal(status.expirySource, 'expires_in');
      assert.equal(status.hasRefreshToken, true);
    },
  },
  {
    id: 'accept-json',
    title: 'token endpoint answers JSON only when asked with Accept: application/json',
    provider: { acceptJsonRequired: true },
    afterLogin(p) {
      for (const r of p.tokenRequests) {
        assert.match(r.accept ?? '', /application\/json/, 'the engine asks for JSON');
        assert.equal(r.answeredAs, 'json');
      }
    },
    afterRefresh(_p, refreshes) {
      for (const r of refreshes) assert.match(r.accept ?? '', /application\/json/);
    },
  },
  {
    id: 'form-encoded',
    title: 'token endpoint always answers form-encoded',
    provider: { formEncoded: true },
    afterLogin(p, status) {
      assert.equal(p.tokenRequests[0]?.answeredAs, 'form');
      assert.equal(status.expirySource, 'expires_in', 'expires_in read from the form answer');
      assert.equal(status.hasRefreshToken, true);
    },
    afterRefresh(_p, refreshes) {
      for (const r of refreshes) assert.equal(r.answeredAs, 'form');
    },
  },
  {
    id: 'error-field',
    title: 'HTTP 200 answers carrying an error field (GitHub)',
    provider: { errorIn200: 'error-field' },
  },
  {
    id: 'ok-false',
    title: 'HTTP 200 answers with ok:false for refusals and ok:true for tokens (Slack)',
    provider: { errorIn200: 'ok-false' },
  },
  {
    id: 'token-path',
    title: 'user tokens under authed_user, a bot token at the top level (Slack)',
    provider: { tokenPath: 'authed_user', errorIn200: 'ok-false', topLevelToken: true },
    connection: () => ({ tokenPath: 'authed_user' }),
    afterLogin(_p, status) {
      assert.equal(status.hasRefreshToken, true, 'the refresh token under authed_user is kept');
      assert.equal(status.expirySource, 'expires_in', 'expires_in under authed_user is read');
    },
  },
  {
    id: 'expires-at',
    title: 'an absolute expires_at instead of expires_in',
    provider: { expiry: 'expires-at' },
    afterLogin(p, status) {
      const stated = p.tokenRequests[0]?.statedExpiresAt as number;
      const expiresAt = Number(status.expiresAt);
      assert.ok(Math.abs(expiresAt - stated * 1000) <= 1000, `the connection expires at ${new Date(expiresAt).toISOString()}, the provider said ${new Date(stated * 1000).toISOString()}`);
    },
    afterRefresh(p, refreshes) {
      // The end was known: renewed before use, so the API never saw the expired token.
      assert.deepEqual(p.apiRequests.filter((r) => r.status === 401).map((r) => r.path), [], 'no request went out with an expired token');
      assert.equal(refreshes.length, 1);
    },
  },
  {
    id: 'never-expires',
    title: 'no expires_in and no refresh token: a token that never expires (GitHub OAuth app)',
    provider: { expiry: 'none', neverExpires: true },
    neverExpires: true,
    afterLogin(_p, status) {
      assert.equal(status.hasRefreshToken, false);
      assert.equal(status.expirySource, 'none', 'used until the API refuses it, not for a guessed hour');
    },
  },
  {
    id: 'no-expiry-refresh',
    title: 'no expires_in, with a refresh token: the default lifetime, renewed when the API says 401',
    provider: { expiry: 'none' },
    reactive: true,
    afterLogin(_p, status) {
      assert.equal(status.hasRefreshToken, true);
      assert.equal(status.expirySource, 'default');
    },
    afterRefresh(p) {
      assert.deepEqual(p.apiRequests.map((r) => r.status), [401, 200], 'refused once, renewed, retried');
    },
  },
  {
    id: 'rotate',
    title: 'refresh tokens that rotate (the old one dies)',
    provider: { refresh: 'rotate' },
    afterRefresh(_p, refreshes, phase) {
      assert.equal(refreshes[0]?.refreshGeneration, phase === 'expired' ? 1 : 2, 'the newest refresh token is presented');
      assert.ok(refreshes.every((r) => r.refreshTokenAlive), 'a dead refresh token was never presented');
    },
  },
  {
    id: 'keep',
    title: 'refresh answers without a refresh token (the old one stays valid)',
    provider: { refresh: 'keep' },
    afterRefresh(_p, refreshes) {
      assert.equal(refreshes[0]?.refreshGeneration, 1, "the login's refresh token is kept and presented again");
      assert.ok(refreshes.every((r) => r.refreshTokenAlive));
    },
  },
  {
    id: 'token-values',
    title: 'token-response values: instance_url sets the API base URL (Salesforce), org_id kept',
    // The org id the provider names changes after the login: a refresh that carries it again updates the value.
    provider: { separateApi: true, tokenValues: { instance_url: (o) => o.apiUrl, org_id: () => salesforceOrg } },
    connection: () => ({
      apiBaseUrl: '',
      tokenValues: [
        { from: 'instance_url', as: 'instanceUrl', setsApiBaseUrl: true, pattern: '^http://127\\.0\\.0\\.1:[0-9]+$' },
        { from: 'org_id', as: 'orgId' },
      ],
    }),
    url: '{{{connection.instanceUrl}}}/api/me',
    values: (p) => ({ instanceUrl: p.apiUrl, orgId: salesforceOrg, apiBaseUrl: p.apiUrl }),
    afterLogin(p) {
      assert.notEqual(new URL(p.apiUrl).origin, new URL(p.tokenUrl).origin, 'the API is elsewhere than the login server');
    },
  },
  {
    id: 'callback-values',
    title: 'callback query values: realmId kept from the redirect (Intuit)',
    provider: { callbackParams: { realmId: '9130350' } },
    connection: () => ({ callbackValues: [{ from: 'realmId', as: 'realmId', pattern: '^[0-9]+$' }] }),
    url: '/api/company/{{{connection.realmId}}}',
    values: (p) => ({ realmId: '9130350', apiBaseUrl: p.apiUrl }),
  },
  {
    id: 'lookup',
    title: 'a lookup after login finds the tenant, sent as a header on every request (Xero)',
    provider: { lookup: true },
    connection: (p) => ({ lookupUrl: p.lookupUrl, lookupPick: 'tenantId', lookupAs: 'tenantId', lookupHeader: 'xero-tenant-id' }),
    values: (p) => ({ tenantId: p.tenantId }),
    afterLogin(p) {
      const lookups = p.apiRequests.filter((r) => r.path === '/connections');
      assert.equal(lookups.length, 1, 'one lookup after the login');
      assert.equal(lookups[0]?.subject, 'user-1', "with the login's token");
      for (const r of p.apiRequests.filter((x) => x.path.startsWith('/api/'))) assert.equal(r.headers['xero-tenant-id'], p.tenantId);
    },
    afterRefresh(p, _refreshes, phase) {
      for (const r of p.apiRequests.filter((x) => x.path.startsWith('/api/'))) assert.equal(r.headers['xero-tenant-id'], p.tenantId);
      if (phase === 'restarted') assert.equal(p.apiRequests.filter((r) => r.path === '/connections').length, 0, 'the tenant survived the restart with the tokens');
    },
  },
  {
    id: 'scope-comma',
    title: 'scopes separated by commas',
    provider: { scopeSeparator: ',' },
    connection: () => ({ scopes: 'read write', scopeSeparator: ',' }),
    afterLogin(p) {
      assert.equal(p.authorizeRequests[0]?.params.scope, 'read,write');
    },
  },
  {
    id: 'pkce-refused',
    title: 'a provider that refuses PKCE, with pkce off',
    provider: { pkce: 'refused' },
    connection: () => ({ pkce: 'off' }),
    afterLogin(p) {
      assert.equal(p.authorizeRequests[0]?.params.code_challenge, undefined);
      assert.equal(p.tokenRequests[0]?.codeVerifier, 'absent');
    },
  },
];

/** An oauth2-connection for a deviant provider, as the editor saves it, with its secret for a deploy. */
function connectionFor(id: string, p: DeviantProvider, redirectUri: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    id,
    type: 'oauth2-connection',
    // Not the id: Node-RED would take a property equal to a config node's id for a reference to it (itself).
    name: `${p.url} client`,
    grantType: 'authorization_code',
    issuer: '',
    authorizationEndpoint: p.authorizeUrl,
    tokenEndpoint: p.tokenUrl,
    revocationEndpoint: '',
    deviceAuthorizationEndpoint: '',
    issParameterSupported: false,
    clientId: p.client.clientId,
    authMethod: 'client_secret_basic',
    scopes: 'read write',
    resources: '',
    authorizeParams: [],
    tokenParams: [],
    apiBaseUrl: p.apiUrl,
    allowedOrigins: '',
    expiredStatuses: '401',
    refreshSkewSec: 0,
    redirectUri,
    ...extra,
    credentials: { clientSecret: p.client.clientSecret },
  };
}

/**
 * http in (GET /api/dev-<id>) -> http-oauth2-request -> answer {status, body, oauth2}; a catch node answers 599
 * with {code, message, statusCode}.
 */
function lane(id: string, connection: string, url: string): Record<string, unknown>[] {
  const base = `req-${id}`;
  return [
    { id: `${base}-in`, type: 'http in', z: 'tab1', url: `/dev-${id}`, method: 'get', wires: [[base]] },
    {
      id: base,
      type: 'http-oauth2-request',
      z: 'tab1',
      connection,
      method: 'GET',
      url,
      ret: 'obj',
      paytoqs: 'ignore',
      headers: [],
      retryStatuses: '429,502,503,504',
      maxAttempts: 3,
      maxRetryAfterSec: 5,
      followRedirects: true,
      maxRedirects: 5,
      wires: [[`${base}-shape`]],
    },
    {
      id: `${base}-shape`,
      type: 'change',
      z: 'tab1',
      rules: [
        { t: 'set', p: 'payload', pt: 'msg', to: '{"status": statusCode, "body": payload, "oauth2": oauth2}', tot: 'jsonata' },
        { t: 'delete', p: 'headers', pt: 'msg' },
      ],
      wires: [[`${base}-out`]],
    },
    { id: `${base}-out`, type: 'http response', z: 'tab1', statusCode: '', headers: {}, wires: [] },
    ...catchToResponse(base),
  ];
}

interface LaneAnswer {
  status: number;
  text: string;
  body: { status?: number; body?: Record<string, unknown>; oauth2?: Record<string, unknown>; code?: string; message?: string };
}

/** A server on another loopback address that counts every request it gets (a host no token may reach). */
async function startTrap(): Promise<{ url: string; hits: string[]; close(): Promise<void> }> {
  const hits: string[] = [];
  const server = http.createServer((req, res) => {
    hits.push(`${req.method} ${req.url}`);
    req.resume();
    res.writeHead(404).end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.2', resolve));
  return {
    url: `http://127.0.0.2:${(server.address() as AddressInfo).port}`,
    hits,
    close: () => new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    }),
  };
}

const CB = 'http://127.0.0.1:9/cb';

/** The provider's side of a login, without Node-RED: the authorize redirect's query. */
async function authorizeDirect(p: DeviantProvider, params: Record<string, string>): Promise<URLSearchParams> {
  const url = new URL(p.authorizeUrl);
  for (const [k, v] of Object.entries({ client_id: p.client.clientId, redirect_uri: CB, response_type: 'code', state: 'st', scope: 'read', ...params })) url.searchParams.set(k, v);
  const res = await fetch(url, { redirect: 'manual' });
  assert.equal(res.status, 302, await res.text());
  return new URL(res.headers.get('location') as string).searchParams;
}

async function tokenDirect(p: DeviantProvider, params: Record<string, string>, accept = 'application/json'): Promise<{ status: number; form: boolean; body: Record<string, unknown> }> {
  const res = await fetch(p.tokenUrl, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Basic ${Buffer.from(`${p.client.clientId}:${p.client.clientSecret}`).toString('base64')}`, ...(accept ? { accept } : {}) },
    body: new URLSearchParams({ redirect_uri: CB, ...params }),
  });
  const text = await res.text();
  const form = /x-www-form-urlencoded/.test(res.headers.get('content-type') ?? '');
  return { status: res.status, form, body: form ? Object.fromEntries(new URLSearchParams(text)) : (JSON.parse(text) as Record<string, unknown>) };
}

async function apiDirect(p: DeviantProvider, token: unknown, path = '/api/me', headers: Record<string, string> = {}): Promise<number> {
  return (await fetch(p.apiUrl + path, { headers: { authorization: `Bearer ${String(token)}`, ...headers } })).status;
}

describe('the deviant provider (a test part) does the protocol and deviates as configured', () => {
  const started: DeviantProvider[] = [];
  async function start(options: DeviantProviderOptions): Promise<DeviantProvider> {
    const p = await startDeviantProvider({ accessTokenTtlSec: 60, onSecret: addSecret, ...options });
    p.addRedirectUri(CB);
    started.push(p);
    return p;
  }
  after(() => Promise.all(started.map((p) => p.close())));

  it('standard: PKCE S256 checked, codes single-use, tokens expire (401), refresh works', async () => {
    const p = await start({});
    const verifier = 'v'.repeat(50);
    const challenge = createHash('sha256').update(verifier).digest('base64url');
    const first = await authorizeDirect(p, { code_challenge: challenge, code_challenge_method: 'S256' });
    assert.equal(first.get('state'), 'st');
    const wrong = await tokenDirect(p, { grant_type: 'authorization_code', code: first.get('code') as string, code_verifier: 'w'.repeat(50) });
    assert.deepEqual([wrong.status, wrong.body.error], [400, 'invalid_grant']);
    const replay = await tokenDirect(p, { grant_type: 'authorization_code', code: first.get('code') as string, code_verifier: verifier });
    assert.equal(replay.status, 400, 'a code is used once');
    const second = await authorizeDirect(p, { code_challenge: challenge, code_challenge_method: 'S256' });
    const ok = await tokenDirect(p, { grant_type: 'authorization_code', code: second.get('code') as string, code_verifier: verifier });
    assert.equal(ok.status, 200);
    assert.equal(ok.body.expires_in, 60);
    assert.equal(await apiDirect(p, ok.body.access_token), 200);
    p.expireAccessTokens();
    assert.equal(await apiDirect(p, ok.body.access_token), 401);
    const refreshed = await tokenDirect(p, { grant_type: 'refresh_token', refresh_token: ok.body.refresh_token as string });
    assert.equal(refreshed.body.refresh_token, ok.body.refresh_token, 'the same refresh token by default');
    assert.equal(await apiDirect(p, refreshed.body.access_token), 200);
    const noChallenge = await authorizeDirect(p, {});
    const downgrade = await tokenDirect(p, { grant_type: 'authorization_code', code: noChallenge.get('code') as string, code_verifier: verifier });
    assert.equal(downgrade.status, 400, 'a verifier for a code without a challenge is refused');
  });

  it('acceptJsonRequired and formEncoded answer form-encoded', async () => {
    const picky = await start({ acceptJsonRequired: true });
    const bare = await tokenDirect(picky, { grant_type: 'authorization_code', code: (await authorizeDirect(picky, {})).get('code') as string }, '');
    assert.equal(bare.form, true);
    assert.equal(bare.body.expires_in, '60');
    assert.equal((await tokenDirect(picky, { grant_type: 'authorization_code', code: (await authorizeDirect(picky, {})).get('code') as string })).form, false);
    const form = await start({ formEncoded: true });
    assert.equal((await tokenDirect(form, { grant_type: 'authorization_code', code: (await authorizeDirect(form, {})).get('code') as string })).form, true);
  });

  it('errorIn200 refuses with HTTP 200; ok-false says ok: true on success', async () => {
    const gh = await start({ errorIn200: 'error-field' });
    const ghRefused = await tokenDirect(gh, { grant_type: 'refresh_token', refresh_token: 'rt-unknown' });
    assert.deepEqual([ghRefused.status, ghRefused.body.error], [200, 'bad_refresh_token']);
    const slack = await start({ errorIn200: 'ok-false' });
    const slackRefused = await tokenDirect(slack, { grant_type: 'refresh_token', refresh_token: 'rt-unknown' });
    assert.deepEqual([slackRefused.status, slackRefused.body.ok, slackRefused.body.error], [200, false, 'invalid_refresh_token']);
    const slackOk = await tokenDirect(slack, { grant_type: 'authorization_code', code: (await authorizeDirect(slack, {})).get('code') as string });
    assert.equal(slackOk.body.ok, true);
  });

  it('tokenPath, expires-at, neverExpires, rotate and keep shape the answers', async () => {
    const slack = await start({ tokenPath: 'authed_user', topLevelToken: true });
    const nested = await tokenDirect(slack, { grant_type: 'authorization_code', code: (await authorizeDirect(slack, {})).get('code') as string });
    const user = nested.body.authed_user as Record<string, unknown>;
    assert.ok(user.access_token && user.refresh_token && user.expires_in);
    assert.equal(nested.body.token_type, 'bot');
    assert.equal(nested.body.refresh_token, undefined);
    const at = await start({ expiry: 'expires-at' });
    const atBody = (await tokenDirect(at, { grant_type: 'authorization_code', code: (await authorizeDirect(at, {})).get('code') as string })).body;
    assert.equal(atBody.expires_in, undefined);
    assert.ok(Number.isInteger(atBody.expires_at) && (atBody.expires_at as number) * 1000 <= (at.tokenRequests[0]?.accessTokenExpiresAt as number));
    const gh = await start({ expiry: 'none', neverExpires: true });
    const ghBody = (await tokenDirect(gh, { grant_type: 'authorization_code', code: (await authorizeDirect(gh, {})).get('code') as string })).body;
    assert.deepEqual([ghBody.expires_in, ghBody.expires_at, ghBody.refresh_token], [undefined, undefined, undefined]);
    const rotating = await start({ refresh: 'rotate' });
    const login = (await tokenDirect(rotating, { grant_type: 'authorization_code', code: (await authorizeDirect(rotating, {})).get('code') as string })).body;
    const rotated = (await tokenDirect(rotating, { grant_type: 'refresh_token', refresh_token: login.refresh_token as string })).body;
    assert.notEqual(rotated.refresh_token, login.refresh_token);
    assert.equal((await tokenDirect(rotating, { grant_type: 'refresh_token', refresh_token: login.refresh_token as string })).status, 400, 'the old refresh token is dead');
    const keeping = await start({ refresh: 'keep' });
    const kept = (await tokenDirect(keeping, { grant_type: 'authorization_code', code: (await authorizeDirect(keeping, {})).get('code') as string })).body;
    const noRt = (await tokenDirect(keeping, { grant_type: 'refresh_token', refresh_token: kept.refresh_token as string })).body;
    assert.equal(noRt.refresh_token, undefined);
    assert.equal((await tokenDirect(keeping, { grant_type: 'refresh_token', refresh_token: kept.refresh_token as string })).status, 200, 'the old one stays valid');
  });

  it('scope separator, PKCE refused, callback parameters, token values and the lookup', async () => {
    const comma = await start({ scopeSeparator: ',' });
    assert.equal((await authorizeDirect(comma, { scope: 'read write' })).get('error'), 'invalid_scope');
    assert.ok((await authorizeDirect(comma, { scope: 'read,write' })).get('code'));
    const noPkce = await start({ pkce: 'refused', callbackParams: { realmId: '42' }, tokenValues: { instance_url: (o) => o.apiUrl }, separateApi: true });
    assert.equal((await authorizeDirect(noPkce, { code_challenge: 'x'.repeat(43), code_challenge_method: 'S256' })).get('error'), 'invalid_request');
    const back = await authorizeDirect(noPkce, {});
    assert.equal(back.get('realmId'), '42');
    assert.equal((await tokenDirect(noPkce, { grant_type: 'authorization_code', code: back.get('code') as string, code_verifier: 'v'.repeat(50) })).status, 400);
    const tokens = (await tokenDirect(noPkce, { grant_type: 'authorization_code', code: (await authorizeDirect(noPkce, {})).get('code') as string })).body;
    assert.equal(tokens.instance_url, noPkce.apiUrl);
    assert.notEqual(noPkce.apiUrl, noPkce.url);
    assert.equal(await apiDirect(noPkce, tokens.access_token, '/api/company/42'), 200);
    assert.equal(await apiDirect(noPkce, tokens.access_token, '/api/company/41'), 404);
    const xero = await start({ lookup: true });
    const xt = (await tokenDirect(xero, { grant_type: 'authorization_code', code: (await authorizeDirect(xero, {})).get('code') as string })).body;
    assert.equal(await apiDirect(xero, xt.access_token), 403, 'the API wants the tenant header');
    const list = (await (await fetch(xero.lookupUrl, { headers: { authorization: `Bearer ${String(xt.access_token)}` } })).json()) as { tenantId: string }[];
    assert.equal(list[0]?.tenantId, xero.tenantId);
    assert.equal(await apiDirect(xero, xt.access_token, '/api/me', { 'xero-tenant-id': xero.tenantId }), 200);
  });
});

describe('e2e: provider deviations (issue 15), each class against a provider that shows it', function () {
  this.timeout(60_000);
  let runtime: TestRuntime;
  let userDir: string;
  let redirectUri: string;
  let trap: Awaited<ReturnType<typeof startTrap>>;
  const running: Running[] = [];
  const extraProviders: DeviantProvider[] = [];
  let flows: Record<string, unknown>[] = [];

  async function provider(options: DeviantProviderOptions): Promise<DeviantProvider> {
    const p = await startDeviantProvider({ accessTokenTtlSec: TTL_SEC, onSecret: addSecret, ...options });
    p.addRedirectUri(redirectUri);
    return p;
  }

  const allProviders = (): DeviantProvider[] => [...running.map((r) => r.p), ...extraProviders];

  /** The request lane of a connection; the answer must carry none of the values any provider issued. */
  async function call(id: string): Promise<LaneAnswer> {
    const res = await fetch(new URL(`api/dev-${id}`, runtime.url + '/'));
    const text = await res.text();
    watchText(text);
    for (const p of allProviders()) for (const secret of p.secrets()) assert.ok(!text.includes(secret), `the answer of ${id} carries a token or secret`);
    let body: LaneAnswer['body'] = {};
    try {
      body = JSON.parse(text) as LaneAnswer['body'];
    } catch {
      // not JSON: the assertions below show the text
    }
    return { status: res.status, text, body };
  }

  /**
   * Log in as the editor does (the guarded login route, the provider's auto-approving authorize endpoint, the
   * callback in the same browser); `forge` may change the redirect back before it is opened.
   */
  async function editorLogin(connectionId: string, node: Record<string, unknown>, forge?: (callback: URL) => void): Promise<{ ok: boolean; code?: string; html: string }> {
    const jar = new CookieJar();
    const secret = (node.credentials as { clientSecret: string }).clientSecret;
    const started = await startLogin(runtime, connectionId, dialogConfig(node), jar, secret);
    if (!started.authorizeUrl) return { ok: false, code: started.error?.code, html: `login route ${started.status}: ${JSON.stringify(started.error)}` };
    const res = await fetch(started.authorizeUrl, { redirect: 'manual' });
    const location = res.headers.get('location');
    if (res.status !== 302 || !location) return { ok: false, html: `authorize answered ${res.status}: ${await res.text()}` };
    const callback = new URL(location);
    assert.equal(callback.origin + callback.pathname, redirectUri, 'the provider sends the browser back to the configured redirect URI');
    forge?.(callback);
    const page = await openCallback(callback, jar);
    watchText(page.html);
    const code = /"code":"([A-Z0-9_]+)"/.exec(page.html)?.[1];
    return { ok: page.status === 200 && /"ok":true/.test(page.html), code, html: page.html };
  }

  const status = (id: string): Promise<Record<string, unknown>> => connectionStatus(runtime, id);

  /** The request answered 200 by the API for the user's token, and msg.oauth2 carries the values. */
  function assertServed(c: Running, res: LaneAnswer): void {
    assert.equal(res.status, 200, `${c.id}: ${res.text.slice(0, 400)}`);
    assert.equal(res.body.status, 200, res.text.slice(0, 400));
    assert.equal(res.body.body?.sub, 'user-1', res.text.slice(0, 400));
    assert.equal(res.body.body?.kind, 'user', `${c.id}: the user's token was sent, not another one the answer carried`);
    if (c.values) {
      const expected = c.values(c.p);
      const oauth2 = res.body.oauth2 ?? {};
      for (const [name, value] of Object.entries(expected)) {
        const got = oauth2[name];
        assert.equal(typeof got === 'string' && name === 'apiBaseUrl' ? trimSlash(got) : got, name === 'apiBaseUrl' ? trimSlash(value) : value, `msg.oauth2.${name} (msg.oauth2 = ${JSON.stringify(res.body.oauth2)})`);
      }
    }
  }

  function assertLoggedIn(c: Running): void {
    if (c.loginFailure) assert.fail(`the login of this class failed earlier: ${c.loginFailure}`);
  }

  before(async () => {
    userDir = tempUserDir();
    runtime = await startWatchedRuntime({ userDir });
    redirectUri = new URL('oauth2-connection/callback', runtime.adminUrl).href;
    trap = await startTrap();
    for (const c of CASES) {
      const p = await provider(c.provider);
      const node = connectionFor(`conn-${c.id}`, p, redirectUri, c.connection?.(p) ?? {});
      running.push({ ...c, p, node });
    }
    flows = [tab(), ...running.flatMap((c) => [c.node, ...lane(c.id, String(c.node.id), c.url ?? '/api/me')])];
    await deployAndWait(runtime, flows);
  });

  after(async () => {
    await runtime?.stop();
    await Promise.all(allProviders().map((p) => p.close()));
    await trap?.close();
  });

  describe('1. log in through the editor, then a request', () => {
    for (const c of CASES) {
      it(c.title, async () => {
        const r = running.find((x) => x.id === c.id) as Running;
        const login = await editorLogin(String(r.node.id), r.node);
        if (!login.ok) r.loginFailure = `${login.code ?? 'no code'}: ${pageDetail(login.html)}`;
        assert.ok(login.ok, `login failed: ${r.loginFailure}`);
        assert.doesNotMatch(login.html, /awaitsDeploy/, 'the deployed connection uses the login at once');
        const st = await status(String(r.node.id));
        assert.equal(st.state, 'ready', JSON.stringify(st));
        const res = await call(c.id);
        assertServed(r, res);
        c.afterLogin?.(r.p, st);
      });
    }
  });

  describe('2. after the access token expired: a refresh, then a request', () => {
    before(async () => {
      const ends = allProviders().flatMap((p) => p.tokenRequests.map((t) => t.accessTokenExpiresAt ?? 0));
      await sleep(Math.max(0, Math.max(...ends) + 300 - Date.now()));
      for (const p of allProviders()) p.reset();
      salesforceOrg = '00D-org-2';
    });

    for (const c of CASES) {
      it(c.title, async () => {
        const r = running.find((x) => x.id === c.id) as Running;
        assertLoggedIn(r);
        const res = await call(c.id);
        assertServed(r, res);
        const refreshes = refreshesOf(r.p);
        assert.equal(refreshes.length, c.neverExpires ? 0 : 1, `refreshes: ${JSON.stringify(refreshes)}`);
        assert.ok(refreshes.every((x) => x.outcome === 'issued'), JSON.stringify(refreshes));
        // A known end means a renewal before use: only a token that says nothing of its end meets a 401 first.
        if (!c.reactive) assert.deepEqual(r.p.apiRequests.filter((x) => x.status === 401).map((x) => x.path), [], 'the API saw an expired token');
        c.afterRefresh?.(r.p, refreshes, 'expired');
      });
    }
  });

  describe('3. restarted without a deploy: a request again', () => {
    before(async () => {
      const ends = allProviders().flatMap((p) => p.tokenRequests.map((t) => t.accessTokenExpiresAt ?? 0));
      await runtime.stop();
      runtime = await startWatchedRuntime({ userDir, port: runtime.port });
      // The tokens of phase 2 expire too: the request after the restart refreshes with the stored refresh token.
      await sleep(Math.max(0, Math.max(...ends) + 300 - Date.now()));
      for (const p of allProviders()) p.reset();
    });

    for (const c of CASES) {
      it(c.title, async () => {
        const r = running.find((x) => x.id === c.id) as Running;
        assertLoggedIn(r);
        assert.equal((await status(String(r.node.id))).state, 'ready');
        const res = await call(c.id);
        assertServed(r, res);
        const refreshes = refreshesOf(r.p);
        assert.equal(refreshes.length, c.neverExpires ? 0 : 1, `refreshes: ${JSON.stringify(refreshes)}`);
        assert.ok(refreshes.every((x) => x.outcome === 'issued' && x.refreshTokenAlive), JSON.stringify(refreshes));
        assert.equal(r.p.tokenRequests.filter((x) => x.grantType === 'authorization_code').length, 0, 'no new login');
        c.afterRefresh?.(r.p, refreshes, 'restarted');
      });
    }
  });

  describe('4. refusals and values that must not be trusted', () => {
    for (const id of ['error-field', 'ok-false'] as const) {
      const words = id === 'error-field' ? { refresh: 'bad_refresh_token', code: 'bad_verification_code' } : { refresh: 'invalid_refresh_token', code: 'invalid_code' };

      it(`${id}: a revoked refresh token answered with HTTP 200 means login required, asked once, not again`, async () => {
        const r = running.find((x) => x.id === id) as Running;
        assertLoggedIn(r);
        r.p.revokeRefreshTokens();
        r.p.expireAccessTokens();
        r.p.reset();
        const res = await call(id);
        assert.equal(res.status, 599, res.text);
        assert.equal(res.body.code, 'OAUTH2_LOGIN_REQUIRED', res.text);
        const refused = refreshesOf(r.p);
        assert.deepEqual(refused.map((x) => x.outcome), [words.refresh]);
        const st = await status(String(r.node.id));
        assert.equal(st.state, 'login-required', JSON.stringify(st));
        const again = await call(id);
        assert.equal(again.body.code, 'OAUTH2_LOGIN_REQUIRED', again.text);
        assert.equal(refreshesOf(r.p).length, 1, 'the token endpoint is not asked again');
      });

      it(`${id}: a code the provider refuses with HTTP 200 fails the login as a refusal in the provider's words`, async () => {
        const r = running.find((x) => x.id === id) as Running;
        r.p.reset();
        const login = await editorLogin(String(r.node.id), r.node, (callback) => callback.searchParams.set('code', 'code-forged-by-the-test'));
        assert.equal(login.ok, false, login.html);
        assert.ok(['OAUTH2_TOKEN_REQUEST_REJECTED', 'OAUTH2_LOGIN_REQUIRED'].includes(login.code ?? ''), `${login.code}: ${pageDetail(login.html)}`);
        assert.ok(login.html.includes(words.code), 'the page names the provider\'s error');
        assert.deepEqual(r.p.tokenRequests.map((x) => x.outcome), [words.code]);
      });
    }

    it('a token-response value that fails its pattern (another host) fails the login with OAUTH2_INVALID_TOKEN_RESPONSE; that host gets nothing', async () => {
      const p = await provider({ separateApi: true, tokenValues: { instance_url: trap.url } });
      extraProviders.push(p);
      const node = connectionFor('conn-evil', p, redirectUri, {
        apiBaseUrl: '',
        tokenValues: [{ from: 'instance_url', as: 'instanceUrl', setsApiBaseUrl: true, pattern: '^http://127\\.0\\.0\\.1:[0-9]+$' }],
      });
      await deployAndWait(runtime, [...flows, node, ...lane('evil', 'conn-evil', '{{{connection.instanceUrl}}}/api/me')]);
      const login = await editorLogin('conn-evil', node);
      assert.equal(login.ok, false, 'the login is refused');
      assert.equal(login.code, 'OAUTH2_INVALID_TOKEN_RESPONSE', pageDetail(login.html));
      assert.match(pageDetail(login.html), /instance_url|instanceUrl/, 'the error names the field');
      assert.notEqual((await status('conn-evil')).state, 'ready');
      await call('evil');
      assert.deepEqual(trap.hits, [], 'the other host received nothing');
      assert.deepEqual(p.apiRequests, [], 'no request went anywhere with the token');
    });

    it('a provider URL value on plain http to a non-loopback host is refused, whatever its pattern says', async () => {
      const p = await provider({ tokenValues: { instance_url: 'http://api.evil.example' } });
      extraProviders.push(p);
      const node = connectionFor('conn-plain', p, redirectUri, {
        apiBaseUrl: '',
        tokenValues: [{ from: 'instance_url', as: 'instanceUrl', setsApiBaseUrl: true, pattern: '^http://[a-z.]+$' }],
      });
      const login = await editorLogin('conn-plain', node);
      assert.equal(login.ok, false, 'the login is refused');
      assert.equal(login.code, 'OAUTH2_INVALID_TOKEN_RESPONSE', pageDetail(login.html));
      assert.notEqual((await status('conn-plain')).state, 'ready');
    });

    it('a callback value that fails its pattern fails the login, naming it', async () => {
      const p = await provider({ callbackParams: { realmId: '../../admin' } });
      extraProviders.push(p);
      const node = connectionFor('conn-realm', p, redirectUri, { callbackValues: [{ from: 'realmId', as: 'realmId', pattern: '^[0-9]+$' }] });
      const login = await editorLogin('conn-realm', node);
      assert.equal(login.ok, false, 'the login is refused');
      assert.match(pageDetail(login.html), /realmId/, 'the error names the value');
      assert.notEqual((await status('conn-realm')).state, 'ready');
    });

    it('a value that sets the API base URL without a pattern is refused before anything is sent', async () => {
      const p = await provider({ tokenValues: { instance_url: 'http://127.0.0.1:1' } });
      extraProviders.push(p);
      const node = connectionFor('conn-nopattern', p, redirectUri, { apiBaseUrl: '', tokenValues: [{ from: 'instance_url', as: 'instanceUrl', setsApiBaseUrl: true }] });
      const started = await startLogin(runtime, 'conn-nopattern', dialogConfig(node), new CookieJar(), p.client.clientSecret);
      assert.equal(started.status, 400, JSON.stringify(started));
      assert.equal(started.error?.code, 'OAUTH2_INVALID_CONFIG');
      assert.match(started.error?.message ?? '', /tokenValues|pattern/i, 'the error names the field');
      assert.deepEqual(p.authorizeRequests, []);
    });
  });
});
