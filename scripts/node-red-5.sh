#!/usr/bin/env bash
# Runs the node-level (test/node) and end-to-end (test/e2e) suites under Node-RED 5 on Node.js 22, beside the
# main CI's Node-RED 4.1 on the machine's Node.js. Node-RED 5 needs Node.js >= 22.9, so both come from the npm
# registry (the `node` package ships the binary) into a cache directory; nothing is downloaded from elsewhere,
# and the repository's own node_modules and lock file are left alone: the suites run in a copy of the working
# tree whose package.json files name Node-RED 5.
#
#   scripts/node-red-5.sh            newest node-red 5.x, newest node 22.x
#   NODE_RED_VERSION=5.0.7 NODE_VERSION=22.23.3 scripts/node-red-5.sh
#   NR5_CACHE=/some/dir              cache (default: ${XDG_CACHE_HOME:-~/.cache}/node-red-contrib-http-oauth2/node-red-5)
#   SPEC=test/e2e/runtime.test.ts    a subset (default: test/node and test/e2e; test/browser is not run here)
#
# Ends with the line "N passed, N failed" from the test run; exits non-zero when anything failed.
set -uo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
cache="${NR5_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/node-red-contrib-http-oauth2/node-red-5}"
spec="${SPEC:-test/node/**/*.test.ts,test/e2e/**/*.test.ts}"

step() { printf '\n== %s (at %ss)\n' "$*" "$SECONDS"; }
fail() {
  echo "$*"
  echo "0 passed, 1 failed"
  exit 1
}
mkdir -p "$cache" || fail "cannot create the cache directory $cache"

step "Node.js 22 (npm package node@${NODE_VERSION:-22}) in $cache/node"
# The package's preinstall fetches node-linux-<arch> from the npm registry; npm 11 warns that the script is not
# covered by allowScripts, and runs it. Reinstalled only when the wanted version is not the one cached.
node22="$cache/node/node_modules/node/bin/node"
want_node="${NODE_VERSION:-$(npm view "node@22" version --json 2>/dev/null | tr -d '"[] \n' | tr ',' '\n' | sort -V | tail -n 1)}"
[ -n "$want_node" ] || fail "npm view node@22 answered nothing (is the npm registry reachable?)"
if [ ! -x "$node22" ] || [ "$("$node22" --version 2>/dev/null)" != "v$want_node" ]; then
  rm -rf "$cache/node" && mkdir -p "$cache/node" && printf '{"private":true}\n' >"$cache/node/package.json"
  npm install --prefix "$cache/node" --no-audit --no-fund --no-save "node@$want_node" 2>&1 | grep -v '^npm warn install-scripts' ||
    true
fi
"$node22" --version >/dev/null 2>&1 || fail "no working Node.js at $node22"
export PATH="$(dirname "$node22"):$PATH"
echo "node $(node --version), npm $(npm --version)"

nr="${NODE_RED_VERSION:-$(npm view "node-red@5" version --json 2>/dev/null | tr -d '"[] \n' | tr ',' '\n' | sort -V | tail -n 1)}"
[ -n "$nr" ] || fail "npm view node-red@5 answered nothing"
step "node-red $nr in a copy of the working tree ($cache/work)"
work="$cache/work"
mkdir -p "$work"
# Fresh sources on every run; node_modules stays so a second run installs nothing new.
find "$work" -mindepth 1 -maxdepth 1 ! -name node_modules -exec rm -rf {} +
find "$work/runtime" -mindepth 1 -maxdepth 1 ! -name node_modules -exec rm -rf {} + 2>/dev/null
(cd "$repo" && git ls-files -z --cached --others --exclude-standard | tar --null --ignore-failed-read -T - -cf - 2>/dev/null) |
  tar -xf - -C "$work" || fail "could not copy the working tree to $work"
(
  cd "$work" &&
    node -e '
      const fs = require("node:fs");
      const [version] = process.argv.slice(1);
      const edit = (file, section) => {
        const pkg = JSON.parse(fs.readFileSync(file, "utf8"));
        pkg[section] = { ...pkg[section], "node-red": version };
        fs.writeFileSync(file, JSON.stringify(pkg, null, 2) + "\n");
      };
      edit("package.json", "devDependencies"); // the node tests and the stock node-red of the packaging test
      edit("runtime/package.json", "dependencies"); // the embedded runtime of the e2e tests
    ' "$nr"
) || fail "could not point the copy's package.json files at node-red $nr"

step "npm install (Node.js $(node --version))"
(cd "$work" && npm install --no-audit --no-fund 2>&1 | grep -v '^npm warn install-scripts') || true
for dir in "$work" "$work/runtime"; do
  got="$(cd "$dir" && node -p 'require("node-red/package.json").version' 2>/dev/null)"
  [ "$got" = "$nr" ] || fail "node-red resolves to '${got:-nothing}' from $dir, not $nr: the run would not test Node-RED 5"
done

step "build"
(cd "$work" && node scripts/build.js) || fail "the build failed under Node.js $(node --version)"

step "tests under node-red $nr, Node.js $(node --version): $spec"
cd "$work" && SPEC="$spec" node node_modules/mocha/bin/mocha.js
