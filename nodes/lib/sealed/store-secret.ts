/**
 * Which secret seals the stores of an instance, and the key file used when the instance has none.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import * as path from 'node:path';
import { SealedFileError, errnoOf, isErrno } from './errors';

const FILE_MODE = 0o600;

/**
 * Which secret seals the token store.
 *
 * - `credentialSecret` set in settings (a non-empty string): that secret. Node-RED encrypts its own credential
 *   file with it, so the store is exactly as protected as flows_cred.json.
 * - `credentialSecret` not set: Node-RED's generated `_credentialSecret` (from .config.runtime.json).
 * - `credentialSecret: false` (Node-RED keeps credentials in clear), an empty string, or no secret at all: we
 *   still encrypt, with a random 256-bit key kept in an owner-only key file (`keyFilePath`, by default
 *   `<store dir>/<store name>.key` chosen by the caller) next to the store. Be clear what this buys: it only
 *   protects against a copy of the store file alone (a backup, a sync folder, a file attached to a bug
 *   report); anyone who can read the user directory can read the key too. We do not refuse to run, because
 *   the instance owner explicitly chose clear-text credentials, and tokens in flows_cred.json would be in clear
 *   anyway. Without `keyFilePath` in that case this throws SealedFileError.
 *
 * The key file is read or created synchronously: this runs once when the runtime starts.
 */
export function resolveStoreSecret(settings: {
  credentialSecret?: string | false;
  generatedSecret?: string;
  /** Where the instance-less key lives when there is no usable credential secret. */
  keyFilePath?: string;
}): { secret: string; source: 'credentialSecret' | 'generated' | 'unencrypted-instance' } {
  const { credentialSecret, generatedSecret, keyFilePath } = settings;
  if (typeof credentialSecret === 'string' && credentialSecret.length > 0) {
    return { secret: credentialSecret, source: 'credentialSecret' };
  }
  if (credentialSecret === undefined && typeof generatedSecret === 'string' && generatedSecret.length > 0) {
    return { secret: generatedSecret, source: 'generated' };
  }
  if (!keyFilePath) {
    throw new SealedFileError('noSecret', 'the instance has no credential secret and no key file path was given.');
  }
  return { secret: readOrCreateKeyFile(keyFilePath), source: 'unencrypted-instance' };
}

function readOrCreateKeyFile(keyFilePath: string): string {
  const read = (): string | undefined => {
    try {
      const text = readFileSync(keyFilePath, 'utf8').trim();
      if (!/^[0-9a-f]{64}$/.test(text)) {
        throw new SealedFileError('foreign', `the key file ${keyFilePath} is damaged (expected 64 hex digits).`);
      }
      return text;
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return undefined;
      if (err instanceof SealedFileError) throw err;
      throw new SealedFileError('io', `cannot read the key file ${keyFilePath} (${errnoOf(err)}).`, errnoOf(err));
    }
  };
  const existing = read();
  if (existing) return existing;
  const key = randomBytes(32).toString('hex');
  try {
    mkdirSync(path.dirname(keyFilePath), { recursive: true, mode: 0o700 });
    // 'wx': never replace a key another process created meanwhile (that would orphan its store).
    writeFileSync(keyFilePath, `${key}\n`, { mode: FILE_MODE, flag: 'wx' });
  } catch (err) {
    if (isErrno(err, 'EEXIST')) {
      const raced = read();
      if (raced) return raced;
    }
    throw new SealedFileError('io', `cannot create the key file ${keyFilePath} (${errnoOf(err)}).`, errnoOf(err));
  }
  return key;
}
