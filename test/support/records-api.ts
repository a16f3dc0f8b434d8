import type { AuthServer } from './auth-server';
import { startRecordsApi as startRecordsApiServer, type RecordsApi as RecordsApiServer } from '../../runtime/src/demo/records-api';

export type { ApiRecord } from '../../runtime/src/demo/records-api';

export interface RecordsApi extends RecordsApiServer {
  /** The next GET of page `index` (0-based, any paginated route) waits until the returned function is called. */
  holdPage(index: number): { reached: Promise<void>; release: () => void };
  /** While on, every list GET (any route) answers 500, as a failing API would. */
  failLists(on: boolean): void;
}

/**
 * The runtime's demo records API (runtime/src/demo/records-api.ts) protected by the test authorization
 * server, plus test-only toggles: hold a page until the test releases it, make the lists fail.
 */
export async function startRecordsApi(auth: AuthServer): Promise<RecordsApi> {
  const holds = new Map<number, { reachedResolve: () => void; gate: Promise<void> }>();
  let failing = false;
  const server = await startRecordsApiServer({
    validateToken: async (token) => (await auth.validateAccessToken(token)).active,
    beforePage: async (index) => {
      // The demo API answers 500 when its handler throws.
      if (failing) throw new Error('the list fails (test toggle)');
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
    close: () => {
      for (const hold of holds.values()) hold.reachedResolve();
      return close();
    },
  });
}
