/**
 * The one Redis connection (plus one subscriber connection, made on first subscribe) that the token store,
 * the refresh lock, the trigger state store and the trigger leases of a Node-RED instance share.
 *
 * - ioredis is an optional peer dependency, loaded here only when the Redis store is configured.
 * - Commands fail within `commandTimeoutMs` while Redis is away (no unbounded offline queue); the client keeps
 *   reconnecting with capped backoff forever and says so through `status` events.
 * - Nothing here logs. Errors are reduced to a kind (unreachable, timeout, auth, other): ioredis messages can
 *   name hosts, and the URL can hold a password.
 */
import { EventEmitter } from 'node:events';
import type { Redis as RedisClient, RedisOptions } from 'ioredis';
import { OAuth2Error, type OAuth2ErrorCode } from '../errors';
import { silenceIoredisDebug } from '../silence-debug';
import { describeRedis, type RedisStoreSettings } from './settings';

export type RedisStatus = 'connecting' | 'ready' | 'unavailable' | 'closed';

export type RedisFailureKind = 'unreachable' | 'timeout' | 'auth' | 'other';

type RedisConstructor = new (url: string, options: RedisOptions) => RedisClient;

/** Loads ioredis, or throws OAUTH2_INVALID_CONFIG saying how to install it. */
export function loadIoredis(): RedisConstructor {
  let mod: unknown;
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports -- optional peer: loaded only when configured
    mod = require('ioredis');
  } catch {
    throw new OAuth2Error(
      'OAUTH2_INVALID_CONFIG',
      'The Redis store is configured but the ioredis package is not installed: run "npm install ioredis" in the Node-RED user directory.',
      { params: { field: 'httpOAuth2.store.type', reason: 'ioredisMissing' } },
    );
  }
  silenceIoredisDebug();
  const ctor = (mod as { default?: unknown }).default ?? mod;
  return ctor as RedisConstructor;
}

export function classifyRedisError(err: unknown): RedisFailureKind {
  const e = err as { name?: unknown; message?: unknown; code?: unknown } | undefined;
  const message = typeof e?.message === 'string' ? e.message : '';
  const code = typeof e?.code === 'string' ? e.code : '';
  if (/timed out/i.test(message) || code === 'ETIMEDOUT') return 'timeout';
  if (/NOAUTH|WRONGPASS|NOPERM|invalid password|AUTH/.test(message)) return 'auth';
  if (
    ['ECONNREFUSED', 'ECONNRESET', 'EHOSTUNREACH', 'ENOTFOUND', 'EPIPE', 'EAI_AGAIN'].includes(code) ||
    /Connection is closed|max retries per request|Stream isn't writeable|enableOfflineQueue|LOADING/i.test(message) ||
    e?.name === 'MaxRetriesPerRequestError'
  ) {
    return 'unreachable';
  }
  return 'other';
}

/**
 * An OAuth2Error with `code` for a failed Redis call: the kind and `doing` only (never ioredis's message).
 * params.reason is `redis-<kind>` for the translated message.
 */
export function redisFailure(code: OAuth2ErrorCode, err: unknown, doing: string, where: string): OAuth2Error {
  if (err instanceof OAuth2Error) return err;
  const kind = classifyRedisError(err);
  const what = {
    unreachable: 'Redis cannot be reached',
    timeout: 'Redis did not answer in time',
    auth: 'Redis refused the credentials',
    other: 'Redis refused the command',
  }[kind];
  return new OAuth2Error(code, `${what} (${where}) while trying to ${doing}.`, {
    params: { reason: `redis-${kind}`, operation: doing },
    retryable: kind !== 'auth',
  });
}

export interface RedisConnectionEvents {
  status: [RedisStatus];
  /** Connected again after an outage: listeners re-read what they cache (they may have missed messages). */
  reconnected: [];
}

export class RedisConnection extends EventEmitter<RedisConnectionEvents> {
  readonly settings: RedisStoreSettings;
  readonly client: RedisClient;
  /** host:port, for messages. */
  readonly where: string;
  private subscriber: RedisClient | undefined;
  private readonly channels = new Map<string, Set<(message: string) => void>>();
  private currentStatus: RedisStatus = 'connecting';
  private everReady = false;

  constructor(settings: RedisStoreSettings, Redis: RedisConstructor = loadIoredis()) {
    super();
    // Every connection node and trigger of the runtime listens here ('status', 'reconnected'): dozens of
    // listeners on one connection are normal, not a leak (each removes its own on close).
    this.setMaxListeners(0);
    this.settings = settings;
    this.where = describeRedis(settings);
    this.client = new Redis(settings.url, this.options('node-red-http-oauth2'));
    this.client.on('error', () => this.setStatus('unavailable'));
    this.client.on('end', () => {
      if (this.currentStatus !== 'closed') this.setStatus('unavailable');
    });
    this.client.on('close', () => {
      if (this.currentStatus === 'ready') this.setStatus('unavailable');
    });
    this.client.on('ready', () => {
      // After an outage, including one the connection started in (never ready before): users of the connection
      // waiting out a backoff (a trigger deployed while Redis was down) must hear that Redis is back.
      const again = this.everReady || this.currentStatus === 'unavailable';
      this.everReady = true;
      this.setStatus('ready');
      if (again) this.safeEmit('reconnected');
    });
    // lazyConnect keeps construction free of side effects; connecting starts here and errors go to 'error'.
    this.client.connect().catch(() => this.setStatus('unavailable'));
  }

  /** prefix + parts joined by ':' (ids are Node-RED node ids: no ':' in them, but keys stay unambiguous anyway). */
  key(...parts: string[]): string {
    return this.settings.keyPrefix + parts.map((p) => encodeURIComponent(p)).join(':');
  }

  status(): RedisStatus {
    return this.currentStatus;
  }

  /**
   * Calls `listener` for every message published on `channel` (a key made with `key()`). Resolves once the
   * subscription is active; the returned function unsubscribes. Rejects when Redis is away, and then the
   * listener is NOT registered (this call took back what it added): the caller retries with subscribe() on
   * 'reconnected', and each retry registers the listener once.
   */
  async subscribe(channel: string, listener: (message: string) => void): Promise<() => void> {
    const sub = this.subscriberClient();
    let set = this.channels.get(channel);
    if (!set) {
      set = new Set();
      this.channels.set(channel, set);
    }
    // A listener already registered by an earlier successful call stays registered whatever this call gives.
    const added = !set.has(listener);
    set.add(listener);
    const unsubscribe = (): void => {
      const current = this.channels.get(channel);
      if (!current) return;
      current.delete(listener);
      if (current.size === 0) {
        this.channels.delete(channel);
        sub.unsubscribe(channel).catch(() => undefined);
      }
    };
    try {
      await sub.subscribe(channel);
    } catch (err) {
      // Taken back, so that the caller's retry does not register it a second time (every message would reach
      // it twice). The channel is dropped when nobody else listens on it.
      if (added) unsubscribe();
      throw redisFailure('OAUTH2_TOKEN_STORE_FAILED', err, 'subscribe', this.where);
    }
    return unsubscribe;
  }

  async close(): Promise<void> {
    if (this.currentStatus === 'closed') return;
    this.setStatus('closed');
    const quit = async (c: RedisClient | undefined): Promise<void> => {
      if (!c) return;
      try {
        await Promise.race([c.quit(), new Promise((r) => setTimeout(r, 1000).unref())]);
      } catch {
        // already gone
      }
      c.disconnect();
    };
    await Promise.all([quit(this.client), quit(this.subscriber)]);
    this.removeAllListeners();
  }

  private options(name: string): RedisOptions {
    const timeout = this.settings.commandTimeoutMs;
    return {
      lazyConnect: true,
      connectionName: name,
      connectTimeout: Math.max(timeout, 1000),
      commandTimeout: timeout,
      // Queue commands only briefly while reconnecting: each fails after one reconnect attempt or the timeout.
      maxRetriesPerRequest: 1,
      enableOfflineQueue: true,
      // Reconnect forever, at most every 2 s: Redis coming back is noticed within seconds.
      retryStrategy: (times: number) => Math.min(100 * 2 ** Math.min(times, 5), 2000),
      reconnectOnError: () => false,
      enableReadyCheck: true,
    };
  }

  private subscriberClient(): RedisClient {
    if (this.subscriber) return this.subscriber;
    // ioredis would resubscribe by itself after a reconnect, with a promise nobody handles: when Redis drops
    // again meanwhile, that rejection is unhandled (invariant 10). The channels are resubscribed here instead.
    const sub = this.client.duplicate({ ...this.options('node-red-http-oauth2-sub'), commandTimeout: undefined, autoResubscribe: false });
    sub.on('error', () => undefined);
    sub.on('ready', () => {
      const channels = [...this.channels.keys()];
      // A failure here is followed by another reconnect, and another 'ready'.
      if (channels.length > 0) sub.subscribe(...channels).catch(() => undefined);
    });
    sub.on('message', (channel: string, message: string) => {
      for (const listener of [...(this.channels.get(channel) ?? [])]) {
        try {
          listener(message);
        } catch {
          // A listener's bug must not stop the others or the subscriber.
        }
      }
    });
    sub.connect().catch(() => undefined);
    this.subscriber = sub;
    return sub;
  }

  private setStatus(status: RedisStatus): void {
    if (this.currentStatus === status || this.currentStatus === 'closed') return;
    this.currentStatus = status;
    this.safeEmit('status', status);
  }

  private safeEmit<K extends keyof RedisConnectionEvents>(event: K, ...args: RedisConnectionEvents[K]): void {
    try {
      (this.emit as (e: K, ...a: RedisConnectionEvents[K]) => boolean)(event, ...args);
    } catch {
      // listeners' bugs stay theirs
    }
  }
}
