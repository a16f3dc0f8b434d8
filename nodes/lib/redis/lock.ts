/**
 * A lock on Redis with a fencing number, shared by every Node-RED instance using the same Redis and key prefix.
 *
 * - Taking it: the fenced lease of fenced-lease.ts: each holder gets a fencing number greater than every
 *   earlier holder's. Whatever the holder writes is conditional on that number (see token-store.ts), so a
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
import { performance } from 'node:perf_hooks';
import { OAuth2Error } from '../errors';
import { redisFailure, type RedisConnection } from './client';
import { FencedLease, type LeaseKeys } from './fenced-lease';

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
    validUntil: number,
  ) {
    this.validUntil = validUntil;
  }

  remainingMs(): number {
    if (this.lost) return 0;
    return Math.max(0, this.validUntil - performance.now());
  }

  retain(): void {
    this.retained = true;
  }
}

function leaseKeys(keys: LockKeys): LeaseKeys {
  return { key: keys.lock, fenceKey: keys.fence };
}

/** A fenced lock for one connection's Redis; one instance serves any number of lock names. */
export class FencedLock {
  private readonly connection: RedisConnection;
  private readonly lease: FencedLease;
  private readonly ttlMs: number;
  private readonly waitLimitMs: number;
  private readonly random: () => number;

  constructor(connection: RedisConnection, options: FencedLockOptions) {
    this.connection = connection;
    this.ttlMs = options.ttlMs;
    this.waitLimitMs = options.waitLimitMs;
    this.random = options.random ?? Math.random;
    this.lease = new FencedLease(connection, { ttlMs: options.ttlMs, marginMs: lockMarginMs(options.ttlMs), code: 'OAUTH2_TOKEN_STORE_FAILED', label: 'refresh lock' });
  }

  /** One attempt: the held lock, or undefined when another holder has it. Rejects when Redis fails. */
  async tryAcquire(keys: LockKeys): Promise<HeldLock | undefined> {
    const status = this.connection.status();
    if (status === 'unavailable' || status === 'closed') {
      // Not even queued: a command waiting in ioredis's offline queue runs when Redis is back, whether or not
      // anyone still waits for its answer.
      throw redisFailure('OAUTH2_TOKEN_STORE_FAILED', new Error('Connection is closed.'), 'take the refresh lock', this.connection.where);
    }
    const result = await this.lease.take(leaseKeys(keys));
    return result.taken ? new Held(keys, result.token, result.fence, this.lease.deadline(result.sentAt)) : undefined;
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
    const sentAt = performance.now();
    const ok = await this.lease.renew(leaseKeys(held.keys), held.token);
    // Redis ran the extension after it was sent: the lock lives ttl from then.
    if (ok) (held as Held).validUntil = Math.max((held as Held).validUntil, this.lease.deadline(sentAt));
    else (held as Held).lost = true;
    return ok;
  }

  /** Releases the lock if it is still ours; false when it had expired or belongs to another holder now. */
  release(held: HeldLock): Promise<boolean> {
    return this.lease.release(leaseKeys(held.keys), held.token);
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
