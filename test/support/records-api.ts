import type { AuthServer } from './auth-server';
import { startRecordsApi as startRecordsApiServer, type RecordsApi as RecordsApiServer } from '../../runtime/src/demo/records-api';

export type { ApiRecord } from '../../runtime/src/demo/records-api';

export interface RecordsApi extends RecordsApiServer {
  /** The next GET of page `index` (0-based, any paginated route) waits until the returned function is called. */
  holdPage(index: number): { reached: Promise<void>; release: () => void };
  /** While on, every list GET (any route) answers 500, as a failing API would. */
  failLists(on: boolean): void;
  /**
   * While set, the list changes while it is read, as a busy API's does: in each read of a page, offset or Link
   * list, between two page requests (one boundary per read, picked at random among those with records still
   * unread), 1 to `maxChanges` records on the pages already served are deleted or updated. An update bumps
   * `rev`, renames the record and moves it to the end, as in a list ordered by last change. Either way the
   * records after it move up, and the first ones of the next page land on a page already read. Undefined: off.
   */
  shiftLists(mode: { random: () => number; maxChanges: number } | undefined): void;
  /** What the shifting mode changed, in order. */
  shifts: Array<{ event: 'deleted' | 'updated'; id: number; rev: number }>;
  /**
   * Every request then takes `ms` before its token is checked, as a slow network or API does: a token that was
   * valid when sent can have expired on arrival. 0: off.
   */
  slowTokenCheck(ms: number): void;
}

/**
 * The runtime's demo records API (runtime/src/demo/records-api.ts) protected by the test authorization
 * server, plus test-only toggles: hold a page until the test releases it, make the lists fail.
 */
export async function startRecordsApi(auth: AuthServer): Promise<RecordsApi> {
  const holds = new Map<number, { reachedResolve: () => void; gate: Promise<void> }>();
  let failing = false;
  let tokenCheckDelayMs = 0;
  let shifting: { random: () => number; maxChanges: number } | undefined;
  /** The page index before which the current read's list changes. */
  let shiftBefore = 0;
  const shifts: RecordsApi['shifts'] = [];
  const shift = (index: number): void => {
    if (!shifting) return;
    const records = server.records;
    if (index === 0) {
      const boundaries = Math.ceil(records.length / server.pageSize) - 1;
      shiftBefore = boundaries > 0 ? 1 + Math.floor(shifting.random() * boundaries) : 0;
      return;
    }
    if (index !== shiftBefore) return;
    // Once a read: an offset read can ask for two pages of the same index (a short page moves the offset less).
    shiftBefore = 0;
    // In place: the demo handler already holds this array for the page it is answering.
    let served = Math.min(index * server.pageSize, records.length);
    const count = 1 + Math.floor(shifting.random() * shifting.maxChanges);
    for (let i = 0; i < count && served > 0; i += 1, served -= 1) {
      const [record] = records.splice(Math.floor(shifting.random() * served), 1);
      if (shifting.random() < 0.5) {
        shifts.push({ event: 'deleted', id: record.id, rev: Number(record.rev ?? 0) });
        continue;
      }
      const rev = Number(record.rev ?? 0) + 1;
      Object.assign(record, { rev, name: `${record.name.replace(/ v\d+$/, '')} v${rev}`, updated_at: new Date().toISOString() });
      records.push(record);
      shifts.push({ event: 'updated', id: record.id, rev });
    }
  };
  const server = await startRecordsApiServer({
    validateToken: async (token) => {
      if (tokenCheckDelayMs > 0) await new Promise((r) => setTimeout(r, tokenCheckDelayMs));
      return (await auth.validateAccessToken(token)).active;
    },
    beforePage: async (index) => {
      // The demo API answers 500 when its handler throws.
      if (failing) throw new Error('the list fails (test toggle)');
      shift(index);
      const hold = holds.get(index);
      if (!hold) return;
      holds.delete(index);
      hold.reachedResolve();
      await hold.gate;
    },
  });
  const close = server.close;
  return Object.assign(server, {
    holdPage(index: number) {
      let reachedResolve!: () => void;
      const reached = new Promise<void>((r) => (reachedResolve = r));
      let release!: () => void;
      const gate = new Promise<void>((r) => (release = r));
      holds.set(index, { reachedResolve, gate });
      return { reached, release };
    },
    failLists(on: boolean) {
      failing = on;
    },
    shiftLists(mode: { random: () => number; maxChanges: number } | undefined) {
      shifting = mode;
      shiftBefore = 0;
    },
    shifts,
    slowTokenCheck(ms: number) {
      tokenCheckDelayMs = ms;
    },
    close: () => {
      for (const hold of holds.values()) hold.reachedResolve();
      return close();
    },
  });
}
