/**
 * The runtime's store of messages request nodes hold while their connection needs a login, as settings.js
 * chooses it (httpOAuth2.store): the encrypted file in the user directory, Redis (shared by the instances), or
 * the setting's error. The deploy sweep and the nodes share it.
 */
import * as path from 'node:path';
import type { OAuth2Error } from '../lib/errors';
import { heldStoreFailure, openHeldStore, type HeldEntry, type HeldStore } from '../lib/hold/held-store';
import { openRedisHeldStore } from '../lib/redis/held-store';
import type { RedisConnection } from '../lib/redis/client';
import { HELD_STORE_FILE, instanceSecrets, lazyOpen, migrateEarly, storeDir, storeKeys, type InstanceSecrets } from './instance-secret';
import { storeSelector, type RedisBackend } from './store-backend';
import type { NodeAPI } from './types';

export interface RuntimeHeldStore extends HeldStore {
  readonly kind: 'file' | 'redis' | 'invalid';
  /** For a node while it is deployed; `release` when it closes. Throws when the store cannot be used. */
  attach(): { store: HeldStore; redis?: RedisConnection; release(): void };
}

class FileHeldStore implements RuntimeHeldStore {
  readonly kind = 'file' as const;
  private readonly open: () => Promise<HeldStore>;
  private opened = false;

  constructor(userDir: string, secrets: InstanceSecrets) {
    this.open = lazyOpen(async () => {
      let keys;
      try {
        keys = await storeKeys(userDir, secrets);
      } catch (err) {
        throw heldStoreFailure(err);
      }
      const store = await openHeldStore({ filePath: path.join(userDir, HELD_STORE_FILE), ...keys });
      this.opened = true;
      return store;
    });
    void migrateEarly(userDir, secrets);
  }

  attach(): { store: HeldStore; release(): void } {
    return { store: this, release: () => undefined };
  }

  async list(nodeId: string): Promise<HeldEntry[]> {
    return (await this.open()).list(nodeId);
  }
  async add(nodeId: string, entry: HeldEntry): Promise<void> {
    return (await this.open()).add(nodeId, entry);
  }
  async remove(nodeId: string, entryId: string): Promise<void> {
    return (await this.open()).remove(nodeId, entryId);
  }
  async purge(nodeId: string): Promise<void> {
    return (await this.open()).purge(nodeId);
  }
  async ids(): Promise<string[]> {
    return (await this.open()).ids();
  }
  async flush(): Promise<void> {
    if (this.opened) await (await this.open()).flush();
  }
}

class RedisHeldStore implements RuntimeHeldStore {
  readonly kind = 'redis' as const;
  private readonly stores = new WeakMap<RedisConnection, HeldStore>();

  constructor(private readonly backend: RedisBackend) {}

  attach(): { store: HeldStore; redis: RedisConnection; release(): void } {
    const secret = this.backend.secret(); // before acquiring: a missing secret opens no connection
    const { connection, release } = this.backend.acquire();
    return { store: this.storeFor(connection, secret), redis: connection, release };
  }

  private current(): HeldStore {
    const secret = this.backend.secret();
    return this.storeFor(this.backend.connection(), secret);
  }

  private storeFor(connection: RedisConnection, secret: string): HeldStore {
    let store = this.stores.get(connection);
    if (!store) {
      store = openRedisHeldStore({ connection, secret });
      this.stores.set(connection, store);
    }
    return store;
  }

  list(nodeId: string): Promise<HeldEntry[]> {
    return this.current().list(nodeId);
  }
  add(nodeId: string, entry: HeldEntry): Promise<void> {
    return this.current().add(nodeId, entry);
  }
  remove(nodeId: string, entryId: string): Promise<void> {
    return this.current().remove(nodeId, entryId);
  }
  purge(nodeId: string): Promise<void> {
    return this.current().purge(nodeId);
  }
  ids(): Promise<string[]> {
    return this.current().ids();
  }
  async flush(): Promise<void> {
    // Writes resolve once Redis acknowledged them.
  }
}

class InvalidHeldStore implements RuntimeHeldStore {
  readonly kind = 'invalid' as const;
  constructor(readonly error: OAuth2Error) {}
  attach(): never {
    throw this.error;
  }
  list(): Promise<HeldEntry[]> {
    return Promise.reject(this.error);
  }
  add(): Promise<void> {
    return Promise.reject(this.error);
  }
  remove(): Promise<void> {
    return Promise.reject(this.error);
  }
  purge(): Promise<void> {
    return Promise.reject(this.error);
  }
  ids(): Promise<string[]> {
    return Promise.reject(this.error);
  }
  async flush(): Promise<void> {
    // nothing was ever written
  }
}

/** The held-message store this runtime's settings ask for. */
export function heldStoreSelector(RED: NodeAPI): () => RuntimeHeldStore {
  return storeSelector<RuntimeHeldStore>(RED, {
    file: () => new FileHeldStore(storeDir(RED), instanceSecrets(RED)),
    redis: (backend) => new RedisHeldStore(backend),
    invalid: (error) => new InvalidHeldStore(error),
  });
}

/** The deploy sweep: forgets the held messages of request nodes this instance removed that are not configured again. */
export async function sweepRemovedHolders(store: RuntimeHeldStore, configured: ReadonlySet<string>, removed: Set<string>): Promise<void> {
  for (const id of [...removed]) {
    if (!configured.has(id)) await store.purge(id);
    removed.delete(id);
  }
}
