/**
 * Pending logins (authorization code + PKCE), keyed by `state`. The callback route is reached by a browser
 * redirect with no admin token, so this store is what guards it: a state is single-use, expires, and only
 * works for the browser session that started the login (DESIGN.md invariant 2).
 */
import { timingSafeEqual } from 'node:crypto';
import { OAuth2Error } from '../errors';
import { randomToken } from '../oauth/pkce';
import { ExpiringMap } from './expiring-map';

export interface LoginTransactionInput {
  /** Which connection config node the login is for. */
  connectionId: string;
  /** The browser session that started the login; the callback must come from the same one. */
  sessionId: string;
  /** The exact redirect_uri sent in the authorization request (the token request must repeat it). */
  redirectUri: string;
  /** PKCE verifier: the only secret kept here, and only until the callback. */
  codeVerifier: string;
  nonce?: string;
  /** Issuer expected in the callback's `iss`. */
  issuer?: string;
  /** The server advertises RFC 9207, so a callback without `iss` is refused. */
  issRequired: boolean;
  /** Anything else the callback needs; not secret. */
  extra?: Record<string, string | number | boolean | string[]>;
}

export interface LoginTransaction extends LoginTransactionInput {
  state: string;
  createdAt: number;
  expiresAt: number;
}

export interface LoginTransactionStoreOptions {
  /** Default 10 minutes: long enough to type a password and pass MFA, short enough to be useless if leaked. */
  lifetimeMs?: number;
  /** Default 1000: an unauthenticated caller cannot start logins, but a bound keeps memory flat regardless. */
  maxEntries?: number;
  /** Default 60 s. */
  sweepIntervalMs?: number;
  now?: () => number;
}

function invalidState(reason: 'missing' | 'unknown' | 'expired' | 'session'): OAuth2Error {
  const messages = {
    missing: 'The login callback has no state',
    unknown: 'The login callback does not match a pending login (unknown or already used)',
    expired: 'The login took too long and expired: start it again',
    session: 'The login was started from another browser session',
  };
  return new OAuth2Error('OAUTH2_INVALID_STATE', messages[reason], { params: { reason } });
}

function sameString(a: string, b: string): boolean {
  const left = Buffer.from(a);
  const right = Buffer.from(b);
  return left.length === right.length && timingSafeEqual(left, right);
}

export class LoginTransactionStore {
  private readonly transactions: ExpiringMap<LoginTransaction>;
  private readonly lifetimeMs: number;

  constructor(options: LoginTransactionStoreOptions = {}) {
    this.lifetimeMs = options.lifetimeMs ?? 10 * 60_000;
    this.transactions = new ExpiringMap({ maxEntries: options.maxEntries, sweepIntervalMs: options.sweepIntervalMs, now: options.now });
  }

  /** Records a login and returns the `state` to put in the authorization request; the oldest login goes beyond the bound. */
  begin(input: LoginTransactionInput): { state: string; expiresAt: number } {
    this.transactions.sweep();
    const state = randomToken(32);
    const createdAt = this.transactions.now();
    const transaction: LoginTransaction = { ...input, state, createdAt, expiresAt: createdAt + this.lifetimeMs };
    this.transactions.set(state, transaction, transaction.expiresAt);
    return { state, expiresAt: transaction.expiresAt };
  }

  /**
   * Takes the login for `state` out of the store: it is deleted before any check, so a state can be tried once
   * only, even by someone who guessed it but has the wrong session.
   */
  consume(state: unknown, sessionId: string): LoginTransaction {
    if (typeof state !== 'string' || state === '') throw invalidState('missing');
    const taken = this.transactions.take(state);
    if (!taken) throw invalidState('unknown');
    if (taken.expired) throw invalidState('expired');
    const transaction = taken.value;
    if (!sessionId || !sameString(transaction.sessionId, sessionId)) throw invalidState('session');
    return transaction;
  }

  /** Pending logins, expired ones included until the next sweep. */
  get size(): number {
    return this.transactions.size;
  }

  /** Drops expired logins. */
  sweep(): void {
    this.transactions.sweep();
  }

  /** Stops the sweep timer and forgets every pending login. */
  close(): void {
    this.transactions.close();
  }
}
