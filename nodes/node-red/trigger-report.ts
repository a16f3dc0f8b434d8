/**
 * What an oauth2-record-change node says about its polls: its status, and the log lines and Catch messages
 * that are said once per episode (login required, a list read over several polls) or once per run (a future
 * updated-at) rather than at every poll.
 */
import type { PollOutcome } from '../lib/changes/poller';
import type { ErrorParams, OAuth2Error } from '../lib/errors';
import { toNodeError, type NodeError } from './node-error';
import { redisUnavailable } from './trigger-stores';
import type { Node } from './types';

/** A time of day for statuses; with the date when it is not today (a daily trigger's retry is tomorrow). */
function time(ms = Date.now()): string {
  const at = new Date(ms);
  return at.toDateString() === new Date().toDateString() ? at.toLocaleTimeString() : at.toLocaleString();
}

export class TriggerReport {
  private skipped = 0;
  /** A future updated-at was reported in this run. */
  private futureSaid = false;
  /** A list read over several polls (cut at Max pages) was reported in this episode. */
  private continuingSaid = false;
  /** Login required was reported in this episode (until a poll works again). */
  private loginRequiredSaid = false;

  constructor(
    private readonly node: Node<never>,
    private readonly t: (key: string, params?: ErrorParams) => string,
    private readonly translate: (err: unknown) => NodeError,
    /** True while a poll started by a message runs: it reports through that message's done(). */
    private readonly byMessage: () => boolean,
  ) {}

  standby(): void {
    this.node.status({ fill: 'grey', shape: 'ring', text: this.t('status.standby') });
  }

  /** The poller's backoff state: when the next attempt is, and why. */
  showState(state: { kind: string; nextPollAt?: number; lastError?: OAuth2Error }): void {
    const { node, t } = this;
    if (state.kind !== 'backoff' || !state.lastError) return;
    if (redisUnavailable(state.lastError)) {
      node.status({ fill: 'red', shape: 'ring', text: t('status.redisUnavailable', { time: time(state.nextPollAt) }) });
    } else if (state.lastError.code === 'OAUTH2_LOGIN_REQUIRED') {
      this.loginRequired(state.lastError);
    } else {
      node.status({ fill: 'yellow', shape: 'ring', text: t('status.backoff', { time: time(state.nextPollAt), code: state.lastError.code }) });
    }
  }

  showOutcome(outcome: PollOutcome): void {
    const { node, t } = this;
    if (outcome.skipped && outcome.otherConfig) {
      node.status({ fill: 'grey', shape: 'ring', text: t('status.standbyOtherConfig') });
      return;
    }
    if (outcome.skipped && outcome.standby) {
      this.standby();
      return;
    }
    if (outcome.skipped) {
      this.skipped += 1;
      node.status({ fill: 'yellow', shape: 'ring', text: t('status.skipped', { count: this.skipped }) });
      return;
    }
    if ('error' in outcome) {
      if (outcome.error.code === 'OAUTH2_LOGIN_REQUIRED') {
        // A connection not logged in (yet) is a state, not a failure of each poll: the log and a Catch node
        // hear it once until a poll works again, and the status is the request node's red "login required".
        if (!this.loginRequiredSaid) this.raise(this.translate(outcome.error));
        this.loginRequiredSaid = true;
        this.loginRequired(outcome.error);
        return;
      }
      this.raise(this.translate(outcome.error));
      node.status({ fill: 'red', shape: 'ring', text: t('status.failed', { code: outcome.error.code }) });
      return;
    }
    this.loginRequiredSaid = false;
    const counts = { created: 0, updated: 0, deleted: 0 };
    for (const c of outcome.emitted ?? []) counts[c] += 1;
    const summary =
      outcome.firstPoll && outcome.changes === 0 ? t('status.first', { count: outcome.stats.records, time: time() }) : t('status.idle', { ...counts, time: time() });
    const continuing = outcome.continuing;
    if (!continuing) this.continuingSaid = false;
    if (outcome.incomplete) {
      this.raise(toNodeError(outcome.incomplete, t));
      node.status({ fill: 'yellow', shape: 'ring', text: t('status.incomplete', { summary, code: outcome.incomplete.code }) });
      return;
    }
    if (continuing) {
      if (!this.continuingSaid) {
        this.continuingSaid = true;
        node.warn(t('errors.continuing', { pages: continuing.pages }));
      }
      node.status({ fill: 'green', shape: 'ring', text: t('status.continuing', { summary, pages: continuing.total }) });
      return;
    }
    if (outcome.future && !this.futureSaid) {
      // Once per run of the node: a record already remembered is never reported again (see detectChanges),
      // and an API whose clock is off would otherwise report its new records on every poll.
      this.futureSaid = true;
      const { id, updatedAt, apiNow, count } = outcome.future;
      node.warn(t('errors.futureTimestamp', { id, updatedAt: new Date(updatedAt).toISOString(), apiNow: new Date(apiNow).toISOString(), count }));
      node.status({ fill: 'yellow', shape: 'dot', text: t('status.future', { summary, id }) });
      return;
    }
    node.status({ fill: 'green', shape: 'dot', text: summary });
  }

  private loginRequired(err: OAuth2Error): void {
    const lost = err.params.reason === 'refreshAnswerLost';
    this.node.status({ fill: 'red', shape: 'ring', text: this.t(lost ? 'status.loginRequiredAnswerLost' : 'status.loginRequired') });
  }

  /** A scheduled poll's failure reaches the log and Catch through a message of its own. */
  private raise(error: NodeError): void {
    if (!this.byMessage()) this.node.error(error, { payload: undefined, topic: 'poll' });
  }
}
