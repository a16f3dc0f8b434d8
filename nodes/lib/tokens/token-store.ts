import type { TokenSet } from '../types';

/** What the store keeps per connection id. */
export interface StoredTokens {
  tokens: TokenSet;
  /** Epoch ms of the write; on start the newer of this store and Node-RED's credentials wins. */
  updatedAt: number;
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
