import assert from 'node:assert/strict';
import { TokenManager } from '../../../nodes/lib/tokens/token-manager';
import type { CredentialTarget, TokenSet } from '../../../nodes/lib/types';
import { RecordingTokenStore, ScriptedTokenEndpoint, makeTokens } from './support/scripted-token-endpoint';

const ID = 'conn-relogin';
const target: CredentialTarget = { clientId: 'c', authMethod: 'client_secret_basic', tokenEndpoint: 'https://oauth2.example/token', authorizationEndpoint: 'https://accounts.example/auth' };

describe('tokens/relogin: a new login keeps what the provider did not resend', () => {
  async function relogin(previous: Partial<TokenSet>, login: Partial<TokenSet>): Promise<TokenSet | undefined> {
    const now = 1_700_000_000_000;
    const store = new RecordingTokenStore([]);
    const manager = new TokenManager({ connectionId: ID, grant: 'authorization_code', client: new ScriptedTokenEndpoint([], () => now), store, skewMs: 60_000, now: () => now, target });
    try {
      store.data.set(ID, { tokens: makeTokens(now, { refreshToken: 'rt-first-consent', subject: 'alice', issuedTo: target, ...previous }), updatedAt: now });
      await manager.init();
      const { refreshToken: _none, ...withoutRefresh } = makeTokens(now, { accessToken: 'at-second-login', subject: 'alice', issuedTo: target });
      await manager.setTokens({ ...withoutRefresh, ...login });
      return (await store.get(ID))?.tokens;
    } finally {
      manager.close();
    }
  }

  it('a second login without a refresh token (Google without prompt=consent) keeps the first one', async () => {
    const stored = await relogin({}, {});
    assert.equal(stored?.accessToken, 'at-second-login');
    assert.equal(stored?.refreshToken, 'rt-first-consent');
  });

  it('keeps it when either login names no subject', async () => {
    assert.equal((await relogin({ subject: undefined }, {}))?.refreshToken, 'rt-first-consent');
  });

  it('a refresh token the login did send wins', async () => {
    assert.equal((await relogin({}, { refreshToken: 'rt-new' }))?.refreshToken, 'rt-new');
  });

  it('another account, or another client or endpoint: nothing is kept', async () => {
    assert.equal((await relogin({}, { subject: 'bob' }))?.refreshToken, undefined);
    assert.equal((await relogin({ issuedTo: { ...target, clientId: 'other' } }, {}))?.refreshToken, undefined);
    assert.equal((await relogin({ issuedTo: { ...target, tokenEndpoint: 'https://elsewhere.example/token' } }, {}))?.refreshToken, undefined);
    assert.equal((await relogin({ issuedTo: undefined }, {}))?.refreshToken, undefined);
  });
});
