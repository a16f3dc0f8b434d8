/**
 * Child process for section 4: one trigger engine over one list size, through the real pipeline:
 * RecordPoller + detectChanges + the encrypted file state store (openTriggerStateStore), fetching the list with
 * fetchPages + sendAuthorised from the loopback records API (test/support/records-api.ts) in the parent, which
 * changes 1% of the records when asked over IPC. A process per size, so its peak RSS belongs to that size.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { RecordPoller } from '../nodes/lib/changes/poller';
import { openTriggerStateStore } from '../nodes/lib/changes/state-store';
import type { DetectedChange } from '../nodes/lib/changes/types';
import { createAgents } from '../nodes/lib/http/agents';
import type { Authorizer } from '../nodes/lib/http/authorizer';
import { fetchPages } from '../nodes/lib/http/pagination';
import { findRecords } from '../nodes/lib/http/records';
import { resolveRequestUrl, sendAuthorised, type AuthorisedRequest } from '../nodes/lib/http/request';
import { retryPolicy } from '../nodes/lib/http/retry';
import { parseTriggerConfig } from '../nodes/lib/trigger-settings';
import { processMemory } from './lib/stats';

export interface WorkerRep {
  firstMs: number;
  changedMs: number;
  changes: number;
  stateBytes: number;
  /** Of each poll: the fetch (request, transfer, JSON decode), the rest being diff, emit and the state commit. */
  firstFetchMs: number;
  changedFetchMs: number;
}

export interface WorkerResult {
  n: number;
  reps: WorkerRep[];
  rssBeforeBytes: number;
  peakRssBytes: number;
}

function ask(message: Record<string, unknown>): Promise<void> {
  return new Promise((resolve) => {
    const onMessage = (m: { type?: string }): void => {
      if (m?.type === 'done') {
        process.off('message', onMessage);
        resolve();
      }
    };
    process.on('message', onMessage);
    process.send?.(message);
  });
}

async function main(): Promise<void> {
  const { apiUrl, token, n, reps } = JSON.parse(process.env.RC_WORKER ?? '{}') as { apiUrl: string; token: string; n: number; reps: number };
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nr-oauth2-bench-rc-'));
  const agents = createAgents({});
  const authorizer: Authorizer = {
    allows: () => true,
    getAccessToken: async () => ({ accessToken: token, tokenType: 'Bearer' }),
    renewAfterRejection: async () => ({ accessToken: token, tokenType: 'Bearer' }),
    expiredStatuses: [401],
  };
  // The trigger node's defaults as the editor saves them (test/support/flows.ts triggerLane).
  const config = parseTriggerConfig({
    url: '/records', interval: 1, intervalUnit: 'd', recordsPath: '', recordsPathType: 'auto', idPath: 'id', detection: 'updatedAt',
    versionPath: 'updated_at', emitCreated: true, emitUpdated: true, emitDeleted: false, firstRun: 'remember', includePrevious: false,
    batch: false, watermarkParam: '', pagination: 'none', maxPages: 100, maxRemembered: Math.max(100_000, n),
  });
  const fetchList = async (query: Record<string, string>, signal: AbortSignal): Promise<{ records: unknown[]; complete: boolean }> => {
    const url = resolveRequestUrl(config.url, apiUrl);
    for (const [name, value] of Object.entries(query)) url.searchParams.set(name, value);
    const first: AuthorisedRequest = {
      method: 'GET', url: url.href, headers: { accept: 'application/json' }, timeoutMs: 60_000, responseMode: 'obj',
      followRedirects: true, maxRedirects: 5, retry: retryPolicy({ maxAttempts: 2 }), signal,
    };
    const records: unknown[] = [];
    const fetchStart = performance.now();
    const result = await fetchPages(
      first,
      config.pagination,
      { maxPages: config.maxPages, findRecords: (body) => findRecords(body), keepPages: false },
      (req) => sendAuthorised(req, { authorizer, agents }),
      async (page) => {
        if (page.response.statusCode !== 200) throw new Error(`HTTP ${page.response.statusCode}`);
        for (const record of findRecords(page.response.body) ?? []) records.push(record);
      },
    );
    lastFetchMs = performance.now() - fetchStart;
    return { records, complete: result.complete };
  };
  let lastFetchMs = 0;

  const rssBeforeBytes = processMemory('self').rss;
  const out: WorkerRep[] = [];
  for (let rep = 0; rep < reps; rep += 1) {
    const filePath = path.join(dir, `state-${rep}.json`);
    const store = await openTriggerStateStore({ filePath, secret: 'bench-credential-secret' });
    let emitted = 0;
    const poller = new RecordPoller({
      nodeId: 'bench-trigger', configKey: config.configKey, settings: config.settings, store, fetch: fetchList,
      emit: (changes: DetectedChange[]) => {
        emitted += changes.length;
      },
      intervalMs: config.intervalMs,
    });
    let started = performance.now();
    const first = await poller.pollNow();
    const firstMs = performance.now() - started;
    if ('error' in first) throw first.error;
    const firstFetchMs = lastFetchMs;
    await ask({ type: 'mutate', rep });
    started = performance.now();
    const changed = await poller.pollNow();
    const changedMs = performance.now() - started;
    if ('error' in changed) throw changed.error;
    await store.flush();
    await poller.stop();
    out.push({ firstMs, changedMs, changes: emitted, stateBytes: fs.statSync(filePath).size, firstFetchMs, changedFetchMs: lastFetchMs });
    fs.rmSync(filePath, { force: true });
  }
  agents.destroy();
  fs.rmSync(dir, { recursive: true, force: true });
  const result: WorkerResult = { n, reps: out, rssBeforeBytes, peakRssBytes: processMemory('self').peak };
  process.send?.({ type: 'result', result });
}

main().catch((err) => {
  process.send?.({ type: 'error', message: String(err?.stack ?? err) });
  process.exitCode = 1;
});
