import assert from 'node:assert/strict';
import { isOAuth2Error } from '../../nodes/lib/errors';
import { listBody, parseTriggerConfig, type TriggerConfig } from '../../nodes/lib/trigger-settings';

const base: TriggerConfig = { url: '/records', interval: 60, intervalUnit: 's', detection: 'updatedAt', versionPath: 'updated_at' };

function fieldOf(config: TriggerConfig): { field: unknown; reason: unknown } {
  try {
    parseTriggerConfig(config);
  } catch (err) {
    assert.ok(isOAuth2Error(err, 'OAUTH2_INVALID_CONFIG'), String(err));
    return { field: err.params?.field, reason: err.params?.reason };
  }
  assert.fail('expected OAUTH2_INVALID_CONFIG');
}

describe('trigger settings: the list request by GET or POST', () => {
  it('GET by default, and a GET ignores a body left from POST; the memory key of a GET is unchanged by these settings', () => {
    const plain = parseTriggerConfig(base);
    assert.equal(plain.method, 'GET');
    assert.equal(plain.body, undefined);
    const withStaleBody = parseTriggerConfig({ ...base, method: 'GET', body: 'not json at all' });
    assert.equal(withStaleBody.body, undefined);
    assert.equal(withStaleBody.configKey, plain.configKey);
  });

  it('POST parses the JSON body; another body or method is another memory', () => {
    const post = parseTriggerConfig({ ...base, method: 'POST', body: '{"limit": 50}' });
    assert.equal(post.method, 'POST');
    assert.deepEqual(post.body, { limit: 50 });
    assert.notEqual(post.configKey, parseTriggerConfig(base).configKey);
    assert.notEqual(post.configKey, parseTriggerConfig({ ...base, method: 'POST', body: '{"limit": 10}' }).configKey);
    assert.equal(parseTriggerConfig({ ...base, method: 'post' }).method, 'POST');
  });

  it('names the field: a method other than GET or POST, a body that is not JSON, a cursor in the body without POST or an object', () => {
    assert.deepEqual(fieldOf({ ...base, method: 'PUT' }), { field: 'method', reason: 'invalidValue' });
    assert.deepEqual(fieldOf({ ...base, method: 'POST', body: '{"limit": ' }), { field: 'body', reason: 'invalidJson' });
    const cursor = { pagination: 'body-cursor', paginationPath: 'next', paginationParam: 'after' };
    assert.deepEqual(fieldOf({ ...base, ...cursor }), { field: 'method', reason: 'needsBody' });
    assert.deepEqual(fieldOf({ ...base, ...cursor, method: 'POST', body: '[1, 2]' }), { field: 'body', reason: 'needsJsonObject' });
    assert.deepEqual(fieldOf({ ...base, ...cursor, method: 'POST', paginationParam: 'a..b' }), { field: 'paginationParam', reason: 'invalidValue' });
    assert.equal(parseTriggerConfig({ ...base, ...cursor, method: 'POST' }).pagination.kind, 'body-cursor');
  });

  it('{{since}} in a POST body turns incremental polling on without a query parameter, and needs updated-at detection', () => {
    const since = parseTriggerConfig({ ...base, method: 'POST', body: '{"filter": {"gte": "{{since}}"}}' });
    assert.ok(since.settings.watermark, 'watermark polling is on');
    assert.equal(since.settings.watermark.overlapMs, 60_000);
    // Deletions need the whole list, which a since filter does not give.
    assert.deepEqual(fieldOf({ ...base, method: 'POST', body: '{"gte": "{{since}}"}', emitDeleted: true }), { field: 'emitDeleted', reason: 'needsFullList' });
    assert.deepEqual(fieldOf({ ...base, method: 'POST', body: '{"gte": "{{since}}"}', detection: 'hash' }), { field: 'body', reason: 'needsUpdatedAt' });
    // In a GET it is no placeholder: the body is ignored.
    assert.equal(parseTriggerConfig({ ...base, body: '{"gte": "{{since}}"}' }).settings.watermark, undefined);
  });

  it('puts the watermark in every {{since}}: text inside a string, a number alone for epoch formats, the earliest time first', () => {
    const body = { filter: [{ value: '{{since}}' }, { text: 'after {{since}}' }], keep: '{{other}}', n: 3, flag: true, none: null };
    assert.deepEqual(listBody(body, '2024-05-01T10:00:00.000Z'), {
      filter: [{ value: '2024-05-01T10:00:00.000Z' }, { text: 'after 2024-05-01T10:00:00.000Z' }], keep: '{{other}}', n: 3, flag: true, none: null,
    });
    assert.deepEqual(listBody({ gte: '{{since}}', s: 'ms:{{since}}' }, '1714557600000', 'epoch-ms'), { gte: 1714557600000, s: 'ms:1714557600000' });
    assert.deepEqual(listBody({ gte: '{{since}}' }, undefined), { gte: '1970-01-01T00:00:00.000Z' });
    assert.deepEqual(listBody({ gte: '{{since}}' }, undefined, 'epoch-s'), { gte: 0 });
    assert.deepEqual(body.filter[0], { value: '{{since}}' }, 'the configured body is not changed');
  });
});

describe('trigger settings: the first poll sends what changed since a time', () => {
  it('reads the time, and refuses a missing or unreadable one and a detection without times, naming the field', () => {
    const since = parseTriggerConfig({ ...base, firstRun: 'since', firstRunSince: '2026-12-01T09:00:00Z' });
    assert.equal(since.settings.emitSinceOnFirstPoll, Date.UTC(2026, 11, 1, 9));
    assert.equal(since.settings.emitExistingOnFirstPoll, false);
    assert.equal(parseTriggerConfig(base).settings.emitSinceOnFirstPoll, undefined);
    assert.deepEqual(fieldOf({ ...base, firstRun: 'since' }), { field: 'firstRunSince', reason: 'required' });
    assert.deepEqual(fieldOf({ ...base, firstRun: 'since', firstRunSince: 'yesterday' }), { field: 'firstRunSince', reason: 'invalidDate' });
    assert.deepEqual(fieldOf({ ...base, detection: 'hash', firstRun: 'since', firstRunSince: '2026-12-01T09:00:00Z' }), { field: 'firstRun', reason: 'needsUpdatedAt' });
  });
});
