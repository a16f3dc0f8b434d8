import assert from 'node:assert/strict';
/**
 * Support for node-level tests: node-red-node-test-helper 0.3.6 driving the compiled nodes in dist/nodes with a
 * real message catalog, a temporary user directory per test, and small probes for status, errors and output.
 */
import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import * as os from 'node:os';
import * as path from 'node:path';
import type { EventEmitter } from 'node:events';
import type { AuthServer } from '../support/auth-server';
import { connectionNode, RECORD_CHANGE_DEFAULTS, type ConnectionOptions } from '../support/flows';

const load = createRequire(__filename);
const root = path.resolve(__dirname, '..', '..');
const distNodes = path.join(root, 'dist', 'nodes');

/** A node as the helper hands it out: the runtime's Node with its EventEmitter side. */
export interface RuntimeNode extends EventEmitter {
  id: string;
  type: string;
  receive(msg?: Record<string, unknown>): void;
  status(status: Record<string, unknown>): void;
  [key: string]: unknown;
}

interface SpyCall {
  thisValue: unknown;
  args: unknown[];
}

export interface Spy {
  getCalls(): SpyCall[];
}

type NodeModule = (RED: Record<string, unknown>) => unknown;

/** The part of node-red-node-test-helper 0.3.6 these tests use (it ships no types). */
export interface TestHelper {
  init(runtimePath: string, userSettings?: Record<string, unknown>): void;
  settings(userSettings?: Record<string, unknown>): Record<string, unknown>;
  load(modules: NodeModule | NodeModule[], flow: Record<string, unknown>[], credentials?: Record<string, Record<string, string>>): Promise<void>;
  unload(): Promise<void>;
  getNode(id: string): RuntimeNode;
  _NodePrototype: Record<string, unknown>;
}

export const helper = load('node-red-node-test-helper') as TestHelper;
helper.init(load.resolve('node-red'));

const connectionModuleRaw = load(path.join(distNodes, 'oauth2-connection.js')) as NodeModule;
const requestModuleRaw = load(path.join(distNodes, 'http-oauth2-request.js')) as NodeModule;

interface I18n {
  init(settings: Record<string, unknown>): void;
  registerMessageCatalog(namespace: string, dir: string, file: string): Promise<void>;
  _(key: string, params?: Record<string, unknown>): string;
}
/** Node-RED's message hooks, the module the runtime's router calls (Flow.js, Node.js). */
export interface Hooks {
  add(hookId: string, callback: (event: Record<string, unknown>) => unknown): void;
  remove(hookId: string): void;
}
const util = load('@node-red/util') as { i18n: I18n; hooks: Hooks };
const i18n = util.i18n;
/** The hooks the router runs (a test adds its own to hold a message on its way, as another package's would). */
export const hooks = util.hooks;
let catalogsReady: Promise<void> | undefined;

/**
 * The helper replaces RED._ with the identity; the real loader gives each module a RED._ that looks keys up in
 * its own catalog. Register the shipped catalogs with Node-RED's own i18n and give each module that RED._, so
 * errors and statuses read as users see them.
 */
export function loadCatalogs(): Promise<void> {
  catalogsReady ??= (async () => {
    i18n.init({ lang: 'en-US' });
    const dir = path.join(distNodes, 'locales');
    await i18n.registerMessageCatalog(namespaceOf('oauth2-connection'), dir, 'oauth2-connection.json');
    await i18n.registerMessageCatalog(namespaceOf('http-oauth2-request'), dir, 'http-oauth2-request.json');
    await i18n.registerMessageCatalog(namespaceOf('oauth2-record-change'), dir, 'oauth2-record-change.json');
    await i18n.registerMessageCatalog(namespaceOf('oauth2-connection-status'), dir, 'oauth2-connection-status.json');
  })();
  return catalogsReady;
}

function namespaceOf(file: string): string {
  return `node-red-contrib-http-oauth2/${file}`;
}

function withCatalog(mod: NodeModule, file: string): NodeModule {
  // The helper hands every module the same RED object; the real loader gives each its own (and own `_`).
  return (RED) => {
    const own = Object.create(RED) as Record<string, unknown>;
    // As the loader's: a key that names its namespace (`module/set:key`) is taken as it is.
    own._ = (key: string, params?: Record<string, unknown>) => i18n._(key.includes(':') ? key : `${namespaceOf(file)}:${key}`, params);
    // The real loader's RED.hooks is the runtime's (registry/lib/util.js createNodeApi); the helper's mock runtime
    // has none, while its router still runs the hooks of @node-red/util: hand the modules that same object.
    own.hooks ??= hooks;
    return mod(own);
  };
}

export const connectionModule = withCatalog(connectionModuleRaw, 'oauth2-connection');
export const requestModule = withCatalog(requestModuleRaw, 'http-oauth2-request');
/** Core nodes the helper does not load by itself. */
const changeModule = load(load.resolve('@node-red/nodes/core/function/15-change.js')) as NodeModule;
export const nodeModules = [connectionModule, requestModule, changeModule];
/** The core `http request` node, for tests of the contract this node shares with it. */
export const coreRequestModule = load(load.resolve('@node-red/nodes/core/network/21-httprequest.js')) as NodeModule;
/** The record trigger, with its catalog (not in nodeModules: it polls on its own once loaded). */
export const recordChangeModule = withCatalog(load(path.join(distNodes, 'oauth2-record-change.js')) as NodeModule, 'oauth2-record-change');
/** The connection status node, with its catalog. */
export const connectionStatusModule = withCatalog(load(path.join(distNodes, 'oauth2-connection-status.js')) as NodeModule, 'oauth2-connection-status');

/** An oauth2-record-change node on the records API, polling once a day (tests poll it by message), wired to `wires`. */
export function recordChangeNode(id: string, extra: Record<string, unknown> = {}, wires: string[][] = [['out']]): Record<string, unknown> {
  return {
    id,
    type: 'oauth2-record-change',
    z: FLOW,
    x: 100,
    y: 300,
    name: '',
    connection: 'conn1',
    url: '/records',
    ...RECORD_CHANGE_DEFAULTS,
    ...extra,
    wires,
  };
}

/** A fresh user directory; the helper's settings point the runtime (and the token store) at it. */
export function useTempUserDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'oauth2-node-test-'));
  helper.settings({ userDir: dir });
  return dir;
}

/**
 * An oauth2-connection node for the helper (credentials go in the helper's third argument, keyed by node id,
 * as Node-RED's credential store holds them), plus that credentials map.
 */
export function connectionDef(
  auth: AuthServer,
  options: ConnectionOptions,
): { node: Record<string, unknown>; credentials: Record<string, Record<string, string>> } {
  const node = connectionNode(auth, options);
  const creds = node.credentials as Record<string, string> | undefined;
  delete node.credentials;
  return { node, credentials: creds ? { [String(node.id)]: creds } : {} };
}

/** The service (client credentials) connection every happy-path test uses. */
export function serviceConnection(
  auth: AuthServer,
  options: Partial<ConnectionOptions> = {},
): { node: Record<string, unknown>; credentials: Record<string, Record<string, string>> } {
  return connectionDef(auth, {
    grantType: 'client_credentials',
    clientId: auth.clients.service.clientId,
    clientSecret: auth.clients.service.clientSecret,
    scopes: 'api:read api:write',
    ...options,
  });
}

export const FLOW = 'f1';
// Node-RED takes a flow node without x and y for a config node (flows/util.js parseConfig); every flow node
// here has a position so Catch nodes and wiring behave as in a deployed flow.

export function tab(): Record<string, unknown> {
  return { id: FLOW, type: 'tab', label: 'node tests' };
}

/** An http-oauth2-request node with the editor's defaults, wired to `wires`. */
export function requestNode(id: string, extra: Record<string, unknown> = {}, wires: string[][] = [['out']]): Record<string, unknown> {
  return {
    id,
    type: 'http-oauth2-request',
    z: FLOW,
    x: 100,
    y: 100,
    name: '',
    connection: 'conn1',
    method: 'GET',
    url: '',
    paytoqs: 'ignore',
    headers: [],
    ret: 'obj',
    requestTimeout: '',
    followRedirects: true,
    maxRedirects: 5,
    retryStatuses: '429,502,503,504',
    maxAttempts: 1,
    retryUnsafe: false,
    maxRetryAfterSec: 5,
    non2xxAsOutput: false,
    ...extra,
    wires,
  };
}

export function helperNode(id = 'out'): Record<string, unknown> {
  return { id, type: 'helper', z: FLOW, x: 300, y: 100, wires: [] };
}

/** A Catch node scoped to `scope`, wired to a helper node so a test sees what it receives. */
export function catchNodes(scope: string[], id = 'catcher', outId = 'caught'): Record<string, unknown>[] {
  return [
    { id, type: 'catch', z: FLOW, x: 100, y: 200, scope, uncaught: false, wires: [[outId]] },
    helperNode(outId),
  ];
}

/** Resolves with the next message a node receives (its 'input' event), or rejects after `ms`. */
export function nextInput(node: RuntimeNode, ms = 10_000): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no message reached ${node.id} within ${ms} ms`)), ms);
    node.once('input', (msg: Record<string, unknown>) => {
      clearTimeout(timer);
      resolve(msg);
    });
  });
}

/**
 * Sends an empty message to the request node `req`; resolves with what reaches its output (`out`) or its Catch
 * node (`caught`), whichever comes first.
 */
export function requestOutcome(ms = 10_000): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const out = helper.getNode('out');
    const caught = helper.getNode('caught');
    const timer = setTimeout(() => finish(undefined), ms);
    function finish(msg: Record<string, unknown> | undefined): void {
      clearTimeout(timer);
      out.off('input', finish);
      caught.off('input', finish);
      if (msg) resolve(msg);
      else reject(new Error(`no outcome within ${ms} ms`));
    }
    out.on('input', finish);
    caught.on('input', finish);
    helper.getNode('req').receive({});
  });
}

/** The helper's spy on Node.prototype.status for the loaded flow (unload restores the original). */
export function currentStatusSpy(): Spy {
  return helper._NodePrototype.status as unknown as Spy;
}

/** Every status the node has set since the helper loaded the flow, in order. */
/**
 * The statuses a node set, as the server's-language text (`i18n`, the catalog entry the editor says in its
 * user's language, is left out: i18nStatusLog has it).
 */
export function statusLog(node: RuntimeNode, spy: Spy = currentStatusSpy()): Record<string, unknown>[] {
  return i18nStatusLog(node, spy).map(({ i18n: _i18n, ...status }) => status);
}

/**
 * A status text as the editor shows it in English: a bare catalog key of one of the package's nodes (a status
 * without values, which the editor translates itself) in words; any other text as it is.
 */
export function shown(text: unknown): string {
  const value = String(text);
  const match = /^(oauth2-connection-status|oauth2-record-change|http-oauth2-request|oauth2-connection)\.[\w.]+$/.exec(value);
  return match ? i18n._(`${namespaceOf(match[1])}:${value}`) : value;
}

/** The statuses a node set, whole. */
export function i18nStatusLog(node: RuntimeNode, spy: Spy = currentStatusSpy()): Record<string, unknown>[] {
  return spy.getCalls().filter((c) => c.thisValue === node).map((c) => c.args[0] as Record<string, unknown>);
}

/** Every node.error(err, msg) call of the node (done(err) ends there too). */
export function errorLog(node: RuntimeNode): { err: unknown; msg: unknown }[] {
  const spy = helper._NodePrototype.error as unknown as Spy;
  return spy.getCalls().filter((c) => c.thisValue === node).map((c) => ({ err: c.args[0], msg: c.args[1] }));
}

/** Waits until `check` holds (polling), for state that settles asynchronously. */
export async function eventually(check: () => boolean, ms = 5_000, what = 'condition'): Promise<void> {
  const until = Date.now() + ms;
  while (!check()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/**
 * Collects unhandled rejections from the calling suite's first `before` on; call the returned function last in
 * the suite's `after`, once everything is closed (invariant 10: nothing a node does may leave one behind).
 */
export function collectUnhandledRejections(what: string): () => void {
  const unhandled: unknown[] = [];
  const onUnhandled = (reason: unknown): void => {
    unhandled.push(reason);
  };
  before(() => {
    process.on('unhandledRejection', onUnhandled);
  });
  return () => {
    process.removeListener('unhandledRejection', onUnhandled);
    assert.deepEqual(unhandled, [], `unhandled rejections during ${what}`);
  };
}
