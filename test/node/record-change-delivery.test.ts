/**
 * The record trigger's Delivery setting in a real Node-RED runtime (node-red-node-test-helper, the compiled nodes,
 * the shipped catalogs, the real authorization server and records API, the file store on disk):
 * - at least once (the default, and what a flow saved before the setting gets): the memory is written only after
 *   the poll's messages reached the next node's input. The proof holds a message on its way to the next node (an
 *   asynchronous onReceive hook, as a tracing or rate-limiting package adds one) and reads the trigger's file
 *   while it is held and from inside the next node's input: unchanged both times, changed once the input ran;
 * - at most once: the file is written while the message is still held, before it reached the next node;
 * - a poll with nowhere to send counts as delivered at once; a message that never arrives (a hook drops it) is
 *   recorded after the bounded wait, with one warning;
 * - msg.changeKey is the same for the same change sent again, another one for the next change;
 * - a bad Delivery value is a translated error naming the field, and nothing is polled.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { startAuthServer, type AuthServer } from '../support/auth-server';
import { startRecordsApi, type RecordsApi } from '../support/records-api';
import {
  collectUnhandledRejections,
  currentStatusSpy,
  errorLog,
  eventually,
  helper,
  helperNode,
  hooks,
  loadCatalogs,
  nodeModules,
  recordChangeModule,
  recordChangeNode,
  serviceConnection,
  statusLog,
  tab,
  useTempUserDir,
  type RuntimeNode,
  type Spy,
} from './support';
import type { PollOutcome, RecordPoller } from '../../nodes/lib/changes/poller';
import { DELIVERY_TIMEOUT_MS } from '../../nodes/node-red/delivery-tracker';

type Msg = Record<string, unknown>;
const modules = [...nodeModules, recordChangeModule];
const TRIGGER_FILE = '.http-oauth2-triggers.json';
const HOOK = 'onReceive.record-change-delivery-test';

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

describe('record trigger node: Delivery (at least once / at most once)', function () {
  this.timeout(30_000);
  let auth: AuthServer;
  let api: RecordsApi;
  let userDir: string;
  let arrivals: Msg[];
  let hooked = false;
  const assertNoUnhandledRejections = collectUnhandledRejections('the record trigger delivery tests');

  before(async () => {
    await loadCatalogs();
    auth = await startAuthServer({ accessTokenTtlSec: 3600 });
    api = await startRecordsApi(auth);
  });
  after(async () => {
    await Promise.all([api?.close(), auth?.close()]);
    assertNoUnhandledRejections();
  });
  beforeEach(() => {
    userDir = useTempUserDir();
    api.records.length = 0;
    api.listRequests.length = 0;
    arrivals = [];
  });
  afterEach(async () => {
    if (hooked) hooks.remove(HOOK);
    hooked = false;
    await helper.unload();
    fs.rmSync(userDir, { recursive: true, force: true });
  });

  const file = (): Buffer => fs.readFileSync(path.join(userDir, TRIGGER_FILE));
  const poller = (node: RuntimeNode): RecordPoller => node.poller as RecordPoller;
  const texts = (node: RuntimeNode): string[] => statusLog(node, currentStatusSpy()).map((s) => String(s.text));

  async function load(extra: Record<string, unknown>, wires: string[][] = [['out']], firstPollSends = false): Promise<RuntimeNode> {
    const conn = serviceConnection(auth, { apiBaseUrl: api.url });
    await helper.load(modules, [tab(), conn.node, recordChangeNode('rc', extra, wires), helperNode()], conn.credentials);
    helper.getNode('out').on('input', (msg: Msg) => arrivals.push(msg));
    const node = helper.getNode('rc');
    // The first poll (a second after the start) remembers what exists and is on disk once its status shows.
    if (!firstPollSends) await eventually(() => texts(node).some((t) => t.startsWith('remembered ')), 5000, 'the first poll');
    return node;
  }

  /** Holds every message on its way to `out` until release(); `held` turns true when the first one arrives. */
  function holdDelivery(): { held: () => boolean; release: () => void } {
    let held = false;
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    hooks.add(HOOK, (event) => {
      if ((event.destination as { id?: string } | undefined)?.id !== 'out') return undefined;
      held = true;
      return gate;
    });
    hooked = true;
    return { held: () => held, release };
  }

  function pollEnd(node: RuntimeNode): Promise<PollOutcome> {
    return new Promise((resolve) => poller(node).once('poll-end', resolve));
  }

  it('at least once (the default, no setting saved): the memory is written only after the next node\'s input ran', async () => {
    api.add('before');
    const node = await load({});
    const recorded = file();
    const hold = holdDelivery();
    let seenFromInput: Buffer | undefined;
    helper.getNode('out').once('input', () => (seenFromInput = file()));
    const created = api.add('new one');
    let ended = false;
    const end = pollEnd(node).then((outcome) => {
      ended = true;
      return outcome;
    });
    node.receive({});
    await eventually(hold.held, 5000, 'the message held on its way to the next node');
    await sleep(400);
    assert.ok(file().equals(recorded), 'the memory was written while the message was still on its way');
    assert.equal(ended, false, 'the poll ended before its message was delivered');
    hold.release();
    const outcome = await end;
    assert.ok(!outcome.skipped && !('error' in outcome) && outcome.changes === 1, JSON.stringify(outcome));
    assert.ok(seenFromInput?.equals(recorded), 'the memory was written before the next node\'s input ran');
    assert.equal(file().equals(recorded), false, 'the memory was written after the delivery');
    assert.deepEqual(arrivals.map((m) => `${String(m.event)} ${String(m.topic)}`), [`created ${created.id}`]);
    assert.match(String(arrivals[0].changeKey), /^[A-Za-z0-9_-]{22}$/);
  });

  it('at most once: the memory is written before the message reached the next node', async () => {
    api.add('before');
    const node = await load({ delivery: 'at-most-once' });
    const recorded = file();
    const hold = holdDelivery();
    const end = pollEnd(node);
    const created = api.add('new one');
    node.receive({});
    await eventually(hold.held, 5000, 'the message held on its way to the next node');
    await end;
    await eventually(() => !file().equals(recorded), 2000, 'the memory written while the message is held');
    assert.equal(arrivals.length, 0);
    hold.release();
    await eventually(() => arrivals.length === 1, 2000, 'the message delivered');
    assert.equal(`${String(arrivals[0].event)} ${String(arrivals[0].topic)}`, `created ${created.id}`);
  });

  it('nowhere to send (no wires): recorded at once, without waiting', async () => {
    api.add('before');
    const node = await load({}, [[]]);
    const recorded = file();
    api.add('new one');
    const started = Date.now();
    const end = pollEnd(node);
    node.receive({});
    const outcome = await end;
    assert.ok(!outcome.skipped && !('error' in outcome) && outcome.changes === 1, JSON.stringify(outcome));
    assert.ok(Date.now() - started < DELIVERY_TIMEOUT_MS / 2, `the poll took ${Date.now() - started} ms`);
    assert.equal(file().equals(recorded), false);
  });

  it(`a message that never arrives (a hook drops it): recorded after ${DELIVERY_TIMEOUT_MS / 1000} s, with one warning`, async function () {
    this.timeout(DELIVERY_TIMEOUT_MS + 15_000);
    api.add('before');
    const node = await load({});
    const recorded = file();
    hooks.add(HOOK, (event) => ((event.destination as { id?: string } | undefined)?.id === 'out' ? false : undefined));
    hooked = true;
    api.add('new one');
    const started = Date.now();
    const end = pollEnd(node);
    node.receive({});
    await end;
    assert.ok(Date.now() - started >= DELIVERY_TIMEOUT_MS - 50, `recorded after ${Date.now() - started} ms`);
    assert.equal(file().equals(recorded), false);
    assert.equal(arrivals.length, 0);
    const warnings = (helper._NodePrototype.warn as unknown as Spy)
      .getCalls()
      .filter((c) => c.thisValue === node)
      .map((c) => String(c.args[0]));
    assert.deepEqual(warnings, [
      `The messages of a poll did not reach the next nodes within ${DELIVERY_TIMEOUT_MS / 1000} s (another package's message hooks may hold them back): the poll was recorded anyway. This is said once per deploy.`,
    ]);
  });

  it('msg.changeKey: the same change sent again has the same key, the next change of the record another', async () => {
    const record = api.add('keyed');
    const node = await load({ firstRun: 'emit' }, [['out']], true);
    await eventually(() => arrivals.length === 1, 2000, 'the first poll\'s message');
    // Forget and poll again: the same record, same version and content, sent again as created.
    await new Promise<void>((resolve) => {
      poller(node).reset().then(resolve, resolve);
    });
    const again = pollEnd(node);
    node.receive({});
    await again;
    await eventually(() => arrivals.length === 2, 2000, 'the message sent again');
    api.update(record.id, { name: 'keyed 2' }, new Date(Date.parse(record.updated_at) + 5000));
    const updated = pollEnd(node);
    node.receive({});
    await updated;
    await eventually(() => arrivals.length === 3, 2000, 'the update');
    const keys = arrivals.map((m) => String(m.changeKey));
    assert.deepEqual(arrivals.map((m) => m.event), ['created', 'created', 'updated']);
    assert.equal(keys[0], keys[1]);
    assert.notEqual(keys[2], keys[0]);
  });

  it('a bad Delivery value: a translated error naming the field, the node does not poll', async () => {
    const conn = serviceConnection(auth, { apiBaseUrl: api.url });
    await helper.load(modules, [tab(), conn.node, recordChangeNode('rc', { delivery: 'exactly-once' }), helperNode()], conn.credentials);
    const node = helper.getNode('rc');
    await sleep(1500);
    const errors = errorLog(node).map((e) => e.err as { message?: string; code?: string });
    assert.equal(errors[0]?.code, 'OAUTH2_INVALID_CONFIG');
    assert.equal(errors[0]?.message, 'Invalid configuration: Delivery is not valid');
    assert.deepEqual(statusLog(node, currentStatusSpy()).at(-1), { fill: 'red', shape: 'ring', text: 'OAUTH2_INVALID_CONFIG' });
    assert.equal(api.listRequests.length, 0);
  });
});
