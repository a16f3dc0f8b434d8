/**
 * The optional hook that makes a record trigger poll on one instance at a time when several instances run the
 * same flows (the Redis store: redis/lease.ts implements it). Without it (the file store, one instance) the
 * poller behaves exactly as before.
 *
 * With it, the poller (poller.ts):
 * - polls only while held() is true; a poll that finds it false first calls acquire(); false means another
 *   instance polls: the poll ends as { skipped: true, standby: true } and the next attempt comes after
 *   retryDelayMs() (at most half the lease, and never later than the interval);
 * - reads the shared state at the start of every poll (it always does), so a takeover starts from what the
 *   previous holder committed: nothing lost, nothing repeated;
 * - checks held() again right before sending: a holder whose renewals failed stops before its lease can have
 *   expired in the store (held() turns false ahead of the store's expiry, see lease.ts), and sends nothing;
 * - commits through commit(), a write the store refuses unless this holding still owns the lease (fencing), so
 *   a paused or partitioned former holder cannot overwrite what the new holder stored;
 * - release()s on stop, so a standby takes over at its next attempt instead of waiting for the expiry.
 *
 * Rolling redeploys (the instances get a changed trigger one after the other, so for a while some poll with the
 * old configuration and some with the new one). A configuration's digest says nothing about which is newer, so
 * the rule rests on what each instance knows for sure, plus a mark in the store of which configuration the
 * current holder polls with (markConfig: set before polling, kept alive while the holding lasts, gone a few
 * lease times after the last such holder stopped). A holder that finds a stored state of another configuration:
 * - replaces it (first poll, as a changed trigger does on one instance) when this instance ran that
 *   configuration for this node before its current one (previousConfigKeys: it is older here);
 * - otherwise leaves it alone while its configuration's mark is alive (configActive): it gives the lease back
 *   and stands by ({ skipped, standby, otherConfig }); an instance not yet redeployed never undoes a newer
 *   configuration, and the new one never flips back;
 * - replaces it once the mark is gone: no instance has polled with that configuration for a few lease times
 *   (every instance was restarted with new flows, which leaves no history to go by).
 */
import type { TriggerState } from './types';

export interface PollLease {
  /** How long a holding lives in the store without renewal. */
  readonly ttlMs: number;
  /**
   * Takes the lease, or keeps it when already held. Resolves false when another instance holds it; rejects
   * (OAuth2Error, OAUTH2_TRIGGER_STATE_FAILED) when the store cannot be reached.
   */
  acquire(): Promise<boolean>;
  /** Whether this instance holds the lease now, with margin: false before the store could let it expire. */
  held(): boolean;
  /** A standby's wait before its next acquire() (ms): about when the current holding runs out, capped at ttlMs / 2. */
  retryDelayMs(): number;
  /** Writes the state only while this holding owns the lease (a fenced write). Rejects like TriggerStateStore.set. */
  commit(nodeId: string, state: TriggerState): Promise<void>;
  /** Gives the lease up (compare-and-delete). Never rejects. */
  release(): Promise<void>;
  /** While held: records that this holder polls with `configKey` (see above). Rejects when the store fails. */
  markConfig?(configKey: string): Promise<void>;
  /** Whether a holder polled with `configKey` within the last few lease times. Rejects when the store fails. */
  configActive?(configKey: string): Promise<boolean>;
}
