/**
 * Libraries that log secrets through the `debug` package when DEBUG matches their namespace (DEBUG=* is a
 * common troubleshooting step):
 * - simple-oauth2 logs the Basic credentials and full request options (client secret, codes, refresh tokens);
 * - ioredis logs every command with its arguments, the AUTH password included.
 * We make those namespaces permanently disabled on the very `debug` instance each library uses, whatever DEBUG
 * says now or later, while leaving every other namespace alone.
 */
import { createRequire } from 'node:module';

/** The part of the `debug` module's API we touch (debug 4.x). */
interface DebugModule {
  enable(namespaces: string): void;
  disable(): string;
  enabled(name: string): boolean;
}

const PATCHED = Symbol.for('node-red-contrib-http-oauth2.debug-silenced');

type PatchedDebug = DebugModule & { [PATCHED]?: Set<string> };

/**
 * Idempotent. Must run before `library` logs for the first time; importing the module that uses it does it.
 * `library` is resolved from this package (it must be installed), `debug` from the library's own location: it
 * may be a nested copy, not the one we would get.
 */
export function silenceLibraryDebug(library: string, namespace: string): void {
  const requireFromLibrary = createRequire(require.resolve(library));
  const debug = requireFromLibrary('debug') as PatchedDebug;
  let silenced = debug[PATCHED];
  if (silenced?.has(namespace)) return;
  if (!silenced) {
    silenced = new Set<string>();
    debug[PATCHED] = silenced;
    const names = silenced;
    const isSilenced = (name: string): boolean => {
      for (const ns of names) if (name === ns || name.startsWith(`${ns}:`)) return true;
      return false;
    };
    const skipList = (): string => [...names].map((ns) => `-${ns}*`).join(',');

    // Every debug instance asks `enabled(namespace)` whenever the namespace list changes: answer no for ours.
    const originalEnabled = debug.enabled;
    debug.enabled = (name: string) => !isSilenced(name) && originalEnabled.call(debug, name);

    // Later enable() calls (another library, a user's code) keep the exclusion too.
    const originalEnable = debug.enable;
    debug.enable = (namespaces: string) => {
      originalEnable.call(debug, namespaces ? `${namespaces},${skipList()}` : skipList());
    };
  }
  silenced.add(namespace);
  // Re-apply the current list: this changes debug's namespace string, so instances that already cached
  // "enabled" recompute through the patched enabled().
  debug.enable(debug.disable());
}

/** simple-oauth2's namespaces (`simple-oauth2`, `simple-oauth2:*`). */
export function silenceSimpleOAuth2Debug(): void {
  silenceLibraryDebug('simple-oauth2', 'simple-oauth2');
}

/** ioredis's namespaces (`ioredis:redis`, `ioredis:connection`, ...). Only call once ioredis is known to load. */
export function silenceIoredisDebug(): void {
  silenceLibraryDebug('ioredis', 'ioredis');
}
