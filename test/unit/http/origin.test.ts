import assert from 'node:assert/strict';
import { isOAuth2Error } from '../../../nodes/lib/errors';
import { OriginAllowlist, parseOriginList } from '../../../nodes/lib/http/origin';

describe('http/origin: OriginAllowlist', () => {
  const list = new OriginAllowlist('https://api.example.com/v2', 'https://files.example.com:8443, http://LOCALHOST:1880\nhttps://bücher.example');

  const table: Array<[string, boolean]> = [
    ['https://api.example.com/v2/users', true],
    ['https://api.example.com/other?x=1#f', true],
    ['https://API.Example.COM/', true],
    ['https://api.example.com:443/x', true],
    ['http://api.example.com/x', false],
    ['https://api.example.com:444/x', false],
    ['https://api.example.com.evil.test/x', false],
    ['https://evil-api.example.com/x', false],
    ['https://xapi.example.com/x', false],
    ['https://example.com/x', false],
    ['https://api.example.com./x', false],
    ['https://user:pass@api.example.com/x', false],
    ['https://user@api.example.com/x', false],
    ['https://api.example.com@evil.test/x', false],
    ['https://evil.test/https://api.example.com/', false],
    ['https://files.example.com:8443/a', true],
    ['https://files.example.com/a', false],
    ['http://localhost:1880/x', true],
    ['https://localhost:1880/x', false],
    ['https://xn--bcher-kva.example/x', true],
    ['https://BÜCHER.example/x', true],
    ['https://bucher.example/x', false],
    ['ftp://api.example.com/x', false],
  ];
  for (const [url, expected] of table) {
    it(`${expected ? 'allows' : 'refuses'} ${url}`, () => {
      assert.equal(list.allows(new URL(url)), expected);
    });
  }

  it('makes default ports explicit-equal in configured entries', () => {
    const l = new OriginAllowlist('https://a.example:443', ['http://b.example:80/']);
    assert.deepEqual(l.origins, ['https://a.example', 'http://b.example']);
    assert.equal(l.allows(new URL('https://a.example/x')), true);
    assert.equal(l.allows(new URL('http://b.example:80/x')), true);
  });

  it('accepts an empty base URL and an array of lists', () => {
    const l = new OriginAllowlist('', ['https://a.example https://b.example', '']);
    assert.deepEqual(l.origins, ['https://a.example', 'https://b.example']);
  });

  it('rejects invalid entries with OAUTH2_INVALID_CONFIG naming the field, and redacts userinfo', () => {
    const cases: Array<[string | undefined, string, string]> = [
      ['not a url', '', 'apiBaseUrl'],
      ['ftp://api.example.com', '', 'apiBaseUrl'],
      ['https://u:p4ss@api.example.com', '', 'apiBaseUrl'],
      ['https://api.example.com', 'https://ok.example, api.example.org', 'allowedOrigins'],
      ['https://api.example.com', 'https://a.example/path', 'allowedOrigins'],
      ['https://api.example.com', 'javascript:alert(1)', 'allowedOrigins'],
    ];
    for (const [base, extra, field] of cases) {
      assert.throws(
        () => new OriginAllowlist(base, extra),
        (err: unknown) => {
          assert.ok(isOAuth2Error(err, 'OAUTH2_INVALID_CONFIG'));
          assert.equal(err.params.field, field);
          assert.equal(typeof err.params.value, 'string');
          assert.ok(!err.message.includes('p4ss') && !String(err.params.value).includes('p4ss'));
          return true;
        },
      );
    }
  });

  it('parseOriginList splits on whitespace and commas', () => {
    assert.deepEqual(parseOriginList(' https://a , https://b\n\thttps://c,,'), ['https://a', 'https://b', 'https://c']);
    assert.deepEqual(parseOriginList(undefined), []);
    assert.deepEqual(parseOriginList(['https://a https://b', 'https://c']), ['https://a', 'https://b', 'https://c']);
  });
});
