import * as path from 'node:path';
import type { TriggerState } from './lib/changes/types';
import { openTriggerStateStore, type TriggerStateStore } from './lib/changes/state-store';
import type { RedisConnection } from './lib/redis/client';
import { TriggerLease } from './lib/redis/lease';
import { openRedisTriggerStateStore, type RedisTriggerStateStore } from './lib/redis/trigger-store';
import { lazyOpen, migrateEarly, storeKeys, TRIGGER_STORE_FILE, type InstanceSecrets } from './instance-secret';
import { InvalidStore, storeBackend, type RedisBackend, type StoreBackend } from './store-backend';
import type { NodeAPI } from './node-red-types';

export { TRIGGER_STORE_FILE };

/** What a record-change node uses while it is deployed; `release` when it closes. */
export interface AttachedTriggerStore {
  store: TriggerStateStore;
  /** Several instances (Redis): the node's lease, so that one instance polls the trigger at a time. */
  lease?: TriggerLease;
  /** The Redis connection behind the store, for status and its 'reconnected' event. */
  redis?: RedisConnection;
  release(): void;
}

/** The runtime's store of record-change trigger state (the deploy sweep and the nodes share it). */
export interface RuntimeTriggerStore extends TriggerStateStore {
  readonly kind: 'file' | 'redis' | 'invalid';
  /** For a node. Throws OAUTH2_INVALID_CONFIG when the store cannot be used (bad setting, no shared secret). */
  attach(nodeId: string): AttachedTriggerStore;
  /** Deletes everything kept for a node gone from the flows (with Redis also its lease, fence and mark keys). */
  purge(nodeId: string): Promise<void>;
}

/**
 * The deploy sweep: deletes what the store keeps for each trigger this instance removed itself (`removed`) that
 * is not configured again. An id leaves `removed` only once it is dealt with, so when the store fails (Redis
 * away during the deploy) the rest stay for the next deploy's sweep instead of staying in the store for good.
 */
export async function sweepRemovedTriggers(store: RuntimeTriggerStore, configured: ReadonlySet<string>, removed: Set<string>): Promise<void> {
  for (const id of [...removed]) {
    if (!configured.has(id)) await store.purge(id);
    removed.delete(id);
  }
}

/** The runtime's one file of record-change trigger state (one instance), opened on first use. */
export class SharedTriggerStore implements RuntimeTriggerStore {
  readonly kind = 'file' as const;
  private readonly open: () => Promise<TriggerStateStore>;
  private opened = false;

  constructor(userDir: string, secrets: InstanceSecrets) {
    this.open = lazyOpen(async () => {
      const store = await openTriggerStateStore({ filePath: path.join(userDir, TRIGGER_STORE_FILE), ...(await storeKeys(userDir, secrets)) });
      this.opened = true;
      return store;
    });
    void migrateEarly(userDir, secrets);
  }

  attach(): AttachedTriggerStore {
    return { store: this, release: () => undefined };
  }

  async get(nodeId: string): Promise<TriggerState | undefined> {
    return (await this.open()).get(nodeId);
  }

  async set(nodeId: string, state: TriggerState): Promise<void> {
    return (await this.open()).set(nodeId, state);
  }

  async delete(nodeId: string): Promise<void> {
    return (await this.open()).delete(nodeId);
  }

  async ids(): Promise<string[]> {
    return (await this.open()).ids();
  }

  purge(nodeId: string): Promise<void> {
    return this.delete(nodeId);
  }

  async flush(): Promise<void> {
    if (this.opened) await (await this.open()).flush();
  }
}

/**
 * Trigger state on Redis, shared by the instances (httpOAuth2.store.type 'redis'), with a lease per trigger
 * node. One store per Redis connection of the backend (the backend closes an idle connection and opens a new
 * one on the next use): the store's memory of unwritten states lives as long as the connection, which outlives
 * a redeploy.
 */
export class RedisSharedTriggerStore implements RuntimeTriggerStore {
  readonly kind = 'redis' as const;
  private readonly stores = new WeakMap<RedisConnection, RedisTriggerStateStore>();

  constructor(private readonly backend: RedisBackend) {}

  attach(nodeId: string): AttachedTriggerStore {
    const secret = this.backend.secret(); // before acquiring: a missing secret opens no connection
    const { connection, release } = this.backend.acquire();
    const store = this.storeFor(connection, secret);
    const lease = new TriggerLease({ connection, store, nodeId, ttlMs: this.backend.settings.triggerLeaseMs });
    return { store, lease, redis: connection, release };
  }

  async get(nodeId: string): Promise<TriggerState | undefined> {
    return this.current().get(nodeId);
  }

  async set(nodeId: string, state: TriggerState): Promise<void> {
    return this.current().set(nodeId, state);
  }

  async delete(nodeId: string): Promise<void> {
    return this.current().delete(nodeId);
  }

  async ids(): Promise<string[]> {
    return this.current().ids();
  }

  async purge(nodeId: string): Promise<void> {
    return this.current().purge(nodeId);
  }

  /** Writes resolve once Redis acknowledged them; each connection's store waits for its own in-flight writes. */
  async flush(): Promise<void> {
    // Nothing beyond the nodes' own stores (attach), which the nodes flush.
  }

  private current(): RedisTriggerStateStore {
    const secret = this.backend.secret();
    return this.storeFor(this.backend.connection(), secret);
  }

  private storeFor(connection: RedisConnection, secret: string): RedisTriggerStateStore {
    let store = this.stores.get(connection);
    if (!store) {
      store = openRedisTriggerStateStore({ connection, secret });
      this.stores.set(connection, store);
    }
    return store;
  }
}

/** The store when httpOAuth2.store is invalid: every use reports the setting's error. */
export class InvalidTriggerStore extends InvalidStore<TriggerState> implements RuntimeTriggerStore {
  attach(): AttachedTriggerStore {
    throw this.error;
  }
  purge(): Promise<void> {
    return Promise.reject(this.error);
  }
}

/**
 * The trigger store this runtime's settings ask for: `file` (the default) is the one SharedTriggerStore of the
 * module; the others are made once per backend (settings are read once per runtime, see store-backend.ts).
 */
export function triggerStoreSelector(RED: NodeAPI, file: SharedTriggerStore): () => RuntimeTriggerStore {
  const made = new WeakMap<StoreBackend, RuntimeTriggerStore>();
  return () => {
    const backend = storeBackend(RED);
    if (backend.type === 'file') return file;
    let store = made.get(backend);
    if (!store) {
      store = backend.type === 'redis' ? new RedisSharedTriggerStore(backend) : new InvalidTriggerStore(backend.error);
      made.set(backend, store);
    }
    return store;
  };
}
