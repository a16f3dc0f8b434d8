import { strict as assert } from 'node:assert';
import { ExpiringMap } from '../../../nodes/lib/login/expiring-map';

describe('login/expiring-map', function () {
  let clock = 0;
  const maps: ExpiringMap<string>[] = [];
  const map = (maxEntries = 3): ExpiringMap<string> => {
    const m = new ExpiringMap<string>({ maxEntries, now: () => clock });
    maps.push(m);
    return m;
  };
  beforeEach(() => (clock = 1000));
  afterEach(() => maps.splice(0).forEach((m) => m.close()));

  it('never returns an entry past its expiry, and drops it on sight', function () {
    const m = map();
    m.set('a', 'A', 1500);
    assert.equal(m.get('a'), 'A');
    clock = 1500;
    assert.equal(m.get('a'), undefined);
    assert.equal(m.size, 0);
  });

  it('evicts the oldest by insertion beyond the bound, or the least recently touched', function () {
    const m = map(2);
    m.set('a', 'A', 9999);
    m.set('b', 'B', 9999);
    m.set('c', 'C', 9999);
    assert.deepEqual([...m.live()].map(([k]) => k), ['b', 'c']);
    assert.equal(m.touch('b'), true);
    m.set('d', 'D', 9999);
    assert.deepEqual([...m.live()].map(([k]) => k), ['b', 'd']);
    assert.equal(m.touch('gone'), false);
  });

  it('take removes the entry and tells an expired one from an unknown one', function () {
    const m = map();
    m.set('a', 'A', 1100);
    clock = 1200;
    assert.deepEqual(m.take('a'), { value: 'A', expired: true });
    assert.equal(m.take('a'), undefined);
    m.set('b', 'B', 9999);
    assert.deepEqual(m.take('b'), { value: 'B', expired: false });
  });

  it('sweeps expired entries nobody reads again; its timer never keeps the process alive', function () {
    const m = map();
    m.set('a', 'A', 1100);
    m.set('b', 'B', 9999);
    clock = 1100;
    m.sweep();
    assert.equal(m.size, 1);
    assert.equal((m as unknown as { timer: NodeJS.Timeout }).timer.hasRef(), false);
  });
});
