import * as path from 'node:path';
import type { RedisConnection } from './lib/redis/client';
import { RedisTokenStore } from './lib/redis/token-store';
import { openFileTokenStore, type FileTokenStore } from './lib/tokens/file-token-store';
import type { RenewalCoordination, StoredTokens, TokenStore } from './lib/tokens/token-store';
import { lazyOpen, migrateEarly, storeKeys, TOKEN_STORE_FILE, type InstanceSecrets } from './instance-secret';
import { InvalidStore, type RedisBackend } from './store-backend';

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
export class SharedTokenStore implements RuntimeTokenStore {
  readonly kind = 'file' as const;
  private readonly open: () => Promise<FileTokenStore>;
  private opened = false;

  constructor(userDir: string, secrets: InstanceSecrets) {
    this.open = lazyOpen(async () => {
      const store = await openFileTokenStore({ filePath: path.join(userDir, TOKEN_STORE_FILE), ...(await storeKeys(userDir, secrets)) });
      this.opened = true;
      return store;
    });
    void migrateEarly(userDir, secrets);
  }

  attach(): AttachedTokenStore {
    return { store: this, release: () => undefined };
  }

  async get(connectionId: string): Promise<StoredTokens | undefined> {
    return (await this.open()).get(connectionId);
  }

  async set(connectionId: string, value: StoredTokens): Promise<void> {
    return (await this.open()).set(connectionId, value);
  }

  async delete(connectionId: string): Promise<void> {
    return (await this.open()).delete(connectionId);
  }

  async ids(): Promise<string[]> {
    return (await this.open()).ids();
  }

  async flush(): Promise<void> {
    if (this.opened) await (await this.open()).flush();
  }
}

/**
 * Tokens on Redis, shared by the instances (httpOAuth2.store.type 'redis'). One RedisTokenStore per Redis
 * connection of the backend: the backend closes its connection when no node uses it and opens a new one on the
 * next use, so the store follows the connection rather than holding on to a closed one.
 */
export class RedisSharedTokenStore implements RuntimeTokenStore {
  readonly kind = 'redis' as const;
  private readonly stores = new WeakMap<RedisConnection, RedisTokenStore>();

  constructor(private readonly backend: RedisBackend) {}

  attach(): AttachedTokenStore {
    const secret = this.backend.secret(); // before acquiring: a missing secret opens no connection
    const { connection, release } = this.backend.acquire();
    const store = this.storeFor(connection, secret);
    return { store, coordination: store, redis: connection, release };
  }

  async get(connectionId: string): Promise<StoredTokens | undefined> {
    return this.current().get(connectionId);
  }

  async set(connectionId: string, value: StoredTokens): Promise<void> {
    return this.current().set(connectionId, value);
  }

  async delete(connectionId: string): Promise<void> {
    return this.current().delete(connectionId);
  }

  async ids(): Promise<string[]> {
    return this.current().ids();
  }

  /** Writes resolve once Redis acknowledged them; nothing is left to wait for but writes still in flight. */
  async flush(): Promise<void> {
    // Nothing to do: every write is awaited by its caller, and the connections' stores track their own.
  }

  private current(): RedisTokenStore {
    const secret = this.backend.secret();
    return this.storeFor(this.backend.connection(), secret);
  }

  private storeFor(connection: RedisConnection, secret: string): RedisTokenStore {
    let store = this.stores.get(connection);
    if (!store) {
      store = new RedisTokenStore({ connection, secret });
      this.stores.set(connection, store);
    }
    return store;
  }
}

/** The store when httpOAuth2.store is invalid: every use reports the setting's error. */
export class InvalidTokenStore extends InvalidStore<StoredTokens> implements RuntimeTokenStore {
  attach(): AttachedTokenStore {
    throw this.error;
  }
}
