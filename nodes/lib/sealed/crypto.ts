/**
 * Sealing of data at rest (invariant 5): AES-256-GCM with a key derived by HKDF-SHA256 from the Node-RED
 * instance's credential secret.
 *
 * Sealed blob, format version 1 (all binary, no padding):
 *
 *   offset  size  field
 *   0       8     magic "NRO2SEAL"
 *   8       1     format version (1)
 *   9       16    HKDF salt, random per sealed file
 *   25      12    AES-GCM nonce, random per seal
 *   37      n     ciphertext of the UTF-8 JSON text
 *   37+n    16    GCM authentication tag
 *
 * The 37-byte header is the GCM additional authenticated data, so changing the version, salt or nonce fails
 * authentication just like changing the ciphertext. A caller may bind the value to where it is kept (`aad`,
 * for example its store key, appended to the header in the additional data): the value then opens only with
 * the same `aad`, so a sealed value copied under another key does not open there. A new salt and nonce are drawn for every seal: HKDF is
 * cheap, and a fresh key per write removes any chance of a nonce being reused under one key. A later format
 * gets a new version byte; `openJson` refuses versions it does not know rather than guessing.
 *
 * Errors never carry the plaintext, the key or the secret: only what went wrong.
 */
import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';
import { SealedFileError, type SealedFailure } from './errors';

const MAGIC = Buffer.from('NRO2SEAL', 'ascii');
export const SEALED_FORMAT_VERSION = 1;
const SALT_BYTES = 16;
const NONCE_BYTES = 12;
const TAG_BYTES = 16;
const KEY_BYTES = 32;
const HEADER_BYTES = MAGIC.length + 1 + SALT_BYTES + NONCE_BYTES;
/** HKDF `info`: names the package and the purpose, so this key can never equal a key derived elsewhere. */
const HKDF_INFO = Buffer.from('node-red-contrib-http-oauth2/token-store/aes-256-gcm/v1', 'utf8');

function sealError(failure: SealedFailure, message: string): SealedFileError {
  return new SealedFileError(failure, message);
}

function deriveKey(secret: string, salt: Buffer): Buffer {
  if (typeof secret !== 'string' || secret.length === 0) {
    throw sealError('noSecret', 'no encryption secret was provided.');
  }
  return Buffer.from(hkdfSync('sha256', Buffer.from(secret, 'utf8'), salt, HKDF_INFO, KEY_BYTES));
}

/** True when `blob` starts like a sealed file of any version (used to tell "not ours" from "damaged"). */
export function looksSealed(blob: Buffer): boolean {
  return blob.length >= MAGIC.length && blob.subarray(0, MAGIC.length).equals(MAGIC);
}

/** The GCM additional data: the header, then what the value is bound to, if anything (the header has a fixed length). */
function additionalData(header: Buffer, aad: string | undefined): Buffer {
  return aad === undefined ? header : Buffer.concat([header, Buffer.from(aad, 'utf8')]);
}

/** Encrypts `value` (JSON-serialisable) for storage, bound to `aad` when given. */
export function sealJson(value: unknown, secret: string, aad?: string): Buffer {
  const salt = randomBytes(SALT_BYTES);
  const nonce = randomBytes(NONCE_BYTES);
  const key = deriveKey(secret, salt);
  const header = Buffer.concat([MAGIC, Buffer.from([SEALED_FORMAT_VERSION]), salt, nonce]);
  const text = JSON.stringify(value);
  if (text === undefined) throw sealError('notSerialisable', 'the value to seal is not JSON-serialisable.');
  const cipher = createCipheriv('aes-256-gcm', key, nonce, { authTagLength: TAG_BYTES });
  cipher.setAAD(additionalData(header, aad));
  const body = Buffer.concat([cipher.update(text, 'utf8'), cipher.final()]);
  return Buffer.concat([header, body, cipher.getAuthTag()]);
}

/**
 * Decrypts and parses a blob made by `sealJson`. Throws SealedFileError when the blob is not a
 * sealed file, has an unknown version, is truncated, or fails authentication (wrong secret, modified, or
 * sealed with another `aad`).
 */
export function openJson(blob: Buffer, secret: string, aad?: string): unknown {
  if (!looksSealed(blob)) {
    throw sealError('notSealed', 'the file is not one of our encrypted files (unknown header).');
  }
  const version = blob[MAGIC.length];
  if (version !== SEALED_FORMAT_VERSION) {
    throw sealError('notSealed', `unsupported file format version ${String(version)} (this version reads ${SEALED_FORMAT_VERSION}).`);
  }
  if (blob.length < HEADER_BYTES + TAG_BYTES) {
    throw sealError('notSealed', 'the file is truncated.');
  }
  const header = blob.subarray(0, HEADER_BYTES);
  const salt = blob.subarray(MAGIC.length + 1, MAGIC.length + 1 + SALT_BYTES);
  const nonce = blob.subarray(MAGIC.length + 1 + SALT_BYTES, HEADER_BYTES);
  const body = blob.subarray(HEADER_BYTES, blob.length - TAG_BYTES);
  const tag = blob.subarray(blob.length - TAG_BYTES);
  const key = deriveKey(secret, salt);
  let text: string;
  try {
    const decipher = createDecipheriv('aes-256-gcm', key, nonce, { authTagLength: TAG_BYTES });
    decipher.setAAD(additionalData(header, aad));
    decipher.setAuthTag(tag);
    text = Buffer.concat([decipher.update(body), decipher.final()]).toString('utf8');
  } catch {
    // Deliberately no cause: OpenSSL's error says nothing useful and we keep every byte of content out.
    throw sealError(
      'undecryptable',
      'the file cannot be decrypted. Either the credential secret changed (or is not the one ' +
        'this file was written with), or the file was modified or damaged.',
    );
  }
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw sealError('foreign', 'the decrypted content is not valid JSON.');
  }
}

/**
 * Opens `blob` with the first of `secrets` that opens it (bound to `aad` when given) and says which one did:
 * a file or value sealed before a change of secret opens with an older one. Throws the first secret's failure
 * (the one that should have worked) when none does.
 */
export function openWithAny(blob: Buffer, secrets: readonly string[], aad?: string): { value: unknown; secret: string } {
  let failure: unknown;
  for (const secret of secrets) {
    try {
      return { value: openJson(blob, secret, aad), secret };
    } catch (err) {
      failure ??= err;
    }
  }
  throw failure ?? sealError('noSecret', 'no encryption secret was provided.');
}
