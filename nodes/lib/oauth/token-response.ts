/** Validates a token endpoint's success body (RFC 6749 5.1) and turns it into our TokenSet. */
import { OAuth2Error } from '../errors';
import { pickValues, type ValueSource } from '../connection-values';
import type { TokenSet } from '../types';

export interface NormalizeContext {
  /** Epoch ms when the response arrived. */
  now: number;
  /** Lifetime assumed when neither expires_in nor a JWT exp says (seconds). */
  defaultLifetimeSec: number;
  /** Scopes we asked for: the granted ones when the server does not say (RFC 6749 5.1). */
  requestedScopes: string[];
  /** The token set being refreshed: its refresh token survives when the server sends none. */
  previous?: TokenSet;
  /** How the granted `scope` is separated (a comma for some providers); default a space. */
  scopeSeparator?: ' ' | ',';
  /** Where the tokens sit in the response (Slack's user token: `['authed_user']`); the top level when empty. */
  tokenPath?: readonly string[];
  /** Top-level response fields kept as connection values (checked: connection-values.ts). */
  valueSources?: readonly ValueSource[];
  /**
   * A token that comes with no lifetime and no refresh token is used until the API refuses it (GitHub's and
   * Slack's long-lived tokens) instead of being taken for expired after the default lifetime, when no new one
   * could be had without a person. Not for client credentials, where asking again costs nothing.
   */
  lifetimeUnknownMeansUntilRefused?: boolean;
}

/** A lifetime for tokens used until the API refuses them: far enough to never come, small enough for a Date. */
const UNTIL_REFUSED_MS = 100 * 365 * 24 * 3600 * 1000;

function invalid(field: string, why: string): OAuth2Error {
  return new OAuth2Error('OAUTH2_INVALID_TOKEN_RESPONSE', `The token response's ${field} ${why}`, { params: { field } });
}

function optionalString(body: Record<string, unknown>, field: string): string | undefined {
  const value = body[field];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'string') throw invalid(field, 'is not a string');
  return value === '' ? undefined : value;
}

/**
 * An absolute expiry (`expires_at`) as epoch ms: epoch seconds, epoch milliseconds (a number past the year
 * 33658 in seconds is taken as milliseconds), a numeric string of either, or an ISO 8601 date.
 */
function expiresAtMs(value: unknown): number | undefined {
  if (value === undefined || value === null || value === '') return undefined;
  let ms: number;
  if (typeof value === 'number' || (typeof value === 'string' && /^\s*\d+(\.\d+)?\s*$/.test(value))) {
    const n = Number(value);
    ms = n >= 1e12 ? n : n * 1000;
  } else if (typeof value === 'string' && /^\d{4}-\d{2}-\d{2}T/.test(value)) {
    ms = Date.parse(value);
  } else {
    ms = Number.NaN;
  }
  if (!Number.isFinite(ms) || ms <= 0) throw invalid('expires_at', 'is not a time');
  return ms;
}

/**
 * The object at `path` of the response, where the tokens are; the top level when the path is absent and the top
 * level holds the token (a provider that nests a login's user token may answer its refresh at the top level).
 */
function tokenObject(body: Record<string, unknown>, path: readonly string[] | undefined): Record<string, unknown> {
  let current: unknown = body;
  for (const part of path ?? []) {
    current = typeof current === 'object' && current !== null && !Array.isArray(current) ? (current as Record<string, unknown>)[part] : undefined;
  }
  if (current === undefined && typeof body.access_token === 'string' && body.access_token !== '') return body;
  if (typeof current !== 'object' || current === null || Array.isArray(current)) {
    throw invalid((path ?? []).join('.') || 'body', 'is not a JSON object');
  }
  return current as Record<string, unknown>;
}

/**
 * When the refresh token ends: `refresh_token_expires_in` (GitHub Apps, Dropbox...) or `refresh_expires_in`
 * (Keycloak; 0 there is an offline token without end), in seconds; else what was known of the same refresh
 * token before (`kept`). A value that is not a positive number is ignored (the lifetime is advisory: only a
 * new login helps after it, and the connection learns that from the provider's refusal anyway).
 */
function refreshLifetimeEnd(body: Record<string, unknown>, now: number, kept: number | undefined): number | undefined {
  for (const field of ['refresh_token_expires_in', 'refresh_expires_in']) {
    const raw = body[field];
    const seconds = typeof raw === 'string' && raw.trim() !== '' ? Number(raw) : raw;
    if (typeof seconds === 'number' && Number.isFinite(seconds) && seconds > 0) return now + seconds * 1000;
  }
  return kept;
}

/** Seconds from expires_in, which some servers send as a numeric string. */
function expiresInSeconds(value: unknown): number | undefined {
  if (value === undefined || value === null) return undefined;
  const seconds = typeof value === 'string' && /^\s*\d+(\.\d+)?\s*$/.test(value) ? Number(value) : value;
  if (typeof seconds !== 'number' || !Number.isFinite(seconds) || seconds < 0) throw invalid('expires_in', 'is not a number of seconds');
  return seconds;
}

/**
 * The payload of a compact JWS, decoded but NOT verified, or undefined if the value is not a JWT.
 * We only read `exp` of our own access token (a scheduling hint; the API is the judge) and display claims of
 * an id_token that came straight from the token endpoint over TLS (OIDC Core 3.1.3.7 lets a client skip the
 * signature then). Nothing here grants access.
 */
export function decodeJwtPayload(token: string): Record<string, unknown> | undefined {
  const parts = token.split('.');
  if (parts.length !== 3 || !parts[1]) return undefined;
  try {
    const payload: unknown = JSON.parse(Buffer.from(parts[1], 'base64url').toString('utf8'));
    return typeof payload === 'object' && payload !== null && !Array.isArray(payload) ? (payload as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/** Display name of the logged-in account, from id_token claims: email, preferred_username, then sub. */
function subjectFromIdToken(idToken: string | undefined): string | undefined {
  if (!idToken) return undefined;
  const claims = decodeJwtPayload(idToken);
  if (!claims) return undefined;
  for (const claim of ['email', 'preferred_username', 'sub']) {
    const value = claims[claim];
    if (typeof value === 'string' && value) return value.slice(0, 200);
  }
  return undefined;
}

/**
 * Token types whose tokens cannot be sent as `Authorization: Bearer`: proof-of-possession tokens (DPoP, RFC 9449;
 * PoP; the MAC drafts) need a signature per request, which this product does not make, and N_A (RFC 8693) is not
 * an access token at all.
 */
const UNUSABLE_TOKEN_TYPES = new Set(['dpop', 'pop', 'mac', 'n_a']);

/**
 * The token type, as the product sends it: `Bearer` (RFC 6750), whatever casing or provider word the server used
 * (Slack says "bot" or "user" for its bearer tokens). A type that cannot be sent as a bearer token is refused
 * here, at login, rather than becoming a header the API refuses.
 */
function normalizeTokenType(value: string | undefined): string {
  const type = value?.trim();
  if (type && UNUSABLE_TOKEN_TYPES.has(type.toLowerCase())) {
    const shown = /^[\w.-]{1,20}$/.test(type) ? type : 'unknown';
    throw new OAuth2Error('OAUTH2_INVALID_TOKEN_RESPONSE', `The token endpoint issued a ${shown} token; only Bearer tokens (RFC 6750) can be sent`, {
      params: { field: 'token_type', tokenType: shown, messageKey: 'tokenEndpoint.unsupportedTokenType' },
    });
  }
  return 'Bearer';
}

export function normalizeTokenResponse(raw: unknown, ctx: NormalizeContext): TokenSet {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw invalid('body', 'is not a JSON object');
  const response = raw as Record<string, unknown>;
  const body = tokenObject(response, ctx.tokenPath);

  const accessToken = optionalString(body, 'access_token');
  if (!accessToken) throw invalid('access_token', 'is missing or empty');
  const tokenType = normalizeTokenType(optionalString(body, 'token_type'));
  const refreshToken = optionalString(body, 'refresh_token') ?? ctx.previous?.refreshToken;
  const idToken = optionalString(body, 'id_token');
  const scope = optionalString(body, 'scope');

  let expiresAt: number;
  let expirySource: TokenSet['expirySource'];
  const expiresIn = expiresInSeconds(body.expires_in);
  const jwtExp = decodeJwtPayload(accessToken)?.exp;
  if (expiresIn !== undefined) {
    expiresAt = ctx.now + expiresIn * 1000;
    // A JWT's exp has second precision: issued at 10.9 s for 3 s, it says 13 s, not 13.9 s. Within that one
    // second the exp is the truer end; further off it is another clock (skew), and expires_in stands.
    if (typeof jwtExp === 'number' && Number.isFinite(jwtExp) && jwtExp * 1000 < expiresAt && expiresAt - jwtExp * 1000 <= 1000) {
      expiresAt = jwtExp * 1000;
    }
    expirySource = 'expires_in';
  } else if (body.expires_at !== undefined && body.expires_at !== null && body.expires_at !== '') {
    expiresAt = expiresAtMs(body.expires_at) as number;
    expirySource = 'expires_at';
  } else if (typeof jwtExp === 'number' && Number.isFinite(jwtExp)) {
    expiresAt = jwtExp * 1000;
    expirySource = 'jwt';
  } else if (!refreshToken && ctx.lifetimeUnknownMeansUntilRefused) {
    expiresAt = ctx.now + UNTIL_REFUSED_MS;
    expirySource = 'none';
  } else {
    expiresAt = ctx.now + ctx.defaultLifetimeSec * 1000;
    expirySource = 'default';
  }

  const tokens: TokenSet = {
    accessToken,
    tokenType,
    expiresAt,
    expirySource,
    scopes: scope !== undefined ? scope.split(ctx.scopeSeparator ?? ' ').map((s) => s.trim()).filter(Boolean) : [...ctx.requestedScopes],
    obtainedAt: ctx.now,
  };
  if (refreshToken) tokens.refreshToken = refreshToken;
  const refreshExpiresAt = refreshLifetimeEnd(body, ctx.now, refreshToken !== undefined && refreshToken === ctx.previous?.refreshToken ? ctx.previous?.refreshExpiresAt : undefined);
  if (refreshToken && refreshExpiresAt !== undefined) tokens.refreshExpiresAt = refreshExpiresAt;
  const keptIdToken = idToken ?? ctx.previous?.idToken;
  if (keptIdToken) tokens.idToken = keptIdToken;
  const subject = subjectFromIdToken(idToken) ?? ctx.previous?.subject;
  if (subject) tokens.subject = subject;
  // Values the answer repeats replace the kept ones; those it leaves out stay (a refresh need not repeat them).
  const values = { ...ctx.previous?.values, ...pickValues(response, ctx.valueSources ?? [], 'OAUTH2_INVALID_TOKEN_RESPONSE') };
  if (Object.keys(values).length > 0) tokens.values = values;
  // A refresh comes from the provider the login was made with: the tokens stay bound to it.
  if (ctx.previous?.issuedTo) tokens.issuedTo = ctx.previous.issuedTo;
  return tokens;
}
