#!/usr/bin/env node
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import bcrypt from 'bcryptjs';
import { LOG_LEVELS, paletteRoot, startEmbedded, type EmbeddedRuntime, type LogLevel } from './embedded';
import { adminLogin, credentialSecret, isLoopback, isWildcard, MIN_SECRET_LENGTH, newCredentialSecret, ownerOnlyUserDir, StartupRefused } from './production-settings';
import { ioredisLoadable, redisHostPort, redisStoreSetting, type RedisStoreSetting } from './redis-settings';
import { startDemoServices, type DemoServices } from './demo/demo';

const HELP = `Usage: node-red-http-oauth2 start [options]
       node-red-http-oauth2 hash-password
       node-red-http-oauth2 new-secret
       node-red-http-oauth2 --help

start          Starts Node-RED (embedded, no separate install) with the nodes of node-red-contrib-http-oauth2.
hash-password  Reads a password from the terminal (not shown) or from stdin and prints its bcrypt hash, the
               value of NR_OAUTH2_ADMIN_PASSWORD_HASH.
new-secret     Prints a new random value for NODE_RED_CREDENTIAL_SECRET (32 random bytes, hex).

Options of start (each has an environment variable; the option wins):
  --port <n>                  HTTP port of the editor, the admin API and /api.  NR_OAUTH2_PORT, default 1880
  --host <addr>               address to listen on. Anything but a loopback address (127.0.0.1, ::1,
                              localhost) needs NODE_RED_CREDENTIAL_SECRET and an admin login.
                                                                  NR_OAUTH2_HOST, default 127.0.0.1
  --user-dir <dir>            Node-RED user directory: flows, credentials, token and trigger stores.
                                                                  NR_OAUTH2_USER_DIR, default
                              ./.node-red-oauth2 (./.node-red-oauth2-demo with --demo)
  --flows <file>              flow file name in the user directory.  NR_OAUTH2_FLOWS, default flows.json
  --demo                      also start a demo authorization server and records API on 127.0.0.1 (ports
                              --port+1 and --port+2 on the first start, kept afterwards), and deploy a demo
                              flow if the user directory has none yet. Loopback only.
                                                                  NR_OAUTH2_DEMO=1
  --log-level <level>         fatal, error, warn, info, debug or trace.  NR_OAUTH2_LOG_LEVEL, default info
  --redis <url>               keep tokens and trigger state in Redis, shared by every instance started with
                              the same URL, prefix, flows and NODE_RED_CREDENTIAL_SECRET (required then):
                              one token refresh per connection and one poller per trigger in the whole
                              group. redis://[user:password@]host:port[/db], rediss:// for TLS.
                                                                  HTTP_OAUTH2_REDIS_URL, default: none
                              (encrypted files in the user directory, one instance)
  --redis-prefix <prefix>     prefix of every Redis key: one per group of instances running the same flows.
                                                                  HTTP_OAUTH2_REDIS_PREFIX, default http-oauth2:
  --insecure-no-admin-auth    allow a non-loopback address without an admin login (only when something in
                              front of this runtime authenticates every request).
                                                                  NR_OAUTH2_INSECURE_NO_ADMIN_AUTH=1
  -h, --help                  show this help

Environment only:
  NODE_RED_CREDENTIAL_SECRET     key of Node-RED's credential file and of this package's token and trigger
                                 stores. Without it, on loopback only, a generated key is kept owner-only in
                                 <user-dir>/.credential-secret; keep the same key for the life of the user dir.
                                 Beyond loopback or with Redis it must have at least ${MIN_SECRET_LENGTH} characters and not be
                                 a placeholder such as "changeme" (make one with node-red-http-oauth2 new-secret).
  NR_OAUTH2_ADMIN_USER           admin login: user name ...
  NR_OAUTH2_ADMIN_PASSWORD_HASH  ... and bcrypt hash of its password (node-red-http-oauth2 hash-password).
                                 With both set, the editor and the admin API require that login.
  HTTP_OAUTH2_REDIS_TRIGGER_LEASE_MS  with Redis: a trigger whose polling instance died is taken over by
                                 another within this time. Default 3000.
  HTTP_OAUTH2_REDIS_LOCK_TTL_MS  with Redis: how long a refresh lock outlives an instance that died holding it
                                 (its holder extends it while it renews). Default 6000.
  HTTP_OAUTH2_REDIS_COMMAND_TIMEOUT_MS  with Redis: a Redis command that takes longer fails with a clear error
                                 instead of hanging. Default 3000.

The user directory and the files Node-RED and the nodes write there are kept owner-only (mode 0700 / 0600).

GET /healthz answers 200 {"status":"ok","nodeRed":"<version>","uptimeSec":n} once the flows run, 503 before
and while stopping; it needs no login and tells nothing else. SIGINT or SIGTERM stops cleanly: the nodes close
and the token and trigger stores are written before the process exits with code 0.
`;

interface StartOptions {
  port: number;
  host: string;
  userDir: string;
  flowFile: string;
  demo: boolean;
  logLevel: LogLevel;
  insecureNoAdminAuth: boolean;
  /** Node-RED's httpOAuth2.store setting when Redis is configured. */
  redis?: RedisStoreSetting;
}

const truthy = (value: string | undefined): boolean => value !== undefined && /^(1|true|yes|on)$/i.test(value.trim());

function parseStartOptions(values: Record<string, string | boolean | undefined>, env: NodeJS.ProcessEnv): StartOptions {
  const text = (name: string, envName: string): string | undefined => {
    const value = values[name];
    return typeof value === 'string' ? value : env[envName] || undefined;
  };
  const flag = (name: string, envName: string): boolean => values[name] === true || truthy(env[envName]);

  const portText = text('port', 'NR_OAUTH2_PORT') ?? '1880';
  const port = Number(portText);
  if (!/^\d+$/.test(portText) || port > 65535) throw new StartupRefused(`--port must be a port number (0-65535), got "${portText}".`);
  const logLevel = (text('log-level', 'NR_OAUTH2_LOG_LEVEL') ?? 'info') as LogLevel;
  if (!LOG_LEVELS.includes(logLevel)) throw new StartupRefused(`--log-level must be one of ${LOG_LEVELS.join(', ')}, got "${logLevel}".`);
  const demo = flag('demo', 'NR_OAUTH2_DEMO');
  const host = text('host', 'NR_OAUTH2_HOST') ?? '127.0.0.1';
  if (demo && !isLoopback(host)) {
    throw new StartupRefused(`The demo runs on loopback only (its account and password are public); --host is ${host}.`);
  }
  return {
    port,
    host,
    userDir: path.resolve(text('user-dir', 'NR_OAUTH2_USER_DIR') ?? (demo ? '.node-red-oauth2-demo' : '.node-red-oauth2')),
    flowFile: text('flows', 'NR_OAUTH2_FLOWS') ?? 'flows.json',
    demo,
    logLevel,
    insecureNoAdminAuth: flag('insecure-no-admin-auth', 'NR_OAUTH2_INSECURE_NO_ADMIN_AUTH'),
    redis: redisStoreSetting({ url: text('redis', 'HTTP_OAUTH2_REDIS_URL'), keyPrefix: text('redis-prefix', 'HTTP_OAUTH2_REDIS_PREFIX') }, env),
  };
}

/** Whether the user directory has flows already (the demo never overwrites them). */
function hasFlows(userDir: string, flowFile: string): boolean {
  try {
    const flows = JSON.parse(fs.readFileSync(path.join(userDir, flowFile), 'utf8')) as unknown;
    return !Array.isArray(flows) || flows.length > 0;
  } catch (err) {
    // A flow file that exists but does not parse is the user's to fix, not ours to overwrite.
    return (err as NodeJS.ErrnoException).code !== 'ENOENT';
  }
}

async function start(options: StartOptions): Promise<void> {
  const env = process.env;
  const secret = credentialSecret(env, options.host, options.userDir, options.redis !== undefined);
  const admin = adminLogin(env, options.host, options.insecureNoAdminAuth);
  // Flows, credentials, the editor's sessions (.sessions.json) and the stores: owner-only, now and when rewritten.
  process.umask(0o077);
  ownerOnlyUserDir(options.userDir);
  const say = (line = ''): boolean => process.stdout.write(`${line}\n`);
  const warn = (line: string): boolean => process.stderr.write(`Warning: ${line}\n`);

  if (secret.generatedFile) {
    warn(
      `NODE_RED_CREDENTIAL_SECRET is not set: using a generated secret kept owner-only in ${secret.generatedFile}. ` +
        'Fine on this machine; in production set the variable (and keep it), since losing the key loses the ' +
        'stored credentials and logins.',
    );
  }
  if (secret.weakness) {
    warn(`NODE_RED_CREDENTIAL_SECRET is weak (${secret.weakness}): allowed on loopback only. Make a strong one with \`node-red-http-oauth2 new-secret\`.`);
  }
  if (!admin.adminAuth) {
    warn(
      isLoopback(options.host)
        ? `no admin login (NR_OAUTH2_ADMIN_USER / NR_OAUTH2_ADMIN_PASSWORD_HASH): anyone on this machine can open the editor.`
        : `no admin login and --insecure-no-admin-auth: the editor on ${options.host} is open to anyone who reaches it.`,
    );
  }

  if (options.redis && !ioredisLoadable(paletteRoot())) {
    throw new StartupRefused('--redis needs the ioredis package next to node-red-contrib-http-oauth2: reinstall the runtime (npm install).');
  }

  let demo: DemoServices | undefined;
  if (options.demo) {
    const next = (offset: number): number => (options.port === 0 ? 0 : options.port + offset);
    demo = await startDemoServices(options.userDir, { auth: next(1), api: next(2) });
  }
  let runtime: EmbeddedRuntime;
  const deployDemo = demo !== undefined && !hasFlows(options.userDir, options.flowFile);
  try {
    runtime = await startEmbedded({
      port: options.port,
      host: options.host,
      userDir: options.userDir,
      flowFile: options.flowFile,
      credentialSecret: secret.secret,
      adminAuth: admin.adminAuth,
      logLevel: options.logLevel,
      settings: options.redis ? { httpOAuth2: { store: options.redis } } : undefined,
      // The demo opens on the Debug sidebar, where its messages appear.
      editorScripts: demo ? [path.join(__dirname, '..', 'assets', 'demo-editor.js')] : undefined,
    });
  } catch (err) {
    await demo?.close();
    if ((err as NodeJS.ErrnoException).code === 'EADDRINUSE') {
      throw new StartupRefused(`Port ${options.port} on ${options.host} is in use: pick another with --port.`);
    }
    throw err;
  }
  if (demo) {
    await demo.allowRuntime(runtime.adminUrl);
    if (deployDemo) await runtime.deploy(demo.flow(runtime.adminUrl));
  }

  say();
  say(`Node-RED editor: ${runtime.adminUrl}${admin.username ? `  (log in as ${admin.username})` : ''}`);
  if (isWildcard(options.host)) {
    const elsewhere = new URL(runtime.adminUrl);
    elsewhere.hostname = os.hostname();
    say(`                 listening on all addresses (${options.host}); from another machine: ${elsewhere.href}`);
  }
  say(`Health:          ${runtime.url}/healthz`);
  say(`User directory:  ${options.userDir}`);
  if (options.redis) {
    // host:port only: the URL may carry a password.
    say(`Shared store:    Redis ${redisHostPort(options.redis.url)}, key prefix ${options.redis.keyPrefix ?? 'http-oauth2:'}`);
  }
  if (demo) {
    say();
    say('Demo, on this machine only (loopback):');
    say(`  authorization server  ${demo.issuer}`);
    say(`  records API           ${demo.apiUrl}  (what the flow sent on: ${demo.apiUrl}/received)`);
    say(`  demo account          username: ${demo.account.id}   password: ${demo.account.password}`);
    say(
      deployDemo
        ? '  The "OAuth2 demo" flow is deployed. Open the editor, double-click the "demo records changed" node, press the ' +
            'pencil next to its Connection ("Demo provider"), press Log in, sign in, then Update, Done and Deploy.'
        : '  The user directory has flows already: they were left as they are.',
    );
  }
  say();
  say('Press Ctrl+C to stop.');

  let stopping = false;
  const stop = (signal: NodeJS.Signals): void => {
    if (stopping) {
      process.stderr.write(`${signal} again: exiting without waiting.\n`);
      process.exit(1);
    }
    stopping = true;
    say(`${signal}: stopping (flows closing, stores being written)...`);
    runtime
      .stop()
      .then(() => demo?.close())
      .then(
        () => {
          say('Stopped.');
          process.exit(0);
        },
        (err: unknown) => {
          process.stderr.write(`Stop failed: ${err instanceof Error ? err.message : String(err)}\n`);
          process.exit(1);
        },
      );
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

/** Reads the password without echo on a terminal (asked twice), or the whole of stdin otherwise. */
async function readPassword(): Promise<string> {
  const stdin = process.stdin;
  if (!stdin.isTTY) {
    const chunks: Buffer[] = [];
    for await (const chunk of stdin as AsyncIterable<Buffer>) chunks.push(chunk);
    return Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '');
  }
  const ask = (prompt: string): Promise<string> =>
    new Promise((resolve, reject) => {
      process.stderr.write(prompt);
      let typed = '';
      stdin.setRawMode(true);
      stdin.resume();
      stdin.setEncoding('utf8');
      const onData = (data: string): void => {
        for (const ch of data) {
          if (ch === '\r' || ch === '\n' || ch === '\u0004') {
            finish();
            resolve(typed);
            return;
          }
          if (ch === '\u0003') {
            finish();
            reject(new Error('Cancelled.'));
            return;
          }
          if (ch === '\u007f' || ch === '\b') typed = typed.slice(0, -1);
          else typed += ch;
        }
      };
      const finish = (): void => {
        stdin.removeListener('data', onData);
        stdin.setRawMode(false);
        stdin.pause();
        process.stderr.write('\n');
      };
      stdin.on('data', onData);
    });
  const first = await ask('Password: ');
  const second = await ask('Repeat it: ');
  if (first !== second) throw new StartupRefused('The two passwords differ.');
  return first;
}

async function hashPassword(): Promise<void> {
  const password = await readPassword();
  if (!password) throw new StartupRefused('The password is empty.');
  process.stdout.write(`${bcrypt.hashSync(password, 10)}\n`);
}

async function main(argv: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      port: { type: 'string' },
      host: { type: 'string' },
      'user-dir': { type: 'string' },
      flows: { type: 'string' },
      demo: { type: 'boolean' },
      'log-level': { type: 'string' },
      'insecure-no-admin-auth': { type: 'boolean' },
      redis: { type: 'string' },
      'redis-prefix': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  const command = positionals[0] ?? 'start';
  if (values.help || command === 'help') {
    process.stdout.write(HELP);
    return;
  }
  if (command === 'hash-password') return hashPassword();
  if (command === 'new-secret') {
    process.stdout.write(`${newCredentialSecret()}\n`);
    return;
  }
  if (command !== 'start' || positionals.length > 1) {
    process.stderr.write(`Unknown command: ${positionals.join(' ')}\n\n${HELP}`);
    process.exitCode = 2;
    return;
  }
  await start(parseStartOptions(values, process.env));
}

main(process.argv.slice(2)).catch((err: unknown) => {
  const known = err instanceof StartupRefused || (err instanceof TypeError && (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS'));
  process.stderr.write(`${known ? '' : 'Failed to start: '}${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(known ? 2 : 1);
});
