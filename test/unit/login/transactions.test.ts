import assert from 'node:assert/strict';
import { LoginTransactionStore, type LoginTransactionInput } from '../../../nodes/lib/login/transactions';

function input(overrides: Partial<LoginTransactionInput> = {}): LoginTransactionInput {
  return {
    connectionId: 'conn-1',
    sessionId: 'session-a',
    redirectUri: 'http://127.0.0.1:1880/oauth2-connection/callback',
    codeVerifier: 'verifier-xyz',
    nonce: 'nonce-1',
    issuer: 'https://idp.example',
    issRequired: true,
    ...overrides,
  };
}

describe('login/transactions', () => {
  let clock: number;
  let store: LoginTransactionStore;
  beforeEach(() => {
    clock = 1_000_000;
    store = new LoginTransactionStore({ now: () => clock });
  });
  afterEach(() => store.close());

  it('returns the transaction once, then never again', () => {
    const { state, expiresAt } = store.begin(input({ extra: { scopes: ['openid'] } }));
    assert.match(state, /^[A-Za-z0-9_-]{43}$/);
    assert.equal(expiresAt, clock + 10 * 60_000);
    const t = store.consume(state, 'session-a');
    assert.equal(t.connectionId, 'conn-1');
    assert.equal(t.codeVerifier, 'verifier-xyz');
    assert.deepEqual(t.extra, { scopes: ['openid'] });
    assert.equal(t.state, state);
    assert.throws(() => store.consume(state, 'session-a'), { code: 'OAUTH2_INVALID_STATE', params: { reason: 'unknown' } });
  });

  it('gives every login its own state', () => {
    const a = store.begin(input()).state;
    const b = store.begin(input()).state;
    assert.notEqual(a, b);
  });

  it('expires after ten minutes (injected clock)', () => {
    const { state } = store.begin(input());
    clock += 10 * 60_000 - 1;
    assert.equal(store.consume(state, 'session-a').state, state);
    const late = store.begin(input()).state;
    clock += 10 * 60_000;
    assert.throws(() => store.consume(late, 'session-a'), { code: 'OAUTH2_INVALID_STATE', params: { reason: 'expired' } });
    // expired and tried once: gone
    assert.throws(() => store.consume(late, 'session-a'), { code: 'OAUTH2_INVALID_STATE', params: { reason: 'unknown' } });
  });

  it('refuses another session and burns the state', () => {
    const { state } = store.begin(input());
    assert.throws(() => store.consume(state, 'session-b'), { code: 'OAUTH2_INVALID_STATE', params: { reason: 'session' } });
    assert.throws(() => store.consume(state, 'session-a'), { code: 'OAUTH2_INVALID_STATE', params: { reason: 'unknown' } });
    const other = store.begin(input()).state;
    assert.throws(() => store.consume(other, ''), { code: 'OAUTH2_INVALID_STATE' });
  });

  it('refuses missing or non-string states', () => {
    assert.throws(() => store.consume(undefined, 'session-a'), { code: 'OAUTH2_INVALID_STATE', params: { reason: 'missing' } });
    assert.throws(() => store.consume(['x'], 'session-a'), { code: 'OAUTH2_INVALID_STATE' });
    assert.throws(() => store.consume('', 'session-a'), { code: 'OAUTH2_INVALID_STATE' });
  });

  it('stays within its bound by evicting the oldest login', () => {
    const small = new LoginTransactionStore({ maxEntries: 3, now: () => clock });
    try {
      const states = [1, 2, 3, 4].map(() => small.begin(input()).state);
      assert.equal(small.size, 3);
      assert.throws(() => small.consume(states[0], 'session-a'), { code: 'OAUTH2_INVALID_STATE' });
      for (const s of states.slice(1)) assert.equal(small.consume(s, 'session-a').state, s);
    } finally {
      small.close();
    }
  });

  it('sweeps expired logins and never keeps the process alive', () => {
    store.begin(input());
    store.begin(input());
    clock += 11 * 60_000;
    store.sweep();
    assert.equal(store.size, 0);
    const timers = new LoginTransactionStore({ sweepIntervalMs: 10 });
    // unref'd: hasRef() is false on the sweep timer
    const timer = (timers as unknown as { transactions: { timer: NodeJS.Timeout } }).transactions.timer;
    assert.equal(timer.hasRef(), false);
    timers.close();
  });

  it('keeps no secret in its errors', () => {
    const { state } = store.begin(input());
    try {
      store.consume(state, 'session-b');
      assert.fail('should throw');
    } catch (err) {
      const text = `${(err as Error).message} ${JSON.stringify(err)}`;
      assert.ok(!text.includes('verifier-xyz'));
      assert.ok(!text.includes(state));
    }
  });
});
