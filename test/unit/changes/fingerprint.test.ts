import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  FINGERPRINT_LENGTH,
  fingerprint,
  previousVersion,
  readRecord,
  recordId,
  recordVersion,
  rememberedVersion,
  stableStringify,
} from '../../../nodes/lib/changes/fingerprint';

describe('changes/fingerprint', () => {
  describe('stableStringify', () => {
    it('does not depend on key order, at any depth', () => {
      const a = { b: 1, a: { y: [1, { q: 1, p: 2 }], x: 'x' } };
      const b = { a: { x: 'x', y: [1, { p: 2, q: 1 }] }, b: 1 };
      assert.equal(stableStringify(a), stableStringify(b));
      assert.equal(stableStringify(a), '{"a":{"x":"x","y":[1,{"p":2,"q":1}]},"b":1}');
    });

    it('keeps array order', () => {
      assert.notEqual(stableStringify([1, 2]), stableStringify([2, 1]));
    });

    it('leaves out undefined like JSON.stringify (null inside arrays)', () => {
      assert.equal(stableStringify({ a: undefined, b: 1, c: () => 1 }), '{"b":1}');
      assert.equal(stableStringify({ a: undefined }), '{}');
      assert.equal(stableStringify([undefined, 1]), '[null,1]');
      assert.equal(stableStringify({ a: 1, b: undefined }), '{"a":1}');
    });

    it('follows JSON for dates, non-finite numbers and strings', () => {
      assert.equal(stableStringify({ d: new Date(0), n: NaN, s: 'é"\n' }), `{"d":"1970-01-01T00:00:00.000Z","n":null,"s":${JSON.stringify('é"\n')}}`);
    });

    it('is valid JSON of the same value, whatever the key order (property)', () => {
      // Rebuilds every object with its keys in reverse insertion order (integer-like keys aside, which objects
      // always enumerate first): a different order, the same value.
      const reorder = (v: unknown): unknown => {
        if (Array.isArray(v)) return v.map(reorder);
        if (v === null || typeof v !== 'object') return v;
        const out: Record<string, unknown> = {};
        for (const k of Object.keys(v).reverse()) Object.defineProperty(out, k, { value: reorder((v as Record<string, unknown>)[k]), enumerable: true });
        return out;
      };
      fc.assert(
        fc.property(fc.jsonValue(), (value) => {
          const text = stableStringify(value);
          assert.deepEqual(JSON.parse(text), JSON.parse(JSON.stringify(value)));
          assert.equal(stableStringify(reorder(value)), text);
        }),
        { numRuns: 300 },
      );
    });

    it('a cycle throws', () => {
      const a: Record<string, unknown> = {};
      a.self = a;
      assert.throws(() => stableStringify(a), TypeError);
    });
  });

  describe('fingerprint', () => {
    it('is 16 base64url characters, deterministic, and differs for different input', () => {
      const f = fingerprint('hello');
      assert.equal(f.length, FINGERPRINT_LENGTH);
      assert.match(f, /^[A-Za-z0-9_-]{16}$/);
      assert.equal(fingerprint('hello'), f);
      assert.notEqual(fingerprint('hello!'), f);
      assert.equal(fingerprint('x'.repeat(100_000)).length, 16);
    });
  });

  describe('recordId / recordVersion', () => {
    const updatedAt = { kind: 'updatedAt', path: 'meta.updated' } as const;

    it('reads string and number ids at a dot path; others are skipped', () => {
      assert.equal(recordId({ id: 'a' }, 'id'), 'a');
      assert.equal(recordId({ id: 7 }, 'id'), '7');
      assert.equal(recordId({ data: { key: 'k' } }, 'data.key'), 'k');
      for (const bad of [{}, { id: '' }, { id: null }, { id: NaN }, { id: { x: 1 } }, { id: true }, null, 'str']) {
        assert.equal(recordId(bad, 'id'), undefined, JSON.stringify(bad));
      }
      assert.equal(recordId({}, '__proto__'), undefined);
    });

    it('updatedAt: the normalised ms as a decimal string', () => {
      assert.deepEqual(recordVersion({ id: 1, meta: { updated: '2024-05-01T00:00:00Z' } }, updatedAt, 'id'), {
        id: '1',
        version: String(Date.UTC(2024, 4, 1)),
      });
      assert.deepEqual(recordVersion({ id: 1, meta: { updated: 1714521600 } }, updatedAt, 'id'), { id: '1', version: String(Date.UTC(2024, 4, 1)) });
    });

    it('tells "no id" from "invalid version"', () => {
      assert.deepEqual(readRecord({ meta: { updated: 1 } }, updatedAt, 'id'), { skip: 'noId' });
      assert.deepEqual(readRecord({ id: 'a', meta: { updated: 'soon' } }, updatedAt, 'id'), { skip: 'invalidVersion', id: 'a' });
      assert.equal(recordVersion({ id: 'a', meta: { updated: 'soon' } }, updatedAt, 'id'), undefined);
    });

    it('version: String(value), ETags as they are', () => {
      const version = { kind: 'version', path: 'etag' } as const;
      assert.deepEqual(recordVersion({ id: 'a', etag: 'W/"abc"' }, version, 'id'), { id: 'a', version: 'W/"abc"' });
      assert.deepEqual(recordVersion({ id: 'a', etag: 3 }, version, 'id'), { id: 'a', version: '3' });
      for (const bad of [undefined, null, '', { v: 1 }]) assert.equal(recordVersion({ id: 'a', etag: bad }, version, 'id'), undefined);
    });

    it('hash: independent of key order, changes with content', () => {
      const hash = { kind: 'hash' } as const;
      const a = recordVersion({ id: 1, name: 'x', tags: ['a', 'b'] }, hash, 'id');
      const b = recordVersion({ tags: ['a', 'b'], name: 'x', id: 1 }, hash, 'id');
      const c = recordVersion({ tags: ['b', 'a'], name: 'x', id: 1 }, hash, 'id');
      assert.deepEqual(a, b);
      assert.notDeepEqual(a, c);
      assert.equal(a?.version.length, 16);
    });
  });

  describe('rememberedVersion / previousVersion', () => {
    it('keeps short version values readable and digests long ones, 16 characters at most', () => {
      const version = { kind: 'version', path: 'v' } as const;
      assert.equal(rememberedVersion('17', version), '=17');
      assert.equal(previousVersion(rememberedVersion('17', version), version), '17');
      const etag = '"33a64df551425fcc55e4d42a148795d9f25f89d4"';
      const remembered = rememberedVersion(etag, version);
      assert.equal(remembered.length, 16);
      assert.equal(previousVersion(remembered, version), undefined);
      assert.notEqual(remembered, rememberedVersion(`${etag}x`, version));
    });

    it('updatedAt and hash versions are kept as they are', () => {
      assert.equal(rememberedVersion('1714521600000', { kind: 'updatedAt', path: 'u' }), '1714521600000');
      assert.equal(rememberedVersion('abcdefghijklmnop', { kind: 'hash' }), 'abcdefghijklmnop');
    });
  });
});
