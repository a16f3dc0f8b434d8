import * as path from 'node:path';
import { startRuntime, type RuntimeOptions, type TestRuntime } from '../../test/support/runtime';

export const ROOT = path.resolve(__dirname, '..', '..');
export const PEER_DIR = path.join(ROOT, 'bench', 'node_modules', 'node-red-contrib-oauth2');

/**
 * The embedded runtime (test/support/runtime.ts) with the peer package loaded next to ours. Node-RED loads a
 * folder in `nodesDir` whose package.json has a `node-red` section as a module, the way it loads a package
 * installed in the user directory; node-red-contrib-oauth2 is written for that (it requires itself by package
 * name, which resolves through bench/node_modules).
 */
export function startBenchRuntime(options: RuntimeOptions = {}): Promise<TestRuntime> {
  return startRuntime({ ...options, settings: { nodesDir: [ROOT, PEER_DIR], ...options.settings } });
}
