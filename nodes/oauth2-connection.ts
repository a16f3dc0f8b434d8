import * as os from 'node:os';
import * as path from 'node:path';
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

/** A login made in the editor for a connection that is never deployed is forgotten after this long. */
const UNDEPLOYED_LOGIN_GRACE_MS = 24 * 60 * 60 * 1000;

/**
 * The runtime's current module instance. Node-RED calls this module's function once per runtime, the test
 * helper once per load: the one `flows:started` listener always works on the latest.
 */
let current: { RED: NodeAPI; store: SharedTokenStore; removed: Set<string> } | undefined;
let listening = false;

/**
 * Removes the tokens of connections that are no longer in the flow configuration. Runs after each deploy
 * rather than in the node's close handler: Node-RED also closes nodes as "removed" when their flow is
 * disabled, and a disabled flow must keep its login. `eachNode` covers disabled flows too.
 */
async function forgetRemovedConnections(): Promise<void> {
  if (!current) return;
  const { RED, store, removed } = current;
  const configured = new Set<string>();
  RED.nodes.eachNode((n) => {
    if (n.type === 'oauth2-connection') configured.add(n.id);
  });
  const wasRemoved = new Set(removed);
  removed.clear();
  for (const id of await store.ids()) {
    if (configured.has(id)) continue;
    const stored = await store.get(id);
    if (wasRemoved.has(id) || !stored || Date.now() - stored.updatedAt > UNDEPLOYED_LOGIN_GRACE_MS) await store.delete(id);
  }
}


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
  const userDir = RED.settings.userDir || path.join(os.tmpdir(), 'node-red-http-oauth2');
  const store = new SharedTokenStore(userDir, () => ({
    credentialSecret: safeSetting(RED, 'credentialSecret') as string | false | undefined,
    generatedSecret: safeSetting(RED, '_credentialSecret') as string | undefined,
  }));
  const translate = (key: string, params?: ErrorParams): string => RED._(`oauth2-connection.${key}`, params);
  current = { RED, store, removed: new Set() };
  if (!listening && RED.events) {
    listening = true;
    RED.events.on('flows:started', () => {
      forgetRemovedConnections().catch((err: unknown) => {
        current?.RED.log.warn(toNodeError(err, translate).message);
      });
    });
  }

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

    node.on('close', (removed: boolean, done: () => void) => {
      connection.close();
      // Whether the connection was deleted or only its flow disabled is known once the deploy has started.
      if (removed) current?.removed.add(node.id);
      done();
    });
  }

  RED.nodes.registerType('oauth2-connection', OAuth2ConnectionNode as unknown as (this: Node<never>, def: NodeDef) => void, {
    credentials: { clientSecret: { type: 'password' }, tokens: { type: 'password' } },
  });

  registerConnectionRoutes(RED, { store, translate, mirrorToCredentials });
};

function safeSetting(RED: NodeAPI, key: string): unknown {
  try {
    return RED.settings.get(key);
  } catch {
    // Node-RED throws when settings are not loaded yet (node-red-node-test-helper).
    return undefined;
  }
}
