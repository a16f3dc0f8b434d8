/**
 * Encrypted files: one JSON document sealed with AES-256-GCM (./crypto), kept in memory and written
 * atomically (temp file in the same directory, fsync, rename, fsync of the directory), owner-only (0o600), with
 * an optional synchronous journal for updates that must survive a killed process. The token store and the
 * trigger state store are built on it; neither knows how a byte reaches the disk. Failures are SealedFileError
 * (./errors): each store says them in its own words and code.
 */
import { randomBytes } from 'node:crypto';
import { promises as fsp, writeFileSync, renameSync, unlinkSync } from 'node:fs';
import * as path from 'node:path';
import type { Adapter, Low as LowClass } from 'lowdb' with { 'resolution-mode': 'import' };
import { openWithAny, sealJson } from './crypto';
import { SealedFileError, errnoOf, isErrno } from './errors';

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
      throw new SealedFileError('io', `cannot read ${this.filePath} (${errnoOf(err)}).`, errnoOf(err));
    }
    let opened: ReturnType<typeof openWithAny>;
    try {
      opened = openWithAny(blob, [this.secret, ...this.fallbackSecrets]);
    } catch (first) {
      // Never overwrite it silently: a file sealed with another secret still holds what someone may want back.
      if (first instanceof SealedFileError) throw new SealedFileError(first.failure, `${first.message} File: ${this.filePath}. It was left untouched.`);
      throw new SealedFileError('undecryptable', `${this.filePath} cannot be opened. It was left untouched.`);
    }
    this.openedWithFallback = opened.secret !== this.secret;
    return opened.value as T;
  }

  async write(data: T): Promise<void> {
    const blob = sealJson(data, this.secret);
    try {
      await writeFileAtomic(this.filePath, blob);
    } catch (err) {
      throw new SealedFileError('io', `cannot write ${this.filePath} (${errnoOf(err)}).`, errnoOf(err));
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
      throw new SealedFileError('noSecret', `the ${label} needs an encryption secret; none was given.`);
    }
    try {
      await fsp.mkdir(path.dirname(filePath), { recursive: true, mode: 0o700 });
    } catch (err) {
      throw new SealedFileError('io', `the ${label} directory cannot be created for ${filePath} (${errnoOf(err)}).`, errnoOf(err));
    }
    await removeStaleTempFiles(filePath);
    const { Low } = await loadLowdb();
    const adapter = new EncryptedFileAdapter<T>(filePath, secret, options.fallbackSecrets ?? []);
    const db = new Low<T>(adapter, options.defaultData());
    await db.read();
    if (!options.isValid(db.data)) {
      throw new SealedFileError('foreign', `the ${label} file ${filePath} decrypted but does not hold a ${label}. It was left untouched.`);
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

