/**
 * Token revocation at logout. Refresh token first: revoking it ends the whole grant at most servers, so a
 * failure on the access token afterwards cannot leave a live refresh token behind (simple-oauth2's revokeAll
 * does the opposite order and stops at the first error).
 *
 * Styles (the connection's `revocationStyle`; a provider preset picks the one its provider documents):
 * - `rfc7009` (default): POST form `token`, `token_type_hint`, with the client's authentication (RFC 7009).
 * - `json`: the same as a JSON body.
 * - `bearer`: POST with the access token as `Authorization: Bearer`, no body (the token revokes itself); the
 *   refresh token cannot be sent that way, so only the access token is revoked.
 * - `delete`: DELETE on the revocation URL, where `{client_id}` is replaced by the client id and `{token}` by
 *   the token (URL-encoded); without `{token}` the token goes in a JSON body as `access_token`; the client's
 *   Basic authentication.
 *
 * A revocation counts only when the server says so: a 2xx answer whose JSON body carries no error
 * (`{"ok":false,…}` and `{"error":…}` are refusals, whatever the status). Anything else is reported in
 * `failure` (status and the provider's error code, never a token) so the logout can say it.
 */
import type { ClientSettings, RevocationStyle, TokenSet } from '../types';
import { sanitizeProviderText } from './error-mapping';
import { applyClientAuth, sendToEndpoint, type FormPostResult, type TransportOptions } from './form-post';

export interface RevocationResult {
  refreshTokenRevoked: boolean;
  accessTokenRevoked: boolean;
  /** Why a token the connection held was not revoked: "HTTP 400 invalid_client", "timeout", … */
  failure?: string;
}

export const REVOCATION_STYLES: readonly RevocationStyle[] = ['rfc7009', 'json', 'bearer', 'delete'];

type Hint = 'refresh_token' | 'access_token';

function basicHeader(client: ClientSettings): Record<string, string> {
  const headers: Record<string, string> = {};
  applyClientAuth({ ...client, authMethod: client.authMethod === 'none' ? 'none' : 'client_secret_basic' }, new URLSearchParams(), headers);
  return headers;
}

async function send(endpoint: string, style: RevocationStyle, token: string, hint: Hint, client: ClientSettings, transport: TransportOptions): Promise<FormPostResult> {
  switch (style) {
    case 'json': {
      const form = new URLSearchParams();
      const headers: Record<string, string> = { 'content-type': 'application/json' };
      applyClientAuth(client, form, headers);
      const body: Record<string, string> = { token, token_type_hint: hint, ...Object.fromEntries(form) };
      return sendToEndpoint(endpoint, { method: 'POST', headers, body: JSON.stringify(body) }, transport);
    }
    case 'bearer':
      return sendToEndpoint(endpoint, { method: 'POST', headers: { authorization: `Bearer ${token}` } }, transport);
    case 'delete': {
      const inUrl = endpoint.includes('{token}');
      const url = endpoint.replaceAll('{client_id}', encodeURIComponent(client.clientId)).replaceAll('{token}', encodeURIComponent(token));
      const headers = { ...basicHeader(client), ...(inUrl ? {} : { 'content-type': 'application/json' }) };
      return sendToEndpoint(url, { method: 'DELETE', headers, body: inUrl ? undefined : JSON.stringify({ access_token: token }) }, transport);
    }
    case 'rfc7009':
    default: {
      const form = new URLSearchParams({ token, token_type_hint: hint });
      const headers: Record<string, string> = { 'content-type': 'application/x-www-form-urlencoded' };
      applyClientAuth(client, form, headers);
      return sendToEndpoint(endpoint, { method: 'POST', headers, body: form.toString() }, transport);
    }
  }
}

/** Undefined when the answer confirms the revocation; else what to tell the user, with no token in it. */
export function revocationRefusal(result: FormPostResult, secrets: readonly string[]): string | undefined {
  if (result.kind === 'timeout') return 'timeout';
  if (result.kind !== 'response') return `network ${result.code ?? 'error'}`;
  const body = result.body && typeof result.body === 'object' && !Array.isArray(result.body) ? (result.body as Record<string, unknown>) : undefined;
  const error = sanitizeProviderText(body?.error ?? body?.status, secrets);
  const refused = body !== undefined && (body.ok === false || typeof body.error === 'string');
  // RFC 7009 2.2: 200 means revoked, or already invalid; both are what we want. Some servers answer 204.
  if (result.status >= 200 && result.status < 300 && !refused) return undefined;
  return `HTTP ${result.status}${error ? ` ${error}` : ''}`;
}

/** Best effort: never throws; reports which tokens the server confirmed, and why one was not. */
export async function revokeTokens(input: {
  endpoint: string | undefined;
  style?: RevocationStyle;
  tokens: TokenSet;
  client: ClientSettings;
  transport: TransportOptions;
}): Promise<RevocationResult> {
  const { endpoint, tokens, client, transport } = input;
  const style = input.style ?? 'rfc7009';
  if (!endpoint) return { refreshTokenRevoked: false, accessTokenRevoked: false };
  const secrets = [tokens.accessToken, tokens.refreshToken, client.clientSecret].filter((s): s is string => !!s);
  const failures: string[] = [];
  const attempt = async (token: string | undefined, hint: Hint): Promise<boolean> => {
    if (!token) return false;
    let refusal: string | undefined;
    try {
      refusal = revocationRefusal(await send(endpoint, style, token, hint, client, transport), secrets);
    } catch {
      refusal = 'error';
    }
    if (refusal) failures.push(`${hint === 'refresh_token' ? 'refresh token' : 'access token'}: ${refusal}`);
    return refusal === undefined;
  };
  // A bearer-style endpoint only ever sees the access token.
  const refreshTokenRevoked = style === 'bearer' ? false : await attempt(tokens.refreshToken, 'refresh_token');
  const accessTokenRevoked = await attempt(tokens.accessToken, 'access_token');
  return failures.length > 0 ? { refreshTokenRevoked, accessTokenRevoked, failure: failures.join('; ') } : { refreshTokenRevoked, accessTokenRevoked };
}
