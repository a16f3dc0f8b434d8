/**
 * Checks the query of an authorization response (the redirect to our callback) against the one login
 * transaction it claims to answer. Finding that transaction by `state` is the transaction store's job.
 */
import { timingSafeEqual } from 'node:crypto';
import { OAuth2Error } from '../errors';
import { sanitizeProviderText } from './error-mapping';
import { matchesTemplate } from './tenant-issuer';

export interface ExpectedCallback {
  state: string;
  /** The issuer we discovered or were configured with; compared with `iss` when both exist. */
  issuer?: string;
  /** A multi-tenant issuer's template: an `iss` naming one tenant in it is accepted (tenant-issuer.ts). */
  issuerTemplate?: string;
  /** True when the server advertises RFC 9207: a response without `iss` is then refused. */
  issRequired: boolean;
}

const KNOWN_PARAMS = ['code', 'state', 'iss', 'error', 'error_description', 'error_uri'] as const;

/** Returns the authorization code, or throws an OAuth2Error saying why the callback is not acceptable. */
export function validateCallback(query: Record<string, unknown>, expected: ExpectedCallback): { code: string } {
  // A repeated parameter (?state=a&state=b) arrives as an array: ambiguous, so refused outright.
  for (const name of KNOWN_PARAMS) {
    const value = query[name];
    if (value !== undefined && typeof value !== 'string') {
      throw new OAuth2Error('OAUTH2_INVALID_INPUT', `The callback parameter ${name} must appear once, as text`, {
        params: { field: name },
      });
    }
  }
  const { code, state, iss, error } = query as Partial<Record<(typeof KNOWN_PARAMS)[number], string>>;

  // state first: until it matches, nothing in this response can be trusted, not even an error.
  if (!state || !constantTimeEqual(state, expected.state)) {
    throw new OAuth2Error('OAUTH2_INVALID_STATE', 'The login callback does not match the login that was started', {
      params: { field: 'state' },
    });
  }

  // RFC 9207: check iss before acting on the response, errors included (mix-up attacks).
  if (iss === undefined || iss === '') {
    if (expected.issRequired) {
      throw new OAuth2Error('OAUTH2_ISSUER_MISMATCH', 'The login callback has no iss parameter, but the provider promises one', {
        params: { expected: expected.issuer, received: '' },
      });
    }
  } else if (expected.issuer !== undefined && iss !== expected.issuer && !(expected.issuerTemplate && matchesTemplate(expected.issuerTemplate, iss))) {
    throw new OAuth2Error('OAUTH2_ISSUER_MISMATCH', 'The login callback comes from another issuer than the one the login started with', {
      params: { expected: expected.issuer, received: sanitizeProviderText(iss) },
    });
  }

  if (error !== undefined) {
    const errorCode = sanitizeProviderText(error) ?? 'unknown';
    const description = sanitizeProviderText(query.error_description);
    if (errorCode === 'access_denied') {
      throw new OAuth2Error('OAUTH2_ACCESS_DENIED', 'The login was denied at the provider (access_denied)', {
        params: { error: errorCode, description },
        oauthError: errorCode,
      });
    }
    throw new OAuth2Error('OAUTH2_PROVIDER_ERROR', `The provider answered the login with an error (${errorCode})`, {
      params: { error: errorCode, description: description ?? '' },
      oauthError: errorCode,
    });
  }

  if (!code) {
    throw new OAuth2Error('OAUTH2_INVALID_INPUT', 'The login callback carries no authorization code', {
      params: { field: 'code' },
    });
  }
  return { code };
}

function constantTimeEqual(a: string, b: string): boolean {
  const left = Buffer.from(a);
  const right = Buffer.from(b);
  return left.length === right.length && timingSafeEqual(left, right);
}
