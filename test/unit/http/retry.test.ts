import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  DEFAULT_RETRY_POLICY,
  backoffDelay,
  isRetryableMethod,
  parseRetryAfter,
  retryDelay,
  retryPolicy,
} from '../../../nodes/lib/http/retry';

describe('http/retry', () => {
  const policy = retryPolicy({ maxAttempts: 5, baseDelayMs: 100, maxDelayMs: 1000, maxRetryAfterMs: 10_000 });

  it('defaults retry 429/502/503/504 and not unsafe methods', () => {
    assert.deepEqual([...DEFAULT_RETRY_POLICY.statuses], [429, 502, 503, 504]);
    assert.equal(DEFAULT_RETRY_POLICY.retryUnsafeMethods, false);
  });

  it('backoff is exponential with full jitter and capped', () => {
    assert.equal(backoffDelay(1, policy, () => 0.999), 99);
    assert.equal(backoffDelay(2, policy, () => 0.5), 100);
    assert.equal(backoffDelay(3, policy, () => 0.5), 200);
    assert.equal(backoffDelay(10, policy, () => 0.999), 999);
    assert.equal(backoffDelay(1, policy, () => 0), 0);
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 1000 }), fc.double({ min: 0, max: 1, noNaN: true }), (attempt, r) => {
        const d = backoffDelay(attempt, policy, () => r);
        return d >= 0 && d <= policy.maxDelayMs && Number.isInteger(d);
      }),
    );
  });

  it('parses Retry-After seconds and HTTP-dates', () => {
    const now = Date.parse('2025-01-01T00:00:00Z');
    assert.equal(parseRetryAfter('3', now), 3000);
    assert.equal(parseRetryAfter(' 0 ', now), 0);
    assert.equal(parseRetryAfter('Wed, 01 Jan 2025 00:00:05 GMT', now), 5000);
    assert.equal(parseRetryAfter('Tue, 31 Dec 2024 23:59:00 GMT', now), 0);
    assert.equal(parseRetryAfter('-5', now), 0);
    assert.equal(parseRetryAfter(['7', '9'], now), 7000);
    assert.equal(parseRetryAfter('soon', now), undefined);
    assert.equal(parseRetryAfter('1.5', now), undefined);
    assert.equal(parseRetryAfter(undefined, now), undefined);
    assert.equal(parseRetryAfter('', now), undefined);
  });

  it('retryDelay honours Retry-After up to the cap, else gives up', () => {
    assert.equal(retryDelay({ attempt: 1, policy, retryAfter: '2', now: 0 }), 2000);
    assert.equal(retryDelay({ attempt: 1, policy, retryAfter: '11', now: 0 }), undefined);
    assert.equal(retryDelay({ attempt: 1, policy, random: () => 0.5 }), 50);
    assert.equal(retryDelay({ attempt: 5, policy, retryAfter: '1' }), undefined);
  });

  it('retries idempotent methods; POST and PATCH only when opted in', () => {
    for (const m of ['GET', 'head', 'PUT', 'DELETE', 'OPTIONS']) assert.equal(isRetryableMethod(m, policy), true, m);
    for (const m of ['POST', 'PATCH', 'CUSTOM']) assert.equal(isRetryableMethod(m, policy), false, m);
    assert.equal(isRetryableMethod('POST', { retryUnsafeMethods: true }), true);
  });

  it('retryPolicy ignores nonsense numbers', () => {
    const p = retryPolicy({ maxAttempts: -1, baseDelayMs: Number.NaN });
    assert.equal(p.maxAttempts, DEFAULT_RETRY_POLICY.maxAttempts);
    assert.equal(p.baseDelayMs, DEFAULT_RETRY_POLICY.baseDelayMs);
  });
});
