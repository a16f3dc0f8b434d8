/**
 * The settings that decide whether a runtime is safe to expose: the credential secret and the admin login.
 * Both come from the environment; on a non-loopback address the runtime refuses to start without them rather
 * than run an editor anyone can open, or keep credentials under a key nobody chose.
 */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';

/** The runtime cannot start as configured; the message says what to set. */
export class StartupRefused extends Error {
  override readonly name = 'StartupRefused';
}

/** Whether `host` only accepts connections from this machine. */
export function isLoopback(host: string): boolean {
  const h = host.trim().toLowerCase().replace(/^\[|\]$/g, '');
  if (h === 'localhost' || h.endsWith('.localhost')) return true;
  if (net.isIPv4(h)) return h.startsWith('127.');
  if (net.isIPv6(h)) return h === '::1' || /^::ffff:127\./.test(h);
  return false;
}

/** An address meaning "every interface" (0.0.0.0, ::): one to listen on, not one a browser can open. */
export function isWildcard(host: string): boolean {
  const h = host.trim().replace(/^\[|\]$/g, '');
  return h === '0.0.0.0' || h === '::' || /^(0{1,4}:){7}0{1,4}$/.test(h);
}

/** Where a generated credential secret is kept, owner-only, in the user directory. */
export const GENERATED_SECRET_FILE = '.credential-secret';

export interface CredentialSecret {
  secret: string;
  /** Why NODE_RED_CREDENTIAL_SECRET is weak, when it is and the runtime allowed it (loopback, no Redis). */
  weakness?: string;
  /** Set when the secret was generated (or read back from the file a previous start generated). */
  generatedFile?: string;
}

/**
 * NODE_RED_CREDENTIAL_SECRET when set. Otherwise, on loopback only, a generated secret kept in
 * <userDir>/.credential-secret (mode 0600), so credentials and logins survive restarts; elsewhere, refused.
 */
export function credentialSecret(env: NodeJS.ProcessEnv, host: string, userDir: string, shared = false): CredentialSecret {
  const fromEnv = env.NODE_RED_CREDENTIAL_SECRET;
  if (fromEnv) {
    const weakness = secretWeakness(fromEnv);
    if (!weakness) return { secret: fromEnv };
    if (!isLoopback(host) || shared) {
      throw new StartupRefused(
        `Refusing to ${shared ? 'share tokens through Redis' : `listen on ${host}`} with a weak NODE_RED_CREDENTIAL_SECRET: ` +
          `${weakness}. It encrypts the stored credentials and logins; make one with \`node-red-http-oauth2 new-secret\` ` +
          '(or `openssl rand -hex 32`) and keep it.',
      );
    }
    return { secret: fromEnv, weakness };
  }
  if (!isLoopback(host)) {
    throw new StartupRefused(
      `Refusing to listen on ${host} without NODE_RED_CREDENTIAL_SECRET. Set it to a long random string (for ` +
        'example the output of `node-red-http-oauth2 new-secret` or `openssl rand -hex 32`) and keep it: it encrypts the stored credentials and ' +
        'logins. A generated secret is only allowed on a loopback address (127.0.0.1).',
    );
  }
  const file = path.join(userDir, GENERATED_SECRET_FILE);
  fs.mkdirSync(userDir, { recursive: true });
  let secret = '';
  try {
    secret = fs.readFileSync(file, 'utf8').trim();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  if (!secret) {
    secret = newCredentialSecret();
    fs.writeFileSync(file, `${secret}\n`, { mode: 0o600, flag: 'w' });
  }
  // Owner-only even if the file was created by hand or copied with wider permissions.
  fs.chmodSync(file, 0o600);
  return { secret, generatedFile: file };
}

/** The shortest credential secret accepted where it matters (a public address, or shared through Redis). */
export const MIN_SECRET_LENGTH = 16;

/** Values people paste from examples; compared in lower case without separators, digits at the end ignored. */
const PLACEHOLDER_SECRETS = new Set([
  'changeme', 'changethis', 'changeit', 'replaceme', 'secret', 'mysecret', 'yoursecret', 'yoursecrethere', 'supersecret',
  'password', 'mypassword', 'credentialsecret', 'mycredentialsecret', 'yourcredentialsecret', 'noderedcredentialsecret',
  'nodered', 'noderedsecret', 'default', 'example', 'examplesecret', 'test', 'testsecret', 'letmein', 'qwerty',
  'abcdefghijklmnop', 'abcdefghijklmnopqrstuvwxyz', 'aaaaaaaaaaaaaaaa',
]);

/** Why `secret` is too weak to encrypt credentials on a public address, or undefined when it is not. */
export function secretWeakness(secret: string): string | undefined {
  if (secret.length < MIN_SECRET_LENGTH) return `it has ${secret.length} characters, at least ${MIN_SECRET_LENGTH} are needed`;
  const normalized = secret.toLowerCase().replace(/[^a-z0-9]/g, '').replace(/\d+$/, '');
  if (PLACEHOLDER_SECRETS.has(normalized)) return 'it is a well-known placeholder value';
  if (new Set(secret).size < 8) return 'it repeats too few different characters (fewer than 8)';
  return undefined;
}

/** A new credential secret: 32 random bytes, hex. */
export function newCredentialSecret(): string {
  return randomBytes(32).toString('hex');
}

/**
 * The user directory and the files at its top (Node-RED's flows, credentials, `.sessions.json` with the editor's
 * session tokens, `.config.*.json`, the package's stores) owner-only. Node-RED writes through a temporary file and
 * a rename, so with the process umask at 077 every later write is owner-only as well.
 */
export function ownerOnlyUserDir(userDir: string): void {
  fs.mkdirSync(userDir, { recursive: true, mode: 0o700 });
  fs.chmodSync(userDir, 0o700);
  for (const entry of fs.readdirSync(userDir, { withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const file = path.join(userDir, entry.name);
    if ((fs.statSync(file).mode & 0o077) !== 0) fs.chmodSync(file, 0o600);
  }
}

export interface AdminLogin {
  /** Node-RED's adminAuth setting, or undefined when the editor is open (loopback, or explicitly insecure). */
  adminAuth?: { type: 'credentials'; users: Array<{ username: string; password: string; permissions: '*' }>; sessionExpiryTime: number };
  username?: string;
}

const BCRYPT_HASH = /^\$2[aby]\$\d{2}\$[./A-Za-z0-9]{53}$/;

/**
 * NR_OAUTH2_ADMIN_USER and NR_OAUTH2_ADMIN_PASSWORD_HASH (a bcrypt hash) turn on Node-RED's admin login.
 * Without them the editor and its admin API are open: allowed on loopback, refused elsewhere unless
 * `insecureNoAdminAuth` says the operator protects it some other way.
 */
export function adminLogin(env: NodeJS.ProcessEnv, host: string, insecureNoAdminAuth: boolean): AdminLogin {
  const username = env.NR_OAUTH2_ADMIN_USER?.trim();
  const hash = env.NR_OAUTH2_ADMIN_PASSWORD_HASH?.trim();
  if (username || hash) {
    if (!username || !hash) {
      throw new StartupRefused('Set both NR_OAUTH2_ADMIN_USER and NR_OAUTH2_ADMIN_PASSWORD_HASH, or neither.');
    }
    if (!BCRYPT_HASH.test(hash)) {
      throw new StartupRefused(
        'NR_OAUTH2_ADMIN_PASSWORD_HASH is not a bcrypt hash ($2b$...). Make one with ' +
          '`node-red-http-oauth2 hash-password` (reads the password from the terminal without showing it).',
      );
    }
    return {
      username,
      adminAuth: { type: 'credentials', users: [{ username, password: hash, permissions: '*' }], sessionExpiryTime: 86400 },
    };
  }
  if (!isLoopback(host) && !insecureNoAdminAuth) {
    throw new StartupRefused(
      `Refusing to listen on ${host} with the editor open to anyone. Set NR_OAUTH2_ADMIN_USER and ` +
        'NR_OAUTH2_ADMIN_PASSWORD_HASH (make the hash with `node-red-http-oauth2 hash-password`), or pass ' +
        '--insecure-no-admin-auth if something in front of this runtime already authenticates every request.',
    );
  }
  return {};
}
