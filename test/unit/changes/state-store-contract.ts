/**
 * The TriggerStateStore contract (state-store.ts), run against every implementation: the encrypted file
 * (state-store.test.ts) and Redis (test/unit/redis/trigger-store.test.ts). Each implementation gives a harness
 * that opens stores on the same storage and reaches that storage directly (to check what is really stored, and
 * to break it).
 */
import assert from 'node:assert/strict';
import { isOAuth2Error } from '../../../nodes/lib/errors';
import type { TriggerStateStore } from '../../../nodes/lib/changes/state-store';
import type { TriggerState } from '../../../nodes/lib/changes/types';
import { SECRET } from './support';

export interface StoreHarness {
  /** A store on this test's storage (a second call is a "reopen": another process, or a restart). */
  open(options?: { secret?: string; fallbackSecrets?: string[] }): Promise<TriggerStateStore>;
  /** The node's entry as stored, decrypted with `secret` bypassing the store; undefined when absent. */
  stored(nodeId: string, secret?: string): Promise<unknown>;
  /** The raw stored bytes that hold the node's entry (the file, or the Redis value). */
  raw(nodeId: string): Promise<Buffer>;
  /** Stores `value` as the node's entry (sealed with SECRET) the way a newer version could. */
  writeForeign(nodeId: string, value: unknown): Promise<void>;
  /** Makes writes fail (the directory removed / the server stopped) and undoes it. */
  breakWrites(): Promise<void>;
  restoreWrites(): Promise<void>;
  /** What a failed write's message says. */
  writeFailure: RegExp;
}

export function state(n: number): TriggerState {
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

export async function rejectsWithStateFailure(promise: Promise<unknown>, pattern?: RegExp): Promise<void> {
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(isOAuth2Error(err, 'OAUTH2_TRIGGER_STATE_FAILED'), String(err));
    assert.doesNotMatch(err.message, /person-|trigger-state-secret/);
    if (pattern) assert.match(err.message, pattern);
    return true;
  });
}

/** Registers the contract's tests in the current describe(); `harness` is called in each test (after beforeEach). */
export function triggerStateStoreContract(harness: () => StoreHarness): void {
  it('persists across reopen; set resolves when the value is stored', async () => {
    const h = harness();
    const store = await h.open();
    assert.equal(await store.get('n1'), undefined);
    await store.set('n1', state(1));
    assert.deepEqual(await h.stored('n1'), state(1));
    await store.set('n2', state(2));
    const reopened = await h.open();
    assert.deepEqual(await reopened.get('n1'), state(1));
    assert.deepEqual((await reopened.ids()).sort(), ['n1', 'n2']);
  });

  it('is encrypted (no id, no version digest in what is stored)', async () => {
    const h = harness();
    const store = await h.open();
    await store.set('n1', state(1));
    assert.doesNotMatch((await h.raw('n1')).toString('latin1'), /person-1|example\.com|abcdefghijklmnop/);
  });

  it('get and set copy (callers cannot change what is stored)', async () => {
    const store = await harness().open();
    const value = state(1);
    await store.set('n1', value);
    value.seen[0][1] = 'mutated';
    value.seen.push(['x', 'y']);
    const got = await store.get('n1');
    assert.deepEqual(got, state(1));
    got!.seen.length = 0;
    assert.deepEqual(await store.get('n1'), state(1));
  });

  it('delete forgets in storage; ids are plain keys even for odd node ids', async () => {
    const h = harness();
    const store = await h.open();
    await store.set('__proto__', state(1));
    await store.set('n2', state(2));
    assert.deepEqual(await store.get('__proto__'), state(1));
    await store.delete('__proto__');
    await store.delete('never-there');
    const reopened = await h.open();
    assert.deepEqual(await reopened.ids(), ['n2']);
    assert.equal(await reopened.get('__proto__'), undefined);
  });

  it('refuses to store a malformed state (it would make the stored entry unreadable)', async () => {
    const store = await harness().open();
    const bad = { ...state(1), seen: [['a', 1]] } as unknown as TriggerState;
    await rejectsWithStateFailure(store.set('n1', bad), /malformed/);
    await rejectsWithStateFailure(store.set('n1', { ...state(1), watermark: NaN }));
    assert.equal(await store.get('n1'), undefined);
  });

  it('another secret: OAUTH2_TRIGGER_STATE_FAILED, storage left untouched; a fallback secret opens it', async () => {
    const h = harness();
    const store = await h.open();
    await store.set('n1', state(1));
    const before = await h.raw('n1');
    await rejectsWithStateFailure(
      (async () => (await h.open({ secret: 'other-secret-of-16+chars' })).get('n1'))(),
      /cannot be decrypted/,
    );
    assert.deepEqual(await h.raw('n1'), before);
    const migrated = await h.open({ secret: 'new-secret-of-16+chars', fallbackSecrets: [SECRET] });
    assert.deepEqual(await migrated.get('n1'), state(1));
    // Re-sealed with the new secret on the next write.
    await migrated.set('n1', state(1));
    assert.deepEqual(await (await h.open({ secret: 'new-secret-of-16+chars' })).get('n1'), state(1));
  });

  it('a failed write rejects with OAUTH2_TRIGGER_STATE_FAILED, keeps the state in memory, and the next write carries it', async () => {
    const h = harness();
    const store = await h.open();
    await store.set('n1', state(1));
    await h.breakWrites();
    await rejectsWithStateFailure(store.set('n1', state(2)), h.writeFailure);
    assert.deepEqual(await store.get('n1'), state(2));
    await h.restoreWrites();
    await store.set('n3', state(3));
    const reopened = await h.open();
    assert.deepEqual(await reopened.get('n1'), state(2));
  });

  it('a stored entry in an unknown format is an error for that trigger only', async () => {
    const h = harness();
    const store = await h.open();
    await store.set('ok', state(1));
    await h.writeForeign('future', { version: 2 });
    const reopened = await h.open();
    await rejectsWithStateFailure(reopened.get('future'), /reset the trigger/);
    assert.deepEqual(await reopened.get('ok'), state(1));
    await reopened.delete('future');
    assert.equal(await reopened.get('future'), undefined);
  });

  it('flush resolves after every write so far, and never rejects', async () => {
    const h = harness();
    const store = await h.open();
    const writes = [store.set('n1', state(1)), store.set('n2', state(2)), store.delete('n1')];
    await store.flush();
    await Promise.all(writes);
    assert.equal(await h.stored('n1'), undefined);
    assert.deepEqual(await h.stored('n2'), state(2));
  });
}
