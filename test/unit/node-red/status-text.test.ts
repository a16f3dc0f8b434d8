import assert from 'node:assert/strict';
import { localizedStatus, renderStatusText, statusTime } from '../../../nodes/node-red/status-text';

/** A catalog as Node-RED's `_` reads it: `__name__` placeholders. */
const catalog: Record<string, string> = {
  'status.idle': '__created__ created, __updated__ updated at __time__',
  'status.incomplete': '__summary__; incomplete: __code__',
};
const t = (key: string, params: Record<string, string | number> = {}): string =>
  (catalog[key] ?? key).replace(/__(\w+)__/g, (_m, name: string) => String(params[name]));

describe('node-red/status-text: statuses the editor says in its language', () => {
  const at = Date.now();
  const summary = { key: 'status.idle', params: { created: 1, updated: 2, time: at }, times: ['time'] };

  it('keeps the server-language text, with times as a time of day and a nested text said inside', () => {
    const status = localizedStatus('yellow', 'ring', { key: 'status.incomplete', params: { summary, code: 'OAUTH2_TRIGGER_INCOMPLETE' } }, 'oauth2-record-change', t);
    assert.equal(status.text, `1 created, 2 updated at ${statusTime(at)}; incomplete: OAUTH2_TRIGGER_INCOMPLETE`);
    assert.equal(renderStatusText(summary, t), `1 created, 2 updated at ${statusTime(at)}`);
  });

  it("carries the catalog entry with the node type's keys, the raw values and which are times", () => {
    const status = localizedStatus('yellow', 'ring', { key: 'status.incomplete', params: { summary, code: 'X' } }, 'oauth2-record-change', t);
    assert.deepEqual(status.i18n, {
      key: 'oauth2-record-change.status.incomplete',
      params: { summary: { key: 'oauth2-record-change.status.idle', params: { created: 1, updated: 2, time: at }, times: ['time'] }, code: 'X' },
    });
    // Without values, the catalog key itself, which the editor translates as it does for Node-RED's own nodes.
    assert.deepEqual(localizedStatus('red', 'ring', { key: 'status.loginRequired' }, 'http-oauth2-request', t), {
      fill: 'red', shape: 'ring', text: 'http-oauth2-request.status.loginRequired',
    });
  });
});
