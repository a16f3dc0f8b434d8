/**
 * One connection's tokens: hands out valid access tokens and owns every call that renews them.
 *
 * - Invariant 6: at most one renewal (refresh or client-credentials fetch) per connection at any time; every
 *   caller that needs a new token joins the one in flight.
 * - Invariant 7: proactive renewal within `skewMs` of expiry (a caller holding a still-valid token is not
 *   delayed: renewal then runs in the background), and reactive renewal, once per rejected token.
 * - Invariant 8: renewed tokens are written to the store before the renewal resolves to anyone.
 * - Invariant 9: a refused refresh (OAUTH2_LOGIN_REQUIRED from the client: invalid_grant, or any other refusal
 *   of a refresh, whatever its shape) stops all token-endpoint calls until `setTokens` brings a new login; the
 *   state and every caller get the provider's own words (status, error, description) when it gave any.
 * - Outages (429, 5xx, network) are retried within a renewal with retry.ts's backoff, waiting what the token
 *   endpoint's Retry-After asks up to `retry.maxRetryAfterMs`; a longer Retry-After ends the renewal and no
 *   renewal calls the endpoint before it has passed (capped at the refusal backoff's maximum).
 * - Stored tokens issued to another target than the connection's (`target`: other issuer, endpoints, client or
 *   client authentication) are never sent anywhere from here: not used, refreshed or marked. Authorization code
 *   and device code are "login required" (a deploy changed the provider since the login, or a login made with
 *   the dialog's settings waits for their deploy); client credentials fetch a token of their own, and keep it
 *   out of the store while the other target's tokens there still work (they belong to that login or instance).
 * - A refusal (OAUTH2_TOKEN_REQUEST_REJECTED: invalid_client, unauthorized_client...) is not retried: the state
 *   says 'refused', and renewals fail at once with the same error until a backoff passes (doubling per refusal
 *   in a row), a login, or a new manager (a deploy with corrected settings).
 * - A refresh whose answer was lost (a timeout or a cut connection after the request was sent) may have rotated
 *   the refresh token at the provider: it is retried once, after a pause, and an invalid_grant after it says a
 *   lost answer is the likely cause. A refresh that surely never reached the server (connection refused, name
 *   not resolved, TLS handshake failed) is retried as any outage.
 * - Invariant 10: no timer callback throws, no promise is left rejected without a handler, and a listener
 *   that throws cannot break the manager.
 *
 * With `coordination` (a store shared by several Node-RED instances, see RenewalCoordination) invariants 6 to 9
 * hold across the instances too:
 * - a renewal runs only while holding the cluster-wide renewal lock, and first re-reads the store: tokens
 *   another instance renewed meanwhile are adopted without calling the token endpoint;
 * - renewed tokens are written under the lock's fencing number: a holder whose lock expired cannot overwrite
 *   newer tokens (it drops its own and adopts the stored ones);
 * - renewed tokens that could not be written (the store away) are the only live ones with rotating refresh
 *   tokens: the holder keeps the lock and retries the write while the lock is surely its own, then leaves the
 *   lock to expire rather than releasing it, and writes them by its fence the moment the store is back (before
 *   any other instance can have taken the lock, unless the outage outlasted the lock's TTL: see `adopt`);
 * - no token-endpoint call once the lock may have expired (its local deadline passed because the store could
 *   not be reached to extend it): another instance may be refreshing with the same refresh token by then;
 * - the shared store is the source of truth on start: Node-RED's credential copy only seeds a store that never
 *   had this connection (see `init`);
 * - other instances' writes are adopted as soon as they are announced (and after the store reconnects);
 * - the store being unreachable never leads to a refresh without the lock: a held token is served until it
 *   expires, then calls fail with OAUTH2_TOKEN_STORE_FAILED until the store is back;
 * - invalid_grant is written to the store as an entry marked `loginRequired` (refresh token removed), so every
 *   instance goes to "login required" and none calls the token endpoint again until a new login.
 * Without it (the file store, one process) nothing of this runs and behaviour is exactly the single-process one.
 */
import { EventEmitter } from 'node:events';
import { performance } from 'node:perf_hooks';
import { OAuth2Error, isOAuth2Error } from '../errors';
import { sameCredentialTarget } from '../connection-settings';
import type { CredentialTarget, GrantType, TokenSet } from '../types';
import type { TokenEndpointClient } from '../oauth/token-endpoint';
import { backoffCeiling, retryDelay, type RetryPolicy } from '../http/retry';
import type { RenewalCoordination, RenewalLease, StoredTokens, TokenStore } from './token-store';
import { keepPreviousRefreshToken } from './relogin';

export type ConnectionState =
  | { kind: 'logged-out' }
  | { kind: 'ready' }
  | { kind: 'refreshing' }
  /** `error`: present when the cause is known to be more than a dead refresh token (a lost refresh answer). */
  | { kind: 'login-required'; code: 'OAUTH2_LOGIN_REQUIRED'; error?: OAuth2Error }
  /** The token endpoint (or the token store) is failing; the next call tries again. */
  | { kind: 'unavailable'; error: OAuth2Error }
  /**
   * The token endpoint answered and refused (OAUTH2_TOKEN_REQUEST_REJECTED). Renewals fail with `error`,
   * without calling it, until `retryAt`.
   */
  | { kind: 'refused'; error: OAuth2Error; retryAt: number };

/**
 * How a renewal retries the token endpoint: the request pipeline's policy (nodes/lib/http/retry.ts), of which
 * token calls use the attempts, the backoff and the longest Retry-After waited for within one renewal.
 */
export type TokenRetryPolicy = Pick<RetryPolicy, 'maxAttempts' | 'baseDelayMs' | 'maxDelayMs' | 'maxRetryAfterMs'>;

/** The pause after refusals in a row: the backoff ceiling (no jitter: the dialog shows when it ends). */
export interface RefusalBackoff {
  baseMs: number;
  maxMs: number;
}

export interface TokenManagerOptions {
  connectionId: string;
  grant: GrantType;
  client: TokenEndpointClient;
  store: TokenStore;
  /** Renew this long before expiry (capped at half the token's lifetime, so short-lived tokens still get used). */
  skewMs: number;
  retry?: Partial<TokenRetryPolicy>;
  now?: () => number;
  /** Backoff wait; the default is a timer that `close()` cancels. */
  sleep?: (ms: number) => Promise<void>;
  /** Source of jitter in [0, 1); tests pin it. */
  random?: () => number;
  /** No token-endpoint call for this long after a refusal, doubling per refusal in a row up to `maxMs`. */
  refusalBackoff?: Partial<RefusalBackoff>;
  /** Pause before the one retry of a refresh whose answer was lost. */
  lostAnswerPauseMs?: number;
  /**
   * Present when `store` is shared by several processes (Redis): renewals take the cluster-wide lock, re-read
   * the store and write under the lock's fence; other processes' changes are adopted. Absent for the file store.
   */
  coordination?: RenewalCoordination;
  /**
   * Where this connection sends its client secret and tokens (credentialTarget of its settings). Stored tokens
   * issued to another target are never used, renewed, marked or overwritten here (see `foreign`); tokens issued
   * here are stamped with it. Absent: every stored entry is taken as this connection's own.
   */
  target?: CredentialTarget;
  /**
   * For settings that name only an issuer: the target with the endpoints discovery found. `known` is the
   * target once discovered (synchronous), `resolve` discovers it (undefined when discovery fails). Tokens issued
   * to it are this connection's as well, and tokens it issues are stamped with it.
   */
  discovered?: { known(): CredentialTarget | undefined; resolve(): Promise<CredentialTarget | undefined> };
}

/**
 * Why stored tokens are not used: `providerChanged`, they were there when the connection started with other
 * authorization-server settings (a deploy changed them since the login); `awaitsDeploy`, a login with other
 * settings replaced them while it ran (made in the dialog, or by another instance sharing the store).
 */
export type OtherSettingsReason = 'providerChanged' | 'awaitsDeploy';

export interface TokenSnapshot {
  state: ConnectionState;
  expiresAt?: number;
  scopes?: string[];
  subject?: string;
  hasRefreshToken: boolean;
  /** When the refresh token ends, when the provider said. */
  refreshExpiresAt?: number;
  expirySource?: TokenSet['expirySource'];
  /** The connection values the provider gave (never a token or secret), shown in the dialog. */
  values?: Record<string, string>;
  /** With the 'refused' state: when the token endpoint is asked again. */
  retryAt?: number;
}

/**
 * What the editor may see of stored tokens: never a token value. Also used for a connection that is not
 * deployed (no manager), where the state is derived from whether tokens exist.
 */
export function snapshotOf(stored: StoredTokens | undefined, state?: ConnectionState): TokenSnapshot {
  const tokens = stored?.tokens;
  return {
    state: state ?? (tokens ? { kind: 'ready' } : { kind: 'logged-out' }),
    expiresAt: tokens?.expiresAt,
    scopes: tokens ? [...tokens.scopes] : undefined,
    subject: tokens?.subject,
    hasRefreshToken: Boolean(tokens?.refreshToken),
    ...(tokens?.refreshToken && tokens.refreshExpiresAt !== undefined ? { refreshExpiresAt: tokens.refreshExpiresAt } : {}),
    expirySource: tokens?.expirySource,
    ...(tokens?.values ? { values: { ...tokens.values } } : {}),
    ...(state?.kind === 'refused' ? { retryAt: state.retryAt } : {}),
  };
}

const DEFAULT_RETRY: TokenRetryPolicy = { maxAttempts: 3, baseDelayMs: 500, maxDelayMs: 8000, maxRetryAfterMs: 30_000 };
/** A refused request is a setting to correct: asking again every few seconds would only hammer the endpoint. */
const DEFAULT_REFUSAL_BACKOFF: RefusalBackoff = { baseMs: 10_000, maxMs: 300_000 };
/**
 * Long enough for a network blip to pass, short enough to land in the reuse grace period some providers give a
 * rotated refresh token (the retry presents the old one: the new one was in the lost answer).
 */
const DEFAULT_LOST_ANSWER_PAUSE_MS = 1000;

/**
 * Network failures where the request surely never reached the server: no connection, or no TLS session. Any
 * other failure without an HTTP answer (a timeout, a reset) may have reached it, and its answer is lost.
 */
const NEVER_SENT = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EAI_FAIL', 'EHOSTUNREACH', 'EHOSTDOWN', 'ENETUNREACH', 'ENETDOWN', 'EADDRNOTAVAIL']);

/** Pause between retries of a failed write of renewed tokens under the lock. */
const STORE_RETRY_MS = 200;

/**
 * Why a renewal runs: the token is due, or the API rejected `accessToken`; then another token is good enough
 * only with `minLifeMs` of life left (the retry must not be rejected again as expired on its way).
 */
type RenewalReason = { kind: 'due' } | { kind: 'rejected'; accessToken: string; minLifeMs: number };

/**
 * The life a token used for the retry after a rejection must have left beyond the time the rejected request
 * took: a provider's expiry has second precision (a "3 s" token issued at 10.9 s ends at 13 s), so a token
 * believed to have 1.5 s left may have 0.5 s.
 */
const MIN_RETRY_LIFE_MS = 1000;

export class TokenManager extends EventEmitter {
  private readonly id: string;
  private readonly grant: GrantType;
  private readonly client: TokenEndpointClient;
  private readonly store: TokenStore;
  private readonly skewMs: number;
  private readonly retry: TokenRetryPolicy;
  private readonly now: () => number;
  private readonly sleepImpl?: (ms: number) => Promise<void>;
  private readonly random: () => number;
  private readonly refusalBackoff: RefusalBackoff;
  private readonly lostAnswerPauseMs: number;
  private readonly target: CredentialTarget | undefined;
  private readonly discovered: TokenManagerOptions['discovered'];

  /**
   * Tokens in use, always issued to this connection's target; durable in the store (or in Node-RED's
   * credentials, for `init`'s initial tokens), except with `localOnly`.
   */
  private current: StoredTokens | undefined;
  /**
   * The store's entry when it was issued to another target (another issuer, endpoint, client or client
   * authentication): its tokens must not go to this connection's endpoints, and it belongs to whoever made it
   * (the settings of a login waiting for Deploy, or another instance), so it is neither renewed nor replaced.
   */
  private foreign: { entry: StoredTokens; reason: OtherSettingsReason } | undefined;
  /**
   * Client credentials only: `current` was fetched here and not written, because the store holds another
   * target's live tokens (see `foreignLive`). Used until it expires; the next fetch writes when that entry died.
   */
  private localOnly = false;
  /**
   * Tokens the server issued but the store failed to write. With rotating refresh tokens the previous refresh
   * token is already dead, so these are the only live ones: keep them, never hand them out, and write them
   * first on the next renewal instead of refreshing again with a spent token.
   */
  private unsaved: StoredTokens | undefined;
  /**
   * With coordination: the lease `unsaved` was issued (or last tried) under. Its fenced write still succeeds
   * after the lock ended as long as no other instance took the lock since, so it is tried first when the store
   * is back.
   */
  private unsavedLease: RenewalLease | undefined;
  private currentState: ConnectionState = { kind: 'logged-out' };
  private flight: Promise<TokenSet> | undefined;
  /** Bumped by setTokens/clear: a renewal started before belongs to a superseded login and is discarded. */
  private generation = 0;
  private initialised = false;
  private initPromise: Promise<void> | undefined;
  /** No proactive background renewal before this time (after one failed), so a busy flow does not hammer. */
  private proactiveCooldownUntil = 0;
  /** The last refusal of the token endpoint and how many came in a row; cleared by tokens issued or a login. */
  private refusal: { error: OAuth2Error; until: number; inARow: number } | undefined;
  /** The token endpoint answered 429 / 5xx with a Retry-After longer than a renewal waits: not asked before `until`. */
  private serverPause: { error: OAuth2Error; until: number } | undefined;
  /**
   * The answer to a refresh was lost since the tokens in use were issued: the provider may have rotated the
   * refresh token we still hold, so an invalid_grant now most likely comes from that.
   */
  private refreshAnswerLost = false;
  private closed = false;
  private readonly timers = new Set<{ timer: NodeJS.Timeout; resolve: () => void }>();
  private readonly coordination: RenewalCoordination | undefined;
  private readonly stopListening: (() => void) | undefined;
  /** Bumped whenever `current` or `unsaved` changes here: a store re-read that started before is stale. */
  private localChanges = 0;
  /** A change was announced while a renewal ran: re-read once it ends. */
  private recheckAfterFlight = false;

  constructor(opts: TokenManagerOptions) {
    super();
    this.id = opts.connectionId;
    this.grant = opts.grant;
    this.client = opts.client;
    this.store = opts.store;
    this.skewMs = Math.max(0, opts.skewMs);
    this.retry = { ...DEFAULT_RETRY, ...opts.retry };
    this.retry.maxAttempts = Math.max(1, Math.floor(this.retry.maxAttempts));
    this.now = opts.now ?? Date.now;
    this.sleepImpl = opts.sleep;
    this.random = opts.random ?? Math.random;
    this.refusalBackoff = { ...DEFAULT_REFUSAL_BACKOFF, ...opts.refusalBackoff };
    this.lostAnswerPauseMs = Math.max(0, opts.lostAnswerPauseMs ?? DEFAULT_LOST_ANSWER_PAUSE_MS);
    this.coordination = opts.coordination;
    this.target = opts.target;
    this.discovered = opts.discovered;
    this.stopListening = opts.coordination?.onChange((connectionId) => {
      if (connectionId === undefined || connectionId === this.id) this.onStoreChange();
    });
  }

  /**
   * Loads the store. `initial` (Node-RED's credential copy) wins when it is newer, and is then written to the
   * store. A failed write still leaves `initial` in use (it is durable in Node-RED's credentials) and rejects
   * with OAUTH2_TOKEN_STORE_FAILED so the caller can report it. The store is loaded once; a later call (or
   * one after a lazy load by getAccessToken) only applies the precedence of `initial`.
   *
   * With coordination (a shared store) the store is the source of truth: `initial` never wins over what it
   * holds (updatedAt of different machines' clocks orders nothing), and is written only to a store that never
   * had this connection at all. A logout elsewhere deleted the entry but not its history, so an instance
   * restarting with an old credential copy does not bring that login back, and cannot draw a fence that makes
   * a renewal running elsewhere drop its fresh tokens.
   */
  async init(initial?: StoredTokens): Promise<void> {
    if (!this.initialised) {
      this.initPromise ??= this.load().finally(() => {
        this.initPromise = undefined;
      });
      await this.initPromise;
    }
    if (this.coordination) return this.seedShared(initial, this.coordination);
    const known = this.unsaved ?? this.storedEntry();
    if (!initial || (known && initial.updatedAt <= known.updatedAt)) return;
    // A different (newer) login than the one in use: a renewal still running for the old one is discarded.
    this.generation++;
    this.unsaved = undefined;
    this.applyStored(initial, 'providerChanged');
    try {
      await this.store.set(this.id, initial);
    } catch (err) {
      throw storeFailure(err, 'write');
    }
  }

  /** `init` with a shared store: `initial` only seeds a store that never held this connection. */
  private async seedShared(initial: StoredTokens | undefined, coordination: RenewalCoordination): Promise<void> {
    if (!initial || this.current || this.unsaved || this.foreign) return;
    let written: boolean;
    try {
      written = await coordination.seedIfNeverStored(this.id, initial);
    } catch (err) {
      throw storeFailure(err, 'write');
    }
    // Not written: a login, renewal or logout happened (here or elsewhere); the store's state stands and its
    // announcement brings it here. Written: it is the stored entry now, unless something replaced it meanwhile.
    if (written && !this.current && !this.unsaved && !this.foreign && !this.closed) this.applyStored(initial, 'providerChanged');
  }

  private async load(): Promise<void> {
    let stored: StoredTokens | undefined;
    try {
      stored = await this.readStore();
    } catch (err) {
      const error = storeFailure(err, 'read');
      this.setState({ kind: 'unavailable', error });
      throw error;
    }
    // Issued to the endpoints this connection discovers: learn them before judging (a failed discovery judges
    // by the configured target alone; the tokens are then kept and not used).
    if (stored && !this.owns(stored)) await this.discovered?.resolve();
    this.initialised = true;
    this.applyStored(stored, 'providerChanged');
  }

  /** This connection's entry in the store; a failure is OAUTH2_TOKEN_STORE_FAILED (never the store's own text). */
  private async readStore(): Promise<StoredTokens | undefined> {
    try {
      return await this.store.get(this.id);
    } catch (err) {
      throw storeFailure(err, 'read');
    }
  }

  /** The state stored tokens (or their absence) stand for. */
  private stateFor(stored: StoredTokens | undefined): ConnectionState {
    if (stored && !this.owns(stored)) {
      // Client credentials need no login: a token of this connection's own is fetched when needed.
      if (this.grant === 'client_credentials') return { kind: 'ready' };
      return { kind: 'login-required', code: 'OAUTH2_LOGIN_REQUIRED', error: this.otherSettingsError() };
    }
    if (stored?.loginRequired) {
      const reason = stored.loginRequiredReason;
      return { kind: 'login-required', code: 'OAUTH2_LOGIN_REQUIRED', ...(reason ? { error: loginRequired(this.id, undefined, reason) } : {}) };
    }
    return stored || this.grant === 'client_credentials' ? { kind: 'ready' } : { kind: 'logged-out' };
  }

  /** A valid access token, renewing first when needed. Throws OAuth2Error. */
  async getAccessToken(): Promise<TokenSet> {
    await this.ready();
    this.assertUsable();
    const tokens = this.current?.tokens;
    if (tokens && !this.unsaved && this.isFresh(tokens)) return tokens;
    if (tokens && this.isUnexpired(tokens)) {
      // Within the skew (or with renewed tokens still waiting to be stored): renew in the background and keep
      // serving the still-valid token meanwhile, also if the renewal fails (the failure shows in the state; the
      // token works until it expires).
      if (!this.flight && (this.unsaved || this.canRenew(tokens)) && this.now() >= this.proactiveCooldownUntil && !this.refusedNow()) {
        this.startRenewal({ kind: 'due' }).catch(() => {
          this.proactiveCooldownUntil = this.now() + this.retry.maxDelayMs;
        });
      }
      return tokens;
    }
    if (this.flight) return this.flight;
    if (!this.unsaved && !this.canRenew(tokens)) throw this.noRenewalPossible(tokens);
    const refused = this.refusedNow();
    if (refused) throw refused;
    return this.startRenewal({ kind: 'due' });
  }

  /**
   * The API rejected `rejectedAccessToken` as expired. Renew once if it is still the current token; if another
   * caller already replaced it, return the current one.
   */
  async renewAfterRejection(rejectedAccessToken: string, options: { requestMs?: number } = {}): Promise<TokenSet> {
    await this.ready();
    this.assertUsable();
    const reason: RenewalReason = {
      kind: 'rejected',
      accessToken: rejectedAccessToken,
      minLifeMs: MIN_RETRY_LIFE_MS + Math.max(0, options.requestMs ?? 0),
    };
    const tokens = this.current?.tokens;
    if (this.flight) return this.flight;
    // Another token (renewed meanwhile) is used only with enough life left for the retry to arrive in time.
    if (tokens && !this.unsaved && this.replaces(tokens, reason)) return tokens;
    if (!this.unsaved && !this.canRenew(tokens)) throw this.noRenewalPossible(tokens);
    const refused = this.refusedNow();
    if (refused) throw refused;
    return this.startRenewal(reason);
  }

  /** Whether `tokens` may serve for `reason` instead of a renewal. */
  private replaces(tokens: TokenSet, reason: RenewalReason): boolean {
    if (reason.kind === 'due') return this.isFresh(tokens);
    return tokens.accessToken !== reason.accessToken && tokens.expiresAt - this.now() >= reason.minLifeMs;
  }

  /**
   * Tokens from a completed login: persisted, then in use; clears login-required. A login issued to another
   * target than this connection's (made with the dialog's settings) is persisted and replaces the one in use,
   * but is not used here: resolves false, and the state says the login waits for a deploy of its settings.
   */
  async setTokens(login: TokenSet): Promise<boolean> {
    this.assertOpen();
    // A login without a refresh token keeps the previous one of the same grant (relogin.ts): the store's, or
    // when the store cannot be read, the one this connection holds.
    const previous = login.refreshToken ? undefined : await this.store.get(this.id).catch(() => undefined);
    const tokens = keepPreviousRefreshToken(login, previous?.tokens ?? this.current?.tokens);
    this.generation++;
    this.localChanges++;
    this.proactiveCooldownUntil = 0;
    this.forgetFailures();
    const entry: StoredTokens = { tokens, updatedAt: this.now() };
    if (!this.owns(entry)) await this.discovered?.resolve();
    const own = this.owns(entry);
    try {
      await this.store.set(this.id, entry);
    } catch (err) {
      const error = storeFailure(err, 'write');
      // Not handed out until durable (a fresh login's refresh token is the only one), but kept for a retry;
      // a login for other settings is not this connection's to write later.
      if (own) {
        this.localChanges++;
        this.unsaved = entry;
        this.unsavedLease = undefined;
        this.setState({ kind: 'unavailable', error });
      }
      throw error;
    }
    this.unsaved = undefined;
    this.unsavedLease = undefined;
    this.initialised = true;
    this.applyStored(entry, 'awaitsDeploy');
    return own;
  }

  /** Logout: forgets the tokens here and in the store. */
  async clear(): Promise<void> {
    this.generation++;
    this.localChanges++;
    this.current = undefined;
    this.foreign = undefined;
    this.localOnly = false;
    this.unsaved = undefined;
    this.unsavedLease = undefined;
    this.proactiveCooldownUntil = 0;
    this.forgetFailures();
    this.setState({ kind: 'logged-out' });
    try {
      await this.store.delete(this.id);
    } catch (err) {
      throw storeFailure(err, 'delete');
    }
  }

  snapshot(): TokenSnapshot {
    return snapshotOf(this.current, this.currentState);
  }

  /** The connection values the current tokens carry (connection-values.ts), not copied: read, never change. */
  currentValues(): Readonly<Record<string, string>> | undefined {
    return this.current?.tokens.values;
  }

  state(): ConnectionState {
    return this.currentState;
  }

  /**
   * Stops backoff timers. A renewal waiting in backoff rejects its waiters; one already talking to the token
   * endpoint finishes (and still stores what it gets: the server may have rotated the refresh token). Later
   * calls reject.
   */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.stopListening?.();
    for (const entry of this.timers) {
      clearTimeout(entry.timer);
      entry.resolve();
    }
    this.timers.clear();
  }

  // ---------------------------------------------------------------------------------------------------------

  private async ready(): Promise<void> {
    this.assertOpen();
    if (!this.initialised) await this.init();
  }

  private assertOpen(): void {
    if (this.closed) throw closedError();
  }

  private assertUsable(): void {
    this.assertOpen();
    if (this.currentState.kind === 'login-required') throw this.currentState.error ?? loginRequired(this.id);
  }

  /** The refusal (or the server's Retry-After pause) renewals fail with while it lasts. */
  private refusedNow(): OAuth2Error | undefined {
    if (this.refusal && this.now() < this.refusal.until) return this.refusal.error;
    return this.serverPause && this.now() < this.serverPause.until ? this.serverPause.error : undefined;
  }

  /** Tokens were issued, or a login or logout replaced them: earlier refusals and lost answers are history. */
  private forgetFailures(): void {
    this.refusal = undefined;
    this.serverPause = undefined;
    this.refreshAnswerLost = false;
  }

  /** Fresh: usable without renewing. Skew is capped at half the lifetime so a short-lived token is used. */
  private isFresh(tokens: TokenSet): boolean {
    const lifetime = Math.max(0, tokens.expiresAt - tokens.obtainedAt);
    const skew = Math.min(this.skewMs, lifetime / 2);
    return this.now() < tokens.expiresAt - skew;
  }

  private isUnexpired(tokens: TokenSet): boolean {
    return this.now() < tokens.expiresAt;
  }

  private canRenew(tokens: TokenSet | undefined): boolean {
    return this.grant === 'client_credentials' || Boolean(tokens?.refreshToken);
  }

  /** Authorization code / device code with no refresh token to use: a person must log in. */
  private noRenewalPossible(tokens: TokenSet | undefined): OAuth2Error {
    if (this.foreign && !tokens) {
      const error = this.otherSettingsError();
      this.setState({ kind: 'login-required', code: 'OAUTH2_LOGIN_REQUIRED', error });
      return error;
    }
    // Never logged in stays "logged-out"; a login that ran out becomes "login-required".
    if (tokens) this.setState({ kind: 'login-required', code: 'OAUTH2_LOGIN_REQUIRED' });
    return loginRequired(this.id);
  }

  /**
   * Whether stored tokens may be used and renewed by this connection: issued to its target, or saying nothing
   * of where they were issued (stored by versions before tokens recorded it: used as before).
   */
  private owns(entry: StoredTokens): boolean {
    const issuedTo = entry.tokens.issuedTo;
    if (!this.target || !issuedTo || sameCredentialTarget(issuedTo, this.target)) return true;
    const discovered = this.discovered?.known();
    return !!discovered && sameCredentialTarget(issuedTo, discovered);
  }

  /** What the store holds as far as this manager knows (`current` unless it was kept out of the store). */
  private storedEntry(): StoredTokens | undefined {
    return this.foreign?.entry ?? (this.localOnly ? undefined : this.current);
  }

  /**
   * The store holds another target's tokens that still work for it (a refresh token, or an unexpired access
   * token): writing over them would end a login waiting for its deploy, or another instance's tokens.
   */
  private foreignLive(): boolean {
    const entry = this.foreign?.entry;
    return Boolean(entry && !entry.loginRequired && (entry.tokens.refreshToken || this.isUnexpired(entry.tokens)));
  }

  private otherSettingsError(): OAuth2Error {
    return loginRequired(this.id, undefined, this.foreign?.reason ?? 'providerChanged');
  }

  /** A failure stays shown while the next attempt runs: a status flickering through 'refreshing' says nothing. */
  private isFailing(): boolean {
    return this.currentState.kind === 'unavailable' || this.currentState.kind === 'refused';
  }

  /** Starts the single renewal. Callers must have checked `this.flight` is empty. */
  private startRenewal(reason: RenewalReason): Promise<TokenSet> {
    const flight = this.renew(reason).finally(() => {
      if (this.flight === flight) this.flight = undefined;
      if (this.recheckAfterFlight && !this.flight) {
        this.recheckAfterFlight = false;
        this.onStoreChange();
      }
    });
    this.flight = flight;
    return flight;
  }

  private async renew(reason: RenewalReason): Promise<TokenSet> {
    if (this.coordination) return this.renewShared(reason, this.coordination);
    const generation = this.generation;
    if (!this.isFailing()) this.setState({ kind: 'refreshing' });

    // First, tokens the server already issued but the store could not take: write them, do not refresh again.
    if (this.unsaved) {
      const pending = this.unsaved;
      try {
        await this.store.set(this.id, pending);
      } catch (err) {
        const error = storeFailure(err, 'write');
        if (generation === this.generation) this.setState({ kind: 'unavailable', error });
        throw error;
      }
      if (generation !== this.generation) return this.superseded();
      if (this.unsaved === pending) this.unsaved = undefined;
      this.current = pending;
      this.foreign = undefined;
      this.localOnly = false;
      this.setState({ kind: 'ready' });
      if (this.replaces(pending.tokens, reason)) return pending.tokens;
    }

    return this.callTokenEndpoint(reason, generation, { write: (entry) => this.store.set(this.id, entry) });
  }

  /**
   * The renewal proper: one token-endpoint call with bounded retries, and the new tokens written with `write`
   * before anyone gets them. `onLoginRequired` runs when the provider answers invalid_grant. With `lease` (a
   * shared store), no attempt starts once the lock may have expired.
   */
  private async callTokenEndpoint(
    reason: RenewalReason,
    generation: number,
    how: {
      write: (entry: StoredTokens) => Promise<void>;
      onLoginRequired?: () => Promise<TokenSet | undefined>;
      lease?: RenewalLease;
    },
  ): Promise<TokenSet> {
    const { write, onLoginRequired, lease } = how;
    const previous = this.current?.tokens;
    let call: () => Promise<TokenSet>;
    if (this.grant === 'client_credentials') {
      call = () => this.client.clientCredentials();
    } else if (previous?.refreshToken) {
      call = () => this.client.refresh(previous);
    } else {
      if (previous && reason.kind === 'due' && this.isUnexpired(previous)) return previous;
      throw this.noRenewalPossible(previous);
    }

    let lastError: OAuth2Error | undefined;
    let lastAttempt = this.retry.maxAttempts;
    let answerLost = false;
    for (let attempt = 1; attempt <= lastAttempt; attempt++) {
      if (attempt > 1 && lastError) {
        const delay = answerLost ? this.lostAnswerPauseMs : this.retryDelay(attempt - 1, lastError);
        // The server asked for a longer pause than a renewal waits: it is not asked again before it ends.
        if (delay === undefined) throw this.pausedByServer(lastError);
        await this.wait(delay);
        if (this.closed) throw lastError;
        if (generation !== this.generation) return this.superseded();
      }
      // Cut off from the store for longer than the lock surely lives (no extension got through): another
      // instance may hold the lock now and refresh with the same refresh token; calling now would spend it twice.
      if (lease && lease.remainingMs() <= 0) throw lockLost();
      // A refresh in flight is marked in the shared store: if this instance stops before it ends, the next
      // holder knows why its own refresh may be refused.
      if (lease?.beginRefresh && this.grant !== 'client_credentials') await lease.beginRefresh();
      let issued: TokenSet;
      try {
        issued = await call();
      } catch (err) {
        if (generation !== this.generation) return this.superseded();
        const error = normaliseClientError(err);
        if (error.code === 'OAUTH2_LOGIN_REQUIRED') {
          // Invariant 9: stop here, and no call to the token endpoint until a new login.
          const replaced = await onLoginRequired?.();
          if (replaced) return replaced;
          if (lease?.abandoned && this.grant !== 'client_credentials') {
            // An instance stopped while its refresh was at the provider: the rotated refresh token died with it.
            const stopped = loginRequired(this.id, error, 'renewerStopped');
            this.setState({ kind: 'login-required', code: 'OAUTH2_LOGIN_REQUIRED', error: stopped });
            throw stopped;
          }
          if (this.refreshAnswerLost && this.grant !== 'client_credentials') {
            const lost = loginRequired(this.id, error, 'refreshAnswerLost');
            this.setState({ kind: 'login-required', code: 'OAUTH2_LOGIN_REQUIRED', error: lost });
            throw lost;
          }
          if (error.params.answer !== undefined) {
            // The provider said why, in whatever shape: the state and every later caller say it in its words.
            const refused = refreshRefused(this.id, error);
            this.setState({ kind: 'login-required', code: 'OAUTH2_LOGIN_REQUIRED', error: refused });
            throw refused;
          }
          this.setState({ kind: 'login-required', code: 'OAUTH2_LOGIN_REQUIRED' });
          throw loginRequired(this.id, error);
        }
        if (error.code === 'OAUTH2_TOKEN_REQUEST_REJECTED') {
          // The endpoint answered and refused (invalid_client, unauthorized_client...): a setting to correct,
          // not an outage. Shown as such, and not asked again before the backoff (or a deploy) ends.
          throw this.refused(error);
        }
        if (!isRetryable(error)) {
          // Not a token the server refused (a response that is not a token, a setting missing): the state goes
          // back to what the tokens say; the callers get the error with its own code.
          this.setState(this.current || this.grant === 'client_credentials' ? { kind: 'ready' } : { kind: 'logged-out' });
          throw error;
        }
        this.setState({ kind: 'unavailable', error });
        lastError = error;
        if (this.grant !== 'client_credentials' && mayHaveReachedServer(error)) {
          // The provider may have rotated the refresh token in the answer we lost: the retry presents the old
          // one, which such a provider refuses (and may end the login for). One retry at most, after a pause.
          this.refreshAnswerLost = true;
          answerLost = true;
          lastAttempt = Math.min(lastAttempt, attempt + 1);
        }
        continue;
      }
      return this.adopt(issued, generation, write, lease);
    }
    if (!lastError) throw closedError();
    // The last attempt's answer asked for a longer pause than a renewal waits: the next callers wait for it too.
    throw this.retryDelay(1, lastError) === undefined ? this.pausedByServer(lastError) : lastError;
  }

  /**
   * Invariant 8: the new tokens are on disk before anyone gets them. If the write fails we reject with
   * OAUTH2_TOKEN_STORE_FAILED and do NOT hand out the new access token: a flow would run on tokens whose
   * rotated refresh token exists only in memory, and a restart then would lose the login (the previous refresh
   * token is already spent). They are kept as `unsaved` and written first on the next attempt.
   *
   * With `lease` (a shared store) `write` retries while the lock is surely ours (see writeUnderLease), so the
   * lock is not released while the only live refresh token is in memory. If the store stays away longer, the
   * lock is retained (left to expire, not released) and the tokens are written by this lease's fence as soon as
   * the store is back (onStoreChange, renewShared): no other instance can have taken the lock before then
   * unless the lock's TTL ran out first. That is the window left: the store unreachable from this instance for
   * longer than the lock's TTL (while reachable from another, or restarted after the TTL and another instance
   * reaching it first) lets another instance refresh with the spent refresh token, and a provider that detects
   * reuse then revokes the login. A longer lockTtlMs narrows it; nothing held only in one process's memory
   * can close it.
   */
  private async adopt(
    received: TokenSet,
    generation: number,
    write: (entry: StoredTokens) => Promise<void>,
    lease?: RenewalLease,
  ): Promise<TokenSet> {
    // Issued by this connection's endpoints to its client: they say so (a refresh keeps the login's own stamp).
    const stamp = this.discovered?.known() ?? this.target;
    const issued: TokenSet = stamp && !received.issuedTo ? { ...received, issuedTo: stamp } : received;
    const entry: StoredTokens = { tokens: issued, updatedAt: this.now() };
    if (generation !== this.generation) return this.superseded();
    if (this.foreignLive()) {
      // Only client credentials renew without tokens of their own (see callTokenEndpoint): used here, not stored.
      this.useRenewed(entry, { localOnly: true });
      return issued;
    }
    try {
      await (lease ? this.writeUnderLease(lease, entry) : write(entry));
    } catch (err) {
      if (isSuperseded(err)) return this.adoptAfterSuperseded(generation);
      const error = storeFailure(err, 'write');
      if (generation === this.generation) {
        this.localChanges++;
        this.unsaved = entry;
        this.unsavedLease = lease;
        lease?.retain();
        this.setState({ kind: 'unavailable', error });
      }
      throw error;
    }
    if (generation !== this.generation) return this.superseded();
    this.useRenewed(entry, { localOnly: false });
    return issued;
  }

  /**
   * Tokens renewed here are the ones in use: written to the store, or (`localOnly`) kept here only, beside the
   * store's live entry of other settings, which stays remembered as such.
   */
  private useRenewed(entry: StoredTokens, { localOnly }: { localOnly: boolean }): void {
    this.localChanges++;
    this.current = entry;
    if (!localOnly) this.foreign = undefined;
    this.localOnly = localOnly;
    this.unsaved = undefined;
    this.unsavedLease = undefined;
    this.proactiveCooldownUntil = 0;
    this.forgetFailures();
    this.setState({ kind: 'ready' });
  }

  // --- Several instances sharing the store (coordination) ----------------------------------------------------

  /** A renewal under the cluster-wide lock. Lock and store failures leave the state 'unavailable'. */
  private async renewShared(reason: RenewalReason, coordination: RenewalCoordination): Promise<TokenSet> {
    const generation = this.generation;
    if (!this.isFailing()) this.setState({ kind: 'refreshing' });
    try {
      const written = await this.writeUnsavedByFence(reason, generation);
      if (written) return written;
      return await coordination.withRenewalLock(this.id, (lease) => this.renewUnderLease(reason, lease, generation));
    } catch (err) {
      if (isOAuth2Error(err, 'OAUTH2_TOKEN_STORE_FAILED') && generation === this.generation) {
        // Never a refresh without the lock: with rotating refresh tokens two instances refreshing at once kill
        // the login. Callers holding an unexpired token keep it (getAccessToken serves it meanwhile).
        this.setState({ kind: 'unavailable', error: err });
      }
      throw err;
    }
  }

  /** Tokens kept as `unsaved` reached the store: they are the current ones now. */
  private pendingWritten(pending: StoredTokens): void {
    this.localChanges++;
    if (this.unsaved === pending) {
      this.unsaved = undefined;
      this.unsavedLease = undefined;
    }
    this.current = pending;
    this.foreign = undefined;
    this.localOnly = false;
    this.proactiveCooldownUntil = 0;
    this.setState({ kind: 'ready' });
  }

  /**
   * Tokens renewed here that the store could not take are written with the fence of the lease they were issued
   * under, without waiting for the lock (which may still be retained by that lease): the write succeeds only if
   * no instance took the lock since, i.e. nobody can have refreshed meanwhile. Refused: the locked path decides
   * (it compares the stored entry with ours). Resolves the tokens when they are written and good for `reason`.
   */
  private async writeUnsavedByFence(reason: RenewalReason, generation: number): Promise<TokenSet | undefined> {
    const pending = this.unsaved;
    const lease = this.unsavedLease;
    if (!pending || !lease) return undefined;
    try {
      await lease.write(pending);
    } catch (err) {
      if (!isSuperseded(err)) throw storeFailure(err, 'write');
      if (this.unsavedLease === lease) this.unsavedLease = undefined;
      return undefined;
    }
    if (generation !== this.generation) return this.superseded();
    this.pendingWritten(pending);
    const good = this.replaces(pending.tokens, reason);
    return good ? pending.tokens : undefined;
  }

  /**
   * A fenced write retried while the lock is surely ours: a blip of the store must not make us give up the lock
   * while the renewed (only live) refresh token is in memory. Bounded by the lock's life as it stood at the first
   * failure (extensions that still get through do not prolong it forever); a refused write (`superseded`) is
   * final at once.
   */
  private async writeUnderLease(lease: RenewalLease, entry: StoredTokens): Promise<void> {
    let giveUpAt: number | undefined;
    for (;;) {
      try {
        await lease.write(entry);
        return;
      } catch (err) {
        if (isSuperseded(err)) throw err;
        const left = lease.remainingMs();
        giveUpAt ??= performance.now() + left;
        const until = Math.min(left, giveUpAt - performance.now());
        if (until <= 0) throw storeFailure(err, 'write');
        await pause(Math.min(STORE_RETRY_MS, until));
      }
    }
  }

  private async renewUnderLease(reason: RenewalReason, lease: RenewalLease, generation: number): Promise<TokenSet> {
    // Another instance may have renewed while this one waited for the lock: the store decides.
    let stored = await this.readStore();
    if (generation !== this.generation) return this.superseded();

    if (this.unsaved) {
      const pending = this.unsaved;
      if (!sameEntry(stored, this.storedEntry())) {
        // Someone wrote since these were issued (a login, a logout, another instance that renewed after our
        // lock was lost): the store's entry is newer than the tokens we got, and ours are dropped.
        this.localChanges++;
        this.unsaved = undefined;
        this.unsavedLease = undefined;
      } else {
        try {
          await this.writeUnderLease(lease, pending);
        } catch (err) {
          if (isSuperseded(err)) return this.adoptAfterSuperseded(generation);
          // Still the only live tokens: keep others out until the lock expires, and retry by this fence.
          if (this.unsaved === pending) this.unsavedLease = lease;
          lease.retain();
          throw storeFailure(err, 'write');
        }
        if (generation !== this.generation) return this.superseded();
        this.pendingWritten(pending);
        stored = pending;
      }
    }

    // The store holds the latest tokens of the whole cluster (writes are ordered by the lock's fence; the
    // updatedAt of different machines' clocks cannot order them): whatever differs from ours is newer.
    if (!sameEntry(stored, this.storedEntry())) this.applyStored(stored, 'awaitsDeploy');
    const tokens = this.current?.tokens;
    if (this.current?.loginRequired) throw loginRequired(this.id, undefined, this.current.loginRequiredReason);
    if (tokens && this.replaces(tokens, reason)) return tokens;
    if (!this.canRenew(tokens)) {
      if (tokens && reason.kind === 'due' && this.isUnexpired(tokens)) return tokens;
      throw this.noRenewalPossible(tokens);
    }
    return this.callTokenEndpoint(reason, generation, { write: (entry) => lease.write(entry), lease, onLoginRequired: async () => {
      // invalid_grant: every instance must learn it, so the entry is marked rather than left for others to
      // refresh with (they would only hammer the endpoint with a dead refresh token).
      const base = this.current;
      // Tokens kept out of the store mark nothing there: the entry is another target's.
      if (!base || this.localOnly) return undefined;
      const { refreshToken: _dead, ...rest } = base.tokens;
      const marked: StoredTokens = { tokens: rest, updatedAt: this.now(), loginRequired: true, ...(lease.abandoned ? { loginRequiredReason: 'renewerStopped' as const } : {}) };
      try {
        await lease.write(marked);
      } catch (err) {
        // A login (or logout) elsewhere replaced the entry meanwhile: that one is current, not our failure.
        if (isSuperseded(err)) return this.adoptAfterSuperseded(generation).catch(() => undefined);
        return undefined; // Store away: this instance still stops; others learn it from their own refresh.
      }
      this.localChanges++;
      this.current = marked;
      return undefined;
    } });
  }

  /**
   * Our fenced write was refused: the lock had expired and another instance renewed, or a login or logout
   * happened. The provider has already rotated past what the store holds or the store holds a newer login; in
   * both cases the stored entry wins and the tokens we got are dropped (writing them would overwrite newer ones,
   * and the next renewal, by whichever instance, starts from the stored refresh token).
   */
  private async adoptAfterSuperseded(generation: number): Promise<TokenSet> {
    const stored = await this.readStore();
    if (generation !== this.generation) return this.superseded();
    this.localChanges++;
    this.unsaved = undefined;
    this.unsavedLease = undefined;
    this.applyStored(stored, 'awaitsDeploy');
    const tokens = this.current?.tokens;
    if (!tokens || this.current?.loginRequired || !this.isUnexpired(tokens)) {
      throw this.foreign && this.grant !== 'client_credentials' ? this.otherSettingsError() : loginRequired(this.id);
    }
    return tokens;
  }

  /**
   * Makes a stored entry (or its absence: logged out elsewhere) the one in use, unless it was issued to another
   * target: then it is only remembered as the store's (`reason` says how it came), and nothing of it is used.
   */
  private applyStored(stored: StoredTokens | undefined, reason: OtherSettingsReason = 'awaitsDeploy'): void {
    this.localChanges++;
    this.proactiveCooldownUntil = 0;
    this.refreshAnswerLost = false;
    if (!stored || this.owns(stored)) {
      this.current = stored;
      this.foreign = undefined;
      this.localOnly = false;
    } else {
      this.foreign = { entry: stored, reason };
      // A client-credentials token of our own still works for our endpoints; a login of our own was replaced.
      if (this.grant === 'client_credentials' && this.current) {
        this.localOnly = true;
      } else {
        this.current = undefined;
        this.localOnly = false;
      }
    }
    this.setState(this.stateFor(stored));
  }

  /** Another instance wrote or deleted this connection's tokens (or the store reconnected): re-read. */
  private onStoreChange(): void {
    if (this.closed || !this.initialised) return;
    if (this.flight) {
      // The renewal re-reads under the lock, and its fenced write fails if anything changed: check after it.
      this.recheckAfterFlight = true;
      return;
    }
    if (this.unsaved) {
      // Tokens issued here that the store could not take are the only live ones: the store answers again (or
      // someone wrote), so write them now, by their lease's fence or under the lock; never wait for a caller.
      this.startRenewal({ kind: 'due' }).catch(() => undefined);
      return;
    }
    const seen = this.localChanges;
    this.readStore().then(
      (stored) => {
        if (this.closed || this.flight || seen !== this.localChanges) return;
        // Tokens issued here but not yet stored are the newest ones: the renewal started for them decides.
        if (this.unsaved) return;
        if (!sameEntry(stored, this.storedEntry())) {
          this.applyStored(stored, 'awaitsDeploy');
        } else if (this.currentState.kind === 'unavailable' && this.currentState.error.code === 'OAUTH2_TOKEN_STORE_FAILED') {
          // The store answers again and nothing changed meanwhile.
          this.setState(this.stateFor(stored));
        }
      },
      () => undefined, // Still unreachable: the next reconnect announces itself.
    );
  }

  /** A renewal outlived a login or logout that happened meanwhile: answer with what is current now. */
  private superseded(): TokenSet {
    const tokens = this.current?.tokens;
    if (tokens && this.isUnexpired(tokens) && this.currentState.kind !== 'login-required') return tokens;
    throw this.foreign && this.grant !== 'client_credentials' ? this.otherSettingsError() : loginRequired(this.id);
  }

  /**
   * The wait before the next attempt of a renewal (retry.ts: the token endpoint's Retry-After when it sent one,
   * else backoff with full jitter), or undefined when the server asked for longer than a renewal waits.
   */
  private retryDelay(failedAttempt: number, error: OAuth2Error): number | undefined {
    const retryAfterMs = typeof error.params.retryAfterMs === 'number' ? error.params.retryAfterMs : undefined;
    // The attempts are counted by the caller (a lost answer shortens them): only the delay is asked here.
    const policy = { ...this.retry, maxAttempts: Number.POSITIVE_INFINITY };
    return retryDelay({ attempt: failedAttempt, policy, retryAfterMs, random: this.random });
  }

  /**
   * A renewal ends early because the token endpoint asked for a longer pause (Retry-After) than a renewal waits:
   * renewals fail at once with `error` until it ends (capped like a refusal's pause), so callers do not hammer it.
   * Shorter pauses were waited within the renewal; after its last attempt the next caller may try again.
   */
  private pausedByServer(error: OAuth2Error): OAuth2Error {
    const retryAfterMs = error.params.retryAfterMs;
    if (typeof retryAfterMs === 'number' && retryAfterMs > 0) {
      this.serverPause = { error, until: this.now() + Math.min(retryAfterMs, this.refusalBackoff.maxMs) };
    }
    return error;
  }

  /** A wait that close() cuts short (the injected `sleep` when there is one). */
  private wait(ms: number): Promise<void> {
    if (this.sleepImpl) return this.sleepImpl(ms);
    return new Promise<void>((resolve) => {
      const entry = {
        timer: setTimeout(() => {
          this.timers.delete(entry);
          resolve();
        }, ms),
        resolve,
      };
      // A waiting backoff must not keep the process alive on shutdown.
      entry.timer.unref?.();
      this.timers.add(entry);
    });
  }

  /** Records a refusal: the state shows it, and renewals fail with it until its backoff has passed. */
  private refused(error: OAuth2Error): OAuth2Error {
    const inARow = (this.refusal?.inARow ?? 0) + 1;
    const delay = backoffCeiling(inARow, { baseDelayMs: this.refusalBackoff.baseMs, maxDelayMs: this.refusalBackoff.maxMs });
    const until = this.now() + delay;
    this.refusal = { error, until, inARow };
    this.setState({ kind: 'refused', error, retryAt: until });
    return error;
  }

  private setState(next: ConnectionState): void {
    const prev = this.currentState;
    const same = prev.kind === next.kind && errorOf(prev) === errorOf(next);
    if (same) return;
    this.currentState = next;
    try {
      this.emit('state', next);
    } catch {
      // A listener's bug must not break token handling (this can run from a timer's continuation).
    }
  }
}

function errorOf(state: ConnectionState): OAuth2Error | undefined {
  return 'error' in state ? state.error : undefined;
}

/**
 * No HTTP answer, and not a failure that stops a request before it is sent: the request may have reached the
 * token endpoint (and been acted on) while its answer was lost.
 */
function mayHaveReachedServer(error: OAuth2Error): boolean {
  if (error.code !== 'OAUTH2_TOKEN_ENDPOINT_UNAVAILABLE' || error.statusCode !== undefined) return false;
  const reason = String(error.params.reason ?? '');
  return !NEVER_SENT.has(reason) && !/CERT|TLS|SSL|SIGNATURE/.test(reason);
}

type LoginRequiredReason = 'refreshAnswerLost' | 'renewerStopped' | OtherSettingsReason;

const LOGIN_REQUIRED_MESSAGES: Record<LoginRequiredReason, string> = {
  renewerStopped:
    'Login required: a Node-RED instance stopped while its refresh request was at the provider, so the refresh token the provider issued in that answer was lost with it, and the provider refused the one before (invalid_grant). Log in again from the editor; a provider setting that allows a refresh token to be reused for a short time (a reuse interval or grace period) prevents this.',
  refreshAnswerLost:
    'Login required: the provider refused the refresh token (invalid_grant) after the answer to a refresh was lost (a timeout or a cut connection after the request was sent); the provider most likely rotated the refresh token in that lost answer. Log in again from the editor.',
  providerChanged:
    "Login required: the connection's authorization-server settings (issuer, endpoints, client id or client authentication) changed since the login; the stored tokens are not sent to the new ones. Log in again from the editor.",
  awaitsDeploy:
    'Login required here: the stored login was made with other authorization-server settings than the deployed ones (in the dialog, or by another Node-RED instance sharing the token store). Deploy those settings to use it, or log in again.',
};

function loginRequired(connectionId: string, cause?: OAuth2Error, reason?: LoginRequiredReason): OAuth2Error {
  const message = reason ? LOGIN_REQUIRED_MESSAGES[reason] : 'Login required: the connection has no usable tokens; log in again from the editor.';
  return new OAuth2Error('OAUTH2_LOGIN_REQUIRED', message, {
    params: reason ? { connection: connectionId, reason } : { connection: connectionId },
    oauthError: cause?.oauthError,
    statusCode: cause?.statusCode,
    cause,
  });
}

/** A refresh the token endpoint refused, in the provider's words (status, error code, description, hint). */
function refreshRefused(connectionId: string, cause: OAuth2Error): OAuth2Error {
  const { host, status, error, description, answer, hint, messageKey } = cause.params;
  return new OAuth2Error('OAUTH2_LOGIN_REQUIRED', `Login required: ${cause.message}`, {
    params: { connection: connectionId, reason: 'refreshRefused', host, status, error, description, answer, hint, messageKey },
    oauthError: cause.oauthError,
    statusCode: cause.statusCode,
    cause,
  });
}

function closedError(): OAuth2Error {
  // There is no dedicated code for "closed" (see report); the connection is gone until redeployed.
  return new OAuth2Error('OAUTH2_TOKEN_ENDPOINT_UNAVAILABLE', 'The OAuth2 connection was closed (redeploy or shutdown).', {
    params: { reason: 'closed' },
  });
}

/** A timer that close() does not cut short: what it paces (writing the only live tokens) must go on. */
function pause(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}

function lockLost(): OAuth2Error {
  return new OAuth2Error(
    'OAUTH2_TOKEN_STORE_FAILED',
    'The refresh lock on Redis may have expired (it could not be extended while Redis was unreachable); the token endpoint was not called, so that no two instances refresh with the same refresh token. Try again.',
    { params: { reason: 'lockLost' }, retryable: true },
  );
}

function storeFailure(err: unknown, operation: 'read' | 'write' | 'delete'): OAuth2Error {
  if (isOAuth2Error(err, 'OAUTH2_TOKEN_STORE_FAILED')) return err;
  // The store's own error may be anything; keep only its code, never its message (it could quote content).
  const code = (err as { code?: unknown } | undefined)?.code;
  return new OAuth2Error('OAUTH2_TOKEN_STORE_FAILED', `Token store ${operation} failed${typeof code === 'string' ? ` (${code})` : ''}.`, {
    params: { operation },
  });
}

/** The fenced write of a lease was refused (see RenewalLease.write). */
function isSuperseded(err: unknown): boolean {
  return isOAuth2Error(err, 'OAUTH2_TOKEN_STORE_FAILED') && err.params.reason === 'superseded';
}

/** The same stored entry (both absent counts as the same). */
function sameEntry(a: StoredTokens | undefined, b: StoredTokens | undefined): boolean {
  if (!a || !b) return a === b;
  return (
    a.updatedAt === b.updatedAt &&
    a.tokens.accessToken === b.tokens.accessToken &&
    a.tokens.refreshToken === b.tokens.refreshToken &&
    Boolean(a.loginRequired) === Boolean(b.loginRequired)
  );
}

function normaliseClientError(err: unknown): OAuth2Error {
  if (err instanceof OAuth2Error) return err;
  // Contract says the client throws OAuth2Error only; anything else is a bug or a raw network error. Its
  // message could hold request details, so it is not copied.
  return new OAuth2Error('OAUTH2_TOKEN_ENDPOINT_UNAVAILABLE', 'The token endpoint call failed unexpectedly.', {
    params: { reason: 'unexpected' },
    retryable: true,
  });
}

function isRetryable(error: OAuth2Error): boolean {
  return error.code === 'OAUTH2_TOKEN_ENDPOINT_UNAVAILABLE' || (error.retryable && error.code !== 'OAUTH2_TOKEN_STORE_FAILED');
}
