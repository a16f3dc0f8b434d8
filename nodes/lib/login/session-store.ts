/**
 * An express-session store for the admin-side login session: bounded in size and with a TTL, which
 * express-session's MemoryStore has neither (it grows without limit and only drops a session when that session
 * is read after it expired).
 */
import session from 'express-session';
import type { SessionData } from 'express-session';
import { ExpiringMap } from './expiring-map';

export interface BoundedMemorySessionStoreOptions {
  /** Default 1000. The least recently used session is evicted beyond it. */
  maxEntries?: number;
  /** Idle lifetime, renewed by set and touch. Default 1 hour. A shorter cookie expiry wins. */
  ttlMs?: number;
  /** Default 60 s. */
  sweepIntervalMs?: number;
  now?: () => number;
}

type Callback<T = void> = (err: unknown, value?: T) => void;

export class BoundedMemorySessionStore extends session.Store {
  /** Each session serialised, as MemoryStore does, so callers never share mutable session objects. */
  private readonly entries: ExpiringMap<string>;
  private readonly ttlMs: number;

  constructor(options: BoundedMemorySessionStoreOptions = {}) {
    super();
    this.ttlMs = options.ttlMs ?? 60 * 60_000;
    this.entries = new ExpiringMap({ maxEntries: options.maxEntries, sweepIntervalMs: options.sweepIntervalMs, now: options.now });
  }

  private expiryFor(data: SessionData): number {
    const idle = this.entries.now() + this.ttlMs;
    const cookieExpires = data.cookie?.expires ? new Date(data.cookie.expires).getTime() : NaN;
    return Number.isFinite(cookieExpires) ? Math.min(idle, cookieExpires) : idle;
  }

  override get(sid: string, callback: Callback<SessionData | null>): void {
    const json = this.entries.get(sid);
    if (json === undefined) return defer(callback, null, null);
    this.entries.touch(sid);
    let data: SessionData;
    try {
      data = JSON.parse(json) as SessionData;
    } catch (err) {
      return defer(callback, err);
    }
    defer(callback, null, data);
  }

  override set(sid: string, data: SessionData, callback?: Callback): void {
    this.entries.set(sid, JSON.stringify(data), this.expiryFor(data));
    if (callback) defer(callback, null);
  }

  override destroy(sid: string, callback?: Callback): void {
    this.entries.delete(sid);
    if (callback) defer(callback, null);
  }

  override touch(sid: string, data: SessionData, callback?: () => void): void {
    const json = this.entries.get(sid);
    if (json !== undefined) {
      // Keep the stored data; only the cookie (and so the expiry) is renewed, as MemoryStore does.
      const stored = JSON.parse(json) as SessionData;
      stored.cookie = data.cookie;
      this.entries.set(sid, JSON.stringify(stored), this.expiryFor(data));
    }
    if (callback) defer(callback);
  }

  override length(callback: Callback<number>): void {
    this.entries.sweep();
    defer(callback, null, this.entries.size);
  }

  override clear(callback?: Callback): void {
    this.entries.clear();
    if (callback) defer(callback, null);
  }

  override all(callback: Callback<Record<string, SessionData>>): void {
    const result: Record<string, SessionData> = {};
    for (const [sid, json] of this.entries.live()) result[sid] = JSON.parse(json) as SessionData;
    defer(callback, null, result);
  }

  /** Drops expired sessions. */
  sweep(): void {
    this.entries.sweep();
  }

  /** Stops the sweep timer and drops every session. */
  close(): void {
    this.entries.close();
  }
}

/** Callbacks run asynchronously, like every real store, so callers never see re-entrancy surprises. */
function defer(callback: (...args: never[]) => void, ...args: unknown[]): void {
  setImmediate(() => (callback as (...a: unknown[]) => void)(...args));
}
