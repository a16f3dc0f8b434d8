/**
 * The one fenced lease on Redis, under both the refresh lock (lock.ts) and the trigger lease (lease.ts).
 *
 * - take: one script, atomically `SET key token NX PX ttl` and `INCR fenceKey`: every holding draws a fencing
 *   number greater than every earlier one (and than every other write that drew from the same counter), so a
 *   write stamped with an older holding can be refused after a newer one wrote. A holder whose key still holds
 *   its token (a renewal failed, then Redis came back in time) gets it back as it was (fence 0: unchanged).
 *   A refused take says how long the other holding has left (PTTL).
 * - renew: compare-and-PEXPIRE, only while the key still holds the holder's token; optionally refreshing a mark
 *   key in the same script (the trigger lease's configuration mark).
 * - release: compare-and-DEL, so a holder never deletes a holding another instance took after its own expired.
 *
 * The local deadline of a holding, `deadline(sentAt)`, is conservative: `sentAt` is when the take or renewal
 * that succeeded was SENT (Redis started its ttl later than that, never earlier), on the monotonic clock, minus a
 * margin covering clock-rate differences and the time between a check and the write it guards.
 *
 * A take whose answer is lost (a timeout, a reconnect) may still have run in Redis: a holding nobody knows of
 * would keep every instance out until it expires. A release with the same token, queued right behind it on the
 * same connection, undoes that; if the take never ran, the release finds nothing to delete.
 *
 * This is the single-Redis lease (not Redlock): the same Redis holds the lease and the data it protects, so a
 * failover that loses the lease loses the fenced data with it, and the fence still orders what survives.
 */
import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type { OAuth2ErrorCode } from '../errors';
import { redisFailure, type RedisConnection } from './client';

/**
 * KEYS: key, fence counter. ARGV: the token to reclaim ('' none), a new token, ttl ms.
 * Returns {1, fence} taken (fence 0: our own holding kept), {0, pttl} held by another.
 */
const TAKE = `
local current = redis.call('GET', KEYS[1])
if current and ARGV[1] ~= '' and current == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  return {1, 0}
end
if current then return {0, redis.call('PTTL', KEYS[1])} end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return {1, redis.call('INCR', KEYS[2])}
`;

/** KEYS: key [, mark]. ARGV: token, ttl ms [, mark value, mark ttl ms]. 1 renewed, 0 not ours. */
const RENEW = `
if redis.call('GET', KEYS[1]) == ARGV[1] then
  if KEYS[2] then redis.call('SET', KEYS[2], ARGV[3], 'PX', ARGV[4]) end
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
`;

/** KEYS: key. ARGV: token. 1 released, 0 not ours. */
const RELEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`;

export interface LeaseKeys {
  /** The holding itself: a string key with the holder's random token and an expiry. */
  key: string;
  /** The fencing counter (never expires: numbers must keep growing). */
  fenceKey: string;
}

export type TakeResult =
  /** `fence` is 0 when the holder's own holding was kept (reclaimed) rather than newly drawn. */
  | { taken: true; token: string; fence: number; sentAt: number }
  | { taken: false; otherRemainingMs: number | undefined };

export interface FencedLeaseOptions {
  ttlMs: number;
  /** Kept before the expiry in `deadline()`. */
  marginMs: number;
  /** The error code of a Redis failure, and the name said in it ("take the <label>"). */
  code: OAuth2ErrorCode;
  label: string;
  /** Local clock for deadlines; default performance.now() (monotonic: a wall-clock step cannot stretch a holding). */
  now?: () => number;
}

/** The fenced-lease operations on one connection; stateless beyond its options (holdings are the caller's). */
export class FencedLease {
  readonly ttlMs: number;
  readonly marginMs: number;
  readonly now: () => number;
  private readonly code: OAuth2ErrorCode;
  private readonly label: string;

  constructor(
    private readonly connection: RedisConnection,
    options: FencedLeaseOptions,
  ) {
    this.ttlMs = options.ttlMs;
    this.marginMs = options.marginMs;
    this.code = options.code;
    this.label = options.label;
    this.now = options.now ?? (() => performance.now());
  }

  /** Until when (on `now()`) a holding taken or renewed by a command sent at `sentAt` is surely still held. */
  deadline(sentAt: number): number {
    return sentAt + this.ttlMs - this.marginMs;
  }

  /** One attempt. `reclaim`: the caller's previous token, kept when the key still holds it. Rejects when Redis fails. */
  async take(keys: LeaseKeys, reclaim?: string): Promise<TakeResult> {
    const token = randomUUID();
    const sentAt = this.now();
    let reply: unknown;
    try {
      reply = await this.connection.client.eval(TAKE, 2, keys.key, keys.fenceKey, reclaim ?? '', token, String(this.ttlMs));
    } catch (err) {
      void this.release(keys, token).catch(() => undefined);
      throw redisFailure(this.code, err, `take the ${this.label}`, this.connection.where);
    }
    const [taken, value] = Array.isArray(reply) ? reply.map(Number) : [NaN, NaN];
    if (taken !== 1) return { taken: false, otherRemainingMs: Number.isFinite(value) && value >= 0 ? value : undefined };
    if (value === 0) return { taken: true, token: reclaim ?? token, fence: 0, sentAt };
    if (!Number.isSafeInteger(value) || value < 0) throw redisFailure(this.code, new Error(`unexpected fence ${String(value)}`), `take the ${this.label}`, this.connection.where);
    return { taken: true, token, fence: value, sentAt };
  }

  /** Extends the holding to ttl from now; true renewed, false no longer ours. Rejects when Redis fails. */
  async renew(keys: LeaseKeys, token: string, mark?: { key: string; value: string; ttlMs: number }): Promise<boolean> {
    let result: unknown;
    try {
      result = mark
        ? await this.connection.client.eval(RENEW, 2, keys.key, mark.key, token, String(this.ttlMs), mark.value, String(mark.ttlMs))
        : await this.connection.client.eval(RENEW, 1, keys.key, token, String(this.ttlMs));
    } catch (err) {
      throw redisFailure(this.code, err, `extend the ${this.label}`, this.connection.where);
    }
    return Number(result) === 1;
  }

  /** Releases the holding if it is still ours; false when it had expired or another holds it now. Rejects when Redis fails. */
  async release(keys: LeaseKeys, token: string): Promise<boolean> {
    let result: unknown;
    try {
      result = await this.connection.client.eval(RELEASE, 1, keys.key, token);
    } catch (err) {
      throw redisFailure(this.code, err, `release the ${this.label}`, this.connection.where);
    }
    return Number(result) === 1;
  }
}
