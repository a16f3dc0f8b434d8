/**
 * Turns what a token, device or revocation endpoint answered into an OAuth2Error with a stable code.
 * One shape (EndpointFailure) for every HTTP client we use, so simple-oauth2 calls and our own form POSTs map
 * the same way. Nothing here ever receives a request body or headers, so no secret can leak into an error.
 */
import { OAuth2Error } from '../errors';
import { parseRetryAfter } from '../http/retry';

/** What went wrong talking to an endpoint, with every request detail already stripped. */
export type EndpointFailure =
  | { kind: 'network'; code?: string }
  | { kind: 'timeout' }
  /**
   * `body` is the parsed body (JSON, or a form-encoded one as an object of strings), or undefined when it was
   * neither (empty, HTML...). `retryAfter` is the answer's Retry-After header.
   */
  | { kind: 'http'; status: number; body: unknown; retryAfter?: string };

export interface EndpointContext {
  /** Host of the endpoint (never the full URL: a misconfigured URL could carry credentials in its userinfo). */
  host: string;
  /** Which endpoint, for the message: 'token', 'device authorization', 'revocation'. */
  endpoint: string;
  /** Values that must never be echoed back, even if a server reflects them in error_description. */
  secrets?: readonly (string | undefined)[];
  /**
   * The request presented a refresh token: whatever the shape of a refusal (any 4xx but 429, or a 2xx carrying an
   * error instead of a token), only a new login helps (invariant 9), so it maps to OAUTH2_LOGIN_REQUIRED; errors
   * about the client itself (isClientError) excepted.
   */
  refresh?: boolean;
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

/** A provider's own error code: RFC 6749's charset, at most 100 characters. */
const ERROR_CODE = /^[\x20-\x21\x23-\x5b\x5d-\x7e]{1,100}$/;

function stringField(record: Record<string, unknown>, name: string): string | undefined {
  const value = record[name];
  return typeof value === 'string' ? value : undefined;
}

/**
 * The error a token endpoint's answer names, in any of the shapes providers use: RFC 6749 5.2 `error` and
 * `error_description` (also form-encoded, as GitHub answers by default, and Slack's 200 `{"ok":false,"error"}`);
 * HubSpot's `{"status":"BAD_REFRESH_TOKEN","message":...}`; and `{"error":{"code","message"}}`. Code and text
 * are the provider's, sanitised (never a secret the server reflects).
 */
export function providerError(body: unknown, secrets: EndpointContext['secrets'] = []): { code?: string; description?: string } {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return {};
  const record = body as Record<string, unknown>;
  let code = oauthErrorCode(record);
  let text = stringField(record, 'error_description') ?? stringField(record, 'message');
  const nested = record.error;
  if (!code && typeof nested === 'object' && nested !== null && !Array.isArray(nested)) {
    const inner = nested as Record<string, unknown>;
    const innerCode = stringField(inner, 'code') ?? stringField(inner, 'status');
    if (innerCode && ERROR_CODE.test(innerCode)) code = innerCode;
    text ??= stringField(inner, 'message');
  }
  if (!code) {
    // HubSpot: `status` (a word, not an HTTP number) beside a `message`.
    const status = stringField(record, 'status') ?? stringField(record, 'category');
    if (status && /^[A-Za-z][\w.-]{0,99}$/.test(status) && text !== undefined) code = status;
  }
  return { code, description: sanitizeProviderText(text, secrets) };
}

/**
 * The answer in the provider's own words, for messages in every language: `HTTP 400 BAD_REFRESH_TOKEN: "missing
 * or invalid refresh token"`. Protocol words and provider text are not translated.
 */
export function describeAnswer(status: number, error: { code?: string; description?: string }): string {
  let text = `HTTP ${status}`;
  if (error.code) text += ` ${error.code}`;
  if (error.description) text += `: "${error.description}"`;
  return text;
}

/**
 * A hint (catalog key `hint.<name>`) for what the user can check: `clientAuth` when the server did not accept
 * the client (invalid_client, a client id error such as HubSpot's BAD_CLIENT_ID, or a 401/403 saying nothing),
 * which wrong client authentication causes too (some providers take only client_secret_post).
 */
export function hintFor(status: number, code: string | undefined): 'clientAuth' | undefined {
  if (code === 'invalid_client' || (code !== undefined && /CLIENT_(ID|SECRET)/i.test(code))) return 'clientAuth';
  if (code === undefined && (status === 401 || status === 403)) return 'clientAuth';
  return undefined;
}

/**
 * Errors about the client itself, not the grant: the refresh token may well be alive, and a corrected setting
 * (deployed) makes it work again, so even on a refresh they are a refusal (OAUTH2_TOKEN_REQUEST_REJECTED, the
 * token manager's paced 'refused' state) rather than a login to redo.
 */
function isClientError(code: string | undefined): boolean {
  return code === 'invalid_client' || code === 'unauthorized_client' || code === 'unsupported_grant_type' || (code !== undefined && /CLIENT_(ID|SECRET)/i.test(code));
}

/** A 2xx body without a usable access token that names an error instead (GitHub, Slack): a refusal. */
export function errorInSuccessBody(body: unknown): boolean {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return false;
  const record = body as Record<string, unknown>;
  if (typeof record.access_token === 'string' && record.access_token !== '') return false;
  return providerError(record).code !== undefined;
}

/** The token endpoint refused the request in words (`status` may be 2xx: an error body instead of a token). */
export function mapRefusal(status: number, body: unknown, ctx: EndpointContext): OAuth2Error {
  const where = `${ctx.endpoint} endpoint at ${ctx.host}`;
  const error = providerError(body, ctx.secrets);
  const answer = describeAnswer(status, error);
  const hint = hintFor(status, error.code);
  const params = { host: ctx.host, status, error: error.code, description: error.description, answer, hint };
  const hintText = hint === 'clientAuth' ? ': check the client id, secret and client auth method (Client auth: some providers need client_secret_post)' : '';
  if ((ctx.refresh && !isClientError(error.code)) || error.code === 'invalid_grant') {
    // The refresh token (or the code) is dead or refused: only a new login helps.
    const what = ctx.refresh ? 'refresh' : 'grant';
    return new OAuth2Error('OAUTH2_LOGIN_REQUIRED', `The ${where} refused the ${what} (${answer})${hintText}: log in again`, {
      params: { ...params, messageKey: ctx.refresh ? (hint ? 'tokenEndpoint.refreshRefusedHint' : 'tokenEndpoint.refreshRefused') : 'tokenEndpoint.grantRefused' },
      oauthError: error.code,
      statusCode: status,
    });
  }
  if (error.code) {
    return new OAuth2Error('OAUTH2_TOKEN_REQUEST_REJECTED', `The ${where} rejected the request: ${error.code} (${answer})${hintText || ': check the client id, secret and client auth method'}`, {
      params: { ...params, error: error.code, messageKey: hint ? 'tokenEndpoint.rejectedHint' : 'tokenEndpoint.rejected' },
      oauthError: error.code,
      statusCode: status,
    });
  }
  if (status >= 400 && status < 500 && status !== 429) {
    // A refusal that says nothing (Glewlwyd: 403 with an empty body for a wrong secret): still a refusal, paced
    // as one, not a malformed answer to retry at every request.
    return new OAuth2Error('OAUTH2_TOKEN_REQUEST_REJECTED', `The ${where} refused the request (${answer}) without saying why${hintText || ': check the token URL, the client id, secret and client auth method'}`, {
      params: { ...params, error: '', messageKey: hint ? 'tokenEndpoint.refusedSilentlyHint' : 'tokenEndpoint.refusedSilently' },
      statusCode: status,
    });
  }
  return new OAuth2Error('OAUTH2_INVALID_TOKEN_RESPONSE', `The ${where} answered ${answer} without a token or an OAuth error${hintText}`, {
    params: { ...params, field: 'error', messageKey: hint ? 'tokenEndpoint.notTokenResponseHint' : 'tokenEndpoint.notTokenResponse' },
    statusCode: status,
  });
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
  // 5xx and 429 are the server's trouble, whatever the body says: worth trying later, when it says so.
  if (status >= 500 || status === 429) {
    const error = providerError(body, ctx.secrets);
    const retryAfterMs = parseRetryAfter(failure.retryAfter);
    return new OAuth2Error('OAUTH2_TOKEN_ENDPOINT_UNAVAILABLE', `The ${where} answered ${describeAnswer(status, error)}`, {
      params: {
        host: ctx.host,
        status,
        error: error.code,
        description: error.description,
        answer: describeAnswer(status, error),
        reason: `HTTP ${status}`,
        ...(retryAfterMs !== undefined ? { retryAfterMs } : {}),
      },
      oauthError: error.code,
      statusCode: status,
      retryable: true,
    });
  }
  return mapRefusal(status, body, ctx);
}
