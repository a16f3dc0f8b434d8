#!/usr/bin/env node
// Compiles the TypeScript sources and puts each node's editor file, icons and message catalogs next to its
// compiled runtime file, where Node-RED's loader looks for them. Builds into a fresh folder and swaps it in,
// so a runtime started from dist/ never sees a half-built tree.
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const { execFileSync } = require('node:child_process');

const root = path.resolve(__dirname, '..');
const dist = path.join(root, 'dist');
const staging = path.join(root, `.dist-build-${process.pid}`);
const stagingNodes = path.join(staging, 'nodes');

fs.rmSync(staging, { recursive: true, force: true });
try {
  execFileSync(
    process.execPath,
    [require.resolve('typescript/bin/tsc'), '-p', path.join(root, 'tsconfig.build.json'), '--outDir', staging],
    { stdio: 'inherit' },
  );
  for (const file of fs.readdirSync(path.join(root, 'nodes'))) {
    if (file.endsWith('.html')) fs.copyFileSync(path.join(root, 'nodes', file), path.join(stagingNodes, file));
  }
  fs.cpSync(path.join(root, 'nodes', 'icons'), path.join(stagingNodes, 'icons'), { recursive: true });
  fs.cpSync(path.join(root, 'locales'), path.join(stagingNodes, 'locales'), { recursive: true });
  const old = `${dist}.old-${process.pid}`;
  if (fs.existsSync(dist)) fs.renameSync(dist, old);
  fs.renameSync(staging, dist);
  fs.rmSync(old, { recursive: true, force: true });
} catch (err) {
  fs.rmSync(staging, { recursive: true, force: true });
  process.exitCode = 1;
  if (!(err && err.status)) console.error(err);
}
