import assert from 'node:assert/strict';
import catalogue from '../../nodes/lib/providers/catalogue.json';
import { editorCatalogue } from '../../nodes/node-red/provider-catalogue';

/** What GET oauth2-connection/providers answers: every preset, as the connection dialog fills a connection from it. */
describe('provider catalogue as the editor gets it', () => {
  const view = editorCatalogue();

  it('lists every preset once, sorted by name', () => {
    assert.equal(view.length, (catalogue as unknown[]).length);
    assert.equal(new Set(view.map((p) => p.id)).size, view.length);
    const names = view.map((p) => p.name);
    assert.deepEqual(names, [...names].sort((a, b) => a.localeCompare(b, 'en')));
  });

  it('carries what the dialog needs: docs as URLs, the registration page, remarks; not the traceability notes', () => {
    for (const p of view) {
      assert.ok(p.docs.length > 0 && p.docs.every((u) => u.startsWith('https://')), p.id);
      assert.ok(p.registerAppUrl.startsWith('https://'), p.id);
      assert.ok(Array.isArray(p.remarks) && Array.isArray(p.variables) && p.grants.length > 0, p.id);
      assert.ok(p.endpoints.token, p.id);
      for (const key of ['notes', 'refreshTokenRotates', 'refreshTokenIssued']) assert.equal(key in p, false, `${p.id} has ${key}`);
    }
    const shopify = view.find((p) => p.id === 'shopify');
    assert.equal(shopify?.variables[0]?.name, 'shop');
    assert.deepEqual(shopify?.deviations.callbackValues?.map((v) => v.from), ['shop']);
  });
});
