/**
 * Test inputs for the record-change engine: a manual clock for the poller's timers, settings with defaults,
 * and a scripted list "API" (the engine's `fetch` input: records the test sets, failures it injects).
 */
import { once } from 'node:events';
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { FetchResult, PollOutcome, RecordPoller } from '../../../nodes/lib/changes/poller';
import type { TriggerSettings, TriggerState } from '../../../nodes/lib/changes/types';

export const SECRET = 'trigger-state-secret-for-tests';
export const T0 = Date.UTC(2024, 4, 1, 12, 0, 0);

export function settings(overrides: Partial<TriggerSettings> = {}): TriggerSettings {
  return {
    idPath: 'id',
    detection: { kind: 'updatedAt', path: 'updatedAt' },
    events: { created: true, updated: true, deleted: false },
    emitExistingOnFirstPoll: false,
    includePrevious: false,
    maxRemembered: 100_000,
    ...overrides,
  };
}

export function emptyState(configKey = 'key'): TriggerState {
  return { version: 1, configKey, initialised: false, seen: [] };
}

export interface Rec {
  id: string | number;
  updatedAt?: unknown;
  [key: string]: unknown;
}

export function rec(id: string | number, updatedAt: unknown, extra: Record<string, unknown> = {}): Rec {
  return { id, updatedAt, ...extra };
}

/** Timers that fire only when the test advances time. */
export class ManualClock {
  time = T0;
  private readonly timers = new Map<number, { at: number; callback: () => void }>();
  private nextId = 1;

  readonly now = (): number => this.time;
  readonly setTimer = (callback: () => void, ms: number): unknown => {
    const id = this.nextId++;
    this.timers.set(id, { at: this.time + ms, callback });
    return id;
  };
  readonly clearTimer = (handle: unknown): void => {
    this.timers.delete(handle as number);
  };

  /** Due times of the pending timers, soonest first. */
  pending(): number[] {
    return [...this.timers.values()].map((t) => t.at).sort((a, b) => a - b);
  }

  /** Moves time forward by `ms`, firing every timer that falls due on the way, in order. */
  advance(ms: number): void {
    const target = this.time + ms;
    for (;;) {
      let soonest: [number, { at: number; callback: () => void }] | undefined;
      for (const entry of this.timers) if (entry[1].at <= target && (!soonest || entry[1].at < soonest[1].at)) soonest = entry;
      if (!soonest) break;
      this.timers.delete(soonest[0]);
      this.time = Math.max(this.time, soonest[1].at);
      soonest[1].callback();
    }
    this.time = target;
  }

  /** Jumps to the next pending timer and fires it. */
  fireNext(): void {
    const next = this.pending()[0];
    if (next === undefined) throw new Error('no timer pending');
    this.advance(next - this.time);
  }
}

interface Deferred<T> {
  promise: Promise<T>;
  resolve: (value: T) => void;
}

function deferred<T>(): Deferred<T> {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

/**
 * The engine's list input. `records` is what the list endpoint holds; `filter` (when set) applies the
 * watermark query the way a server would; `failures` are thrown by the next fetches, in order; `gate` holds a
 * fetch until the test opens it (a slow API).
 */
export class ScriptedList {
  records: unknown[] = [];
  complete = true;
  /** The API's time sent with each answer (its Date header), if any. */
  serverTime: number | undefined;
  queries: Array<Record<string, string>> = [];
  failures: unknown[] = [];
  filter?: (records: unknown[], query: Record<string, string>) => unknown[];
  private gate: Deferred<void> | undefined;
  signals: AbortSignal[] = [];

  readonly fetch = async (query: Record<string, string>, signal: AbortSignal): Promise<FetchResult> => {
    this.queries.push(query);
    this.signals.push(signal);
    if (this.gate) await this.gate.promise;
    const failure = this.failures.shift();
    if (failure !== undefined) throw failure;
    const listed = this.filter ? this.filter(this.records, query) : this.records;
    // A copy each time, as a server would send: the engine must not depend on object identity.
    const result: FetchResult = { records: structuredClone(listed), complete: this.complete };
    if (this.serverTime !== undefined) result.serverTime = this.serverTime;
    return result;
  };

  /** Resolves once `count` fetches have started (a poll reads its state before it fetches). */
  async fetched(count: number): Promise<void> {
    for (let i = 0; this.queries.length < count; i++) {
      if (i > 1000) throw new Error(`fetch ${count} never started`);
      await new Promise((resolve) => setImmediate(resolve));
    }
  }

  hold(): void {
    this.gate = deferred<void>();
  }

  release(): void {
    const gate = this.gate;
    this.gate = undefined;
    gate?.resolve();
  }
}

/** Collects what a poller emits. */
export class Sent {
  batches: Array<Array<{ event: string; id: string }>> = [];
  throwNext: unknown;

  readonly emit = (changes: Array<{ event: string; id: string }>): void => {
    if (this.throwNext !== undefined) {
      const err = this.throwNext;
      this.throwNext = undefined;
      throw err;
    }
    this.batches.push(changes.map((c) => ({ event: c.event, id: c.id })));
  };

  /** Every change sent so far as "event:id". */
  all(): string[] {
    return this.batches.flat().map((c) => `${c.event}:${c.id}`);
  }
}

export function nextPollEnd(poller: RecordPoller): Promise<PollOutcome> {
  return once(poller, 'poll-end').then(([outcome]) => outcome as PollOutcome);
}

export async function tempDir(): Promise<string> {
  return fsp.mkdtemp(path.join(os.tmpdir(), 'oauth2-changes-'));
}
