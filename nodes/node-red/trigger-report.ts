/**
 * What an oauth2-record-change node says about its polls: its status, and the log lines and Catch messages
 * that are said once per episode (login required, a list read over several polls) or once per run (a future
 * updated-at) rather than at every poll.
 */
import type { PollOutcome } from '../lib/changes/poller';
import type { ErrorParams, OAuth2Error } from '../lib/errors';
import { toNodeError, type NodeError } from './node-error';
import { localizedStatus } from './status-text';
import { redisUnavailable } from './trigger-stores';
import type { Node, NodeStatusFill, StatusText } from './types';

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
    this.say('grey', 'ring', { key: 'status.standby' });
  }

  /** A status the editor says in its user's language (status-text.ts). */
  private say(fill: NodeStatusFill, shape: 'ring' | 'dot', text: StatusText): void {
    this.node.status(localizedStatus(fill, shape, text, 'oauth2-record-change', this.t));
  }

  /** The poller's backoff state: when the next attempt is, and why. */
  showState(state: { kind: string; nextPollAt?: number; lastError?: OAuth2Error }): void {
    if (state.kind !== 'backoff' || !state.lastError) return;
    const at = state.nextPollAt ?? Date.now();
    if (redisUnavailable(state.lastError)) {
      this.say('red', 'ring', { key: 'status.redisUnavailable', params: { time: at }, times: ['time'] });
    } else if (state.lastError.code === 'OAUTH2_LOGIN_REQUIRED') {
      this.loginRequired(state.lastError);
    } else {
      this.say('yellow', 'ring', { key: 'status.backoff', params: { time: at, code: state.lastError.code }, times: ['time'] });
    }
  }

  showOutcome(outcome: PollOutcome): void {
    const { node, t } = this;
    if (outcome.skipped && outcome.otherConfig) {
      this.say('grey', 'ring', { key: 'status.standbyOtherConfig' });
      return;
    }
    if (outcome.skipped && outcome.standby) {
      this.standby();
      return;
    }
    if (outcome.skipped) {
      this.skipped += 1;
      this.say('yellow', 'ring', { key: 'status.skipped', params: { count: this.skipped } });
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
      this.say('red', 'ring', { key: 'status.failed', params: { code: outcome.error.code } });
      return;
    }
    this.loginRequiredSaid = false;
    const counts = { created: 0, updated: 0, deleted: 0 };
    for (const c of outcome.emitted ?? []) counts[c] += 1;
    const now = Date.now();
    const summary: StatusText =
      outcome.firstPoll && outcome.changes === 0
        ? { key: 'status.first', params: { count: outcome.stats.records, time: now }, times: ['time'] }
        : { key: 'status.idle', params: { ...counts, time: now }, times: ['time'] };
    const continuing = outcome.continuing;
    if (!continuing) this.continuingSaid = false;
    if (outcome.incomplete) {
      this.raise(toNodeError(outcome.incomplete, t));
      this.say('yellow', 'ring', { key: 'status.incomplete', params: { summary, code: outcome.incomplete.code } });
      return;
    }
    if (continuing) {
      if (!this.continuingSaid) {
        this.continuingSaid = true;
        node.warn(t('errors.continuing', { pages: continuing.pages }));
      }
      this.say('green', 'ring', { key: 'status.continuing', params: { summary, pages: continuing.total } });
      return;
    }
    if (outcome.future && !this.futureSaid) {
      // Once per run of the node: a record already remembered is never reported again (see detectChanges),
      // and an API whose clock is off would otherwise report its new records on every poll.
      this.futureSaid = true;
      const { id, updatedAt, apiNow, count } = outcome.future;
      node.warn(t('errors.futureTimestamp', { id, updatedAt: new Date(updatedAt).toISOString(), apiNow: new Date(apiNow).toISOString(), count }));
      this.say('yellow', 'dot', { key: 'status.future', params: { summary, id } });
      return;
    }
    this.say('green', 'dot', summary);
  }

  private loginRequired(err: OAuth2Error): void {
    const lost = err.params.reason === 'refreshAnswerLost';
    this.say('red', 'ring', { key: lost ? 'status.loginRequiredAnswerLost' : 'status.loginRequired' });
  }

  /** A scheduled poll's failure reaches the log and Catch through a message of its own. */
  private raise(error: NodeError): void {
    if (!this.byMessage()) this.node.error(error, { payload: undefined, topic: 'poll' });
  }
}
