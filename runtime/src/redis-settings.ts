/**
 * The runtime's side of the shared Redis store: `--redis <url>` (HTTP_OAUTH2_REDIS_URL) and a few environment
 * variables become Node-RED's `httpOAuth2.store` setting, which the nodes read (nodes/lib/redis/settings.ts
 * validates it again and is the reference for its fields).
 *
 * Several instances share tokens and trigger state through Redis, so they must share the key that seals them:
 * a generated per-user-directory secret would differ on every instance, hence NODE_RED_CREDENTIAL_SECRET is
 * required with Redis, even on loopback.
 */
import { StartupRefused } from './production-settings';

export interface RedisStoreSetting {
  type: 'redis';
  url: string;
  keyPrefix?: string;
  lockTtlMs?: number;
  triggerLeaseMs?: number;
  commandTimeoutMs?: number;
}

export interface RedisOptions {
  /** --redis, else HTTP_OAUTH2_REDIS_URL. */
  url?: string;
  /** --redis-prefix, else HTTP_OAUTH2_REDIS_PREFIX. */
  keyPrefix?: string;
}

/** host:port of a Redis URL, for what the runtime prints (never the user name or password). */
export function redisHostPort(url: string): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.hostname.includes(':') ? `[${u.hostname}]` : u.hostname}:${u.port || '6379'}`;
  } catch {
    return 'redis';
  }
}

function milliseconds(env: NodeJS.ProcessEnv, name: string, min: number, max: number): number | undefined {
  const raw = env[name]?.trim();
  if (!raw) return undefined;
  const value = Number(raw);
  if (!/^\d+$/.test(raw) || value < min || value > max) {
    throw new StartupRefused(`${name} must be a whole number of milliseconds from ${min} to ${max}, got "${raw}".`);
  }
  return value;
}

/**
 * The `httpOAuth2.store` setting for Redis, or undefined when no Redis URL is given (the encrypted files in the
 * user directory, one instance). Refuses a URL that is not redis:// or rediss:// (without repeating it: it may
 * hold a password), a prefix Redis patterns would misread, and Redis without NODE_RED_CREDENTIAL_SECRET.
 */
export function redisStoreSetting(options: RedisOptions, env: NodeJS.ProcessEnv): RedisStoreSetting | undefined {
  const url = options.url?.trim();
  if (!url) {
    if (options.keyPrefix) throw new StartupRefused('--redis-prefix (HTTP_OAUTH2_REDIS_PREFIX) needs --redis (HTTP_OAUTH2_REDIS_URL).');
    return undefined;
  }
  let parsed: URL | undefined;
  try {
    parsed = new URL(url);
  } catch {
    parsed = undefined;
  }
  if (!parsed || (parsed.protocol !== 'redis:' && parsed.protocol !== 'rediss:') || !parsed.hostname) {
    throw new StartupRefused(
      '--redis (HTTP_OAUTH2_REDIS_URL) must be a redis:// or rediss:// URL with a host, for example ' +
        'redis://:password@redis.internal:6379/0 (rediss:// for TLS).',
    );
  }
  const keyPrefix = options.keyPrefix;
  if (keyPrefix !== undefined && (keyPrefix.length > 100 || /[\s*?[\]]/.test(keyPrefix))) {
    throw new StartupRefused('--redis-prefix (HTTP_OAUTH2_REDIS_PREFIX) must be 1 to 100 characters without spaces or * ? [ ].');
  }
  if (!env.NODE_RED_CREDENTIAL_SECRET) {
    throw new StartupRefused(
      `Refusing to use Redis (${redisHostPort(url)}) without NODE_RED_CREDENTIAL_SECRET. The instances sharing ` +
        'a Redis share the tokens and trigger state sealed with it: set the same long random value (for example ' +
        'the output of `openssl rand -hex 32`) on every instance.',
    );
  }
  const setting: RedisStoreSetting = { type: 'redis', url };
  if (keyPrefix) setting.keyPrefix = keyPrefix;
  const lockTtlMs = milliseconds(env, 'HTTP_OAUTH2_REDIS_LOCK_TTL_MS', 1_000, 600_000);
  const triggerLeaseMs = milliseconds(env, 'HTTP_OAUTH2_REDIS_TRIGGER_LEASE_MS', 1_000, 600_000);
  const commandTimeoutMs = milliseconds(env, 'HTTP_OAUTH2_REDIS_COMMAND_TIMEOUT_MS', 100, 60_000);
  if (lockTtlMs !== undefined) setting.lockTtlMs = lockTtlMs;
  if (commandTimeoutMs !== undefined) setting.commandTimeoutMs = commandTimeoutMs;
  if (triggerLeaseMs !== undefined) setting.triggerLeaseMs = triggerLeaseMs;
  return setting;
}

/** Whether the palette package can load ioredis (the runtime depends on it; a broken install would not). */
export function ioredisLoadable(fromDir: string): boolean {
  try {
    require.resolve('ioredis', { paths: [fromDir] });
    return true;
  } catch {
    return false;
  }
}
