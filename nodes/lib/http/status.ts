/**
 * What a non-2xx answer means once the pipeline is done with it (retries, renewal, redirects): one error, the
 * same for the request node and the trigger.
 */
import { OAuth2Error } from '../errors';
import type { AuthorisedResponse } from './request';
import { parseRetryAfter } from './retry';

/** True for the statuses worth asking again later (the trigger backs off on them, a request node's retry policy decides its own). */
export function isTransientStatus(statusCode: number): boolean {
  return statusCode === 429 || statusCode >= 500;
}

/**
 * OAUTH2_HTTP_STATUS for a response that is not 2xx: its status, whether asking again later may work, and the
 * server's Retry-After when it gave one.
 */
export function httpStatusError(response: Pick<AuthorisedResponse, 'statusCode' | 'headers'>): OAuth2Error {
  const { statusCode } = response;
  const retryAfterMs = parseRetryAfter(response.headers['retry-after']);
  return new OAuth2Error('OAUTH2_HTTP_STATUS', `HTTP ${statusCode}`, {
    statusCode,
    retryable: isTransientStatus(statusCode),
    params: { statusCode, ...(retryAfterMs !== undefined ? { retryAfterMs } : {}) },
  });
}
