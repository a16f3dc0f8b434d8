/**
 * Held messages on Redis, shared by every Node-RED instance running the same flows: the HeldStore contract of
 * ../hold/held-store.ts (the same tests run against both), plus a claim per message so that two instances never
 * send the same one.
 *
 * One hash per request node, `key('held', nodeId)`: field = entry id, value = `{at, message}` as sealed JSON
 * (AES-256-GCM, key from the shared secret) bound to the hash's key and the field, so a value copied under
 * another node or entry does not open. A claim is `key('held-claim', nodeId, entryId)`, set with NX and a
 * time to live: the instance that holds it sends the message; the claim lapses if that instance dies before
 * the answer, and another instance sends the message then (at least once).
 *
 * Errors: OAUTH2_HOLD_STORE_FAILED, Redis failures through redisFailure (params.reason `redis-<kind>`).
 */
import { randomBytes } from 'node:crypto';
import { OAuth2Error } from '../errors';
import type { HeldEntry, HeldStore } from '../hold/held-store';
import { sealJson } from '../sealed/crypto';
import { redisFailure, type RedisConnection } from './client';
import { openUnderKey } from './sealed';

export interface RedisHeldStore extends HeldStore {
  claim(nodeId: string, entryId: string, ttlMs: number): Promise<boolean>;
  unclaim(nodeId: string, entryId: string): Promise<void>;
}

function globEscape(text: string): string {
  return text.replace(/[*?[\]\\]/g, (c) => `\\${c}`);
}

/** Deletes the claim only when it is this instance's. */
const UNCLAIM = `
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 1
`;

const CLAIM = `
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return 0 end
if redis.call('SET', KEYS[2], ARGV[2], 'NX', 'PX', ARGV[3]) then return 1 end
return 0
`;

export function openRedisHeldStore(options: { connection: RedisConnection; secret: string; fallbackSecrets?: readonly string[] }): RedisHeldStore {
  const { connection, secret } = options;
  const secrets = [secret, ...(options.fallbackSecrets ?? [])];
  const client = connection.client;
  const keyOf = (nodeId: string): string => connection.key('held', nodeId);
  const claimKey = (nodeId: string, entryId: string): string => connection.key('held-claim', nodeId, entryId);
  const prefix = connection.key('held', '');
  const bound = (nodeId: string, entryId: string): string => `${keyOf(nodeId)}\u0000${entryId}`;
  const failure = (err: unknown, doing: string): OAuth2Error => redisFailure('OAUTH2_HOLD_STORE_FAILED', err, doing, connection.where);
  const token = randomBytes(8).toString('hex');

  return {
    async list(nodeId) {
      let all: Record<string, Buffer>;
      try {
        all = await client.hgetallBuffer(keyOf(nodeId));
      } catch (err) {
        throw failure(err, `read the held messages of node ${nodeId}`);
      }
      const entries: HeldEntry[] = [];
      for (const id of Object.keys(all).sort()) {
        let value: unknown;
        try {
          value = openUnderKey(all[id], secrets, bound(nodeId, id));
        } catch {
          throw new OAuth2Error(
            'OAUTH2_HOLD_STORE_FAILED',
            `Held messages: a message of node ${nodeId} in Redis cannot be decrypted with this instance's secret; give every instance the same credentialSecret (or httpOAuth2.store.secret).`,
            { params: { reason: 'undecryptable' } },
          );
        }
        const v = value as { at?: unknown; message?: unknown } | null;
        if (v && typeof v.at === 'number' && typeof v.message === 'string') entries.push({ id, at: v.at, message: v.message });
      }
      return entries;
    },
    async add(nodeId, entry) {
      try {
        await client.hset(keyOf(nodeId), entry.id, sealJson({ at: entry.at, message: entry.message }, secret, bound(nodeId, entry.id)));
      } catch (err) {
        throw failure(err, `hold a message of node ${nodeId}`);
      }
    },
    async remove(nodeId, entryId) {
      try {
        await client.multi().hdel(keyOf(nodeId), entryId).del(claimKey(nodeId, entryId)).exec();
      } catch (err) {
        throw failure(err, `remove a held message of node ${nodeId}`);
      }
    },
    async claim(nodeId, entryId, ttlMs) {
      try {
        const result = await client.eval(CLAIM, 2, keyOf(nodeId), claimKey(nodeId, entryId), entryId, token, String(Math.max(1, Math.round(ttlMs))));
        return result === 1;
      } catch (err) {
        throw failure(err, `claim a held message of node ${nodeId}`);
      }
    },
    async unclaim(nodeId, entryId) {
      try {
        await client.eval(UNCLAIM, 1, claimKey(nodeId, entryId), token);
      } catch (err) {
        throw failure(err, `give back a held message of node ${nodeId}`);
      }
    },
    async purge(nodeId) {
      try {
        await client.del(keyOf(nodeId));
      } catch (err) {
        throw failure(err, `delete the held messages of node ${nodeId}`);
      }
    },
    async ids() {
      const found = new Set<string>();
      try {
        let cursor = '0';
        do {
          const [next, keys] = await client.scan(cursor, 'MATCH', `${globEscape(prefix)}*`, 'COUNT', 1000);
          cursor = next;
          for (const key of keys) {
            const part = key.slice(prefix.length);
            if (part.includes(':')) continue;
            try {
              found.add(decodeURIComponent(part));
            } catch {
              // not a key this store wrote
            }
          }
        } while (cursor !== '0');
      } catch (err) {
        throw failure(err, 'list the nodes with held messages');
      }
      return [...found];
    },
    async flush() {
      // Writes resolve once Redis acknowledged them.
    },
  };
}
