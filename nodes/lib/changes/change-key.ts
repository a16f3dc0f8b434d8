/**
 * The key a downstream node deduplicates on (msg.changeKey): the same for the same change of a record however
 * often it is sent, different for any other change. At least once (poller.ts) a crash between sending and
 * recording sends that poll's messages again: with the same keys, since the record id, its version and its
 * content are the same (a record that changed again meanwhile is a new change, with a new key).
 *
 * - created / updated: id, version (updated-at ms, version value or content hash) and, with updated-at, a digest
 *   of the content too: a record updated again within its second keeps its time and is sent as a new update
 *   (detect.ts), so the time alone would give two changes one key;
 * - deleted: id and the entry remembered for the record before it went (its last version), so a record deleted,
 *   created again with the same id and deleted again is two deletions.
 *
 * A short digest, not the id itself: msg.topic has the id, and the key need not carry personal data twice.
 */
import { contentFingerprint, fingerprint } from './fingerprint';
import type { ChangeDetection, DetectedChange } from './types';

/** 128 bits of SHA-256, 22 base64url characters: collisions between two changes are out of reach. */
const KEY_BYTES = 16;

export function changeKey(change: DetectedChange, detection: ChangeDetection, rememberedBefore: string | undefined): string {
  const parts =
    change.event === 'deleted'
      ? [change.id, 'deleted', rememberedBefore ?? '']
      : [change.id, change.version ?? '', detection.kind === 'updatedAt' ? (contentFingerprint(change.record) ?? '') : ''];
  return fingerprint(JSON.stringify(parts), KEY_BYTES);
}
