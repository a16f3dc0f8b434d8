import assert from 'node:assert/strict';
import { parseStoreSettings } from '../../../nodes/lib/redis/settings';
import { redisStoreSetting } from '../../../runtime/src/redis-settings';

describe('runtime: the Redis settings from the environment reach httpOAuth2.store', () => {
  const env = { NODE_RED_CREDENTIAL_SECRET: 'a-long-random-shared-secret-of-the-group' };

  it('lock life, trigger lease and command timeout, each with its default when unset', () => {
    const defaults = parseStoreSettings({ store: redisStoreSetting({ url: 'redis://127.0.0.1:6379' }, env) });
    assert.deepEqual(defaults.type === 'redis' && [defaults.lockTtlMs, defaults.triggerLeaseMs, defaults.commandTimeoutMs], [6000, 3000, 3000]);
    const set = redisStoreSetting(
      { url: 'redis://127.0.0.1:6379' },
      { ...env, HTTP_OAUTH2_REDIS_LOCK_TTL_MS: '8000', HTTP_OAUTH2_REDIS_TRIGGER_LEASE_MS: '4000', HTTP_OAUTH2_REDIS_COMMAND_TIMEOUT_MS: '750' },
    );
    const parsed = parseStoreSettings({ store: set });
    assert.deepEqual(parsed.type === 'redis' && [parsed.lockTtlMs, parsed.triggerLeaseMs, parsed.commandTimeoutMs], [8000, 4000, 750]);
    assert.throws(() => redisStoreSetting({ url: 'redis://127.0.0.1:6379' }, { ...env, HTTP_OAUTH2_REDIS_COMMAND_TIMEOUT_MS: '3s' }), /HTTP_OAUTH2_REDIS_COMMAND_TIMEOUT_MS must be a whole number/);
  });
});
