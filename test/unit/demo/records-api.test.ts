/** The demo records API keeps a bounded memory of what it was asked: a demo left running does not grow. */
import assert from 'node:assert/strict';
import { startRecordsApi } from '../../../runtime/src/demo/records-api';

describe('demo records API memory', () => {
  it('keeps the latest list requests and sink bodies only', async () => {
    const api = await startRecordsApi({ validateToken: async (token) => token === 'ok', remembered: 3 });
    try {
      const headers = { authorization: 'Bearer ok', 'content-type': 'application/json' };
      for (let i = 1; i <= 5; i++) {
        assert.equal((await fetch(`${api.url}/records?n=${i}`, { headers })).status, 200);
        assert.equal((await fetch(`${api.url}/sink`, { method: 'POST', headers, body: JSON.stringify({ i }) })).status, 204);
      }
      assert.deepEqual(api.listRequests.map((r) => r.query.n), ['3', '4', '5']);
      assert.deepEqual(api.sink, [{ i: 3 }, { i: 4 }, { i: 5 }]);
    } finally {
      await api.close();
    }
  });
});
