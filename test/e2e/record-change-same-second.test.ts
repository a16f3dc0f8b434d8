/**
 * Issue #24 item 3 against the real records API (second-precision `updated_at`, inclusive `updated_since`): a
 * record updated, polled, and updated again within the same second keeps its `updated_at`; the trigger must
 * still deliver the latest content, once, with a watermark, without one, and with watched fields.
 */
import assert from 'node:assert/strict';
import type { AuthServer } from '../support/auth-server';
import { callLane, deployAndWait, sleep, startWatchedAuthServer, startWatchedRuntime, serviceConnection } from '../support/e2e';
import { tab, triggerLane } from '../support/flows';
import { startRecordsApi, type RecordsApi } from '../support/records-api';
import type { TestRuntime } from '../support/runtime';

interface Arrival {
  lane: string;
  event: string;
  id: string;
  name?: string;
  status?: string;
}

/** A lane whose sink also receives the record's name and status, to see which content arrived. */
function laneWithContent(id: string, config: Record<string, unknown>): Record<string, unknown>[] {
  return triggerLane({ id, path: `/poll/${id}`, config }).map((node) =>
    node.id === `${id}-shape`
      ? {
          ...node,
          rules: [
            {
              t: 'set',
              p: 'payload',
              pt: 'msg',
              to: `{"lane": "${id}", "event": event, "id": topic, "name": payload.name, "status": payload.status}`,
              tot: 'jsonata',
            },
          ],
        }
      : node,
  );
}

const LANES = ['mark', 'whole', 'watched'] as const;

describe('e2e: a record updated twice within one second is sent with its latest content, once', function () {
  this.timeout(90_000);
  let auth: AuthServer;
  let api: RecordsApi;
  let runtime: TestRuntime;

  const arrivals = (lane: string): Arrival[] => (api.sink as Arrival[]).filter((a) => a.lane === lane);

  async function pollAll(): Promise<void> {
    for (const lane of LANES) {
      const res = await callLane(runtime, `/poll/${lane}`);
      assert.equal(res.status, 200, res.text);
    }
    await sleep(150); // the sink POSTs leave after the poll's messages are sent
  }

  before(async () => {
    auth = await startWatchedAuthServer();
    api = await startRecordsApi(auth);
    runtime = await startWatchedRuntime();
    const at = new Date(Date.now() - 60_000);
    for (let i = 1; i <= 6; i += 1) api.add(`record ${i}`, at).status = 'open';
    await deployAndWait(runtime, [
      tab(),
      serviceConnection(auth, api),
      ...laneWithContent('mark', { url: '/records', watermarkParam: 'updated_since', watermarkOverlapSec: 0, watermarkFormat: 'iso' }),
      ...laneWithContent('whole', { url: '/records' }),
      ...laneWithContent('watched', { url: '/records', watchFields: 'status' }),
    ]);
    await pollAll(); // first polls: remember, send nothing
  });

  after(async () => {
    await runtime?.stop();
    await api?.close();
    await auth?.close();
  });

  it('6 of 6: updated, polled, updated again in the same second, polled twice: the latest content arrives, and nothing twice', async () => {
    assert.deepEqual(api.sink, []);
    for (let id = 1; id <= 6; id += 1) {
      // Both updates carry the current second (the API stamps whole seconds), and neither is ahead of its clock.
      const second = new Date(Math.floor(Date.now() / 1000) * 1000);
      api.update(id, { name: `record ${id} first`, status: 'open' }, second);
      await pollAll();
      api.update(id, { name: `record ${id} second`, status: 'done' }, second);
      assert.equal(api.records.find((r) => r.id === id)?.updated_at, second.toISOString().replace('.000Z', 'Z'), 'the same updated_at');
      await pollAll();
      await pollAll();
    }
    for (const lane of ['mark', 'whole'] as const) {
      assert.deepEqual(
        arrivals(lane).map((a) => `${a.event} ${a.id} ${a.name}`),
        [1, 2, 3, 4, 5, 6].flatMap((id) => [`updated ${id} record ${id} first`, `updated ${id} record ${id} second`]),
        lane,
      );
    }
    // Watched status only: the first update renamed (status unchanged: nothing), the second changed the status.
    assert.deepEqual(
      arrivals('watched').map((a) => `${a.event} ${a.id} ${a.status} ${a.name}`),
      [1, 2, 3, 4, 5, 6].map((id) => `updated ${id} done record ${id} second`),
    );
  });
});
