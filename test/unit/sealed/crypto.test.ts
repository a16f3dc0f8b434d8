import assert from 'node:assert/strict';
import { isSealedFileError, type SealedFailure } from '../../../nodes/lib/sealed/errors';
import { SEALED_FORMAT_VERSION, looksSealed, openJson, openWithAny, sealJson } from '../../../nodes/lib/sealed/crypto';

const SECRET = 'instance-credential-secret';
const VALUE = { connections: { a: { accessToken: 'at-PLAINTEXT-MARKER', refreshToken: 'rt-PLAINTEXT-MARKER' } } };

function assertStoreFailure(fn: () => unknown, pattern?: RegExp, failure?: SealedFailure): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(isSealedFileError(err), String(err));
    if (failure) assert.equal(err.failure, failure);
    assert.doesNotMatch(err.message, /PLAINTEXT-MARKER|instance-credential-secret/);
    if (pattern) assert.match(err.message, pattern);
    return true;
  });
}

describe('sealed/crypto (AES-256-GCM, HKDF-SHA256)', () => {
  it('round-trips JSON', () => {
    const blob = sealJson(VALUE, SECRET);
    assert.ok(looksSealed(blob));
    assert.equal(blob[8], SEALED_FORMAT_VERSION);
    assert.deepEqual(openJson(blob, SECRET), VALUE);
  });

  it('keeps the content out of the blob', () => {
    const blob = sealJson(VALUE, SECRET);
    assert.equal(blob.includes('PLAINTEXT-MARKER'), false);
    assert.equal(blob.includes(Buffer.from('PLAINTEXT-MARKER').toString('base64').slice(0, 12)), false);
  });

  it('a wrong secret fails with a typed undecryptable error and a clear message', () => {
    const blob = sealJson(VALUE, SECRET);
    assertStoreFailure(() => openJson(blob, 'another-secret'), /credential secret changed|modified/, 'undecryptable');
  });

  it('any tampered byte (header, salt, nonce, ciphertext, tag) fails authentication', () => {
    const blob = sealJson(VALUE, SECRET);
    for (const index of [9, 20, 30, 40, blob.length - 20, blob.length - 1]) {
      const tampered = Buffer.from(blob);
      tampered[index] ^= 0x01;
      assertStoreFailure(() => openJson(tampered, SECRET), undefined, 'undecryptable');
    }
  });

  it('refuses unknown versions, foreign files and truncation', () => {
    const blob = sealJson(VALUE, SECRET);
    const v2 = Buffer.from(blob);
    v2[8] = 2;
    assertStoreFailure(() => openJson(v2, SECRET), /version 2/, 'notSealed');
    assertStoreFailure(() => openJson(Buffer.from('{"plain":"json"}'), SECRET), /unknown header/, 'notSealed');
    assertStoreFailure(() => openJson(blob.subarray(0, 40), SECRET), /truncated/, 'notSealed');
    assertStoreFailure(() => openJson(blob.subarray(0, blob.length - 1), SECRET));
  });

  it('draws a new salt and nonce for every seal', () => {
    const a = sealJson(VALUE, SECRET);
    const b = sealJson(VALUE, SECRET);
    assert.notDeepEqual(a.subarray(9, 25), b.subarray(9, 25), 'salt');
    assert.notDeepEqual(a.subarray(25, 37), b.subarray(25, 37), 'nonce');
    assert.notDeepEqual(a, b);
  });

  it('refuses an empty secret', () => {
    assertStoreFailure(() => sealJson(VALUE, ''), /no encryption secret/, 'noSecret');
  });

  it('openWithAny: says which secret opened the blob, and fails with the first secret\'s reason', () => {
    const blob = sealJson(VALUE, 'older-secret', 'key-a');
    assert.deepEqual(openWithAny(blob, [SECRET, 'older-secret'], 'key-a'), { value: VALUE, secret: 'older-secret' });
    assertStoreFailure(() => openWithAny(blob, [SECRET, 'older-secret']), /cannot be decrypted/);
    assertStoreFailure(() => openWithAny(Buffer.from('{}'), [SECRET, 'older-secret']), /not one of our encrypted files/);
    assertStoreFailure(() => openWithAny(blob, []), /no encryption secret/);
  });
});
