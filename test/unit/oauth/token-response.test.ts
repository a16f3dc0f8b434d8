import assert from 'node:assert/strict';
import { decodeJwtPayload, normalizeTokenResponse } from '../../../nodes/lib/oauth/token-response';
import type { TokenSet } from '../../../nodes/lib/types';

const now = 1_700_000_000_000;
const ctx = { now, defaultLifetimeSec: 600, requestedScopes: ['read'] };

function jwt(payload: Record<string, unknown>): string {
  const part = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
  return `${part({ alg: 'none' })}.${part(payload)}.sig`;
}

describe('oauth/token-response', () => {
  it('uses expires_in first, numeric strings included', () => {
    const t = normalizeTokenResponse({ access_token: 'a', token_type: 'bearer', expires_in: 120 }, ctx);
    assert.equal(t.expiresAt, now + 120_000);
    assert.equal(t.expirySource, 'expires_in');
    assert.equal(t.tokenType, 'Bearer');
    assert.equal(normalizeTokenResponse({ access_token: 'a', expires_in: '90' }, ctx).expiresAt, now + 90_000);
  });

  it('reads when the refresh token ends (refresh_token_expires_in, refresh_expires_in), keeps it for the same refresh token only', () => {
    const github = normalizeTokenResponse({ access_token: 'ghu_a', expires_in: 28800, refresh_token: 'ghr_1', refresh_token_expires_in: 15897600 }, ctx);
    assert.equal(github.refreshExpiresAt, now + 15_897_600_000);
    const keycloak = normalizeTokenResponse({ access_token: 'a', expires_in: 300, refresh_token: 'r', refresh_expires_in: '1800' }, ctx);
    assert.equal(keycloak.refreshExpiresAt, now + 1_800_000);
    // Keycloak's offline token: 0, no end.
    assert.equal(normalizeTokenResponse({ access_token: 'a', refresh_token: 'r', refresh_expires_in: 0 }, ctx).refreshExpiresAt, undefined);
    assert.equal(normalizeTokenResponse({ access_token: 'a', refresh_token: 'r', refresh_token_expires_in: 'soon' }, ctx).refreshExpiresAt, undefined);
    // No refresh token: no end to keep.
    assert.equal(normalizeTokenResponse({ access_token: 'a', refresh_token_expires_in: 100 }, ctx).refreshExpiresAt, undefined);
    // A refresh answer that keeps the refresh token (none sent back) keeps its end; a new refresh token without one has none.
    const kept = normalizeTokenResponse({ access_token: 'b', expires_in: 60 }, { ...ctx, now: now + 1000, previous: github });
    assert.equal(kept.refreshToken, 'ghr_1');
    assert.equal(kept.refreshExpiresAt, github.refreshExpiresAt);
    const rotated = normalizeTokenResponse({ access_token: 'c', expires_in: 60, refresh_token: 'ghr_2' }, { ...ctx, previous: github });
    assert.equal(rotated.refreshExpiresAt, undefined);
  });

  it('falls back to the JWT exp, then to the default lifetime', () => {
    const exp = Math.floor(now / 1000) + 300;
    const fromJwt = normalizeTokenResponse({ access_token: jwt({ exp }), token_type: 'Bearer' }, ctx);
    assert.equal(fromJwt.expirySource, 'jwt');
    assert.equal(fromJwt.expiresAt, exp * 1000);
    const opaque = normalizeTokenResponse({ access_token: 'opaque-token' }, ctx);
    assert.equal(opaque.expirySource, 'default');
    assert.equal(opaque.expiresAt, now + 600_000);
    const jwtWithoutExp = normalizeTokenResponse({ access_token: jwt({ sub: 'x' }) }, ctx);
    assert.equal(jwtWithoutExp.expirySource, 'default');
    const notJson = normalizeTokenResponse({ access_token: 'a.b.c' }, ctx);
    assert.equal(notJson.expirySource, 'default');
  });

  it('takes a JWT exp up to one second before expires_in as the truer end (second precision), and ignores one further off', () => {
    // Issued at 10.9 s for 3 s: expires_in says 13.9 s, the exp (whole seconds) says 13 s.
    const issued = 1_700_000_010_900;
    const at = { ...ctx, now: issued };
    const exp = Math.floor(issued / 1000) + 3;
    const tight = normalizeTokenResponse({ access_token: jwt({ exp }), expires_in: 3 }, at);
    assert.equal(tight.expiresAt, exp * 1000);
    assert.equal(tight.expirySource, 'expires_in');
    // An exp five seconds early is another clock (skew): expires_in stands; so does an exp after it.
    assert.equal(normalizeTokenResponse({ access_token: jwt({ exp: exp - 5 }), expires_in: 3 }, at).expiresAt, issued + 3000);
    assert.equal(normalizeTokenResponse({ access_token: jwt({ exp: exp + 60 }), expires_in: 3 }, at).expiresAt, issued + 3000);
  });

  it('says Bearer for every bearer token_type (missing, any casing, a provider word) and refuses proof-of-possession types', () => {
    assert.equal(normalizeTokenResponse({ access_token: 'a' }, ctx).tokenType, 'Bearer');
    for (const type of ['bearer', 'BEARER', ' Bearer ', 'bot', 'user']) {
      assert.equal(normalizeTokenResponse({ access_token: 'a', token_type: type }, ctx).tokenType, 'Bearer', type);
    }
    for (const type of ['DPoP', 'dpop', 'MAC', 'PoP', 'N_A']) {
      assert.throws(() => normalizeTokenResponse({ access_token: 'a', token_type: type }, ctx), {
        code: 'OAUTH2_INVALID_TOKEN_RESPONSE',
        params: { field: 'token_type', tokenType: type, messageKey: 'tokenEndpoint.unsupportedTokenType' },
      });
    }
  });

  it('takes scopes from the response, else the requested ones', () => {
    assert.deepEqual(normalizeTokenResponse({ access_token: 'a', scope: 'x  y' }, ctx).scopes, ['x', 'y']);
    assert.deepEqual(normalizeTokenResponse({ access_token: 'a' }, ctx).scopes, ['read']);
  });

  it('keeps the previous refresh token when none is returned (RFC 6749 section 6)', () => {
    const previous: TokenSet = {
      accessToken: 'old', tokenType: 'Bearer', refreshToken: 'rt-1', expiresAt: 0, expirySource: 'default', scopes: [], obtainedAt: 0, subject: 'alice@example.com',
    };
    const kept = normalizeTokenResponse({ access_token: 'new' }, { ...ctx, previous });
    assert.equal(kept.refreshToken, 'rt-1');
    assert.equal(kept.subject, 'alice@example.com');
    const rotated = normalizeTokenResponse({ access_token: 'new', refresh_token: 'rt-2' }, { ...ctx, previous });
    assert.equal(rotated.refreshToken, 'rt-2');
  });

  it('reads the subject from the id_token: email, then preferred_username, then sub', () => {
    assert.equal(normalizeTokenResponse({ access_token: 'a', id_token: jwt({ sub: 's', email: 'e@x', preferred_username: 'p' }) }, ctx).subject, 'e@x');
    assert.equal(normalizeTokenResponse({ access_token: 'a', id_token: jwt({ sub: 's', preferred_username: 'p' }) }, ctx).subject, 'p');
    assert.equal(normalizeTokenResponse({ access_token: 'a', id_token: jwt({ sub: 's' }) }, ctx).subject, 's');
    assert.equal(normalizeTokenResponse({ access_token: 'a', id_token: 'garbage' }, ctx).subject, undefined);
  });

  it('names the malformed field', () => {
    const cases: [unknown, string][] = [
      [null, 'body'],
      ['text', 'body'],
      [[], 'body'],
      [{}, 'access_token'],
      [{ access_token: '' }, 'access_token'],
      [{ access_token: 42 }, 'access_token'],
      [{ access_token: 'a', token_type: 1 }, 'token_type'],
      [{ access_token: 'a', expires_in: 'soon' }, 'expires_in'],
      [{ access_token: 'a', expires_in: -5 }, 'expires_in'],
      [{ access_token: 'a', refresh_token: {} }, 'refresh_token'],
      [{ access_token: 'a', scope: ['x'] }, 'scope'],
    ];
    for (const [raw, field] of cases) {
      assert.throws(() => normalizeTokenResponse(raw, ctx), { code: 'OAUTH2_INVALID_TOKEN_RESPONSE', params: { field } }, JSON.stringify(raw));
    }
  });

  it('never puts the token into the error', () => {
    assert.throws(() => normalizeTokenResponse({ access_token: 'secret-token-value', expires_in: 'x' }, ctx), (err: Error) => !err.message.includes('secret-token-value'));
  });

  it('decodes only well-formed JWT payloads', () => {
    assert.deepEqual(decodeJwtPayload(jwt({ a: 1 })), { a: 1 });
    assert.equal(decodeJwtPayload('abc'), undefined);
    assert.equal(decodeJwtPayload(`x.${Buffer.from('[1]').toString('base64url')}.y`), undefined);
  });
});
