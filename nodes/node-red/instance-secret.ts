import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as os from 'node:os';
import { journalPath, writeFileAtomic } from '../lib/sealed/encrypted-json-file';
import { resolveStoreSecret } from '../lib/sealed/store-secret';
import { resealFile } from '../lib/sealed/reseal';
import type { NodeAPI } from './types';

export const STORE_KEY_FILE = '.http-oauth2-tokens.key';
/**
 * An owner-only copy of Node-RED's generated `_credentialSecret`, kept while that secret seals the package's
 * files. Node-RED deletes its own copy from .config.runtime.json when `credentialSecret` is set (at the first
 * deploy after the restart); this one lets the files be re-sealed with the new secret whenever they next open.
 * One secret a line: the current generated one first, then older generated ones while a file that one of them
 * may seal could not be re-sealed yet (.config.runtime.json lost and generated again).
 */
export const GENERATED_SECRET_COPY_FILE = '.http-oauth2-generated-secret.key';
export const TOKEN_STORE_FILE = '.http-oauth2-tokens.json';
export const TRIGGER_STORE_FILE = '.http-oauth2-triggers.json';
export const HELD_STORE_FILE = '.http-oauth2-held.json';

export type InstanceSecrets = () => { credentialSecret?: string | false; generatedSecret?: string };

export interface StoreKeys {
  /** What seals the files from now on. */
  secret: string;
  /** Secrets that sealed them before and are still known: tried when `secret` does not open a file. */
  fallbackSecrets: string[];
}

/** Every file the package seals in `userDir`: a change of secret re-seals them together. */
function sealedFiles(userDir: string): string[] {
  return [TOKEN_STORE_FILE, TRIGGER_STORE_FILE, HELD_STORE_FILE].flatMap((name) => {
    const filePath = path.join(userDir, name);
    return [filePath, journalPath(filePath)];
  });
}

/** The secrets kept in a file of ours, one a line; none when there is no file or it cannot be read. */
function readSecretFile(filePath: string): string[] {
  try {
    return fs
      .readFileSync(filePath, 'utf8')
      .split('\n')
      .map((line) => line.trim())
      .filter((line) => line.length > 0);
  } catch {
    return [];
  }
}

/**
 * One migration per user directory and target secret for the life of the process: a store opens only once it
 * is complete, and none runs again while a store is open and writing (a re-seal then could write back content
 * older than the store's, a spent refresh token or a journal the store had removed). A file left sealed with
 * an old secret is re-sealed by its own store, which opens it with `fallbackSecrets` and writes it at once.
 */
const migrations = new Map<string, Promise<StoreKeys>>();

/**
 * The key material for the package's encrypted files in `userDir`, once every file sealed with a secret the
 * instance had before is re-sealed with the current one.
 *
 * Secrets known from before: Node-RED's generated secret while settings still hold it (Node-RED deletes it
 * only at the first deploy after `credentialSecret` was set), the package's copy of it, and the owner-only key
 * file used while the instance had `credentialSecret: false`. Each file is re-sealed atomically, so a crash
 * leaves it sealed with the old or the new secret, and the old ones stay known until no file that could not
 * be read or written is left: only then are they dropped from the copy, and the copy and the key file deleted.
 * A file no known secret opens is left as it is (its store reports it) and keeps no old secret: none opens
 * it. While the generated secret is the current one it is in the copy, before any store writes with it.
 */
export function storeKeys(userDir: string, secrets: InstanceSecrets): Promise<StoreKeys> {
  let settings: ReturnType<InstanceSecrets>;
  let current: ReturnType<typeof resolveStoreSecret>;
  try {
    settings = secrets();
    current = resolveStoreSecret({ ...settings, keyFilePath: path.join(userDir, STORE_KEY_FILE) });
  } catch (err) {
    return Promise.reject(err);
  }
  const key = `${path.resolve(userDir)}\0${createHash('sha256').update(current.secret).digest('hex')}`;
  let migration = migrations.get(key);
  if (!migration) {
    migration = migrate(userDir, current, settings.generatedSecret);
    migrations.set(key, migration);
    // Nothing opened on a migration that failed as a whole: the next open may try again.
    migration.catch(() => migrations.delete(key));
  }
  return migration;
}

async function migrate(
  userDir: string,
  current: ReturnType<typeof resolveStoreSecret>,
  generatedSecret: string | undefined,
): Promise<StoreKeys> {
  const copyPath = path.join(userDir, GENERATED_SECRET_COPY_FILE);
  const keyFilePath = path.join(userDir, STORE_KEY_FILE);
  const copied = readSecretFile(copyPath);
  const keyFileSecrets = current.source === 'unencrypted-instance' ? [] : readSecretFile(keyFilePath);
  const known = [generatedSecret, ...copied, ...keyFileSecrets];
  const fallbackSecrets = [...new Set(known.filter((s): s is string => typeof s === 'string' && s.length > 0 && s !== current.secret))];

  // Only a file that could not be read or written now needs the old secrets later. One none of them opens
  // (another secret's, damaged, or a journal torn by a power loss, which its store discards) gains nothing.
  let pending = false;
  for (const filePath of fallbackSecrets.length > 0 ? sealedFiles(userDir) : []) {
    const outcome = await resealFile(filePath, current.secret, fallbackSecrets).catch(() => 'failed' as const);
    if (outcome === 'failed') pending = true;
  }

  // The copy holds the current secret when it is the generated one (the same secret Node-RED keeps in
  // .config.runtime.json and its .backup, owner-only here), and the generated ones from before while a file
  // that could not be re-sealed may need them: Node-RED may delete its own before that file is re-sealed.
  const generatedOnes = [generatedSecret, ...copied].filter((s): s is string => typeof s === 'string' && s.length > 0);
  const keep = [
    ...(current.source === 'generated' ? [current.secret] : []),
    ...(pending ? generatedOnes.filter((s) => s !== current.secret) : []),
  ].filter((s, i, all) => all.indexOf(s) === i);
  if (keep.length === 0) {
    await fs.promises.unlink(copyPath).catch(() => undefined);
  } else if (keep.join('\n') !== copied.join('\n')) {
    await writeFileAtomic(copyPath, Buffer.from(`${keep.join('\n')}\n`)).catch(() => undefined);
  }
  if (!pending && current.source !== 'unencrypted-instance') await fs.promises.unlink(keyFilePath).catch(() => undefined);
  return { secret: current.secret, fallbackSecrets };
}

/**
 * Re-seals the files as soon as the module loads when the secret that will seal them is already known (set
 * in settings.js) and an old one is still there to open them: Node-RED deletes its generated secret at the
 * first deploy, which may come before any node opens a store. Needs nothing Node-RED loads later. Resolves
 * when done (never rejects: a store that opens later tries again and reports what fails).
 */
export async function migrateEarly(userDir: string, secrets: InstanceSecrets): Promise<void> {
  let settings: ReturnType<InstanceSecrets>;
  try {
    settings = secrets();
  } catch {
    return;
  }
  const explicit = settings.credentialSecret === false || (typeof settings.credentialSecret === 'string' && settings.credentialSecret.length > 0);
  const oldKnown = Boolean(settings.generatedSecret) || fs.existsSync(path.join(userDir, GENERATED_SECRET_COPY_FILE));
  if (explicit && oldKnown) await storeKeys(userDir, secrets).catch(() => undefined);
}

/**
 * Opens a store on first use and retries a failed open on the next use: Node-RED's generated credential
 * secret exists only once its credentials have loaded, after this package's modules.
 */
export function lazyOpen<T>(open: () => Promise<T>): () => Promise<T> {
  let opening: Promise<T> | undefined;
  return () => {
    if (!opening) {
      opening = open();
      opening.catch(() => {
        opening = undefined;
      });
    }
    return opening;
  };
}

/** A Node-RED setting, or undefined where settings are not loaded yet (node-red-node-test-helper throws). */
export function safeSetting(RED: NodeAPI, key: string): unknown {
  try {
    return RED.settings.get(key);
  } catch {
    return undefined;
  }
}

/** Where the package keeps its files: Node-RED's user directory. */
export function storeDir(RED: NodeAPI): string {
  return RED.settings.userDir || path.join(os.tmpdir(), 'node-red-http-oauth2');
}

/** The instance's secrets, read when a store opens (the generated one exists only after credentials load). */
export function instanceSecrets(RED: NodeAPI): InstanceSecrets {
  return () => ({
    credentialSecret: safeSetting(RED, 'credentialSecret') as string | false | undefined,
    generatedSecret: safeSetting(RED, '_credentialSecret') as string | undefined,
  });
}
