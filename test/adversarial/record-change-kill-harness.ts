/**
 * SIGKILL swept across a record trigger's poll, against the Delivery setting's promise (invariant 11): at least
 * once loses nothing, at most once repeats nothing. Shared by test/adversarial/record-change-kill.test.ts (a few
 * kill points, CI) and scripts/record-change-kill-sweep.ts (the full sweep behind docs/RELIABILITY.md).
 *
 * One runtime in a child process (test/support/runtime.ts) polls a records API of this process through a
 * client-credentials connection; its trigger sends each change to a function node that appends it to a file
 * (appendFileSync: on disk, in the page cache, before its input handler returns, so the file says what reached
 * the next node's input, and survives the kill). Each cycle adds records, starts a poll, and SIGKILLs the
 * runtime `offset` ms after the API answered the list; the runtime restarts on the same user directory and port,
 * and its first poll (a second after the start) sends again whatever was not recorded. The sweep's offsets run
 * over the window a calibration poll (no kill) measured: list answered → first message at the next node → memory
 * recorded (the trigger file's mtime, or the trigger's revision in Redis) → next poll.
 *
 * The file store and Redis (httpOAuth2.store, a real redis-server, with a 1 s trigger lease so the restarted
 * runtime takes the trigger over quickly) are swept alike.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import Redis from 'ioredis';
import type { AuthServer } from '../support/auth-server';
import { deployAndWait, serviceConnection, sleep, waitFor } from '../support/e2e';
import { RECORD_CHANGE_DEFAULTS, tab } from '../support/flows';
import { startRecordsApi, type RecordsApi } from '../support/records-api';
import type { RedisServer } from '../support/redis';
import { startRuntime, tempUserDir, type RuntimeOptions, type TestRuntime } from '../support/runtime';

export type Delivery = 'at-least-once' | 'at-most-once';

export interface SweepOptions {
  auth: AuthServer;
  delivery: Delivery;
  /** Absent: the file store. */
  redis?: RedisServer;
  /**
   * Kill offsets in ms after the list was answered, or a function of the calibrated window (ms after the list
   * was answered: the first message at the next node, the memory recorded).
   */
  offsets: number[] | ((window: { sentMs: number; recordedMs: number }) => number[]);
  /** New records per cycle (each poll sends that many messages). Default 20. */
  perCycle?: number;
  startNodeRed?: (o: RuntimeOptions) => Promise<TestRuntime>;
  log?: (line: string) => void;
}

export interface SweepReport {
  delivery: Delivery;
  store: 'file' | 'redis';
  /** The calibration poll's window (ms after the list was answered). */
  window: { sentMs: number; recordedMs: number };
  kills: number;
  offsets: number[];
  /** Changes made during the sweep (one created record each). */
  changes: number;
  /** Changes that never reached the next node. */
  lost: number;
  /** Changes that reached it more than once. */
  repeated: number;
  /** Repeated changes whose messages did not all carry the same msg.changeKey (must be 0). */
  keyMismatches: number;
  /** Per kill: offset, and how many of that cycle's changes were lost and repeated. */
  cycles: Array<{ offsetMs: number; lost: number; repeated: number }>;
  crashes: string[];
  totalMs: number;
}

interface SinkLine {
  event: string;
  id: string;
  key: string;
}

const SECRET = 'record-change-kill-sweep-secret';

/** The trigger, an http-in lane that polls it now, and the next node: a function appending each message to `sinkFile`. */
function sweepFlows(auth: AuthServer, api: RecordsApi, delivery: Delivery, sinkFile: string): Record<string, unknown>[] {
  const line = 'JSON.stringify({ event: msg.event, id: msg.topic, key: msg.changeKey })';
  return [
    tab(),
    serviceConnection(auth, api),
    { id: 'poll-in', type: 'http in', z: 'tab1', url: '/poll', method: 'get', x: 100, y: 100, wires: [['rc']] },
    { id: 'rc', type: 'oauth2-record-change', z: 'tab1', connection: 'conn1', ...RECORD_CHANGE_DEFAULTS, url: '/records', delivery, x: 300, y: 100, wires: [['sink']] },
    {
      id: 'sink',
      type: 'function',
      z: 'tab1',
      name: 'sink',
      func: `fs.appendFileSync(${JSON.stringify(sinkFile)}, ${line} + "\\n");\nreturn null;`,
      outputs: 1,
      noerr: 0,
      initialize: '',
      finalize: '',
      libs: [{ var: 'fs', module: 'fs' }],
      x: 500,
      y: 100,
      wires: [[]],
    },
    { id: 'poll-done', type: 'complete', z: 'tab1', scope: ['rc'], uncaught: false, x: 300, y: 200, wires: [['poll-out']] },
    { id: 'poll-out', type: 'http response', z: 'tab1', statusCode: '', headers: {}, x: 500, y: 200, wires: [] },
  ];
}

function readSink(file: string): SinkLine[] {
  if (!fs.existsSync(file)) return [];
  return fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as SinkLine);
}

/** Resolves when `probe` changes from its value now (checked every ms), with the time it changed; undefined after `ms`. */
async function whenChanged(probe: () => Promise<string> | string, ms: number): Promise<number | undefined> {
  const start = await probe();
  const until = Date.now() + ms;
  while (Date.now() < until) {
    if ((await probe()) !== start) return Date.now();
    await new Promise((r) => setTimeout(r, 1));
  }
  return undefined;
}

export async function runKillSweep(o: SweepOptions): Promise<SweepReport> {
  const started = Date.now();
  const log = o.log ?? (() => undefined);
  const perCycle = o.perCycle ?? 20;
  const startNodeRed = o.startNodeRed ?? startRuntime;
  const api = await startRecordsApi(o.auth);
  const userDir = tempUserDir('nr-oauth2-sweep-');
  const sinkFile = path.join(userDir, 'sink.jsonl');
  const keyPrefix = `sweep-${o.delivery}-${Math.random().toString(36).slice(2, 8)}:`;
  const settings = o.redis ? { httpOAuth2: { store: { type: 'redis', url: o.redis.url, keyPrefix, triggerLeaseMs: 1_000 } } } : undefined;
  const start = (port?: number): Promise<TestRuntime> => startNodeRed({ userDir, port, credentialSecret: SECRET, settings });
  const redis = o.redis ? new Redis(o.redis.url, { lazyConnect: true, maxRetriesPerRequest: 1 }) : undefined;
  await redis?.connect();
  /** What says the memory was recorded: the trigger file's mtime, or the trigger's revision in Redis. */
  const recordedProbe = async (): Promise<string> => {
    if (redis) return String(await redis.hget(`${keyPrefix}trigger:rc`, 'rev'));
    const file = path.join(userDir, '.http-oauth2-triggers.json');
    return fs.existsSync(file) ? String(fs.statSync(file).mtimeMs) : '';
  };
  const crashes: string[] = [];
  let runtime = await start();
  const port = runtime.port;
  let serial = 0;
  const fresh = (n: number): number[] => Array.from({ length: n }, () => api.add(`sweep ${(serial += 1)}`).id);
  const pollNow = (rt: TestRuntime): Promise<void> =>
    fetch(`${rt.url}/api/poll`).then(
      (r) => r.text().then(() => undefined),
      () => undefined,
    );
  /** Waits for the runtime's polls to settle: a list request after `since`, then a poll by message that ran to its end. */
  const settled = async (rt: TestRuntime, since: number): Promise<void> => {
    await waitFor(async () => api.listRequests.length > since, 15_000, 'a poll after the (re)start', 20);
    await sleep(250);
    await pollNow(rt);
  };
  const cycles: SweepReport['cycles'] = [];
  const expected: number[] = [];
  let window: SweepReport['window'] | undefined;
  let offsets: number[] | undefined;
  try {
    api.add('existing');
    await deployAndWait(runtime, sweepFlows(o.auth, api, o.delivery, sinkFile));
    await settled(runtime, 0); // the first poll remembers 'existing'

    // Calibration: one poll without a kill, timed from the list's answer.
    {
      expected.push(...fresh(perCycle));
      const hold = api.holdPage(0);
      const polling = pollNow(runtime);
      await hold.reached;
      const sinkSize = (): string => String(fs.existsSync(sinkFile) ? fs.statSync(sinkFile).size : 0);
      const sent = whenChanged(sinkSize, 5_000);
      const recorded = whenChanged(recordedProbe, 10_000);
      const answeredAt = Date.now();
      hold.release();
      const [sentAt, recordedAt] = await Promise.all([sent, recorded]);
      await polling;
      const measured = { sentMs: (sentAt ?? answeredAt) - answeredAt, recordedMs: (recordedAt ?? answeredAt) - answeredAt };
      window = measured;
      log(`${o.delivery}, ${redis ? 'Redis' : 'file store'}: list answered → first message at the next node ${window.sentMs} ms → memory recorded ${window.recordedMs} ms`);
    }
    offsets = typeof o.offsets === 'function' ? o.offsets(window) : o.offsets;

    for (const offset of offsets) {
      const ids = fresh(perCycle);
      expected.push(...ids);
      let hold = api.holdPage(0);
      void pollNow(runtime);
      // A poll still running (skipped) or a standby instance: ask again until this cycle's poll reads the list.
      for (let attempt = 0; !(await Promise.race([hold.reached.then(() => true), sleep(3_000).then(() => false)])); attempt += 1) {
        if (attempt > 5) throw new Error(`the poll of the cycle at ${offset} ms never read the list`);
        hold.release();
        hold = api.holdPage(0);
        void pollNow(runtime);
      }
      const victim = runtime;
      const killed = new Promise<void>((resolve) => {
        setTimeout(() => void victim.kill().then(resolve), offset);
      });
      hold.release();
      await killed;
      crashes.push(...victim.crashes);
      const before = api.listRequests.length;
      runtime = await start(port);
      await settled(runtime, before);
      const lines = readSink(sinkFile).filter((l) => ids.includes(Number(l.id)));
      const counts = ids.map((id) => lines.filter((l) => Number(l.id) === id).length);
      cycles.push({ offsetMs: offset, lost: counts.filter((c) => c === 0).length, repeated: counts.filter((c) => c > 1).length });
      log(`  kill ${offset} ms after the list: ${cycles.at(-1)?.lost} lost, ${cycles.at(-1)?.repeated} repeated of ${perCycle}`);
    }
  } finally {
    crashes.push(...runtime.crashes);
    await runtime.stop();
    redis?.disconnect();
    await api.close();
  }
  const lines = readSink(sinkFile);
  const byId = new Map<number, SinkLine[]>();
  for (const l of lines) byId.set(Number(l.id), [...(byId.get(Number(l.id)) ?? []), l]);
  // The user directory stays, as the other suites' do: the leak scan (test/e2e/zz-leak-scan.test.ts) reads it.
  const seen = expected.map((id) => byId.get(id) ?? []);
  return {
    delivery: o.delivery,
    store: redis ? 'redis' : 'file',
    window: window ?? { sentMs: NaN, recordedMs: NaN },
    kills: cycles.length,
    offsets: offsets ?? [],
    changes: expected.length,
    lost: seen.filter((s) => s.length === 0).length,
    repeated: seen.filter((s) => s.length > 1).length,
    keyMismatches: seen.filter((s) => s.length > 1 && new Set(s.map((l) => l.key)).size > 1).length,
    cycles,
    crashes,
    totalMs: Date.now() - started,
  };
}
