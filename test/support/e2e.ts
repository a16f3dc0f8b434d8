/**
 * Small helpers shared by the e2e files: start the real parts with the leak scan watching them, drive flows
 * over HTTP, call the admin routes, and deploy in a way that waits until the flows really run.
 */
import { startAuthServer, type AuthServer, type AuthServerOptions } from './auth-server';
import { connectionNode } from './flows';
import { watchAuthServer, watchLogs, watchText, watchUserDir } from './leaks';
import { startRuntime, tempUserDir, type LogLine, type RuntimeOptions, type TestRuntime } from './runtime';

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** An auth server whose tokens, codes and client secrets the leak scan looks for. */
export async function startWatchedAuthServer(options: AuthServerOptions = {}): Promise<AuthServer> {
  const auth = await startAuthServer(options);
  watchAuthServer(auth);
  return auth;
}

const runtimeLogs: LogLine[][] = [];

/** A runtime whose user directory and log lines the leak scan searches. */
export async function startWatchedRuntime(options: RuntimeOptions = {}): Promise<TestRuntime> {
  const userDir = options.userDir ?? tempUserDir();
  watchUserDir(userDir);
  const runtime = await startRuntime({ ...options, userDir });
  watchLogs(runtime.logs);
  runtimeLogs.push(runtime.logs);
  return runtime;
}

/** Every log line of the runtimes started by startWatchedRuntime (the leak scan checks their levels). */
export function watchedRuntimeLogs(): LogLine[] {
  return runtimeLogs.flat();
}

export interface JsonAnswer {
  status: number;
  body: unknown;
  text: string;
  headers: Headers;
}

async function answer(res: Response, opts: { apiEcho?: boolean } = {}): Promise<JsonAnswer> {
  const text = await res.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    // not JSON
  }
  if (opts.apiEcho && body && typeof body === 'object' && 'headers' in body) {
    // The test API's /echo reflects the request's Authorization header by design: that is the API's answer
    // carrying the token it was sent, not the package leaking it. Scan everything else of the answer.
    const { authorization: _authorization, ...headers } = (body as { headers: Record<string, unknown> }).headers;
    watchText(JSON.stringify({ ...body, headers }));
  } else {
    watchText(text);
  }
  return { status: res.status, body, text, headers: res.headers };
}

/**
 * GET /api<pathname> on the runtime: one request through an http-in lane. `apiEcho`: the lane ends at the test
 * API's /echo, whose answer contains the Authorization header the API received (left out of the leak scan).
 */
export async function callLane(runtime: TestRuntime, pathname: string, opts: { apiEcho?: boolean } = {}): Promise<JsonAnswer> {
  return answer(await fetch(new URL(`api${pathname}`, runtime.url + '/')), opts);
}

/** An admin route call; `token: null` calls anonymously, undefined uses the runtime's admin token. */
export async function adminCall(
  runtime: TestRuntime,
  pathname: string,
  init: { method?: string; body?: unknown; token?: string | null; headers?: Record<string, string> } = {},
): Promise<JsonAnswer> {
  const headers: Record<string, string> = { ...init.headers };
  if (init.body !== undefined) headers['content-type'] = 'application/json';
  const res = await runtime.admin(pathname, {
    method: init.method ?? (init.body !== undefined ? 'POST' : 'GET'),
    headers,
    body: init.body === undefined ? undefined : JSON.stringify(init.body),
    token: init.token,
  });
  return answer(res);
}

export async function connectionStatus(runtime: TestRuntime, id = 'conn1', token?: string | null): Promise<Record<string, unknown>> {
  const res = await adminCall(runtime, `oauth2-connection/${id}/status`, { token });
  if (res.status !== 200) throw new Error(`status of ${id}: ${res.status} ${res.text}`);
  return res.body as Record<string, unknown>;
}

/** Polls `check` until it returns a truthy value or the time is up (then throws with the last value). */
export async function waitFor<T>(
  check: () => Promise<T | undefined | null | false> | T | undefined | null | false,
  timeoutMs: number,
  what: string,
  intervalMs = 100,
): Promise<T> {
  const end = Date.now() + timeoutMs;
  let last = await check();
  while (!last) {
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} (last: ${JSON.stringify(last)})`);
    await sleep(intervalMs);
    last = await check();
  }
  return last;
}

/**
 * Deploys and waits until Node-RED has finished starting the new flows. POST /flows answers before the nodes
 * are started (flows/index.js returns the revision "asynchronously to the actual start"), so an http-in route
 * may still 404 right after `deploy` resolves. Node-RED emits the `runtime-deploy` event once start is done
 * (or gave up waiting for missing types); the trace-level log carries it.
 */
export async function deployAndWait(runtime: TestRuntime, flows: unknown[], timeoutMs = 10_000): Promise<void> {
  const from = runtime.logs.length;
  await runtime.deploy(flows);
  await waitFor(
    () => runtime.logs.slice(from).some((l) => l.text.includes('"id":"runtime-deploy"')),
    timeoutMs,
    'the runtime-deploy event after a deploy',
    25,
  );
}

/** An error as the lanes' catch nodes answer it (status 599). */
export interface CaughtError {
  code: string;
  message: string;
  statusCode?: number;
}

export function caught(res: JsonAnswer): CaughtError {
  if (res.status !== 599) throw new Error(`expected a caught error (599), got ${res.status}: ${res.text.slice(0, 300)}`);
  return res.body as CaughtError;
}

/**
 * The web client's connection node for `runtime`: its callback (under the runtime's admin root) registered at
 * the auth server, the API as its base URL.
 */
export function webConnection(auth: AuthServer, api: { url: string }, runtime: TestRuntime, id = 'conn1'): Record<string, unknown> {
  const redirectUri = new URL('oauth2-connection/callback', runtime.adminUrl).href;
  auth.addRedirectUri(redirectUri);
  return connectionNode(auth, {
    id,
    clientId: auth.clients.web.clientId,
    clientSecret: auth.clients.web.clientSecret,
    apiBaseUrl: api.url,
    redirectUri,
  });
}

/** The service client's client-credentials connection node (no login needed), the API as its base URL. */
export function serviceConnection(auth: AuthServer, api: { url: string }, id = 'conn1'): Record<string, unknown> {
  return connectionNode(auth, {
    id,
    grantType: 'client_credentials',
    clientId: auth.clients.service.clientId,
    clientSecret: auth.clients.service.clientSecret,
    apiBaseUrl: api.url,
    scopes: 'api:read',
  });
}
