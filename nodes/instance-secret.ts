import * as fs from 'node:fs';
import * as path from 'node:path';
import * as os from 'node:os';
import { resolveStoreSecret } from './lib/tokens/file-token-store';
import type { NodeAPI } from './node-red-types';

export const STORE_KEY_FILE = '.http-oauth2-tokens.key';

export type InstanceSecrets = () => { credentialSecret?: string | false; generatedSecret?: string };

/**
 * The key material for the package's encrypted files in `userDir`: the instance's credential secret, and as
 * fallbacks the secrets a file may have been sealed with before (the owner-only key file used while Node-RED
 * had no secret of its own). Files opened with a fallback are re-sealed with the current secret.
 */
export function storeSecrets(userDir: string, secrets: InstanceSecrets): { secret: string; fallbackSecrets: string[] } {
  const keyFilePath = path.join(userDir, STORE_KEY_FILE);
  const { secret } = resolveStoreSecret({ ...secrets(), keyFilePath });
  const fallbackSecrets: string[] = [];
  if (fs.existsSync(keyFilePath)) {
    const keyFileSecret = resolveStoreSecret({ credentialSecret: false, keyFilePath }).secret;
    if (keyFileSecret !== secret) fallbackSecrets.push(keyFileSecret);
  }
  return { secret, fallbackSecrets };
}

/**
 * Opens a store on first use and retries a failed open on the next use: Node-RED's generated credential
 * secret exists only once its credentials have loaded, after this package's modules.
 */
export function lazyOpen<T>(open: () => Promise<T>): () => Promise<T> {
  let opening: Promise<T> | undefined;
  return () => {
    if (!opening) {
      opening = open();
      opening.catch(() => {
        opening = undefined;
      });
    }
    return opening;
  };
}

/** A Node-RED setting, or undefined where settings are not loaded yet (node-red-node-test-helper throws). */
export function safeSetting(RED: NodeAPI, key: string): unknown {
  try {
    return RED.settings.get(key);
  } catch {
    return undefined;
  }
}

/** Where the package keeps its files: Node-RED's user directory. */
export function storeDir(RED: NodeAPI): string {
  return RED.settings.userDir || path.join(os.tmpdir(), 'node-red-http-oauth2');
}

/** The instance's secrets, read when a store opens (the generated one exists only after credentials load). */
export function instanceSecrets(RED: NodeAPI): InstanceSecrets {
  return () => ({
    credentialSecret: safeSetting(RED, 'credentialSecret') as string | false | undefined,
    generatedSecret: safeSetting(RED, '_credentialSecret') as string | undefined,
  });
}
