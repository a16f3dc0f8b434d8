/**
 * Where the package keeps tokens and trigger state: the encrypted files in Node-RED's user directory (the
 * default, one instance), or Redis, shared by several instances running the same flows.
 *
 * Node-RED settings.js (the standalone runtime fills this from --redis / HTTP_OAUTH2_REDIS_URL):
 *
 *     httpOAuth2: {
 *       store: {
 *         type: 'redis',
 *         url: 'redis://user:password@redis.internal:6379/0',   // rediss:// for TLS
 *         keyPrefix: 'http-oauth2:',     // one prefix per group of instances sharing flows
 *         secret: '...',                 // optional: defaults to credentialSecret (the same on every instance)
 *         lockTtlMs: 6000,               // a refresh lock's life: its holder extends it every third of it while
 *                                        // it renews, so a holder that dies is noticed after at most this long
 *         triggerLeaseMs: 3000,          // a dead poller's trigger is taken over after about this long (its
 *                                        // holder renews the lease every third of it)
 *         commandTimeoutMs: 3000,        // a Redis command that takes longer fails (clear error, no hang)
 *       }
 *     }
 */
import { OAuth2Error } from '../errors';

export const DEFAULT_KEY_PREFIX = 'http-oauth2:';

export interface RedisStoreSettings {
  type: 'redis';
  url: string;
  keyPrefix: string;
  /** Key material for the sealed values; undefined means "use Node-RED's credentialSecret". */
  secret?: string;
  lockTtlMs: number;
  triggerLeaseMs: number;
  commandTimeoutMs: number;
}

export type StoreSettings = { type: 'file' } | RedisStoreSettings;

export const REDIS_DEFAULTS = { lockTtlMs: 6_000, triggerLeaseMs: 3_000, commandTimeoutMs: 3_000 } as const;

const FIELD = 'httpOAuth2.store';

function invalid(field: string, message: string, reason = 'invalidValue'): OAuth2Error {
  return new OAuth2Error('OAUTH2_INVALID_CONFIG', `Node-RED setting ${FIELD}.${field}: ${message}`, {
    params: { field: `${FIELD}.${field}`, reason },
  });
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function duration(raw: Record<string, unknown>, field: keyof typeof REDIS_DEFAULTS, min: number, max: number): number {
  const value = raw[field];
  if (value === undefined) return REDIS_DEFAULTS[field];
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw invalid(field, `must be a whole number of milliseconds from ${min} to ${max}.`, 'outOfRange');
  }
  return value;
}

/** Reads `settings.httpOAuth2.store`. Throws OAUTH2_INVALID_CONFIG naming the field; never quotes the URL. */
export function parseStoreSettings(httpOAuth2: unknown): StoreSettings {
  if (httpOAuth2 === undefined || httpOAuth2 === null) return { type: 'file' };
  if (!isRecord(httpOAuth2)) throw new OAuth2Error('OAUTH2_INVALID_CONFIG', 'Node-RED setting httpOAuth2 must be an object.', { params: { field: 'httpOAuth2' } });
  const raw = httpOAuth2.store;
  if (raw === undefined || raw === null) return { type: 'file' };
  if (!isRecord(raw)) throw invalid('', 'must be an object.');
  const type = raw.type ?? 'file';
  if (type === 'file') return { type: 'file' };
  if (type !== 'redis') throw invalid('type', 'must be "file" or "redis".');

  const url = raw.url;
  let parsed: URL | undefined;
  try {
    parsed = typeof url === 'string' ? new URL(url) : undefined;
  } catch {
    parsed = undefined;
  }
  if (typeof url !== 'string' || !parsed || (parsed.protocol !== 'redis:' && parsed.protocol !== 'rediss:') || !parsed.hostname) {
    // The URL may hold a password: it is not repeated in the message.
    throw invalid('url', 'must be a redis:// or rediss:// URL with a host.');
  }
  const keyPrefix = raw.keyPrefix ?? DEFAULT_KEY_PREFIX;
  if (typeof keyPrefix !== 'string' || keyPrefix.length === 0 || keyPrefix.length > 100 || /[\s*?[\]]/.test(keyPrefix)) {
    throw invalid('keyPrefix', 'must be 1 to 100 characters without spaces or the pattern characters * ? [ ].');
  }
  const secret = raw.secret;
  if (secret !== undefined && (typeof secret !== 'string' || secret.length < 16)) {
    throw invalid('secret', 'must be a string of at least 16 characters (or left out to use credentialSecret).', 'tooShort');
  }
  const lockTtlMs = duration(raw, 'lockTtlMs', 1_000, 600_000);
  const triggerLeaseMs = duration(raw, 'triggerLeaseMs', 1_000, 600_000);
  const commandTimeoutMs = duration(raw, 'commandTimeoutMs', 100, 60_000);
  return { type: 'redis', url, keyPrefix, secret, lockTtlMs, triggerLeaseMs, commandTimeoutMs };
}

/** host:port of the Redis URL, for status and logs (never the user name or password). */
export function describeRedis(settings: Pick<RedisStoreSettings, 'url'>): string {
  try {
    const u = new URL(settings.url);
    return `${u.protocol}//${u.hostname}:${u.port || '6379'}`;
  } catch {
    return 'redis';
  }
}
