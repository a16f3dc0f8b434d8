/**
 * Which store this Node-RED instance uses for tokens and trigger state: the encrypted files in the user
 * directory (default), or Redis when settings.js says `httpOAuth2: { store: { type: 'redis', ... } }`.
 *
 * One backend per runtime (the connection and record-change modules load separately but share it through the
 * RED object). The Redis connection is opened on first use and closed a few seconds after the last node using
 * it closed, so a redeploy keeps it and a stopped runtime (tests, the embedded runtime) lets the process exit.
 */
import { OAuth2Error } from './lib/errors';
import { RedisConnection } from './lib/redis/client';
import { parseStoreSettings, type RedisStoreSettings, type StoreSettings } from './lib/redis/settings';
import { safeSetting } from './instance-secret';
import type { NodeAPI } from './node-red-types';

/**
 * A setting by `RED.settings.get`, else as a property of RED.settings: Node-RED exposes settings.js keys both
 * ways, while node-red-node-test-helper's settings object only has the properties.
 */
function setting(RED: NodeAPI, key: string): unknown {
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
      const credentialSecret = setting(RED, 'credentialSecret');
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
  const value = setting(RED, 'httpOAuth2');
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

/**
 * The store a runtime uses when httpOAuth2.store is invalid: every use reports the setting's error (the token
 * and trigger stores add their own `attach`).
 */
export abstract class InvalidStore<Value> {
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
