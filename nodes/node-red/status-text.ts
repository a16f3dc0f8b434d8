/**
 * Node statuses in each editor user's language. Node-RED's editor translates a status text that is a catalog
 * key, but cannot put values in it; a status with values (counts, a time, an error code) was therefore
 * translated here, in the server's language, for every user. A status now carries its catalog entry as well
 * (`i18n`: the key, the values, which values are times), and the connection node's editor script says it in the
 * editor's language (oauth2-connection.html). `text` stays, in the server's language: what a `status` node in a
 * flow and the runtime's own tools see.
 */
import type { NodeStatus, NodeStatusFill, StatusText } from './types';

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
  return { fill, shape, text: renderStatusText(text, t), i18n: qualified(text, prefix) };
}
