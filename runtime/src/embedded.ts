import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import express from 'express';
import { adminCrossSiteGuard, loopbackNameRequired, refuseCrossSiteUpgrades } from './admin-cross-site';
import { isWildcard } from './production-settings';

export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace';
export const LOG_LEVELS: readonly LogLevel[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace'];

/**
 * Root of the palette package (its package.json has the `node-red` section Node-RED loads the nodes from).
 * Packed (scripts/pack.js), the runtime carries it in its `palette/` folder; in a clone it is the workspace
 * dependency, or, when node_modules are not installed yet, the clone's root two levels above runtime/dist.
 */
export function paletteRoot(): string {
  // Its own copy first: never another version found on the way up.
  const carried = path.resolve(__dirname, '..', 'palette');
  if (fs.existsSync(path.join(carried, 'package.json'))) return carried;
  try {
    return path.dirname(require.resolve('node-red-contrib-http-oauth2/package.json'));
  } catch {
    return path.resolve(__dirname, '..', '..');
  }
}

function nodeRedPackageVersion(): string | undefined {
  try {
    const file = require.resolve('node-red/package.json');
    const version = (JSON.parse(fs.readFileSync(file, 'utf8')) as { version?: unknown }).version;
    return typeof version === 'string' ? version : undefined;
  } catch {
    return undefined;
  }
}

export interface EmbeddedOptions {
  port: number;
  host: string;
  userDir: string;
  flowFile?: string;
  credentialSecret?: string | false;
  httpAdminRoot?: string;
  adminAuth?: unknown;
  logLevel?: LogLevel;
  /** Receives every log record (tests use it to scan for secrets). */
  logHandler?: (record: { level: number; msg?: unknown; [key: string]: unknown }) => void;
  /**
   * Extra Node-RED settings. The admin app answers its own editor and non-browser clients only, whatever
   * httpAdminCors says (see admin-cross-site.ts).
   */
  settings?: Record<string, unknown>;
  /** Files the editor page loads as scripts (editorTheme.page.scripts), before the editor starts. */
  editorScripts?: string[];
  /** Mounted on the same server before Node-RED (the demo's pages would go here); not behind admin auth. */
  beforeNodeRed?: (app: express.Express) => void;
}

/** The subset of the node-red module used to embed it. */
interface NodeRedModule {
  init(server: http.Server, settings: Record<string, unknown>): void;
  start(): Promise<void>;
  stop(): Promise<void>;
  httpAdmin: express.Express;
  httpNode: express.Express;
  version: (() => string) | string;
  events: {
    on(event: string, listener: (event: { id?: string; payload?: { state?: string } }) => void): unknown;
    removeListener(event: string, listener: (...args: never[]) => void): unknown;
  };
  runtime: {
    flows: {
      getFlows(opts: Record<string, unknown>): Promise<{ flows: unknown[] }>;
      setFlows(opts: { flows: { flows: unknown[] }; deploymentType?: string }): Promise<unknown>;
    };
  };
}

export interface EmbeddedRuntime {
  url: string;
  adminUrl: string;
  port: number;
  server: http.Server;
  nodeRedVersion: string;
  /** The deployed flows (without credentials). */
  getFlows(): Promise<unknown[]>;
  /** Deploys `flows` (a full deploy); nodes may carry `credentials`, which Node-RED stores encrypted. */
  deploy(flows: unknown[]): Promise<void>;
  /**
   * Stops cleanly: no new connections, requests in flight finish (bounded), then RED.stop() closes every
   * node, whose close handlers flush the token and trigger stores, then the server closes.
   */
  stop(): Promise<void>;
}

/** httpNodeRoot: the flows' own HTTP endpoints. */
const NODE_ROOT = '/api';

/** How long a stop waits for requests in flight (a login callback writing its tokens) before closing nodes. */
const IN_FLIGHT_GRACE_MS = 5_000;

/**
 * Starts Node-RED embedded in Express with the palette package's nodes loaded. Node-RED keeps module-level
 * state, so a process runs one embedded runtime at a time (tests restart it in a child process).
 *
 * GET /healthz answers 503 until the flows have started and while stopping, then 200 with the Node-RED
 * version and the uptime: nothing else, and not behind admin auth, so a monitor needs no credentials.
 */
export async function startEmbedded(options: EmbeddedOptions): Promise<EmbeddedRuntime> {
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- node-red is CommonJS with no types
  const RED = require('node-red') as NodeRedModule;
  fs.mkdirSync(options.userDir, { recursive: true });
  const app = express();
  app.disable('x-powered-by');
  const server = http.createServer(app);
  const adminRoot = options.httpAdminRoot ?? '/';
  const settings: Record<string, unknown> = {
    userDir: options.userDir,
    flowFile: options.flowFile ?? 'flows.json',
    nodesDir: [paletteRoot()],
    httpAdminRoot: adminRoot,
    httpNodeRoot: NODE_ROOT,
    uiHost: options.host,
    uiPort: options.port,
    credentialSecret: options.credentialSecret,
    adminAuth: options.adminAuth,
    functionGlobalContext: {},
    // The packaged runtime does not phone home, and so never asks the user about it.
    telemetry: { enabled: false },
    editorTheme: {
      tours: false,
      palette: {},
      projects: { enabled: false },
      ...(options.editorScripts?.length ? { page: { scripts: options.editorScripts } } : {}),
    },
    logging: {
      console: { level: options.logLevel ?? 'info', metrics: false, audit: false },
      ...(options.logHandler
        ? { capture: { level: 'trace', metrics: false, audit: true, handler: () => options.logHandler } }
        : {}),
    },
    ...options.settings,
  };
  if (settings.credentialSecret === undefined) delete settings.credentialSecret;
  if (settings.adminAuth === undefined) delete settings.adminAuth;

  let phase: 'starting' | 'started' | 'stopping' = 'starting';
  const startedAt = Date.now();
  // The released version from Node-RED's package.json: RED.version() adds "-git" whenever a .git folder sits four
  // levels above its runtime, which a clone of this repository has.
  const nodeRedVersion = nodeRedPackageVersion() ?? (typeof RED.version === 'function' ? RED.version() : String(RED.version));

  // Requests in flight, so a stop lets a login callback finish writing its tokens before the nodes close.
  let inFlight = 0;
  let drained: (() => void) | undefined;
  app.use((_req, res, next) => {
    inFlight += 1;
    res.once('close', () => {
      inFlight -= 1;
      if (inFlight === 0) drained?.();
    });
    next();
  });
  app.get('/healthz', (_req, res) => {
    res.set('cache-control', 'no-store');
    if (phase !== 'started') {
      res.status(503).json({ status: phase });
      return;
    }
    res.json({ status: 'ok', nodeRed: nodeRedVersion, uptimeSec: Math.round((Date.now() - startedAt) / 1000) });
  });
  options.beforeNodeRed?.(app);

  RED.init(server, settings);
  const loopbackNamesOnly = loopbackNameRequired(settings.adminAuth, options.host);
  refuseCrossSiteUpgrades(server, {
    paletteRoot: paletteRoot(),
    commsPath: `/${adminRoot.replace(/^\/+|\/+$/g, '')}/comms`.replace(/^\/\//, '/'),
    loopbackNamesOnly,
  });
  app.use(adminRoot, adminCrossSiteGuard({ paletteRoot: paletteRoot(), nodeRoot: NODE_ROOT, loopbackNamesOnly }), RED.httpAdmin);
  app.use(NODE_ROOT, RED.httpNode);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => resolve());
  });
  // RED.start() resolves before the flows are even loaded (@node-red/runtime/lib/index.js start() does not await
  // loadFlows, in 4.1 and 5.0 alike): a GET /flows then answers 400 and /healthz would say ok too early. Healthy
  // from 'flows:started' (again after a deploy that starts flows Node-RED had stopped); return once the flows have
  // started or Node-RED has said they will not (missing types or modules, safe mode, a flow file it cannot load).
  const onFlowsStarted = (): void => {
    if (phase === 'starting') phase = 'started';
  };
  let flowsSettled: () => void = () => undefined;
  const settled = new Promise<void>((resolve) => (flowsSettled = resolve));
  const onRuntimeEvent = (event: { id?: string; payload?: { state?: string; error?: string } }): void => {
    const payload = event.payload;
    if (event.id !== 'runtime-state' || !payload) return;
    if (payload.state === 'stop' || payload.state === 'safe' || (payload.error && payload.error !== 'credentials_load_failed')) flowsSettled();
  };
  RED.events.on('flows:started', onFlowsStarted);
  RED.events.on('flows:started', flowsSettled);
  RED.events.on('runtime-event', onRuntimeEvent);
  try {
    await RED.start();
    await settled;
  } finally {
    RED.events.removeListener('flows:started', flowsSettled);
    RED.events.removeListener('runtime-event', onRuntimeEvent);
  }
  const port = (server.address() as AddressInfo).port;
  // Listening on every address (0.0.0.0, ::), the URL a person on this machine can open is loopback's.
  const shown = isWildcard(options.host) ? '127.0.0.1' : options.host;
  const url = `http://${shown.includes(':') ? `[${shown}]` : shown}:${port}`;

  let stopping: Promise<void> | undefined;
  const stop = async (): Promise<void> => {
    phase = 'stopping';
    RED.events.removeListener('flows:started', onFlowsStarted);
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    server.closeIdleConnections();
    // The health request answering 503 counts itself; anything else still running gets a bounded wait.
    if (inFlight > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, IN_FLIGHT_GRACE_MS);
        drained = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
    await RED.stop();
    server.closeAllConnections();
    await closed;
  };
  return {
    url,
    adminUrl: new URL(adminRoot.endsWith('/') ? adminRoot : `${adminRoot}/`, url).href,
    port,
    server,
    nodeRedVersion,
    getFlows: async () => (await RED.runtime.flows.getFlows({})).flows,
    deploy: async (flows) => {
      await RED.runtime.flows.setFlows({ flows: { flows }, deploymentType: 'full' });
    },
    stop: () => (stopping ??= stop()),
  };
}
