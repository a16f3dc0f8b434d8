import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { createPkcePair, randomToken, s256Challenge } from '../../../nodes/lib/oauth/pkce';

describe('oauth/pkce', () => {
  it('creates a 43-character base64url verifier and its S256 challenge', () => {
    const pair = createPkcePair();
    assert.match(pair.codeVerifier, /^[A-Za-z0-9_-]{43}$/);
    assert.equal(pair.codeChallengeMethod, 'S256');
    const expected = createHash('sha256').update(pair.codeVerifier).digest('base64url');
    assert.equal(pair.codeChallenge, expected);
  });

  it('matches the RFC 7636 appendix B example', () => {
    assert.equal(s256Challenge('dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk'), 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM');
  });

  it('never repeats verifiers or tokens', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 200; i += 1) {
      seen.add(createPkcePair().codeVerifier);
      seen.add(randomToken());
    }
    assert.equal(seen.size, 400);
  });

  it('randomToken gives base64url of the requested entropy', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 64 }), (bytes) => {
        const token = randomToken(bytes);
        assert.match(token, /^[A-Za-z0-9_-]+$/);
        assert.equal(Buffer.from(token, 'base64url').length, bytes);
      }),
    );
  });
});
