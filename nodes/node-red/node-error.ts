import { OAuth2Error, translateError, type ErrorParams } from '../lib/errors';

/**
 * The error a node hands to Node-RED (`done(err)` / `node.error(err, msg)`): the translated message, and the
 * stable `code` (Node-RED copies an error's own `code` into the Catch node's `msg.error.code`). toString is the
 * message alone, since Node-RED shows `toString()` in the debug sidebar.
 */
export class NodeError extends Error {
  code?: string;
  statusCode?: number;
  oauthError?: string;

  override toString(): string {
    return this.message;
  }
}

export function toNodeError(err: unknown, translate: (key: string, params?: ErrorParams) => string): NodeError {
  const out = new NodeError(translateError(err, translate));
  if (err instanceof OAuth2Error) {
    out.code = err.code;
    if (err.statusCode !== undefined) out.statusCode = err.statusCode;
    if (err.oauthError !== undefined) out.oauthError = err.oauthError;
  }
  return out;
}
