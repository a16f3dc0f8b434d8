#!/usr/bin/env node
// Compiles the TypeScript sources and puts each node's editor file, icons and message catalogs next to its
// compiled runtime file, where Node-RED's loader looks for them.
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const { execFileSync } = require('node:child_process');

const root = path.resolve(__dirname, '..');
const dist = path.join(root, 'dist');
const distNodes = path.join(dist, 'nodes');

fs.rmSync(dist, { recursive: true, force: true });
execFileSync(process.execPath, [require.resolve('typescript/bin/tsc'), '-p', path.join(root, 'tsconfig.build.json')], {
  stdio: 'inherit',
});

for (const file of fs.readdirSync(path.join(root, 'nodes'))) {
  if (file.endsWith('.html')) fs.copyFileSync(path.join(root, 'nodes', file), path.join(distNodes, file));
}
fs.cpSync(path.join(root, 'nodes', 'icons'), path.join(distNodes, 'icons'), { recursive: true });
fs.cpSync(path.join(root, 'locales'), path.join(distNodes, 'locales'), { recursive: true });
