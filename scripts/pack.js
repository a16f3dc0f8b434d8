#!/usr/bin/env node
// Packs both installable tarballs into one folder (default ./packages):
// - node-red-contrib-http-oauth2-<version>.tgz, the palette package (Manage palette → Install → upload, or
//   `npm install <tgz>` in a Node-RED user directory);
// - node-red-contrib-http-oauth2-runtime-<version>.tgz, the standalone runtime, with that same palette package
//   inside it, so `npm install -g <runtime tgz>` needs nothing that is not on the npm registry.
// Usage: node scripts/pack.js [--out <dir>] [--no-build]
'use strict';
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const PALETTE = 'node-red-contrib-http-oauth2';

function parseArgs(argv) {
  const options = { out: path.join(root, 'packages'), build: true };
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--out') options.out = path.resolve(argv[++i] ?? '');
    else if (argv[i] === '--no-build') options.build = false;
    else throw new Error(`unknown option ${argv[i]} (usage: node scripts/pack.js [--out <dir>] [--no-build])`);
  }
  return options;
}

/** npm's lifecycle variables name the repository `npm run` started in; a child npm must not act on them. */
function npmEnv() {
  const env = {};
  for (const [key, value] of Object.entries(process.env)) if (!/^npm_/i.test(key)) env[key] = value;
  return env;
}

/** `npm pack` of `dir` into `out`; returns the tarball's path. Lifecycle scripts are skipped: we built already. */
function npmPack(dir, out) {
  const stdout = execFileSync('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', out], {
    cwd: dir,
    env: npmEnv(),
    encoding: 'utf8',
    maxBuffer: 16 * 1024 * 1024,
  });
  const [entry] = JSON.parse(stdout);
  return path.join(out, entry.filename);
}

function main() {
  const options = parseArgs(process.argv.slice(2));
  if (options.build) execFileSync(process.execPath, [path.join(root, 'scripts', 'build.js')], { stdio: 'inherit' });
  if (!fs.existsSync(path.join(root, 'runtime', 'dist', 'cli.js'))) {
    throw new Error('runtime/dist is missing: run `npm ci` first (it installs the runtime workspace), then this script.');
  }
  fs.mkdirSync(options.out, { recursive: true });
  const palette = npmPack(root, options.out);

  // The runtime is packed from a staging copy that carries the palette package just packed in `palette/`
  // (embedded.ts loads the nodes from there) and depends on what that package depends on. The workspace's
  // `file:..` dependency would mean nothing on another machine, and bundling it would not do either: a global
  // install (npm's shallow strategy) of a package with bundled dependencies leaves its other dependencies empty.
  const staging = fs.mkdtempSync(path.join(os.tmpdir(), 'http-oauth2-pack-'));
  try {
    const source = JSON.parse(fs.readFileSync(path.join(root, 'runtime', 'package.json'), 'utf8'));
    const paletteManifest = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'));
    const dependencies = { ...paletteManifest.dependencies, ...source.dependencies };
    delete dependencies[PALETTE];
    const manifest = { ...source, dependencies, files: [...(source.files ?? []), 'palette'] };
    for (const entry of source.files ?? []) {
      fs.cpSync(path.join(root, 'runtime', entry), path.join(staging, entry), {
        recursive: true,
        filter: (file) => !file.endsWith('.map'),
      });
    }
    fs.copyFileSync(path.join(root, 'LICENSE'), path.join(staging, 'LICENSE'));
    fs.writeFileSync(path.join(staging, 'package.json'), `${JSON.stringify(manifest, null, 2)}\n`);
    fs.mkdirSync(path.join(staging, 'palette'));
    execFileSync('tar', ['-xzf', palette, '-C', path.join(staging, 'palette'), '--strip-components=1']);
    const runtime = npmPack(staging, options.out);
    process.stdout.write(`${palette}\n${runtime}\n`);
  } finally {
    fs.rmSync(staging, { recursive: true, force: true });
  }
}

try {
  main();
} catch (err) {
  process.stderr.write(`pack: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
}
