import assert from 'node:assert/strict';
import { formatTimestamp, parseTimestamp } from '../../../nodes/lib/changes/timestamps';

const MS = Date.UTC(2024, 4, 1, 12, 30, 15, 123); // 2024-05-01T12:30:15.123Z
const S = Date.UTC(2024, 4, 1, 12, 30, 15);

describe('changes/timestamps', () => {
  describe('parseTimestamp', () => {
    const table: Array<[string, unknown, number | undefined]> = [
      ['ISO with Z', '2024-05-01T12:30:15.123Z', MS],
      ['ISO with lower-case t and z (RFC 3339 allows them)', '2024-05-01t12:30:15.123z', MS],
      ['ISO with +02:00', '2024-05-01T14:30:15.123+02:00', MS],
      ['ISO with -0530', '2024-05-01T07:00:15.123-0530', MS],
      ['ISO with +02', '2024-05-01T14:30:15.123+02', MS],
      ['ISO without zone is UTC', '2024-05-01T12:30:15.123', MS],
      ['ISO with space separator (RFC 3339)', '2024-05-01 12:30:15.123Z', MS],
      ['ISO microseconds truncated to ms', '2024-05-01T12:30:15.123999Z', MS],
      ['ISO comma fraction', '2024-05-01T12:30:15,123Z', MS],
      ['ISO without seconds', '2024-05-01T12:30Z', Date.UTC(2024, 4, 1, 12, 30)],
      ['ISO date only is UTC midnight', '2024-05-01', Date.UTC(2024, 4, 1)],
      ['ISO basic form', '20240501T123015Z', S],
      ['ISO 24:00 is the end of the day', '2024-05-01T24:00:00Z', Date.UTC(2024, 4, 2)],
      ['surrounding spaces', '  2024-05-01T12:30:15.123Z ', MS],
      ['impossible day', '2024-02-30T00:00:00Z', undefined],
      ['month 13', '2024-13-01T00:00:00Z', undefined],
      ['minute 60', '2024-05-01T12:60:00Z', undefined],
      ['zone +24:00', '2024-05-01T12:00:00+24:00', undefined],
      ['leap day', '2024-02-29T00:00:00Z', Date.UTC(2024, 1, 29)],
      ['epoch seconds number', S / 1000, S],
      ['epoch seconds with fraction', S / 1000 + 0.123, MS],
      ['epoch ms number', MS, MS],
      ['epoch seconds string', String(S / 1000), S],
      ['epoch ms string', String(MS), MS],
      ['zero is 1970', 0, 0],
      ['just below the limit is seconds', 99_999_999_999, 99_999_999_999_000],
      ['at the limit is ms', 100_000_000_000, 100_000_000_000],
      ['negative seconds', -86_400, -86_400_000],
      ['Date object', new Date(MS), MS],
      ['invalid Date', new Date(NaN), undefined],
      ['NaN', NaN, undefined],
      ['Infinity', Infinity, undefined],
      ['empty string', '', undefined],
      ['RFC 2822 is not read', 'Wed, 01 May 2024 12:30:15 GMT', undefined],
      ['free text', 'yesterday', undefined],
      ['boolean', true, undefined],
      ['null', null, undefined],
      ['object', { at: MS }, undefined],
      ['out of Date range', 9e18, undefined],
    ];
    for (const [name, input, expected] of table) {
      it(`${name}: ${String(input instanceof Date ? 'Date' : JSON.stringify(input))}`, () => {
        assert.equal(parseTimestamp(input), expected);
      });
    }

    it('a zone-less time does not depend on the host time zone (unlike Date.parse)', () => {
      const saved = process.env.TZ;
      try {
        process.env.TZ = 'America/New_York';
        assert.equal(parseTimestamp('2024-05-01T12:30:15.123'), MS);
      } finally {
        if (saved === undefined) delete process.env.TZ;
        else process.env.TZ = saved;
      }
    });
  });

  describe('formatTimestamp', () => {
    it('writes iso, epoch seconds (floored) and epoch ms', () => {
      assert.equal(formatTimestamp(MS, 'iso'), '2024-05-01T12:30:15.123Z');
      assert.equal(formatTimestamp(MS, 'epoch-s'), String(S / 1000));
      assert.equal(formatTimestamp(MS, 'epoch-ms'), String(MS));
    });

    it('round-trips through parseTimestamp', () => {
      for (const format of ['iso', 'epoch-ms'] as const) assert.equal(parseTimestamp(formatTimestamp(MS, format)), MS);
      assert.equal(parseTimestamp(formatTimestamp(MS, 'epoch-s')), S);
    });

    it('never rounds up past the watermark', () => {
      assert.equal(formatTimestamp(S + 999, 'epoch-s'), String(S / 1000));
      assert.equal(formatTimestamp(-1, 'epoch-s'), '-1');
    });

    it('refuses a non-finite time', () => {
      assert.throws(() => formatTimestamp(NaN, 'iso'), RangeError);
    });
  });
});
