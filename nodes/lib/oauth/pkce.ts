/** PKCE (RFC 7636, S256 only) and the random values of an authorization request. */
import { createHash, randomBytes } from 'node:crypto';

export interface PkcePair {
  /** Secret: kept in the login transaction, sent only to the token endpoint. */
  codeVerifier: string;
  codeChallenge: string;
  codeChallengeMethod: 'S256';
}

/** Unguessable URL-safe token, for state and nonce. 32 bytes give 43 base64url characters. */
export function randomToken(bytes = 32): string {
  return randomBytes(bytes).toString('base64url');
}

/** S256 challenge of a verifier: BASE64URL(SHA256(ASCII(verifier))). */
export function s256Challenge(codeVerifier: string): string {
  return createHash('sha256').update(codeVerifier, 'ascii').digest('base64url');
}

/** A fresh verifier (43 chars from 32 random bytes, the RFC's recommendation) and its S256 challenge. */
export function createPkcePair(): PkcePair {
  const codeVerifier = randomToken(32);
  return { codeVerifier, codeChallenge: s256Challenge(codeVerifier), codeChallengeMethod: 'S256' };
}
