import * as fs from 'node:fs';
import * as path from 'node:path';
import type { AuthServer } from './auth-server';
import type { LogLine } from './runtime';

/**
 * Everything secret that a test run issues or configures, and everywhere it could leak to; the leak-scan test
 * at the end of the e2e suite searches every place for every secret.
 */
const secrets = new Set<string>();
const userDirs = new Set<string>();
const logSources: LogLine[][] = [];
const texts: string[] = [];

const TOKEN_EVENTS = [
  'access_token.saved',
  'access_token.issued',
  'refresh_token.saved',
  'authorization_code.saved',
  'client_credentials.saved',
  'client_credentials.issued',
  'device_code.saved',
];

/** Records every token, code and device code the server issues, and the clients' secrets. */
export function watchAuthServer(auth: AuthServer): void {
  for (const event of TOKEN_EVENTS) {
    auth.provider.on(event, (model: unknown) => {
      const jti = (model as { jti?: unknown }).jti;
      if (typeof jti === 'string' && jti.length >= 16) secrets.add(jti);
    });
  }
  auth.provider.on('grant.success', (ctx: unknown) => {
    const params = (ctx as { oidc?: { params?: Record<string, unknown> } }).oidc?.params;
    const verifier = params?.code_verifier;
    if (typeof verifier === 'string' && verifier.length >= 16) secrets.add(verifier);
  });
  for (const client of [auth.clients.web, auth.clients.webPost, auth.clients.service]) secrets.add(client.clientSecret);
  secrets.add(auth.account.password);
}

/** Every secret recorded so far (tokens the watched servers issued, client secrets, the account's password). */
export function watchedSecrets(): ReadonlySet<string> {
  return secrets;
}

export function addSecret(value: string | undefined): void {
  if (value && value.length >= 8) secrets.add(value);
}

export function watchUserDir(dir: string): void {
  userDirs.add(dir);
}

export function watchLogs(logs: LogLine[]): void {
  logSources.push(logs);
}

/** Text that left the runtime: HTTP answers of flows, admin route answers, callback pages. */
export function watchText(text: string): void {
  texts.push(text);
}

function filesUnder(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  const out: string[] = [];
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) out.push(...filesUnder(full));
    else if (entry.isFile()) out.push(full);
  }
  return out;
}

export interface LeakReport {
  secrets: number;
  files: number;
  logLines: number;
  texts: number;
  hits: string[];
}

/** Searches every watched file, log line and text for every watched secret. */
export function scanForLeaks(): LeakReport {
  const hits: string[] = [];
  const all = [...secrets];
  const check = (where: string, content: string): void => {
    for (const secret of all) if (content.includes(secret)) hits.push(`${where} contains a secret (${secret.slice(0, 4)}…)`);
  };
  let files = 0;
  for (const dir of userDirs) {
    for (const file of filesUnder(dir)) {
      files += 1;
      check(file, fs.readFileSync(file).toString('latin1'));
    }
  }
  let logLines = 0;
  for (const logs of logSources) {
    for (const line of logs) {
      logLines += 1;
      check(`log line "${line.text.slice(0, 60)}"`, line.text);
    }
  }
  texts.forEach((text, i) => check(`output ${i}`, text));
  return { secrets: all.length, files, logLines, texts: texts.length, hits };
}
