import { fork, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

export interface LogLine {
  level: number;
  text: string;
  node?: string;
  id?: string;
  /** Audit lines (level 98): Node-RED's event name, such as permission.fail. */
  event?: string;
}

export interface RuntimeOptions {
  userDir?: string;
  /** Fixed port (a restart keeps the redirect URI registered at the provider). Default: any free port. */
  port?: number;
  /** Default 'test-credential-secret'; null leaves it unset, so Node-RED generates one (`_credentialSecret`). */
  credentialSecret?: string | false | null;
  httpAdminRoot?: string;
  /** Turn Node-RED's admin authentication on with one admin user (password given) and one read-only user. */
  adminAuth?: { adminPassword: string; readerPassword: string };
  settings?: Record<string, unknown>;
}

export interface TestRuntime {
  url: string;
  adminUrl: string;
  port: number;
  userDir: string;
  /** The child process running Node-RED (for memory readings). */
  pid: number;
  logs: LogLine[];
  /** Unhandled rejections and uncaught exceptions reported by the child: must stay empty. */
  crashes: string[];
  /** fetch against the admin API with the admin token when adminAuth is on. */
  admin(pathname: string, init?: RequestInit & { token?: string | null }): Promise<Response>;
  deploy(flows: unknown[]): Promise<void>;
  /**
   * Logs in to the admin API as `username` and returns its bearer token (adminAuth only). `scope` defaults to
   * '*'; a read-only user must ask for 'read' (Node-RED refuses a scope wider than the user's permissions).
   */
  adminToken(username: string, password: string, scope?: string): Promise<string>;
  stop(): Promise<void>;
  kill(): Promise<void>;
}

const HOST_SCRIPT = path.join(__dirname, 'runtime-host.js');

/** Bcrypt hash of a password, from Node-RED's own bcryptjs (a dependency of node-red). */
function bcryptHash(password: string): string {
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- bcryptjs ships with node-red, untyped here
  const bcrypt = require('bcryptjs') as { hashSync(s: string, rounds: number): string };
  return bcrypt.hashSync(password, 8);
}

export function tempUserDir(prefix = 'nr-oauth2-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

/**
 * Starts an embedded Node-RED (this package's dist build) in a child process. With a fixed port (a restart),
 * a port still held by the previous process or taken meanwhile by another test is retried for a few seconds.
 */
export async function startRuntime(options: RuntimeOptions = {}): Promise<TestRuntime> {
  for (let attempt = 1; ; attempt += 1) {
    try {
      return await startRuntimeOnce(options);
    } catch (err) {
      if (!options.port || attempt >= 20 || !/EADDRINUSE/.test(String(err))) throw err;
      await new Promise((r) => setTimeout(r, 250));
    }
  }
}

async function startRuntimeOnce(options: RuntimeOptions): Promise<TestRuntime> {
  const userDir = options.userDir ?? tempUserDir();
  const hostOptions: Record<string, unknown> = {
    port: options.port ?? 0,
    host: '127.0.0.1',
    userDir,
    httpAdminRoot: options.httpAdminRoot ?? '/',
    credentialSecret: options.credentialSecret === null ? undefined : (options.credentialSecret ?? 'test-credential-secret'),
    settings: options.settings,
  };
  if (options.adminAuth) {
    hostOptions.adminAuth = {
      type: 'credentials',
      users: [
        { username: 'admin', password: bcryptHash(options.adminAuth.adminPassword), permissions: '*' },
        { username: 'reader', password: bcryptHash(options.adminAuth.readerPassword), permissions: 'read' },
      ],
    };
  }
  const child: ChildProcess = fork(HOST_SCRIPT, [], {
    env: { ...process.env, NR_HOST_OPTIONS: JSON.stringify(hostOptions) },
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
  });
  const logs: LogLine[] = [];
  const crashes: string[] = [];
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  child.stdout?.on('data', () => undefined);
  const ready = await new Promise<{ url: string; adminUrl: string; port: number }>((resolve, reject) => {
    const onExit = (code: number | null): void => reject(new Error(`runtime exited (${code}) before ready: ${stderr.slice(-2000)}`));
    child.once('exit', onExit);
    child.on('message', (message: { type: string; [key: string]: unknown }) => {
      if (message.type === 'ready') {
        child.removeListener('exit', onExit);
        resolve(message as unknown as { url: string; adminUrl: string; port: number });
      } else if (message.type === 'log') {
        logs.push(message as unknown as LogLine);
      } else if (message.type === 'unhandledRejection' || message.type === 'uncaughtException') {
        crashes.push(`${message.type}: ${String(message.text)}`);
      } else if (message.type === 'error') {
        reject(new Error(String(message.message)));
      }
    });
  });

  let defaultToken: string | null = null;
  const runtime: TestRuntime = {
    ...ready,
    userDir,
    pid: child.pid ?? 0,
    logs,
    crashes,
    async adminToken(username, password, scope = '*') {
      const res = await fetch(new URL('auth/token', ready.adminUrl), {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ client_id: 'node-red-admin', grant_type: 'password', scope, username, password }),
      });
      if (!res.ok) throw new Error(`admin login failed: ${res.status}`);
      return ((await res.json()) as { access_token: string }).access_token;
    },
    async admin(pathname, init = {}) {
      const headers = new Headers(init.headers);
      const token = init.token === undefined ? defaultToken : init.token;
      if (token) headers.set('authorization', `Bearer ${token}`);
      return fetch(new URL(pathname.replace(/^\//, ''), ready.adminUrl), { ...init, headers });
    },
    async deploy(flows) {
      const res = await runtime.admin('flows', {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'node-red-deployment-type': 'full', 'node-red-api-version': 'v1' },
        body: JSON.stringify(flows),
      });
      if (res.status !== 204 && res.status !== 200) throw new Error(`deploy failed: ${res.status} ${await res.text()}`);
    },
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
        child.once('exit', () => {
          clearTimeout(timer);
          resolve();
        });
        child.send({ type: 'stop' });
      }),
    kill: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGKILL');
      }),
  };
  if (options.adminAuth) defaultToken = await runtime.adminToken('admin', options.adminAuth.adminPassword);
  return runtime;
}
