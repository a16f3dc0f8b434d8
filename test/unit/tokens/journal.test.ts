import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { journalPath } from '../../../nodes/lib/sealed/encrypted-json-file';
import { openFileTokenStore } from '../../../nodes/lib/tokens/file-token-store';
import type { StoredTokens } from '../../../nodes/lib/tokens/token-store';

const SECRET = 'journal-test-secret';

function entry(n: number): StoredTokens {
  return {
    tokens: {
      accessToken: `access-${n}-CLEARTEXT`,
      tokenType: 'Bearer',
      refreshToken: `refresh-${n}-CLEARTEXT`,
      expiresAt: 1_700_000_000_000 + n,
      expirySource: 'expires_in',
      scopes: ['read'],
      obtainedAt: 1_700_000_000_000,
    },
    updatedAt: 1_700_000_000_000 + n,
  };
}

/** The user directory as a killed process leaves it at this instant: a copy of the store and its journal. */
function snapshot(filePath: string): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'token-journal-snap-'));
  const copy = path.join(dir, path.basename(filePath));
  if (existsSync(filePath)) copyFileSync(filePath, copy);
  if (existsSync(journalPath(filePath))) copyFileSync(journalPath(filePath), journalPath(copy));
  return copy;
}

describe('tokens/file-token-store journal (invariant 8 under SIGKILL)', () => {
  it('a rotated refresh token is on the file system when set() returns, before the durable write finishes', async () => {
    const filePath = path.join(mkdtempSync(path.join(os.tmpdir(), 'token-journal-')), 'tokens.json');
    const store = await openFileTokenStore({ filePath, secret: SECRET });
    await store.set('c', entry(1));
    const pending = store.set('c', entry(2));
    // "Killed" now: the durable write of entry 2 has not happened, only the synchronous journal.
    const killed = snapshot(filePath);
    await pending;
    const reopened = await openFileTokenStore({ filePath: killed, secret: SECRET });
    assert.equal((await reopened.get('c'))?.tokens.refreshToken, 'refresh-2-CLEARTEXT');
    await reopened.flush();
    assert.equal(existsSync(journalPath(killed)), false, 'the journal is folded into the file and removed');
  });

  it('keeps no journal once the durable write is done, and the journal holds no token in clear', async () => {
    const filePath = path.join(mkdtempSync(path.join(os.tmpdir(), 'token-journal-')), 'tokens.json');
    const store = await openFileTokenStore({ filePath, secret: SECRET });
    const pending = store.set('c', entry(3));
    assert.ok(existsSync(journalPath(filePath)));
    assert.doesNotMatch(readFileSync(journalPath(filePath)).toString('latin1'), /CLEARTEXT/);
    await pending;
    assert.equal(existsSync(journalPath(filePath)), false);
  });

  it('a torn or foreign journal is ignored: the file is used and nothing crashes', async () => {
    const filePath = path.join(mkdtempSync(path.join(os.tmpdir(), 'token-journal-')), 'tokens.json');
    const store = await openFileTokenStore({ filePath, secret: SECRET });
    await store.set('c', entry(4));
    writeFileSync(journalPath(filePath), Buffer.from('NRO2SEAL torn half of a write'));
    const reopened = await openFileTokenStore({ filePath, secret: SECRET });
    assert.equal((await reopened.get('c'))?.tokens.refreshToken, 'refresh-4-CLEARTEXT');
    assert.equal(existsSync(journalPath(filePath)), false);
  });
});
