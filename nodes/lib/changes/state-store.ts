/**
 * Where record triggers keep what they remember between polls: one encrypted JSON file in the user directory,
 * on the same encrypted file layer as the token store (../sealed) (AES-256-GCM, atomic replace, owner-only, `set` durable before it
 * resolves). The state holds ids and short version digests, never records, but ids alone can be personal data
 * (email addresses as ids), hence the encryption.
 *
 * Document: `{ version: 1, triggers: { [nodeId]: TriggerState } }`. Every `set` rewrites the whole file
 * (sealed JSON): about 40 bytes per remembered record, so a 100,000-record trigger costs a few MB per commit;
 * commits happen only when a poll changed something (see poller.ts).
 */
import { OAuth2Error } from '../errors';
import { EncryptedJsonFile } from '../sealed/encrypted-json-file';
import { storeFailure } from '../sealed/errors';
import type { TriggerState } from './types';

export interface TriggerStateStore {
  /** A copy of the node's state, or undefined when none is stored. Rejects when the stored entry is damaged. */
  get(nodeId: string): Promise<TriggerState | undefined>;
  /**
   * Stores a copy of `state`; resolves once it is on disk. When the write fails it rejects, but the new state
   * stays in memory (get returns it) and the next successful write carries it: the file lags, it never goes
   * back. The poller relies on this to not resend in-process what it already sent (see poller.ts). The shared
   * store on Redis (redis/trigger-store.ts) keeps this only while no other instance wrote the trigger since:
   * then the other instance's state wins.
   */
  set(nodeId: string, state: TriggerState): Promise<void>;
  /** Forgets the node's state; resolves once that is on disk. */
  delete(nodeId: string): Promise<void>;
  ids(): Promise<string[]>;
  /** Resolves when every write so far has finished (never rejects). */
  flush(): Promise<void>;
}

export interface FileTriggerStateStore extends TriggerStateStore {
  readonly filePath: string;
}

interface TriggerStateDocument {
  version: 1;
  triggers: Record<string, unknown>;
}

function stateError(message: string, cause?: unknown): OAuth2Error {
  return new OAuth2Error('OAUTH2_TRIGGER_STATE_FAILED', message, cause === undefined ? {} : { cause });
}

/** The trigger state's error for a failure of its file (the file layer's typed SealedFileError), with what to do. */
export function triggerStateFailure(err: unknown): OAuth2Error {
  return storeFailure(
    err,
    'OAUTH2_TRIGGER_STATE_FAILED',
    'Trigger state',
    'Restore the previous credential secret, or move the file away to start again (each trigger then treats its next poll as a first poll).',
  );
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isDocument(value: unknown): value is TriggerStateDocument {
  return isRecord(value) && value.version === 1 && isRecord(value.triggers);
}

/** Full shape check of one trigger's state (a loop over `seen`: linear, about 1 ms per 100,000 entries). */
export function isTriggerState(value: unknown): value is TriggerState {
  if (!isRecord(value) || value.version !== 1 || typeof value.configKey !== 'string' || typeof value.initialised !== 'boolean') {
    return false;
  }
  if (value.watermark !== undefined && !(typeof value.watermark === 'number' && Number.isFinite(value.watermark))) return false;
  const seen = value.seen;
  if (!Array.isArray(seen)) return false;
  for (const entry of seen) {
    if (!Array.isArray(entry) || entry.length !== 2 || typeof entry[0] !== 'string' || typeof entry[1] !== 'string') return false;
  }
  // Absent in memories written before records had to be missing twice: nothing is marked then.
  if (value.missing !== undefined && !(Array.isArray(value.missing) && value.missing.every((id) => typeof id === 'string'))) return false;
  return value.continuation === undefined || isContinuation(value.continuation);
}

function isContinuation(value: unknown): boolean {
  const finite = (n: unknown): boolean => typeof n === 'number' && Number.isFinite(n);
  if (!isRecord(value) || typeof value.key !== 'string' || !isRecord(value.query) || !finite(value.pages) || !finite(value.stalled)) return false;
  if (!finite(value.apiStart) || (value.watermark !== undefined && !finite(value.watermark))) return false;
  if (!Object.values(value.query).every((v) => typeof v === 'string')) return false;
  if (!Array.isArray(value.points) || !value.points.every((p) => typeof p === 'string')) return false;
  const next = value.next;
  return next === undefined || (isRecord(next) && typeof next.url === 'string' && finite(next.pages) && finite(next.offset));
}

/** A copy sharing nothing mutable with `state` (ids and versions are strings, which are immutable). */
export function copyState(state: TriggerState): TriggerState {
  const copy: TriggerState = {
    version: 1,
    configKey: state.configKey,
    initialised: state.initialised,
    seen: state.seen.map(([id, version]): [string, string] => [id, version]),
  };
  if (state.watermark !== undefined) copy.watermark = state.watermark;
  if (state.continuation !== undefined) copy.continuation = structuredClone(state.continuation);
  if (state.missing !== undefined) copy.missing = state.missing.slice();
  return copy;
}

function has(record: Record<string, unknown>, key: string): boolean {
  return Object.prototype.hasOwnProperty.call(record, key);
}

/**
 * Opens (or creates on first write) the trigger state file. Throws OAUTH2_TRIGGER_STATE_FAILED when the file
 * exists but cannot be read, decrypted or understood; it is then left as it is.
 */
export async function openTriggerStateStore(options: {
  filePath: string;
  secret: string;
  fallbackSecrets?: readonly string[];
}): Promise<FileTriggerStateStore> {
  let file: EncryptedJsonFile<TriggerStateDocument>;
  try {
    file = await EncryptedJsonFile.open<TriggerStateDocument>({
      filePath: options.filePath,
      secret: options.secret,
      fallbackSecrets: options.fallbackSecrets,
      defaultData: () => ({ version: 1, triggers: {} }),
      isValid: isDocument,
      label: 'trigger state',
    });
  } catch (err) {
    throw triggerStateFailure(err);
  }
  const filePath = file.filePath;
  const triggers = (): Record<string, unknown> => file.data.triggers;
  const write = async (mutate: (doc: TriggerStateDocument) => void): Promise<void> => {
    try {
      await file.update(mutate);
    } catch (err) {
      throw triggerStateFailure(err);
    }
  };

  return {
    filePath,
    async get(nodeId) {
      if (!has(triggers(), nodeId)) return undefined;
      const entry = triggers()[nodeId];
      if (!isTriggerState(entry)) {
        // Entries are checked on the way in, and the file is authenticated: this is a newer version's format.
        throw stateError(`Trigger state: the entry of node ${nodeId} is not in a format this version reads; reset the trigger.`);
      }
      return copyState(entry);
    },
    set(nodeId, state) {
      if (!isTriggerState(state)) {
        // Never let a malformed entry in: the next open would refuse the whole file, every trigger's state.
        return Promise.reject(stateError(`Trigger state: refused to store a malformed state for node ${nodeId}.`));
      }
      const copy = copyState(state);
      return write((doc) => {
        // defineProperty, not assignment: an id like "__proto__" must stay an ordinary key.
        Object.defineProperty(doc.triggers, nodeId, { value: copy, enumerable: true, writable: true, configurable: true });
      });
    },
    async delete(nodeId) {
      if (!has(triggers(), nodeId)) {
        // Nothing in memory, but a write may still be in flight: wait so "deleted" also means "on disk".
        await file.flush();
        return;
      }
      await write((doc) => {
        delete doc.triggers[nodeId];
      });
    },
    async ids() {
      return Object.keys(triggers());
    },
    flush() {
      return file.flush();
    },
  };
}
