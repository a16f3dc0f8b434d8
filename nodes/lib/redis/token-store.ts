/**
 * The token store on Redis, for several Node-RED instances running the same flows (issue 8). It is also the
 * RenewalCoordination those instances need: a cluster-wide refresh lock with a fencing number, and change
 * announcements.
 *
 * Layout, under the configured key prefix (`key()` of RedisConnection):
 *
 *   tokens:<id>          hash { v: base64 of the sealed StoredTokens, f: fencing number of the write }
 *   token-fence:<id>     counter: every write, delete and lock acquisition draws the next number
 *   token-lock:<id>      the refresh lock (random holder token, with an expiry); see lock.ts
 *   token-refreshing:<id> the fence of a holder whose refresh request is at the provider (removed when it ends,
 *                        and with the tokens)
 *   tokens-changed       pub/sub channel: the connection id (never a token) after every write and delete
 *
 * - Values are sealed exactly as the file store's (../sealed/crypto: AES-256-GCM, key by HKDF-SHA256 from the
 *   secret shared by the instances), bound to their key (see ./sealed); nothing in Redis is in clear except
 *   connection ids and fencing numbers.
 * - `set` resolves once Redis acknowledged the write. How durable that is depends on Redis's own persistence:
 *   with `appendonly yes` and `appendfsync always` an acknowledged write survives a Redis crash; with
 *   `everysec` (Redis's default when AOF is on) up to a second of writes can be lost; with no AOF, a restart
 *   of Redis loses every login. A lost rotated refresh token means a new login: configure AOF.
 * - Each write and its announcement happen in one Lua script, so a write is never left unannounced.
 * - Errors are OAUTH2_TOKEN_STORE_FAILED made by `redisFailure`: never ioredis's message, never a value.
 * - One Redis (or a primary with replicas/Sentinel); Redis Cluster is not supported (the scripts use several
 *   keys of one connection without hash tags).
 */
import { OAuth2Error } from '../errors';
import { sealJson } from '../sealed/crypto';
import { openUnderKey } from './sealed';
import { isTokenSet } from '../tokens/file-token-store';
import type { RenewalCoordination, RenewalLease, StoredTokens, TokenStore } from '../tokens/token-store';
import { redisFailure, type RedisConnection } from './client';
import { FencedLock, type HeldLock, type LockKeys } from './lock';

/** Unconditional write (a login, the first load's precedence): draws a fence, so older leases lose. */
const SET = `
local f = redis.call('INCR', KEYS[2])
redis.call('HSET', KEYS[1], 'v', ARGV[1], 'f', f)
redis.call('PUBLISH', ARGV[2], ARGV[3])
return f`;

/**
 * Write under a lease: only while no other fence was drawn since the lease's (no later lease, write or
 * delete). This is stricter than "the stored fence is lower than ours": it also refuses after a delete (a
 * logout must not be undone by a refresh that was running) and after a later lease that has not written yet.
 */
const SET_FENCED = `
local fence = tonumber(ARGV[1])
local latest = tonumber(redis.call('GET', KEYS[2]) or '0')
local stored = tonumber(redis.call('HGET', KEYS[1], 'f') or '0')
if latest ~= fence or stored > fence then return 0 end
redis.call('HSET', KEYS[1], 'v', ARGV[2], 'f', fence)
redis.call('PUBLISH', ARGV[3], ARGV[4])
return 1`;

/**
 * Seed: writes only when the fence counter does not exist, i.e. nothing was ever written, deleted or locked for
 * this connection (the counter never expires and every one of those draws from it). A deleted login (logout)
 * leaves the counter behind, so an old copy cannot bring it back.
 */
const SEED = `
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
local f = redis.call('INCR', KEYS[2])
redis.call('HSET', KEYS[1], 'v', ARGV[1], 'f', f)
redis.call('PUBLISH', ARGV[2], ARGV[3])
return 1`;

/** Clears the in-flight mark of a refresh, if it is still this holder's (its fence). */
const CLEAR_MARK = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`;

/** How long an in-flight mark is kept: far longer than any refresh; a mark this old says nothing any more. */
const REFRESH_MARK_TTL_MS = 7 * 24 * 60 * 60 * 1000;

/** Delete: draws a fence too (a renewal still running elsewhere cannot write the tokens back). */
const DELETE = `
redis.call('INCR', KEYS[2])
redis.call('DEL', KEYS[3])
local n = redis.call('DEL', KEYS[1])
if n > 0 then redis.call('PUBLISH', ARGV[1], ARGV[2]) end
return n`;

export interface RedisTokenStoreOptions {
  connection: RedisConnection;
  /** Key material shared by every instance (httpOAuth2.store.secret, else credentialSecret). */
  secret: string;
  /**
   * How long a renewal waits for another instance's lock before failing; default: the lock's TTL, and at least
   * 30 s (the holder extends a short lock for as long as its token request takes).
   */
  lockWaitMs?: number;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isStoredTokens(value: unknown): value is StoredTokens {
  return (
    isRecord(value) &&
    typeof value.updatedAt === 'number' &&
    isTokenSet(value.tokens) &&
    (value.loginRequired === undefined || typeof value.loginRequired === 'boolean') &&
    (value.loginRequiredReason === undefined || value.loginRequiredReason === 'renewerStopped')
  );
}

/** Glob-escapes a key prefix for SCAN MATCH (the settings already refuse * ? [ ]; backslash stays possible). */
function globEscape(text: string): string {
  return text.replace(/[\\*?[\]]/g, (c) => `\\${c}`);
}

export class RedisTokenStore implements TokenStore, RenewalCoordination {
  readonly connection: RedisConnection;
  private readonly secret: string;
  private readonly lock: FencedLock;
  private readonly channel: string;
  private readonly listeners = new Set<(connectionId: string | undefined) => void>();
  private readonly pending = new Set<Promise<unknown>>();
  private subscribed = false;
  private subscribing: Promise<void> | undefined;
  /**
   * The one listener this store registers on the channel. Every retry of a failed subscribe passes this same
   * function, so retries never add a second one (each would deliver every announcement once more).
   */
  private readonly onMessage = (message: string): void => this.notify(message);

  constructor(options: RedisTokenStoreOptions) {
    if (typeof options.secret !== 'string' || options.secret.length === 0) {
      throw new OAuth2Error('OAUTH2_TOKEN_STORE_FAILED', 'The Redis token store needs an encryption secret; none was given.');
    }
    this.connection = options.connection;
    this.secret = options.secret;
    const ttlMs = options.connection.settings.lockTtlMs;
    this.lock = new FencedLock(options.connection, { ttlMs, waitLimitMs: options.lockWaitMs ?? Math.max(ttlMs, 30_000) });
    this.channel = options.connection.key('tokens-changed');
    this.connection.on('status', (status) => {
      if (status === 'ready' && this.listeners.size > 0 && !this.subscribed) this.ensureSubscribed();
    });
    this.connection.on('reconnected', () => {
      // Announcements made while this instance was cut off are lost: every listener re-reads.
      this.notify(undefined);
    });
  }

  // --- TokenStore ------------------------------------------------------------------------------------------

  async get(connectionId: string): Promise<StoredTokens | undefined> {
    let value: string | null;
    try {
      value = await this.connection.client.hget(this.dataKey(connectionId), 'v');
    } catch (err) {
      throw redisFailure('OAUTH2_TOKEN_STORE_FAILED', err, 'read tokens', this.connection.where);
    }
    if (value === null) return undefined;
    return this.open(connectionId, value);
  }

  set(connectionId: string, value: StoredTokens): Promise<void> {
    const sealed = this.seal(connectionId, value);
    return this.track(async () => {
      try {
        await this.connection.client.eval(SET, 2, this.dataKey(connectionId), this.fenceKey(connectionId), sealed, this.channel, connectionId);
      } catch (err) {
        throw redisFailure('OAUTH2_TOKEN_STORE_FAILED', err, 'write tokens', this.connection.where);
      }
    });
  }

  seedIfNeverStored(connectionId: string, value: StoredTokens): Promise<boolean> {
    const sealed = this.seal(connectionId, value);
    let written = false;
    return this.track(async () => {
      try {
        const n = await this.connection.client.eval(SEED, 2, this.dataKey(connectionId), this.fenceKey(connectionId), sealed, this.channel, connectionId);
        written = Number(n) === 1;
      } catch (err) {
        throw redisFailure('OAUTH2_TOKEN_STORE_FAILED', err, 'write tokens', this.connection.where);
      }
    }).then(() => written);
  }

  delete(connectionId: string): Promise<void> {
    return this.track(async () => {
      try {
        // The in-flight mark goes with the tokens: a refresh of the next login's tokens was never at the provider
        // before it. The fence counter stays (a delete draws a number too: a late write of an earlier holder is
        // refused), and a lock expires by itself.
        await this.connection.client.eval(DELETE, 3, this.dataKey(connectionId), this.fenceKey(connectionId), this.markKey(connectionId), this.channel, connectionId);
      } catch (err) {
        throw redisFailure('OAUTH2_TOKEN_STORE_FAILED', err, 'delete tokens', this.connection.where);
      }
    });
  }

  async ids(): Promise<string[]> {
    const head = this.connection.key('tokens', '');
    const pattern = `${globEscape(head)}*`;
    const ids = new Set<string>();
    let cursor = '0';
    try {
      do {
        const [next, keys] = await this.connection.client.scan(cursor, 'MATCH', pattern, 'COUNT', 500);
        cursor = next;
        for (const key of keys) {
          try {
            ids.add(decodeURIComponent(key.slice(head.length)));
          } catch {
            // not a key this store wrote
          }
        }
      } while (cursor !== '0');
    } catch (err) {
      throw redisFailure('OAUTH2_TOKEN_STORE_FAILED', err, 'list tokens', this.connection.where);
    }
    return [...ids];
  }

  /** Every write resolves once acknowledged; this waits for the ones still in flight (never rejects). */
  async flush(): Promise<void> {
    await Promise.allSettled([...this.pending]);
  }

  // --- RenewalCoordination ---------------------------------------------------------------------------------

  withRenewalLock<T>(connectionId: string, fn: (lease: RenewalLease) => Promise<T>): Promise<T> {
    const markKey = this.markKey(connectionId);
    return this.lock.withLock(
      this.lockKeys(connectionId),
      async (held) => {
        // A mark of an earlier holder: its refresh was at the provider when it stopped (or lost Redis).
        const mark = await this.connection.client.get(markKey).catch(() => null);
        let marked = false;
        try {
          return await fn({
            write: (value) => this.writeFenced(connectionId, value, held),
            remainingMs: () => held.remainingMs(),
            retain: () => held.retain(),
            abandoned: mark !== null && mark !== String(held.fence),
            beginRefresh: async () => {
              await this.connection.client.set(markKey, String(held.fence), 'PX', REFRESH_MARK_TTL_MS).then(
                () => {
                  marked = true;
                },
                () => undefined,
              );
            },
          });
        } finally {
          // Finished here, whatever the outcome: only a holder that stops mid-request leaves its mark. An earlier
          // holder's mark is cleared too once this holder's renewal ended (its outcome is the one that counts).
          if (marked || mark !== null) {
            await this.connection.client.eval(CLEAR_MARK, 1, markKey, marked ? String(held.fence) : String(mark)).catch(() => undefined);
          }
        }
      },
      // Woken by the holder's announcement rather than only by polling.
      (wake) => this.onChange((id) => {
        if (id === connectionId) wake();
      }),
    );
  }

  onChange(listener: (connectionId: string | undefined) => void): () => void {
    this.listeners.add(listener);
    this.ensureSubscribed();
    return () => {
      this.listeners.delete(listener);
    };
  }

  /** The in-flight mark of a refresh at the provider (`token-refreshing:<id>`; tests read it). */
  markKey(connectionId: string): string {
    return this.connection.key('token-refreshing', connectionId);
  }

  /** The lock's keys for a connection (tests use them to play a stalled holder). */
  lockKeys(connectionId: string): LockKeys {
    return { lock: this.connection.key('token-lock', connectionId), fence: this.fenceKey(connectionId) };
  }

  // ---------------------------------------------------------------------------------------------------------

  private writeFenced(connectionId: string, value: StoredTokens, held: HeldLock): Promise<void> {
    const sealed = this.seal(connectionId, value);
    return this.track(async () => {
      let written: unknown;
      try {
        written = await this.connection.client.eval(
          SET_FENCED,
          2,
          this.dataKey(connectionId),
          this.fenceKey(connectionId),
          String(held.fence),
          sealed,
          this.channel,
          connectionId,
        );
      } catch (err) {
        throw redisFailure('OAUTH2_TOKEN_STORE_FAILED', err, 'write tokens', this.connection.where);
      }
      if (Number(written) !== 1) {
        throw new OAuth2Error(
          'OAUTH2_TOKEN_STORE_FAILED',
          'The renewed tokens were not stored: the refresh lock had expired and newer tokens (or a logout) were stored meanwhile.',
          { params: { reason: 'superseded' } },
        );
      }
    });
  }

  private ensureSubscribed(): void {
    if (this.subscribed || this.subscribing) return;
    this.subscribing = this.connection
      .subscribe(this.channel, this.onMessage)
      .then(
        () => {
          this.subscribed = true;
        },
        () => {
          // Redis away: tried again when the connection is ready.
        },
      )
      .finally(() => {
        this.subscribing = undefined;
      });
  }

  private notify(connectionId: string | undefined): void {
    for (const listener of [...this.listeners]) {
      try {
        listener(connectionId);
      } catch {
        // a listener's bug stays its own
      }
    }
  }

  private track(write: () => Promise<void>): Promise<void> {
    const promise = write();
    this.pending.add(promise);
    const done = (): void => {
      this.pending.delete(promise);
    };
    promise.then(done, done);
    return promise;
  }

  /** Sealed bound to its key: a value copied under another connection's key does not open there. */
  private seal(connectionId: string, value: StoredTokens): string {
    return sealJson(value, this.secret, this.dataKey(connectionId)).toString('base64');
  }

  private open(connectionId: string, value: string): StoredTokens {
    let data: unknown;
    try {
      data = openUnderKey(Buffer.from(value, 'base64'), [this.secret], this.dataKey(connectionId));
    } catch {
      // Left as it is: the instance with the right secret can still read it.
      throw new OAuth2Error(
        'OAUTH2_TOKEN_STORE_FAILED',
        'Token store on Redis: a stored value could not be decrypted. Either the instances do not share the same secret ' +
          '(httpOAuth2.store.secret or credentialSecret), or the value was modified or damaged. It was left untouched.',
        { params: { reason: 'undecryptable' } },
      );
    }
    if (!isStoredTokens(data)) {
      throw new OAuth2Error('OAUTH2_TOKEN_STORE_FAILED', 'Token store on Redis: a stored value decrypted but does not hold tokens. It was left untouched.', {
        params: { reason: 'undecryptable' },
      });
    }
    return data;
  }

  private dataKey(connectionId: string): string {
    return this.connection.key('tokens', connectionId);
  }

  private fenceKey(connectionId: string): string {
    return this.connection.key('token-fence', connectionId);
  }
}

/** Opens the Redis token store on `connection` (async like the file store's opener; refuses an empty secret). */
export async function openRedisTokenStore(options: RedisTokenStoreOptions): Promise<RedisTokenStore> {
  return new RedisTokenStore(options);
}
