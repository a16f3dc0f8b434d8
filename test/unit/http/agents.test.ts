import assert from 'node:assert/strict';
import { createAgents } from '../../../nodes/lib/http/agents';

describe('http/agents', () => {
  it('creates a keep-alive pair with tls-config options passed to the https agent', () => {
    const pair = createAgents({ tls: { ca: 'CA', cert: 'CERT', key: 'KEY', passphrase: 'pw', rejectUnauthorized: false, servername: 'api.example' } });
    try {
      const httpOpts = (pair.http as unknown as { options: Record<string, unknown> }).options;
      const httpsOpts = (pair.https as unknown as { options: Record<string, unknown> }).options;
      assert.equal(httpOpts.keepAlive, true);
      assert.equal(httpsOpts.keepAlive, true);
      assert.equal(httpsOpts.ca, 'CA');
      assert.equal(httpsOpts.cert, 'CERT');
      assert.equal(httpsOpts.key, 'KEY');
      assert.equal(httpsOpts.passphrase, 'pw');
      assert.equal(httpsOpts.rejectUnauthorized, false);
      assert.equal(httpsOpts.servername, 'api.example');
      assert.equal(httpOpts.ca, undefined);
    } finally {
      pair.destroy();
    }
  });

  it('leaves TLS defaults alone when no tls options are given', () => {
    const pair = createAgents({});
    const httpsOpts = (pair.https as unknown as { options: Record<string, unknown> }).options;
    assert.equal(httpsOpts.rejectUnauthorized, undefined);
    pair.destroy();
  });
});
