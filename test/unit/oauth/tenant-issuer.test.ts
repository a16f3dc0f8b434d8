import assert from 'node:assert/strict';
import { metadataResolver } from '../../../nodes/lib/connection';
import { OAuth2Error } from '../../../nodes/lib/errors';
import { validateCallback } from '../../../nodes/lib/oauth/callback';
import { discoverProvider } from '../../../nodes/lib/oauth/discovery';
import { checkTenantIssuer } from '../../../nodes/lib/oauth/tenant-issuer';

const TEMPLATE = 'https://login.microsoftonline.com/{tenantid}/v2.0';
const TENANT = '8eaef023-2b34-4da1-9baa-8bc8c9d6a490';

/**
 * The shape of Microsoft's tenant-independent metadata (learn.microsoft.com, "Access tokens", "Validate the
 * issuer"): no RFC 8414 document, the OpenID one naming the {tenantid} template. Served through the injected
 * fetch, since the tests cannot reach login.microsoftonline.com.
 */
function microsoft(issuerInDocument: string): { fetchImpl: typeof fetch; seen: string[] } {
  const seen: string[] = [];
  const fetchImpl: typeof fetch = async (input) => {
    const url = String(input);
    seen.push(url);
    if (!url.endsWith('/.well-known/openid-configuration')) return new Response('not found', { status: 404 });
    const base = url.replace('/v2.0/.well-known/openid-configuration', '');
    return new Response(
      JSON.stringify({
        issuer: issuerInDocument,
        authorization_endpoint: `${base}/oauth2/v2.0/authorize`,
        token_endpoint: `${base}/oauth2/v2.0/token`,
        device_authorization_endpoint: `${base}/oauth2/v2.0/devicecode`,
      }),
      { status: 200, headers: { 'content-type': 'application/json' } },
    );
  };
  return { fetchImpl, seen };
}

function jwt(claims: Record<string, unknown>): string {
  const part = (o: unknown): string => Buffer.from(JSON.stringify(o)).toString('base64url');
  return `${part({ alg: 'RS256' })}.${part(claims)}.c2ln`;
}

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
    return undefined;
  } catch (err) {
    assert.ok(err instanceof OAuth2Error, String(err));
    return err.code;
  }
}

describe('oauth/tenant-issuer (Microsoft multi-tenant endpoints)', () => {
  for (const name of ['common', 'organizations']) {
    it(`discovers ${name}, whose metadata names the {tenantid} template`, async () => {
      const issuer = `https://login.microsoftonline.com/${name}/v2.0`;
      const { fetchImpl } = microsoft(TEMPLATE);
      const md = await discoverProvider(issuer, { timeoutMs: 1000, fetchImpl });
      assert.equal(md.issuer, issuer);
      assert.equal(md.issuerTemplate, TEMPLATE);
      assert.equal(md.tokenEndpoint, `https://login.microsoftonline.com/${name}/oauth2/v2.0/token`);
    });
  }

  it('discovers consumers, whose metadata names the personal-account tenant', async () => {
    const { fetchImpl } = microsoft('https://login.microsoftonline.com/9188040d-6c67-4c5b-b112-36a304b66dad/v2.0');
    const md = await discoverProvider('https://login.microsoftonline.com/consumers/v2.0', { timeoutMs: 1000, fetchImpl });
    assert.equal(md.issuerTemplate, undefined);
  });

  it('accepts the template for those names only: any other issuer must be named exactly', async () => {
    // A single tenant's metadata names that tenant; a template there is a different issuer.
    await assert.rejects(discoverProvider(`https://login.microsoftonline.com/${TENANT}/v2.0`, { timeoutMs: 1000, ...microsoft(TEMPLATE) }), /different issuer/);
    await assert.rejects(discoverProvider('https://idp.example/common/v2.0', { timeoutMs: 1000, ...microsoft(TEMPLATE) }), /different issuer/);
    await assert.rejects(discoverProvider('https://login.microsoftonline.com/common/v2.0', { timeoutMs: 1000, ...microsoft('https://evil.example/{tenantid}/v2.0') }), /different issuer/);
  });

  it('an authorization response may name one tenant in the template, never anything else', () => {
    const expected = { state: 's', issuer: 'https://login.microsoftonline.com/common/v2.0', issuerTemplate: TEMPLATE, issRequired: false };
    assert.deepEqual(validateCallback({ state: 's', code: 'c', iss: `https://login.microsoftonline.com/${TENANT}/v2.0` }, expected), { code: 'c' });
    assert.equal(codeOf(() => validateCallback({ state: 's', code: 'c', iss: 'https://login.microsoftonline.com/evil/v2.0' }, expected)), 'OAUTH2_ISSUER_MISMATCH');
    assert.equal(codeOf(() => validateCallback({ state: 's', code: 'c', iss: `https://evil.example/${TENANT}/v2.0` }, expected)), 'OAUTH2_ISSUER_MISMATCH');
    const { issuerTemplate: _t, ...exact } = expected;
    assert.equal(codeOf(() => validateCallback({ state: 's', code: 'c', iss: `https://login.microsoftonline.com/${TENANT}/v2.0` }, exact)), 'OAUTH2_ISSUER_MISMATCH');
  });

  it('the id_token must name its tenant: tid a GUID and iss that tenant\'s issuer', () => {
    const iss = `https://login.microsoftonline.com/${TENANT}/v2.0`;
    assert.equal(codeOf(() => checkTenantIssuer(TEMPLATE, jwt({ iss, tid: TENANT }))), undefined);
    assert.equal(codeOf(() => checkTenantIssuer(TEMPLATE, undefined)), undefined);
    assert.equal(codeOf(() => checkTenantIssuer(TEMPLATE, jwt({ iss, tid: '82229342-1101-4ab6-817b-70c0747630f3' }))), 'OAUTH2_ISSUER_MISMATCH');
    assert.equal(codeOf(() => checkTenantIssuer(TEMPLATE, jwt({ iss: 'https://login.microsoftonline.com/common/v2.0', tid: 'common' }))), 'OAUTH2_ISSUER_MISMATCH');
    assert.equal(codeOf(() => checkTenantIssuer(TEMPLATE, jwt({ iss }))), 'OAUTH2_ISSUER_MISMATCH');
  });
});

describe('oauth/tenant-issuer with saved endpoints', () => {
  it('a connection with typed endpoints knows the template from its issuer alone', async () => {
    const settings = (issuer: string): Parameters<typeof metadataResolver>[0] =>
      ({ issuer, metadata: { tokenEndpoint: 'https://login.microsoftonline.com/common/oauth2/v2.0/token' } }) as Parameters<typeof metadataResolver>[0];
    assert.equal((await metadataResolver(settings('https://login.microsoftonline.com/common/v2.0'), 1000)()).issuerTemplate, TEMPLATE);
    assert.equal((await metadataResolver(settings(`https://login.microsoftonline.com/${TENANT}/v2.0`), 1000)()).issuerTemplate, undefined);
  });
});
