import { Connection, type ConnectionOptions } from './lib/connection';
import { parseConnectionConfig, type ConnectionConfig } from './lib/connection-settings';
import { OAuth2Error, isOAuth2Error, type ErrorParams } from './lib/errors';
import type { RedisConnection, RedisStatus } from './lib/redis/client';
import { describeRedis } from './lib/redis/settings';
import type { ConnectionState } from './lib/tokens/token-manager';
import type { StoredTokens } from './lib/tokens/token-store';
import type { ConnectionNode } from './node-red/connection-node';
import { toNodeError, type NodeError } from './node-red/node-error';
import type { JsonataApi, Node, NodeAPI, NodeDef } from './node-red/types';
import { registerConnectionRoutes } from './oauth2-connection-routes';
import { runtimeSetting, storeBackend } from './node-red/store-backend';
import { tokenStoreSelector, type AttachedTokenStore, type RuntimeTokenStore } from './node-red/token-stores';
import { configuredIds, registerDeploySweep } from './node-red/deploy-sweep';
import { safeSetting } from './node-red/instance-secret';
import { proxyOf } from './node-red/proxy-node';
import { useProxyOptions } from './lib/http/proxy';

/** Token-store failure reasons with a text of their own in the catalog (reason.<name>). */
const STORE_REASONS = new Set(['redis-unreachable', 'redis-timeout', 'redis-auth', 'redis-other', 'lockBusy', 'lockLost', 'superseded', 'undecryptable']);

/** Login-required reasons with a text of their own in the catalog (loginRequired.<name>). */
const LOGIN_REQUIRED_REASONS = new Set(['refreshAnswerLost', 'renewerStopped', 'providerChanged', 'awaitsDeploy']);

/** Redis connections whose outages are already logged (one log line per outage, not one per connection node). */
const watchedRedis = new WeakSet<RedisConnection>();

/** A login made in the editor for a connection that is never deployed is forgotten after this long. */
const UNDEPLOYED_LOGIN_GRACE_MS = 24 * 60 * 60 * 1000;

function parseStoredTokens(json: string | undefined): StoredTokens | undefined {
  if (!json) return undefined;
  try {
    const value = JSON.parse(json) as StoredTokens;
    return value && typeof value === 'object' && value.tokens && typeof value.updatedAt === 'number' ? value : undefined;
  } catch {
    return undefined;
  }
}

export = function register(RED: NodeAPI): void {
  // Node-RED's proxyOptions shape every environment proxy lookup, as for its own http request node.
  useProxyOptions(runtimeSetting(RED, 'proxyOptions'));
  // Chosen once, when the module loads: the login routes and every connection node share it.
  const backend = storeBackend(RED);
  const store: RuntimeTokenStore = tokenStoreSelector(RED)();
  const translate = (key: string, params?: ErrorParams): string => {
    const text = RED._(`oauth2-connection.${key}`, params);
    // i18next answers a key that names a group of keys (field.httpOAuth2) with a sentence about it: not a text.
    return typeof text === 'string' && !/returned an object instead of string/.test(text) ? text : key;
  };
  /** Engine errors as Node-RED errors; a token store failure says why when it knows (Redis away, lock busy...). */
  const translateEngineError = (err: unknown): NodeError => {
    const out = toNodeError(err, translate);
    if (isOAuth2Error(err, 'OAUTH2_TOKEN_STORE_FAILED') && STORE_REASONS.has(String(err.params.reason))) {
      out.message = translate('store.failedWithReason', { reason: translate(`reason.${String(err.params.reason)}`) });
    } else if (isOAuth2Error(err, 'OAUTH2_LOGIN_REQUIRED') && LOGIN_REQUIRED_REASONS.has(String(err.params.reason))) {
      out.message = translate(`loginRequired.${String(err.params.reason)}`);
    }
    return out;
  };

  /** Logs Redis outages of this runtime's connection once each (the nodes' status shows them too). */
  function watchRedis(redis: RedisConnection): void {
    if (watchedRedis.has(redis)) return;
    watchedRedis.add(redis);
    let down = false;
    redis.on('status', (status: RedisStatus) => {
      if (status === 'unavailable' && !down) {
        down = true;
        RED.log.warn(translate('store.redisUnavailable', { where: redis.where }));
      } else if (status === 'ready' && down) {
        down = false;
        RED.log.info(translate('store.redisBack', { where: redis.where }));
      }
    });
  }
  /** Connections closed as removed by the last deploy (or only disabled: the sweep tells them apart). */
  const removed = new Set<string>();
  registerDeploySweep('oauth2-connection', RED, async () => {
    const configured = configuredIds(RED, 'oauth2-connection');
    const wasRemoved = new Set(removed);
    removed.clear();
    try {
      for (const id of await store.ids()) {
        if (configured.has(id)) continue;
        if (backend.type === 'redis') {
          // The store belongs to every instance: one that joins with other (or no) flows must not delete the
          // others' logins. Only a removal this instance deployed itself deletes.
          if (wasRemoved.has(id)) await store.delete(id);
          continue;
        }
        const stored = await store.get(id);
        // A login made in the dialog before the first deploy has no node yet: it gets a day to be deployed.
        if (wasRemoved.has(id) || !stored || Date.now() - stored.updatedAt > UNDEPLOYED_LOGIN_GRACE_MS) await store.delete(id);
      }
    } catch (err) {
      // The store failed (Redis away during the deploy): the removals are known only here, so they are kept for
      // the next deploy's sweep rather than leaving their tokens behind for good. Deleting again is harmless.
      for (const id of wasRemoved) removed.add(id);
      throw err;
    }
  });

  /**
   * Node-RED's credential copy is only worth keeping when Node-RED encrypts its credential file. With Redis it
   * is not kept at all: Redis is the one source of truth, and a copy in each instance's flows_cred.json would
   * be stale from the first rotation on (it only seeds a Redis that never had the connection, see
   * TokenManager.init). A logout still removes a copy left from before (the file store, an older version).
   */
  function mirrorToCredentials(id: string, stored: StoredTokens | undefined): void {
    if (safeSetting(RED, 'credentialSecret') === false) return;
    if (store.kind === 'redis' && (stored || !RED.nodes.getCredentials(id)?.tokens)) return;
    const current = RED.nodes.getCredentials(id) ?? {};
    const next: Record<string, string | undefined> = { ...current };
    if (stored) next.tokens = JSON.stringify(stored);
    else delete next.tokens;
    void Promise.resolve(RED.nodes.addCredentials(id, next)).catch((err: unknown) => {
      RED.log.warn(toNodeError(err, translate).message);
    });
  }

  /**
   * The connection's "token expired" condition (ConnectionConfig.expiredWhen), compiled with Node-RED's own
   * JSONata; undefined when there is none. A condition that is not JSONata fails the node, naming the field.
   */
  function expiredCondition(source: unknown, node: unknown): ConnectionOptions['expiredWhen'] {
    const text = typeof source === 'string' ? source.trim() : '';
    if (!text) return undefined;
    const jsonata = RED.util as unknown as JsonataApi;
    let expression: unknown;
    try {
      expression = jsonata.prepareJSONataExpression(text, node);
    } catch {
      throw new OAuth2Error('OAUTH2_INVALID_CONFIG', 'Invalid configuration: expiredWhen is not a valid JSONata expression', {
        params: { field: 'expiredWhen', reason: 'invalidExpression' },
      });
    }
    return (answer) =>
      new Promise<boolean>((resolve, reject) => {
        jsonata.evaluateJSONataExpression(expression, answer, (err, result) => (err ? reject(err) : resolve(result === true)));
      });
  }

  function OAuth2ConnectionNode(this: ConnectionNode, def: NodeDef & ConnectionConfig & { tls?: string }): void {
    RED.nodes.createNode(this as unknown as Node<never>, def);
    // eslint-disable-next-line @typescript-eslint/no-this-alias -- Node-RED constructors are called with `this`
    const node = this;
    node.toNodeError = translateEngineError;

    // The token store: the file in the user directory, or Redis shared with the other instances.
    let attached: AttachedTokenStore;
    try {
      attached = store.attach();
    } catch (err) {
      node.configError = node.toNodeError(err);
      node.error(node.configError);
      node.status({ fill: 'red', shape: 'ring', text: 'oauth2-connection.status.storeInvalid' });
      return;
    }

    let connection: Connection;
    try {
      connection = new Connection({
        id: node.id,
        settings: { ...parseConnectionConfig(def, node.credentials?.clientSecret, { secretRequired: false }), proxy: proxyOf(RED, def.proxy) },
        store: attached.store,
        coordination: attached.coordination,
        expiredWhen: expiredCondition(def.expiredWhen, node),
      });
    } catch (err) {
      attached.release();
      node.configError = node.toNodeError(err);
      node.error(node.configError);
      return;
    }
    node.connection = connection;
    connection.on('state', (state: ConnectionState) => {
      node.debug(`state ${state.kind}`);
      // Said once per refusal (the backoff spaces them) and once per login lost this way, not once per message.
      if (state.kind === 'refused') {
        node.warn(translate('log.refused', {
          message: node.toNodeError(state.error).message,
          seconds: Math.max(1, Math.round((state.retryAt - Date.now()) / 1000)),
        }));
      } else if (state.kind === 'login-required' && state.error) {
        node.warn(node.toNodeError(state.error).message);
      }
    });

    // Redis: the status says when it is away (requests go on with tokens already held until they expire).
    const redis = attached.redis;
    const onRedisStatus = (status: RedisStatus): void => {
      if (status !== 'unavailable' && status !== 'ready') return;
      if (status === 'unavailable') node.status({ fill: 'yellow', shape: 'ring', text: 'oauth2-connection.status.redisUnavailable' });
      else node.status({});
      // Config nodes have no visible status: the request nodes using this connection show it instead.
      node.storeUnavailable = status === 'unavailable';
      node.emit('store-status');
    };
    if (redis) {
      watchRedis(redis);
      redis.on('status', onRedisStatus);
      if (redis.status() === 'unavailable') onRedisStatus('unavailable');
    }

    connection.start(parseStoredTokens(node.credentials?.tokens)).catch((err: unknown) => {
      node.error(node.toNodeError(err));
    });

    node.on('close', (isRemoved: boolean, done: () => void) => {
      connection.close();
      redis?.off('status', onRedisStatus);
      // Whether the connection was deleted or only its flow disabled is known once the deploy has started.
      if (isRemoved) removed.add(node.id);
      // Token writes in flight reach the disk (or Redis) before Node-RED stops (SIGTERM) or the deploy goes on.
      attached.store
        .flush()
        .catch(() => undefined)
        .then(() => {
          attached.release();
          done();
        });
    });
  }

  RED.nodes.registerType('oauth2-connection', OAuth2ConnectionNode as unknown as (this: Node<never>, def: NodeDef) => void, {
    credentials: { clientSecret: { type: 'password' }, tokens: { type: 'password' } },
  });

  registerConnectionRoutes(RED, {
    store,
    translate,
    mirrorToCredentials,
    errorText: (err) => translateEngineError(err).message,
    // host:port only (describeRedis drops user and password; the scheme is dropped too): the dialog shows it.
    redis:
      backend.type === 'redis'
        ? { where: describeRedis(backend.settings).replace(/^[a-z]+:\/\//, ''), unavailable: () => backend.connection().status() === 'unavailable' }
        : undefined,
  });
};
