/**
 * Where request nodes keep the messages they hold while their connection needs a login (hold-queue.ts): one
 * encrypted file in the user directory, on the same sealed file layer as the token and trigger stores (../sealed:
 * AES-256-GCM, atomic replace, owner-only, `add` durable before it resolves), or Redis (../redis/held-store.ts).
 * Messages are users' data (records, personal data), hence the encryption.
 *
 * Document: `{ version: 1, nodes: { [nodeId]: { [entryId]: { at, message } } } }`. Entry ids sort in the
 * order the messages arrived (hold-queue.ts makes them).
 */
import { OAuth2Error } from '../errors';
import { EncryptedJsonFile } from '../sealed/encrypted-json-file';
import { storeFailure } from '../sealed/errors';

export interface HeldEntry {
  /** Sorts in arrival order (see heldEntryId). */
  id: string;
  /** When the message was held (ms since the epoch): the longest hold counts from here. */
  at: number;
  /** The message as message-codec.ts keeps it. */
  message: string;
}

export interface HeldStore {
  /** The node's held messages, oldest first. Rejects when the store cannot be read. */
  list(nodeId: string): Promise<HeldEntry[]>;
  /** Resolves once the entry is durable. */
  add(nodeId: string, entry: HeldEntry): Promise<void>;
  /** Resolves once the entry's removal is durable; removing an entry that is not there is not an error. */
  remove(nodeId: string, entryId: string): Promise<void>;
  /** Forgets every message of a node gone from the flows. */
  purge(nodeId: string): Promise<void>;
  /**
   * Shared stores (several instances): claims a message for sending for `ttlMs`; false when another instance
   * holds its claim or it is gone. A store of one instance has no claims.
   */
  claim?(nodeId: string, entryId: string, ttlMs: number): Promise<boolean>;
  /** Gives a claim back (the message stays held). */
  unclaim?(nodeId: string, entryId: string): Promise<void>;
  /** Ids of the nodes with held messages. */
  ids(): Promise<string[]>;
  /** Resolves when every write so far has finished (never rejects). */
  flush(): Promise<void>;
}

interface HeldDocument {
  version: 1;
  nodes: Record<string, Record<string, { at: number; message: string }>>;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isEntryValue(value: unknown): value is { at: number; message: string } {
  return isRecord(value) && typeof value.at === 'number' && Number.isFinite(value.at) && typeof value.message === 'string';
}

function isDocument(value: unknown): value is HeldDocument {
  if (!isRecord(value) || value.version !== 1 || !isRecord(value.nodes)) return false;
  return Object.values(value.nodes).every((entries) => isRecord(entries) && Object.values(entries).every(isEntryValue));
}

/** The held messages' error for a failure of their file (the file layer's SealedFileError), with what to do. */
export function heldStoreFailure(err: unknown): OAuth2Error {
  return storeFailure(
    err,
    'OAUTH2_HOLD_STORE_FAILED',
    'Held messages',
    'Restore the previous credential secret, or move the file away (the messages it holds are then lost).',
  );
}

function own(record: Record<string, unknown>, key: string): boolean {
  return Object.prototype.hasOwnProperty.call(record, key);
}

function define(record: Record<string, unknown>, key: string, value: unknown): void {
  // defineProperty, not assignment: an id like "__proto__" must stay an ordinary key.
  Object.defineProperty(record, key, { value, enumerable: true, writable: true, configurable: true });
}

/** A sort key of arrival: the time, then a counter for messages of the same millisecond, then a random tail. */
let lastMs = 0;
let sameMs = 0;
export function heldEntryId(now: number = Date.now()): string {
  if (now === lastMs) sameMs += 1;
  else {
    lastMs = now;
    sameMs = 0;
  }
  const random = Math.floor(Math.random() * 0xffffff).toString(16).padStart(6, '0');
  return `${String(now).padStart(15, '0')}-${String(sameMs).padStart(6, '0')}-${random}`;
}

/**
 * Opens (or creates on first write) the held messages' file. Throws OAUTH2_HOLD_STORE_FAILED when the file exists
 * but cannot be read, decrypted or understood; it is then left as it is.
 */
export async function openHeldStore(options: { filePath: string; secret: string; fallbackSecrets?: readonly string[] }): Promise<HeldStore & { filePath: string }> {
  let file: EncryptedJsonFile<HeldDocument>;
  try {
    file = await EncryptedJsonFile.open<HeldDocument>({
      filePath: options.filePath,
      secret: options.secret,
      fallbackSecrets: options.fallbackSecrets,
      defaultData: () => ({ version: 1, nodes: {} }),
      isValid: isDocument,
      label: 'held messages',
    });
  } catch (err) {
    throw heldStoreFailure(err);
  }
  const nodes = (): HeldDocument['nodes'] => file.data.nodes;
  const write = async (mutate: (doc: HeldDocument) => void): Promise<void> => {
    try {
      await file.update(mutate);
    } catch (err) {
      throw heldStoreFailure(err);
    }
  };
  return {
    filePath: file.filePath,
    async list(nodeId) {
      if (!own(nodes(), nodeId)) return [];
      const entries = nodes()[nodeId];
      return Object.keys(entries)
        .sort()
        .map((id) => ({ id, at: entries[id].at, message: entries[id].message }));
    },
    add(nodeId, entry) {
      return write((doc) => {
        if (!own(doc.nodes, nodeId)) define(doc.nodes, nodeId, {});
        define(doc.nodes[nodeId], entry.id, { at: entry.at, message: entry.message });
      });
    },
    async remove(nodeId, entryId) {
      if (!own(nodes(), nodeId) || !own(nodes()[nodeId], entryId)) {
        await file.flush();
        return;
      }
      await write((doc) => {
        delete doc.nodes[nodeId][entryId];
        if (Object.keys(doc.nodes[nodeId]).length === 0) delete doc.nodes[nodeId];
      });
    },
    async purge(nodeId) {
      if (!own(nodes(), nodeId)) {
        await file.flush();
        return;
      }
      await write((doc) => {
        delete doc.nodes[nodeId];
      });
    },
    async ids() {
      return Object.keys(nodes());
    },
    flush() {
      return file.flush();
    },
  };
}
