import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { checkBlockTarget, covers, formatAddr, formatTarget, parseTarget, TargetSet, type BlockPolicy } from '../../lib/address.js';

const policy: BlockPolicy = { minPrefix: 8, allow: [{ addr: 0xc0000200, prefixlen: 24 }], own: [0x0a000001] };
const reason = (text: string) => {
  const r = checkBlockTarget(text, policy);
  return r.ok ? null : r.reason;
};

describe('parseTarget', () => {
  it('accepts dotted quads and CIDRs, canonical out', () => {
    expect(parseTarget('203.0.113.5')).toEqual({ ok: true, target: { text: '203.0.113.5', addr: 0xcb007105, prefixlen: 32 } });
    expect(parseTarget(' 198.51.100.0/24 ')).toEqual({ ok: true, target: { text: '198.51.100.0/24', addr: 0xc6336400, prefixlen: 24 } });
    expect(parseTarget('198.51.100.7/32')).toMatchObject({ ok: true, target: { text: '198.51.100.7', prefixlen: 32 } });
  });

  it.each([
    ['', 'is not an IPv4 address'],
    ['1.2.3', 'is not an IPv4 address'],
    ['1.2.3.4.5', 'is not an IPv4 address'],
    ['256.1.1.1', 'octets 0-255'],
    ['1.2.3.4/33', 'prefix 0-32'],
    ['010.1.1.1', 'has a leading zero'],
    ['1.2.3.04', 'has a leading zero'],
    ['0x7f.0.0.1', 'is not an IPv4 address'],
    ['::1', 'is not an IPv4 address'],
    ['1.2.3.4; rm -rf /', 'is not an IPv4 address'],
    ['10.1.1.1/8', 'has host bits set; the network is 10.0.0.0/8'],
  ])('refuses %j, saying it %s', (text, why) => {
    const r = parseTarget(text);
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.reason).toContain(`'${text}'`);
      expect(r.reason).toContain(why);
    }
  });

  it('round-trips every address (property)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 0xffffffff }), (n) => {
        const r = parseTarget(formatAddr(n));
        return r.ok && r.target.addr === n && r.target.text === formatAddr(n);
      }),
    );
  });

  it('accepts a prefix exactly when its host bits are clear (property)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 0xffffffff }), fc.integer({ min: 0, max: 32 }), (n, len) => {
        const hostBits = len === 32 ? 0 : n & (2 ** (32 - len) - 1);
        return parseTarget(`${formatAddr(n)}/${len}`).ok === (hostBits === 0);
      }),
    );
  });

  it('never accepts text with a leading zero in any octet (property)', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 255 }), { minLength: 4, maxLength: 4 }), fc.integer({ min: 0, max: 3 }), (octets, i) => {
        const parts = octets.map(String);
        parts[i] = `0${parts[i]}`;
        return !parseTarget(parts.join('.')).ok;
      }),
    );
  });
});

describe('checkBlockTarget', () => {
  it.each([
    ['0.1.2.3', 'is in 0.0.0.0/8'],
    ['127.0.0.1', 'is loopback'],
    ['127.0.0.0/8', 'is loopback'],
    ['224.0.0.5', 'is multicast'],
    ['239.255.255.255', 'is multicast'],
    ['255.255.255.255', 'is the limited broadcast address'],
    ['4.0.0.0/6', 'is shorter than the minimum prefix /8'],
    ['192.0.2.9', 'is covered by the allowlist entry 192.0.2.0/24'],
    ['192.0.2.128/25', 'is covered by the allowlist entry 192.0.2.0/24'],
    ['10.0.0.1', "covers this host's address 10.0.0.1"],
    ['10.0.0.0/8', "covers this host's address 10.0.0.1"],
  ])('refuses %s (%s)', (text, why) => {
    expect(reason(text)).toContain(why);
  });

  it('accepts ordinary sources, and a prefix wider than an allowlisted one (the allowlist still wins per packet)', () => {
    expect(reason('203.0.113.5')).toBeNull();
    expect(reason('192.0.0.0/16')).toBeNull();
    expect(reason('198.18.0.0/15')).toBeNull();
  });

  it('honours a different minimum prefix', () => {
    expect(checkBlockTarget('203.0.113.0/24', { ...policy, minPrefix: 28 })).toMatchObject({ ok: false });
  });
});

describe('covers', () => {
  it('is true exactly for contained prefixes (property)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 0xffffffff }), fc.integer({ min: 0, max: 32 }), fc.integer({ min: 0, max: 32 }), (n, a, b) => {
        const net = (len: number) => (len === 0 ? 0 : (n & (0xffffffff << (32 - len))) >>> 0);
        return covers({ addr: net(a), prefixlen: a }, { addr: net(b), prefixlen: b }) === b >= a;
      }),
    );
  });
});

describe('TargetSet', () => {
  it('tells /32s and prefixes apart, and addresses above 128.0.0.0 from their int32 aliases', () => {
    const s = new TargetSet();
    expect(s.add({ addr: 0xc8010101, prefixlen: 32 })).toBe(true); // 200.1.1.1
    expect(s.add({ addr: 0xc8010101, prefixlen: 32 })).toBe(false);
    expect(s.has({ addr: 0xc8010100, prefixlen: 24 })).toBe(false);
    expect(s.add({ addr: 0xc8010100, prefixlen: 24 })).toBe(true);
    expect(s.has({ addr: 0xc8010100, prefixlen: 32 })).toBe(false);
    expect(s.has({ addr: 0x48010101, prefixlen: 32 })).toBe(false); // 72.1.1.1: same low bits, other sign
  });

  it('agrees with a set of canonical texts on any sequence of targets', () => {
    const target = fc.record({ addr: fc.integer({ min: 0, max: 0xffffffff }), prefixlen: fc.oneof(fc.constant(32), fc.integer({ min: 0, max: 32 })) });
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.boolean(), target), { maxLength: 200 }), (ops) => {
        const ours = new TargetSet();
        const texts = new Set<string>();
        for (const [add, t] of ops) {
          const text = formatTarget(t.addr, t.prefixlen);
          if (add) expect(ours.add(t)).toBe(!texts.has(text) && !!texts.add(text));
          else expect(ours.has(t)).toBe(texts.has(text));
        }
      }),
    );
  });
});
