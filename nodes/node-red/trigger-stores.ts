/**
 * The runtime's store of record-change trigger state, as settings.js chooses it (httpOAuth2.store): the
 * encrypted file in the user directory (one instance), Redis with a lease per trigger (several instances), or
 * the setting's error. The deploy sweep and the nodes share it.
 */
import type { TriggerState } from '../lib/changes/types';
import { errorCatalogEntry, isOAuth2Error, translateCatalogEntry, type CatalogEntry, type ErrorParams } from '../lib/errors';
import { NodeError } from './node-error';
import { openTriggerStateStore, triggerStateFailure, type TriggerStateStore } from '../lib/changes/state-store';
import type { RedisConnection } from '../lib/redis/client';
import { TriggerLease } from '../lib/redis/lease';
import { openRedisTriggerStateStore, type RedisTriggerStateStore } from '../lib/redis/trigger-store';
import { TRIGGER_STORE_FILE, instanceSecrets, storeDir } from './instance-secret';
import { FileBackedStore, InvalidStore, RedisBackedStore, storeSelector, type RedisBackend } from './store-backend';
import type { NodeAPI } from './types';

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
export class FileBackedTriggerStore extends FileBackedStore<TriggerState, TriggerStateStore> implements RuntimeTriggerStore {
  constructor(userDir: string, secrets: ReturnType<typeof instanceSecrets>) {
    super(userDir, TRIGGER_STORE_FILE, secrets, openTriggerStateStore, triggerStateFailure);
  }

  attach(): AttachedTriggerStore {
    return { store: this, release: () => undefined };
  }

  purge(nodeId: string): Promise<void> {
    return this.delete(nodeId);
  }
}

/** Trigger state on Redis, shared by the instances (httpOAuth2.store.type 'redis'), with a lease per trigger node. */
export class RedisBackedTriggerStore extends RedisBackedStore<TriggerState, RedisTriggerStateStore> implements RuntimeTriggerStore {
  constructor(backend: RedisBackend) {
    super(backend, (connection, secret) => openRedisTriggerStateStore({ connection, secret }));
  }

  attach(nodeId: string): AttachedTriggerStore {
    const { store, connection, release } = this.acquire();
    const lease = new TriggerLease({ connection, store, nodeId, ttlMs: this.backend.settings.triggerLeaseMs });
    return { store, lease, redis: connection, release };
  }

  async purge(nodeId: string): Promise<void> {
    return this.current().purge(nodeId);
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

/** The trigger store this runtime's settings ask for, chosen again for each node (settings are read once per runtime). */
export function triggerStoreSelector(RED: NodeAPI): () => RuntimeTriggerStore {
  return storeSelector<RuntimeTriggerStore>(RED, {
    file: () => new FileBackedTriggerStore(storeDir(RED), instanceSecrets(RED)),
    redis: (backend) => new RedisBackedTriggerStore(backend),
    invalid: (error) => new InvalidTriggerStore(error),
  });
}

/** Reasons of OAUTH2_TRIGGER_STATE_FAILED that the shared (Redis) store gives, each with its own message. */
const SHARED_STATE_REASONS = new Set(['redis-unreachable', 'redis-timeout', 'redis-auth', 'redis-other', 'leaseLost', 'stateChanged', 'undecryptable']);

function sharedStateReason(err: unknown): string | undefined {
  if (!isOAuth2Error(err, 'OAUTH2_TRIGGER_STATE_FAILED')) return undefined;
  const reason = err.params.reason;
  return typeof reason === 'string' && SHARED_STATE_REASONS.has(reason) ? reason : undefined;
}

/** Redis could not be used (as opposed to a refusal that says something about the state). */
export function redisUnavailable(err: unknown): boolean {
  const reason = sharedStateReason(err);
  return reason === 'redis-unreachable' || reason === 'redis-timeout';
}

/**
 * The shared store's failures in this node's words (the connection's catalog knows only "could not be read or
 * written"), and a bad httpOAuth2.store setting: their entry in this node's catalog; undefined for anything else.
 */
export function sharedStoreEntry(err: unknown): CatalogEntry | undefined {
  const reason = sharedStateReason(err);
  if (reason) return { key: `errors.sharedState.${reason}`, params: {}, paramKeys: {} };
  if (isOAuth2Error(err, 'OAUTH2_INVALID_CONFIG') && String(err.params.field ?? '').startsWith('httpOAuth2')) return errorCatalogEntry(err);
  return undefined;
}

export function sharedStoreError(err: unknown, t: (key: string, params?: ErrorParams) => string): NodeError | undefined {
  const entry = sharedStoreEntry(err);
  if (!entry || !isOAuth2Error(err)) return undefined;
  const out = new NodeError(translateCatalogEntry(entry, t) ?? err.message);
  out.code = err.code;
  return out;
}
