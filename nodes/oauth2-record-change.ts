import { OAuth2Error, errorCatalogEntry, isOAuth2Error, translateCatalogEntry, type CatalogEntry, type ErrorParams } from './lib/errors';
import { RecordPoller, type FetchResult, type PollOutcome } from './lib/changes/poller';
import type { DetectedChange } from './lib/changes/types';
import type { ConnectionState } from './lib/tokens/token-manager';
import { createHash } from 'node:crypto';
import { fetchPages, type ResumePoint } from './lib/http/pagination';
import { findRecords } from './lib/http/records';
import { resolveRequestUrl, sendAuthorised, type AuthorisedRequest } from './lib/http/request';
import { parseHttpDate, parseRetryAfter, retryPolicy } from './lib/http/retry';
import { parseTriggerConfig, type ParsedTrigger, type TriggerConfig } from './lib/trigger-settings';
import type { ConnectionNode } from './connection-node';
import { configuredIds, registerDeploySweep } from './deploy-sweep';
import { instanceSecrets, storeDir } from './instance-secret';
import { NodeError, toNodeError } from './node-errors';
import type { Node, NodeAPI, NodeDef, NodeMessage } from './node-red-types';
import type { RecordChangeNode } from './record-change-node';
import { registerRecordChangeRoutes } from './oauth2-record-change-routes';
import { SharedTriggerStore, sweepRemovedTriggers, triggerStoreSelector, type AttachedTriggerStore } from './shared-trigger-store';

interface JsonataApi {
  prepareJSONataExpression(expr: string, node: unknown): { assign(name: string, value: unknown): void };
  evaluateJSONataExpression(expr: unknown, msg: unknown, callback: (err: Error | null, result: unknown) => void): void;
}

/** A time of day for statuses; with the date when it is not today (a daily trigger's retry is tomorrow). */
function time(ms = Date.now()): string {
  const at = new Date(ms);
  return at.toDateString() === new Date().toDateString() ? at.toLocaleTimeString() : at.toLocaleString();
}

/** Reasons of OAUTH2_TRIGGER_STATE_FAILED that the shared (Redis) store gives, each with its own message. */
const SHARED_STATE_REASONS = new Set(['redis-unreachable', 'redis-timeout', 'redis-auth', 'redis-other', 'leaseLost', 'stateChanged', 'undecryptable']);

function sharedStateReason(err: unknown): string | undefined {
  if (!isOAuth2Error(err, 'OAUTH2_TRIGGER_STATE_FAILED')) return undefined;
  const reason = err.params.reason;
  return typeof reason === 'string' && SHARED_STATE_REASONS.has(reason) ? reason : undefined;
}

/** Redis could not be used (as opposed to a refusal that says something about the state). */
function redisUnavailable(err: unknown): boolean {
  const reason = sharedStateReason(err);
  return reason === 'redis-unreachable' || reason === 'redis-timeout';
}

/**
 * The shared store's failures in this node's words (the connection's catalog knows only "could not be read or
 * written"), and a bad httpOAuth2.store setting: their entry in this node's catalog; undefined for anything else.
 */
function sharedStoreEntry(err: unknown): CatalogEntry | undefined {
  const reason = sharedStateReason(err);
  if (reason) return { key: `errors.sharedState.${reason}`, params: {}, paramKeys: {} };
  if (isOAuth2Error(err, 'OAUTH2_INVALID_CONFIG') && String(err.params.field ?? '').startsWith('httpOAuth2')) return errorCatalogEntry(err);
  return undefined;
}

function sharedStoreError(err: unknown, t: (key: string, params?: ErrorParams) => string): NodeError | undefined {
  const entry = sharedStoreEntry(err);
  if (!entry || !isOAuth2Error(err)) return undefined;
  const out = new NodeError(translateCatalogEntry(entry, t) ?? err.message);
  out.code = err.code;
  return out;
}

export = function register(RED: NodeAPI): void {
  // The file store (default) or the shared one on Redis, as settings.js says (httpOAuth2.store).
  const triggerStore = triggerStoreSelector(RED, new SharedTriggerStore(storeDir(RED), instanceSecrets(RED)));
  const removed = new Set<string>();
  registerDeploySweep('oauth2-record-change', RED, async () => {
    const store = triggerStore();
    if (store.kind === 'invalid') return;
    // Ids stay in `removed` until purged: a sweep failing (Redis away) leaves them for the next deploy's.
    await sweepRemovedTriggers(store, configuredIds(RED, 'oauth2-record-change'), removed);
  });
  /**
   * Per node id, the trigger configurations this runtime ran before the current one (earlier deploys): with
   * several instances, a stored state of one of them is older and may be replaced (rolling redeploys, see
   * lib/changes/poll-lease.ts).
   */
  const pastConfigs = new Map<string, Set<string>>();

  function RecordChangeNodeConstructor(this: RecordChangeNode, def: NodeDef & TriggerConfig & { connection?: string }): void {
    RED.nodes.createNode(this, def);
    // eslint-disable-next-line @typescript-eslint/no-this-alias -- Node-RED constructors are called with `this`
    const node = this;
    const t = (key: string, params?: ErrorParams): string => RED._(`oauth2-record-change.${key}`, params);
    const connectionNode = def.connection ? (RED.nodes.getNode(def.connection) as ConnectionNode | null) : null;
    const translate = (err: unknown): NodeError =>
      sharedStoreError(err, t) ?? (connectionNode ? connectionNode.toNodeError(err) : toNodeError(err, (key, params) => t(key, params)));

    let parsed: ParsedTrigger;
    let setupError: NodeError | undefined;
    try {
      parsed = parseTriggerConfig(def);
    } catch (err) {
      setupError = translate(err);
    }
    if (!setupError && !connectionNode) setupError = toNodeError(new Error(t('errors.noConnection')), () => '');
    if (!setupError && !connectionNode?.connection) setupError = connectionNode?.configError;
    // Where the trigger's memory lives: a bad httpOAuth2.store setting or a missing shared secret stops here.
    let attached: AttachedTriggerStore | undefined;
    if (!setupError) {
      try {
        attached = triggerStore().attach(node.id);
      } catch (err) {
        setupError = translate(err);
      }
    }
    if (setupError) {
      node.error(setupError);
      node.status({ fill: 'red', shape: 'ring', text: t('status.failed', { code: setupError.code ?? 'ERROR' }) });
      node.on('input', (_msg, _send, done) => done(setupError));
      return;
    }
    const config = parsed!;
    const connection = connectionNode!.connection!;
    const { store, lease, redis } = attached!;

    let jsonata: unknown;
    if (config.records.type === 'jsonata') {
      try {
        jsonata = (RED.util as unknown as JsonataApi).prepareJSONataExpression(config.records.path, node);
      } catch (err) {
        attached!.release();
        const error = toNodeError(new Error(t('errors.invalidJsonata', { message: err instanceof Error ? err.message : String(err) })), () => '');
        error.code = 'OAUTH2_INVALID_CONFIG';
        node.error(error);
        node.status({ fill: 'red', shape: 'ring', text: t('status.failed', { code: 'OAUTH2_INVALID_CONFIG' }) });
        node.on('input', (_msg, _send, done) => done(error));
        return;
      }
    }

    // The condition: compiled once at deploy, so a bad expression is a clear node error there.
    let condition: { assign(name: string, value: unknown): void } | undefined;
    if (config.condition) {
      try {
        condition = (RED.util as unknown as JsonataApi).prepareJSONataExpression(config.condition, node);
      } catch (err) {
        attached!.release();
        const error = toNodeError(new Error(t('errors.invalidCondition', { message: err instanceof Error ? err.message : String(err) })), () => '');
        error.code = 'OAUTH2_INVALID_CONFIG';
        node.error(error);
        node.status({ fill: 'red', shape: 'ring', text: t('status.failed', { code: 'OAUTH2_INVALID_CONFIG' }) });
        node.on('input', (_msg, _send, done) => done(error));
        return;
      }
    }

    /**
     * Keeps the changes whose record passes the condition ($previous: the previous watched values). One record
     * at a time, since $previous is bound on the shared expression. An expression that fails on a record (a
     * type error, say) does not pass it and says why in a warning: the poll goes on.
     */
    const passCondition = async (changes: DetectedChange[]): Promise<DetectedChange[]> => {
      if (!condition) return changes;
      const kept: DetectedChange[] = [];
      for (const change of changes) {
        condition.assign('previous', change.previousValues ?? {});
        try {
          const verdict = await new Promise<unknown>((resolve, reject) => {
            (RED.util as unknown as JsonataApi).evaluateJSONataExpression(condition, change.record, (err, result) => (err ? reject(err) : resolve(result)));
          });
          if (verdict === true) kept.push(change);
        } catch (err) {
          node.warn(t('errors.conditionFailed', { id: change.id, message: err instanceof Error ? err.message : String(err) }));
        }
      }
      return kept;
    };

    const evaluateJsonata = (body: unknown): Promise<unknown> =>
      new Promise((resolve, reject) => {
        (RED.util as unknown as JsonataApi).evaluateJSONataExpression(jsonata, body, (err, result) => (err ? reject(err) : resolve(result)));
      });

    const recordsOf = async (body: unknown): Promise<unknown[] | undefined> => {
      if (config.records.type === 'auto') return findRecords(body);
      if (config.records.type === 'path') return findRecords(body, config.records.path);
      const result = await evaluateJsonata(body);
      return Array.isArray(result) ? result : result === undefined ? undefined : [result];
    };

    /** One poll's fetch: the list, every page of it, through the connection. Throws OAuth2Error. */
    const fetchList = async (query: Record<string, string>, signal: AbortSignal, resume?: ResumePoint): Promise<FetchResult> => {
      const url = resolveRequestUrl(config.url, connection.settings.apiBaseUrl);
      for (const [name, value] of Object.entries(query)) url.searchParams.set(name, value);
      const first: AuthorisedRequest = {
        method: 'GET',
        url: url.href,
        headers: { accept: 'application/json' },
        timeoutMs: config.timeoutMs ?? 60_000,
        responseMode: 'obj',
        followRedirects: true,
        maxRedirects: 5,
        // The poller backs off between polls; inside a poll, one quick retry of a transient failure is enough.
        retry: retryPolicy({ maxAttempts: 2 }),
        maxResponseBytes: config.maxResponseBytes,
        // A node closing (redeploy) abandons the poll: nothing was emitted, so nothing is lost.
        signal,
      };
      const records: unknown[] = [];
      let serverTime: number | undefined;
      const result = await fetchPages(
        first,
        config.pagination,
        // A JSONata expression may filter the page's list: the list the automatic lookup finds, when it finds
        // one, is what says the page is empty (lib/http/pagination.ts, listOf).
        {
          maxPages: config.maxPages,
          findRecords: recordsOf,
          keepPages: false,
          ...(resume ? { resume } : {}),
          ...(config.records.type === 'jsonata' ? { listOf: (body: unknown) => findRecords(body) } : {}),
        },
        (req) => sendAuthorised(req, { authorizer: connection, agents: connection.agents }),
        async (page) => {
          const { response } = page;
          if (response.statusCode < 200 || response.statusCode >= 300) {
            const retryAfterMs = parseRetryAfter(response.headers['retry-after']);
            throw new OAuth2Error('OAUTH2_HTTP_STATUS', `HTTP ${response.statusCode}`, {
              statusCode: response.statusCode,
              retryable: response.statusCode === 429 || response.statusCode >= 500,
              params: { statusCode: response.statusCode, retryAfterMs },
            });
          }
          if (response.decodeWarning) {
            throw new OAuth2Error('OAUTH2_RESPONSE_DECODE_FAILED', 'The list response is not JSON');
          }
          // The API's clock when the poll began reading: it bounds the watermark (lib/changes/watermark.ts).
          if (page.index === 0) serverTime = parseHttpDate(response.headers.date);
          const found = page.records;
          if (!found) {
            throw new OAuth2Error('OAUTH2_RECORDS_NOT_FOUND', 'No records list found in the response', {
              params: { path: config.records.path || 'data, items, results, records, value' },
            });
          }
          for (const record of found) records.push(record);
        },
      );
      const out: FetchResult = { records, complete: result.complete, pages: result.count };
      if (serverTime !== undefined) out.serverTime = serverTime;
      if (result.next) out.next = result.next;
      return out;
    };

    const emit = (changes: DetectedChange[]): void => {
      if (!changes.length) return;
      if (config.batch) {
        const msg: NodeMessage = {
          payload: changes.map((c) => c.record),
          event: changes.map((c) => c.event),
          topic: changes.map((c) => c.id) as unknown as string,
          version: changes.map((c) => c.version),
        };
        if (config.settings.includePrevious) msg.previous = changes.map((c) => c.previous);
        if (config.settings.watch) msg.changes = changes.map((c) => c.changes);
        node.send(msg);
        return;
      }
      const msgs = changes.map((c) => {
        const msg: NodeMessage = { payload: c.record, event: c.event, topic: c.id, version: c.version };
        if (config.settings.includePrevious && c.previous !== undefined) msg.previous = c.previous;
        if (c.changes) msg.changes = c.changes;
        return msg;
      });
      node.send([msgs] as unknown as NodeMessage[]);
    };

    const past = pastConfigs.get(node.id) ?? new Set<string>();
    pastConfigs.set(node.id, past);
    const previousConfigKeys = new Set([...past].filter((key) => key !== config.configKey));
    past.add(config.configKey);
    const poller = new RecordPoller({
      nodeId: node.id,
      configKey: config.configKey,
      // A list being read over several polls goes on only with the same paging (the URL is in configKey).
      continuationKey: createHash('sha256').update(JSON.stringify(config.pagination)).digest('base64url').slice(0, 16),
      previousConfigKeys,
      settings: config.settings,
      store,
      // Several instances (Redis): one polls this trigger at a time; without it (file store) as before.
      lease,
      fetch: fetchList,
      emit,
      filter: condition ? passCondition : undefined,
      intervalMs: config.intervalMs,
    });
    node.poller = poller;

    let skipped = 0;
    let inputPolls = 0;
    /** A future updated-at was reported in this run (status and log say it once). */
    let futureSaid = false;
    /** A list read over several polls (cut at Max pages) was reported in this episode (the log says it once). */
    let continuingSaid = false;
    /** Login required was reported in this episode (until a poll works again). */
    let loginRequiredSaid = false;
    const loginRequiredStatus = (err: OAuth2Error): void => {
      const lost = err.params.reason === 'refreshAnswerLost';
      node.status({ fill: 'red', shape: 'ring', text: t(lost ? 'status.loginRequiredAnswerLost' : 'status.loginRequired') });
    };
    const standbyStatus = (): void => node.status({ fill: 'grey', shape: 'ring', text: t('status.standby') });
    const showOutcome = (outcome: PollOutcome): void => {
      if (outcome.skipped && outcome.otherConfig) {
        node.status({ fill: 'grey', shape: 'ring', text: t('status.standbyOtherConfig') });
        return;
      }
      if (outcome.skipped && outcome.standby) {
        standbyStatus();
        return;
      }
      if (outcome.skipped) {
        skipped += 1;
        node.status({ fill: 'yellow', shape: 'ring', text: t('status.skipped', { count: skipped }) });
        return;
      }
      if ('error' in outcome) {
        if (outcome.error.code === 'OAUTH2_LOGIN_REQUIRED') {
          // A connection not logged in (yet) is a state, not a failure of each poll: the log and a Catch node
          // hear it once until a poll works again, and the status is the request node's red "login required".
          if (!inputPolls && !loginRequiredSaid) node.error(translate(outcome.error), { payload: undefined, topic: 'poll' });
          loginRequiredSaid = true;
          loginRequiredStatus(outcome.error);
          return;
        }
        // A poll started by a message reports through that message's done(); a scheduled one through a message
        // of its own, so a Catch node gets it either way.
        if (!inputPolls) node.error(translate(outcome.error), { payload: undefined, topic: 'poll' });
        node.status({ fill: 'red', shape: 'ring', text: t('status.failed', { code: outcome.error.code }) });
        return;
      }
      loginRequiredSaid = false;
      const counts = { created: 0, updated: 0, deleted: 0 };
      for (const c of outcome.emitted ?? []) counts[c] += 1;
      const summary =
        outcome.firstPoll && outcome.changes === 0 ? t('status.first', { count: outcome.stats.records, time: time() }) : t('status.idle', { ...counts, time: time() });
      const continuing = outcome.continuing;
      if (!continuing) continuingSaid = false;
      if (outcome.incomplete) {
        // A poll started by a message reports through its done() (see the input handler).
        if (!inputPolls) node.error(toNodeError(outcome.incomplete, t), { payload: undefined, topic: 'poll' });
        node.status({ fill: 'yellow', shape: 'ring', text: t('status.incomplete', { summary, code: outcome.incomplete.code }) });
        return;
      }
      if (continuing) {
        if (!continuingSaid) {
          continuingSaid = true;
          node.warn(t('errors.continuing', { pages: continuing.pages }));
        }
        node.status({ fill: 'green', shape: 'ring', text: t('status.continuing', { summary, pages: continuing.total }) });
        return;
      }
      if (outcome.future && !futureSaid) {
        // Once per run of the node: a record already remembered is never reported again (see detectChanges),
        // and an API whose clock is off would otherwise report its new records on every poll.
        futureSaid = true;
        const { id, updatedAt, apiNow, count } = outcome.future;
        node.warn(t('errors.futureTimestamp', { id, updatedAt: new Date(updatedAt).toISOString(), apiNow: new Date(apiNow).toISOString(), count }));
        node.status({ fill: 'yellow', shape: 'dot', text: t('status.future', { summary, id }) });
        return;
      }
      node.status({ fill: 'green', shape: 'dot', text: summary });
    };
    poller.on('poll-start', () => {
      node.trace('poll started');
      node.status({ fill: 'blue', shape: 'dot', text: t('status.polling') });
    });
    poller.on('poll-end', (outcome: PollOutcome) => {
      node.trace(
        outcome.skipped
          ? 'poll skipped: the previous one is still running'
          : 'error' in outcome
            ? `poll failed: ${outcome.error.code}`
            : `poll done in ${outcome.durationMs} ms: ${outcome.stats.records} records, ${outcome.changes} changes`,
      );
      showOutcome(outcome);
    });
    poller.on('state', (state: { kind: string; nextPollAt?: number; lastError?: OAuth2Error }) => {
      if (state.kind === 'backoff' && state.lastError && redisUnavailable(state.lastError)) {
        node.status({ fill: 'red', shape: 'ring', text: t('status.redisUnavailable', { time: time(state.nextPollAt) }) });
      } else if (state.kind === 'backoff' && state.lastError?.code === 'OAUTH2_LOGIN_REQUIRED') {
        loginRequiredStatus(state.lastError);
      } else if (state.kind === 'backoff' && state.lastError) {
        node.status({
          fill: 'yellow',
          shape: 'ring',
          text: t('status.backoff', { time: time(state.nextPollAt), code: state.lastError.code }),
        });
      }
    });

    node.on('input', (msg, _send, done) => {
      if (msg.reset === true) {
        poller.reset().then(
          () => {
            node.status({ fill: 'grey', shape: 'ring', text: t('status.reset') });
            done();
          },
          (err: unknown) => done(translate(err)),
        );
        return;
      }
      inputPolls += 1;
      poller
        .pollNow()
        .then(
          (outcome) =>
            done(
              outcome.skipped ? undefined : 'error' in outcome ? translate(outcome.error) : outcome.incomplete ? toNodeError(outcome.incomplete, t) : undefined,
            ),
          (err: unknown) => done(translate(isOAuth2Error(err) ? err : new OAuth2Error('OAUTH2_TRIGGER_STATE_FAILED', String(err)))),
        )
        .finally(() => {
          inputPolls -= 1;
        });
    });

    // After a login (or the token endpoint coming back), poll at once rather than wait out the backoff that
    // the failures while logged out built up.
    let lastPollFailed = false;
    poller.on('poll-end', (outcome: PollOutcome) => {
      if (!outcome.skipped) lastPollFailed = 'error' in outcome;
    });
    const onConnectionState = (state: ConnectionState): void => {
      if (state.kind === 'ready' && lastPollFailed) {
        lastPollFailed = false;
        void poller.pollNow();
      }
    };
    connection.on('state', onConnectionState);

    // Redis back after an outage (also one this node was deployed in): poll (or try for the lease) at once
    // rather than wait out the backoff; a poll failing right now is retried at once too.
    // The lease also lapses when its renewals fail because Redis is away: that is not another instance polling.
    let lapsedInOutage = false;
    const onRedisBack = (): void => {
      poller.wake();
      if (lapsedInOutage) {
        // No poll failed (the outage fell between polls), so wake() has nothing to retry: try for the lease now
        // rather than show the outage until the next interval.
        lapsedInOutage = false;
        void poller.pollNow();
      }
    };
    redis?.on('reconnected', onRedisBack);
    // Another instance took the trigger over (this one's renewals were refused): say so at once.
    const onLeaseLost = (): void => {
      if (redis && redis.status() !== 'ready') {
        lapsedInOutage = true;
        node.status({ fill: 'red', shape: 'ring', text: t('status.redisAway') });
      } else {
        standbyStatus();
      }
    };
    lease?.on('lost', onLeaseLost);

    node.on('close', (isRemoved: boolean, done: () => void) => {
      connection.removeListener('state', onConnectionState);
      redis?.removeListener('reconnected', onRedisBack);
      lease?.removeListener('lost', onLeaseLost);
      if (isRemoved) removed.add(node.id);
      // The trigger state written by the last poll is stored before Node-RED stops (SIGTERM); stop() also
      // releases the lease, so another instance takes the trigger over at once.
      poller
        .stop()
        .then(() => store.flush())
        .then(
          () => undefined,
          () => undefined,
        )
        .finally(() => {
          attached!.release();
          done();
        });
    });

    poller.start();
  }

  RED.nodes.registerType('oauth2-record-change', RecordChangeNodeConstructor as unknown as (this: Node<never>, def: NodeDef) => void);
  registerRecordChangeRoutes(RED, { describe: sharedStoreEntry });
};
