/**
 * Node statuses in each editor user's language. Node-RED's editor translates a status text that is a catalog
 * key, but cannot put values in it; a status with values (counts, a time, an error code) was therefore
 * translated here, in the server's language, for every user. A status now carries its catalog entry as well
 * (`i18n`: the key, the values, which values are times). Node-RED's comms pass a status on as text, fill and
 * shape only, so the entry travels on a topic of this package's own (STATUS_TOPIC/<node id>, retained like
 * statuses), with the server's text it belongs to; the package's editor script (resources/editor.js) says it in
 * the editor's language while that text is the node's status. `text` stays, in the server's language: what a
 * `status` node in a flow and the runtime's own tools see.
 */
import type { Node, NodeStatus, NodeStatusFill, StatusText } from './types';

/** The comms topic prefix of status entries; resources/editor.js subscribes to it. */
export const STATUS_TOPIC = 'http-oauth2-status';

interface Comms {
  publish?(topic: string, data: unknown, retain?: boolean): void;
}

/**
 * Makes `node.status` publish each status's catalog entry for the editor (see above); a status without one (or
 * a cleared status) withdraws the node's entry. Called once in a node's constructor.
 */
export function publishStatusEntries(RED: { comms?: Comms }, node: Node<never>): void {
  const publish = RED.comms?.publish;
  if (typeof publish !== 'function') return;
  const set = node.status;
  const topic = `${STATUS_TOPIC}/${node.id}`;
  let published = false;
  node.status = function (this: Node<never>, status: NodeStatus | Record<string, never>) {
    set.call(this, status);
    const entry = (status as NodeStatus).i18n;
    if (entry && typeof (status as NodeStatus).text === 'string') {
      publish.call(RED.comms, topic, { ...entry, text: (status as NodeStatus).text }, true);
      published = true;
    } else if (published) {
      // Not retained: the runtime forgets the node's entry.
      publish.call(RED.comms, topic, {}, false);
      published = false;
    }
  };
}

/** A time of day for a status; with the date when it is not today (a daily trigger's retry is tomorrow). */
export function statusTime(ms: number): string {
  const at = new Date(ms);
  return at.toDateString() === new Date().toDateString() ? at.toLocaleTimeString() : at.toLocaleString();
}

/** The text in the server's language: `t` looks a key up in the node's own catalog. */
export function renderStatusText(text: StatusText, t: (key: string, params?: Record<string, string | number>) => string): string {
  const params: Record<string, string | number> = {};
  for (const [name, value] of Object.entries(text.params ?? {})) {
    params[name] = typeof value === 'object' ? renderStatusText(value, t) : text.times?.includes(name) && typeof value === 'number' ? statusTime(value) : value;
  }
  return t(text.key, params);
}

/** Prefixes every key with the node type's catalog name, as the editor looks them up (`<type>.status.x`). */
function qualified(text: StatusText, prefix: string): StatusText {
  const params: Record<string, string | number | StatusText> = {};
  for (const [name, value] of Object.entries(text.params ?? {})) params[name] = typeof value === 'object' ? qualified(value, prefix) : value;
  return { key: `${prefix}.${text.key}`, ...(text.params ? { params } : {}), ...(text.times ? { times: [...text.times] } : {}) };
}

/** A status whose text the editor says in its user's language. `prefix`: the node type (its catalog's root). */
export function localizedStatus(
  fill: NodeStatusFill,
  shape: 'ring' | 'dot',
  text: StatusText,
  prefix: string,
  t: (key: string, params?: Record<string, string | number>) => string,
): NodeStatus {
  // A text without values is its catalog key, as Node-RED's own nodes send it: the editor translates that itself.
  if (!text.params || Object.keys(text.params).length === 0) return { fill, shape, text: `${prefix}.${text.key}` };
  return { fill, shape, text: renderStatusText(text, t), i18n: qualified(text, prefix) };
}
