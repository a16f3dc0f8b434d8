import assert from 'node:assert/strict';
import { changeKey } from '../../../nodes/lib/changes/change-key';
import type { ChangeDetection, DetectedChange } from '../../../nodes/lib/changes/types';

/** msg.changeKey (change-key.ts): the same for the same change sent again, another for any other change. */
describe('changes/change-key', () => {
  const updatedAt: ChangeDetection = { kind: 'updatedAt', path: 'updated_at' };
  const version: ChangeDetection = { kind: 'version', path: 'rev' };
  const change = (over: Partial<DetectedChange>): DetectedChange => ({ event: 'updated', id: '7', record: { id: 7, name: 'a' }, version: '1000', ...over });

  it('the same change gives the same key, whatever the event name or key order of the record', () => {
    const a = changeKey(change({}), updatedAt, undefined);
    assert.match(a, /^[A-Za-z0-9_-]{22}$/);
    assert.equal(changeKey(change({ record: { name: 'a', id: 7 } }), updatedAt, undefined), a);
    // A record forgotten (Remember at most) and seen again is sent as created with the same version: the same change.
    assert.equal(changeKey(change({ event: 'created' }), updatedAt, undefined), a);
  });

  it('another version, another id, or (updated-at) another content within the same second: another key', () => {
    const a = changeKey(change({}), updatedAt, undefined);
    assert.notEqual(changeKey(change({ version: '2000' }), updatedAt, undefined), a);
    assert.notEqual(changeKey(change({ id: '8' }), updatedAt, undefined), a);
    assert.notEqual(changeKey(change({ record: { id: 7, name: 'b' } }), updatedAt, undefined), a, 'a same-second update');
    // A version or ETag names the change by itself.
    assert.equal(changeKey(change({ record: { id: 7, name: 'b' } }), version, undefined), changeKey(change({}), version, undefined));
  });

  it('deleted: keyed by the id and the entry remembered before, so a record deleted twice is two deletions', () => {
    const deleted = change({ event: 'deleted', record: { id: '7' }, version: undefined });
    const first = changeKey(deleted, updatedAt, 'v1-digest');
    assert.equal(changeKey(deleted, updatedAt, 'v1-digest'), first);
    assert.notEqual(changeKey(deleted, updatedAt, 'v2-digest'), first);
    assert.notEqual(first, changeKey(change({}), updatedAt, undefined));
  });
});
