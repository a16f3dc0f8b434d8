/**
 * An express-session store for the admin-side login session: bounded in size and with a TTL, which
 * express-session's MemoryStore has neither (it grows without limit and only drops a session when that session
 * is read after it expired).
 */
import session from 'express-session';
import type { SessionData } from 'express-session';

export interface BoundedMemorySessionStoreOptions {
  /** Default 1000. The least recently used session is evicted beyond it. */
  maxEntries?: number;
  /** Idle lifetime, renewed by set and touch. Default 1 hour. A shorter cookie expiry wins. */
  ttlMs?: number;
  /** Default 60 s. */
  sweepIntervalMs?: number;
  now?: () => number;
}

interface Entry {
  /** Serialised, as MemoryStore does, so callers never share mutable session objects. */
  json: string;
  expiresAt: number;
}

type Callback<T = void> = (err: unknown, value?: T) => void;

export class BoundedMemorySessionStore extends session.Store {
  private readonly entries = new Map<string, Entry>();
  private readonly maxEntries: number;
  private readonly ttlMs: number;
  private readonly now: () => number;
  private timer: NodeJS.Timeout | undefined;

  constructor(options: BoundedMemorySessionStoreOptions = {}) {
    super();
    this.maxEntries = Math.max(1, options.maxEntries ?? 1000);
    this.ttlMs = options.ttlMs ?? 60 * 60_000;
    this.now = options.now ?? Date.now;
    this.timer = setInterval(() => this.sweep(), options.sweepIntervalMs ?? 60_000);
    this.timer.unref();
  }

  private expiryFor(data: SessionData): number {
    const idle = this.now() + this.ttlMs;
    const cookieExpires = data.cookie?.expires ? new Date(data.cookie.expires).getTime() : NaN;
    return Number.isFinite(cookieExpires) ? Math.min(idle, cookieExpires) : idle;
  }

  /** Live entry or undefined; expired ones are dropped on sight. */
  private live(sid: string): Entry | undefined {
    const entry = this.entries.get(sid);
    if (!entry) return undefined;
    if (this.now() >= entry.expiresAt) {
      this.entries.delete(sid);
      return undefined;
    }
    return entry;
  }

  /** Re-inserting moves the key to the end of the Map's order: the first key is the least recently used. */
  private put(sid: string, entry: Entry): void {
    this.entries.delete(sid);
    this.entries.set(sid, entry);
    while (this.entries.size > this.maxEntries) {
      const oldest = this.entries.keys().next().value as string;
      this.entries.delete(oldest);
    }
  }

  override get(sid: string, callback: Callback<SessionData | null>): void {
    const entry = this.live(sid);
    if (!entry) return defer(callback, null, null);
    this.put(sid, entry);
    let data: SessionData;
    try {
      data = JSON.parse(entry.json) as SessionData;
    } catch (err) {
      return defer(callback, err);
    }
    defer(callback, null, data);
  }

  override set(sid: string, data: SessionData, callback?: Callback): void {
    this.put(sid, { json: JSON.stringify(data), expiresAt: this.expiryFor(data) });
    if (callback) defer(callback, null);
  }

  override destroy(sid: string, callback?: Callback): void {
    this.entries.delete(sid);
    if (callback) defer(callback, null);
  }

  override touch(sid: string, data: SessionData, callback?: () => void): void {
    const entry = this.live(sid);
    if (entry) {
      // Keep the stored data; only the cookie (and so the expiry) is renewed, as MemoryStore does.
      const stored = JSON.parse(entry.json) as SessionData;
      stored.cookie = data.cookie;
      this.put(sid, { json: JSON.stringify(stored), expiresAt: this.expiryFor(data) });
    }
    if (callback) defer(callback);
  }

  override length(callback: Callback<number>): void {
    this.sweep();
    defer(callback, null, this.entries.size);
  }

  override clear(callback?: Callback): void {
    this.entries.clear();
    if (callback) defer(callback, null);
  }

  override all(callback: Callback<Record<string, SessionData>>): void {
    this.sweep();
    const result: Record<string, SessionData> = {};
    for (const [sid, entry] of this.entries) result[sid] = JSON.parse(entry.json) as SessionData;
    defer(callback, null, result);
  }

  /** Drops expired sessions. */
  sweep(): void {
    const now = this.now();
    for (const [sid, entry] of this.entries) {
      if (now >= entry.expiresAt) this.entries.delete(sid);
    }
  }

  /** Stops the sweep timer and drops every session. */
  close(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.entries.clear();
  }
}

/** Callbacks run asynchronously, like every real store, so callers never see re-entrancy surprises. */
function defer(callback: (...args: never[]) => void, ...args: unknown[]): void {
  setImmediate(() => (callback as (...a: unknown[]) => void)(...args));
}
