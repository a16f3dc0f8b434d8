import { OAuth2Error, isOAuth2Error, type ErrorParams } from './lib/errors';
import { listFetcher, recordsRule } from './lib/changes/list-fetch';
import { changeMessages } from './lib/changes/messages';
import { RecordPoller, type PollOutcome } from './lib/changes/poller';
import type { DetectedChange } from './lib/changes/types';
import type { ConnectionState } from './lib/tokens/token-manager';
import { createHash } from 'node:crypto';
import { parseTriggerConfig, type ParsedTrigger, type TriggerConfig } from './lib/trigger-settings';
import type { ConnectionNode } from './node-red/connection-node';
import { DELIVERY_TIMEOUT_MS, DeliveryTracker } from './node-red/delivery-tracker';
import { configuredIds, registerDeploySweep } from './node-red/deploy-sweep';
import { NodeError, toNodeError } from './node-red/node-error';
import { localizedStatus, publishStatusEntries } from './node-red/status-text';
import type { JsonataApi, Node, NodeAPI, NodeDef, NodeMessage } from './node-red/types';
import type { RecordChangeNode } from './node-red/record-change-node';
import { registerRecordChangeRoutes } from './oauth2-record-change-routes';
import { TriggerReport } from './node-red/trigger-report';
import { sharedStoreEntry, sharedStoreError, sweepRemovedTriggers, triggerStoreSelector, type AttachedTriggerStore } from './node-red/trigger-stores';


export = function register(RED: NodeAPI): void {
  // The file store (default) or the shared one on Redis, as settings.js says (httpOAuth2.store).
  const triggerStore = triggerStoreSelector(RED);
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
    // The status's catalog entry goes to the editor, which says it in its user's language.
    publishStatusEntries(RED as unknown as Parameters<typeof publishStatusEntries>[0], node);
    const t = (key: string, params?: ErrorParams): string => RED._(`oauth2-record-change.${key}`, params);
    const connectionNode = def.connection ? (RED.nodes.getNode(def.connection) as ConnectionNode | null) : null;
    const jsonataApi = RED.util as unknown as JsonataApi;
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
      node.status(localizedStatus('red', 'ring', { key: 'status.failed', params: { code: setupError.code ?? 'ERROR' } }, 'oauth2-record-change', t));
      node.on('input', (_msg, _send, done) => done(setupError));
      return;
    }
    const config = parsed!;
    const connection = connectionNode!.connection!;
    const { store, lease, redis } = attached!;

    /** Compiles an expression at deploy, so a bad one is a clear node error there (undefined then). */
    const compile = (expression: string, errorKey: string): { assign(name: string, value: unknown): void } | undefined => {
      try {
        return jsonataApi.prepareJSONataExpression(expression, node);
      } catch (err) {
        attached!.release();
        const error = toNodeError(new Error(t(errorKey, { message: err instanceof Error ? err.message : String(err) })), () => '');
        error.code = 'OAUTH2_INVALID_CONFIG';
        node.error(error);
        node.status(localizedStatus('red', 'ring', { key: 'status.failed', params: { code: 'OAUTH2_INVALID_CONFIG' } }, 'oauth2-record-change', t));
        node.on('input', (_msg, _send, done) => done(error));
        return undefined;
      }
    };
    const evaluate = (expression: unknown, input: unknown): Promise<unknown> =>
      new Promise((resolve, reject) => {
        jsonataApi.evaluateJSONataExpression(expression, input, (err, result) => (err ? reject(err) : resolve(result)));
      });
    let jsonata: unknown;
    if (config.records.type === 'jsonata') {
      jsonata = compile(config.records.path, 'errors.invalidJsonata');
      if (!jsonata) return;
    }
    // The condition, with $previous (the previous watched values).
    let condition: { assign(name: string, value: unknown): void } | undefined;
    if (config.condition) {
      condition = compile(config.condition, 'errors.invalidCondition');
      if (!condition) return;
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
          const verdict = await evaluate(condition, change.record);
          if (verdict === true) kept.push(change);
        } catch (err) {
          node.warn(t('errors.conditionFailed', { id: change.id, message: err instanceof Error ? err.message : String(err) }));
        }
      }
      return kept;
    };

    const fetchList = listFetcher(
      config,
      { authorizer: connection, agents: connection.agents, apiBaseUrl: connection.settings.apiBaseUrl, values: () => connection.values() },
      recordsRule(config.records, (body) => evaluate(jsonata, body)),
    );
    // At least once, a poll is recorded once its messages reached the next nodes (delivery-tracker.ts). Every
    // Node-RED this package runs on (>= 4) has RED.hooks; without them a poll is recorded once node.send() returned.
    const tracker = config.delivery === 'at-least-once' && RED.hooks ? new DeliveryTracker(RED.hooks, node.id) : undefined;
    let warnedSlowDelivery = false;
    const emit = (changes: DetectedChange[]): Promise<void> | void => {
      const msgs = changeMessages(changes, { batch: config.batch, includePrevious: config.settings.includePrevious === true, watch: Boolean(config.settings.watch) });
      if (!msgs.length) return;
      // What the provider told the connection (its instance URL, tenant id...), never a token.
      const values = connection.values();
      for (const msg of msgs) (msg as { oauth2?: unknown }).oauth2 = { ...values };
      // One output: a batch is one message, otherwise the changes go out in order as a sequence.
      const send = (): void => node.send((config.batch ? msgs[0] : [msgs]) as unknown as NodeMessage[]);
      if (!tracker) return send();
      return tracker.send(send).then((result) => {
        if (result === 'timeout' && !warnedSlowDelivery) {
          warnedSlowDelivery = true;
          node.warn(t('errors.deliveryTimeout', { seconds: DELIVERY_TIMEOUT_MS / 1000 }));
        }
      });
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
      delivery: config.delivery,
    });
    node.poller = poller;

    let inputPolls = 0;
    // A poll started by a message reports through that message's done(); a scheduled one through node.error.
    const report = new TriggerReport(node, t, translate, () => inputPolls > 0);
    poller.on('poll-start', () => {
      node.trace('poll started');
      node.status(localizedStatus('blue', 'dot', { key: 'status.polling' }, 'oauth2-record-change', t));
    });
    poller.on('poll-end', (outcome: PollOutcome) => {
      node.trace(
        outcome.skipped
          ? 'poll skipped: the previous one is still running'
          : 'error' in outcome
            ? `poll failed: ${outcome.error.code}`
            : `poll done in ${outcome.durationMs} ms: ${outcome.stats.records} records, ${outcome.changes} changes`,
      );
      report.showOutcome(outcome);
    });
    poller.on('state', (state: { kind: string; nextPollAt?: number; lastError?: OAuth2Error }) => report.showState(state));

    node.on('input', (msg, _send, done) => {
      if (msg.reset === true) {
        poller.reset().then(
          () => {
            node.status(localizedStatus('grey', 'ring', { key: 'status.reset' }, 'oauth2-record-change', t));
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
        node.status(localizedStatus('red', 'ring', { key: 'status.redisAway' }, 'oauth2-record-change', t));
      } else {
        report.standby();
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
          tracker?.close();
          attached!.release();
          done();
        });
    });

    poller.start();
  }

  RED.nodes.registerType('oauth2-record-change', RecordChangeNodeConstructor as unknown as (this: Node<never>, def: NodeDef) => void);
  registerRecordChangeRoutes(RED, { describe: sharedStoreEntry });
};
