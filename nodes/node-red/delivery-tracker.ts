/**
 * Tells when the messages a node sent have reached the next nodes' inputs. node.send() only dispatches: Node-RED
 * delivers each message in a later turn of the event loop (setImmediate, unless runtimeSyncDelivery is set), so
 * "after node.send() returned" is before the next node ran, and a crash in between loses what was sent.
 *
 * Node-RED's messaging hooks (@node-red/util/lib/hooks.js, runtime flows/Flow.js and nodes/Node.js, 4.1):
 * - preDeliver gets a SendEvent { msg, source: { id, node, port }, destination: { id, node } } once the router
 *   found the destination node and cloned the message if needed: the `msg` object there is the very object the
 *   destination receives. postDeliver comes right after it, when the delivery is only scheduled, so it says
 *   nothing about the next node;
 * - postReceive gets a ReceiveEvent { msg, destination: { id, node } } once that object was handed to the
 *   destination's input handler(s) and they returned.
 * So a message of this node is pending from its preDeliver until the postReceive of the same object. A message
 * that never reaches preDeliver (an output with no wires, a wire to a node that does not exist) has nowhere to
 * go and counts as delivered at once. Hooks are global, not per node: each tracker adds its own pair under a
 * label of its own and removes it on close. They run on every message in the runtime, so they do one Set lookup
 * and never throw or return false (false would stop the message).
 *
 * What it cannot see: what a next node does after its input handler returned (an HTTP request still in flight),
 * and a message another package's hook holds back or drops. The wait is therefore bounded (DELIVERY_TIMEOUT_MS):
 * past it, the messages count as delivered and the node warns once.
 */

/** The part of RED.hooks (Node-RED >= 1.3) this uses. */
export interface MessageHooks {
  add(hookId: string, callback: (event: unknown) => void): void;
  remove(hookId: string): void;
}

/** How long a poll waits for its messages to reach the next nodes before it records anyway. */
export const DELIVERY_TIMEOUT_MS = 5_000;

interface HookEvent {
  msg?: unknown;
  source?: { id?: unknown };
}

let trackers = 0;

export class DeliveryTracker {
  private readonly label: string;
  /** Message objects handed to the router for a destination and not yet received there. */
  private readonly pending = new Set<object>();
  private readonly drained: Array<() => void> = [];
  private closed = false;

  constructor(
    private readonly hooks: MessageHooks,
    private readonly nodeId: string,
    private readonly timeoutMs: number = DELIVERY_TIMEOUT_MS,
  ) {
    trackers += 1;
    // A hook label is what follows the first '.', so it must have none; node ids of older flows do ("1a2b.3c4d").
    this.label = `oauth2-record-change-${nodeId.replace(/[^A-Za-z0-9_-]/g, '_')}-${trackers}`;
    hooks.add(`preDeliver.${this.label}`, (event) => this.onPreDeliver(event as HookEvent));
    hooks.add(`postReceive.${this.label}`, (event) => this.onPostReceive(event as HookEvent));
  }

  /**
   * Calls `send` (which calls node.send) and resolves 'delivered' once every message it sent reached its next
   * node's input, at once when none was routed anywhere; 'timeout' after timeoutMs, or when the tracker closes
   * first. Never rejects (a throw of `send` is thrown synchronously, before anything is awaited).
   */
  send(send: () => void): Promise<'delivered' | 'timeout'> {
    const before = new Set(this.pending);
    send();
    // Sent by this call: the preDeliver hooks ran inside node.send() (the router's hooks are synchronous).
    const mine = [...this.pending].filter((msg) => !before.has(msg));
    if (mine.length === 0) return Promise.resolve('delivered');
    return new Promise((resolve) => {
      const settle = (result: 'delivered' | 'timeout'): void => {
        clearTimeout(timer);
        const index = this.drained.indexOf(check);
        if (index >= 0) this.drained.splice(index, 1);
        for (const msg of mine) this.pending.delete(msg);
        resolve(result);
      };
      const check = (): void => {
        if (this.closed) settle('timeout');
        else if (mine.every((msg) => !this.pending.has(msg))) settle('delivered');
      };
      const timer = setTimeout(() => settle('timeout'), this.timeoutMs);
      timer.unref();
      this.drained.push(check);
    });
  }

  /** Removes the hooks; a wait still running ends as 'timeout'. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.hooks.remove(`preDeliver.${this.label}`);
    this.hooks.remove(`postReceive.${this.label}`);
    for (const check of [...this.drained]) check();
    this.pending.clear();
  }

  private onPreDeliver(event: HookEvent): void {
    try {
      if (event.source?.id === this.nodeId && typeof event.msg === 'object' && event.msg !== null) this.pending.add(event.msg);
    } catch {
      // A hook must never break another node's message.
    }
  }

  private onPostReceive(event: HookEvent): void {
    try {
      const msg = event.msg;
      if (typeof msg !== 'object' || msg === null || !this.pending.delete(msg)) return;
      for (const check of [...this.drained]) check();
    } catch {
      // as above
    }
  }
}
