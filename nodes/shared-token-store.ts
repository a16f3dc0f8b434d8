import * as fs from 'node:fs';
import * as path from 'node:path';
import { openFileTokenStore, resolveStoreSecret, type FileTokenStore } from './lib/tokens/file-token-store';
import type { StoredTokens, TokenStore } from './lib/tokens/token-store';

export const TOKEN_STORE_FILE = '.http-oauth2-tokens.json';
export const TOKEN_STORE_KEY_FILE = '.http-oauth2-tokens.key';

/**
 * The runtime's one token store (every connection node and the login routes share it), opened on first use:
 * Node-RED's generated credential secret exists only once its credentials have loaded, after this module.
 */
export class SharedTokenStore implements TokenStore {
  private opening?: Promise<FileTokenStore>;

  constructor(
    private readonly userDir: string,
    private readonly secrets: () => { credentialSecret?: string | false; generatedSecret?: string },
  ) {}

  get filePath(): string {
    return path.join(this.userDir, TOKEN_STORE_FILE);
  }

  private open(): Promise<FileTokenStore> {
    if (!this.opening) {
      this.opening = (async () => {
        const keyFilePath = path.join(this.userDir, TOKEN_STORE_KEY_FILE);
        const { secret } = resolveStoreSecret({ ...this.secrets(), keyFilePath });
        // A store first written before Node-RED had a secret of its own was sealed with the key file's key.
        const fallbackSecrets: string[] = [];
        if (fs.existsSync(keyFilePath)) {
          const keyFileSecret = resolveStoreSecret({ credentialSecret: false, keyFilePath }).secret;
          if (keyFileSecret !== secret) fallbackSecrets.push(keyFileSecret);
        }
        return openFileTokenStore({ filePath: this.filePath, secret, fallbackSecrets });
      })();
      // A failed open (for example a file sealed with another secret) is retried by the next caller.
      this.opening.catch(() => {
        this.opening = undefined;
      });
    }
    return this.opening;
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
    if (this.opening) await (await this.opening).flush();
  }
}
