/**
 * The in-Node-RED load driver: one function node that keeps `c` messages in flight until `n` have come back,
 * so the benchmark's own HTTP traffic is one request per run (start) and one answer (the result), not one per
 * message. The flow around it:
 *
 *   http in GET /bench/<name> ──> driver ──(work)──> [lane router] ──> request node(s) ──┐
 *                                   ^  └──(result)──> http response                      │
 *                                   └──────────────── output / catch ────────────────────┘
 *
 * A work message is a fresh small object {_bench: seq, lane, payload: ''} (no clone), so every variant pays the
 * same message cost. A message that comes back counts as ok when msg.statusCode is 200 and it carries no
 * msg.error (a catch node feeds errors back). With `idle` (ms), a run whose messages stop coming back (a node
 * that drops them) ends after that long without a return; the missing ones are reported as lost.
 */

const DRIVER_CODE = `
let s = context.get('s');
if (msg._bench === undefined) {
  if (s && s.active) { msg.statusCode = 409; msg.payload = { error: 'busy' }; return [null, msg]; }
  const q = msg.req.query;
  s = { active: true, n: Number(q.n), c: Number(q.c), lanes: Number(q.lanes || 1), idle: Number(q.idle || 0),
        sent: 0, back: 0, ok: 0, failed: 0, outcomes: {}, start: Date.now(), last: 0, reply: msg, timer: null };
  context.set('s', s);
  const first = [];
  while (s.sent < Math.min(s.c, s.n)) { first.push({ _bench: s.sent, lane: s.sent % s.lanes, payload: '' }); s.sent++; }
  node.send([first, null], false);
  if (s.idle) s.timer = setTimeout(finish, s.idle);
  return null;
}
if (!s || !s.active) return null;
s.back++;
s.last = Date.now();
const outcome = msg.error ? ('error ' + (msg.error.code || msg.error.message || 'unknown')) : String(msg.statusCode);
s.outcomes[outcome] = (s.outcomes[outcome] || 0) + 1;
if (!msg.error && msg.statusCode === 200) s.ok++; else s.failed++;
if (s.sent < s.n) { node.send([{ _bench: s.sent, lane: s.sent % s.lanes, payload: '' }, null], false); s.sent++; }
if (s.back >= s.n) finish();
else if (s.idle) { clearTimeout(s.timer); s.timer = setTimeout(finish, s.idle); }
return null;

function finish() {
  if (!s.active) return;
  s.active = false;
  clearTimeout(s.timer);
  const r = s.reply;
  r.payload = { n: s.n, ok: s.ok, failed: s.failed, lost: s.n - s.back, ms: s.last ? s.last - s.start : null, outcomes: s.outcomes };
  r.statusCode = 200;
  delete r.headers;
  node.send([null, r], false);
}
`;

export interface DriverResult {
  n: number;
  ok: number;
  failed: number;
  lost: number;
  /** From the start to the last message back (null when none came back). */
  ms: number;
  outcomes: Record<string, number>;
}

type FlowNode = Record<string, unknown>;

/**
 * A driver with its http-in trigger and response. `work` is the id of the node its work messages go to;
 * `returns` are the ids of nodes whose output is wired back (done by the caller: wire them to `${id}`).
 */
export function driverNodes(id: string, tab: string, work: string, path = `/bench/${id}`): FlowNode[] {
  return [
    { id: `${id}-in`, type: 'http in', z: tab, url: path, method: 'get', wires: [[id]] },
    { id, type: 'function', z: tab, name: `driver ${id}`, func: DRIVER_CODE, outputs: 2, noerr: 0, initialize: '', finalize: '', libs: [], wires: [[work], [`${id}-out`]] },
    { id: `${id}-out`, type: 'http response', z: tab, statusCode: '', headers: {}, wires: [] },
  ];
}

/** A catch node for `scope` feeding errors back to the driver (they count as failed). */
export function catchBack(id: string, tab: string, scope: string[], driver: string): FlowNode {
  return { id, type: 'catch', z: tab, scope, uncaught: false, wires: [[driver]] };
}

/** A switch on msg.lane with one output per lane. */
export function laneRouter(id: string, tab: string, targets: string[]): FlowNode {
  return {
    id,
    type: 'switch',
    z: tab,
    property: 'lane',
    propertyType: 'msg',
    rules: targets.map((_, i) => ({ t: 'eq', v: String(i), vt: 'num' })),
    checkall: 'false',
    repair: false,
    outputs: targets.length,
    wires: targets.map((t) => [t]),
  };
}

/** Runs the driver at `url` (http://host:port/api/bench/...) and returns its result. */
export async function drive(runtimeUrl: string, path: string, params: { n: number; c: number; lanes?: number; idle?: number }): Promise<DriverResult> {
  const url = new URL(`api${path}`, runtimeUrl.endsWith('/') ? runtimeUrl : `${runtimeUrl}/`);
  for (const [k, v] of Object.entries(params)) if (v !== undefined) url.searchParams.set(k, String(v));
  const res = await fetch(url, { signal: AbortSignal.timeout(180_000) });
  const text = await res.text();
  if (res.status !== 200) throw new Error(`driver ${path}: HTTP ${res.status} ${text.slice(0, 300)}`);
  return JSON.parse(text) as DriverResult;
}
