import assert from 'node:assert/strict';
import { promises as fsp, readFileSync, statSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { isOAuth2Error } from '../../../nodes/lib/errors';
import { openJson, sealJson } from '../../../nodes/lib/sealed/crypto';
import {
  openFileTokenStore,
  tokenStoreFailure,
} from '../../../nodes/lib/tokens/file-token-store';
import { isSealedFileError } from '../../../nodes/lib/sealed/errors';
import { EncryptedJsonFile, writeFileAtomic } from '../../../nodes/lib/sealed/encrypted-json-file';
import { resolveStoreSecret } from '../../../nodes/lib/sealed/store-secret';
import type { StoredTokens } from '../../../nodes/lib/tokens/token-store';
import { SECRET, entry, tokenStoreContract } from './support/token-store-contract';

const posix = process.platform !== 'win32';

function onDisk(filePath: string, secret = SECRET): { version: number; connections: Record<string, StoredTokens> } {
  return openJson(readFileSync(filePath), secret) as { version: number; connections: Record<string, StoredTokens> };
}

describe('tokens/file-token-store', () => {
  let dir: string;
  let filePath: string;

  beforeEach(async () => {
    dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'oauth2-store-'));
    filePath = path.join(dir, 'oauth2-tokens.db');
  });
  afterEach(async () => {
    await fsp.rm(dir, { recursive: true, force: true });
  });

  // The cases every token store passes (the Redis store runs the same ones).
  tokenStoreContract(
    async () => ({
      open: (secret) => openFileTokenStore({ filePath, secret }),
      raw: async () => {
        const names = (await fsp.readdir(dir)).sort();
        const parts = await Promise.all(names.map(async (name) => Buffer.concat([Buffer.from(name), await fsp.readFile(path.join(dir, name))])));
        return Buffer.concat(parts);
      },
      durable: async (id, secret) => onDisk(filePath, secret).connections[id],
      plant: async (kind) => {
        await fsp.writeFile(filePath, kind === 'garbage' ? Buffer.from('this is not a token store') : sealJson({ something: 'else' }, SECRET));
      },
      messages: { otherSecret: /credential secret|left untouched/, garbage: /unknown header/, foreign: /does not hold a token store/ },
    }),
    async () => undefined,
  );

  (posix ? it : it.skip)('the file is owner-only (0o600)', async () => {
    const store = await openFileTokenStore({ filePath, secret: SECRET });
    await store.set('a', entry(1));
    assert.equal(statSync(filePath).mode & 0o777, 0o600);
    // Also when a previous file had wider permissions.
    await fsp.chmod(filePath, 0o644);
    await store.set('a', entry(2));
    assert.equal(statSync(filePath).mode & 0o777, 0o600);
  });

  it('leaves no temp file behind after writes', async () => {
    const store = await openFileTokenStore({ filePath, secret: SECRET });
    await Promise.all(Array.from({ length: 20 }, (_, i) => store.set(`c${i}`, entry(i))));
    await store.flush();
    assert.deepEqual(await fsp.readdir(dir), ['oauth2-tokens.db']);
  });

  it('a crash mid-write (half-written temp file left behind) does not corrupt the store', async () => {
    const store = await openFileTokenStore({ filePath, secret: SECRET });
    await store.set('a', entry(1));
    const half = sealJson({ version: 1, connections: { a: entry(2) } }, SECRET);
    await fsp.writeFile(path.join(dir, `.oauth2-tokens.db.${process.pid}.deadbeef0000.tmp`), half.subarray(0, half.length / 2));
    const reopened = await openFileTokenStore({ filePath, secret: SECRET });
    assert.deepEqual(await reopened.get('a'), entry(1));
    assert.deepEqual(await fsp.readdir(dir), ['oauth2-tokens.db'], 'stale temp file removed');
    await reopened.set('b', entry(3));
    assert.deepEqual(Object.keys(onDisk(filePath).connections).sort(), ['a', 'b']);
  });

  it('opens with a fallback secret and re-seals with the current one', async () => {
    const old = await openFileTokenStore({ filePath, secret: 'generated-secret' });
    await old.set('a', entry(1));
    const store = await openFileTokenStore({ filePath, secret: SECRET, fallbackSecrets: ['generated-secret'] });
    assert.deepEqual(await store.get('a'), entry(1));
    assert.deepEqual(onDisk(filePath, SECRET).connections.a, entry(1));
  });

  it('EncryptedJsonFile is reusable for other documents', async () => {
    type Cursor = { cursors: Record<string, number> };
    const isCursor = (v: unknown): v is Cursor => typeof v === 'object' && v !== null && 'cursors' in v;
    const open = () =>
      EncryptedJsonFile.open<Cursor>({
        filePath: path.join(dir, 'trigger-state.db'),
        secret: SECRET,
        defaultData: () => ({ cursors: {} }),
        isValid: isCursor,
        label: 'trigger state',
      });
    const file = await open();
    await Promise.all([file.update((d) => (d.cursors.x = 1)), file.update((d) => (d.cursors.y = 2))]);
    assert.deepEqual((await open()).data, { cursors: { x: 1, y: 2 } });
  });

  it('writeFileAtomic replaces the content and removes its temp file on failure', async () => {
    await writeFileAtomic(filePath, Buffer.from('one'));
    await writeFileAtomic(filePath, Buffer.from('two'));
    assert.equal(readFileSync(filePath, 'utf8'), 'two');
    await assert.rejects(writeFileAtomic(path.join(dir, 'missing-dir', 'x'), Buffer.from('y')));
    assert.deepEqual(await fsp.readdir(dir), ['oauth2-tokens.db']);
  });

  describe('resolveStoreSecret', () => {
    it('prefers credentialSecret, then the generated secret', () => {
      assert.deepEqual(resolveStoreSecret({ credentialSecret: 'user', generatedSecret: 'gen' }), {
        secret: 'user',
        source: 'credentialSecret',
      });
      assert.deepEqual(resolveStoreSecret({ generatedSecret: 'gen' }), { secret: 'gen', source: 'generated' });
    });

    it('credentialSecret false: a random key in an owner-only key file, stable across calls', () => {
      const keyFilePath = path.join(dir, 'keys', 'oauth2-tokens.key');
      const first = resolveStoreSecret({ credentialSecret: false, generatedSecret: 'ignored', keyFilePath });
      assert.equal(first.source, 'unencrypted-instance');
      assert.match(first.secret, /^[0-9a-f]{64}$/);
      if (posix) assert.equal(statSync(keyFilePath).mode & 0o777, 0o600);
      assert.deepEqual(resolveStoreSecret({ credentialSecret: false, keyFilePath }), first);
    });

    it('no usable secret and no key file path: a typed noSecret failure, OAUTH2_TOKEN_STORE_FAILED in the store\'s words', () => {
      assert.throws(
        () => resolveStoreSecret({ credentialSecret: false }),
        (err: unknown) => isSealedFileError(err) && err.failure === 'noSecret',
      );
      try {
        resolveStoreSecret({ credentialSecret: false });
      } catch (err) {
        const mapped = tokenStoreFailure(err);
        assert.ok(isOAuth2Error(mapped, 'OAUTH2_TOKEN_STORE_FAILED'));
        assert.match(mapped.message, /^Token store: the instance has no credential secret/);
        assert.equal(mapped.params.failure, 'noSecret');
      }
    });

    it('a damaged key file is reported, not replaced', async () => {
      const keyFilePath = path.join(dir, 'bad.key');
      await fsp.writeFile(keyFilePath, 'short');
      assert.throws(
        () => resolveStoreSecret({ credentialSecret: false, keyFilePath }),
        (err: unknown) => isSealedFileError(err) && err.failure === 'foreign' && /damaged/.test(err.message),
      );
      assert.equal(readFileSync(keyFilePath, 'utf8'), 'short');
    });
  });
});
