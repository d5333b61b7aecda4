import { describe, expect, it } from '@jest/globals';
import { checkStateRow, describeRowProblem, type StateRow } from '../../lib/state-row.js';
import { MAX_TTL_S } from '../../lib/duration.js';

const NOW = 1_800_000_000;
const row = (over: Partial<Record<'target' | 'source' | 'reason' | 'added' | 'expires' | 'family' | 'prefixlen', unknown>> = {}): StateRow => {
  const r = { target: '192.0.2.3', source: 'manual', reason: null, added: NOW - 10, expires: 0, family: 4, prefixlen: 32, ...over };
  return [7, r.target, r.source, r.reason, r.added, r.expires, r.family, r.prefixlen];
};
const why = (r: StateRow) => checkStateRow(r, NOW);

describe('checkStateRow: a row read from the state passes the rules of input', () => {
  it('accepts sound rows of both families, exact and prefix', () => {
    expect(why(row())).toBeNull();
    expect(why(row({ target: '198.51.100.0/24', prefixlen: 24, source: 'feed-1.x_y', reason: 'scan', expires: NOW + 3600 }))).toBeNull();
    expect(why(row({ target: '2001:db8::1', family: 6, prefixlen: 128 }))).toBeNull();
    expect(why(row({ target: '2001:db8::/32', family: 6, prefixlen: 32 }))).toBeNull();
  });

  it.each([
    ['a non-address target', { target: 'zzz' }, 'target'],
    ['an octet over 255', { target: '192.0.2.300' }, 'target'],
    ['a target not canonical', { target: '2001:DB8::1', family: 6, prefixlen: 128 }, 'target'],
    ['host bits set', { target: '198.51.100.7/24', prefixlen: 24 }, 'target'],
    ['a number as target', { target: 42 }, 'target'],
    ['family not that of the target', { family: 6 }, 'family'],
    ['prefixlen not that of the target', { prefixlen: 24 }, 'prefixlen'],
    ['a source with a space', { source: 'bad name' }, 'source'],
    ['a source with bytes of a damaged page', { source: 'feu\ufffd\ufffd' }, 'source'],
    ['an empty source', { source: '' }, 'source'],
    ['a source of 32 characters', { source: 'x'.repeat(32) }, 'source'],
    ['NULL source', { source: null }, 'source'],
    ['a blob reason', { reason: Buffer.from('x') }, 'reason'],
    ['added negative', { added: -1 }, 'added'],
    ['added past 2^32', { added: 2 ** 32 }, 'added'],
    ['added as text', { added: '1800000000' }, 'added'],
    ['expires as a real', { expires: NOW + 0.5 }, 'expires'],
    ['expires negative', { expires: -5 }, 'expires'],
    ['expires beyond the TTL cap', { expires: 99999999999999 }, 'expires'],
    ['expires just beyond the cap', { expires: NOW + MAX_TTL_S + 86_401 }, 'expires'],
  ])('refuses %s, naming the column', (_name, over, column) => {
    const p = why(row(over));
    expect(p).toMatchObject({ rowid: 7, column });
  });

  it('an expiry at the 10-year cap passes', () => {
    expect(why(row({ expires: NOW + MAX_TTL_S }))).toBeNull();
  });

  it('the description names rowid, column, value, and how to remove the row', () => {
    const text = describeRowProblem(why(row({ source: 'bad name' }))!, '/s/state.sqlite3');
    expect(text).toContain('row 7 of /s/state.sqlite3');
    expect(text).toContain('source = "bad name"');
    expect(text).toContain('vosctl unblock 192.0.2.3');
    expect(text).toContain('DELETE FROM entries WHERE rowid = 7');
    const t2 = describeRowProblem(why(row({ target: 'zzz' }))!, '/s/state.sqlite3');
    expect(t2).not.toContain('vosctl unblock');
    expect(t2).toContain('target = "zzz": not a dotted-quad IPv4');
  });
});
