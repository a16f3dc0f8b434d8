/**
 * A new login that brings no refresh token keeps the one the previous login left, when that one is surely for
 * the same grant: issued to the same client at the same endpoints, and for the same subject where both logins
 * name one. Google, for one, issues a refresh token only at the first offline consent (unless the login asks for
 * `prompt=consent`); replacing the stored tokens whole would throw that refresh token away, and every node would
 * go red at the next expiry.
 */
import { sameCredentialTarget } from '../connection-settings';
import type { TokenSet } from '../types';

export function keepPreviousRefreshToken(login: TokenSet, previous: TokenSet | undefined): TokenSet {
  if (login.refreshToken || !previous?.refreshToken) return login;
  if (!login.issuedTo || !previous.issuedTo || !sameCredentialTarget(login.issuedTo, previous.issuedTo)) return login;
  if (login.subject !== undefined && previous.subject !== undefined && login.subject !== previous.subject) return login;
  const kept: TokenSet = { ...login, refreshToken: previous.refreshToken };
  if (previous.refreshExpiresAt !== undefined) kept.refreshExpiresAt = previous.refreshExpiresAt;
  return kept;
}
