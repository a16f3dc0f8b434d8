/**
 * RFC 7009 token revocation. Refresh token first: revoking it ends the whole grant at most servers, so a
 * failure on the access token afterwards cannot leave a live refresh token behind (simple-oauth2's
 * revokeAll does the opposite order and stops at the first error).
 */
import type { ClientSettings, TokenSet } from '../types';
import { postForm, type TransportOptions } from './form-post';

async function revokeOne(endpoint: string, token: string, hint: string, client: ClientSettings, transport: TransportOptions): Promise<boolean> {
  const form = new URLSearchParams({ token, token_type_hint: hint });
  const result = await postForm(endpoint, form, client, transport);
  // RFC 7009 2.2: 200 means revoked, or already invalid; both are what we want.
  return result.kind === 'response' && result.status === 200;
}

/** Best effort: never throws; reports which tokens the server confirmed. */
export async function revokeTokens(input: {
  endpoint: string | undefined;
  tokens: TokenSet;
  client: ClientSettings;
  transport: TransportOptions;
}): Promise<{ refreshTokenRevoked: boolean; accessTokenRevoked: boolean }> {
  const { endpoint, tokens, client, transport } = input;
  if (!endpoint) return { refreshTokenRevoked: false, accessTokenRevoked: false };
  const attempt = async (token: string | undefined, hint: string): Promise<boolean> => {
    if (!token) return false;
    try {
      return await revokeOne(endpoint, token, hint, client, transport);
    } catch {
      return false;
    }
  };
  const refreshTokenRevoked = await attempt(tokens.refreshToken, 'refresh_token');
  const accessTokenRevoked = await attempt(tokens.accessToken, 'access_token');
  return { refreshTokenRevoked, accessTokenRevoked };
}
