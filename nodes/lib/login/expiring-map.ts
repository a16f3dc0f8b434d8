/**
 * A bounded map whose entries expire: the one memory behind the login's short-lived state (pending logins, their
 * settings, the admin-side login sessions). Entries past their expiry are never returned; a sweep timer drops
 * them even when nobody reads them again; beyond `maxEntries` the oldest entry goes (oldest by insertion, or by
 * last use for a caller that calls `touch`).
 */
export interface ExpiringMapOptions {
  /** Default 1000. */
  maxEntries?: number;
  /** Default 60 s. */
  sweepIntervalMs?: number;
  now?: () => number;
}

interface Entry<V> {
  value: V;
  expiresAt: number;
}

export class ExpiringMap<V> {
  /** Map iteration is insertion order: the first key is the oldest (or least recently touched) entry. */
  private readonly entries = new Map<string, Entry<V>>();
  private readonly maxEntries: number;
  readonly now: () => number;
  private timer: NodeJS.Timeout | undefined;

  constructor(options: ExpiringMapOptions = {}) {
    this.maxEntries = Math.max(1, options.maxEntries ?? 1000);
    this.now = options.now ?? Date.now;
    this.timer = setInterval(() => this.sweep(), options.sweepIntervalMs ?? 60_000);
    // The sweep must never keep Node-RED (or a test run) alive on its own.
    this.timer.unref();
  }

  /** Adds or replaces; the entry becomes the newest, and the oldest ones go beyond the bound. */
  set(key: string, value: V, expiresAt: number): void {
    this.entries.delete(key);
    this.entries.set(key, { value, expiresAt });
    while (this.entries.size > this.maxEntries) {
      const oldest = this.entries.keys().next().value as string;
      this.entries.delete(oldest);
    }
  }

  /** The live value; an expired entry is dropped on sight. */
  get(key: string): V | undefined {
    const entry = this.entries.get(key);
    if (!entry) return undefined;
    if (this.now() >= entry.expiresAt) {
      this.entries.delete(key);
      return undefined;
    }
    return entry.value;
  }

  /** Makes a live entry the newest (least-recently-used eviction), keeping its expiry; false when there is none. */
  touch(key: string): boolean {
    const entry = this.entries.get(key);
    if (this.get(key) === undefined || !entry) return false;
    this.entries.delete(key);
    this.entries.set(key, entry);
    return true;
  }

  /** Removes the entry, live or expired, and says which: a caller can tell "expired" from "unknown". */
  take(key: string): { value: V; expired: boolean } | undefined {
    const entry = this.entries.get(key);
    if (!entry) return undefined;
    this.entries.delete(key);
    return { value: entry.value, expired: this.now() >= entry.expiresAt };
  }

  delete(key: string): void {
    this.entries.delete(key);
  }

  clear(): void {
    this.entries.clear();
  }

  /** Entries held, expired ones included until the next sweep. */
  get size(): number {
    return this.entries.size;
  }

  /** The live entries, oldest first (expired ones are swept first). */
  *live(): IterableIterator<[string, V]> {
    this.sweep();
    for (const [key, entry] of this.entries) yield [key, entry.value];
  }

  /** Drops expired entries. */
  sweep(): void {
    const now = this.now();
    for (const [key, entry] of this.entries) {
      if (now >= entry.expiresAt) this.entries.delete(key);
    }
  }

  /** Stops the sweep timer and drops every entry. */
  close(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.entries.clear();
  }
}
