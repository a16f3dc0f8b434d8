import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import * as vm from 'node:vm';
import { parseConnectionConfig } from '../../nodes/lib/connection-settings';
import { OAuth2Error } from '../../nodes/lib/errors';
import { RESERVED_AUTHORIZE_PARAMS, RESERVED_TOKEN_PARAMS } from '../../nodes/lib/oauth/reserved-params';

const root = path.resolve(__dirname, '..', '..');

function editorReserved(): { authorize: string[]; token: string[] } {
  const window: { HttpOAuth2Editor?: { reservedParams: { authorize: string[]; token: string[] } } } = {};
  vm.runInNewContext(readFileSync(path.join(root, 'resources', 'editor.js'), 'utf8'), { window });
  assert.ok(window.HttpOAuth2Editor, 'editor.js defines window.HttpOAuth2Editor');
  return window.HttpOAuth2Editor.reservedParams;
}

const base = {
  grantType: 'authorization_code',
  authorizationEndpoint: 'https://auth.example.com/authorize',
  tokenEndpoint: 'https://auth.example.com/token',
  clientId: 'c',
  scopes: 'read',
};

function refusedField(config: Record<string, unknown>): string | undefined {
  try {
    parseConnectionConfig(config as Parameters<typeof parseConnectionConfig>[0], 's');
    return undefined;
  } catch (err) {
    assert.ok(err instanceof OAuth2Error, String(err));
    return String(err.params?.field);
  }
}

describe('reserved extra parameters: one list, refused where entered', () => {
  const editor = editorReserved();

  it('the editor refuses exactly the engine\'s lists', () => {
    assert.deepEqual([...editor.authorize].sort(), [...RESERVED_AUTHORIZE_PARAMS].sort());
    assert.deepEqual([...editor.token].sort(), [...RESERVED_TOKEN_PARAMS].sort());
  });

  it('the deploy refuses every reserved name in its list, in any case, naming the field', () => {
    for (const name of RESERVED_AUTHORIZE_PARAMS) {
      assert.equal(refusedField({ ...base, authorizeParams: [{ k: name.toUpperCase(), v: 'x' }] }), 'authorizeParams', name);
    }
    for (const name of RESERVED_TOKEN_PARAMS) {
      assert.equal(refusedField({ ...base, tokenParams: [{ k: ` ${name} `, v: 'x' }] }), 'tokenParams', name);
    }
    // scope was accepted here and then dropped from the token request without a word.
    assert.equal(refusedField({ ...base, tokenParams: [{ k: 'scope', v: 'x' }] }), 'tokenParams');
    assert.equal(refusedField({ ...base, tokenParams: [{ k: 'audience', v: 'api' }], authorizeParams: [{ k: 'prompt', v: 'consent' }] }), undefined);
  });

  it('the connection editor keeps no list of its own', () => {
    const html = readFileSync(path.join(root, 'nodes', 'oauth2-connection.html'), 'utf8');
    assert.doesNotMatch(html, /'code_challenge'|'client_secret'/);
  });
});
