import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import express from 'express';

/** Root of this package (its package.json has the `node-red` section Node-RED loads the nodes from). */
export const PACKAGE_ROOT = path.resolve(__dirname, '..', '..');

export interface EmbeddedOptions {
  port: number;
  host: string;
  userDir: string;
  flowFile?: string;
  credentialSecret?: string | false;
  httpAdminRoot?: string;
  adminAuth?: unknown;
  logLevel?: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace';
  /** Receives every log record (tests use it to scan for secrets). */
  logHandler?: (record: { level: number; msg?: unknown; [key: string]: unknown }) => void;
  /** Extra Node-RED settings. */
  settings?: Record<string, unknown>;
}

/** The subset of the node-red module used to embed it. */
interface NodeRedModule {
  init(server: http.Server, settings: Record<string, unknown>): void;
  start(): Promise<void>;
  stop(): Promise<void>;
  httpAdmin: express.Express;
  httpNode: express.Express;
}

export interface EmbeddedRuntime {
  url: string;
  adminUrl: string;
  port: number;
  server: http.Server;
  stop(): Promise<void>;
}

/**
 * Starts Node-RED embedded in Express with this package's nodes loaded from PACKAGE_ROOT. Node-RED keeps
 * module-level state, so a process runs one embedded runtime at a time (tests restart it in a child process).
 */
export async function startEmbedded(options: EmbeddedOptions): Promise<EmbeddedRuntime> {
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- node-red is CommonJS with no types
  const RED = require('node-red') as NodeRedModule;
  fs.mkdirSync(options.userDir, { recursive: true });
  const app = express();
  const server = http.createServer(app);
  const adminRoot = options.httpAdminRoot ?? '/';
  const settings: Record<string, unknown> = {
    userDir: options.userDir,
    flowFile: options.flowFile ?? 'flows.json',
    nodesDir: [PACKAGE_ROOT],
    httpAdminRoot: adminRoot,
    httpNodeRoot: '/api',
    uiHost: options.host,
    uiPort: options.port,
    credentialSecret: options.credentialSecret,
    adminAuth: options.adminAuth,
    functionGlobalContext: {},
    // The packaged runtime does not phone home, and so never asks the user about it.
    telemetry: { enabled: false },
    editorTheme: { tours: false, palette: {}, projects: { enabled: false } },
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
  RED.init(server, settings);
  app.use(adminRoot, RED.httpAdmin);
  app.use('/api', RED.httpNode);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => resolve());
  });
  await RED.start();
  const port = (server.address() as AddressInfo).port;
  const url = `http://${options.host.includes(':') ? `[${options.host}]` : options.host}:${port}`;
  return {
    url,
    adminUrl: new URL(adminRoot.endsWith('/') ? adminRoot : `${adminRoot}/`, url).href,
    port,
    server,
    stop: async () => {
      await RED.stop();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
    },
  };
}
