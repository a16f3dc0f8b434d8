/**
 * Turns what a token, device or revocation endpoint answered into an OAuth2Error with a stable code.
 * One shape (EndpointFailure) for every HTTP client we use, so simple-oauth2 calls and our own form POSTs map
 * the same way. Nothing here ever receives a request body or headers, so no secret can leak into an error.
 */
import { OAuth2Error } from '../errors';

/** What went wrong talking to an endpoint, with every request detail already stripped. */
export type EndpointFailure =
  | { kind: 'network'; code?: string }
  | { kind: 'timeout' }
  /** `body` is the parsed JSON body, or undefined when the body was not JSON. */
  | { kind: 'http'; status: number; body: unknown };

export interface EndpointContext {
  /** Host of the endpoint (never the full URL: a misconfigured URL could carry credentials in its userinfo). */
  host: string;
  /** Which endpoint, for the message: 'token', 'device authorization', 'revocation'. */
  endpoint: string;
  /** Values that must never be echoed back, even if a server reflects them in error_description. */
  secrets?: readonly (string | undefined)[];
}

const MAX_PROVIDER_TEXT = 200;

/**
 * Makes provider-supplied text (error, error_description) safe to show and log: printable ASCII only
 * (RFC 6749 section 5.2 allows nothing else), capped, and with any known secret cut out in case the server
 * reflects request values.
 */
export function sanitizeProviderText(value: unknown, secrets: readonly (string | undefined)[] = []): string | undefined {
  if (typeof value !== 'string') return undefined;
  let text = value.replace(/[^\x20-\x7e]/g, ' ');
  for (const secret of secrets) {
    if (secret && secret.length >= 4) text = text.split(secret).join('[redacted]');
  }
  text = text.trim();
  if (text.length > MAX_PROVIDER_TEXT) text = `${text.slice(0, MAX_PROVIDER_TEXT)}...`;
  return text || undefined;
}

/** The RFC 6749 `error` member of a JSON error body, if it is a plain error code. */
export function oauthErrorCode(body: unknown): string | undefined {
  if (typeof body !== 'object' || body === null) return undefined;
  const error = (body as Record<string, unknown>).error;
  return typeof error === 'string' && /^[\x20-\x21\x23-\x5b\x5d-\x7e]{1,100}$/.test(error) ? error : undefined;
}

function describe(body: unknown, secrets: EndpointContext['secrets']): string | undefined {
  if (typeof body !== 'object' || body === null) return undefined;
  return sanitizeProviderText((body as Record<string, unknown>).error_description, secrets);
}

/** Maps a failed endpoint call; see the TokenEndpointClient interface for the contract. */
export function mapEndpointFailure(failure: EndpointFailure, ctx: EndpointContext): OAuth2Error {
  const where = `${ctx.endpoint} endpoint at ${ctx.host}`;
  if (failure.kind === 'timeout') {
    return new OAuth2Error('OAUTH2_TOKEN_ENDPOINT_UNAVAILABLE', `The ${where} did not answer in time`, {
      params: { host: ctx.host, reason: 'timeout' },
      retryable: true,
    });
  }
  if (failure.kind === 'network') {
    const reason = failure.code && /^[A-Z0-9_]{1,40}$/.test(failure.code) ? failure.code : 'network error';
    return new OAuth2Error('OAUTH2_TOKEN_ENDPOINT_UNAVAILABLE', `The ${where} could not be reached (${reason})`, {
      params: { host: ctx.host, reason },
      retryable: true,
    });
  }

  const { status, body } = failure;
  const oauthError = oauthErrorCode(body);
  const description = describe(body, ctx.secrets);
  const params = { host: ctx.host, status, error: oauthError, description };

  // 5xx and 429 are the server's trouble, whatever the body says: worth trying later.
  if (status >= 500 || status === 429) {
    return new OAuth2Error('OAUTH2_TOKEN_ENDPOINT_UNAVAILABLE', `The ${where} answered HTTP ${status}${oauthError ? ` (${oauthError})` : ''}`, {
      params: { ...params, reason: `HTTP ${status}` },
      oauthError,
      statusCode: status,
      retryable: true,
    });
  }
  if (oauthError === 'invalid_grant') {
    // The refresh token or code is dead (expired, revoked, reused): only a new login helps.
    return new OAuth2Error('OAUTH2_LOGIN_REQUIRED', `The ${where} rejected the grant (invalid_grant): log in again`, {
      params,
      oauthError,
      statusCode: status,
    });
  }
  if (oauthError) {
    return new OAuth2Error('OAUTH2_TOKEN_REQUEST_REJECTED', `The ${where} rejected the request (${oauthError})`, {
      params: { ...params, error: oauthError },
      oauthError,
      statusCode: status,
    });
  }
  return new OAuth2Error('OAUTH2_INVALID_TOKEN_RESPONSE', `The ${where} answered HTTP ${status} without an OAuth error body`, {
    params: { host: ctx.host, status, field: 'error' },
    statusCode: status,
  });
}
