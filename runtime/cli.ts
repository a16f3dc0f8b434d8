#!/usr/bin/env node
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { startEmbedded } from './embedded';

const HELP = `Usage: node-red-http-oauth2 start [options]

Starts Node-RED with the OAuth2 nodes of node-red-contrib-http-oauth2 loaded.

Options:
  --port <n>        HTTP port (env NR_OAUTH2_PORT, default 1880)
  --host <addr>     address to listen on (env NR_OAUTH2_HOST, default 127.0.0.1)
  --user-dir <dir>  Node-RED user directory (env NR_OAUTH2_USER_DIR, default ./.node-red-oauth2)
  --flows <file>    flow file name in the user directory (env NR_OAUTH2_FLOWS, default flows.json)
  -h, --help        show this help

Environment:
  NODE_RED_CREDENTIAL_SECRET  key for Node-RED's credentials and this package's token store
`;

async function main(argv: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      port: { type: 'string' },
      host: { type: 'string' },
      'user-dir': { type: 'string' },
      flows: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  const command = positionals[0] ?? 'start';
  if (values.help || command !== 'start') {
    process.stdout.write(HELP);
    process.exitCode = values.help ? 0 : 2;
    return;
  }
  const env = process.env;
  const port = Number(values.port ?? env.NR_OAUTH2_PORT ?? 1880);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`--port must be a port number, got ${String(values.port)}`);
  const runtime = await startEmbedded({
    port,
    host: values.host ?? env.NR_OAUTH2_HOST ?? '127.0.0.1',
    userDir: path.resolve(values['user-dir'] ?? env.NR_OAUTH2_USER_DIR ?? '.node-red-oauth2'),
    flowFile: values.flows ?? env.NR_OAUTH2_FLOWS,
    credentialSecret: env.NODE_RED_CREDENTIAL_SECRET || undefined,
  });
  process.stdout.write(`\nNode-RED editor: ${runtime.adminUrl}\nPress Ctrl+C to stop.\n`);
  const stop = (): void => {
    runtime.stop().then(() => process.exit(0), () => process.exit(1));
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

main(process.argv.slice(2)).catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
