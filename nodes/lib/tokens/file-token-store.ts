/**
 * The embedded token store: one encrypted JSON file (lowdb 7 with our own adapter) in Node-RED's user
 * directory. Invariants 5 and 8: content sealed with AES-256-GCM (./crypto), written atomically (temp file in
 * the same directory, fsync, rename, fsync of the directory), owner-only (0o600), and `set` resolves only
 * once the value is on disk.
 */
import { randomBytes } from 'node:crypto';
import { promises as fsp, readFileSync, writeFileSync, mkdirSync, renameSync, unlinkSync } from 'node:fs';
import * as path from 'node:path';
import type { Adapter, Low as LowClass } from 'lowdb' with { 'resolution-mode': 'import' };
import { OAuth2Error } from '../errors';
import type { TokenSet } from '../types';
import { openWithAny, sealJson } from './crypto';
import type { StoredTokens, TokenStore } from './token-store';

type LowdbModule = typeof import('lowdb', { with: { 'resolution-mode': 'import' } });

/**
 * lowdb 7 is ESM-only and this package compiles to CommonJS. With `module: node16`, TypeScript keeps a
 * dynamic `import()` as a real `import()` in the CommonJS output (checked in dist/), which Node.js accepts from
 * CommonJS; tsx's CommonJS hook (the tests) also leaves it working. Loaded once, lazily.
 */
let lowdbModule: Promise<LowdbModule> | undefined;
function loadLowdb(): Promise<LowdbModule> {
  lowdbModule ??= import('lowdb');
  return lowdbModule;
}

const FILE_MODE = 0o600;

function storeError(message: string, cause?: unknown): OAuth2Error {
  return new OAuth2Error('OAUTH2_TOKEN_STORE_FAILED', message, cause === undefined ? {} : { cause });
}

/** File-system errors carry only a code and a path; keep just those (never content). */
function fsReason(err: unknown): string {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return code ? code : 'unknown error';
}

function isErrno(err: unknown, ...codes: string[]): boolean {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return code !== undefined && codes.includes(code);
}

function tempPrefix(filePath: string): string {
  return `.${path.basename(filePath)}.`;
}
const TEMP_SUFFIX = '.tmp';

/**
 * Writes `data` to `filePath` so that a reader sees either the old or the new file, never a mix: a temp file
 * in the same directory (same file system, so rename is atomic), created owner-only, fsynced, renamed over the
 * target, then the directory fsynced so the rename itself survives a power loss.
 */
export async function writeFileAtomic(filePath: string, data: Buffer): Promise<void> {
  const dir = path.dirname(filePath);
  const tempPath = path.join(dir, `${tempPrefix(filePath)}${process.pid}.${randomBytes(6).toString('hex')}${TEMP_SUFFIX}`);
  let renamed = false;
  try {
    const handle = await fsp.open(tempPath, 'wx', FILE_MODE);
    try {
      await handle.writeFile(data);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await fsp.rename(tempPath, filePath);
    renamed = true;
    // The temp file was created 0o600 (umask can only remove bits); chmod anyway in case the file system or a
    // previous version left wider permissions on the target name.
    await fsp.chmod(filePath, FILE_MODE).catch(() => undefined);
    await fsyncDirectory(dir);
  } catch (err) {
    if (!renamed) await fsp.unlink(tempPath).catch(() => undefined);
    throw err;
  }
}

async function fsyncDirectory(dir: string): Promise<void> {
  let handle: fsp.FileHandle | undefined;
  try {
    handle = await fsp.open(dir, 'r');
    await handle.sync();
  } catch (err) {
    // Windows cannot open or fsync a directory; some file systems refuse it. The rename already happened.
    if (!isErrno(err, 'EISDIR', 'EPERM', 'EINVAL', 'EACCES', 'ENOTSUP', 'EBADF')) throw err;
  } finally {
    await handle?.close().catch(() => undefined);
  }
}

/** Removes temp files a crash left behind (they are never read: the target is always complete). */
async function removeStaleTempFiles(filePath: string): Promise<void> {
  const dir = path.dirname(filePath);
  const prefix = tempPrefix(filePath);
  let names: string[];
  try {
    names = await fsp.readdir(dir);
  } catch {
    return;
  }
  await Promise.all(
    names
      .filter((name) => name.startsWith(prefix) && name.endsWith(TEMP_SUFFIX))
      .map((name) => fsp.unlink(path.join(dir, name)).catch(() => undefined)),
  );
}

/** The journal's content, or undefined when there is none or it cannot be opened (torn, other secret). */
async function readJournal(filePath: string, secrets: readonly string[]): Promise<unknown> {
  let blob: Buffer;
  try {
    blob = await fsp.readFile(filePath);
  } catch {
    return undefined;
  }
  try {
    return openWithAny(blob, secrets).value;
  } catch {
    return undefined; // torn, or sealed with another secret
  }
}

/** lowdb adapter: sealed with ./crypto, written with `writeFileAtomic`. `read` gives null for a missing file. */
export class EncryptedFileAdapter<T> implements Adapter<T> {
  /** Set when the file was opened with a fallback secret: the next write re-seals it with `secret`. */
  openedWithFallback = false;

  constructor(
    private readonly filePath: string,
    private readonly secret: string,
    private readonly fallbackSecrets: readonly string[] = [],
  ) {}

  async read(): Promise<T | null> {
    let blob: Buffer;
    try {
      blob = await fsp.readFile(this.filePath);
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return null;
      throw storeError(`Token store: cannot read ${this.filePath} (${fsReason(err)}).`);
    }
    let opened: ReturnType<typeof openWithAny>;
    try {
      opened = openWithAny(blob, [this.secret, ...this.fallbackSecrets]);
    } catch (first) {
      const reason = first instanceof Error ? first.message : 'unreadable';
      // Never overwrite it silently: another secret's file still holds logins someone may want back.
      throw storeError(
        `${reason} File: ${this.filePath}. It was left untouched; restore the previous credential secret, or ` +
          'move the file away to start with an empty store (connections will need a new login).',
      );
    }
    this.openedWithFallback = opened.secret !== this.secret;
    return opened.value as T;
  }

  async write(data: T): Promise<void> {
    const blob = sealJson(data, this.secret);
    try {
      await writeFileAtomic(this.filePath, blob);
    } catch (err) {
      throw storeError(`Token store: cannot write ${this.filePath} (${fsReason(err)}).`);
    }
    this.openedWithFallback = false;
  }
}

export interface EncryptedJsonFileOptions<T> {
  filePath: string;
  secret: string;
  /**
   * Secrets tried when `secret` cannot open the file (for example the generated `_credentialSecret` after the
   * user set `credentialSecret`, which makes Node-RED migrate and delete the generated one). A file opened with
   * one is re-sealed with `secret` at once.
   */
  fallbackSecrets?: readonly string[];
  /** Data of a file that does not exist yet. */
  defaultData: () => T;
  /** Shape check of decrypted content; false means a damaged or foreign file. */
  isValid: (data: unknown) => data is T;
  /** What the file holds, for error messages ("token store", "trigger state"). */
  label: string;
  /**
   * Keep a journal: each update is also written at once, synchronously, to `<file>.journal` (temp + rename,
   * no fsync) before `update` returns, and read back on open when a crash interrupted the durable write. For
   * small files whose updates must survive a killed process from the first moment (rotated refresh tokens).
   */
  journal?: boolean;
}

/** Where an EncryptedJsonFile keeps its journal. */
export function journalPath(filePath: string): string {
  return `${filePath}.journal`;
}

/**
 * One encrypted JSON document kept in memory and on disk. Updates are applied in memory at once and written
 * one at a time; updates that arrive while a write is running are coalesced into the next write. Each
 * `update` resolves after a write that contains it completed (or rejects if that write failed; the change stays
 * in memory and the next successful write carries it).
 */
export class EncryptedJsonFile<T> {
  private tail: Promise<void> = Promise.resolve();
  private queued: Promise<void> | undefined;

  /** Updates applied so far; a write that started at the current count has everything the journal has. */
  private updates = 0;

  private constructor(
    private readonly db: LowClass<T>,
    readonly filePath: string,
    private readonly journal?: { path: string; secret: string },
  ) {}

  static async open<T>(options: EncryptedJsonFileOptions<T>): Promise<EncryptedJsonFile<T>> {
    const { filePath, secret, label } = options;
    if (typeof secret !== 'string' || secret.length === 0) {
      throw storeError(`The ${label} needs an encryption secret; none was given.`);
    }
    try {
      await fsp.mkdir(path.dirname(filePath), { recursive: true, mode: 0o700 });
    } catch (err) {
      throw storeError(`The ${label} directory cannot be created for ${filePath} (${fsReason(err)}).`);
    }
    await removeStaleTempFiles(filePath);
    const { Low } = await loadLowdb();
    const adapter = new EncryptedFileAdapter<T>(filePath, secret, options.fallbackSecrets ?? []);
    const db = new Low<T>(adapter, options.defaultData());
    await db.read();
    if (!options.isValid(db.data)) {
      throw storeError(
        `The ${label} file ${filePath} decrypted but does not hold a ${label}. It was left untouched; move it away ` +
          'to start with an empty one.',
      );
    }
    const journal = options.journal ? { path: journalPath(filePath), secret } : undefined;
    let fromJournal = false;
    if (journal) {
      // A journal still present means the durable write after an update did not finish (a killed process):
      // it holds that update, newer than the file. A torn or foreign journal is ignored and removed.
      const journaled = await readJournal(journal.path, [secret, ...(options.fallbackSecrets ?? [])]);
      if (journaled !== undefined && options.isValid(journaled)) {
        db.data = journaled;
        fromJournal = true;
      } else {
        await fsp.unlink(journal.path).catch(() => undefined);
      }
    }
    const file = new EncryptedJsonFile<T>(db, filePath, journal);
    if (adapter.openedWithFallback || fromJournal) await file.update(() => undefined);
    return file;
  }

  /** The in-memory document. Mutate only inside `update`. */
  get data(): T {
    return this.db.data;
  }

  /** Applies `mutate` now and resolves once a write containing it is on disk. */
  update(mutate: (data: T) => void): Promise<void> {
    mutate(this.db.data);
    this.updates += 1;
    if (this.journal) this.writeJournal(this.journal);
    return this.scheduleWrite();
  }

  /**
   * Invariant 8 under SIGKILL: the provider spends the old refresh token when it answers, so the new one must
   * reach the file system before anything else happens. The durable write (fsync, rename, fsync) takes
   * milliseconds and waits behind a write already running; this synchronous temp-and-rename, without fsync,
   * takes well under one and lands in the page cache, which outlives a killed process (not a power loss: the
   * durable write covers that). A failure here is left to the durable write.
   */
  private writeJournal(journal: { path: string; secret: string }): void {
    const temp = path.join(path.dirname(journal.path), `${tempPrefix(this.filePath)}journal.${process.pid}${TEMP_SUFFIX}`);
    try {
      writeFileSync(temp, sealJson(this.db.data, journal.secret), { mode: FILE_MODE });
      renameSync(temp, journal.path);
    } catch {
      try {
        unlinkSync(temp);
      } catch {
        // nothing to clean
      }
    }
  }

  /** Resolves when every write scheduled so far has finished (it never rejects). */
  flush(): Promise<void> {
    return this.tail;
  }

  private scheduleWrite(): Promise<void> {
    // A write that has not started yet will serialise the data as it is when it starts: join it.
    if (this.queued) return this.queued;
    const write = this.tail.then(async () => {
      this.queued = undefined;
      const covered = this.updates;
      await this.db.write();
      // The file now holds everything the journal holds, unless an update came in during the write.
      if (this.journal && this.updates === covered) await fsp.unlink(this.journal.path).catch(() => undefined);
    });
    this.queued = write;
    this.tail = write.catch(() => undefined);
    return write;
  }
}

/** On-disk document of the token store. */
interface TokenStoreDocument {
  version: 1;
  connections: Record<string, StoredTokens>;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Shape check of a stored TokenSet (also used by the Redis store). */
export function isTokenSet(value: unknown): value is TokenSet {
  return (
    isRecord(value) &&
    typeof value.accessToken === 'string' &&
    typeof value.tokenType === 'string' &&
    typeof value.expiresAt === 'number' &&
    typeof value.obtainedAt === 'number' &&
    Array.isArray(value.scopes)
  );
}

function isTokenStoreDocument(value: unknown): value is TokenStoreDocument {
  if (!isRecord(value) || value.version !== 1 || !isRecord(value.connections)) return false;
  return Object.values(value.connections).every(
    (entry) => isRecord(entry) && typeof entry.updatedAt === 'number' && isTokenSet(entry.tokens),
  );
}

export interface FileTokenStore extends TokenStore {
  readonly filePath: string;
}

/**
 * Opens (or creates on first write) the encrypted token store at `filePath`. Throws OAUTH2_TOKEN_STORE_FAILED
 * when the file exists but cannot be read, decrypted (other secret, tampering) or understood; the file is
 * then left as it is and the caller decides (report, or move it away).
 */
export async function openFileTokenStore(options: {
  filePath: string;
  secret: string;
  fallbackSecrets?: readonly string[];
}): Promise<FileTokenStore> {
  const file = await EncryptedJsonFile.open<TokenStoreDocument>({
    journal: true,
    filePath: options.filePath,
    secret: options.secret,
    fallbackSecrets: options.fallbackSecrets,
    defaultData: () => ({ version: 1, connections: {} }),
    isValid: isTokenStoreDocument,
    label: 'token store',
  });
  const connections = (): Record<string, StoredTokens> => file.data.connections;
  return {
    filePath: file.filePath,
    async get(connectionId) {
      const entry = Object.prototype.hasOwnProperty.call(connections(), connectionId) ? connections()[connectionId] : undefined;
      // A copy: callers must not be able to change what the next write stores.
      return entry === undefined ? undefined : structuredClone(entry);
    },
    set(connectionId, value) {
      const copy = structuredClone(value);
      return file.update((data) => {
        // defineProperty, not assignment: an id like "__proto__" must stay an ordinary key.
        Object.defineProperty(data.connections, connectionId, { value: copy, enumerable: true, writable: true, configurable: true });
      });
    },
    async delete(connectionId) {
      if (!Object.prototype.hasOwnProperty.call(connections(), connectionId)) {
        // Nothing in memory, but a write may still be in flight: wait so "deleted" also means "on disk".
        await file.flush();
        return;
      }
      await file.update((data) => {
        delete data.connections[connectionId];
      });
    },
    async ids() {
      return Object.keys(connections());
    },
    flush() {
      return file.flush();
    },
  };
}

/**
 * Which secret seals the token store.
 *
 * - `credentialSecret` set in settings (a non-empty string): that secret. Node-RED encrypts its own credential
 *   file with it, so the store is exactly as protected as flows_cred.json.
 * - `credentialSecret` not set: Node-RED's generated `_credentialSecret` (from .config.runtime.json).
 * - `credentialSecret: false` (Node-RED keeps credentials in clear), an empty string, or no secret at all: we
 *   still encrypt, with a random 256-bit key kept in an owner-only key file (`keyFilePath`, by default
 *   `<store dir>/<store name>.key` chosen by the caller) next to the store. Be clear what this buys: it only
 *   protects against a copy of the store file alone (a backup, a sync folder, a file attached to a bug
 *   report); anyone who can read the user directory can read the key too. We do not refuse to run, because
 *   the instance owner explicitly chose clear-text credentials, and tokens in flows_cred.json would be in clear
 *   anyway. Without `keyFilePath` in that case this throws OAUTH2_TOKEN_STORE_FAILED.
 *
 * The key file is read or created synchronously: this runs once when the runtime starts.
 */
export function resolveStoreSecret(settings: {
  credentialSecret?: string | false;
  generatedSecret?: string;
  /** Where the instance-less key lives when there is no usable credential secret. */
  keyFilePath?: string;
}): { secret: string; source: 'credentialSecret' | 'generated' | 'unencrypted-instance' } {
  const { credentialSecret, generatedSecret, keyFilePath } = settings;
  if (typeof credentialSecret === 'string' && credentialSecret.length > 0) {
    return { secret: credentialSecret, source: 'credentialSecret' };
  }
  if (credentialSecret === undefined && typeof generatedSecret === 'string' && generatedSecret.length > 0) {
    return { secret: generatedSecret, source: 'generated' };
  }
  if (!keyFilePath) {
    throw storeError('Token store: the instance has no credential secret and no key file path was given.');
  }
  return { secret: readOrCreateKeyFile(keyFilePath), source: 'unencrypted-instance' };
}

function readOrCreateKeyFile(keyFilePath: string): string {
  const read = (): string | undefined => {
    try {
      const text = readFileSync(keyFilePath, 'utf8').trim();
      if (!/^[0-9a-f]{64}$/.test(text)) {
        throw storeError(`Token store: the key file ${keyFilePath} is damaged (expected 64 hex digits).`);
      }
      return text;
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return undefined;
      if (err instanceof OAuth2Error) throw err;
      throw storeError(`Token store: cannot read the key file ${keyFilePath} (${fsReason(err)}).`);
    }
  };
  const existing = read();
  if (existing) return existing;
  const key = randomBytes(32).toString('hex');
  try {
    mkdirSync(path.dirname(keyFilePath), { recursive: true, mode: 0o700 });
    // 'wx': never replace a key another process created meanwhile (that would orphan its store).
    writeFileSync(keyFilePath, `${key}\n`, { mode: FILE_MODE, flag: 'wx' });
  } catch (err) {
    if (isErrno(err, 'EEXIST')) {
      const raced = read();
      if (raced) return raced;
    }
    throw storeError(`Token store: cannot create the key file ${keyFilePath} (${fsReason(err)}).`);
  }
  return key;
}
