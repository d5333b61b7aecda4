import { describe, expect, it } from '@jest/globals';
import { formatDuration, MAX_TTL_S, parseDuration, ttlCapNote } from '../../lib/duration.js';
import { parseList } from '../../lib/listfile.js';
import { blockKey, decodeBlockValue, decodeSourceName, encodeBlockValue, encodeSourceName, keyToText, lpmKey } from '../../lib/maps/layout.js';
import { parseConfigFile, resolveSettings } from '../../lib/settings.js';
import { bootToWall, wallToBoot } from '../../lib/clock.js';

describe('parseDuration', () => {
  it.each([
    ['90', 90],
    ['90s', 90],
    ['30m', 1800],
    ['2h', 7200],
    ['7d', 604800],
    [' 5m ', 300],
    ['0', 0],
    [3600, 3600],
  ])('%j is %d seconds', (text, s) => expect(parseDuration(text)).toBe(s));

  it.each(['', '-5', '5 minutes', '1.5h', '2w', 'h', '9999999999999999d', -1, 1.5])('refuses %j', (text) => expect(parseDuration(text)).toBeNull());

  it('one rule for every input: a TTL above 10 years is taken as 10 years, with a note naming the limit', () => {
    expect(MAX_TTL_S).toBe(315360000);
    for (const t of [1000000000, '1000000000', '99999999999d', '3651d']) {
      expect(parseDuration(t)).toBe(MAX_TTL_S);
      expect(ttlCapNote(t)).toMatch(/above the 10-year limit: taken as 3650d/);
    }
    expect(parseDuration('3650d')).toBe(MAX_TTL_S);
    expect(ttlCapNote('3650d')).toBeNull();
    expect(ttlCapNote('1h')).toBeNull();
  });

  it('formats back', () => {
    expect([90, 1800, 7200, 604800].map(formatDuration)).toEqual(['90s', '30m', '2h', '7d']);
  });
});

describe('parseList', () => {
  const policy = { minPrefix: 8, allow: [], own: [] };

  it('skips comments and blanks, reports bad lines by number, keeps every good one once', () => {
    const r = parseList('# feed\n203.0.113.1\n\n  203.0.113.2 # x\nbogus\n203.0.113.1\n127.0.0.1\r\n198.18.0.0/15\r\n', policy);
    expect(r.targets.map((t) => t.text)).toEqual(['203.0.113.1', '203.0.113.2', '198.18.0.0/15']);
    expect(r.errors).toEqual([
      { line: 5, where: 'line 5', text: 'bogus', reason: "'bogus' is not an IPv4 address or CIDR (dotted quad)" },
      { line: 7, where: 'line 7', text: '127.0.0.1', reason: "'127.0.0.1' is loopback" },
    ]);
  });

  it('handles an empty file', () => {
    expect(parseList('', policy)).toEqual({ targets: [], errors: [], skipped: [] });
  });
});

describe('map layouts (xdp/vfp_maps.h)', () => {
  it('encodes exact keys in network order and LPM keys as {u32 prefixlen LE, addr}', () => {
    expect([...blockKey(0xcb007105, 32)]).toEqual([203, 0, 113, 5]);
    expect([...lpmKey(0xc6120000, 15)]).toEqual([15, 0, 0, 0, 198, 18, 0, 0]);
    expect(keyToText(blockKey(0xcb007105, 32))).toBe('203.0.113.5');
    expect(keyToText(lpmKey(0xc6120000, 15))).toBe('198.18.0.0/15');
  });

  it('round-trips struct vfp_block', () => {
    const v = { expiresNs: 123456789012345n, addedUnix: 1795500000, sourceId: 17 };
    const b = encodeBlockValue(v);
    expect(b.length).toBe(16);
    expect(decodeBlockValue(b)).toEqual(v);
  });

  it('round-trips source names in 32 NUL-padded bytes', () => {
    const b = encodeSourceName('spamhaus-drop');
    expect(b.length).toBe(32);
    expect(decodeSourceName(b)).toBe('spamhaus-drop');
  });
});

describe('clocks', () => {
  const now = { bootNs: 1_000_000_000_000n, wallS: 1_800_000_000 };
  it('keeps the remaining lifetime when moving between wall clock and boottime', () => {
    expect(wallToBoot(now.wallS + 60, now)).toBe(now.bootNs + 60_000_000_000n);
    expect(bootToWall(now.bootNs + 60_000_000_000n, now)).toBe(now.wallS + 60);
    expect(wallToBoot(0, now)).toBe(0n);
    expect(bootToWall(0n, now)).toBe(0);
  });
  it('maps an already expired wall-clock time to now, which the kernel treats as expired', () => {
    expect(wallToBoot(now.wallS - 100, now)).toBe(now.bootNs);
  });
});

describe('settings', () => {
  it('flags beat environment beat file beat defaults', () => {
    const file = { pinDir: '/sys/fs/bpf/file', stateDir: '/file', minPrefix: 16 };
    const env = { VOS_PIN_DIR: '/sys/fs/bpf/env', VOS_STATE_DIR: '/env' };
    const s = resolveSettings({ pinDir: '/sys/fs/bpf/flag' }, env, file);
    expect([s.pinDir, s.stateDir, s.minPrefix, s.logLevel]).toEqual(['/sys/fs/bpf/flag', '/env', 16, 'info']);
  });
  it('refuses bad values and unknown config keys with a named error', () => {
    expect(() => resolveSettings({ minPrefix: 40 }, {}, {})).toThrow("bad minimum prefix '40'");
    expect(() => resolveSettings({ logFormat: 'xml' }, {}, {})).toThrow("bad log format 'xml'");
    expect(() => parseConfigFile('{"pinDir": "/x", "pindir": 1}', '/etc/x.json')).toThrow("unknown key 'pindir'");
    expect(() => parseConfigFile('{', '/etc/x.json')).toThrow('/etc/x.json is not valid JSON');
  });
});
