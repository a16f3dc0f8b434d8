/**
 * Re-sealing of a sealed file with a new secret, for when the instance's credential secret changes. The
 * content is decrypted in memory only and replaced with `writeFileAtomic`, so at every moment the file on
 * disk is complete and sealed, with the previous secret or with the new one, never in clear.
 */
import { promises as fsp } from 'node:fs';
import { openWithAny, sealJson } from './crypto';
import { writeFileAtomic } from './encrypted-json-file';
import { SealedFileError, errnoOf } from './errors';

/**
 * What `resealFile` found: no file, a file the current secret opens already, a file it re-sealed, or a file
 * none of the secrets opens (left as it is: its store reports it when it opens).
 */
export type ResealOutcome = 'absent' | 'current' | 'resealed' | 'unreadable';

/**
 * Makes `filePath` sealed with `secret` when one of `previousSecrets` is what sealed it. Throws
 * SealedFileError ('io') when the file cannot be read or written (an errno code, never content).
 */
export async function resealFile(filePath: string, secret: string, previousSecrets: readonly string[]): Promise<ResealOutcome> {
  let blob: Buffer;
  try {
    blob = await fsp.readFile(filePath);
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') return 'absent';
    throw new SealedFileError('io', `cannot read ${filePath} (${errnoOf(err)}).`, errnoOf(err));
  }
  let opened: ReturnType<typeof openWithAny>;
  try {
    opened = openWithAny(blob, [secret, ...previousSecrets]);
  } catch {
    return 'unreadable'; // sealed with a secret not known here, or damaged
  }
  if (opened.secret === secret) return 'current';
  try {
    await writeFileAtomic(filePath, sealJson(opened.value, secret));
  } catch (err) {
    throw new SealedFileError('io', `cannot write ${filePath} (${errnoOf(err)}).`, errnoOf(err));
  }
  return 'resealed';
}
