/**
 * The part of Node-RED's runtime API these nodes use, typed from @node-red/registry's createNodeApi and
 * @node-red/runtime's Node class (4.1). Written here rather than taken from a types package so the surface
 * we depend on is explicit and checked.
 */
import type { Express, RequestHandler } from 'express';
import type { EventEmitter } from 'node:events';

export type NodeStatusFill = 'red' | 'green' | 'yellow' | 'blue' | 'grey';
export interface NodeStatus {
  fill?: NodeStatusFill;
  shape?: 'ring' | 'dot';
  text?: string;
  /** The text as a catalog entry, for the editor to say in each user's language (status-text.ts). */
  i18n?: StatusText;
}

/**
 * A status text as a catalog key and its values: a value may be a text of its own (a summary inside a
 * status), and the values named in `times` are epoch milliseconds, shown as a time of day.
 */
export interface StatusText {
  key: string;
  params?: Record<string, string | number | StatusText>;
  times?: string[];
}

export interface NodeMessage {
  _msgid?: string;
  payload?: unknown;
  topic?: string;
  [key: string]: unknown;
}

export type SendFunction = (msg: NodeMessage | Array<NodeMessage | null>) => void;
export type DoneFunction = (err?: Error) => void;

export interface NodeDef {
  id: string;
  type: string;
  name?: string;
  z?: string;
  [key: string]: unknown;
}

export interface Node<Creds = Record<string, string | undefined>> extends EventEmitter {
  id: string;
  type: string;
  name?: string;
  z?: string;
  credentials: Creds;
  status(status: NodeStatus | Record<string, never>): void;
  send: SendFunction;
  log(msg: unknown): void;
  warn(msg: unknown): void;
  error(err: unknown, msg?: NodeMessage): void;
  debug(msg: unknown): void;
  trace(msg: unknown): void;
  on(event: 'input', listener: (msg: NodeMessage, send: SendFunction, done: DoneFunction) => void): this;
  on(event: 'close', listener: (removed: boolean, done: () => void) => void): this;
  on(event: string, listener: (...args: unknown[]) => void): this;
}

export interface NodeAPI {
  nodes: {
    createNode(node: Node<never>, def: NodeDef): void;
    registerType(
      type: string,
      constructor: (this: Node<never>, def: NodeDef) => void,
      options?: { credentials?: Record<string, { type: 'text' | 'password' }>; settings?: Record<string, unknown> },
    ): void;
    getNode(id: string): Node<never> | null;
    /** Every node of the flow configuration, disabled flows included. */
    eachNode(cb: (node: NodeDef) => void): void;
    getCredentials(id: string): Record<string, string | undefined> | undefined;
    addCredentials(id: string, creds: Record<string, string | undefined>): Promise<void> | void;
    deleteCredentials(id: string): void;
  };
  log: {
    info(msg: unknown): void;
    warn(msg: unknown): void;
    error(msg: unknown): void;
    debug(msg: unknown): void;
    trace(msg: unknown): void;
  };
  settings: {
    userDir?: string;
    httpRequestTimeout?: number;
    httpAdminRoot?: string | false;
    get(key: string): unknown;
    [key: string]: unknown;
  };
  events: EventEmitter;
  httpAdmin: Express;
  auth: { needsPermission(permission: string): RequestHandler };
  _(key: string, params?: Record<string, unknown>): string;
  /** The runtime's message hooks (Node-RED >= 1.3; node-red-node-test-helper's runtime has none). */
  hooks?: {
    add(hookId: string, callback: (event: unknown) => void): void;
    remove(hookId: string): void;
  };
  util: {
    cloneMessage<T>(msg: T): T;
    getMessageProperty(msg: NodeMessage, path: string): unknown;
  };
}

/** Node-RED's JSONata helpers on RED.util (not in its typings): compile once, evaluate per input. */
export interface JsonataApi {
  prepareJSONataExpression(expr: string, node: unknown): { assign(name: string, value: unknown): void };
  evaluateJSONataExpression(expr: unknown, msg: unknown, callback: (err: Error | null, result: unknown) => void): void;
}
