/**
 * A lock on Redis with a fencing number, shared by every Node-RED instance using the same Redis and key prefix.
 *
 * - Taking it: `SET lockKey <random token> NX PX ttl` and, in the same script, `INCR fenceKey`: each holder
 *   gets a fencing number greater than every earlier holder's (and than every other write that drew one from
 *   the same counter). Whatever the holder writes is conditional on that number (see token-store.ts), so a
 *   holder whose lock expired (a stalled process, a lost connection) cannot overwrite what a later one wrote.
 * - Holding it: the holder extends the expiry while its work runs (compare-and-PEXPIRE: only while the value is
 *   still its own token), every ttl/3. The holder also keeps a local deadline on the monotonic clock (when the
 *   last successful acquisition or extension was sent, plus the TTL, minus a margin): while Redis cannot be
 *   reached no extension succeeds, and past that deadline the lock may have expired and been taken by another
 *   instance, whatever Redis says later. Work that must only run under the lock (a call to the token endpoint)
 *   checks `remainingMs()` first.
 * - Releasing it: compare-and-DEL, so a holder whose lock expired and was taken by another cannot release the
 *   other's lock. A holder that must keep others out after its work ended (renewed tokens it could not store)
 *   calls `retain()`: the lock is then left to expire instead of being released.
 * - Waiting for it: polling with jitter (25 to 100 ms), woken early by `wake` (the token change channel), for
 *   at most `waitLimitMs`; then OAUTH2_TOKEN_STORE_FAILED, retryable.
 *
 * This is the single-Redis lock (not Redlock): the same Redis holds the lock and the data it protects, so a
 * failover that loses the lock loses the fenced data with it, and the fence still orders what survives.
 */
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { OAuth2Error } from '../errors';
import { redisFailure, type RedisConnection } from './client';

/** SET NX PX and INCR the fence, atomically. Returns the fence, or 0 when the lock is held by someone else. */
const ACQUIRE = `
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return redis.call('INCR', KEYS[2])
end
return 0`;

/** PEXPIRE only while the lock still holds our token. */
const EXTEND = `
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0`;

/** DEL only while the lock still holds our token. */
const RELEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0`;

export interface LockKeys {
  /** The lock itself (a string key holding the holder's random token, with an expiry). */
  lock: string;
  /** The fencing counter (never expires: numbers must keep growing). */
  fence: string;
}

export interface HeldLock {
  readonly keys: LockKeys;
  /** Random per acquisition: only its holder can extend or release the lock. */
  readonly token: string;
  /** The fencing number of this acquisition. */
  readonly fence: number;
  /** Set once an extension found the lock gone (expired, or taken by another holder). */
  readonly lost: boolean;
  /**
   * How long the lock is surely still ours (ms, local monotonic clock): from the last successful acquisition or
   * extension, the TTL minus a safety margin. 0 once that passed or the lock is known lost.
   */
  remainingMs(): number;
  /** Leave the lock to expire when the work ends instead of releasing it (withLock skips the release). */
  retain(): void;
}

export interface FencedLockOptions {
  ttlMs: number;
  /** How long `acquire` waits for a busy lock before failing. */
  waitLimitMs: number;
  /** Source of jitter in [0, 1); tests may pin it. */
  random?: () => number;
}

/** The margin kept before the lock's expiry: covers a request sent just before the deadline. */
export function lockMarginMs(ttlMs: number): number {
  return Math.max(250, Math.min(Math.floor(ttlMs / 5), 5000));
}

class Held implements HeldLock {
  lost = false;
  retained = false;
  /** performance.now() until which the lock is surely ours. */
  validUntil: number;
  constructor(
    readonly keys: LockKeys,
    readonly token: string,
    readonly fence: number,
    sentAt: number,
    private readonly ttlMs: number,
  ) {
    this.validUntil = sentAt + ttlMs - lockMarginMs(ttlMs);
  }

  remainingMs(): number {
    if (this.lost) return 0;
    return Math.max(0, this.validUntil - performance.now());
  }

  retain(): void {
    this.retained = true;
  }

  /** An extension sent at `sentAt` succeeded: the lock lives ttl from then (Redis ran it after we sent it). */
  extended(sentAt: number): void {
    this.validUntil = Math.max(this.validUntil, sentAt + this.ttlMs - lockMarginMs(this.ttlMs));
  }
}

/** A fenced lock for one connection's Redis; one instance serves any number of lock names. */
export class FencedLock {
  private readonly connection: RedisConnection;
  private readonly ttlMs: number;
  private readonly waitLimitMs: number;
  private readonly random: () => number;

  constructor(connection: RedisConnection, options: FencedLockOptions) {
    this.connection = connection;
    this.ttlMs = options.ttlMs;
    this.waitLimitMs = options.waitLimitMs;
    this.random = options.random ?? Math.random;
  }

  /** One attempt: the held lock, or undefined when another holder has it. Rejects when Redis fails. */
  async tryAcquire(keys: LockKeys): Promise<HeldLock | undefined> {
    const status = this.connection.status();
    if (status === 'unavailable' || status === 'closed') {
      // Not even queued: a command waiting in ioredis's offline queue runs when Redis is back, whether or not
      // anyone still waits for its answer (see below).
      throw redisFailure('OAUTH2_TOKEN_STORE_FAILED', new Error('Connection is closed.'), 'take the refresh lock', this.connection.where);
    }
    const token = randomBytes(16).toString('hex');
    let fence: unknown;
    const sentAt = performance.now();
    try {
      fence = await this.connection.client.eval(ACQUIRE, 2, keys.lock, keys.fence, token, String(this.ttlMs));
    } catch (err) {
      // A timed-out command may still reach Redis later (it stays queued while ioredis reconnects, or Redis ran
      // it and the answer was lost): the lock would then be held by nobody until its TTL, and every instance
      // would wait that long after an outage. A release with the same token, queued right behind it on the
      // same connection, undoes that; if the acquisition never ran, the release finds nothing to delete.
      this.connection.client.eval(RELEASE, 1, keys.lock, token).catch(() => undefined);
      throw redisFailure('OAUTH2_TOKEN_STORE_FAILED', err, 'take the refresh lock', this.connection.where);
    }
    const n = Number(fence);
    return Number.isSafeInteger(n) && n > 0 ? new Held(keys, token, n, sentAt, this.ttlMs) : undefined;
  }

  /**
   * Waits for the lock: retries every 25 to 100 ms (sooner when `wake` fires) until it is free or
   * `waitLimitMs` passed. `wake` registers a listener and returns its removal.
   */
  async acquire(keys: LockKeys, wake?: (listener: () => void) => () => void): Promise<HeldLock> {
    const deadline = Date.now() + this.waitLimitMs;
    let woken: (() => void) | undefined;
    const unwake = wake?.(() => woken?.());
    try {
      for (;;) {
        const held = await this.tryAcquire(keys);
        if (held) return held;
        const left = deadline - Date.now();
        if (left <= 0) throw busyError(this.waitLimitMs);
        const ms = Math.min(left, 25 + Math.floor(this.random() * 75));
        await new Promise<void>((resolve) => {
          const timer = setTimeout(done, ms);
          function done(): void {
            clearTimeout(timer);
            woken = undefined;
            resolve();
          }
          woken = done;
        });
      }
    } finally {
      unwake?.();
    }
  }

  /** Extends the expiry to ttlMs from now; false (and `lost` set) when the lock is no longer ours. */
  async extend(held: HeldLock): Promise<boolean> {
    let result: unknown;
    const sentAt = performance.now();
    try {
      result = await this.connection.client.eval(EXTEND, 1, held.keys.lock, held.token, String(this.ttlMs));
    } catch (err) {
      throw redisFailure('OAUTH2_TOKEN_STORE_FAILED', err, 'extend the refresh lock', this.connection.where);
    }
    const ok = Number(result) === 1;
    if (ok) (held as Held).extended(sentAt);
    else (held as Held).lost = true;
    return ok;
  }

  /** Releases the lock if it is still ours; false when it had expired or belongs to another holder now. */
  async release(held: HeldLock): Promise<boolean> {
    let result: unknown;
    try {
      result = await this.connection.client.eval(RELEASE, 1, held.keys.lock, held.token);
    } catch (err) {
      throw redisFailure('OAUTH2_TOKEN_STORE_FAILED', err, 'release the refresh lock', this.connection.where);
    }
    return Number(result) === 1;
  }

  /**
   * Runs `fn` holding the lock: waits for it, extends it every ttl/3 while `fn` runs, releases it afterwards
   * unless `fn` called `held.retain()` (a failed release is left to the expiry: the next holder waits at most
   * ttlMs). A failed extension (Redis away) does not stop `fn`: it shows in `held.remainingMs()`, which `fn`
   * checks before anything that must only run under the lock; the fenced write decides whether the work counts.
   */
  async withLock<T>(keys: LockKeys, fn: (held: HeldLock) => Promise<T>, wake?: (listener: () => void) => () => void): Promise<T> {
    const held = (await this.acquire(keys, wake)) as Held;
    const timer = setInterval(() => {
      if (!held.lost) this.extend(held).catch(() => undefined);
    }, Math.max(100, Math.floor(this.ttlMs / 3)));
    timer.unref();
    try {
      return await fn(held);
    } finally {
      clearInterval(timer);
      if (!held.retained) await this.release(held).catch(() => false);
    }
  }
}

function busyError(waitLimitMs: number): OAuth2Error {
  return new OAuth2Error(
    'OAUTH2_TOKEN_STORE_FAILED',
    `Another Node-RED instance has been renewing this connection's token for more than ${Math.round(waitLimitMs / 1000)} s (the refresh lock on Redis is still held); try again.`,
    { params: { reason: 'lockBusy' }, retryable: true },
  );
}
