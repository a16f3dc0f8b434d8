import assert from 'node:assert/strict';
import { crossSiteVerdict, type RequestFacts } from '../../../nodes/lib/cross-site';

// The header sets are the ones browsers send (Chromium's, as the browser tests see them; an older browser's
// without Fetch Metadata) and the ones non-browser clients send (curl: none; Node's fetch: sec-fetch-mode only).
const EDITOR = 'http://127.0.0.1:1880';
const req = (method: string, headers: Record<string, string>): RequestFacts => ({ method, headers: { host: '127.0.0.1:1880', ...headers } });
const allowed = (r: RequestFacts): boolean => crossSiteVerdict(r).allowed;

describe('engine/cross-site: which admin requests come from another origin', () => {
  it('lets through non-browser clients, which send neither Origin nor Sec-Fetch-Site', () => {
    assert.ok(allowed(req('POST', {})), 'curl');
    assert.ok(allowed(req('POST', { 'sec-fetch-mode': 'cors', 'content-type': 'application/json' })), "Node's fetch");
  });

  it("lets through the editor's own calls, also behind a proxy that rewrote Host", () => {
    const editor = { 'sec-fetch-site': 'same-origin', 'sec-fetch-mode': 'cors', 'sec-fetch-dest': 'empty', origin: EDITOR };
    assert.ok(allowed(req('POST', editor)));
    assert.ok(allowed({ method: 'POST', headers: { ...editor, origin: 'https://nodered.example', host: '127.0.0.1:1880' } }));
    assert.ok(allowed(req('GET', { 'sec-fetch-site': 'none', 'sec-fetch-mode': 'navigate', 'sec-fetch-dest': 'document' })), 'typed URL');
  });

  it('refuses fetches, no-cors requests, form posts and frames from another origin, another port of the same host included', () => {
    for (const site of ['cross-site', 'same-site']) {
      assert.deepEqual(crossSiteVerdict(req('POST', { 'sec-fetch-site': site, 'sec-fetch-mode': 'cors', origin: 'http://127.0.0.1:9999' })), { allowed: false, reason: 'fetch-metadata' });
      assert.ok(!allowed(req('POST', { 'sec-fetch-site': site, 'sec-fetch-mode': 'no-cors', 'content-type': 'text/plain' })));
      assert.ok(!allowed(req('GET', { 'sec-fetch-site': site, 'sec-fetch-mode': 'no-cors', 'sec-fetch-dest': 'image' })));
      assert.ok(!allowed(req('POST', { 'sec-fetch-site': site, 'sec-fetch-mode': 'navigate', 'sec-fetch-dest': 'document', origin: 'http://127.0.0.1:9999' })), 'form post');
      assert.ok(!allowed(req('GET', { 'sec-fetch-site': site, 'sec-fetch-mode': 'navigate', 'sec-fetch-dest': 'iframe' })), 'framed');
      assert.ok(!allowed(req('GET', { 'sec-fetch-site': site, 'sec-fetch-mode': 'websocket', origin: 'http://127.0.0.1:9999' })));
    }
    assert.ok(!allowed(req('POST', { 'sec-fetch-site': 'something-new' })), 'an unknown value is not trusted');
  });

  it("lets through a top-level GET navigation from another site (the provider's redirect to the OAuth callback)", () => {
    assert.ok(allowed(req('GET', { 'sec-fetch-site': 'cross-site', 'sec-fetch-mode': 'navigate', 'sec-fetch-dest': 'document', 'sec-fetch-user': '?1' })));
  });

  it('without Fetch Metadata, compares Origin with Host (scheme default ports equal), never with X-Forwarded-Host', () => {
    assert.ok(allowed(req('POST', { origin: EDITOR })));
    assert.ok(allowed({ method: 'POST', headers: { origin: 'https://nodered.example', host: 'nodered.example' } }), 'TLS ended at a proxy');
    assert.ok(allowed({ method: 'POST', headers: { origin: 'https://nodered.example', host: 'NodeRed.example:443' } }));
    assert.deepEqual(crossSiteVerdict(req('POST', { origin: 'http://127.0.0.1:9999' })), { allowed: false, reason: 'origin' });
    assert.ok(!allowed(req('POST', { origin: 'http://localhost:1880' })), 'another host name for the same address is another origin');
    assert.ok(!allowed(req('POST', { origin: 'http://evil.example', 'x-forwarded-host': 'evil.example' })));
    assert.ok(!allowed(req('POST', { origin: 'null' })), 'sandboxed frame, file:, or after a cross-origin redirect');
    assert.ok(!allowed({ method: 'POST', headers: { origin: EDITOR } }), 'no Host to compare with');
    assert.ok(!allowed(req('POST', { origin: 'not a url' })));
  });
});
