/**
 * The runtime's token store, as settings.js chooses it (httpOAuth2.store): the encrypted file in the user
 * directory (one instance), Redis (several instances), or the setting's error. Every connection node and the
 * login routes share it.
 */
import type { RedisConnection } from '../lib/redis/client';
import { RedisTokenStore } from '../lib/redis/token-store';
import { openFileTokenStore, tokenStoreFailure, type FileTokenStore } from '../lib/tokens/file-token-store';
import type { RenewalCoordination, StoredTokens, TokenStore } from '../lib/tokens/token-store';
import { TOKEN_STORE_FILE, instanceSecrets, storeDir } from './instance-secret';
import { FileBackedStore, InvalidStore, RedisBackedStore, storeSelector, type RedisBackend } from './store-backend';
import type { NodeAPI } from './types';

export { TOKEN_STORE_FILE };

/** What a connection node uses while it is deployed; `release` when it closes. */
export interface AttachedTokenStore {
  store: TokenStore;
  /** Present when the store is shared by several instances (Redis). */
  coordination?: RenewalCoordination;
  /** The Redis connection behind the store, for its status. */
  redis?: RedisConnection;
  release(): void;
}

/** The runtime's one token store, shared by every connection node and the login routes. */
export interface RuntimeTokenStore extends TokenStore {
  readonly kind: 'file' | 'redis' | 'invalid';
  /** For a connection node. Throws OAUTH2_INVALID_CONFIG when the store cannot be used (bad setting, no secret). */
  attach(): AttachedTokenStore;
}

/** The encrypted file in the user directory (one instance): opened on first use. */
export class FileBackedTokenStore extends FileBackedStore<StoredTokens, FileTokenStore> implements RuntimeTokenStore {
  constructor(userDir: string, secrets: ReturnType<typeof instanceSecrets>) {
    super(userDir, TOKEN_STORE_FILE, secrets, openFileTokenStore, tokenStoreFailure);
  }

  attach(): AttachedTokenStore {
    return { store: this, release: () => undefined };
  }
}

/** Tokens on Redis, shared by the instances (httpOAuth2.store.type 'redis'). */
export class RedisBackedTokenStore extends RedisBackedStore<StoredTokens, RedisTokenStore> implements RuntimeTokenStore {
  constructor(backend: RedisBackend) {
    super(backend, (connection, secret) => new RedisTokenStore({ connection, secret }));
  }

  attach(): AttachedTokenStore {
    const { store, connection, release } = this.acquire();
    return { store, coordination: store, redis: connection, release };
  }
}

/** The store when httpOAuth2.store is invalid: every use reports the setting's error. */
export class InvalidTokenStore extends InvalidStore<StoredTokens> implements RuntimeTokenStore {
  attach(): AttachedTokenStore {
    throw this.error;
  }
}

/** The token store this runtime's settings ask for (the connection module chooses it once, when it loads). */
export function tokenStoreSelector(RED: NodeAPI): () => RuntimeTokenStore {
  return storeSelector<RuntimeTokenStore>(RED, {
    file: () => new FileBackedTokenStore(storeDir(RED), instanceSecrets(RED)),
    redis: (backend) => new RedisBackedTokenStore(backend),
    invalid: (error) => new InvalidTokenStore(error),
  });
}
