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
        settings: parseConnectionConfig(def, node.credentials?.clientSecret),
        store,
      });
    } catch (err) {
      node.error(node.toNodeError(err));
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
      if (!removed) {
        done();
        return;
      }
      // A deleted connection takes its login with it.
      store.delete(node.id).then(done, (err: unknown) => {
        node.warn(node.toNodeError(err).message);
        done();
      });
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
