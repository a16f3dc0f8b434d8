/**
 * The record trigger's scheduler: polls on an interval and on demand, never two at once, diffs each list
 * against the remembered state, sends the changes and commits the new state, in the order `delivery` says
 * (invariant 11).
 *
 * At least once (the default): the state is committed only after `emit`'s promise resolved, which the adapter
 * resolves once the messages reached the next nodes (node.send delivers asynchronously). Case by case:
 * - fetch fails → nothing is sent, nothing committed; the next poll starts from the same state.
 * - the process dies between fetch and send → nothing was committed, so the next run sends those changes.
 * - the process dies between sending and the commit (delivery included) → the next run sends that poll's
 *   changes again, with the same msg.changeKey (change-key.ts), for a downstream node to deduplicate on.
 * - `emit` throws or its promise rejects → not committed; the next poll sends the changes again (some may
 *   have gone out before the throw: at-least-once for that poll).
 * - the commit fails after sending → the error is reported (OAUTH2_TRIGGER_STATE_FAILED). The store keeps the new
 *   state in memory, so this process does not send the same changes again; the next poll first writes it again
 *   and does not fetch until that succeeds. If the process dies before a write succeeds, the next run sends
 *   those changes again: at-least-once while the store is failing, never a loss.
 * - after a successful commit nothing sent is sent again.
 *
 * At most once: the state is committed first, and the changes are sent only once the commit succeeded.
 * - the process dies between the commit and the send → that poll's changes are lost, never sent twice.
 * - the commit fails → nothing is sent; the changes are held in memory and sent right after the next poll's
 *   write of the state succeeds (or dropped when the store by then holds another instance's state, which
 *   decides on its own what to send). A process dying meanwhile loses them, as a crash loses one poll's.
 *
 * With a lease (poll-lease.ts: several instances, one shared store), the same holds across the cluster: only the
 * holder polls, it sends only while held() (checked right before sending), and its commit is fenced; a takeover
 * starts from the shared state, which holds everything the previous holder committed. The at-least-once cases
 * above (a holder dies, or loses the lease, between sending and committing) are the only repeats.
 */
import { createHash } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { ResumePoint } from '../http/pagination';
import { DEFAULT_RECORD_PROPERTIES } from '../http/records';
import { OAuth2Error, isOAuth2Error } from '../errors';
import { backoffDelay } from '../http/retry';
import { detectChanges, onlyDigestDropped, sameMissing, type DetectStats } from './detect';
import type { PollLease } from './poll-lease';
import type { TriggerStateStore } from './state-store';
import { changeKey } from './change-key';
import type { ChangeDetection, ChangeEvent, Continuation, DeliveryMode, DetectedChange, FutureTimestamps, TriggerSettings, TriggerState } from './types';
import { watermarkCeiling, watermarkQuery } from './watermark';

export interface FetchResult {
  records: unknown[];
  /** True when every page was read (the API said "no more"): only then can a missing id mean "deleted". */
  complete: boolean;
  /**
   * The API's own time (epoch ms) when it answered, from its Date header; absent when it sent none. The watermark
   * is bounded by it (watermark.ts); without it, this machine's clock when the poll started stands in.
   */
  serverTime?: number;
  /** Cut at Max pages: where the next poll reads on (fetchPages' `next`). */
  next?: ResumePoint;
  /** Pages read. */
  pages?: number;
}

/**
 * One poll's list. Throws OAuth2Error (`retryable`, and `params.retryAfterMs` when the server sent Retry-After).
 * `signal` aborts when the poller stops; the result of an aborted fetch is thrown away either way. `resume`: read
 * on from there (an earlier poll's `next`) rather than from the first page, with the same `query`.
 */
export type RecordFetch = (query: Record<string, string>, signal: AbortSignal, resume?: ResumePoint) => Promise<FetchResult>;

/** Polls in a row that read nothing new before a cut-short list is reported as OAUTH2_TRIGGER_INCOMPLETE. */
export const STALLED_POLLS = 3;
/** Continuation points remembered per episode to recognise a loop across polls (older ones are let go). */
const CONTINUATION_POINTS = 200;

/** A short digest of a continuation point: the state stores these, never the URLs of a whole episode. */
function pointDigest(point: ResumePoint): string {
  // A cursor in the body is in `body` (the URL stays the same); points without one digest as they always did.
  const body = point.body === undefined ? '' : `\n${JSON.stringify(point.body)}`;
  return createHash('sha256').update(`${point.url}\n${point.pages}\n${point.offset}${body}`).digest('base64url').slice(0, 16);
}

function maxOf(a: number | undefined, b: number | undefined): number | undefined {
  return a === undefined ? b : b === undefined ? a : Math.max(a, b);
}

export interface PollStats extends DetectStats {
  /** Whether the list was complete (see FetchResult). */
  complete: boolean;
}

export type PollOutcome =
  /**
   * Not polled: a poll was still running, or (`standby`) another instance holds the lease, or (`otherConfig`
   * too) the stored state belongs to another configuration still in use (rolling redeploy, poll-lease.ts).
   */
  | { skipped: true; standby?: true; otherConfig?: true }
  | {
      skipped: false;
      /** Number of changes sent. */
      changes: number;
      /** The event of each change sent, in order (for status counts). */
      emitted: ChangeEvent[];
      /** This poll was a first poll (nothing remembered before it). */
      firstPoll: boolean;
      stats: PollStats;
      durationMs: number;
      /** Records newly remembered with an updated-at ahead of the API's clock (watermark polling only). */
      future?: FutureTimestamps;
      /**
       * The poll was cut at Max pages: the next poll reads on. `pages`: read by this poll; `total`: by the polls of
       * this episode so far; `first`: this poll began the episode.
       */
      continuing?: { pages: number; total: number; first: boolean };
      /** STALLED_POLLS or more polls in a row read nothing new: OAUTH2_TRIGGER_INCOMPLETE (the poll itself worked). */
      incomplete?: OAuth2Error;
    }
  | { skipped: false; error: OAuth2Error };

export interface PollPreview {
  changes: DetectedChange[];
  stats: PollStats;
  /** The next poll is a first poll (so, by default, it remembers and sends nothing). */
  firstPoll: boolean;
  future?: FutureTimestamps;
}

export interface PollerState {
  kind: 'idle' | 'polling' | 'backoff';
  /** Polls skipped because one was still running, since the poller was made. */
  skipped: number;
  /** Consecutive failed polls. */
  failures: number;
  /** The last poll's error, until a poll succeeds. */
  lastError?: OAuth2Error;
  /** When the timer polls next (epoch ms, from `now`); undefined when not scheduled (not started, stopped). */
  nextPollAt?: number;
}

export interface RecordPollerEvents {
  'poll-start': [];
  /** Every poll that was due, skipped ones included ({ skipped: true }). */
  'poll-end': [PollOutcome];
  state: [PollerState];
}

export interface RecordPollerOptions {
  nodeId: string;
  /** Digest of what is watched; a stored state with another one is ignored (first-poll semantics). */
  configKey: string;
  /**
   * Digest of how the list is paged: a stored continuation (a list being read over several polls) made with
   * another one is discarded, and the next poll starts from the first page. Default ''.
   */
  continuationKey?: string;
  settings: TriggerSettings;
  store: TriggerStateStore;
  fetch: RecordFetch;
  /**
   * Sends the messages (each change carries its `key`). A throw means "not sent": nothing is committed. At least
   * once, the commit waits for the promise it may return: it resolves once the messages reached the next nodes
   * (a rejection counts as not delivered). At most once it is called only after the commit, and not waited for.
   */
  emit: (changes: DetectedChange[]) => void | Promise<void>;
  /** Commit after delivery ('at-least-once', default) or before sending ('at-most-once'); see above. */
  delivery?: DeliveryMode;
  /**
   * Which detected changes to send (a condition). Runs after the diff and before `emit`; the changes it drops
   * are remembered all the same, so they are not sent later either. Must not throw for one record's sake.
   */
  filter?: (changes: DetectedChange[]) => Promise<DetectedChange[]>;
  intervalMs: number;
  /**
   * Several instances sharing the store: poll only while holding this lease, commit through its fenced write,
   * release it on stop (see poll-lease.ts). Absent: this instance is the only one (the file store).
   */
  lease?: PollLease;
  /**
   * With a lease: the configurations this instance ran for this node before `configKey` (earlier deploys in this
   * process). A stored state of one of them is older and replaced; of any other, see poll-lease.ts.
   */
  previousConfigKeys?: ReadonlySet<string>;
  /** Delay of the first poll after start(); default 1000 ms (see start()). */
  firstPollDelayMs?: number;
  /**
   * Longest backoff after repeated failures; default the larger of intervalMs and one minute, so the trigger
   * resumes within about a minute of the API recovering (a server that wants longer says so in Retry-After).
   */
  maxBackoffMs?: number;
  /** Longest Retry-After honoured; default the larger of intervalMs and one hour. */
  maxRetryAfterMs?: number;
  now?: () => number;
  setTimer?: (callback: () => void, ms: number) => unknown;
  clearTimer?: (handle: unknown) => void;
  random?: () => number;
}

const DEFAULT_FIRST_POLL_DELAY_MS = 1000;
const HOUR_MS = 3_600_000;
const MINUTE_MS = 60_000;

/** Internal result of a poll whose result was thrown away (stop or reset during it). */
const ABANDONED = Symbol('abandoned');
/** Internal result of a poll that did not run because another instance holds the lease. */
const STANDBY = Symbol('standby');
/** Internal result of a poll that gave the lease back: the stored state is another configuration's, still in use. */
const OTHER_CONFIG = Symbol('other-config');

function defaultSetTimer(callback: () => void, ms: number): unknown {
  const handle = setTimeout(callback, ms);
  // The runtime's HTTP server keeps the process alive; a trigger's timer alone must not (tests, CLI exit).
  handle.unref();
  return handle;
}

function defaultClearTimer(handle: unknown): void {
  clearTimeout(handle as ReturnType<typeof setTimeout>);
}

function stateFailure(message: string, cause: unknown, params: Record<string, string> = {}): OAuth2Error {
  return new OAuth2Error('OAUTH2_TRIGGER_STATE_FAILED', message, { cause, params });
}

/** Store errors are OAUTH2_TRIGGER_STATE_FAILED already (state-store.ts); anything else is wrapped as one. */
function asStateError(err: unknown): OAuth2Error {
  return isOAuth2Error(err, 'OAUTH2_TRIGGER_STATE_FAILED') ? err : stateFailure('Trigger state: the store failed.', err);
}

/**
 * fetch is documented to throw OAuth2Error; anything else is a bug or an unexpected failure below it. Its
 * message is not copied (it could quote a URL or a body); the cause is kept for debugging.
 */
function asFetchError(err: unknown): OAuth2Error {
  return isOAuth2Error(err)
    ? err
    : new OAuth2Error('OAUTH2_REQUEST_FAILED', 'The poll request failed.', { params: { host: '?', attempts: 1 }, cause: err, retryable: true });
}

/** The API's time for this poll: its Date header when it sent a usable one, else this machine's at the start. */
function apiTime(result: FetchResult, localNow: number): number {
  const server = result.serverTime;
  return typeof server === 'number' && Number.isFinite(server) ? server : localNow;
}

/** Same entries in any order; an entry that only lost its content digest (onlyDigestDropped) counts as the same. */
function sameEntries(a: Array<[string, string]>, b: Array<[string, string]>, detection: ChangeDetection): boolean {
  if (a.length !== b.length) return false;
  const same = (before: string | undefined, after: string): boolean =>
    before === after || (before !== undefined && onlyDigestDropped(before, after, detection));
  let inOrder = true;
  for (let i = 0; i < a.length; i++) {
    if (a[i][0] !== b[i][0] || !same(a[i][1], b[i][1])) {
      inOrder = false;
      break;
    }
  }
  if (inOrder) return true;
  const map = new Map(a);
  if (map.size !== a.length) return false;
  return b.every(([id, version]) => same(map.get(id), version));
}

/**
 * Whether `next` differs from `state` in anything but the order of `seen`, or content digests dropped as records
 * leave the digest window (detect.ts). Neither is worth a write of the whole file on every poll (an API listing
 * by "updated desc" reorders every time, and Node-RED often runs on SD cards): order only decides which ids the
 * cap forgets first, and a digest left behind is dropped with the next write.
 */
function worthCommitting(state: TriggerState, next: TriggerState, detection: ChangeDetection): boolean {
  return (
    state.initialised !== next.initialised ||
    state.configKey !== next.configKey ||
    state.watermark !== next.watermark ||
    JSON.stringify(state.continuation) !== JSON.stringify(next.continuation) ||
    !sameEntries(state.seen, next.seen, detection) ||
    !sameMissing(state.missing, next.missing)
  );
}

export class RecordPoller extends EventEmitter<RecordPollerEvents> {
  private readonly opts: RecordPollerOptions;
  private readonly now: () => number;
  private readonly setTimer: (callback: () => void, ms: number) => unknown;
  private readonly clearTimer: (handle: unknown) => void;
  private readonly random: () => number;
  private readonly maxBackoffMs: number;
  private readonly maxRetryAfterMs: number;

  private started = false;
  private stopped = false;
  private timer: unknown;
  private nextPollAt: number | undefined;
  /** The running poll (polls never overlap). */
  private running: Promise<PollOutcome> | undefined;
  private abort: AbortController | undefined;
  /**
   * A poll's commit while it runs (at least once, the wait for delivery before it too): stop() and reset()
   * wait for it, so what was sent is recorded before the node closes and a reset cannot be undone by it.
   */
  private committing: Promise<void> | undefined;
  /** At most once: changes whose commit failed, sent once a later write succeeds (see above). */
  private held: { changes: DetectedChange[]; state: TriggerState } | undefined;
  /** The last commit failed: the next poll writes the state again before fetching. */
  private commitPending = false;
  /** Bumped by reset(): a poll that started before a reset throws its result away. */
  private generation = 0;
  private resetting: Promise<void> | undefined;
  private skipped = 0;
  private failures = 0;
  private lastError: OAuth2Error | undefined;
  /** wake() during a poll: if that poll fails, the next one comes at once instead of after a backoff. */
  private wakePending = false;

  constructor(opts: RecordPollerOptions) {
    super();
    const interval = opts.intervalMs;
    if (typeof interval !== 'number' || !Number.isFinite(interval) || interval <= 0) {
      throw new OAuth2Error('OAUTH2_INVALID_CONFIG', 'Invalid configuration: interval must be a positive number of ms', {
        params: { field: 'interval', reason: 'invalidInterval', value: String(interval) },
      });
    }
    this.opts = opts;
    this.now = opts.now ?? Date.now;
    this.setTimer = opts.setTimer ?? defaultSetTimer;
    this.clearTimer = opts.clearTimer ?? defaultClearTimer;
    this.random = opts.random ?? Math.random;
    this.maxBackoffMs = opts.maxBackoffMs ?? Math.max(interval, MINUTE_MS);
    this.maxRetryAfterMs = opts.maxRetryAfterMs ?? Math.max(interval, HOUR_MS);
  }

  /**
   * Starts polling: the first poll after firstPollDelayMs (default 1 s, not at once: start() runs in the node's
   * constructor, and a short delay lets the runtime finish starting, the connection load its tokens, and a
   * deploy of many triggers not hit the API in the same instant), then every intervalMs.
   */
  start(): void {
    if (this.started || this.stopped) return;
    this.started = true;
    this.schedule(this.opts.firstPollDelayMs ?? DEFAULT_FIRST_POLL_DELAY_MS);
    this.publishState();
  }

  /**
   * No more polls. A poll still fetching is aborted and its result thrown away without sending or committing:
   * nothing moved, so the next run fetches the same changes (no loss), and no message leaves a closed node. A
   * poll already committing (its messages are sent) is waited for, so what was sent is recorded. The wait is
   * therefore one store write at most, never a slow API.
   */
  async stop(): Promise<void> {
    this.stopped = true;
    this.cancelTimer();
    this.abort?.abort();
    await this.committing?.catch(() => undefined);
    // After the last commit: a standby takes over from what this instance stored.
    await this.opts.lease?.release();
  }

  /** Polls now (an input message). A poll already running → { skipped: true }, counted. Never rejects. */
  pollNow(): Promise<PollOutcome> {
    if (this.stopped) return Promise.resolve({ skipped: true });
    if (this.running) return Promise.resolve(this.skip());
    return this.poll();
  }

  /**
   * What the failures were waiting for is back (Redis reconnected): when backing off from a failure, polls now;
   * when a poll is running, a failure of it is retried at once instead of after a backoff. Otherwise nothing
   * (the schedule is not disturbed). Never throws.
   */
  wake(): void {
    if (this.stopped || !this.started) return;
    if (this.running) {
      this.wakePending = true;
      return;
    }
    if (this.failures > 0) void this.poll();
  }

  /**
   * What the next poll would send from the current state: fetches, diffs, and returns; sends and commits
   * nothing. Runs beside the schedule (it changes nothing, so it cannot break a poll). Rejects with OAuth2Error.
   */
  async preview(): Promise<PollPreview> {
    const state = await this.loadState();
    const continuation = this.continuationOf(state);
    const query = continuation ? continuation.query : watermarkQuery(state, this.opts.settings);
    const localNow = this.now();
    let result: FetchResult;
    try {
      result = await this.opts.fetch(query, new AbortController().signal, continuation?.next);
    } catch (err) {
      throw asFetchError(err);
    }
    const records = this.checkRecords(result);
    const fullList = result.complete === true && continuation === undefined;
    const detected = detectChanges(state, records, this.opts.settings, { fullList, apiNow: apiTime(result, localNow) });
    const changes = this.opts.filter && detected.changes.length > 0 ? await this.opts.filter(detected.changes) : detected.changes;
    const preview: PollPreview = { changes, stats: { ...detected.stats, complete: result.complete === true }, firstPoll: !state.initialised };
    if (detected.future) preview.future = detected.future;
    return preview;
  }

  /**
   * Forgets the state (msg.reset): the next poll is a first poll. A poll fetching now throws its result away; a
   * commit running now finishes first, then the state is deleted, so it cannot come back.
   */
  async reset(): Promise<void> {
    this.generation += 1;
    const run = (async () => {
      await this.committing?.catch(() => undefined);
      await this.opts.store.delete(this.opts.nodeId);
    })();
    const guard = run.catch(() => undefined);
    this.resetting = guard;
    try {
      await run;
      this.commitPending = false;
    } catch (err) {
      throw asStateError(err);
    } finally {
      if (this.resetting === guard) this.resetting = undefined;
    }
  }

  // --- scheduling ---------------------------------------------------------------------------------------------

  private schedule(delayMs: number): void {
    this.cancelTimer();
    if (this.stopped || !this.started) return;
    const delay = Math.max(0, delayMs);
    this.nextPollAt = this.now() + delay;
    this.timer = this.setTimer(() => this.onTimer(), delay);
  }

  private cancelTimer(): void {
    if (this.timer !== undefined) this.clearTimer(this.timer);
    this.timer = undefined;
    this.nextPollAt = undefined;
  }

  /** Runs in a timer: must not throw (invariant 10). poll() never rejects; the try covers the rest. */
  private onTimer(): void {
    this.timer = undefined;
    try {
      if (this.stopped) return;
      // Fixed rate: the next tick is due one interval after this one, whether or not this poll runs long; a
      // tick that finds a poll still running is skipped and counted. A failure reschedules with a backoff.
      this.schedule(this.opts.intervalMs);
      if (this.running) {
        this.skip();
        return;
      }
      void this.poll();
    } catch {
      // Only a listener or an injected timer function can throw here; the schedule must go on.
      if (!this.stopped && this.timer === undefined) this.schedule(this.opts.intervalMs);
    }
  }

  private skip(): PollOutcome {
    this.skipped += 1;
    const outcome: PollOutcome = { skipped: true };
    this.publish('poll-end', outcome);
    this.publishState();
    return outcome;
  }

  // --- one poll -----------------------------------------------------------------------------------------------

  private poll(): Promise<PollOutcome> {
    const controller = new AbortController();
    this.abort = controller;
    const startedAt = this.now();
    const run = this.execute(controller.signal, startedAt).then(
      (result) => result,
      (err: unknown): PollOutcome | typeof ABANDONED => ({ skipped: false, error: isOAuth2Error(err) ? err : asStateError(err) }),
    );
    const settled = run.then((result) => {
      const outcome: PollOutcome =
        result === ABANDONED
          ? { skipped: true }
          : result === STANDBY
            ? { skipped: true, standby: true }
            : result === OTHER_CONFIG
              ? { skipped: true, standby: true, otherConfig: true }
              : result;
      this.running = undefined;
      if (this.abort === controller) this.abort = undefined;
      try {
        this.afterPoll(result === ABANDONED ? undefined : outcome);
      } catch {
        // afterPoll only schedules and notifies; a throwing listener must not turn into a rejection.
      }
      return outcome;
    });
    this.running = settled;
    this.publish('poll-start');
    this.publishState();
    return settled;
  }

  private async execute(signal: AbortSignal, startedAt: number): Promise<PollOutcome | typeof ABANDONED | typeof STANDBY | typeof OTHER_CONFIG> {
    if (this.resetting) await this.resetting;
    const generation = this.generation;
    const abandoned = (): boolean => this.stopped || generation !== this.generation;
    const lease = this.opts.lease;
    if (lease && !lease.held()) {
      let taken: boolean;
      try {
        taken = await lease.acquire();
      } catch (err) {
        if (abandoned()) return ABANDONED;
        throw asStateError(err);
      }
      if (abandoned()) return ABANDONED;
      if (!taken) return STANDBY;
      // Taken: poll at once, from the shared state (loaded below, as every poll does).
    }
    /** The lease was lost during the poll (renewals failed or refused): stop before sending anything. */
    const leaseLost = (): boolean => lease !== undefined && !lease.held();

    const { state, storedConfigKey } = await this.loadStored();
    if (lease && storedConfigKey !== undefined && storedConfigKey !== this.opts.configKey) {
      // Rolling redeploy (poll-lease.ts): a configuration this instance never ran here may be the newer one.
      const older = this.opts.previousConfigKeys?.has(storedConfigKey) === true;
      if (!older && (await lease.configActive?.(storedConfigKey)) === true) {
        await lease.release();
        return abandoned() ? ABANDONED : OTHER_CONFIG;
      }
    }
    if (lease) await lease.markConfig?.(this.opts.configKey);
    if (abandoned()) return ABANDONED;
    if (this.commitPending) {
      // What the last poll sent is in memory but maybe not on disk: write it before sending anything new, so a
      // failing store holds back at most one poll's worth of at-least-once.
      await this.guarded(() => this.commit(state));
    }
    // At most once, changes held back by a failed commit go out only while the store holds the state they were
    // recorded in (another instance's state instead: it decides by itself what to send).
    if (this.held && worthCommitting(this.held.state, state, this.opts.settings.detection)) this.held = undefined;
    if (abandoned()) return ABANDONED;

    const firstPoll = !state.initialised;
    const settings = this.opts.settings;
    const localNow = this.now();
    // A list cut at Max pages by the last poll: read on from where it stopped, with the same query.
    const continuation = this.continuationOf(state);
    const query = continuation ? continuation.query : watermarkQuery(state, settings);
    let result: FetchResult;
    try {
      result = await this.opts.fetch(query, signal, continuation?.next);
    } catch (err) {
      if (abandoned()) return ABANDONED;
      if (leaseLost()) return STANDBY;
      throw asFetchError(err);
    }
    if (abandoned()) return ABANDONED;
    if (leaseLost()) return STANDBY;

    const records = this.checkRecords(result);
    const complete = result.complete === true;
    const apiNow = apiTime(result, localNow);
    // Deletions only from one poll that read the whole list: a list read over several polls was never seen whole
    // at one time (records move between pages while the polls wait), so a missing id there proves nothing.
    const detected = detectChanges(state, records, settings, { fullList: complete && continuation === undefined, apiNow });
    let next = detected.next;
    if (!complete && settings.watermark) {
      // Pages were left unread (maxPages): records on them may be older than the newest one read, and moving the
      // watermark past them would skip them for good. Keep it: the next poll asks again from the same point (or
      // from the API's time, when a stored watermark was beyond it: detectChanges brought it down).
      next = { ...next };
      if (state.watermark === undefined) delete next.watermark;
      else next.watermark = Math.min(state.watermark, detected.next.watermark ?? state.watermark);
    }
    let continuing: { pages: number; total: number; first: boolean } | undefined;
    let incomplete: OAuth2Error | undefined;
    if (!complete) {
      next = { ...next, continuation: this.continueAfter(continuation, result, query, apiNow, detected.next.watermark) };
      // A first poll read over several polls stays a first poll to its end: what the later pages hold existed
      // before the trigger did, and is remembered, not sent as created.
      if (!state.initialised) next.initialised = false;
      const { pages, stalled } = next.continuation!;
      continuing = { pages: result.pages ?? 0, total: pages, first: continuation === undefined };
      if (stalled >= STALLED_POLLS) {
        incomplete = new OAuth2Error('OAUTH2_TRIGGER_INCOMPLETE', `The list was not read to its end: ${stalled} polls in a row read no new page.`, {
          params: { polls: stalled },
        });
      }
    } else if (continuation && settings.watermark) {
      // The window is read to its end: the watermark moves to the newest updated-at of the whole episode, but not
      // past the API's time when the episode began, so a record changed on a page already read while the later
      // polls waited is listed again by the next poll (and sent once: its new version is not remembered yet).
      const newest = maxOf(continuation.watermark, detected.next.watermark);
      if (newest !== undefined) next = { ...next, watermark: Math.min(newest, watermarkCeiling(continuation.apiStart, settings)) };
    }

    let changes = this.opts.filter && detected.changes.length > 0 ? await this.opts.filter(detected.changes) : detected.changes;
    if (abandoned()) return ABANDONED;
    // Synchronous from here to the send: held() now means the lease is ours while the messages leave.
    if (leaseLost()) return STANDBY;
    const remembered = changes.some((change) => change.event === 'deleted') ? new Map(state.seen) : undefined;
    for (const change of changes) change.key = changeKey(change, settings.detection, remembered?.get(change.id));
    const worth = worthCommitting(state, next, settings.detection);
    if (this.opts.delivery === 'at-most-once') {
      const sending = this.held ? [...this.held.changes, ...changes] : changes;
      if (worth) {
        try {
          await this.guarded(() => this.commit(next));
        } catch (err) {
          if (sending.length > 0) this.held = { changes: sending, state: next };
          throw err;
        }
      }
      this.held = undefined;
      // Recorded: sent now even when the node stopped during the commit (a redeploy must not lose them), and
      // never again. A throw here loses them, as a crash would.
      if (sending.length > 0) {
        try {
          void Promise.resolve(this.opts.emit(sending)).catch(() => undefined);
        } catch (err) {
          throw stateFailure('The changes were recorded but could not be sent (at most once: they are not sent again).', err, { reason: 'emit' });
        }
      }
      changes = sending;
    } else {
      let delivered: void | Promise<void> = undefined;
      if (changes.length > 0) {
        try {
          delivered = this.opts.emit(changes);
        } catch (err) {
          throw stateFailure('The changes could not be sent; the state was not moved, the next poll sends them again.', err, {
            reason: 'emit',
          });
        }
      }
      // From the send to the end of the commit, stop() and reset() wait: the messages are out, so what they
      // carry is recorded once they reached the next nodes, even when the node is closing meanwhile.
      await this.guarded(async () => {
        try {
          await delivered;
        } catch (err) {
          throw stateFailure('The changes may not have reached the next nodes; the state was not moved, the next poll sends them again.', err, {
            reason: 'delivery',
          });
        }
        if (worth) await this.commit(next);
      });
    }

    const outcome: PollOutcome = {
      skipped: false,
      changes: changes.length,
      emitted: changes.map((change) => change.event),
      firstPoll,
      stats: { ...detected.stats, complete },
      durationMs: Math.max(0, this.now() - startedAt),
    };
    if (detected.future) outcome.future = detected.future;
    if (continuing) outcome.continuing = continuing;
    if (incomplete) outcome.incomplete = incomplete;
    return outcome;
  }

  /** The stored continuation, when it was made with this pagination (another one discards it). */
  private continuationOf(state: TriggerState): Continuation | undefined {
    const continuation = state.continuation;
    return continuation && continuation.key === (this.opts.continuationKey ?? '') ? continuation : undefined;
  }

  /**
   * The continuation after a poll cut short. Progress is a new continuation point, one this episode has not
   * stopped at before; without one (a next link that never advances, a cursor that loops, a list the API ends
   * nowhere) the poll counts as stalled and the point stays where it was, so nothing is skipped.
   */
  private continueAfter(
    before: Continuation | undefined,
    result: FetchResult,
    query: Record<string, string>,
    apiNow: number,
    newest: number | undefined,
  ): Continuation {
    const points = before?.points ?? [];
    const point = result.next ? pointDigest(result.next) : undefined;
    const progress = point !== undefined && !points.includes(point);
    const after: Continuation = {
      key: this.opts.continuationKey ?? '',
      query: { ...query },
      pages: (before?.pages ?? 0) + (result.pages ?? 0),
      stalled: progress ? 0 : (before?.stalled ?? 0) + 1,
      apiStart: before?.apiStart ?? apiNow,
      points: progress ? [...points, point].slice(-CONTINUATION_POINTS) : points,
    };
    const next = result.next ?? before?.next;
    if (next) after.next = { url: next.url, pages: next.pages, offset: next.offset, ...(next.body !== undefined ? { body: next.body } : {}) };
    const watermark = maxOf(before?.watermark, newest);
    if (watermark !== undefined) after.watermark = watermark;
    return after;
  }

  /** The stored state, or a fresh one (first-poll semantics) when there is none or it watched something else. */
  private async loadState(): Promise<TriggerState> {
    return (await this.loadStored()).state;
  }

  /** loadState(), and the configuration of the stored state (undefined: none stored). */
  private async loadStored(): Promise<{ state: TriggerState; storedConfigKey: string | undefined }> {
    let stored: TriggerState | undefined;
    try {
      stored = await this.opts.store.get(this.opts.nodeId);
    } catch (err) {
      throw asStateError(err);
    }
    if (stored && stored.configKey === this.opts.configKey) return { state: stored, storedConfigKey: stored.configKey };
    return { state: { version: 1, configKey: this.opts.configKey, initialised: false, seen: [] }, storedConfigKey: stored?.configKey };
  }

  private async commit(state: TriggerState): Promise<void> {
    const lease = this.opts.lease;
    try {
      await (lease ? lease.commit(this.opts.nodeId, state) : this.opts.store.set(this.opts.nodeId, state));
      this.commitPending = false;
    } catch (err) {
      this.commitPending = true;
      throw asStateError(err);
    }
  }

  /** Runs `work` (a commit, or a wait for delivery and a commit) as what stop() and reset() wait for. */
  private guarded(work: () => Promise<void>): Promise<void> {
    const run = work();
    this.committing = run;
    const clear = (): void => {
      if (this.committing === run) this.committing = undefined;
    };
    run.then(clear, clear);
    return run;
  }

  /** The adapter finds the records; a non-list here is a bug or a JSONata result, reported like a missing path. */
  private checkRecords(result: FetchResult): unknown[] {
    const records: unknown = (result as Partial<FetchResult> | undefined)?.records;
    if (!Array.isArray(records)) {
      throw new OAuth2Error('OAUTH2_RECORDS_NOT_FOUND', 'The poll did not produce a list of records.', {
        params: { path: DEFAULT_RECORD_PROPERTIES.join(', ') },
      });
    }
    return records;
  }

  // --- after a poll -------------------------------------------------------------------------------------------

  /** Schedules the next poll from the outcome (undefined: abandoned) and tells listeners. */
  private afterPoll(outcome: PollOutcome | undefined): void {
    const woken = this.wakePending;
    this.wakePending = false;
    if (outcome?.skipped && outcome.standby && this.opts.lease) {
      // Another instance polls: Redis answered, so no failure to back off from; try again about when its
      // holding could run out, at most half a lease and never later than the interval.
      this.failures = 0;
      this.lastError = undefined;
      this.schedule(Math.max(1, Math.min(this.opts.intervalMs, this.opts.lease.retryDelayMs())));
    }
    if (outcome && !outcome.skipped) {
      if ('error' in outcome) {
        this.failures += 1;
        this.lastError = outcome.error;
        // Woken during the poll (Redis back): the failure is most likely the outage that just ended.
        this.schedule(woken ? 0 : this.backoffMs(outcome.error));
      } else if (this.failures > 0) {
        // Back to the normal rhythm from now, not from the backoff's schedule.
        this.failures = 0;
        this.lastError = undefined;
        this.schedule(this.opts.intervalMs);
      }
    }
    if (outcome) this.publish('poll-end', outcome);
    this.publishState();
  }

  /**
   * Wait after the n-th consecutive failure: exponential backoff with full jitter (retry.ts), the ceiling
   * doubling from 2 × interval up to maxBackoffMs, never less than the interval (a failure must not make the
   * trigger poll faster than the user agreed to), and at least the server's Retry-After, capped at
   * maxRetryAfterMs (a server asking for days would otherwise silence the trigger that long).
   */
  private backoffMs(error: OAuth2Error): number {
    const interval = this.opts.intervalMs;
    const jittered = backoffDelay(this.failures, { baseDelayMs: 2 * interval, maxDelayMs: this.maxBackoffMs }, this.random);
    const asked = error.params.retryAfterMs;
    const retryAfter = typeof asked === 'number' && Number.isFinite(asked) && asked > 0 ? Math.min(asked, this.maxRetryAfterMs) : 0;
    return Math.max(interval, jittered, retryAfter);
  }

  private publishState(): void {
    const state: PollerState = {
      kind: this.running ? 'polling' : this.failures > 0 ? 'backoff' : 'idle',
      skipped: this.skipped,
      failures: this.failures,
      nextPollAt: this.nextPollAt,
    };
    if (this.lastError) state.lastError = this.lastError;
    this.publish('state', state);
  }

  /** Listener errors stay in the listener: a status update must never break a poll or escape a timer. */
  private publish<K extends keyof RecordPollerEvents>(event: K, ...args: RecordPollerEvents[K]): void {
    try {
      (this.emit as (event: K, ...args: RecordPollerEvents[K]) => boolean)(event, ...args);
    } catch {
      // ignored on purpose, see above
    }
  }
}
