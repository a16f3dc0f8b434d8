import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { startAuthServer, type AuthServer } from '../support/auth-server';
import { startBombServer, type BombServer } from '../support/compression-bomb';
import {
  catchNodes,
  collectUnhandledRejections,
  helper,
  helperNode,
  loadCatalogs,
  nextInput,
  nodeModules,
  recordChangeModule,
  recordChangeNode,
  requestNode,
  serviceConnection,
  statusLog,
  tab,
  useTempUserDir,
} from './support';

type Msg = Record<string, unknown>;
interface CaughtError {
  message: string;
  code?: string;
}

/**
 * Compression bombs answered to the real nodes: the request node and the record trigger stop reading at their
 * Max response size, and the message goes to a Catch node with OAUTH2_RESPONSE_TOO_LARGE naming the limit.
 */
describe('Max response size: compression bombs through the nodes (node-red-node-test-helper)', function () {
  this.timeout(30_000);
  let auth: AuthServer;
  let bomb: BombServer;
  let userDir: string;
  const assertNoUnhandledRejections = collectUnhandledRejections('the response size node tests');

  before(async () => {
    await loadCatalogs();
    auth = await startAuthServer();
    // 64 MB of zeros in about 64 KB of gzip.
    bomb = await startBombServer({ encoding: 'gzip', pieces: 64, pieceBytes: 1024 * 1024 });
  });

  after(async () => {
    await helper.unload();
    await Promise.all([bomb?.close(), auth?.close()]);
    await new Promise((r) => setTimeout(r, 50));
    assertNoUnhandledRejections();
  });

  beforeEach(() => {
    userDir = useTempUserDir();
    bomb.requests.length = 0;
  });

  afterEach(async () => {
    await helper.unload();
    fs.rmSync(userDir, { recursive: true, force: true });
  });

  async function load(nodes: Msg[], modules = nodeModules): Promise<void> {
    const conn = serviceConnection(auth, { apiBaseUrl: bomb.origin });
    await helper.load(modules, [tab(), conn.node, ...nodes], conn.credentials);
  }

  it('the request node stops at its Max response (MB) and the message, kept, reaches Catch with the code and the limit', async () => {
    await load([requestNode('req', { url: '/bomb', maxResponseMb: '2' }), helperNode(), ...catchNodes(['req'])]);
    const caught = nextInput(helper.getNode('caught'));
    helper.getNode('req').receive({ topic: 'export', payload: 'kept' });
    const msg = (await caught) as Msg & { error: CaughtError };
    assert.equal(msg.error.code, 'OAUTH2_RESPONSE_TOO_LARGE');
    assert.equal(msg.error.message, `The response from ${new URL(bomb.origin).host} is larger than 2 MB once decoded (setting Max response): it was not kept`);
    assert.equal(msg.topic, 'export');
    assert.equal(msg.payload, 'kept');
    assert.deepEqual(statusLog(helper.getNode('req')).slice(-1), [{ fill: 'red', shape: 'ring', text: 'OAUTH2_RESPONSE_TOO_LARGE' }]);
    await bomb.settled();
    assert.equal(bomb.requests.length, 1);
    assert.ok(bomb.requests[0].written < bomb.pieces, `${bomb.requests[0].written} of ${bomb.pieces} pieces were written`);
  });

  it("the record trigger's pages are capped by its own Max response (MB)", async () => {
    await load([recordChangeNode('trig', { url: '/bomb', maxResponseMb: 1 }), helperNode(), ...catchNodes(['trig'])], [...nodeModules, recordChangeModule]);
    const caught = nextInput(helper.getNode('caught'));
    helper.getNode('trig').receive({});
    const msg = (await caught) as Msg & { error: CaughtError };
    assert.equal(msg.error.code, 'OAUTH2_RESPONSE_TOO_LARGE', msg.error.message);
    assert.match(msg.error.message, /larger than 1 MB/);
    await bomb.settled();
    assert.ok(bomb.requests.length >= 1);
    for (const seen of bomb.requests) assert.ok(seen.written < bomb.pieces, `${seen.written} of ${bomb.pieces} pieces were written`);
  });
});
