/**
 * Record-trigger state on Redis, shared by every Node-RED instance running the same flows: the TriggerStateStore
 * contract of state-store.ts (the same tests run against both), plus a fenced write for the instance that holds
 * the trigger's lease (lease.ts).
 *
 * One hash per trigger node, `key('trigger', nodeId)`:
 *   state  the TriggerState as sealed JSON (crypto.ts: AES-256-GCM, key from the shared secret), bound to this
 *          key (./sealed). Ids can be personal data (email addresses as ids), so they never reach Redis in clear.
 *   rev    a random revision id, new on every write. Writes compare it (compare-and-set), so a state this process
 *          failed to write is never written over a state another instance wrote meanwhile. Random, not a counter:
 *          a reset deletes the hash, and a counter starting again at 1 could match an old revision (ABA).
 *   fence  the lease's fencing number of the last fenced write: an older holding cannot write after a newer one.
 *
 * "A failed set keeps the new state in memory" (the contract the poller relies on to not resend in-process what
 * it already sent) means here: the state goes into a per-process overlay, remembered with the revision it was
 * based on. The overlay is this process's view only; it stands for the trigger's state only while Redis still
 * holds that base revision:
 * - get() returns the overlay when Redis holds its base revision (nobody wrote since) or cannot be reached (the
 *   poller then fails to write it before fetching anything, so nothing is sent from it while Redis is away);
 *   when another instance wrote meanwhile (it took the lease over and polled from the stored state, re-sending
 *   what this process had sent but not stored: at-least-once while the store was failing), the overlay is
 *   dropped and the stored state wins: writing the overlay back would roll the other instance's work back, and
 *   the next poll would send that work's changes a second time.
 * - the next successful write carries it (the write of another trigger carries it too, as the file does), under
 *   the same compare-and-set: an overlay whose base moved is dropped, never written.
 * So with several instances the guarantee is the file store's: at-least-once while Redis fails, never a loss,
 * and no instance's state ever goes back.
 *
 * Errors: OAUTH2_TRIGGER_STATE_FAILED. Redis failures through redisFailure (params.reason `redis-<kind>`, never
 * ioredis's text); a fenced write refused because the lease is no longer ours: params.reason `leaseLost`; a
 * fenced write refused because the state changed under it (a reset from another instance): `stateChanged`.
 *
 * Not for Redis Cluster: a fenced write touches the state and the lease key in one script (different slots).
 */
import { randomBytes } from 'node:crypto';
import { OAuth2Error } from '../errors';
import { copyState, isTriggerState, type TriggerStateStore } from '../changes/state-store';
import type { TriggerState } from '../changes/types';
import { sealJson } from '../sealed/crypto';
import { openUnderKey } from './sealed';
import { redisFailure, type RedisConnection } from './client';

/**
 * Every Redis key of one trigger node: its state hash; its lease, the lease's fencing counter (lease.ts names it
 * after the lease) and the mark of the configuration its holder polls with (lease.ts, TriggerLease).
 */
export function triggerKeys(connection: RedisConnection, nodeId: string): { state: string; lease: string; fence: string; config: string } {
  return {
    state: connection.key('trigger', nodeId),
    lease: connection.key('trigger-lease', nodeId),
    fence: connection.key('trigger-lease-fence', nodeId),
    config: connection.key('trigger-config', nodeId),
  };
}

/** Revision marker of a trigger with no stored state. */
const ABSENT = '-';

/** What a fenced write proves: this holding of the trigger's lease (lease.ts). */
export interface LeaseFence {
  /** The lease key (RedisConnection.key form). */
  leaseKey: string;
  /** The value the lease key holds while this holding lasts. */
  token: string;
  /** The fencing number taken with the lease (INCR): larger for every later holding. */
  fence: number;
}

export interface RedisTriggerStateStore extends TriggerStateStore {
  /**
   * Stores `state` only while `fence` still holds the lease and nobody changed the state since this process
   * last read or wrote it. Rejects OAUTH2_TRIGGER_STATE_FAILED: params.reason `leaseLost` or `stateChanged`
   * (nothing written), or `redis-<kind>` (maybe not written: the state stays in the overlay, see above).
   */
  setFenced(nodeId: string, state: TriggerState, fence: LeaseFence): Promise<void>;
  /** The hash key of a trigger's state. */
  keyOf(nodeId: string): string;
  /**
   * Deletes everything Redis holds for a trigger node that is gone from the flows: its state and its lease,
   * fencing counter and configuration mark (delete() keeps those: a reset trigger goes on polling).
   */
  purge(nodeId: string): Promise<void>;
}

/**
 * Fenced compare-and-set of one trigger's state.
 * KEYS: state hash, lease key. ARGV: sealed state, expected rev ('' any, '-' absent), new rev, token, fence.
 * Returns 1 written, -1 state changed, -2 lease not ours (or a newer holding wrote already).
 */
const FENCED_WRITE = `
if redis.call('GET', KEYS[2]) ~= ARGV[4] then return -2 end
local stored = redis.call('HMGET', KEYS[1], 'rev', 'fence')
if stored[2] and tonumber(stored[2]) > tonumber(ARGV[5]) then return -2 end
if ARGV[2] ~= '' and (stored[1] or '-') ~= ARGV[2] then return -1 end
redis.call('HSET', KEYS[1], 'state', ARGV[1], 'rev', ARGV[3], 'fence', ARGV[5])
return 1
`;

/**
 * Compare-and-set of several triggers' states (an unfenced set and the overlays it carries).
 * KEYS: state hashes. ARGV: per key, sealed state, expected rev ('' any, '-' absent), new rev.
 * Returns per key 1 written, 0 refused (its rev moved).
 */
const CAS_WRITE = `
local out = {}
for i = 1, #KEYS do
  local expected = ARGV[3 * i - 1]
  local current = redis.call('HGET', KEYS[i], 'rev') or '-'
  if expected ~= '' and current ~= expected then
    out[i] = 0
  else
    redis.call('HSET', KEYS[i], 'state', ARGV[3 * i - 2], 'rev', ARGV[3 * i])
    out[i] = 1
  end
end
return out
`;

function stateError(message: string, params: Record<string, string> = {}, cause?: unknown): OAuth2Error {
  return new OAuth2Error('OAUTH2_TRIGGER_STATE_FAILED', message, { params, ...(cause === undefined ? {} : { cause }) });
}

function newRev(): string {
  return randomBytes(12).toString('base64url');
}

/** Redis glob pattern characters escaped (keyPrefix excludes most; a backslash is allowed). */
function globEscape(text: string): string {
  return text.replace(/[\\*?[\]]/g, (c) => `\\${c}`);
}

export function openRedisTriggerStateStore(options: {
  connection: RedisConnection;
  secret: string;
  /** Secrets the values may have been sealed with before; values read with one are re-sealed on their next write. */
  fallbackSecrets?: readonly string[];
}): RedisTriggerStateStore {
  const { connection, secret } = options;
  const secrets = [secret, ...(options.fallbackSecrets ?? [])];
  const client = connection.client;
  const keyOf = (nodeId: string): string => connection.key('trigger', nodeId);
  const triggerPrefix = connection.key('trigger', '');

  /** The revision this process last read or wrote per trigger (what its next fenced write expects). */
  const known = new Map<string, string>();
  /** States this process failed to write, with the revision they were based on ('' unknown: valid only while Redis is away). */
  const overlay = new Map<string, { state: TriggerState; baseRev: string }>();
  const inFlight = new Set<Promise<unknown>>();

  const track = <T>(promise: Promise<T>): Promise<T> => {
    inFlight.add(promise);
    const done = (): void => {
      inFlight.delete(promise);
    };
    promise.then(done, done);
    return promise;
  };

  const open = (nodeId: string, blob: Buffer): TriggerState => {
    let value: unknown;
    try {
      value = openUnderKey(blob, secrets, keyOf(nodeId));
    } catch {
      throw stateError(
        `Trigger state: the state of node ${nodeId} in Redis cannot be decrypted with this instance's secret. It was ` +
          'left untouched; give every instance the same credentialSecret (or httpOAuth2.store.secret), or reset the trigger.',
        { reason: 'undecryptable' },
      );
    }
    if (!isTriggerState(value)) {
      throw stateError(`Trigger state: the entry of node ${nodeId} is not in a format this version reads; reset the trigger.`, { reason: 'unknownFormat' });
    }
    return copyState(value);
  };

  const failure = (err: unknown, doing: string): OAuth2Error => redisFailure('OAUTH2_TRIGGER_STATE_FAILED', err, doing, connection.where);

  /** Runs the compare-and-set for `nodeId` (expected '' = any) and every overlay of another trigger. */
  const casWrite = async (nodeId: string, blob: Buffer, expected: string): Promise<void> => {
    const rev = newRev();
    const carried = [...overlay].filter(([id]) => id !== nodeId);
    const keys = [keyOf(nodeId)];
    const args: Array<Buffer | string> = [blob, expected, rev];
    const revs = [rev];
    for (const [id, entry] of carried) {
      const carriedRev = newRev();
      keys.push(keyOf(id));
      // An overlay whose base is unknown ('') cannot prove nobody wrote since: it is not carried blindly.
      args.push(sealJson(entry.state, secret, keyOf(id)), entry.baseRev === '' ? '\u0000unknown' : entry.baseRev, carriedRev);
      revs.push(carriedRev);
    }
    const result = (await client.eval(CAS_WRITE, keys.length, ...keys, ...args)) as number[];
    if (result[0] !== 1) {
      throw stateError(`Trigger state: the state of node ${nodeId} was changed by another instance meanwhile; not written.`, { reason: 'stateChanged' });
    }
    known.set(nodeId, rev);
    carried.forEach(([id, entry], i) => {
      // Written, or refused because its base moved (another instance's state wins): the overlay is done either way.
      if (overlay.get(id) === entry) overlay.delete(id);
      if (result[i + 1] === 1) known.set(id, revs[i + 1]);
      else known.delete(id);
    });
  };

  const keepInOverlay = (nodeId: string, state: TriggerState, baseRev: string): void => {
    overlay.set(nodeId, { state, baseRev });
  };

  return {
    keyOf,

    async get(nodeId) {
      let stateBlob: Buffer | null;
      let revBlob: Buffer | null;
      try {
        [stateBlob, revBlob] = await client.hmgetBuffer(keyOf(nodeId), 'state', 'rev');
      } catch (err) {
        const pending = overlay.get(nodeId);
        // Redis away: what this process sent but could not store is still what it must not send again.
        if (pending) return copyState(pending.state);
        throw failure(err, `read the trigger state of node ${nodeId}`);
      }
      const rev = stateBlob ? (revBlob?.toString('utf8') ?? '') : ABSENT;
      known.set(nodeId, rev);
      const pending = overlay.get(nodeId);
      if (pending) {
        if (pending.baseRev === rev) return copyState(pending.state);
        // Someone wrote since (or the write that failed did land): the stored state wins.
        overlay.delete(nodeId);
      }
      if (!stateBlob) return undefined;
      return open(nodeId, stateBlob);
    },

    set(nodeId, state) {
      if (!isTriggerState(state)) {
        return Promise.reject(stateError(`Trigger state: refused to store a malformed state for node ${nodeId}.`, { reason: 'malformed' }));
      }
      const copy = copyState(state);
      const baseRev = known.get(nodeId) ?? '';
      const run = (async () => {
        try {
          // Unfenced: last writer wins for this trigger (the file's behaviour); used without a lease only.
          await casWrite(nodeId, sealJson(copy, secret, keyOf(nodeId)), '');
          overlay.delete(nodeId);
        } catch (err) {
          if (err instanceof OAuth2Error) throw err;
          keepInOverlay(nodeId, copy, baseRev);
          throw failure(err, `write the trigger state of node ${nodeId}`);
        }
      })();
      return track(run);
    },

    setFenced(nodeId, state, fence) {
      if (!isTriggerState(state)) {
        return Promise.reject(stateError(`Trigger state: refused to store a malformed state for node ${nodeId}.`, { reason: 'malformed' }));
      }
      const copy = copyState(state);
      const expected = known.get(nodeId) ?? '';
      const run = (async () => {
        const rev = newRev();
        let result: number;
        try {
          result = (await client.eval(FENCED_WRITE, 2, keyOf(nodeId), fence.leaseKey, sealJson(copy, secret, keyOf(nodeId)), expected, rev, fence.token, String(fence.fence))) as number;
        } catch (err) {
          keepInOverlay(nodeId, copy, expected);
          throw failure(err, `write the trigger state of node ${nodeId}`);
        }
        if (result === 1) {
          known.set(nodeId, rev);
          overlay.delete(nodeId);
          return;
        }
        if (result === -2) {
          // Not ours to write now. Kept: if this instance takes the lease again before anyone writes, it is
          // written then (nothing resent); if another instance writes first, get() drops it.
          keepInOverlay(nodeId, copy, expected);
          throw stateError(`Trigger state: this instance no longer holds the lease of node ${nodeId}; the state was not written.`, { reason: 'leaseLost' });
        }
        overlay.delete(nodeId);
        known.delete(nodeId);
        throw stateError(`Trigger state: the state of node ${nodeId} was changed by another instance during the poll (a reset); not written.`, {
          reason: 'stateChanged',
        });
      })();
      return track(run);
    },

    delete(nodeId) {
      const run = (async () => {
        try {
          await client.del(keyOf(nodeId));
        } catch (err) {
          throw failure(err, `delete the trigger state of node ${nodeId}`);
        }
        overlay.delete(nodeId);
        known.set(nodeId, ABSENT);
      })();
      return track(run);
    },

    purge(nodeId) {
      const run = (async () => {
        const keys = triggerKeys(connection, nodeId);
        try {
          await client.del(keys.state, keys.lease, keys.fence, keys.config);
        } catch (err) {
          throw failure(err, `delete the trigger state of node ${nodeId}`);
        }
        overlay.delete(nodeId);
        known.set(nodeId, ABSENT);
      })();
      return track(run);
    },

    async ids() {
      const found = new Set<string>(overlay.keys());
      const pattern = `${globEscape(triggerPrefix)}*`;
      try {
        let cursor = '0';
        do {
          const [next, keys] = await client.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
          cursor = next;
          for (const key of keys) {
            const part = key.slice(triggerPrefix.length);
            // key() encodes each part, so a stored id never holds ':'; anything else under the prefix is not ours.
            if (part.includes(':')) continue;
            try {
              found.add(decodeURIComponent(part));
            } catch {
              // not a key this store wrote
            }
          }
        } while (cursor !== '0');
      } catch (err) {
        throw failure(err, 'list the trigger states');
      }
      return [...found];
    },

    async flush() {
      while (inFlight.size > 0) await Promise.allSettled([...inFlight]);
    },
  };
}
