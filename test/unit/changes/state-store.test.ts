import assert from 'node:assert/strict';
import { promises as fsp, readFileSync, statSync } from 'node:fs';
import * as path from 'node:path';
import { isOAuth2Error } from '../../../nodes/lib/errors';
import { openTriggerStateStore } from '../../../nodes/lib/changes/state-store';
import type { TriggerState } from '../../../nodes/lib/changes/types';
import { openJson } from '../../../nodes/lib/tokens/crypto';
import { EncryptedJsonFile } from '../../../nodes/lib/tokens/file-token-store';
import { SECRET, tempDir } from './support';

function state(n: number): TriggerState {
  return {
    version: 1,
    configKey: 'key',
    initialised: true,
    watermark: 1_700_000_000_000 + n,
    seen: [
      [`person-${n}@example.com`, 'abcdefghijklmnop'],
      ['2', '1700000000000'],
    ],
  };
}

async function rejectsWithStateFailure(promise: Promise<unknown>, pattern?: RegExp): Promise<void> {
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(isOAuth2Error(err, 'OAUTH2_TRIGGER_STATE_FAILED'), String(err));
    assert.doesNotMatch(err.message, /person-|trigger-state-secret/);
    if (pattern) assert.match(err.message, pattern);
    return true;
  });
}

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

  it('persists across reopen; set resolves when the value is on disk', async () => {
    const store = await openTriggerStateStore({ filePath, secret: SECRET });
    assert.equal(await store.get('n1'), undefined);
    await store.set('n1', state(1));
    assert.deepEqual((openJson(readFileSync(filePath), SECRET) as { triggers: Record<string, unknown> }).triggers.n1, state(1));
    await store.set('n2', state(2));
    const reopened = await openTriggerStateStore({ filePath, secret: SECRET });
    assert.deepEqual(await reopened.get('n1'), state(1));
    assert.deepEqual((await reopened.ids()).sort(), ['n1', 'n2']);
  });

  it('is encrypted (no id in the file) and owner-only', async function () {
    const store = await openTriggerStateStore({ filePath, secret: SECRET });
    await store.set('n1', state(1));
    assert.doesNotMatch(readFileSync(filePath).toString('latin1'), /person-1|example\.com|abcdefghijklmnop/);
    if (process.platform === 'win32') this.skip();
    assert.equal(statSync(filePath).mode & 0o777, 0o600);
  });

  it('get and set copy (callers cannot change what is stored)', async () => {
    const store = await openTriggerStateStore({ filePath, secret: SECRET });
    const value = state(1);
    await store.set('n1', value);
    value.seen[0][1] = 'mutated';
    value.seen.push(['x', 'y']);
    const got = await store.get('n1');
    assert.deepEqual(got, state(1));
    got!.seen.length = 0;
    assert.deepEqual(await store.get('n1'), state(1));
  });

  it('delete forgets on disk; ids are plain keys even for odd node ids', async () => {
    const store = await openTriggerStateStore({ filePath, secret: SECRET });
    await store.set('__proto__', state(1));
    await store.set('n2', state(2));
    assert.deepEqual(await store.get('__proto__'), state(1));
    await store.delete('__proto__');
    await store.delete('never-there');
    const reopened = await openTriggerStateStore({ filePath, secret: SECRET });
    assert.deepEqual(await reopened.ids(), ['n2']);
  });

  it('refuses to store a malformed state (it would make the whole file unreadable)', async () => {
    const store = await openTriggerStateStore({ filePath, secret: SECRET });
    const bad = { ...state(1), seen: [['a', 1]] } as unknown as TriggerState;
    await rejectsWithStateFailure(store.set('n1', bad), /malformed/);
    await rejectsWithStateFailure(store.set('n1', { ...state(1), watermark: NaN }));
    assert.equal(await store.get('n1'), undefined);
  });

  it('another secret: OAUTH2_TRIGGER_STATE_FAILED, file left untouched; a fallback secret opens it', async () => {
    const store = await openTriggerStateStore({ filePath, secret: SECRET });
    await store.set('n1', state(1));
    const before = readFileSync(filePath);
    await rejectsWithStateFailure(openTriggerStateStore({ filePath, secret: 'other' }), /cannot be decrypted/);
    assert.deepEqual(readFileSync(filePath), before);
    const migrated = await openTriggerStateStore({ filePath, secret: 'new', fallbackSecrets: [SECRET] });
    assert.deepEqual(await migrated.get('n1'), state(1));
    assert.deepEqual(await (await openTriggerStateStore({ filePath, secret: 'new' })).get('n1'), state(1));
  });

  it('a failed write rejects with OAUTH2_TRIGGER_STATE_FAILED, keeps the state in memory, and the next write carries it', async () => {
    const store = await openTriggerStateStore({ filePath, secret: SECRET });
    await store.set('n1', state(1));
    await fsp.rm(dir, { recursive: true, force: true });
    await rejectsWithStateFailure(store.set('n1', state(2)), /cannot write/);
    assert.deepEqual(await store.get('n1'), state(2));
    await fsp.mkdir(dir, { recursive: true });
    await store.set('n3', state(3));
    const reopened = await openTriggerStateStore({ filePath, secret: SECRET });
    assert.deepEqual(await reopened.get('n1'), state(2));
  });

  it('a stored entry in an unknown format is an error for that trigger only', async () => {
    const store = await openTriggerStateStore({ filePath, secret: SECRET });
    await store.set('ok', state(1));
    // Only reachable through a newer version's file; write one the way the file layer would.
    const file = await EncryptedJsonFile.open<{ version: 1; triggers: Record<string, unknown> }>({
      filePath,
      secret: SECRET,
      defaultData: () => ({ version: 1, triggers: {} }),
      isValid: (_d): _d is { version: 1; triggers: Record<string, unknown> } => true,
      label: 'test',
    });
    await file.update((d) => {
      d.triggers.future = { version: 2 };
    });
    const reopened = await openTriggerStateStore({ filePath, secret: SECRET });
    await rejectsWithStateFailure(reopened.get('future'), /reset the trigger/);
    assert.deepEqual(await reopened.get('ok'), state(1));
    await reopened.delete('future');
    assert.equal(await reopened.get('future'), undefined);
  });
});
