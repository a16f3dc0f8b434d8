import assert from 'node:assert/strict';
import type { SessionData } from 'express-session';
import { BoundedMemorySessionStore } from '../../../nodes/lib/login/session-store';

function sessionData(extra: Record<string, unknown> = {}, expires?: Date): SessionData {
  return { cookie: { originalMaxAge: null, expires, httpOnly: true, path: '/' }, ...extra } as unknown as SessionData;
}

function call<T>(fn: (cb: (err: unknown, value?: T) => void) => void): Promise<T | undefined> {
  return new Promise((resolve, reject) => fn((err, value) => (err ? reject(err) : resolve(value))));
}

describe('login/session-store', () => {
  let clock: number;
  let store: BoundedMemorySessionStore;
  beforeEach(() => {
    clock = 5_000_000;
    store = new BoundedMemorySessionStore({ now: () => clock, ttlMs: 60_000, maxEntries: 3 });
  });
  afterEach(() => store.close());

  const get = (sid: string) => call<SessionData | null>((cb) => store.get(sid, cb));
  const set = (sid: string, data: SessionData) => call<void>((cb) => store.set(sid, data, cb));
  const length = () => call<number>((cb) => store.length(cb));

  it('stores copies, gets, destroys and clears', async () => {
    const data = sessionData({ user: 'alice' });
    await set('a', data);
    (data as unknown as Record<string, unknown>).user = 'mallory';
    assert.equal(((await get('a')) as unknown as Record<string, unknown>).user, 'alice');
    await call<void>((cb) => store.destroy('a', cb));
    assert.equal(await get('a'), null);
    await set('b', sessionData());
    await call<void>((cb) => store.clear(cb));
    assert.equal(await length(), 0);
  });

  it('expires sessions after the idle TTL; touch renews it', async () => {
    await set('a', sessionData());
    await set('b', sessionData());
    clock += 50_000;
    await new Promise<void>((resolve) => store.touch('a', sessionData(), () => resolve()));
    clock += 20_000;
    assert.notEqual(await get('a'), null);
    assert.equal(await get('b'), null);
    clock += 60_000;
    assert.equal(await get('a'), null);
  });

  it('honours a cookie expiry shorter than the TTL', async () => {
    await set('a', sessionData({}, new Date(clock + 1000)));
    clock += 1000;
    assert.equal(await get('a'), null);
  });

  it('evicts the least recently used session beyond its bound', async () => {
    await set('a', sessionData());
    await set('b', sessionData());
    await set('c', sessionData());
    await get('a'); // a is now the most recently used
    await set('d', sessionData());
    assert.equal(await length(), 3);
    assert.equal(await get('b'), null);
    assert.notEqual(await get('a'), null);
    assert.notEqual(await get('c'), null);
    assert.notEqual(await get('d'), null);
  });

  it('sweeps expired sessions and lists live ones', async () => {
    await set('a', sessionData());
    clock += 61_000;
    await set('b', sessionData());
    store.sweep();
    const all = await call<Record<string, SessionData>>((cb) => store.all(cb));
    assert.deepEqual(Object.keys(all ?? {}), ['b']);
  });

  it('works as express-session store (instanceof Store, unref\'d timer)', async () => {
    const session = (await import('express-session')).default;
    assert.ok(store instanceof session.Store);
    assert.equal((store as unknown as { entries: { timer: NodeJS.Timeout } }).entries.timer.hasRef(), false);
  });
});
