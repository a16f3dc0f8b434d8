/**
 * A lease on Redis: one holder at a time per name, taken over by another instance when the holder dies. The
 * holding is the fenced lease of fenced-lease.ts (take with reclaim, compare-and-PEXPIRE renewal, compare-and-DEL
 * release); this class keeps it: renewals every ttl / 3, and events when it is taken and lost.
 *
 * held() is local and conservative: true until the fenced lease's deadline (when the last successful take or
 * renewal was SENT, plus the ttl, minus a margin of a fifth of the ttl, at least 100 ms). Two renewals are tried
 * before that deadline; when both fail (Redis away), held() turns false while Redis may still hold the key for
 * us, so the holder stops sending before anybody else can take over.
 *
 * Nothing here throws out of a timer; failed renewals are retried on the schedule and reported by held().
 */
import { EventEmitter } from 'node:events';
import { performance } from 'node:perf_hooks';
import { redisFailure, type RedisConnection } from './client';
import { FencedLease, type LeaseKeys } from './fenced-lease';
import type { PollLease } from '../changes/poll-lease';
import type { TriggerState } from '../changes/types';
import { triggerKeys, type LeaseFence, type RedisTriggerStateStore } from './trigger-store';

export interface RedisLeaseEvents {
  /** This instance took the lease (the fencing number of the holding). */
  acquired: [number];
  /** This instance no longer holds it: refused renewal, renewals failing past the deadline, or released. */
  lost: [];
}

export interface RedisLeaseOptions {
  connection: RedisConnection;
  /** Key parts of the lease, e.g. ['trigger-lease', nodeId]; the fence counter is the same with '-fence'. */
  name: [string, ...string[]];
  ttlMs: number;
  /** Local clock for held()'s deadline; default performance.now() (monotonic: a wall-clock step cannot stretch a holding). */
  now?: () => number;
}

export class RedisLease extends EventEmitter<RedisLeaseEvents> {
  readonly key: string;
  readonly fenceKey: string;
  readonly ttlMs: number;
  protected readonly connection: RedisConnection;
  private readonly now: () => number;
  private readonly lease: FencedLease;
  private readonly keys: LeaseKeys;

  private token: string | undefined;
  private fenceNumber = 0;
  /** Local deadline of the holding (see the top of the file); 0 when not held. */
  private validUntil = 0;
  private renewTimer: NodeJS.Timeout | undefined;
  private lapseTimer: NodeJS.Timeout | undefined;
  /** Bumped by release(): an acquire answered after it gives the lease straight back. */
  private epoch = 0;
  /** The other holder's remaining time as the last refused acquire saw it. */
  private otherRemainingMs: number | undefined;
  private wasHeld = false;
  /** Refreshed with every renewal while held (TriggerLease's configuration mark); cleared when not held. */
  protected renewMark: { key: string; value: string; ttlMs: number } | undefined;

  constructor(options: RedisLeaseOptions) {
    super();
    const [first, ...rest] = options.name;
    this.connection = options.connection;
    this.key = options.connection.key(first, ...rest);
    this.fenceKey = options.connection.key(`${first}-fence`, ...rest);
    this.ttlMs = options.ttlMs;
    // Monotonic: Date.now() set back (NTP, an operator) would keep held() true past the real deadline, while
    // Redis lets the key expire and another instance takes over: two senders.
    this.now = options.now ?? (() => performance.now());
    this.keys = { key: this.key, fenceKey: this.fenceKey };
    this.lease = new FencedLease(options.connection, {
      ttlMs: options.ttlMs,
      marginMs: Math.max(Math.floor(options.ttlMs / 5), 100),
      code: 'OAUTH2_TRIGGER_STATE_FAILED',
      label: 'trigger lease',
      now: this.now,
    });
  }

  held(): boolean {
    return this.token !== undefined && this.now() < this.validUntil;
  }

  /** The holding a fenced write proves, or undefined when not held. */
  fence(): LeaseFence | undefined {
    if (!this.held() || this.token === undefined) return undefined;
    return { leaseKey: this.key, token: this.token, fence: this.fenceNumber };
  }

  /** Takes or keeps the lease; false when another instance holds it. Rejects OAUTH2_TRIGGER_STATE_FAILED when Redis fails. */
  async acquire(): Promise<boolean> {
    const epoch = this.epoch;
    const result = await this.lease.take(this.keys, this.token);
    if (epoch !== this.epoch) {
      // Released while this was in flight: whatever was taken goes back at once.
      if (result.taken) await this.compareAndDelete(result.token);
      return false;
    }
    if (!result.taken) {
      this.otherRemainingMs = result.otherRemainingMs;
      this.drop();
      return false;
    }
    this.otherRemainingMs = undefined;
    if (result.fence !== 0 || this.token === undefined) {
      this.token = result.token;
      this.fenceNumber = result.fence;
    }
    this.validUntil = this.lease.deadline(result.sentAt);
    this.scheduleRenewal();
    if (!this.wasHeld) {
      this.wasHeld = true;
      this.safeEmit('acquired', this.fenceNumber);
    }
    return true;
  }

  /** How long a standby waits before trying again: just past the other holding's end, at most ttl / 2. */
  retryDelayMs(): number {
    const half = Math.floor(this.ttlMs / 2);
    const other = this.otherRemainingMs;
    return other === undefined ? half : Math.min(half, other + 25);
  }

  /** Gives the lease up if held (compare-and-delete). Never rejects; the lease can be acquired again later. */
  async release(): Promise<void> {
    this.epoch += 1;
    const token = this.token;
    this.drop();
    this.token = undefined;
    if (token !== undefined) await this.compareAndDelete(token);
  }

  private async compareAndDelete(token: string | undefined): Promise<void> {
    if (token === undefined) return;
    try {
      await this.lease.release(this.keys, token);
    } catch {
      // Redis away: the key expires by itself within the ttl.
    }
  }

  /** Not held any more: timers stopped, listeners told once. The token is kept for a reclaim by acquire(). */
  private drop(): void {
    this.validUntil = 0;
    this.renewMark = undefined;
    this.clearTimers();
    if (this.wasHeld) {
      this.wasHeld = false;
      this.safeEmit('lost');
    }
  }

  private clearTimers(): void {
    if (this.renewTimer) clearTimeout(this.renewTimer);
    if (this.lapseTimer) clearTimeout(this.lapseTimer);
    this.renewTimer = undefined;
    this.lapseTimer = undefined;
  }

  private scheduleRenewal(): void {
    this.clearTimers();
    this.renewTimer = setTimeout(() => this.renew(), Math.max(1, Math.floor(this.ttlMs / 3)));
    this.renewTimer.unref();
    this.scheduleLapse();
  }

  /** Tells listeners when the local deadline passes without a successful renewal. */
  private scheduleLapse(): void {
    this.lapseTimer = setTimeout(() => {
      this.lapseTimer = undefined;
      if (!this.held()) this.drop();
      // Timers run on the event loop's cached clock and can fire a little before now() reaches the deadline:
      // look again then, or 'lost' would never be told.
      else this.scheduleLapse();
    }, Math.max(1, Math.ceil(this.validUntil - this.now())));
    this.lapseTimer.unref();
  }

  /** Timer callback: never throws. */
  private renew(): void {
    this.renewTimer = undefined;
    const token = this.token;
    const epoch = this.epoch;
    if (token === undefined) return;
    const sent = this.now();
    const mark = this.renewMark;
    this.lease.renew(this.keys, token, mark).then(
      (renewed) => {
        if (epoch !== this.epoch || token !== this.token) return;
        if (renewed) {
          this.validUntil = this.lease.deadline(sent);
          this.scheduleRenewal();
        } else {
          // Another instance holds it now (our key expired, or Redis lost it): stop at once.
          this.token = undefined;
          this.drop();
        }
      },
      () => {
        if (epoch !== this.epoch || token !== this.token) return;
        // Redis away: try again on the schedule while the holding may still be valid; past the deadline the
        // lapse timer has told listeners, and the next acquire() reclaims it if Redis kept it for us.
        if (this.held()) {
          this.renewTimer = setTimeout(() => this.renew(), Math.max(1, Math.min(Math.floor(this.ttlMs / 3), this.validUntil - this.now())));
          this.renewTimer.unref();
        }
      },
    );
  }

  private safeEmit<K extends keyof RedisLeaseEvents>(event: K, ...args: RedisLeaseEvents[K]): void {
    try {
      (this.emit as (e: K, ...a: RedisLeaseEvents[K]) => boolean)(event, ...args);
    } catch {
      // listeners' bugs stay theirs
    }
  }
}

/**
 * The poller's lease for one record trigger: the Redis lease plus the store's fenced write, and the mark of the
 * configuration its holder polls with (rolling redeploys, see poll-lease.ts): set by markConfig(), refreshed by
 * every renewal, so it lives while a holder of that configuration does and expires three lease times after the
 * last one stopped.
 */
export class TriggerLease extends RedisLease implements PollLease {
  private readonly store: RedisTriggerStateStore;
  private readonly markKey: string;

  constructor(options: { connection: RedisConnection; store: RedisTriggerStateStore; nodeId: string; ttlMs: number; now?: () => number }) {
    const keys = triggerKeys(options.connection, options.nodeId);
    super({ connection: options.connection, name: ['trigger-lease', options.nodeId], ttlMs: options.ttlMs, now: options.now });
    if (this.key !== keys.lease || this.fenceKey !== keys.fence) throw new Error('trigger lease keys out of step with triggerKeys()');
    this.store = options.store;
    this.markKey = keys.config;
  }

  /** How long the configuration mark outlives the last holder's last renewal. */
  get markTtlMs(): number {
    return 3 * this.ttlMs;
  }

  async markConfig(configKey: string): Promise<void> {
    if (!this.held() || this.renewMark?.value === configKey) return;
    try {
      await this.connection.client.set(this.markKey, configKey, 'PX', this.markTtlMs);
    } catch (err) {
      throw redisFailure('OAUTH2_TRIGGER_STATE_FAILED', err, 'mark the trigger configuration', this.connection.where);
    }
    if (this.held()) this.renewMark = { key: this.markKey, value: configKey, ttlMs: this.markTtlMs };
  }

  async configActive(configKey: string): Promise<boolean> {
    try {
      return (await this.connection.client.get(this.markKey)) === configKey;
    } catch (err) {
      throw redisFailure('OAUTH2_TRIGGER_STATE_FAILED', err, 'read the trigger configuration mark', this.connection.where);
    }
  }

  commit(nodeId: string, state: TriggerState): Promise<void> {
    const fence = this.fence();
    // Not held (any more): the fenced write refuses it in Redis all the same; asking makes the store keep the
    // state in its overlay with the right base, exactly as for a refusal there.
    return this.store.setFenced(nodeId, state, fence ?? { leaseKey: this.key, token: '', fence: Number.MAX_SAFE_INTEGER });
  }
}
