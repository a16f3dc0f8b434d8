/**
 * The trigger's output messages for a poll's changes: one message per change, or one message for all of them
 * (batch), each carrying the record, the event, the id (topic), the version and the change's key (changeKey,
 * change-key.ts: what a downstream node deduplicates on when the same poll is sent again, at least once).
 */
import type { DetectedChange } from './types';

export interface ChangeMessageOptions {
  batch: boolean;
  includePrevious: boolean;
  watch: boolean;
}

export type ChangeMessage = Record<string, unknown>;

/** The messages to send, in order; [] for no change. */
export function changeMessages(changes: readonly DetectedChange[], options: ChangeMessageOptions): ChangeMessage[] {
  if (!changes.length) return [];
  if (options.batch) {
    const msg: ChangeMessage = {
      payload: changes.map((c) => c.record),
      event: changes.map((c) => c.event),
      topic: changes.map((c) => c.id),
      version: changes.map((c) => c.version),
      changeKey: changes.map((c) => c.key),
    };
    if (options.includePrevious) msg.previous = changes.map((c) => c.previous);
    if (options.watch) msg.changes = changes.map((c) => c.changes);
    return [msg];
  }
  return changes.map((c) => {
    const msg: ChangeMessage = { payload: c.record, event: c.event, topic: c.id, version: c.version, changeKey: c.key };
    if (options.includePrevious && c.previous !== undefined) msg.previous = c.previous;
    if (c.changes) msg.changes = c.changes;
    return msg;
  });
}
