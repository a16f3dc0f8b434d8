/**
 * simple-oauth2 logs the Basic credentials and full request options (client secret, codes, refresh tokens)
 * through the `debug` package when DEBUG matches `simple-oauth2*` (DEBUG=* is a common troubleshooting step).
 * We make those namespaces permanently disabled on the very `debug` instance simple-oauth2 uses, whatever
 * DEBUG says now or later, while leaving every other namespace alone.
 */
import { createRequire } from 'node:module';

/** The part of the `debug` module's API we touch (debug 4.x). */
interface DebugModule {
  enable(namespaces: string): void;
  disable(): string;
  enabled(name: string): boolean;
}

const SKIP = '-simple-oauth2*';
const PATCHED = Symbol.for('node-red-contrib-http-oauth2.simple-oauth2-debug-silenced');

function isSimpleOAuth2Namespace(name: string): boolean {
  return name === 'simple-oauth2' || name.startsWith('simple-oauth2:');
}

/** Idempotent. Must run before simple-oauth2 makes its first request; importing the client does it. */
export function silenceSimpleOAuth2Debug(): void {
  // Resolve `debug` from simple-oauth2's own location: it may be a nested copy, not the one we would get.
  const requireFromSimpleOAuth2 = createRequire(require.resolve('simple-oauth2'));
  const debug = requireFromSimpleOAuth2('debug') as DebugModule & { [PATCHED]?: true };
  if (debug[PATCHED]) return;
  debug[PATCHED] = true;

  // Every debug instance asks `enabled(namespace)` whenever the namespace list changes: answer no for ours.
  const originalEnabled = debug.enabled;
  debug.enabled = (name: string) => !isSimpleOAuth2Namespace(name) && originalEnabled.call(debug, name);

  // Later enable() calls (another library, a user's code) keep the exclusion too.
  const originalEnable = debug.enable;
  debug.enable = (namespaces: string) => {
    const list = namespaces ? `${namespaces},${SKIP}` : SKIP;
    originalEnable.call(debug, list);
  };

  // Re-apply the current list: this changes debug's namespace string, so instances that already cached
  // "enabled" recompute through the patched enabled().
  debug.enable(debug.disable());
}
