import assert from 'node:assert/strict';
import { promises as fsp, readFileSync, statSync } from 'node:fs';
import * as path from 'node:path';
import { openTriggerStateStore } from '../../../nodes/lib/changes/state-store';
import { openJson } from '../../../nodes/lib/sealed/crypto';
import { EncryptedJsonFile } from '../../../nodes/lib/sealed/encrypted-json-file';
import { rejectsWithStateFailure, state, triggerStateStoreContract, type StoreHarness } from './state-store-contract';
import { SECRET, tempDir } from './support';

type Document = { version: 1; triggers: Record<string, unknown> };

describe('changes/state-store', () => {
  let dir: string;
  let filePath: string;

  beforeEach(async () => {
    dir = await tempDir();
    filePath = path.join(dir, 'triggers.db');
  });
  afterEach(async () => {
    await fsp.rm(dir, { recursive: true, force: true });
  });

  const harness = (): StoreHarness => ({
    open: (options = {}) => openTriggerStateStore({ filePath, secret: options.secret ?? SECRET, fallbackSecrets: options.fallbackSecrets }),
    stored: async (nodeId, secret = SECRET) => (openJson(readFileSync(filePath), secret) as Document).triggers[nodeId],
    raw: async () => readFileSync(filePath),
    writeForeign: async (nodeId, value) => {
      // Only reachable through a newer version's file; write one the way the file layer would.
      const file = await EncryptedJsonFile.open<Document>({
        filePath,
        secret: SECRET,
        defaultData: () => ({ version: 1, triggers: {} }),
        isValid: (_d): _d is Document => true,
        label: 'test',
      });
      await file.update((d) => {
        d.triggers[nodeId] = value;
      });
    },
    breakWrites: () => fsp.rm(dir, { recursive: true, force: true }),
    restoreWrites: async () => {
      await fsp.mkdir(dir, { recursive: true });
    },
    writeFailure: /cannot write/,
  });

  describe('the TriggerStateStore contract', () => {
    triggerStateStoreContract(harness);
  });

  it('the file is owner-only', async function () {
    const store = await openTriggerStateStore({ filePath, secret: SECRET });
    await store.set('n1', state(1));
    if (process.platform === 'win32') this.skip();
    assert.equal(statSync(filePath).mode & 0o777, 0o600);
  });

  it('another secret is refused when the file opens; a fallback secret re-seals the file on open', async () => {
    const store = await openTriggerStateStore({ filePath, secret: SECRET });
    await store.set('n1', state(1));
    await rejectsWithStateFailure(openTriggerStateStore({ filePath, secret: 'other' }), /cannot be decrypted/);
    await openTriggerStateStore({ filePath, secret: 'new', fallbackSecrets: [SECRET] });
    assert.deepEqual(await (await openTriggerStateStore({ filePath, secret: 'new' })).get('n1'), state(1));
  });
});
