/**
 * Suites that need a Debian package (chromium, redis-server) call `needsSystemPackage(this, name)` first in
 * their describe: when the program is missing (scripts/provision.js could not install it), the whole suite is
 * skipped with a reason naming the package, which the summary reporter prints, instead of failing its hooks.
 */
import type { Suite } from 'mocha';

interface SystemPackage {
  name: string;
  binary: string;
  env: string;
  neededBy: string;
}
interface SystemPackages {
  systemPackage(name: string): SystemPackage;
  binaryOf(pkg: SystemPackage): string;
  isExecutable(file: string): boolean;
}
// eslint-disable-next-line @typescript-eslint/no-require-imports -- plain CommonJS, shared with scripts/provision.js
const packages = require('../../scripts/system-packages') as SystemPackages;

/** The property the summary reporter reads on a skipped suite. */
export const SKIP_REASON = 'skipReason';

export function needsSystemPackage(suite: Suite, name: string): void {
  const pkg = packages.systemPackage(name);
  suite.beforeAll(function () {
    const binary = packages.binaryOf(pkg);
    if (packages.isExecutable(binary)) return;
    Object.assign(suite, {
      [SKIP_REASON]: `${pkg.name} is not installed (${binary} missing; install the Debian package ${pkg.name}, or run npm test as root)`,
    });
    this.skip();
  });
}
