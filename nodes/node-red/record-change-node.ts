import type { RecordPoller } from '../lib/changes/poller';
import type { Node } from './types';

/** The oauth2-record-change node as its admin route sees it. */
export interface RecordChangeNode extends Node<never> {
  /** Undefined when the configuration is invalid (the node then reports why). */
  poller?: RecordPoller;
}
