/** Pure parts of the metrics: the drift comparison, the listen address, its settings key. */
import { describe, expect, it } from '@jest/globals';
import { compareEnforced, type Intended } from '../../lib/drift.js';
import { BLOCK_VALUE, EXACT_KEY, EXACT_KEY6, LPM_KEY, LPM_KEY6, encodeBlockValue, writeBlockKey, writeBlockKey6 } from '../../lib/maps/layout.js';
import { formatListen, parseListen } from '../../lib/metrics/listen.js';
import { UsageError } from '../../lib/errors.js';
import { BATCH_WAIT_MS, checkInterval, PERIOD_S, WATCH_S } from '../../lib/duration.js';
import { execa } from 'execa';
import { join } from 'node:path';
import { messageOutcome } from '../../lib/metrics/consume.js';
import { resolveSettings, parseConfigFile } from '../../lib/settings.js';

const now = { bootNs: 1_000_000n * 1_000_000_000n, wallS: 1_800_000_000 };
const boot = (wallS: number) => (wallS === 0 ? 0n : now.bootNs + BigInt(wallS - now.wallS) * 1_000_000_000n);
const names = new Map([[1, 'manual'], [16, 'feed']]);

/** A dump of blocked_ips or blocked_prefixes holding these targets. */
function dump(entries: Array<{ ip: string; sourceId: number; expires: number }>, prefixes = false) {
  const keySize = prefixes ? LPM_KEY : EXACT_KEY;
  const rec = keySize + BLOCK_VALUE;
  const records = Buffer.alloc(entries.length * rec);
  entries.forEach((e, i) => {
    const [a, len = '32'] = e.ip.split('/');
    const addr = a!.split('.').reduce((n, o) => n * 256 + Number(o), 0);
    writeBlockKey(records, i * rec, addr, Number(len));
    encodeBlockValue({ expiresNs: boot(e.expires), addedUnix: 1, sourceId: e.sourceId }, records, i * rec + keySize);
  });
  return { records, keySize };
}

describe('compareEnforced', () => {
  const later = now.wallS + 3600;
  const intended = new Map<string, Intended>([
    ['198.51.100.1', { source: 'manual', expires: 0 }], // agrees
    ['198.51.100.2', { source: 'manual', expires: later }], // missing from the maps
    ['198.51.100.3', { source: 'feed', expires: later }], // expired early in the map
    ['198.51.100.4', { source: 'feed', expires: later }], // another source in the map
    ['198.51.100.5', { source: 'feed', expires: later }], // expiry far apart
    ['198.51.100.6', { source: 'feed', expires: now.wallS - 10 }], // expired in the state: not intended
    ['203.0.113.0/24', { source: 'feed', expires: later }], // agrees (prefix)
    ['192.0.2.0/24', { source: 'feed', expires: later }], // missing (prefix)
  ]);
  const maps = [
    dump([
      { ip: '198.51.100.1', sourceId: 1, expires: 0 },
      { ip: '198.51.100.3', sourceId: 16, expires: now.wallS - 5 },
      { ip: '198.51.100.4', sourceId: 1, expires: later },
      { ip: '198.51.100.5', sourceId: 16, expires: later + 600 },
      { ip: '198.51.100.6', sourceId: 16, expires: later }, // live in the map, expired in the state
      { ip: '198.51.100.7', sourceId: 99, expires: 0 }, // the scripts blocked it behind the state's back
      { ip: '198.51.100.8', sourceId: 16, expires: now.wallS - 100 }, // expired on both sides: nobody's concern
    ]),
    dump([{ ip: '203.0.113.0/24', sourceId: 16, expires: later + 1 }], true),
  ];

  it('counts each kind of disagreement once, and live entries per source', () => {
    const r = compareEnforced(intended, maps, names, now);
    expect(r.drift).toEqual({ missing: 2, expired_early: 1, different: 2, unintended: 2 });
    expect(Object.fromEntries(r.liveBySource)).toEqual({ manual: 2, feed: 3, 'id:99': 1 });
  });

  it('agreeing sets (expiries within the 2 s rounding of two clocks) show no drift', () => {
    const same = new Map<string, Intended>([['198.51.100.1', { source: 'feed', expires: later }], ['10.0.0.0/8', { source: 'manual', expires: 0 }]]);
    const r = compareEnforced(same, [dump([{ ip: '198.51.100.1', sourceId: 16, expires: later + 2 }]), dump([{ ip: '10.0.0.0/8', sourceId: 1, expires: 0 }], true)], names, now);
    expect(r.drift).toEqual({ missing: 0, expired_early: 0, different: 0, unintended: 0 });
  });

  it('compares IPv6 entries (blocked_ips6, blocked_prefixes6) by their RFC 5952 text', () => {
    const dump6 = (entries: Array<{ ip: string; sourceId: number; expires: number }>, keySize: number) => {
      const rec = keySize + BLOCK_VALUE;
      const records = Buffer.alloc(entries.length * rec);
      entries.forEach((e, i) => {
        writeBlockKey6(records, i * rec, e.ip);
        encodeBlockValue({ expiresNs: boot(e.expires), addedUnix: 1, sourceId: e.sourceId }, records, i * rec + keySize);
      });
      return { records, keySize };
    };
    const want = new Map<string, Intended>([
      ['2001:db8::1', { source: 'manual', expires: 0 }], // agrees
      ['2001:db8::2', { source: 'feed', expires: later }], // missing
      ['2001:db8:1::/48', { source: 'feed', expires: later }], // agrees (prefix)
      ['198.51.100.1', { source: 'manual', expires: 0 }], // agrees (IPv4 beside)
    ]);
    const r = compareEnforced(want, [
      dump([{ ip: '198.51.100.1', sourceId: 1, expires: 0 }]),
      dump6([{ ip: '2001:db8::1', sourceId: 1, expires: 0 }, { ip: '2001:db8::9', sourceId: 16, expires: 0 }], EXACT_KEY6),
      dump6([{ ip: '2001:db8:1::/48', sourceId: 16, expires: later }], LPM_KEY6),
    ], names, now);
    expect(r.drift).toEqual({ missing: 1, expired_early: 0, different: 0, unintended: 1 });
    expect(Object.fromEntries(r.liveBySource)).toEqual({ manual: 2, feed: 2 });
  });

  it('no maps at all: every live intended entry is missing', () => {
    expect(compareEnforced(intended, [], names, now).drift).toEqual({ missing: 7, expired_early: 0, different: 0, unintended: 0 });
  });

  it('a million entries agree (the index holds every address, collisions included)', () => {
    const n = 1_000_000;
    const rec = EXACT_KEY + BLOCK_VALUE;
    const records = Buffer.alloc(n * rec);
    const big = new Map<string, Intended>();
    for (let i = 0; i < n; i++) {
      const addr = 0x0b000001 + i * 7;
      records.writeUInt32BE(addr >>> 0, i * rec);
      records.writeUInt16LE(16, i * rec + EXACT_KEY + 12);
      big.set(`${addr >>> 24}.${(addr >>> 16) & 255}.${(addr >>> 8) & 255}.${addr & 255}`, { source: 'feed', expires: 0 });
    }
    big.delete('11.0.0.1');
    big.set('11.0.0.2', { source: 'feed', expires: 0 });
    expect(compareEnforced(big, [{ records, keySize: EXACT_KEY }], names, now).drift).toEqual({ missing: 1, expired_early: 0, different: 0, unintended: 1 });
  });
});

describe('metrics listen address', () => {
  it('takes HOST:PORT, IPv6 in brackets', () => {
    expect(parseListen('127.0.0.1:9864')).toEqual({ host: '127.0.0.1', port: 9864 });
    expect(parseListen('[::1]:9100')).toEqual({ host: '::1', port: 9100 });
    expect(parseListen('localhost:80')).toEqual({ host: 'localhost', port: 80 });
    expect(parseListen('[fe80::1%eth0]:9100')).toEqual({ host: 'fe80::1%eth0', port: 9100 });
    expect(parseListen('sbc-1.example.net:9864')).toEqual({ host: 'sbc-1.example.net', port: 9864 });
  });

  it('writes an IPv6 address back in brackets', () => {
    expect(formatListen(parseListen('[2001:db8::1]:9864'))).toBe('[2001:db8::1]:9864');
    expect(formatListen(parseListen('127.0.0.1:9864'))).toBe('127.0.0.1:9864');
  });

  it.each(['[:::::]:19875', '999.1.1.1:19876', '1.2.3:9864', '[fe80::1]:19873', '[1.2.3.4]:9864', '[::1%a b]:9864', '-sbc:9864', 'sbc-.example:9864', 'a..b:9864', `${'a'.repeat(64)}:9864`, '[]:9864'])('refuses the host of %p as a usage error', (bad) => {
    expect(() => parseListen(bad)).toThrow(UsageError);
    expect(() => parseListen(bad)).toThrow(`bad metrics listen address '${bad.slice(0, 64)}`); // a longer value is cut (quote.ts)
  });

  it.each(['9864', ':9864', '127.0.0.1', '127.0.0.1:0', '127.0.0.1:65536', '::1:9864', 'a b:1', '127.0.0.1:98x'])('refuses %p, naming it', (bad) => {
    expect(() => parseListen(bad)).toThrow(`bad metrics listen address '${bad}'`);
  });

  it('comes from the flag, else VOS_METRICS_LISTEN, else the config key metricsListen, else 127.0.0.1:9864', () => {
    const file = parseConfigFile('{"metricsListen":"10.0.0.1:9864"}', 'config.json');
    expect(resolveSettings({}, {}, {}).metricsListen).toBe('127.0.0.1:9864');
    expect(resolveSettings({}, {}, file).metricsListen).toBe('10.0.0.1:9864');
    expect(resolveSettings({}, { VOS_METRICS_LISTEN: '127.0.0.1:9100' }, file).metricsListen).toBe('127.0.0.1:9100');
    expect(resolveSettings({ metricsListen: '127.0.0.1:9200' }, { VOS_METRICS_LISTEN: '127.0.0.1:9100' }, file).metricsListen).toBe('127.0.0.1:9200');
  });
});

describe('messageOutcome (messages_total{outcome})', () => {
  const nowS = 1_800_000_000;
  const state = new Map([
    ['198.51.100.1', { ip: '198.51.100.1', source: 'amqp', reason: null, added: nowS - 60, expires: nowS + 3600 }],
    ['198.51.100.9', { ip: '198.51.100.9', source: 'amqp', reason: null, added: nowS - 7200, expires: nowS - 1 }],
  ]);
  const block = (ip: string, ttlS: number) => ({ action: 'block' as const, target: { text: ip, addr: 0, prefixlen: 32 }, ttlS, source: 'amqp', reason: null });
  const unblock = (ip: string) => ({ ...block(ip, 0), action: 'unblock' as const });
  it('applied: a new block, a block of an expired entry, an unblock of a blocked address', () => {
    expect(messageOutcome([block('198.51.100.2', 600)], state, nowS)).toBe('applied');
    expect(messageOutcome([block('198.51.100.9', 600)], state, nowS)).toBe('applied');
    expect(messageOutcome([unblock('198.51.100.1')], state, nowS)).toBe('applied');
    expect(messageOutcome([block('198.51.100.1', 600), block('198.51.100.2', 600)], state, nowS)).toBe('applied');
  });
  it('extended: already blocked, the expiry moves later (the same block sent again with its TTL)', () => {
    expect(messageOutcome([block('198.51.100.1', 3600)], state, nowS + 10)).toBe('extended');
    expect(messageOutcome([block('198.51.100.1', 0)], state, nowS)).toBe('extended');
  });
  it('duplicate: nothing changes (a shorter block, an unblock of an address not blocked or expired)', () => {
    expect(messageOutcome([block('198.51.100.1', 600)], state, nowS)).toBe('duplicate');
    expect(messageOutcome([unblock('198.51.100.3')], state, nowS)).toBe('duplicate');
    expect(messageOutcome([unblock('198.51.100.9')], state, nowS)).toBe('duplicate');
    expect(messageOutcome([], state, nowS)).toBe('duplicate');
  });
});

describe('timer options', () => {
  it.each([0, 1, 30, 86400])('a period of %p s is taken (0 = off)', (v) => expect(checkInterval('drift-interval', v, PERIOD_S)).toBe(v));

  it.each([2147484, 86401, 0.001, 0.5, -1, NaN, Infinity, '30'])('a period of %p is refused with the range named', (v) => {
    expect(() => checkInterval('gc-interval', v, PERIOD_S)).toThrow(`bad --gc-interval '${String(v)}': 0 (off) or 1 to 86400 seconds`);
  });

  it('batch waits are 0 to 10,000 ms; --watch 0.1 s to a day', () => {
    expect(checkInterval('batch-wait', 0, BATCH_WAIT_MS)).toBe(0);
    expect(() => checkInterval('batch-wait', 2147483648, BATCH_WAIT_MS)).toThrow("bad --batch-wait '2147483648': 0 to 10000 ms");
    expect(checkInterval('watch', 0.5, WATCH_S)).toBe(0.5);
    expect(() => checkInterval('watch', 0, WATCH_S)).toThrow("bad --watch '0': 0.1 to 86400 seconds");
  });
});

describe('shipped alert rules', () => {
  it('promtool test rules: every alert fires when it should and stays quiet when it should not', async () => {
    const root = join(import.meta.dirname, '../..');
    const r = await execa('promtool', ['test', 'rules', 'test/prometheus/vos-fastpath.rules.test.yml'], { cwd: root, reject: false });
    expect({ code: r.exitCode, out: `${r.stdout}${r.stderr}` }).toEqual({ code: 0, out: expect.stringContaining('SUCCESS') });
  });
});
