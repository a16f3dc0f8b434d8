/**
 * The record trigger with tokens that live 3 s and an API that takes 1.2 s before it checks a token: a token
 * valid when sent has often expired on arrival, and the retry after that rejection must not carry a token
 * that expires on its own way (the provider's expiry has second precision: a "3 s" token lives 2 to 3 s).
 * Three triggers share one connection and poll at once, so tokens are renewed while others' requests are in
 * flight. Real Node-RED runtime, real authorization server, real records API on loopback.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { startAuthServer, type AuthServer } from '../support/auth-server';
import { startRecordsApi, type RecordsApi } from '../support/records-api';
import {
  collectUnhandledRejections,
  helper,
  helperNode,
  loadCatalogs,
  nodeModules,
  recordChangeModule,
  recordChangeNode,
  serviceConnection,
  tab,
  useTempUserDir,
  type RuntimeNode,
} from './support';
import type { PollOutcome, RecordPoller } from '../../nodes/lib/changes/poller';

const TRIGGERS = ['t1', 't2', 't3'];
const RUN_MS = 8_000;

describe('record trigger with 3 s tokens and 1.2 s requests (node-red-node-test-helper)', function () {
  this.timeout(60_000);
  let auth: AuthServer;
  let api: RecordsApi;
  let userDir: string;
  const assertNoUnhandledRejections = collectUnhandledRejections('the short-token trigger test');

  before(async () => {
    await loadCatalogs();
    auth = await startAuthServer({ accessTokenTtlSec: 3 });
    api = await startRecordsApi(auth);
    userDir = useTempUserDir();
  });
  after(async () => {
    await helper.unload();
    await Promise.all([api?.close(), auth?.close()]);
    fs.rmSync(userDir, { recursive: true, force: true });
    assertNoUnhandledRejections();
  });

  it('Expired statuses 401,400: every poll succeeds and every record arrives once at each trigger', async () => {
    const conn = serviceConnection(auth, { apiBaseUrl: api.url });
    // The settings a user would have: the default refresh skew (60 s, at most half a token's life) and the
    // expired statuses of an API that answers 400 for an expired token.
    conn.node.refreshSkewSec = '';
    conn.node.expiredStatuses = '401,400';
    const triggers = TRIGGERS.map((id) => recordChangeNode(id, {}, [[`${id}-out`]]));
    const outs = TRIGGERS.map((id) => helperNode(`${id}-out`));
    await helper.load([...nodeModules, recordChangeModule], [tab(), conn.node, ...triggers, ...outs], conn.credentials);
    const arrived = new Map<string, string[]>(TRIGGERS.map((id) => [id, []]));
    for (const id of TRIGGERS) {
      helper.getNode(`${id}-out`).on('input', (msg: Record<string, unknown>) => arrived.get(id)?.push(`${String(msg.event)} ${String(msg.topic)}`));
    }
    const nodes = TRIGGERS.map((id) => helper.getNode(id));
    /** Polls by message (as an inject would) until a poll runs: one asked for while another runs is skipped. */
    const poll = async (node: RuntimeNode): Promise<PollOutcome> => {
      for (;;) {
        const ended = new Promise<PollOutcome>((resolve) => (node.poller as RecordPoller).once('poll-end', resolve));
        node.receive({});
        const outcome = await ended;
        if (!outcome.skipped) return outcome;
        await new Promise((r) => setTimeout(r, 100));
      }
    };
    // The first poll of each remembers what is there; from then on the API is slow.
    await Promise.all(nodes.map((n) => poll(n)));
    api.slowTokenCheck(1200);

    const failures: string[] = [];
    let polls = 0;
    const added: string[] = [];
    const deadline = Date.now() + RUN_MS;
    const adder = (async () => {
      while (Date.now() < deadline) {
        added.push(`created ${api.add(`record ${added.length}`).id}`);
        await new Promise((r) => setTimeout(r, 700));
      }
    })();
    await Promise.all(
      nodes.map(async (node, i) => {
        await new Promise((r) => setTimeout(r, i * 450)); // staggered: renewals happen while others are in flight
        while (Date.now() < deadline) {
          const outcome = await poll(node);
          polls++;
          if ('error' in outcome) failures.push(`${node.id}: ${outcome.error.code} ${outcome.error.message}`);
        }
      }),
    );
    await adder;
    // One last poll each, to read what was added near the end.
    for (const node of nodes) {
      const outcome = await poll(node);
      if ('error' in outcome) failures.push(`${node.id} (last): ${outcome.error.code}`);
    }
    await new Promise((r) => setTimeout(r, 100)); // Node-RED delivers sent messages on a later tick
    api.slowTokenCheck(0);
    console.log(`      ${polls} polls, ${auth.counts().token.client_credentials} tokens, ${api.listRequests.length} list requests`);

    assert.deepEqual(failures, [], `${failures.length} of ${polls} polls failed`);
    assert.ok(polls >= 6, `only ${polls} polls ran`);
    // More than one token was needed: the requests really met expired tokens.
    assert.ok(auth.counts().token.client_credentials >= 4, JSON.stringify(auth.counts().token));
    for (const id of TRIGGERS) assert.deepEqual(arrived.get(id), added, `what ${id} sent`);
  });
});
