/**
 * Which store this Node-RED instance uses for tokens and trigger state: the encrypted files in the user
 * directory (default), or Redis when settings.js says `httpOAuth2: { store: { type: 'redis', ... } }`.
 *
 * One backend per runtime (the connection and record-change modules load separately but share it through the
 * RED object). The Redis connection is opened on first use and closed a few seconds after the last node using
 * it closed, so a redeploy keeps it and a stopped runtime (tests, the embedded runtime) lets the process exit.
 */
import * as path from 'node:path';
import { OAuth2Error } from '../lib/errors';
import { RedisConnection } from '../lib/redis/client';
import { parseStoreSettings, type RedisStoreSettings, type StoreSettings } from '../lib/redis/settings';
import { lazyOpen, migrateEarly, safeSetting, storeKeys, type InstanceSecrets, type StoreKeys } from './instance-secret';
import type { NodeAPI } from './types';

/**
 * A setting by `RED.settings.get`, else as a property of RED.settings: Node-RED exposes settings.js keys both
 * ways, while node-red-node-test-helper's settings object only has the properties.
 */
export function runtimeSetting(RED: NodeAPI, key: string): unknown {
  const value = safeSetting(RED, key);
  return value !== undefined ? value : (RED.settings as unknown as Record<string, unknown>)[key];
}

/** How long the Redis connection outlives its last user (a redeploy closes and recreates every node). */
const IDLE_CLOSE_MS = 10_000;

export interface RedisBackend {
  settings: RedisStoreSettings;
  /** The key material for sealed values: httpOAuth2.store.secret, else credentialSecret. */
  secret(): string;
  /** The shared connection, opened if needed; call the returned release when done with it. */
  acquire(): { connection: RedisConnection; release: () => void };
  /** The shared connection for a short task (admin routes): opened if needed, closed when idle. */
  connection(): RedisConnection;
}

export type StoreBackend = { type: 'file' } | ({ type: 'redis' } & RedisBackend) | { type: 'invalid'; error: OAuth2Error };

/**
 * Keyed on RED.events: Node-RED gives each node module its own RED object but one runtime event emitter. The
 * setting is kept too, as JSON (RED.settings.get answers a fresh copy on every call): the test helper loads
 * runtimes with other settings in the same process.
 */
const backends = new WeakMap<object, { raw: string; backend: StoreBackend }>();

/** A comparable form of the setting (functions and cycles are not settings this package reads). */
function fingerprint(value: unknown): string {
  try {
    return JSON.stringify(value) ?? 'undefined';
  } catch {
    return String(Math.random());
  }
}

function makeRedisBackend(RED: NodeAPI, settings: RedisStoreSettings): RedisBackend {
  let connection: RedisConnection | undefined;
  let users = 0;
  let idleTimer: NodeJS.Timeout | undefined;

  const open = (): RedisConnection => {
    if (idleTimer) {
      clearTimeout(idleTimer);
      idleTimer = undefined;
    }
    connection ??= new RedisConnection(settings);
    return connection;
  };
  const scheduleIdleClose = (): void => {
    if (users > 0 || idleTimer || !connection) return;
    idleTimer = setTimeout(() => {
      idleTimer = undefined;
      if (users > 0 || !connection) return;
      const closing = connection;
      connection = undefined;
      void closing.close();
    }, IDLE_CLOSE_MS);
    idleTimer.unref();
  };

  return {
    settings,
    secret() {
      if (settings.secret) return settings.secret;
      const credentialSecret = runtimeSetting(RED, 'credentialSecret');
      if (typeof credentialSecret === 'string' && credentialSecret.length > 0) return credentialSecret;
      throw new OAuth2Error(
        'OAUTH2_INVALID_CONFIG',
        'The Redis store needs a secret shared by every instance: set credentialSecret in settings.js (the same on every instance), or httpOAuth2.store.secret.',
        { params: { field: 'httpOAuth2.store.secret', reason: 'sharedSecretMissing' } },
      );
    },
    acquire() {
      const c = open();
      users += 1;
      let released = false;
      return {
        connection: c,
        release: () => {
          if (released) return;
          released = true;
          users -= 1;
          scheduleIdleClose();
        },
      };
    },
    connection() {
      const c = open();
      scheduleIdleClose();
      return c;
    },
  };
}

/** This runtime's backend; settings are read once. An invalid setting is reported by every node that needs a store. */
export function storeBackend(RED: NodeAPI): StoreBackend {
  const key: object = RED.events ?? RED;
  const value = runtimeSetting(RED, 'httpOAuth2');
  const raw = fingerprint(value);
  const known = backends.get(key);
  if (known && known.raw === raw) return known.backend;
  let backend: StoreBackend;
  let settings: StoreSettings;
  try {
    settings = parseStoreSettings(value);
    backend = settings.type === 'redis' ? { type: 'redis', ...makeRedisBackend(RED, settings) } : { type: 'file' };
  } catch (err) {
    backend = {
      type: 'invalid',
      error: err instanceof OAuth2Error ? err : new OAuth2Error('OAUTH2_INVALID_CONFIG', 'Node-RED setting httpOAuth2 is invalid.', { params: { field: 'httpOAuth2' } }),
    };
  }
  backends.set(key, { raw, backend });
  return backend;
}

/** What both runtime stores (tokens, trigger state) offer, keyed by connection or node id. */
export interface KeyedStore<Value> {
  get(id: string): Promise<Value | undefined>;
  set(id: string, value: Value): Promise<void>;
  delete(id: string): Promise<void>;
  ids(): Promise<string[]>;
  /** Resolves when every write so far has finished (never rejects). */
  flush(): Promise<void>;
}

/**
 * One store of the runtime as its settings choose it: each is made when first chosen, `file` once per module,
 * the others once per backend (settings are read once per runtime, see storeBackend).
 */
export function storeSelector<Store>(
  RED: NodeAPI,
  choices: { file: () => Store; redis: (backend: RedisBackend) => Store; invalid: (error: OAuth2Error) => Store },
): () => Store {
  const made = new WeakMap<StoreBackend, Store>();
  let file: Store | undefined;
  return () => {
    const backend = storeBackend(RED);
    if (backend.type === 'file') return (file ??= choices.file());
    let store = made.get(backend);
    if (!store) {
      store = backend.type === 'redis' ? choices.redis(backend) : choices.invalid(backend.error);
      made.set(backend, store);
    }
    return store;
  };
}

/**
 * A store kept in one encrypted file of the user directory (one instance), opened on first use with the
 * instance's keys (a change of credential secret re-seals the files first, see instance-secret.ts). `failure`
 * says a failure to find the keys in the store's own words and code.
 */
export class FileBackedStore<Value, Store extends KeyedStore<Value>> implements KeyedStore<Value> {
  readonly kind = 'file' as const;
  private readonly open: () => Promise<Store>;
  private opened = false;

  constructor(
    userDir: string,
    fileName: string,
    secrets: InstanceSecrets,
    openFile: (options: StoreKeys & { filePath: string }) => Promise<Store>,
    failure: (err: unknown) => OAuth2Error,
  ) {
    this.open = lazyOpen(async () => {
      let keys: StoreKeys;
      try {
        keys = await storeKeys(userDir, secrets);
      } catch (err) {
        throw failure(err);
      }
      const store = await openFile({ filePath: path.join(userDir, fileName), ...keys });
      this.opened = true;
      return store;
    });
    void migrateEarly(userDir, secrets);
  }

  async get(id: string): Promise<Value | undefined> {
    return (await this.open()).get(id);
  }

  async set(id: string, value: Value): Promise<void> {
    return (await this.open()).set(id, value);
  }

  async delete(id: string): Promise<void> {
    return (await this.open()).delete(id);
  }

  async ids(): Promise<string[]> {
    return (await this.open()).ids();
  }

  async flush(): Promise<void> {
    if (this.opened) await (await this.open()).flush();
  }
}

/**
 * A store on Redis, shared by the instances. One store per Redis connection of the backend: the backend closes
 * its connection when no node uses it and opens a new one on the next use, so the store follows the connection
 * (and what it remembers of unwritten values lives as long as the connection, which outlives a redeploy).
 */
export class RedisBackedStore<Value, Store extends KeyedStore<Value>> implements KeyedStore<Value> {
  readonly kind = 'redis' as const;
  private readonly stores = new WeakMap<RedisConnection, Store>();

  constructor(
    protected readonly backend: RedisBackend,
    private readonly make: (connection: RedisConnection, secret: string) => Store,
  ) {}

  /** For a node: the store on a connection it holds until `release`. */
  protected acquire(): { store: Store; connection: RedisConnection; release: () => void } {
    const secret = this.backend.secret(); // before acquiring: a missing secret opens no connection
    const { connection, release } = this.backend.acquire();
    return { store: this.storeFor(connection, secret), connection, release };
  }

  /** For a short task (admin routes, the deploy sweep). */
  protected current(): Store {
    const secret = this.backend.secret();
    return this.storeFor(this.backend.connection(), secret);
  }

  async get(id: string): Promise<Value | undefined> {
    return this.current().get(id);
  }

  async set(id: string, value: Value): Promise<void> {
    return this.current().set(id, value);
  }

  async delete(id: string): Promise<void> {
    return this.current().delete(id);
  }

  async ids(): Promise<string[]> {
    return this.current().ids();
  }

  /** Writes resolve once Redis acknowledged them; the nodes flush the stores they attached. */
  async flush(): Promise<void> {
    // Nothing beyond the nodes' own stores.
  }

  private storeFor(connection: RedisConnection, secret: string): Store {
    let store = this.stores.get(connection);
    if (!store) {
      store = this.make(connection, secret);
      this.stores.set(connection, store);
    }
    return store;
  }
}

/**
 * The store a runtime uses when httpOAuth2.store is invalid: every use reports the setting's error (the token
 * and trigger stores add their own `attach`).
 */
export abstract class InvalidStore<Value> implements KeyedStore<Value> {
  readonly kind = 'invalid' as const;
  constructor(readonly error: OAuth2Error) {}
  get(): Promise<Value | undefined> {
    return Promise.reject(this.error);
  }
  set(): Promise<void> {
    return Promise.reject(this.error);
  }
  delete(): Promise<void> {
    return Promise.reject(this.error);
  }
  ids(): Promise<string[]> {
    return Promise.reject(this.error);
  }
  async flush(): Promise<void> {
    // nothing was ever written
  }
}
