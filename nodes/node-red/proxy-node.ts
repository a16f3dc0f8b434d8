/**
 * A connection's outbound proxy from Node-RED's own `http proxy` config node (the one the core http request
 * node uses): its URL, its "no proxy" hosts and its credentials. No node named, or a node that is gone: the
 * environment's proxy applies (http/proxy.ts).
 */
import { proxySettingsFromNode, type ProxySettings } from '../lib/http/proxy';
import type { NodeAPI } from './types';

export function proxyOf(RED: NodeAPI, id: unknown): ProxySettings | undefined {
  if (typeof id !== 'string' || !id) return undefined;
  const node = RED.nodes.getNode(id) as { type?: unknown; url?: unknown; noproxy?: unknown; credentials?: { username?: unknown; password?: unknown } } | null;
  return node ? proxySettingsFromNode(node) : undefined;
}
