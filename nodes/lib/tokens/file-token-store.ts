/**
 * The embedded token store: one encrypted file (../sealed/encrypted-json-file) in Node-RED's user directory.
 * Invariants 5 and 8: content sealed with AES-256-GCM, written atomically, owner-only (0o600), journaled, and
 * `set` resolves only once the value is on disk.
 */
import type { OAuth2Error } from '../errors';
import { EncryptedJsonFile } from '../sealed/encrypted-json-file';
import { storeFailure } from '../sealed/errors';
import type { TokenSet } from '../types';
import type { StoredTokens, TokenStore } from './token-store';

/** On-disk document of the token store. */
interface TokenStoreDocument {
  version: 1;
  connections: Record<string, StoredTokens>;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Shape check of a stored TokenSet (also used by the Redis store). */
export function isTokenSet(value: unknown): value is TokenSet {
  return (
    isRecord(value) &&
    typeof value.accessToken === 'string' &&
    typeof value.tokenType === 'string' &&
    typeof value.expiresAt === 'number' &&
    typeof value.obtainedAt === 'number' &&
    Array.isArray(value.scopes)
  );
}

function isTokenStoreDocument(value: unknown): value is TokenStoreDocument {
  if (!isRecord(value) || value.version !== 1 || !isRecord(value.connections)) return false;
  return Object.values(value.connections).every(
    (entry) => isRecord(entry) && typeof entry.updatedAt === 'number' && isTokenSet(entry.tokens),
  );
}

export interface FileTokenStore extends TokenStore {
  readonly filePath: string;
}

/**
 * Opens (or creates on first write) the encrypted token store at `filePath`. Throws OAUTH2_TOKEN_STORE_FAILED
 * when the file exists but cannot be read, decrypted (other secret, tampering) or understood; the file is
 * then left as it is and the caller decides (report, or move it away).
 */
export async function openFileTokenStore(options: {
  filePath: string;
  secret: string;
  fallbackSecrets?: readonly string[];
}): Promise<FileTokenStore> {
  let file: EncryptedJsonFile<TokenStoreDocument>;
  try {
    file = await EncryptedJsonFile.open<TokenStoreDocument>({
      journal: true,
      filePath: options.filePath,
      secret: options.secret,
      fallbackSecrets: options.fallbackSecrets,
      defaultData: () => ({ version: 1, connections: {} }),
      isValid: isTokenStoreDocument,
      label: 'token store',
    });
  } catch (err) {
    throw tokenStoreFailure(err);
  }
  const update = async (mutate: (doc: TokenStoreDocument) => void): Promise<void> => {
    try {
      await file.update(mutate);
    } catch (err) {
      throw tokenStoreFailure(err);
    }
  };
  const connections = (): Record<string, StoredTokens> => file.data.connections;
  return {
    filePath: file.filePath,
    async get(connectionId) {
      const entry = Object.prototype.hasOwnProperty.call(connections(), connectionId) ? connections()[connectionId] : undefined;
      // A copy: callers must not be able to change what the next write stores.
      return entry === undefined ? undefined : structuredClone(entry);
    },
    set(connectionId, value) {
      const copy = structuredClone(value);
      return update((data) => {
        // defineProperty, not assignment: an id like "__proto__" must stay an ordinary key.
        Object.defineProperty(data.connections, connectionId, { value: copy, enumerable: true, writable: true, configurable: true });
      });
    },
    async delete(connectionId) {
      if (!Object.prototype.hasOwnProperty.call(connections(), connectionId)) {
        // Nothing in memory, but a write may still be in flight: wait so "deleted" also means "on disk".
        await file.flush();
        return;
      }
      await update((data) => {
        delete data.connections[connectionId];
      });
    },
    async ids() {
      return Object.keys(connections());
    },
    flush() {
      return file.flush();
    },
  };
}


/** The token store's error for a failure of its file (the file layer's typed SealedFileError), with what to do. */
export function tokenStoreFailure(err: unknown): OAuth2Error {
  return storeFailure(
    err,
    'OAUTH2_TOKEN_STORE_FAILED',
    'Token store',
    'Restore the previous credential secret, or move the file away to start with an empty store (connections will need a new login).',
  );
}
