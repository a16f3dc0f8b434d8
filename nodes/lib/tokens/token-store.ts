import type { TokenSet } from '../types';

/** What the store keeps per connection id. */
export interface StoredTokens {
  tokens: TokenSet;
  /**
   * Epoch ms of the write. With the file store, on start the newer of this store and Node-RED's credential copy
   * wins; with a shared store the store always wins (see TokenManager.init).
   */
  updatedAt: number;
  /**
   * Set (with coordination only, so only in a shared store) by the instance whose refresh the provider refused
   * with invalid_grant: every instance then shows "login required" and none calls the token endpoint with
   * these tokens, until a new login replaces the entry. The refresh token is removed from such an entry.
   */
  loginRequired?: boolean;
  /**
   * Why the login is required, when the instance that marked it knew more than invalid_grant: 'renewerStopped'
   * (an instance stopped while its refresh request was at the provider, so the rotated refresh token died with
   * it). Every instance then says the same.
   */
  loginRequiredReason?: 'renewerStopped';
}

/**
 * Where tokens live between restarts. Implementations must make `set` durable before resolving (a rotated
 * refresh token is on disk before the new access token is used) and must never log values.
 */
export interface TokenStore {
  get(connectionId: string): Promise<StoredTokens | undefined>;
  set(connectionId: string, value: StoredTokens): Promise<void>;
  delete(connectionId: string): Promise<void>;
  /** Ids with stored tokens, for removing the tokens of connections that no longer exist. */
  ids(): Promise<string[]>;
  /** Waits for pending writes. */
  flush(): Promise<void>;
}

/** The right to write renewed tokens, held while one renewal runs (a shared store's cluster-wide lock). */
export interface RenewalLease {
  /**
   * Writes tokens renewed under this lease, durably, and tells the other instances. Rejects with
   * OAUTH2_TOKEN_STORE_FAILED and `params.reason` 'superseded' when anything was written (or deleted) for this
   * connection since the lease was taken: the lease expired and another instance renewed, or a login or logout
   * happened. The stored value then wins; the caller re-reads it.
   *
   * The fence, not the lock, decides: a write after the lock ended (or expired) still succeeds as long as
   * nobody took the lock (or wrote, or deleted) since. That is how renewed tokens that could not be stored
   * while the store was away are written the moment it is back.
   */
  write(value: StoredTokens): Promise<void>;
  /**
   * How long the lock is surely still held (ms, local monotonic clock, margin deducted). 0 when it may have
   * expired (the store could not be reached to extend it) or is known lost: do not call the token endpoint then.
   */
  remainingMs(): number;
  /**
   * Do not release the lock when `fn` ends: leave it to expire. Used when renewed tokens could not be stored,
   * so that another instance does not take the lock at once and refresh with the spent refresh token.
   */
  retain(): void;
  /**
   * An earlier holder of the lock sent a refresh and never finished it (it stopped, or lost the store, while
   * the request was at the provider): the refresh token in the store may be spent. Read when the lock was taken.
   */
  readonly abandoned?: boolean;
  /**
   * Says, before the refresh request is sent, that it is in flight; cleared when the lock is released. A holder
   * that stops in between leaves it for the next holder to see (`abandoned`). Best effort: never rejects.
   */
  beginRefresh?(): Promise<void>;
}

/**
 * What several processes sharing one token store need on top of it (the Redis store provides it; the file
 * store, used by one process, does not). With it the token manager renews only while holding the lock, after
 * re-reading the store, and adopts what other instances store.
 */
export interface RenewalCoordination {
  /**
   * Runs `fn` holding the connection's renewal lock across every instance. Waits (bounded) while another
   * instance holds it; rejects with OAUTH2_TOKEN_STORE_FAILED (retryable) when the lock cannot be had (store
   * unreachable, or held for longer than the wait limit).
   */
  withRenewalLock<T>(connectionId: string, fn: (lease: RenewalLease) => Promise<T>): Promise<T>;
  /**
   * Calls `listener(connectionId)` when an instance wrote or deleted the connection's tokens, and
   * `listener(undefined)` when notifications may have been missed (the store reconnected): re-read then.
   * Returns the function that removes the listener.
   */
  onChange(listener: (connectionId: string | undefined) => void): () => void;
  /**
   * Writes `value` only if the store never held anything for this connection: no write, delete or lock ever.
   * Resolves true when written. Used to seed a shared store from Node-RED's credential copy once, without ever
   * undoing a logout or overwriting tokens another instance renewed.
   */
  seedIfNeverStored(connectionId: string, value: StoredTokens): Promise<boolean>;
}
