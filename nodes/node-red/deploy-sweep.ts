import type { NodeAPI } from './types';

type Sweep = () => Promise<void>;

/**
 * Work to do after each deploy, once the flows have started: removing the stored state of nodes that are no
 * longer in the configuration. Node-RED calls a node module's function once per runtime, the test helper once
 * per load, so this keeps one `flows:started` listener per process and runs the latest sweep of each kind.
 */
const sweeps = new Map<string, { RED: NodeAPI; sweep: Sweep }>();
let listening = false;

export function registerDeploySweep(kind: string, RED: NodeAPI, sweep: Sweep): void {
  sweeps.set(kind, { RED, sweep });
  if (listening || !RED.events) return;
  listening = true;
  RED.events.on('flows:started', () => {
    for (const { RED: red, sweep: run } of sweeps.values()) {
      run().catch((err: unknown) => red.log.warn(err instanceof Error ? err.message : String(err)));
    }
  });
}

/**
 * Ids of the configured nodes of `type`, disabled flows included: Node-RED closes the nodes of a disabled flow as
 * "removed", and a disabled flow must keep what its nodes remember.
 */
export function configuredIds(RED: NodeAPI, type: string): Set<string> {
  const ids = new Set<string>();
  RED.nodes.eachNode((n) => {
    if (n.type === type) ids.add(n.id);
  });
  return ids;
}
