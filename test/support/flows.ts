import type { AuthServer } from './auth-server';

export interface ConnectionOptions {
  id?: string;
  grantType?: 'authorization_code' | 'client_credentials' | 'device_code';
  clientId: string;
  clientSecret?: string;
  authMethod?: 'client_secret_basic' | 'client_secret_post' | 'none';
  scopes?: string;
  apiBaseUrl?: string;
  allowedOrigins?: string;
  redirectUri?: string;
  refreshSkewSec?: number;
  useDiscovery?: boolean;
  issParameterSupported?: boolean;
  /** The "expired when" condition (JSONata). */
  expiredWhen?: string;
}

/** An oauth2-connection config node as the editor saves it, with its credentials for a deploy. */
export function connectionNode(auth: Pick<AuthServer, 'issuer'>, o: ConnectionOptions): Record<string, unknown> {
  const node: Record<string, unknown> = {
    id: o.id ?? 'conn1',
    type: 'oauth2-connection',
    name: 'test connection',
    grantType: o.grantType ?? 'authorization_code',
    issuer: auth.issuer,
    authorizationEndpoint: o.useDiscovery ? '' : `${auth.issuer}/auth`,
    tokenEndpoint: o.useDiscovery ? '' : `${auth.issuer}/token`,
    revocationEndpoint: o.useDiscovery ? '' : `${auth.issuer}/token/revocation`,
    deviceAuthorizationEndpoint: o.useDiscovery ? '' : `${auth.issuer}/device/auth`,
    issParameterSupported: o.issParameterSupported ?? true,
    clientId: o.clientId,
    authMethod: o.authMethod ?? 'client_secret_basic',
    scopes: o.scopes ?? 'openid offline_access api:read',
    resources: '',
    authorizeParams: [],
    tokenParams: [],
    apiBaseUrl: o.apiBaseUrl ?? '',
    allowedOrigins: o.allowedOrigins ?? '',
    expiredStatuses: '401',
    expiredWhen: o.expiredWhen ?? '',
    refreshSkewSec: o.refreshSkewSec ?? 0,
    redirectUri: o.redirectUri ?? '',
  };
  if (o.clientSecret) node.credentials = { clientSecret: o.clientSecret };
  return node;
}

/** The dialog's values as the editor's Log in button sends them. */
export function dialogConfig(node: Record<string, unknown>): Record<string, unknown> {
  const { credentials: _credentials, id: _id, type: _type, ...config } = node;
  return config;
}

export interface RouteOptions {
  /** Path under /api the http-in node listens on. */
  path: string;
  requestNodeId: string;
  connectionId?: string;
  url?: string;
  method?: string;
  ret?: string;
  extra?: Record<string, unknown>;
}

/**
 * One HTTP-driven lane: http in (GET /api<path>) -> http-oauth2-request -> http response, and a catch node on
 * the request node answering 599 with the error (code, message) so tests see what a Catch node receives.
 */
export function requestLane(r: RouteOptions, tab = 'tab1'): Record<string, unknown>[] {
  const base = r.requestNodeId;
  return [
    { id: `${base}-in`, type: 'http in', z: tab, url: r.path, method: 'get', wires: [[base]] },
    {
      id: base,
      type: 'http-oauth2-request',
      z: tab,
      connection: r.connectionId ?? 'conn1',
      method: r.method ?? 'GET',
      url: r.url ?? '',
      ret: r.ret ?? 'obj',
      paytoqs: 'ignore',
      headers: [],
      retryStatuses: '429,502,503,504',
      maxAttempts: 3,
      maxRetryAfterSec: 5,
      followRedirects: true,
      maxRedirects: 5,
      // As this node saves it (a non-2xx answer raised to the lane's Catch node); a lane may ask for the core
      // node's outputs in `extra`.
      non2xxAsOutput: false,
      ...r.extra,
      wires: [[`${base}-strip`]],
    },
    // The API's response headers (content-length, transfer-encoding) must not become this answer's headers.
    { id: `${base}-strip`, type: 'change', z: tab, rules: [{ t: 'delete', p: 'headers', pt: 'msg' }], wires: [[`${base}-out`]] },
    { id: `${base}-out`, type: 'http response', z: tab, statusCode: '', headers: {}, wires: [] },
    ...catchToResponse(base, tab),
  ];
}

/**
 * A catch node on request node `base` whose error the lane's http response (`<base>-out`) answers with status
 * 599 and `{code, message, statusCode}`: what a Catch node receives, as the test sees it.
 */
export function catchToResponse(base: string, tab = 'tab1'): Record<string, unknown>[] {
  return [
    { id: `${base}-catch`, type: 'catch', z: tab, scope: [base], uncaught: false, wires: [[`${base}-err`]] },
    {
      id: `${base}-err`,
      type: 'change',
      z: tab,
      rules: [
        { t: 'set', p: 'payload', pt: 'msg', to: '{"code": error.code, "message": error.message, "statusCode": statusCode}', tot: 'jsonata' },
        { t: 'set', p: 'statusCode', pt: 'msg', to: '599', tot: 'num' },
        { t: 'delete', p: 'headers', pt: 'msg' },
      ],
      wires: [[`${base}-out`]],
    },
  ];
}

export function tab(id = 'tab1'): Record<string, unknown> {
  return { id, type: 'tab', label: 'test' };
}

/** An oauth2-record-change node's settings as the editor saves them by default, polling once a day (tests poll by message). */
export const RECORD_CHANGE_DEFAULTS: Readonly<Record<string, unknown>> = {
  interval: 1,
  intervalUnit: 'd',
  recordsPath: '',
  recordsPathType: 'auto',
  idPath: 'id',
  detection: 'updatedAt',
  versionPath: 'updated_at',
  emitCreated: true,
  emitUpdated: true,
  emitDeleted: false,
  firstRun: 'remember',
  includePrevious: false,
  batch: false,
  watermarkParam: '',
  pagination: 'none',
  maxPages: 100,
  maxRemembered: 100000,
};

/**
 * A record-change trigger driven over HTTP: GET /api<path> polls now and answers when the poll is done (a
 * complete node), 599 with {code, message} when it failed (a catch node). Every emitted message goes through a
 * change node to an http-oauth2-request POST /sink, the product's own "record changed -> request" flow, so the
 * test reads what arrived at the sink: {lane, event, id, version, previous}.
 */
export function triggerLane(o: { id: string; path: string; connectionId?: string; config: Record<string, unknown> }, tabId = 'tab1'): Record<string, unknown>[] {
  const base = o.id;
  return [
    { id: `${base}-in`, type: 'http in', z: tabId, url: o.path, method: 'get', x: 100, y: 100, wires: [[base]] },
    {
      id: base,
      type: 'oauth2-record-change',
      z: tabId,
      connection: o.connectionId ?? 'conn1',
      ...RECORD_CHANGE_DEFAULTS,
      ...o.config,
      x: 300,
      y: 100,
      wires: [[`${base}-shape`]],
    },
    {
      id: `${base}-shape`,
      type: 'change',
      z: tabId,
      rules: [
        {
          t: 'set',
          p: 'payload',
          pt: 'msg',
          to: `{"lane": "${base}", "event": event, "id": topic, "version": version, "previous": previous, "changes": changes}`,
          tot: 'jsonata',
        },
      ],
      x: 500,
      y: 100,
      wires: [[`${base}-sink`]],
    },
    {
      id: `${base}-sink`,
      type: 'http-oauth2-request',
      z: tabId,
      connection: o.connectionId ?? 'conn1',
      method: 'POST',
      url: '/sink',
      ret: 'txt',
      paytoqs: 'ignore',
      headers: [],
      x: 700,
      y: 100,
      wires: [[]],
    },
    { id: `${base}-done`, type: 'complete', z: tabId, scope: [base], uncaught: false, x: 300, y: 200, wires: [[`${base}-ok`]] },
    { id: `${base}-ok`, type: 'change', z: tabId, rules: [{ t: 'set', p: 'payload', pt: 'msg', to: 'polled', tot: 'str' }], x: 500, y: 200, wires: [[`${base}-out`]] },
    { id: `${base}-catch`, type: 'catch', z: tabId, scope: [base], uncaught: false, x: 300, y: 300, wires: [[`${base}-err`]] },
    {
      id: `${base}-err`,
      type: 'change',
      z: tabId,
      rules: [
        { t: 'set', p: 'payload', pt: 'msg', to: '{"code": error.code, "message": error.message}', tot: 'jsonata' },
        { t: 'set', p: 'statusCode', pt: 'msg', to: '599', tot: 'num' },
      ],
      x: 500,
      y: 300,
      wires: [[`${base}-out`]],
    },
    { id: `${base}-out`, type: 'http response', z: tabId, statusCode: '', headers: {}, x: 700, y: 250, wires: [] },
  ];
}
