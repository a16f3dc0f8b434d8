import assert from 'node:assert/strict';
import { DEFAULT_RECORD_PROPERTIES, findRecords, readPath } from '../../../nodes/lib/http/records';

describe('http/records', () => {
  describe('findRecords: defaults', () => {
    it('is the body itself when the body is an array', () => {
      const body = [{ id: 1 }];
      assert.equal(findRecords(body), body);
      assert.equal(findRecords(body, ''), body);
      assert.equal(findRecords(body, '   '), body, 'a blank path is the default');
    });

    it('tries data, items, results, records, value in that order, skipping what is not an array', () => {
      assert.deepEqual(DEFAULT_RECORD_PROPERTIES, ['data', 'items', 'results', 'records', 'value']);
      const items = [2];
      assert.equal(findRecords({ data: { nested: [1] }, items, results: [3] }), items);
      assert.deepEqual(findRecords({ value: [5], records: [4] }), [4]);
      assert.deepEqual(findRecords({ value: [5] }), [5], 'Microsoft Graph / OData');
      assert.deepEqual(findRecords({ results: [] }), [], 'an empty list is found (it ends a pagination)');
    });

    it('is undefined when nothing fits: no list, a string body, null, a number', () => {
      for (const body of [{ data: 'x', items: {} }, '[1,2]', null, undefined, 42, { other: [1] }]) {
        assert.equal(findRecords(body), undefined, JSON.stringify(body));
      }
    });

    it('reads own properties only: an inherited data list is not found', () => {
      const body = Object.create({ data: [1] }) as object;
      assert.equal(findRecords(body), undefined);
    });
  });

  describe('findRecords: a path', () => {
    it('reads a dot path, with array indexes', () => {
      const body = { response: { pages: [{ list: [{ id: 9 }] }] }, data: [1] };
      assert.deepEqual(findRecords(body, 'response.pages.0.list'), [{ id: 9 }]);
      assert.deepEqual(findRecords(body, ' response.pages.0.list '), [{ id: 9 }], 'trimmed');
    });

    it('is undefined when the path is missing or is not an array (no fall back to the defaults)', () => {
      const body = { data: [1], meta: { count: 1 } };
      assert.equal(findRecords(body, 'meta'), undefined);
      assert.equal(findRecords(body, 'meta.count'), undefined);
      assert.equal(findRecords(body, 'nothing.here'), undefined);
    });

    it('refuses the prototype chain, even where the body has an own __proto__ key', () => {
      const body = JSON.parse('{"__proto__": [1], "a": {"constructor": {"prototype": [2]}}}') as unknown;
      for (const path of ['__proto__', 'a.constructor.prototype', 'a.constructor', 'constructor', 'prototype', 'data.__proto__']) {
        assert.equal(findRecords(body, path), undefined, path);
      }
      assert.equal(findRecords([], 'constructor.prototype'), undefined, 'Array.prototype is not a list of records');
    });
  });

  describe('readPath', () => {
    it("'' is the value itself", () => {
      const v = { a: 1 };
      assert.equal(readPath(v, ''), v);
    });

    it('reads nested objects and arrays', () => {
      assert.equal(readPath({ a: { b: [{ c: 'x' }] } }, 'a.b.0.c'), 'x');
      assert.equal(readPath([[1, 2]], '0.1'), 2);
      assert.equal(readPath({ a: { b: 0 } }, 'a.b'), 0);
      assert.equal(readPath({ a: { b: null } }, 'a.b'), null);
      assert.equal(readPath({ a: { b: false } }, 'a.b'), false);
    });

    it('finds a key that holds dots (@odata.nextLink), the longest matching key first', () => {
      assert.equal(readPath({ '@odata.nextLink': 'https://graph/next' }, '@odata.nextLink'), 'https://graph/next');
      assert.equal(readPath({ a: { 'b.c': 1, b: { c: 2 } } }, 'a.b.c'), 1);
      assert.equal(readPath({ a: { b: { c: 2 } } }, 'a.b.c'), 2);
      assert.equal(readPath({ 'x.y': { z: 3 } }, 'x.y.z'), 3);
    });

    it('reads no inherited or built-in property', () => {
      assert.equal(readPath({}, 'toString'), undefined);
      assert.equal(readPath({}, 'hasOwnProperty'), undefined);
      assert.equal(readPath('text', 'length'), undefined);
    });

    it('refuses __proto__, constructor and prototype anywhere in the path', () => {
      const target = { a: { b: 1 } };
      for (const path of ['__proto__', 'a.__proto__', 'constructor', 'a.constructor.name', 'prototype', '__proto__.polluted']) {
        assert.equal(readPath(target, path), undefined, path);
      }
      // A path containing a forbidden segment is refused even when a dotted key would match it.
      assert.equal(readPath({ 'x.constructor': 1 }, 'x.constructor'), undefined);
      assert.equal(({} as Record<string, unknown>).polluted, undefined);
    });

    it('finds nothing through primitives, an empty segment, or a non-string path', () => {
      assert.equal(readPath({ a: 1 }, 'a.b'), undefined);
      assert.equal(readPath({ a: { b: 1 } }, 'a..b'), undefined);
      assert.equal(readPath({ a: { b: 1 } }, 'a.'), undefined);
      assert.equal(readPath({ a: 1 }, 1 as unknown as string), undefined);
      assert.equal(readPath(null, 'a'), undefined);
    });
  });
});
