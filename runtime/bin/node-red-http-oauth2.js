#!/usr/bin/env node
// The runtime's command. Installed from the registry or a tarball, dist/ is there; in a clone of the repository
// (after `npm ci`, where npm links this file as `npx node-red-http-oauth2`) the first run builds it.
'use strict';
const fs = require('node:fs');
const path = require('node:path');

const cli = path.join(__dirname, '..', 'dist', 'cli.js');
const build = path.join(__dirname, '..', '..', 'scripts', 'build.js');
if (!fs.existsSync(cli) && fs.existsSync(build)) {
  process.stderr.write('node-red-http-oauth2: building the clone first (node scripts/build.js)...\n');
  require('node:child_process').execFileSync(process.execPath, [build], { stdio: ['ignore', 'inherit', 'inherit'] });
}
require(cli);
