#!/usr/bin/env node
// Builds both packages of the repository:
// - the palette package (root): compiles nodes/ into dist/nodes and puts each node's editor file, icons and
//   message catalogs next to its compiled runtime file, where Node-RED's loader looks for them;
// - the runtime package (runtime/): compiles runtime/src into runtime/dist.
// Each is built into a fresh folder and swapped in, so a runtime started from dist/ never sees a half-built tree.
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const { execFileSync } = require('node:child_process');

const root = path.resolve(__dirname, '..');
const tsc = require.resolve('typescript/bin/tsc');

/** Compiles `project` into a staging folder, lets `extra` add files to it, then swaps it in as `dist`. */
function buildInto(dist, project, extra) {
  const staging = path.join(path.dirname(dist), `.dist-build-${process.pid}`);
  fs.rmSync(staging, { recursive: true, force: true });
  try {
    execFileSync(process.execPath, [tsc, '-p', project, '--outDir', staging], { stdio: 'inherit' });
    extra(staging);
    const old = `${dist}.old-${process.pid}`;
    if (fs.existsSync(dist)) fs.renameSync(dist, old);
    fs.renameSync(staging, dist);
    fs.rmSync(old, { recursive: true, force: true });
  } catch (err) {
    fs.rmSync(staging, { recursive: true, force: true });
    throw err;
  }
}

/** A git install of the palette package alone has no runtime workspace dependencies: nothing to build then. */
function runtimeInstalled() {
  try {
    require.resolve('node-red/package.json', { paths: [path.join(root, 'runtime')] });
    return fs.existsSync(path.join(root, 'runtime', 'tsconfig.json'));
  } catch {
    return false;
  }
}

try {
  buildInto(path.join(root, 'dist'), path.join(root, 'tsconfig.build.json'), (staging) => {
    const stagingNodes = path.join(staging, 'nodes');
    for (const file of fs.readdirSync(path.join(root, 'nodes'))) {
      if (file.endsWith('.html')) fs.copyFileSync(path.join(root, 'nodes', file), path.join(stagingNodes, file));
    }
    fs.cpSync(path.join(root, 'nodes', 'icons'), path.join(stagingNodes, 'icons'), { recursive: true });
    fs.cpSync(path.join(root, 'locales'), path.join(stagingNodes, 'locales'), { recursive: true });
  });
  if (runtimeInstalled()) {
    buildInto(path.join(root, 'runtime', 'dist'), path.join(root, 'runtime', 'tsconfig.json'), (staging) => {
      // The bin must be executable when npm links it from a clone (npm sets the mode itself on install).
      fs.chmodSync(path.join(staging, 'cli.js'), 0o755);
    });
  } else {
    console.log('build: the runtime workspace is not installed (no node-red next to it): built the nodes only.');
  }
} catch (err) {
  process.exitCode = 1;
  if (!(err && err.status)) console.error(err);
}
