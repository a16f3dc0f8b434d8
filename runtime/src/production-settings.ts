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

/** Where a generated credential secret is kept, owner-only, in the user directory. */
export const GENERATED_SECRET_FILE = '.credential-secret';

export interface CredentialSecret {
  secret: string;
  /** Set when the secret was generated (or read back from the file a previous start generated). */
  generatedFile?: string;
}

/**
 * NODE_RED_CREDENTIAL_SECRET when set. Otherwise, on loopback only, a generated secret kept in
 * <userDir>/.credential-secret (mode 0600), so credentials and logins survive restarts; elsewhere, refused.
 */
export function credentialSecret(env: NodeJS.ProcessEnv, host: string, userDir: string): CredentialSecret {
  const fromEnv = env.NODE_RED_CREDENTIAL_SECRET;
  if (fromEnv) return { secret: fromEnv };
  if (!isLoopback(host)) {
    throw new StartupRefused(
      `Refusing to listen on ${host} without NODE_RED_CREDENTIAL_SECRET. Set it to a long random string (for ` +
        'example the output of `openssl rand -hex 32`) and keep it: it encrypts the stored credentials and ' +
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
    secret = randomBytes(32).toString('hex');
    fs.writeFileSync(file, `${secret}\n`, { mode: 0o600, flag: 'w' });
  }
  // Owner-only even if the file was created by hand or copied with wider permissions.
  fs.chmodSync(file, 0o600);
  return { secret, generatedFile: file };
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
