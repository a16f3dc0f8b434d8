import * as path from 'node:path';
import type { TriggerState } from './lib/changes/types';
import { openTriggerStateStore, type TriggerStateStore } from './lib/changes/state-store';
import { lazyOpen, storeSecrets, type InstanceSecrets } from './instance-secret';

export const TRIGGER_STORE_FILE = '.http-oauth2-triggers.json';

/** The runtime's one store of record-change trigger state, opened on first use. */
export class SharedTriggerStore implements TriggerStateStore {
  private readonly open: () => Promise<TriggerStateStore>;
  private opened = false;

  constructor(userDir: string, secrets: InstanceSecrets) {
    this.open = lazyOpen(async () => {
      const store = await openTriggerStateStore({ filePath: path.join(userDir, TRIGGER_STORE_FILE), ...storeSecrets(userDir, secrets) });
      this.opened = true;
      return store;
    });
  }

  async get(nodeId: string): Promise<TriggerState | undefined> {
    return (await this.open()).get(nodeId);
  }

  async set(nodeId: string, state: TriggerState): Promise<void> {
    return (await this.open()).set(nodeId, state);
  }

  async delete(nodeId: string): Promise<void> {
    return (await this.open()).delete(nodeId);
  }

  async ids(): Promise<string[]> {
    return (await this.open()).ids();
  }

  async flush(): Promise<void> {
    if (this.opened) await (await this.open()).flush();
  }
}
