/**
 * When and how long to wait before sending a failed request again: the one backoff of the package, used by the
 * request pipeline, the record trigger's polls and the token manager's token-endpoint calls.
 */
export interface RetryPolicy {
  /** Total attempts, the first included: 1 means no retry. */
  maxAttempts: number;
  /** Response statuses worth another attempt. */
  statuses: readonly number[];
  /** Retry on connection reset / refused / timeout / socket hang up. */
  retryNetworkErrors: boolean;
  /**
   * Also retry methods that are not idempotent (POST, PATCH, anything unknown). Off by default: the server may
   * have acted on the first attempt. GET, HEAD, OPTIONS, TRACE, PUT and DELETE are idempotent (RFC 9110 9.2.2).
   */
  retryUnsafeMethods: boolean;
  /** First backoff ceiling; doubles per attempt (full jitter: the wait is uniform in [0, ceiling)). */
  baseDelayMs: number;
  /** Upper bound of the backoff ceiling. */
  maxDelayMs: number;
  /** Longest Retry-After we are willing to wait; a longer one ends the retries (see retryDelay). */
  maxRetryAfterMs: number;
}

export const DEFAULT_RETRY_STATUSES: readonly number[] = [429, 502, 503, 504];

export const DEFAULT_RETRY_POLICY: Readonly<RetryPolicy> = Object.freeze({
  maxAttempts: 3,
  statuses: DEFAULT_RETRY_STATUSES,
  retryNetworkErrors: true,
  retryUnsafeMethods: false,
  baseDelayMs: 500,
  maxDelayMs: 30_000,
  maxRetryAfterMs: 60_000,
});

/** The default policy with some fields replaced; non-finite or negative numbers fall back to the default. */
export function retryPolicy(overrides: Partial<RetryPolicy> = {}): RetryPolicy {
  const num = (v: number | undefined, d: number, min: number): number =>
    typeof v === 'number' && Number.isFinite(v) && v >= min ? v : d;
  const d = DEFAULT_RETRY_POLICY;
  return {
    maxAttempts: Math.floor(num(overrides.maxAttempts, d.maxAttempts, 1)),
    statuses: Array.isArray(overrides.statuses) ? [...overrides.statuses] : [...d.statuses],
    retryNetworkErrors: overrides.retryNetworkErrors ?? d.retryNetworkErrors,
    retryUnsafeMethods: overrides.retryUnsafeMethods ?? d.retryUnsafeMethods,
    baseDelayMs: num(overrides.baseDelayMs, d.baseDelayMs, 0),
    maxDelayMs: num(overrides.maxDelayMs, d.maxDelayMs, 0),
    maxRetryAfterMs: num(overrides.maxRetryAfterMs, d.maxRetryAfterMs, 0),
  };
}

const IDEMPOTENT_METHODS = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE']);

/** Whether a request with this method may be sent again under the policy. */
export function isRetryableMethod(method: string, policy: Pick<RetryPolicy, 'retryUnsafeMethods'>): boolean {
  return IDEMPOTENT_METHODS.has(method.toUpperCase()) || policy.retryUnsafeMethods;
}

export function isRetryableStatus(status: number, policy: Pick<RetryPolicy, 'statuses'>): boolean {
  return policy.statuses.includes(status);
}

/**
 * The exponential backoff ceiling: min(maxDelayMs, baseDelayMs * 2^(attempt-1)). Used as it is where waits
 * must be predictable (the token manager's pause after a refusal), with jitter by backoffDelay.
 * @param attempt the attempt that just failed (or the failures in a row), 1-based.
 */
export function backoffCeiling(attempt: number, policy: Pick<RetryPolicy, 'baseDelayMs' | 'maxDelayMs'>): number {
  const exp = Math.max(0, Math.floor(attempt) - 1);
  return Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** Math.min(exp, 52));
}

/**
 * Exponential backoff with full jitter: uniform in [0, backoffCeiling(attempt)).
 * @param attempt the attempt that just failed, 1-based.
 */
export function backoffDelay(
  attempt: number,
  policy: Pick<RetryPolicy, 'baseDelayMs' | 'maxDelayMs'>,
  random: () => number = Math.random,
): number {
  const ceiling = backoffCeiling(attempt, policy);
  const r = random();
  const unit = Number.isFinite(r) ? Math.min(Math.max(r, 0), 1) : 0;
  return Math.floor(unit * ceiling);
}

/**
 * Retry-After (RFC 9110 10.2.3) in milliseconds from `now`: delta-seconds or an HTTP-date. A date in the past
 * gives 0; anything unparseable gives undefined. With several values (repeated header) the first one counts.
 */
export function parseRetryAfter(value: string | readonly string[] | undefined | null, now: number = Date.now()): number | undefined {
  const raw = Array.isArray(value) ? value[0] : value;
  if (typeof raw !== 'string') return undefined;
  const text = raw.trim();
  if (text === '') return undefined;
  if (/^\d+$/.test(text)) {
    const seconds = Number(text);
    return Number.isFinite(seconds) ? seconds * 1000 : undefined;
  }
  if (/^-\d+$/.test(text)) return 0;
  const at = parseHttpDate(text);
  return at === undefined ? undefined : Math.max(0, at - now);
}

/**
 * An HTTP-date (RFC 9110 5.6.7: IMF-fixdate, and the obsolete forms Date.parse also reads) as epoch ms, for
 * Retry-After and the Date header; undefined when it is not one. With several values the first one counts.
 */
export function parseHttpDate(value: string | readonly string[] | undefined | null): number | undefined {
  const raw = Array.isArray(value) ? value[0] : value;
  if (typeof raw !== 'string') return undefined;
  const text = raw.trim();
  // Require a letter so that odd numbers like "1.5" are not read as dates.
  if (!/[a-z]/i.test(text)) return undefined;
  const at = Date.parse(text);
  return Number.isNaN(at) ? undefined : at;
}

export interface RetryDelayInput {
  /** The attempt that just failed, 1-based. */
  attempt: number;
  policy: Pick<RetryPolicy, 'maxAttempts' | 'baseDelayMs' | 'maxDelayMs' | 'maxRetryAfterMs'>;
  /** The response's Retry-After header, if any. */
  retryAfter?: string | readonly string[];
  /** Retry-After already read (parseRetryAfter), when the header itself is gone (a token-endpoint error). */
  retryAfterMs?: number;
  now?: number;
  random?: () => number;
}

/**
 * How long to wait before the next attempt, or undefined when there must be no next attempt (attempts used
 * up, or the server asked for a longer pause than the policy accepts).
 *
 * A Retry-After above maxRetryAfterMs ends the retries on purpose: waiting less than the server asked would
 * hammer it, and waiting that long would hold the message for longer than the user agreed to. The caller then
 * returns the last response (or error) as it is, so the flow can see the status and Retry-After itself.
 */
export function retryDelay(input: RetryDelayInput): number | undefined {
  const { attempt, policy } = input;
  if (attempt >= policy.maxAttempts) return undefined;
  const serverAsked = input.retryAfterMs ?? parseRetryAfter(input.retryAfter, input.now ?? Date.now());
  if (serverAsked !== undefined) {
    return serverAsked > policy.maxRetryAfterMs ? undefined : serverAsked;
  }
  return backoffDelay(attempt, policy, input.random);
}
