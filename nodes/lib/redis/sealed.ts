/**
 * Opening the values sealed in Redis. Each value is sealed bound to its own key (the key is GCM additional
 * data), which holds the connection or node id: whoever can write to Redis but lacks the secret cannot make
 * one connection use another's tokens, or one trigger another's memory, by copying a value under another key.
 *
 * Values written by versions that did not bind them still open, unbound: every instance re-reads its
 * connections on start and writes them again at the next refresh, and a trigger's state at its next poll, both
 * bound then. Only a value that is never written again stays unbound.
 */
import { openWithAny } from '../sealed/crypto';

/**
 * Opens `blob` kept under `key` with one of `secrets`: bound to `key`, else (a value from before binding)
 * unbound. Throws OAUTH2_TOKEN_STORE_FAILED (from crypto.ts) when none does.
 */
export function openUnderKey(blob: Buffer, secrets: readonly string[], key: string): unknown {
  try {
    return openWithAny(blob, secrets, key).value;
  } catch (bound) {
    try {
      return openWithAny(blob, secrets).value;
    } catch {
      throw bound; // the failure of the form every value is written in now
    }
  }
}
