import type { TokenSet } from '../types';
import type { RevocationResult } from './revocation';

/** RFC 8628 device authorization response, normalised. */
export interface DeviceAuthorization {
  deviceCode: string;
  userCode: string;
  verificationUri: string;
  verificationUriComplete?: string;
  /** Epoch ms after which the device code is dead. */
  expiresAt: number;
  /** Seconds between polls, as the server asked (default 5). */
  intervalSec: number;
}

/** Result of one device-token poll that did not yield tokens. */
export type DevicePollPending = { status: 'authorization_pending' } | { status: 'slow_down' };

/**
 * Every call the engine makes to a token, device or revocation endpoint. One instance per connection config.
 * Errors are OAuth2Error: invalid_grant, and any refusal of a refresh (a 4xx but 429, or a 2xx naming an error
 * instead of a token) except errors about the client itself -> OAUTH2_LOGIN_REQUIRED; 429 / 5xx / timeout /
 * network -> OAUTH2_TOKEN_ENDPOINT_UNAVAILABLE (retryable; `params.retryAfterMs` from Retry-After); other error
 * codes, in the RFC's shape or a provider's -> OAUTH2_TOKEN_REQUEST_REJECTED; answers that are neither a token
 * nor an error, and token types that cannot be sent as Bearer -> OAUTH2_INVALID_TOKEN_RESPONSE. Refusals carry
 * `params.answer` (the status, code and description as the provider gave them) and `params.hint` where one is
 * known. An implementation does no retrying of its own.
 */
export interface TokenEndpointClient {
  exchangeCode(input: { code: string; codeVerifier: string; redirectUri: string; nonce?: string }): Promise<TokenSet>;
  /** Keeps `previous.refreshToken` when the server returns none (RFC 6749 section 6). */
  refresh(previous: TokenSet): Promise<TokenSet>;
  clientCredentials(): Promise<TokenSet>;
  startDeviceAuthorization(): Promise<DeviceAuthorization>;
  /** Resolves tokens, or a pending status; throws OAUTH2_DEVICE_CODE_EXPIRED / OAUTH2_ACCESS_DENIED. */
  pollDeviceToken(deviceCode: string): Promise<TokenSet | DevicePollPending>;
  /** RFC 7009: refresh token first (that ends the grant), then the access token. Best effort; never throws. */
  revoke(tokens: TokenSet): Promise<RevocationResult>;
}
