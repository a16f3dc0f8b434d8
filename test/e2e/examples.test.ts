import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { deployAndWait, sleep, startWatchedRuntime } from '../support/e2e';
import type { LogLine, TestRuntime } from '../support/runtime';

const EXAMPLES_DIR = path.resolve(__dirname, '..', '..', 'examples');
const PACKAGE = JSON.parse(fs.readFileSync(path.resolve(__dirname, '..', '..', 'package.json'), 'utf8')) as {
  'node-red': { nodes: Record<string, string> };
};
const OUR_TYPES = new Set(Object.keys(PACKAGE['node-red'].nodes));
const CONFIG_TYPES = new Set(['oauth2-connection', 'tab', 'subflow', 'group', 'tls-config', 'http proxy']);
/** Node-RED's numeric levels (@node-red/util/lib/log.js). */
const LEVEL = { fatal: 10, error: 20, warn: 30 };

const exampleFiles = fs.readdirSync(EXAMPLES_DIR).filter((f) => f.endsWith('.json')).sort();

function hasKey(value: unknown, key: string): boolean {
  if (Array.isArray(value)) return value.some((v) => hasKey(v, key));
  if (value && typeof value === 'object') {
    return Object.entries(value).some(([k, v]) => k === key || hasKey(v, key));
  }
  return false;
}

describe('e2e: example flows', function () {
  this.timeout(40_000);
  let runtime: TestRuntime;

  before(async () => {
    runtime = await startWatchedRuntime();
  });

  after(async () => {
    await runtime?.stop();
  });

  it('there are examples, at least one per non-config node of the package', () => {
    assert.ok(exampleFiles.length > 0);
    const used = new Set<string>();
    for (const file of exampleFiles) {
      for (const node of JSON.parse(fs.readFileSync(path.join(EXAMPLES_DIR, file), 'utf8')) as { type: string }[]) used.add(node.type);
    }
    for (const type of OUR_TYPES) if (!CONFIG_TYPES.has(type)) assert.ok(used.has(type), `no example uses ${type}`);
  });

  for (const file of exampleFiles) {
    describe(file, () => {
      let flows: Record<string, unknown>[];

      before(() => {
        flows = JSON.parse(fs.readFileSync(path.join(EXAMPLES_DIR, file), 'utf8')) as Record<string, unknown>[];
      });

      it('is a top-level array of nodes with ids and types', () => {
        assert.ok(Array.isArray(flows), 'top-level array');
        for (const node of flows) {
          assert.equal(typeof node.id, 'string');
          assert.equal(typeof node.type, 'string');
        }
        assert.equal(new Set(flows.map((n) => n.id)).size, flows.length, 'unique ids');
      });

      it('uses at least one non-config node of this package', () => {
        assert.ok(flows.some((n) => OUR_TYPES.has(n.type as string) && !CONFIG_TYPES.has(n.type as string)));
      });

      it('holds no credentials (no `credentials` property anywhere)', () => {
        assert.equal(hasKey(flows, 'credentials'), false);
      });

      it('every wire and config reference points at a node of the file', () => {
        const ids = new Set(flows.map((n) => n.id));
        for (const node of flows) {
          for (const out of (node.wires as string[][] | undefined) ?? []) for (const target of out) assert.ok(ids.has(target), `${String(node.id)} -> ${target}`);
          if (typeof node.connection === 'string') assert.ok(ids.has(node.connection), `${String(node.id)}.connection`);
          if (typeof node.z === 'string') assert.ok(ids.has(node.z), `${String(node.id)}.z`);
        }
      });

      it('deploys into a real runtime: every type known, no configuration error', async () => {
        const from = runtime.logs.length;
        await deployAndWait(runtime, flows);
        await sleep(300); // let the nodes' asynchronous starts (token store loads) log what they would
        const lines: LogLine[] = runtime.logs.slice(from);
        const missing = lines.filter((l) => /Waiting for missing types|unknown type|missing-types/i.test(l.text));
        assert.deepEqual(missing.map((l) => l.text), [], 'missing types');
        const state = await runtime.admin('flows/state');
        if (state.status === 200) assert.equal(((await state.json()) as { state: string }).state, 'start');
        const problems = lines.filter(
          (l) =>
            (l.level <= LEVEL.error && l.level > 0) ||
            /OAUTH2_INVALID_CONFIG|Invalid configuration/i.test(l.text) ||
            (l.level === LEVEL.warn && l.id !== undefined && flows.some((n) => n.id === l.id)),
        );
        assert.deepEqual(problems.map((l) => `[${l.level}] ${l.node ?? ''} ${l.text}`), [], 'errors logged by the example');
        const started = lines.some((l) => /Started flows/.test(l.text));
        assert.ok(started, 'the flows started');
      });
    });
  }

  it('nothing crashed the runtime', () => {
    assert.deepEqual(runtime.crashes, []);
  });
});
