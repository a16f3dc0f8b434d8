import type { Connection } from '../lib/connection';
import type { NodeError } from './node-error';
import type { Node } from './types';

export interface ConnectionCredentials {
  clientSecret?: string;
  /** JSON of StoredTokens: Node-RED's copy of the login, written to disk by Node-RED on deploy. */
  tokens?: string;
}

/** The oauth2-connection config node as the request nodes and admin routes see it. */
export interface ConnectionNode extends Node<ConnectionCredentials> {
  /** Undefined when the configuration is invalid (the node then reports why). */
  connection?: Connection;
  /** Why `connection` is undefined: the configuration error, translated, with its code. */
  configError?: NodeError;
  toNodeError(err: unknown): NodeError;
  /**
   * True while the shared token store (Redis) cannot be reached: tokens already held still work, renewals wait.
   * The node emits 'store-status' (no arguments) whenever this changes.
   */
  storeUnavailable?: boolean;
}
