/**
 * `npm run bench`: runs the five benchmarks in one go, prints a markdown table and writes bench/RESULTS.md
 * (table, date, machine) plus the raw figures in bench/results/latest.json (not committed). Every figure is a
 * median of RUNS (default 5) repetitions; every ratio is taken within one repetition, then the median is given.
 * Environment: RUNS, TP_N (throughput messages, default 20000), ONLY=throughput,storm,overhead,records,coldstart.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { coldStart, type ColdStartResult } from './cold-start';
import { machine } from './lib/machine';
import { ROOT } from './lib/runtime';
import { bytes, fmt, mib, ratio, type Row } from './lib/stats';
import { overhead, type OverheadResult } from './overhead';
import { recordChange, type RecordChangeResult } from './record-change';
import { storm, type StormResult } from './storm';
import { throughput, type ThroughputResult } from './throughput';

const RUNS = Math.max(1, Number(process.env.RUNS ?? 5));
const ONLY = new Set((process.env.ONLY ?? 'throughput,storm,overhead,records,coldstart').split(','));

interface Results {
  throughput?: ThroughputResult;
  storm?: StormResult;
  overhead?: OverheadResult;
  records?: RecordChangeResult;
  coldStart?: ColdStartResult;
}

function log(line: string): void {
  console.error(line);
}

function rows(r: Results): Row[] {
  const out: Row[] = [];
  if (r.throughput) {
    const t = r.throughput;
    out.push({
      section: `1. Throughput (${fmt(t.n)} msgs, ${t.c} in flight)`,
      measure: 'msg/s: ours vs core `http request` (fixed bearer)',
      ours: fmt(t.median.ours),
      other: fmt(t.median.core),
      ratio: ratio(t.median.oursOverCore),
    });
    out.push({
      section: '',
      measure: 'msg/s: ours vs node-red-contrib-oauth2 + core `http request`',
      ours: fmt(t.median.ours),
      other: fmt(t.median.peer),
      ratio: ratio(t.median.oursOverPeer),
    });
  }
  if (r.storm) {
    const s = r.storm.median;
    out.push({ section: `2. Expiry storm (${fmt(r.storm.requests)} at once, 10 nodes)`, measure: 'token-endpoint calls: ours vs node-red-contrib-oauth2', ours: fmt(s.ours.tokenCalls), other: fmt(s.peer.tokenCalls), ratio: '' });
    out.push({ section: '', measure: 'requests failed (incl. dropped)', ours: fmt(s.ours.failed), other: `${fmt(s.peer.failed)} (${fmt(s.peer.lost)} dropped)`, ratio: '' });
    out.push({
      section: '',
      measure: 'time to drain, ms (peer: to its last returned message)',
      ours: fmt(s.ours.drainMs),
      other: Number.isFinite(s.peer.drainMs) ? fmt(s.peer.drainMs) : 'none returned',
      ratio: '',
    });
    out.push({ section: '', measure: 'reference: ours, same storm with a valid token — drain ms (token calls)', ours: `${fmt(s.baseline.drainMs)} (${fmt(s.baseline.tokenCalls)})`, other: '', ratio: ratio(s.ours.drainMs / s.baseline.drainMs) });
  }
  if (r.overhead) {
    const o = r.overhead;
    out.push({ section: '3. CPU per request (in-process)', measure: 'µs CPU: sendAuthorised + Connection (token cached) vs plain axios, same agent', ours: fmt(o.usPerRequest.ours, 1), other: fmt(o.usPerRequest.axios, 1), ratio: ratio(o.usPerRequest.ours / o.usPerRequest.axios, 3) });
    out.push({ section: '', measure: 'µs CPU added: whole layer / token manager part (vs constant-token authorizer)', ours: `${fmt(o.overheadUs.oursMinusAxios, 1)} / ${fmt(o.overheadUs.oursMinusFixed, 1)}`, other: '0', ratio: '' });
  }
  if (r.records) {
    for (const s of r.records.sizes) {
      out.push({
        section: r.records.sizes[0] === s ? '4. Record-change poll' : '',
        measure: `${fmt(s.n)} records: first poll / 1% changed (ms), state, peak RSS`,
        ours: `${fmt(s.firstMs)} / ${fmt(s.changedMs)} ms`,
        other: `${bytes(s.stateBytes)}; ${mib(s.peakRssBytes, 0)} (+${mib(s.peakRssBytes - s.rssBeforeBytes, 0)})`,
        ratio: '',
      });
    }
    const g = r.records.growth;
    out.push({ section: '', measure: '10k → 100k growth (10× = linear): first poll, changed poll, state, peak above base', ours: `${ratio(g.firstPoll, 1)}, ${ratio(g.changedPoll, 1)}`, other: `${ratio(g.stateBytes, 1)}, ${ratio(g.peakAboveBase, 1)}`, ratio: '' });
  }
  if (r.coldStart) {
    const c = r.coldStart.median;
    out.push({ section: '5. Cold start to editor (GET / 200)', measure: 'ms: our runtime vs plain Node-RED (red.js), same flows and nodes', ours: fmt(c.ours), other: fmt(c.plain), ratio: ratio(c.oursOverPlain) });
  }
  return out;
}

function table(list: Row[]): string {
  const head = '| Benchmark | Measure | Ours | Other | Ratio ours/other |\n|---|---|---:|---:|---:|';
  return [head, ...list.map((r) => `| ${r.section} | ${r.measure} | ${r.ours} | ${r.other} | ${r.ratio} |`)].join('\n');
}

/** A section that fails is reported and left out of the table; the others still run. */
async function section(fn: () => Promise<void>): Promise<void> {
  try {
    await fn();
  } catch (err) {
    failures.push(String((err as Error)?.stack ?? err).split('\n').slice(0, 3).join(' '));
    log(`  FAILED: ${failures[failures.length - 1]}`);
  }
}
const failures: string[] = [];

async function main(): Promise<void> {
  const started = Date.now();
  const results: Results = {};
  if (ONLY.has('throughput')) {
    log('1. throughput');
    await section(async () => {
      results.throughput = await throughput({ n: Number(process.env.TP_N ?? 20_000), c: 32, runs: RUNS, log });
    });
  }
  if (ONLY.has('storm')) {
    log('2. token expiry storm');
    await section(async () => {
      results.storm = await storm({ requests: 1000, runs: RUNS, log });
    });
  }
  if (ONLY.has('overhead')) {
    log('3. CPU overhead');
    results.overhead = await overhead({ requests: 2000, batches: Math.max(RUNS, 7) });
    log(`  ${JSON.stringify(results.overhead.usPerRequest)}`);
  }
  if (ONLY.has('records')) {
    log('4. record-change poll');
    await section(async () => {
      results.records = await recordChange({ sizes: [1_000, 10_000, 100_000], reps: RUNS, log });
    });
  }
  if (ONLY.has('coldstart')) {
    log('5. cold start');
    await section(async () => {
      results.coldStart = await coldStart({ runs: RUNS, log });
    });
  }
  const m = machine(ROOT);
  const elapsed = Math.round((Date.now() - started) / 1000);
  const md = table(rows(results));
  console.log(md);
  const header =
    `Run ${new Date().toISOString()} on ${m.cores} cores (${m.cpuModel}), ${m.memoryGiB} GiB, Node.js ${m.node}, ${m.platform}; ` +
    `Node-RED ${m.nodeRed}, node-red-contrib-oauth2 ${m.peer}. Medians of ${RUNS} runs; whole bench ${elapsed} s.`;
  console.log(`\n${header}`);
  fs.mkdirSync(path.join(__dirname, 'results'), { recursive: true });
  fs.writeFileSync(path.join(__dirname, 'results', 'latest.json'), JSON.stringify({ machine: m, runs: RUNS, elapsedSec: elapsed, results }, null, 2));
  // RESULTS.md: the generated table between markers; the analysis around it is maintained by hand.
  const file = path.join(__dirname, 'RESULTS.md');
  const generated = `<!-- bench:begin (written by bench/run.ts) -->\n${header}\n\n${md}\n<!-- bench:end -->`;
  const existing = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '';
  const next = /<!-- bench:begin[\s\S]*<!-- bench:end -->/.test(existing)
    ? existing.replace(/<!-- bench:begin[\s\S]*<!-- bench:end -->/, generated)
    : `# Benchmarks\n\n${generated}\n`;
  fs.writeFileSync(file, next);
  if (failures.length) {
    console.error(`${failures.length} section(s) failed:\n${failures.join('\n')}`);
    process.exitCode = 1;
  }
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
