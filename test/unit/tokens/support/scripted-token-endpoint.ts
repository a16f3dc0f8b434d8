/**
 * In-process stand-ins for the token manager's unit tests ONLY: a scripted token endpoint (each call answers
 * what the test queued) and an in-memory token store that records the order of durable writes. The end-to-end
 * tests use the real authorization server (oidc-provider) and the real file store.
 */
import { OAuth2Error } from '../../../../nodes/lib/errors';
import type { DeviceAuthorization, DevicePollPending, TokenEndpointClient } from '../../../../nodes/lib/oauth/token-endpoint';
import type { StoredTokens, TokenStore } from '../../../../nodes/lib/tokens/token-store';
import type { TokenSet } from '../../../../nodes/lib/types';

export interface Deferred<T> {
  promise: Promise<T>;
  resolve: (value: T) => void;
  reject: (err: unknown) => void;
}

export function deferred<T = void>(): Deferred<T> {
  let resolve!: (value: T) => void;
  let reject!: (err: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** Lets every pending microtask and immediate run. */
export function settle(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** Polls `predicate` on timers until true (or fails after `ms`). */
export async function waitFor(predicate: () => boolean, ms = 2000): Promise<void> {
  const until = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > until) throw new Error('waitFor: condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}

let serial = 0;
export function makeTokens(now: number, overrides: Partial<TokenSet> = {}): TokenSet {
  serial++;
  return {
    accessToken: `access-${serial}-SECRETVALUE`,
    tokenType: 'Bearer',
    refreshToken: `refresh-${serial}-SECRETVALUE`,
    expiresAt: now + 3_600_000,
    expirySource: 'expires_in',
    scopes: ['read'],
    obtainedAt: now,
    ...overrides,
  };
}

export function unavailable(): OAuth2Error {
  return new OAuth2Error('OAUTH2_TOKEN_ENDPOINT_UNAVAILABLE', 'token endpoint answered 503', { params: { reason: 'HTTP 503' }, retryable: true, statusCode: 503 });
}

export function invalidGrant(): OAuth2Error {
  return new OAuth2Error('OAUTH2_LOGIN_REQUIRED', 'invalid_grant', { oauthError: 'invalid_grant', statusCode: 400 });
}

/** One scripted answer: tokens, an error, or a function computing either (may wait on a gate). */
export type Answer = TokenSet | OAuth2Error | ((call: number) => Promise<TokenSet> | TokenSet);

/**
 * Scripted in-process token endpoint (not a real server). `refresh` and `clientCredentials` take the next
 * queued answer; with the queue empty they issue fresh tokens. Every call is counted and logged.
 */
export class ScriptedTokenEndpoint implements TokenEndpointClient {
  readonly answers: Answer[] = [];
  refreshCalls: TokenSet[] = [];
  clientCredentialsCalls = 0;
  /** Shared event log (also written by RecordingTokenStore), to assert ordering. */
  constructor(
    readonly log: string[],
    private readonly clock: () => number,
  ) {}

  get calls(): number {
    return this.refreshCalls.length + this.clientCredentialsCalls;
  }

  queue(...answers: Answer[]): this {
    this.answers.push(...answers);
    return this;
  }

  private async answer(): Promise<TokenSet> {
    const next = this.answers.shift();
    const call = this.calls;
    if (next === undefined) return makeTokens(this.clock());
    if (next instanceof OAuth2Error) throw next;
    if (typeof next === 'function') return next(call);
    return next;
  }

  async refresh(previous: TokenSet): Promise<TokenSet> {
    this.refreshCalls.push(previous);
    this.log.push(`refresh-call:${previous.refreshToken ?? ''}`);
    const tokens = await this.answer();
    this.log.push(`refresh-issued:${tokens.accessToken}`);
    return tokens;
  }

  async clientCredentials(): Promise<TokenSet> {
    this.clientCredentialsCalls++;
    this.log.push('client-credentials-call');
    return this.answer();
  }

  exchangeCode(): Promise<TokenSet> {
    return Promise.reject(new Error('not scripted'));
  }
  startDeviceAuthorization(): Promise<DeviceAuthorization> {
    return Promise.reject(new Error('not scripted'));
  }
  pollDeviceToken(): Promise<TokenSet | DevicePollPending> {
    return Promise.reject(new Error('not scripted'));
  }
  async revoke(): Promise<{ refreshTokenRevoked: boolean; accessTokenRevoked: boolean }> {
    return { refreshTokenRevoked: true, accessTokenRevoked: true };
  }
}

/**
 * In-memory TokenStore that logs `durable:<refreshToken>` when a set completes (after a macrotask, like a real
 * disk write), and can be told to fail writes.
 */
export class RecordingTokenStore implements TokenStore {
  readonly data = new Map<string, StoredTokens>();
  failWrites = 0;
  sets = 0;
  constructor(readonly log: string[]) {}

  async get(id: string): Promise<StoredTokens | undefined> {
    const value = this.data.get(id);
    return value === undefined ? undefined : structuredClone(value);
  }

  async set(id: string, value: StoredTokens): Promise<void> {
    this.sets++;
    await new Promise((resolve) => setTimeout(resolve, 1));
    if (this.failWrites > 0) {
      this.failWrites--;
      this.log.push(`write-failed:${value.tokens.refreshToken ?? ''}`);
      throw Object.assign(new Error(`disk full while writing ${value.tokens.accessToken}`), { code: 'ENOSPC' });
    }
    this.data.set(id, structuredClone(value));
    this.log.push(`durable:${value.tokens.refreshToken ?? value.tokens.accessToken}`);
  }

  async delete(id: string): Promise<void> {
    this.data.delete(id);
  }

  async ids(): Promise<string[]> {
    return [...this.data.keys()];
  }

  async flush(): Promise<void> {}
}
