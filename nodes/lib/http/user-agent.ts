/**
 * The User-Agent this package's requests carry unless the flow sets one: its name and version (from the
 * package.json of the installed package, found above this file in dist/ or in the sources), and Node's.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

const NAME = 'node-red-contrib-http-oauth2';

function packageVersion(): string {
  let dir = __dirname;
  for (let i = 0; i < 6; i++) {
    try {
      const pkg = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8')) as { name?: unknown; version?: unknown };
      if (pkg.name === NAME && typeof pkg.version === 'string') return pkg.version;
    } catch {
      // not here: one folder up
    }
    dir = path.dirname(dir);
  }
  return '0.0.0';
}

export const USER_AGENT = `${NAME}/${packageVersion()} node/${process.versions.node}`;
