import assert from 'node:assert/strict';
import { validateCallback } from '../../../nodes/lib/oauth/callback';

const issuer = 'https://idp.example.com';
const expected = { state: 'state-1', issuer, issRequired: true };

describe('oauth/callback', () => {
  it('returns the code of a matching callback', () => {
    assert.deepEqual(validateCallback({ code: 'c', state: 'state-1', iss: issuer }, expected), { code: 'c' });
  });

  it('accepts a missing iss when the server does not promise one', () => {
    assert.deepEqual(validateCallback({ code: 'c', state: 'state-1' }, { ...expected, issRequired: false }), { code: 'c' });
  });

  it('refuses a different or missing state', () => {
    assert.throws(() => validateCallback({ code: 'c', state: 'state-2', iss: issuer }, expected), { code: 'OAUTH2_INVALID_STATE' });
    assert.throws(() => validateCallback({ code: 'c', iss: issuer }, expected), { code: 'OAUTH2_INVALID_STATE' });
    assert.throws(() => validateCallback({ code: 'c', state: 'state-', iss: issuer }, expected), { code: 'OAUTH2_INVALID_STATE' });
  });

  it('refuses a missing iss when required and a different iss always (RFC 9207)', () => {
    assert.throws(() => validateCallback({ code: 'c', state: 'state-1' }, expected), { code: 'OAUTH2_ISSUER_MISMATCH' });
    assert.throws(() => validateCallback({ code: 'c', state: 'state-1', iss: 'https://evil.example' }, expected), { code: 'OAUTH2_ISSUER_MISMATCH' });
    assert.throws(
      () => validateCallback({ code: 'c', state: 'state-1', iss: 'https://evil.example' }, { ...expected, issRequired: false }),
      { code: 'OAUTH2_ISSUER_MISMATCH' },
    );
  });

  it('checks iss before reporting a provider error', () => {
    assert.throws(() => validateCallback({ error: 'access_denied', state: 'state-1', iss: 'https://evil.example' }, expected), {
      code: 'OAUTH2_ISSUER_MISMATCH',
    });
  });

  it('maps access_denied and other provider errors, sanitising their text', () => {
    assert.throws(() => validateCallback({ error: 'access_denied', error_description: 'User said no', state: 'state-1', iss: issuer }, expected), (err: unknown) => {
      const e = err as { code: string; params: Record<string, unknown>; oauthError: string };
      assert.equal(e.code, 'OAUTH2_ACCESS_DENIED');
      assert.equal(e.oauthError, 'access_denied');
      assert.equal(e.params.description, 'User said no');
      return true;
    });
    const long = `<script>\u0000${'x'.repeat(1000)}`;
    assert.throws(() => validateCallback({ error: 'server_error', error_description: long, state: 'state-1', iss: issuer }, expected), (err: unknown) => {
      const e = err as { code: string; params: Record<string, string> };
      assert.equal(e.code, 'OAUTH2_PROVIDER_ERROR');
      assert.equal(e.params.error, 'server_error');
      assert.ok(e.params.description.length <= 203);
      assert.ok(!e.params.description.includes('\u0000'));
      return true;
    });
  });

  it('refuses repeated or non-string parameters', () => {
    assert.throws(() => validateCallback({ code: 'c', state: ['state-1', 'state-1'], iss: issuer }, expected), { code: 'OAUTH2_INVALID_INPUT' });
    assert.throws(() => validateCallback({ code: ['a', 'b'], state: 'state-1', iss: issuer }, expected), { code: 'OAUTH2_INVALID_INPUT' });
    assert.throws(() => validateCallback({ code: { x: 1 }, state: 'state-1', iss: issuer }, expected), { code: 'OAUTH2_INVALID_INPUT' });
    assert.throws(() => validateCallback({ code: 'c', state: 'state-1', iss: [issuer] }, expected), { code: 'OAUTH2_INVALID_INPUT' });
  });

  it('refuses a callback without code or error', () => {
    assert.throws(() => validateCallback({ state: 'state-1', iss: issuer }, expected), { code: 'OAUTH2_INVALID_INPUT', params: { field: 'code' } });
  });
});
