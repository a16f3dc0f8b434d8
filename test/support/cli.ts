/**
 * Starts the runtime's command-line program (runtime/dist/cli.js, as `npm start` and the installed bin do) in
 * a child process, and reads what it prints: the editor URL, and with --demo the demo servers' URLs.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as path from 'node:path';
import type { TestRuntime } from './runtime';

export const CLI = path.resolve(__dirname, '..', '..', 'runtime', 'dist', 'cli.js');

export interface CliRun {
  child: ChildProcess;
  stdout(): string;
  stderr(): string;
  /** Exit code (or the signal's name) once the process has ended. */
  exited: Promise<number | string>;
}

/**
 * Runs the CLI with `args`; the environment is the test's minus our variables, plus `env`. `program` is another
 * copy of the command (an installed bin), run with this Node.js.
 */
export function runCli(args: string[], env: Record<string, string> = {}, input?: string, program = CLI): CliRun {
  const base = Object.fromEntries(
    Object.entries(process.env).filter(([k]) => !k.startsWith('NR_OAUTH2_') && !k.startsWith('HTTP_OAUTH2_') && k !== 'NODE_RED_CREDENTIAL_SECRET'),
  );
  const child = spawn(process.execPath, [program, ...args], { env: { ...base, ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
  if (input !== undefined) child.stdin?.end(input);
  else child.stdin?.end();
  const exited = new Promise<number | string>((resolve) => child.once('exit', (code, signal) => resolve(code ?? signal ?? -1)));
  return { child, stdout: () => out, stderr: () => err, exited };
}

export interface StartedCli extends CliRun {
  /** http://127.0.0.1:PORT/ */
  adminUrl: string;
  /** With --demo: the demo servers. */
  demo?: { issuer: string; apiUrl: string };
  /** fetch against the admin API (`token` adds a bearer token), shaped like TestRuntime.admin. */
  admin: TestRuntime['admin'];
  /** Sends `signal` and resolves with the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | string>;
}

/** Starts `node-red-http-oauth2 start <args>` and resolves once it printed "Press Ctrl+C to stop." */
export async function startCli(args: string[], env: Record<string, string> = {}, timeoutMs = 20_000, program = CLI): Promise<StartedCli> {
  const run = runCli(['start', ...args], env, undefined, program);
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      run.child.kill('SIGKILL');
      reject(new Error(`the CLI did not start in ${timeoutMs} ms:\n${run.stdout()}\n${run.stderr()}`));
    }, timeoutMs);
    const check = (): void => {
      if (run.stdout().includes('Press Ctrl+C to stop.')) {
        clearTimeout(timer);
        resolve();
      }
    };
    run.child.stdout?.on('data', check);
    void run.exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`the CLI exited (${code}) before it started:\n${run.stdout()}\n${run.stderr()}`));
    });
  });
  const text = run.stdout();
  const adminUrl = /Node-RED editor: (\S+)/.exec(text)?.[1];
  if (!adminUrl) throw new Error(`no editor URL printed:\n${text}`);
  const issuer = /authorization server\s+(\S+)/.exec(text)?.[1];
  const apiUrl = /records API\s+(\S+)/.exec(text)?.[1];
  return {
    ...run,
    adminUrl,
    demo: issuer && apiUrl ? { issuer, apiUrl } : undefined,
    admin(pathname, init = {}) {
      const headers = new Headers(init.headers);
      if (init.token) headers.set('authorization', `Bearer ${init.token}`);
      return fetch(new URL(pathname.replace(/^\//, ''), adminUrl), { ...init, headers });
    },
    async stop(signal = 'SIGTERM') {
      if (run.child.exitCode === null && run.child.signalCode === null) {
        const timer = setTimeout(() => run.child.kill('SIGKILL'), 15_000);
        run.child.kill(signal);
        const code = await run.exited;
        clearTimeout(timer);
        return code;
      }
      return run.exited;
    },
  };
}
