import assert from 'node:assert/strict';
import { isOAuth2Error } from '../../../nodes/lib/errors';
import { decodeBody, encodeRequest } from '../../../nodes/lib/http/body';

const u = (s: string): URL => new URL(s);

describe('http/body: request encoding (core http request node rules)', () => {
  it('object → JSON with application/json unless a content type is given', async () => {
    const a = await encodeRequest('POST', u('http://h/x'), {}, { a: 1, b: [true] });
    assert.equal(a.body?.toString(), '{"a":1,"b":[true]}');
    assert.equal(a.headers['Content-Type'], 'application/json');
    const b = await encodeRequest('PUT', u('http://h/x'), { 'content-type': 'application/vnd.x+json' }, { a: 1 });
    assert.equal(b.headers['content-type'], 'application/vnd.x+json');
    assert.equal(b.headers['Content-Type'], undefined);
  });

  it('form content type with an object → form encoding', async () => {
    const r = await encodeRequest('POST', u('http://h/x'), { 'Content-Type': 'application/x-www-form-urlencoded' }, { a: 'x y', b: ['1', '2'] });
    assert.equal(r.body?.toString(), 'a=x%20y&b=1&b=2');
  });

  it('Buffer as is, string as UTF-8, number as text; caller Content-Length dropped', async () => {
    const buf = Buffer.from([0, 1, 2, 255]);
    assert.deepEqual((await encodeRequest('POST', u('http://h/'), {}, buf)).body, buf);
    const s = await encodeRequest('POST', u('http://h/'), { 'Content-Length': '999' }, ' héllo ');
    assert.equal(s.body?.toString('utf8'), ' héllo ');
    assert.equal(s.headers['Content-Length'], undefined);
    assert.equal((await encodeRequest('POST', u('http://h/'), {}, 42)).body?.toString(), '42');
  });

  it('multipart/form-data with an object → multipart with file parts', async () => {
    const r = await encodeRequest('POST', u('http://h/'), { 'content-type': 'multipart/form-data' }, {
      name: 'report',
      meta: { n: 1 },
      raw: Buffer.from('RAW'),
      file: { value: Buffer.from('a,b\n1,2\n'), options: { filename: 'data.csv', contentType: 'text/csv' } },
      skipped: null,
    });
    const ct = String(r.headers['Content-Type']);
    assert.match(ct, /^multipart\/form-data; boundary=/);
    assert.equal(r.headers['content-type'], undefined);
    const form = await new Response(new Uint8Array(r.body ?? Buffer.alloc(0)), { headers: { 'content-type': ct } }).formData();
    assert.equal(form.get('name'), 'report');
    assert.equal(form.get('meta'), '{"n":1}');
    assert.equal(form.has('skipped'), false);
    const file = form.get('file') as File;
    assert.equal(file.name, 'data.csv');
    assert.equal(file.type, 'text/csv');
    assert.equal(await file.text(), 'a,b\n1,2\n');
    const raw = form.get('raw') as File;
    assert.equal(raw.name, 'raw');
    assert.equal(await raw.text(), 'RAW');
  });

  it('paytoqs: query appends object keys for GET/HEAD/DELETE; ignore sends nothing for GET', async () => {
    const q = await encodeRequest('GET', u('http://h/x?z=1'), {}, { a: 'b c', n: 2 }, 'query');
    assert.equal(q.url.href, 'http://h/x?z=1&a=b%20c&n=2');
    assert.equal(q.body, undefined);
    const d = await encodeRequest('DELETE', u('http://h/x'), {}, { id: 7 }, 'query');
    assert.equal(d.url.search, '?id=7');
    assert.equal(d.body, undefined);
    const i = await encodeRequest('GET', u('http://h/x'), {}, { a: 1 }, 'ignore');
    assert.equal(i.url.search, '');
    assert.equal(i.body, undefined);
    const b = await encodeRequest('GET', u('http://h/x'), {}, { a: 1 }, 'body');
    assert.equal(b.body?.toString(), '{"a":1}');
    const del = await encodeRequest('DELETE', u('http://h/x'), {}, { a: 1 }, 'ignore');
    assert.equal(del.body?.toString(), '{"a":1}');
  });

  it('payloads that cannot be encoded → OAUTH2_INVALID_INPUT field payload', async () => {
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    for (const [method, payload, mode] of [
      ['POST', cyclic, 'ignore'],
      ['POST', { n: 10n }, 'ignore'],
      ['GET', 'text', 'query'],
    ] as const) {
      await assert.rejects(encodeRequest(method, u('http://h/'), {}, payload, mode), (err: unknown) => {
        assert.ok(isOAuth2Error(err, 'OAUTH2_INVALID_INPUT'));
        assert.equal(err.params.field, 'payload');
        return true;
      });
    }
  });
});

describe('http/body: decodeBody', () => {
  const json = Buffer.from('{"a":[1,2]}');
  it('bin → Buffer, txt → string', () => {
    assert.ok(Buffer.isBuffer(decodeBody(json, 'application/json', 'bin').body));
    assert.equal(decodeBody(json, 'application/json', 'txt').body, '{"a":[1,2]}');
  });
  it('txt honours a known charset', () => {
    assert.equal(decodeBody(Buffer.from([0x63, 0x61, 0x66, 0xe9]), 'text/plain; charset=ISO-8859-1', 'txt').body, 'café');
    assert.equal(decodeBody(Buffer.from('ok'), 'text/plain; charset=nonsense', 'txt').body, 'ok');
  });
  it('obj → parsed; invalid JSON keeps the string with a decodeWarning (as core); strict throws', () => {
    assert.deepEqual(decodeBody(json, 'text/plain', 'obj'), { body: { a: [1, 2] } });
    assert.deepEqual(decodeBody(Buffer.alloc(0), undefined, 'obj', { statusCode: 204 }), { body: {} });
    const bad = decodeBody(Buffer.from('<html>'), 'text/html', 'obj');
    assert.equal(bad.body, '<html>');
    assert.equal(bad.decodeWarning, 'OAUTH2_RESPONSE_DECODE_FAILED');
    assert.throws(() => decodeBody(Buffer.from('nope'), 'application/json', 'obj', { strict: true }), (e: unknown) =>
      isOAuth2Error(e, 'OAUTH2_RESPONSE_DECODE_FAILED'));
  });
  it('auto: JSON types parsed, text/* and charset\'d as string, else Buffer', () => {
    assert.deepEqual(decodeBody(json, 'application/json; charset=utf-8', 'auto').body, { a: [1, 2] });
    assert.deepEqual(decodeBody(json, 'application/problem+json', 'auto').body, { a: [1, 2] });
    assert.equal(decodeBody(json, 'text/plain', 'auto').body, '{"a":[1,2]}');
    assert.equal(decodeBody(json, 'application/octet-stream; charset=utf-8', 'auto').body, '{"a":[1,2]}');
    assert.ok(Buffer.isBuffer(decodeBody(json, 'image/png', 'auto').body));
    assert.ok(Buffer.isBuffer(decodeBody(json, undefined, 'auto').body));
    const bad = decodeBody(Buffer.from('x'), 'application/json', 'auto');
    assert.equal(bad.body, 'x');
    assert.equal(bad.decodeWarning, 'OAUTH2_RESPONSE_DECODE_FAILED');
  });
});
