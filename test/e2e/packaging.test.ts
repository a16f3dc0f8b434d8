// Palette readiness: the published tarball, installed into a fresh user directory the way Node-RED's palette
// manager does it, gives a stock Node-RED the four node types, their editor files, help, catalogs, icons and
// examples. Also the part of the Flow Library scorecard (`node-red-dev validate`) that needs no network.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  installLikePalette,
  nodeRedSemver,
  packRoot,
  REPO_ROOT,
  startNodeRed,
  type NodeRedProcess,
  type PackResult,
} from '../support/packaging';

const MODULE = 'node-red-contrib-http-oauth2';
const SOURCE_PACKAGE = JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')) as {
  'node-red': { nodes: Record<string, string> };
};
const semver = nodeRedSemver();
const TYPES = Object.keys(SOURCE_PACKAGE['node-red'].nodes);
/** Size budget for the tarball (it was 184 kB packed, 781 kB unpacked with source maps, on 0.1.0). */
const MAX_PACKED = 400 * 1024;
const MAX_UNPACKED = 2 * 1024 * 1024;

interface ShippedPackage {
  name: string;
  license?: string;
  repository?: unknown;
  bugs?: unknown;
  keywords?: string[];
  engines?: { node?: string };
  scripts?: Record<string, string>;
  dependencies?: Record<string, string>;
  peerDependencies?: Record<string, string>;
  peerDependenciesMeta?: Record<string, { optional?: boolean }>;
  'node-red': { version?: string; nodes: Record<string, string> };
}

/** [dotted key, message] pairs of a catalog, sorted by key. */
function leaves(value: unknown, prefix = ''): [string, unknown][] {
  if (!value || typeof value !== 'object') return [[prefix, value]];
  return Object.entries(value)
    .flatMap(([k, v]) => leaves(v, prefix ? `${prefix}.${k}` : k))
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}

interface NodeSet {
  id: string;
  module: string;
  types: string[];
  enabled: boolean;
  err?: string;
}

describe('e2e: npm pack, palette-style install, stock Node-RED', function () {
  this.timeout(120_000);
  let tmp: string;
  let pack: PackResult & { tarball: string };
  let installed: string;
  let shipped: ShippedPackage;
  let nodeRed: NodeRedProcess | undefined;

  before(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'nr-oauth2-pack-'));
    pack = await packRoot(tmp);
    const userDir = path.join(tmp, 'user');
    await installLikePalette(userDir, pack.tarball);
    installed = path.join(userDir, 'node_modules', MODULE);
    shipped = JSON.parse(fs.readFileSync(path.join(installed, 'package.json'), 'utf8')) as ShippedPackage;
    nodeRed = await startNodeRed(userDir);
  });

  after(async () => {
    await nodeRed?.stop();
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  const get = (pathname: string, accept = 'application/json'): Promise<Response> =>
    fetch(new URL(pathname.replace(/^\//, ''), nodeRed!.url), { headers: { accept } });

  describe('the tarball', () => {
    it(`is small (under ${MAX_PACKED / 1024} kB packed, ${MAX_UNPACKED / 1024 / 1024} MB unpacked)`, () => {
      assert.ok(pack.size < MAX_PACKED, `packed ${pack.size} bytes`);
      assert.ok(pack.unpackedSize < MAX_UNPACKED, `unpacked ${pack.unpackedSize} bytes`);
    });

    it('holds no tests, TypeScript sources, runtime package, build scripts or benchmarks', () => {
      const unwanted = pack.files
        .map((f) => f.path)
        .filter((p) => /(^|\/)(test|tests|runtime|scripts|bench|coverage|node_modules)\//.test(p) || /(?<!\.d)\.[cm]?ts$/.test(p) || /^\./.test(path.basename(p)));
      assert.deepEqual(unwanted, []);
    });

    it('holds every node file with its editor file, catalogs and help, and the examples', () => {
      const files = new Set(pack.files.map((f) => f.path));
      for (const [type, js] of Object.entries(shipped['node-red'].nodes)) {
        const dir = path.posix.dirname(js);
        for (const f of [js, js.replace(/\.js$/, '.html'), `${dir}/locales/en-US/${type}.json`, `${dir}/locales/en-US/${type}.html`]) {
          assert.ok(files.has(f), `${f} missing from the tarball`);
        }
      }
      assert.ok([...files].some((f) => /^examples\/.+\.json$/.test(f)), 'no examples');
      // The connection dialog's Provider field reads the presets from the runtime (oauth2-connection/providers).
      assert.ok(files.has('dist/nodes/lib/providers/catalogue.json'), 'the provider catalogue is missing from the tarball');
    });

    it('does not make node-red a dependency, and npm did not install it', () => {
      assert.equal(shipped.dependencies?.['node-red'], undefined);
      if (shipped.peerDependencies?.['node-red']) assert.equal(shipped.peerDependenciesMeta?.['node-red']?.optional, true);
      assert.equal(fs.existsSync(path.join(installed, '..', 'node-red')), false, 'node-red was installed into the user directory');
    });

    it('has no install-time lifecycle script (npm 11 warns about each one on every palette install)', () => {
      const scripts = Object.keys(shipped.scripts ?? {}).filter((s) => ['preinstall', 'install', 'postinstall', 'prepare'].includes(s));
      assert.deepEqual(scripts, [], `lifecycle scripts in the shipped package.json: ${scripts.join(', ')}`);
    });
  });

  describe('Flow Library scorecard, the checks that need no network (node-red-dev validate 0.1.6)', () => {
    it('P01 license, P03 repository or bugs, P05 the node-red keyword', () => {
      assert.ok(shipped.license);
      assert.ok(shipped.repository || shipped.bugs);
      assert.ok(shipped.keywords?.includes('node-red'));
    });

    it('P04 a node-red-prefixed name is node-red-contrib-*', () => {
      assert.match(shipped.name, /^(@[a-z\d][\w.-]*\/)?(?!(node-red|nodered)(?!-contrib-))/i);
    });

    it('P06 node-red.version covers Node-RED 4.1 (tested here) and 5 (current latest)', () => {
      const range = shipped['node-red'].version;
      assert.ok(range && semver.validRange(range), `node-red.version ${String(range)}`);
      for (const v of ['4.1.0', '5.0.0']) assert.ok(semver.satisfies(v, range), `${range} excludes Node-RED ${v}`);
    });

    it('P07 engines.node admits the Node.js lines the tests run on (20 with Node-RED 4.1, 22 with 5) and not the untested, ended 18', () => {
      const runtimePackage = JSON.parse(fs.readFileSync(path.join(__dirname, '../../runtime/package.json'), 'utf8')) as Pick<ShippedPackage, 'engines'>;
      for (const range of [shipped.engines?.node, runtimePackage.engines?.node]) {
        assert.ok(range && semver.validRange(range));
        for (const v of ['20.19.0', process.versions.node, '22.9.0']) assert.ok(semver.satisfies(v, range), `${range} excludes Node.js ${v}`);
        assert.ok(!semver.satisfies('18.20.0', range), `${range} admits Node.js 18, which nothing tests`);
      }
    });

    it('N02 the shipped examples use every non-config node; D01 at most 6 dependencies', () => {
      const used = new Set<string>();
      for (const f of fs.readdirSync(path.join(installed, 'examples')).filter((f) => f.endsWith('.json'))) {
        for (const node of JSON.parse(fs.readFileSync(path.join(installed, 'examples', f), 'utf8')) as { type: string }[]) used.add(node.type);
      }
      for (const type of TYPES.filter((t) => t !== 'oauth2-connection')) assert.ok(used.has(type), `no example uses ${type}`);
      assert.ok(Object.keys(shipped.dependencies ?? {}).length <= 6);
    });
  });

  describe('a stock Node-RED on the user directory', () => {
    it('GET /nodes lists the four types from the installed module, enabled and without error', async () => {
      assert.deepEqual([...TYPES].sort(), ['http-oauth2-request', 'oauth2-connection', 'oauth2-connection-status', 'oauth2-record-change']);
      const res = await get('nodes');
      assert.equal(res.status, 200);
      const sets = ((await res.json()) as NodeSet[]).filter((s) => s.module === MODULE);
      assert.deepEqual(sets.flatMap((s) => s.types).sort(), [...TYPES].sort());
      for (const set of sets) {
        assert.equal(set.err, undefined, `${set.id}: ${String(set.err)}`);
        assert.equal(set.enabled, true, set.id);
      }
      const module = (await (await get(`nodes/${MODULE}`)).json()) as { path: string; version: string };
      assert.equal(fs.realpathSync(module.path), fs.realpathSync(installed), 'loaded from the user directory');
    });

    it('logged no error or warning about the module while loading', () => {
      const lines = nodeRed!.output().split('\n');
      assert.deepEqual(lines.filter((l) => /\[error\]/.test(l) || (/\[warn\]/.test(l) && l.includes(MODULE))), []);
    });

    it('GET /nodes (text/html) serves each editor template and help', async () => {
      const res = await get('nodes', 'text/html');
      assert.equal(res.status, 200);
      const html = await res.text();
      for (const type of TYPES) {
        assert.ok(html.includes(`<!-- --- [red-module:${MODULE}/${type}] --- -->`), `${type}: module marker`);
        assert.match(html, new RegExp(`data-template-name=["']${type}["']`), `${type}: editor template`);
        assert.match(html, new RegExp(`data-help-name=["']${type}["']`), `${type}: help`);
        assert.match(html, new RegExp(`RED\\.nodes\\.registerType\\(\\s*["']${type}["']`), `${type}: registerType`);
      }
    });

    it('GET /locales/<module>/<node> serves each shipped catalog, in each shipped language', async () => {
      for (const [type, js] of Object.entries(shipped['node-red'].nodes)) {
        const localesDir = path.join(installed, path.dirname(js), 'locales');
        const langs = fs.readdirSync(localesDir).filter((l) => fs.existsSync(path.join(localesDir, l, `${type}.json`)));
        assert.ok(langs.includes('en-US'), `${type}: no en-US catalog`);
        for (const lang of langs) {
          const res = await get(`locales/${MODULE}/${type}?lng=${lang}`);
          assert.equal(res.status, 200);
          const served = await res.json();
          const file = JSON.parse(fs.readFileSync(path.join(localesDir, lang, `${type}.json`), 'utf8')) as unknown;
          // Node-RED fills a language's missing keys from en-US (@node-red/util/lib/i18n.js): every message of
          // the file must be served as written; whether languages have the same keys is the translations test's job.
          if (lang === 'en-US') assert.deepEqual(served, file, `${type} ${lang}`);
          else assert.deepEqual(leaves(served).filter(([k]) => leaves(file).some(([f]) => f === k)), leaves(file), `${type} ${lang}`);
        }
      }
    });

    it('GET /resources/<module>/editor.js serves the script every editor file loads', async () => {
      const html = await (await get('nodes', 'text/html')).text();
      const src = `resources/${MODULE}/editor.js`;
      const loads = html.split(`<script type="text/javascript" src="${src}"></script>`).length - 1;
      assert.equal(loads, TYPES.length, 'each editor file loads the shared script');
      const res = await get(src, '*/*');
      assert.equal(res.status, 200);
      assert.equal(await res.text(), fs.readFileSync(path.join(installed, 'resources', 'editor.js'), 'utf8'));
    });

    it('GET /icons/<module>/<icon> serves each shipped icon', async () => {
      const iconsDir = path.join(installed, 'dist', 'nodes', 'icons');
      const icons = fs.readdirSync(iconsDir);
      assert.ok(icons.length > 0);
      for (const icon of icons) {
        const res = await get(`icons/${MODULE}/${icon}`, '*/*');
        assert.equal(res.status, 200, icon);
        assert.deepEqual(Buffer.from(await res.arrayBuffer()), fs.readFileSync(path.join(iconsDir, icon)), icon);
      }
    });

    it('Import > Examples lists the module and each example (GET /library/examples/flows/...)', async () => {
      const modules = (await (await get('library/examples/flows/')).json()) as string[];
      assert.ok(modules.includes(MODULE), `modules with examples: ${modules.join(', ')}`);
      const listing = (await (await get(`library/examples/flows/${MODULE}`)).json()) as { fn: string }[];
      const files = fs.readdirSync(path.join(installed, 'examples')).filter((f) => f.endsWith('.json'));
      assert.deepEqual(listing.map((e) => e.fn).sort(), files.map((f) => f.replace(/\.json$/, '')).sort());
      for (const file of files) {
        const res = await get(`library/examples/flows/${MODULE}/${encodeURIComponent(file.replace(/\.json$/, ''))}`);
        assert.equal(res.status, 200, file);
        assert.deepEqual(await res.json(), JSON.parse(fs.readFileSync(path.join(installed, 'examples', file), 'utf8')), file);
      }
    });
  });
});
