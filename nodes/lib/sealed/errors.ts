/**
 * What can go wrong with a sealed value or an encrypted file, typed, so that each store says it in its own
 * words and with its own code (the token store OAUTH2_TOKEN_STORE_FAILED, the trigger state
 * OAUTH2_TRIGGER_STATE_FAILED) without reading another store's messages. A message names the file and an errno
 * code at most, never content.
 */
import { OAuth2Error } from '../errors';

export type SealedFailure =
  /** No secret to seal or open with. */
  | 'noSecret'
  /** The value to seal is not JSON-serialisable. */
  | 'notSerialisable'
  /** The blob is not a sealed file (unknown header), has an unknown version or is truncated. */
  | 'notSealed'
  /** Authentication failed: another secret, or modified or damaged content. */
  | 'undecryptable'
  /** Decrypted, but not JSON, or not the document the file is meant to hold. */
  | 'foreign'
  /** The file system refused (see `errno`). */
  | 'io';

export class SealedFileError extends Error {
  override readonly name = 'SealedFileError';
  constructor(
    readonly failure: SealedFailure,
    message: string,
    /** The errno code of an 'io' failure (ENOENT, EACCES...). */
    readonly errno?: string,
  ) {
    super(message);
  }
}

export function isSealedFileError(err: unknown): err is SealedFileError {
  return err instanceof SealedFileError;
}

/** File-system errors carry only a code and a path; keep just the code (never content). */
export function errnoOf(err: unknown): string {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return code ? code : 'unknown error';
}

export function isErrno(err: unknown, ...codes: string[]): boolean {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return code !== undefined && codes.includes(code);
}

/**
 * A store's error for a failure of its file: `code` and `label` are the store's ("Token store"), `advice` what the
 * user can do about a file that cannot be opened. Errors that are not SealedFileError pass through.
 */
export function storeFailure(
  err: unknown,
  code: 'OAUTH2_TOKEN_STORE_FAILED' | 'OAUTH2_TRIGGER_STATE_FAILED' | 'OAUTH2_HOLD_STORE_FAILED',
  label: string,
  advice: string,
): OAuth2Error {
  if (err instanceof OAuth2Error) return err;
  if (!(err instanceof SealedFileError)) {
    return new OAuth2Error(code, `${label}: ${err instanceof Error ? err.name : 'unknown'} failure.`);
  }
  const unopenable = err.failure === 'notSealed' || err.failure === 'undecryptable' || err.failure === 'foreign';
  return new OAuth2Error(code, `${label}: ${err.message}${unopenable ? ` ${advice}` : ''}`, {
    params: { failure: err.failure, ...(err.errno ? { errno: err.errno } : {}) },
  });
}
