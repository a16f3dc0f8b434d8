import * as path from 'node:path';
import { openFileTokenStore, type FileTokenStore } from './lib/tokens/file-token-store';
import type { StoredTokens, TokenStore } from './lib/tokens/token-store';
import { lazyOpen, storeSecrets, type InstanceSecrets } from './instance-secret';

export const TOKEN_STORE_FILE = '.http-oauth2-tokens.json';

/** The runtime's one token store (every connection node and the login routes share it), opened on first use. */
export class SharedTokenStore implements TokenStore {
  private readonly open: () => Promise<FileTokenStore>;
  private opened = false;

  constructor(userDir: string, secrets: InstanceSecrets) {
    this.open = lazyOpen(async () => {
      const store = await openFileTokenStore({ filePath: path.join(userDir, TOKEN_STORE_FILE), ...storeSecrets(userDir, secrets) });
      this.opened = true;
      return store;
    });
  }

  async get(connectionId: string): Promise<StoredTokens | undefined> {
    return (await this.open()).get(connectionId);
  }

  async set(connectionId: string, value: StoredTokens): Promise<void> {
    return (await this.open()).set(connectionId, value);
  }

  async delete(connectionId: string): Promise<void> {
    return (await this.open()).delete(connectionId);
  }

  async ids(): Promise<string[]> {
    return (await this.open()).ids();
  }

  async flush(): Promise<void> {
    if (this.opened) await (await this.open()).flush();
  }
}
