/**
 * Messages a request node holds while its connection needs a login (or its token endpoint is away), instead of
 * failing them: kept in arrival order, durable before they count as held (held-store.ts), sent one at a time
 * when the connection is usable again, and removed from the store once their request has an answer. A message
 * is sent at least once: a crash between its answer and its removal sends it again after the restart.
 *
 * Sending resumes when the node says the connection is ready again (`wake`, a new login), and on a probe every
 * `probeMs` (the token endpoint back, or a login made on another instance): a probe sends the oldest message,
 * which fails at once while the connection still needs a login (no token endpoint call, invariant 9).
 *
 * Nothing here throws out of a timer; store failures go to `onStoreError`.
 */
import { isOAuth2Error, type OAuth2Error } from '../errors';
import { heldEntryId, type HeldEntry, type HeldStore } from './held-store';

export type HoldReason = 'loginRequired' | 'unavailable';

/** The errors a message is held for: a login needed, or the token endpoint not answering. */
export function holdReason(err: unknown): HoldReason | undefined {
  if (isOAuth2Error(err, 'OAUTH2_LOGIN_REQUIRED')) return 'loginRequired';
  if (isOAuth2Error(err, 'OAUTH2_TOKEN_ENDPOINT_UNAVAILABLE')) return 'unavailable';
  return undefined;
}

export interface HoldSettings {
  /** At most this many messages held; the next one fails as it would without holding. */
  maxMessages: number;
  /** A message held longer fails with the error it was held for. */
  maxHoldMs: number;
}

export const DEFAULT_HOLD: HoldSettings = { maxMessages: 1000, maxHoldMs: 24 * 60 * 60 * 1000 };

/** A held message: its stored entry and, when this process received it, the original with its callbacks. */
export interface HeldMessage<Local> extends HeldEntry {
  local?: Local;
}

export interface HoldQueueOptions<Local> {
  nodeId: string;
  store: HeldStore;
  /** Undefined: the node no longer holds messages; those restored are sent once and fail as usual. */
  settings: HoldSettings | undefined;
  /**
   * Sends one held message. Resolves with the error it must stay held for (nothing of it was sent on), or
   * undefined once it is dealt with (answered, or failed to Catch). Must not reject.
   */
  attempt(entry: HeldMessage<Local>): Promise<OAuth2Error | undefined>;
  /** A message held past the longest hold: it fails with the error it was held for. */
  expire(entry: HeldMessage<Local>, error: OAuth2Error): void;
  /**
   * Another instance sends this message (shared store): it leaves this queue; a message this process received
   * is done here.
   */
  dropped(entry: HeldMessage<Local>): void;
  /** The count or the reason changed (for the node's status). */
  onChange(count: number, reason: HoldReason | undefined): void;
  /** The store failed (never called with a message's content). */
  onStoreError(err: unknown, doing: 'restore' | 'hold' | 'remove' | 'claim'): void;
  /** How long a claim on a message being sent lasts (shared store): longer than its request can take. */
  claimMs?: number;
  /** The longest time between probes of the oldest message while held; default 30 s (from 1 s, doubling). */
  probeMs?: number;
  now?: () => number;
}

export type HoldOutcome = 'held' | 'full' | 'storeFailed' | 'closed';

export class HoldQueue<Local> {
  private readonly queue: Array<HeldMessage<Local>> = [];
  private readonly now: () => number;
  private readonly probeMs: number;
  private timer: NodeJS.Timeout | undefined;
  private pumping: Promise<void> | undefined;
  private closed = false;
  private lastError: OAuth2Error | undefined;
  private wakeAgain = false;
  /** The next probe's delay: 1 s after the first failure, doubling up to probeMs. */
  private probeDelay: number;
  private nextDelay: number | undefined;

  constructor(private readonly options: HoldQueueOptions<Local>) {
    this.now = options.now ?? Date.now;
    this.probeMs = Math.max(10, options.probeMs ?? 30_000);
    this.probeDelay = Math.min(1000, this.probeMs);
  }

  /** How many messages are held. */
  get size(): number {
    return this.queue.length;
  }

  get reason(): HoldReason | undefined {
    return this.queue.length > 0 ? holdReason(this.lastError) : undefined;
  }

  /** The error the held messages wait out (undefined while only restored ones are held, none tried yet). */
  get error(): OAuth2Error | undefined {
    return this.queue.length > 0 ? this.lastError : undefined;
  }

  /** New messages must queue behind the held ones (they keep their order). */
  holding(): boolean {
    return this.queue.length > 0 || this.pumping !== undefined;
  }

  /** An id for a message arriving now: held later, it takes its place in arrival order. */
  arrival(): string {
    return heldEntryId(this.now());
  }

  /** Reads what the store holds for the node (a restart, a redeploy) and starts sending it. */
  async restore(): Promise<void> {
    await this.merge();
    if (this.queue.length > 0) {
      this.changed();
      this.wake();
    }
  }

  /** Adds the stored messages this queue does not have. */
  private async merge(): Promise<void> {
    let stored: HeldEntry[];
    try {
      stored = await this.options.store.list(this.options.nodeId);
    } catch (err) {
      this.options.onStoreError(err, 'restore');
      return;
    }
    if (this.closed) return;
    const known = new Set(this.queue.map((e) => e.id));
    let added = false;
    for (const entry of stored) {
      if (known.has(entry.id)) continue;
      this.insert({ ...entry });
      added = true;
    }
    if (added) this.changed();
  }

  /**
   * Holds a message (durable when it resolves 'held'). 'full': the cap is reached; 'storeFailed': it could
   * not be stored; 'closed': the node is closing. For all three the message is not held: it fails as usual.
   */
  async hold(id: string, message: string, local: Local, error: OAuth2Error): Promise<HoldOutcome> {
    const settings = this.options.settings;
    if (this.closed) return 'closed';
    if (!settings || this.queue.length >= settings.maxMessages) return 'full';
    const entry: HeldMessage<Local> = { id, at: this.now(), message, local };
    // In the queue before the write resolves: the cap counts it, and messages arriving meanwhile queue behind.
    this.insert(entry);
    this.lastError = error;
    try {
      await this.options.store.add(this.options.nodeId, { id: entry.id, at: entry.at, message });
    } catch (err) {
      this.options.onStoreError(err, 'hold');
      const at = this.queue.indexOf(entry);
      if (at >= 0) this.queue.splice(at, 1);
      // The message fails now: a later write of the store must not carry it (a restart would send it too).
      void this.options.store.remove(this.options.nodeId, entry.id).catch(() => undefined);
      this.changed();
      return 'storeFailed';
    }
    this.changed();
    this.schedule();
    return 'held';
  }

  /** The connection is usable again (a new login, a renewal that worked): send what is held now. */
  wake(): void {
    // A shared store may hold messages of another instance (one that died): looked for on every wake.
    if (this.closed || (this.queue.length === 0 && !this.options.store.claim)) return;
    if (this.pumping) {
      this.wakeAgain = true;
      return;
    }
    this.clearTimer();
    this.pumping = this.pump().finally(() => {
      this.pumping = undefined;
      if (this.wakeAgain) {
        this.wakeAgain = false;
        this.wake();
      } else {
        this.schedule();
      }
    });
  }

  /** Stops the timers and waits for the message being sent (so a redeploy's new node does not send it too). */
  async close(): Promise<void> {
    this.closed = true;
    this.clearTimer();
    await this.pumping;
  }

  private async pump(): Promise<void> {
    // Shared store: messages held by other instances, or left by one that died, are sent from here too.
    if (this.options.store.claim) await this.merge();
    while (!this.closed && this.queue.length > 0) {
      const head = this.queue[0];
      const settings = this.options.settings;
      if (settings && this.lastError && this.now() - head.at >= settings.maxHoldMs) {
        this.queue.shift();
        await this.remove(head);
        this.safe(() => this.options.expire(head, this.lastError as OAuth2Error));
        this.changed();
        continue;
      }
      const store = this.options.store;
      if (store.claim) {
        let mine: boolean;
        try {
          mine = await store.claim(this.options.nodeId, head.id, this.options.claimMs ?? 600_000);
        } catch (err) {
          // The shared store is away: try again at the next probe.
          this.options.onStoreError(err, 'claim');
          return;
        }
        if (!mine) {
          this.queue.shift();
          this.safe(() => this.options.dropped(head));
          this.changed();
          continue;
        }
      }
      let error: OAuth2Error | undefined;
      try {
        error = await this.options.attempt(head);
      } catch {
        error = undefined; // attempt must not reject; if it did, the message was dealt with as a failure
      }
      if (error) {
        this.lastError = error;
        await store.unclaim?.(this.options.nodeId, head.id).catch(() => undefined);
        this.nextDelay = this.probeDelay;
        this.probeDelay = Math.min(this.probeDelay * 2, this.probeMs);
        this.changed();
        return;
      }
      this.probeDelay = Math.min(1000, this.probeMs);
      this.queue.shift();
      await this.remove(head);
      this.changed();
    }
  }

  private async remove(entry: HeldMessage<Local>): Promise<void> {
    try {
      await this.options.store.remove(this.options.nodeId, entry.id);
    } catch (err) {
      // The message was dealt with: after a restart it would be sent again (at least once).
      this.options.onStoreError(err, 'remove');
    }
  }

  private insert(entry: HeldMessage<Local>): void {
    let at = this.queue.length;
    while (at > 0 && this.queue[at - 1].id > entry.id) at -= 1;
    this.queue.splice(at, 0, entry);
  }

  private schedule(): void {
    if (this.closed || this.pumping || this.queue.length === 0 || this.timer) return;
    let delay = this.nextDelay ?? this.probeDelay;
    this.nextDelay = undefined;
    const settings = this.options.settings;
    if (settings) delay = Math.min(delay, Math.max(0, this.queue[0].at + settings.maxHoldMs - this.now()));
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.wake();
    }, delay);
    this.timer.unref?.();
  }

  private clearTimer(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private changed(): void {
    this.safe(() => this.options.onChange(this.queue.length, this.reason));
  }

  private safe(fn: () => void): void {
    try {
      fn();
    } catch {
      // a status callback failing must not stop the queue
    }
  }
}
