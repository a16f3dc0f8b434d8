import assert from 'node:assert/strict';
import { isOAuth2Error } from '../../../nodes/lib/errors';
import { createAgents, type AgentPair } from '../../../nodes/lib/http/agents';
import { DEFAULT_MAX_RESPONSE_MB, MB, maxResponseBytes } from '../../../nodes/lib/http/body';
import { sendAuthorised } from '../../../nodes/lib/http/request';
import { BOMB_ENCODINGS, startBombServer, type BombOptions, type BombServer } from '../../support/compression-bomb';
import { baseRequest, startServer, testAuthorizer } from './support';

describe('http/request: response size cap (decoded bytes)', function () {
  this.timeout(20_000);
  let agents: AgentPair;
  const servers: { close(): Promise<void> }[] = [];
  beforeEach(() => {
    agents = createAgents({});
  });
  afterEach(async () => {
    agents.destroy();
    await Promise.all(servers.splice(0).map((s) => s.close()));
  });
  async function bomb(options: BombOptions): Promise<BombServer> {
    const s = await startBombServer(options);
    servers.push(s);
    return s;
  }

  for (const encoding of BOMB_ENCODINGS) {
    it(`a ${encoding} bomb (64 KB or less on the wire, 64 MB decoded) stops at a 1 MB cap: OAUTH2_RESPONSE_TOO_LARGE, connection closed early, no retry`, async () => {
      const s = await bomb({ encoding, pieces: 64, pieceBytes: MB });
      const request = baseRequest(s.url, { responseMode: 'bin', maxResponseBytes: MB });
      await assert.rejects(sendAuthorised(request, { authorizer: testAuthorizer([s.origin]), agents }), (err: unknown) => {
        assert.ok(isOAuth2Error(err, 'OAUTH2_RESPONSE_TOO_LARGE'), String(err));
        assert.deepEqual(err.params, { host: new URL(s.origin).host, limit: 1 });
        assert.equal(err.statusCode, 200);
        return true;
      });
      await s.settled();
      assert.equal(s.requests.length, 1, 'too large is not retried');
      const [seen] = s.requests;
      // Each piece decodes to 1 MB: the client stopped after the first pieces, not after all 64.
      assert.equal(seen.closedEarly, true, 'the client closed the connection before the body ended');
      assert.ok(seen.written < s.pieces, `${seen.written} of ${s.pieces} pieces were written`);
    });
  }

  it('an uncompressed body past the cap is cut off the same way', async () => {
    const s = await bomb({ encoding: 'identity', pieces: 64, pieceBytes: 256 * 1024 });
    await assert.rejects(
      sendAuthorised(baseRequest(s.url, { responseMode: 'bin', maxResponseBytes: MB }), { authorizer: testAuthorizer([s.origin]), agents }),
      (err: unknown) => isOAuth2Error(err, 'OAUTH2_RESPONSE_TOO_LARGE'),
    );
    await s.settled();
    assert.ok(s.requests[0].written < s.pieces, `${s.requests[0].written} of ${s.pieces} pieces were written`);
  });

  it(`with no cap given, ${DEFAULT_MAX_RESPONSE_MB} MB applies`, async () => {
    const s = await bomb({ encoding: 'gzip', pieces: 64, pieceBytes: MB });
    await assert.rejects(sendAuthorised(baseRequest(s.url, { responseMode: 'bin' }), { authorizer: testAuthorizer([s.origin]), agents }), (err: unknown) =>
      isOAuth2Error(err, 'OAUTH2_RESPONSE_TOO_LARGE') && err.params.limit === DEFAULT_MAX_RESPONSE_MB);
  });

  for (const encoding of BOMB_ENCODINGS) {
    it(`a ${encoding} body within the cap arrives whole, decoded`, async () => {
      const s = await bomb({ encoding, pieces: 4, pieceBytes: 256 * 1024, paceMs: 0 });
      const res = await sendAuthorised(baseRequest(s.url, { responseMode: 'bin', maxResponseBytes: MB }), { authorizer: testAuthorizer([s.origin]), agents });
      const body = res.body as Buffer;
      assert.equal(body.length, MB, 'exactly at the cap is allowed');
      assert.equal(body.every((b) => b === 0), true);
      assert.equal(res.headers['content-encoding'], undefined);
    });
  }

  it('a cap that is not a number above 0 fails naming the setting, before anything is sent', async () => {
    const s = await startServer((_q, res) => res.end('ok'));
    servers.push(s);
    for (const cap of [0, -1, Number.NaN]) {
      await assert.rejects(
        sendAuthorised(baseRequest(`${s.origin}/x`, { maxResponseBytes: cap }), { authorizer: testAuthorizer([s.origin]), agents }),
        (err: unknown) => isOAuth2Error(err, 'OAUTH2_INVALID_CONFIG') && err.params.field === 'maxResponseMb',
      );
    }
    assert.equal(s.connections, 0);
  });

  it('reads the Max response size setting in megabytes: empty is the default, anything but a number above 0 is NaN', () => {
    assert.equal(maxResponseBytes(undefined), DEFAULT_MAX_RESPONSE_MB * MB);
    assert.equal(maxResponseBytes(''), DEFAULT_MAX_RESPONSE_MB * MB);
    assert.equal(maxResponseBytes(' 2.5 '), 2.5 * MB);
    assert.equal(maxResponseBytes(10), 10 * MB);
    for (const bad of ['0', 0, -3, 'ten', {}, Number.POSITIVE_INFINITY]) assert.ok(Number.isNaN(maxResponseBytes(bad)), String(bad));
  });
});
