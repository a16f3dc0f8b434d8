import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { promises as fsp, existsSync, readFileSync, statSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  GENERATED_SECRET_COPY_FILE,
  STORE_KEY_FILE,
  TOKEN_STORE_FILE,
  TRIGGER_STORE_FILE,
  HELD_STORE_FILE,
  migrateEarly,
  storeKeys,
  type InstanceSecrets,
} from '../../../nodes/node-red/instance-secret';
import { openTriggerStateStore } from '../../../nodes/lib/changes/state-store';
import { openHeldStore } from '../../../nodes/lib/hold/held-store';
import { openJson, sealJson } from '../../../nodes/lib/sealed/crypto';
import { journalPath } from '../../../nodes/lib/sealed/encrypted-json-file';
import { openFileTokenStore } from '../../../nodes/lib/tokens/file-token-store';
import { resealFile } from '../../../nodes/lib/sealed/reseal';
import { state } from '../changes/state-store-contract';
import { entry } from './support/token-store-contract';

const posix = process.platform !== 'win32';
const NEW_SECRET = 'credential-secret-from-settings';
/** A message a request node held while its connection needed a login. */
const HELD = { id: '000001700000000000-000000-abcdef', at: 1_700_000_000_000, message: '{"payload":{"n":1}}' };

/** The instance's secrets as the adapters read them from Node-RED's settings. */
const settings = (credentialSecret?: string | false, generatedSecret?: string): InstanceSecrets => () => ({ credentialSecret, generatedSecret });

describe('tokens: a change of credential secret re-seals the stores', () => {
  let dir: string;
  let generated: string;
  const tokensPath = (): string => path.join(dir, TOKEN_STORE_FILE);
  const triggersPath = (): string => path.join(dir, TRIGGER_STORE_FILE);
  const heldPath = (): string => path.join(dir, HELD_STORE_FILE);
  const copyPath = (): string => path.join(dir, GENERATED_SECRET_COPY_FILE);

  /** The runtime's stores opened the way the adapters open them. */
  async function openStores(secrets: InstanceSecrets) {
    const tokens = await openFileTokenStore({ filePath: tokensPath(), ...(await storeKeys(dir, secrets)) });
    const triggers = await openTriggerStateStore({ filePath: triggersPath(), ...(await storeKeys(dir, secrets)) });
    const held = await openHeldStore({ filePath: heldPath(), ...(await storeKeys(dir, secrets)) });
    return { tokens, triggers, held };
  }

  /** A login and a trigger memory written while Node-RED ran on its generated secret. */
  async function runOnGeneratedSecret(): Promise<void> {
    const { tokens, triggers, held } = await openStores(settings(undefined, generated));
    await tokens.set('conn1', entry(1));
    await triggers.set('trig1', state(1));
    await held.add('req1', HELD);
    await Promise.all([tokens.flush(), triggers.flush(), held.flush()]);
  }

  function sealedWith(filePath: string, secret: string): unknown {
    return openJson(readFileSync(filePath), secret);
  }

  /** The login and the memory, read back by stores opened on `secrets` (as after a restart). */
  async function assertKeptUnder(secrets: InstanceSecrets): Promise<void> {
    const { tokens, triggers, held } = await openStores(secrets);
    assert.deepEqual(await tokens.get('conn1'), entry(1));
    assert.deepEqual(await triggers.get('trig1'), state(1));
    assert.deepEqual(await held.list('req1'), [HELD]);
  }

  /**
   * Makes `filePath` fail to read, as an I/O error would, until the returned function puts it back (the tests
   * may run as root, which reads a file whatever its mode: a directory in its place gives EISDIR).
   */
  async function failingToRead(filePath: string): Promise<() => Promise<void>> {
    const aside = `${filePath}.aside`;
    await fsp.rename(filePath, aside);
    await fsp.mkdir(filePath);
    return async () => {
      await fsp.rmdir(filePath);
      await fsp.rename(aside, filePath);
    };
  }

  /**
   * The next start of Node-RED, a new process: it migrates again. One process migrates a user directory once;
   * the same directory under a new path is one it has not seen.
   */
  async function nextStart(): Promise<void> {
    const moved = `${dir}-next`;
    await fsp.rename(dir, moved);
    dir = moved;
  }

  /** Every file in the user directory with its bytes and modification time. */
  async function snapshot(): Promise<Record<string, string>> {
    const files: Record<string, string> = {};
    for (const name of (await fsp.readdir(dir)).sort()) {
      const filePath = path.join(dir, name);
      const stat = await fsp.stat(filePath);
      files[name] = stat.isFile() ? `${stat.mtimeMs} ${(await fsp.readFile(filePath)).toString('base64')}` : 'not a file';
    }
    return files;
  }

  beforeEach(async () => {
    dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'oauth2-secret-'));
    generated = randomBytes(32).toString('hex');
  });
  afterEach(async () => {
    await fsp.rm(dir, { recursive: true, force: true });
  });

  it('keeps an owner-only copy of the generated secret while it seals the stores', async () => {
    await runOnGeneratedSecret();
    assert.equal(readFileSync(copyPath(), 'utf8').trim(), generated);
    if (posix) assert.equal(statSync(copyPath()).mode & 0o777, 0o600);
  });

  it('credentialSecret set and the generated secret already deleted by Node-RED: re-sealed from the copy, copy deleted', async () => {
    await runOnGeneratedSecret();
    const keys = await storeKeys(dir, settings(NEW_SECRET, undefined));
    assert.equal(keys.secret, NEW_SECRET);
    sealedWith(tokensPath(), NEW_SECRET);
    sealedWith(triggersPath(), NEW_SECRET);
    sealedWith(heldPath(), NEW_SECRET);
    assert.equal(existsSync(copyPath()), false);
    await assertKeptUnder(settings(NEW_SECRET));
  });

  it('no copy yet (an older version ran on the generated secret): re-sealed while Node-RED still holds it', async () => {
    await runOnGeneratedSecret();
    await fsp.unlink(copyPath());
    await storeKeys(dir, settings(NEW_SECRET, generated));
    sealedWith(tokensPath(), NEW_SECRET);
    sealedWith(triggersPath(), NEW_SECRET);
    await assertKeptUnder(settings(NEW_SECRET));
  });

  it('re-sealed when the module loads, before any store opens (a deploy may delete the generated secret first)', async () => {
    await runOnGeneratedSecret();
    await fsp.unlink(copyPath());
    await migrateEarly(dir, settings(NEW_SECRET, generated));
    sealedWith(tokensPath(), NEW_SECRET);
    sealedWith(triggersPath(), NEW_SECRET);
    // Nothing to migrate, or the secret not known yet (a new user directory): nothing happens.
    await migrateEarly(dir, settings(undefined, undefined));
    assert.equal(existsSync(path.join(dir, STORE_KEY_FILE)), false);
  });

  it('credentialSecret: false after the generated secret: re-sealed with the owner-only key file', async () => {
    await runOnGeneratedSecret();
    const keys = await storeKeys(dir, settings(false, undefined));
    assert.equal(readFileSync(path.join(dir, STORE_KEY_FILE), 'utf8').trim(), keys.secret);
    sealedWith(tokensPath(), keys.secret);
    sealedWith(triggersPath(), keys.secret);
    assert.equal(existsSync(copyPath()), false);
    await assertKeptUnder(settings(false));
  });

  it('the key file of a credentialSecret: false instance is re-sealed from and deleted once credentialSecret is set', async () => {
    const before = await openStores(settings(false));
    await before.tokens.set('conn1', entry(1));
    await before.triggers.set('trig1', state(1));
    await before.held.add('req1', HELD);
    await storeKeys(dir, settings(NEW_SECRET));
    sealedWith(tokensPath(), NEW_SECRET);
    sealedWith(heldPath(), NEW_SECRET);
    assert.equal(existsSync(path.join(dir, STORE_KEY_FILE)), false);
    await assertKeptUnder(settings(NEW_SECRET));
  });

  it('a crash between two files: the next start re-seals the rest, the old secret kept until then', async () => {
    await runOnGeneratedSecret();
    // As a crash leaves it after the token file was replaced and before the trigger file was: the token file
    // (and its journal, written first on an update) under the new secret, the trigger file under the old.
    const tokensDoc = sealedWith(tokensPath(), generated);
    await fsp.writeFile(tokensPath(), sealJson(tokensDoc, NEW_SECRET));
    await fsp.writeFile(journalPath(tokensPath()), sealJson(tokensDoc, NEW_SECRET));
    // ... and a temp file of the trigger file's replacement, cut short.
    const half = sealJson(sealedWith(triggersPath(), generated), NEW_SECRET);
    await fsp.writeFile(path.join(dir, `.${TRIGGER_STORE_FILE}.${process.pid}.0123456789ab.tmp`), half.subarray(0, half.length / 2));
    assert.ok(existsSync(copyPath()));

    await assertKeptUnder(settings(NEW_SECRET));
    sealedWith(triggersPath(), NEW_SECRET);
    assert.equal(existsSync(copyPath()), false);
    assert.deepEqual((await fsp.readdir(dir)).filter((n) => n.endsWith('.tmp')), []);
  });

  it('a crash before the copy was deleted: everything opens, the copy goes at the next start', async () => {
    await runOnGeneratedSecret();
    for (const filePath of [tokensPath(), triggersPath()]) await fsp.writeFile(filePath, sealJson(sealedWith(filePath, generated), NEW_SECRET));
    await assertKeptUnder(settings(NEW_SECRET));
    assert.equal(existsSync(copyPath()), false);
  });

  it('credentialSecret changed from one value to another: files left untouched, and the old value opens them again', async () => {
    const first = await openStores(settings('first-explicit-secret'));
    await first.tokens.set('conn1', entry(1));
    await first.triggers.set('trig1', state(1));
    const bytes = [readFileSync(tokensPath()), readFileSync(triggersPath())];
    assert.deepEqual(await storeKeys(dir, settings(NEW_SECRET)), { secret: NEW_SECRET, fallbackSecrets: [] });
    await assert.rejects(openFileTokenStore({ filePath: tokensPath(), secret: NEW_SECRET }), /left untouched/);
    await assert.rejects(openTriggerStateStore({ filePath: triggersPath(), secret: NEW_SECRET }), /left untouched/);
    assert.deepEqual([readFileSync(tokensPath()), readFileSync(triggersPath())], bytes);
    const back = await openStores(settings('first-explicit-secret'));
    assert.deepEqual(await back.tokens.get('conn1'), entry(1));
  });

  it('a file no known secret opens keeps no old secret (none opens it); the others are re-sealed', async () => {
    await runOnGeneratedSecret();
    const foreign = sealJson({ version: 1, triggers: {} }, 'some-other-secret');
    await fsp.writeFile(triggersPath(), foreign);
    await storeKeys(dir, settings(NEW_SECRET));
    sealedWith(tokensPath(), NEW_SECRET);
    assert.deepEqual(readFileSync(triggersPath()), foreign, 'left as it is');
    assert.equal(existsSync(copyPath()), false);
  });

  it('a journal torn by a power loss keeps no old secret either: the token store discards it and opens', async () => {
    await runOnGeneratedSecret();
    const half = sealJson(sealedWith(tokensPath(), generated), generated);
    await fsp.writeFile(journalPath(tokensPath()), half.subarray(0, half.length - 5));
    await storeKeys(dir, settings(NEW_SECRET));
    assert.equal(existsSync(copyPath()), false);
    await assertKeptUnder(settings(NEW_SECRET));
    assert.equal(existsSync(journalPath(tokensPath())), false);
  });

  it('a file that cannot be read now keeps the generated secret known, even once Node-RED deleted its own', async () => {
    await runOnGeneratedSecret();
    await fsp.unlink(copyPath()); // an older version kept no copy: only Node-RED still holds the secret
    const putBack = await failingToRead(triggersPath());
    await storeKeys(dir, settings(NEW_SECRET, generated));
    sealedWith(tokensPath(), NEW_SECRET);
    assert.equal(readFileSync(copyPath(), 'utf8').trim(), generated);
    await putBack();
    await nextStart(); // after a deploy: Node-RED has deleted its generated secret
    await assertKeptUnder(settings(NEW_SECRET));
    sealedWith(triggersPath(), NEW_SECRET);
    assert.equal(existsSync(copyPath()), false);
  });

  it('.config.runtime.json generated again while a file cannot be read: the copy keeps the older generated secret too', async () => {
    await runOnGeneratedSecret();
    const regenerated = randomBytes(32).toString('hex');
    const putBack = await failingToRead(triggersPath());
    const keys = await storeKeys(dir, settings(undefined, regenerated));
    assert.deepEqual(keys, { secret: regenerated, fallbackSecrets: [generated] });
    sealedWith(tokensPath(), regenerated);
    assert.deepEqual(readFileSync(copyPath(), 'utf8').trim().split('\n'), [regenerated, generated]);
    await putBack();
    await nextStart();
    await assertKeptUnder(settings(undefined, regenerated));
    sealedWith(triggersPath(), regenerated);
    assert.equal(readFileSync(copyPath(), 'utf8').trim(), regenerated);
  });

  it('a store opening after the other is open and writing re-seals nothing but its own file', async () => {
    await runOnGeneratedSecret();
    const putBack = await failingToRead(triggersPath());
    const tokens = await openFileTokenStore({ filePath: tokensPath(), ...(await storeKeys(dir, settings(NEW_SECRET, generated))) });
    await putBack(); // the trigger file, still sealed with the generated secret, readable again
    await tokens.set('conn1', entry(2)); // a rotated refresh token
    await tokens.flush();
    const before = await snapshot();
    const keys = await storeKeys(dir, settings(NEW_SECRET, generated));
    assert.deepEqual(await snapshot(), before, 'no file rewritten while the token store is open');
    const triggers = await openTriggerStateStore({ filePath: triggersPath(), ...keys });
    // The trigger store opened its file with the old secret and re-sealed it with the new one itself.
    sealedWith(triggersPath(), NEW_SECRET);
    assert.deepEqual(await triggers.get('trig1'), state(1));
    assert.deepEqual(sealedWith(tokensPath(), NEW_SECRET), { version: 1, connections: { conn1: entry(2) } });
    assert.ok(existsSync(copyPath()), 'kept until a start finds every file sealed with the new secret');
    await nextStart();
    await storeKeys(dir, settings(NEW_SECRET));
    assert.equal(existsSync(copyPath()), false);
  });

  it('two stores opening at once share one migration', async () => {
    await runOnGeneratedSecret();
    const [a, b] = await Promise.all([storeKeys(dir, settings(NEW_SECRET)), storeKeys(dir, settings(NEW_SECRET))]);
    assert.equal(a, b);
    await assertKeptUnder(settings(NEW_SECRET));
  });

  it('resealFile: never writes the content in clear, and says what it found', async () => {
    const filePath = path.join(dir, 'file');
    assert.equal(await resealFile(filePath, NEW_SECRET, ['old']), 'absent');
    await fsp.writeFile(filePath, sealJson({ secret: 'CLEARTEXT-VALUE' }, 'old'));
    assert.equal(await resealFile(filePath, NEW_SECRET, ['unrelated', 'old']), 'resealed');
    assert.equal(await resealFile(filePath, NEW_SECRET, ['old']), 'current');
    assert.doesNotMatch(readFileSync(filePath).toString('latin1'), /CLEARTEXT/);
    assert.deepEqual(openJson(readFileSync(filePath), NEW_SECRET), { secret: 'CLEARTEXT-VALUE' });
    assert.equal(await resealFile(filePath, 'third', ['old']), 'unreadable');
  });
});
