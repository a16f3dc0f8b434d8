import { Connection } from './lib/connection';
import { parseConnectionConfig, type ConnectionConfig } from './lib/connection-settings';
import type { ErrorParams } from './lib/errors';
import type { ConnectionState } from './lib/tokens/token-manager';
import type { StoredTokens } from './lib/tokens/token-store';
import type { ConnectionNode } from './connection-node';
import { toNodeError } from './node-errors';
import type { Node, NodeAPI, NodeDef } from './node-red-types';
import { registerConnectionRoutes } from './oauth2-connection-routes';
import { SharedTokenStore } from './shared-token-store';
import { configuredIds, registerDeploySweep } from './deploy-sweep';
import { instanceSecrets, safeSetting, storeDir } from './instance-secret';

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
  const store = new SharedTokenStore(storeDir(RED), instanceSecrets(RED));
  const translate = (key: string, params?: ErrorParams): string => RED._(`oauth2-connection.${key}`, params);
  /** Connections closed as removed by the last deploy (or only disabled: the sweep tells them apart). */
  const removed = new Set<string>();
  registerDeploySweep('oauth2-connection', RED, async () => {
    const configured = configuredIds(RED, 'oauth2-connection');
    const wasRemoved = new Set(removed);
    removed.clear();
    for (const id of await store.ids()) {
      if (configured.has(id)) continue;
      const stored = await store.get(id);
      // A login made in the dialog before the first deploy has no node yet: it gets a day to be deployed.
      if (wasRemoved.has(id) || !stored || Date.now() - stored.updatedAt > UNDEPLOYED_LOGIN_GRACE_MS) await store.delete(id);
    }
  });

  /** Node-RED's credential copy is only worth keeping when Node-RED encrypts its credential file. */
  function mirrorToCredentials(id: string, stored: StoredTokens | undefined): void {
    if (safeSetting(RED, 'credentialSecret') === false) return;
    const current = RED.nodes.getCredentials(id) ?? {};
    const next: Record<string, string | undefined> = { ...current };
    if (stored) next.tokens = JSON.stringify(stored);
    else delete next.tokens;
    void Promise.resolve(RED.nodes.addCredentials(id, next)).catch((err: unknown) => {
      RED.log.warn(toNodeError(err, translate).message);
    });
  }

  function OAuth2ConnectionNode(this: ConnectionNode, def: NodeDef & ConnectionConfig & { tls?: string }): void {
    RED.nodes.createNode(this as unknown as Node<never>, def);
    // eslint-disable-next-line @typescript-eslint/no-this-alias -- Node-RED constructors are called with `this`
    const node = this;
    node.toNodeError = (err: unknown) => toNodeError(err, translate);

    let connection: Connection;
    try {
      connection = new Connection({
        id: node.id,
        settings: parseConnectionConfig(def, node.credentials?.clientSecret, { secretRequired: false }),
        store,
      });
    } catch (err) {
      node.configError = node.toNodeError(err);
      node.error(node.configError);
      return;
    }
    node.connection = connection;
    connection.on('state', (state: ConnectionState) => {
      node.debug(`state ${state.kind}`);
    });
    connection.start(parseStoredTokens(node.credentials?.tokens)).catch((err: unknown) => {
      node.error(node.toNodeError(err));
    });

    node.on('close', (isRemoved: boolean, done: () => void) => {
      connection.close();
      // Whether the connection was deleted or only its flow disabled is known once the deploy has started.
      if (isRemoved) removed.add(node.id);
      // Token writes in flight reach the disk before Node-RED stops (SIGTERM) or the deploy goes on.
      store.flush().then(done, () => done());
    });
  }

  RED.nodes.registerType('oauth2-connection', OAuth2ConnectionNode as unknown as (this: Node<never>, def: NodeDef) => void, {
    credentials: { clientSecret: { type: 'password' }, tokens: { type: 'password' } },
  });

  registerConnectionRoutes(RED, { store, translate, mirrorToCredentials });
};
