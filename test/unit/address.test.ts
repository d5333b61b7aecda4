import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { Address4 } from 'ip-address';
import { bytesOf6, checkActionTarget, checkBlockTarget, covers, covers6, formatAddr, formatAddr6, formatTarget, parseRemovable, parseTarget, TargetSet, checkStoredTarget, type BlockPolicy } from '../../lib/address.js';

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
    ['2001:db8::g', 'is not an IPv4 or IPv6 address'],
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

  it('reads dotted text as ip-address does, refusing host bits (property)', () => {
    const digits = fc.stringMatching(/^\d{1,3}$/);
    fc.assert(
      fc.property(fc.array(digits, { minLength: 4, maxLength: 4 }), fc.option(fc.stringMatching(/^\d{1,2}$/)), (octets, len) => {
        const text = octets.join('.') + (len === null ? '' : `/${len}`);
        let want: string | null;
        try {
          const a = new Address4(text);
          const o = a.parsedAddress.map(Number);
          const n = ((o[0]! << 24) | (o[1]! << 16) | (o[2]! << 8) | o[3]!) >>> 0;
          const l = a.subnetMask;
          want = l === 32 || (n & (2 ** (32 - l) - 1)) === 0 ? formatTarget(n, l) : null;
        } catch {
          want = null;
        }
        const r = parseTarget(text);
        return (r.ok ? r.target.text : null) === want;
      }),
      { numRuns: 5000 },
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

describe('IPv6 targets', () => {
  const policy6: BlockPolicy = { ...policy, allow6: [{ bytes: bytesOf6('2001:db8:a11::'), prefixlen: 48 }], own6: [bytesOf6('2001:db8:5e1f::1')] };
  const reason6 = (text: string) => {
    const r = checkBlockTarget(text, policy6);
    return r.ok ? r.target.text : r.reason;
  };

  it.each([
    ['2001:DB8::1', '2001:db8::1'],
    ['2001:0db8:0000:0000:0000:0000:0000:0001', '2001:db8::1'],
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'], // RFC 5952 4.2.3: the first of two equal runs
    ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'], // RFC 5952 4.2.2: one zero group stays
    ['2001:db8:100::/40', '2001:db8:100::/40'],
    ['2001:db8:1:2::/64', '2001:db8:1:2::/64'],
    ['2001:db8::1/128', '2001:db8::1'],
  ])('accepts %j as %j (RFC 5952 text)', (text, canon) => {
    expect(reason6(text)).toBe(canon);
  });

  it('treats an IPv4-mapped address as the IPv4 address it carries', () => {
    expect(parseTarget('::ffff:192.0.2.1')).toEqual({ ok: true, target: { text: '192.0.2.1', addr: 0xc0000201, prefixlen: 32 } });
    expect(parseTarget('::ffff:c633:6407')).toMatchObject({ ok: true, target: { text: '198.51.100.7' } });
    expect(parseTarget('::ffff:198.51.100.0/120')).toMatchObject({ ok: true, target: { text: '198.51.100.0/24', prefixlen: 24 } });
    expect(reason6('::ffff:127.0.0.1')).toContain('is loopback'); // validated as IPv4
  });

  it.each([
    ['::', 'the unspecified address'],
    ['::1', 'the loopback address'],
    ['ff02::1', 'multicast (ff00::/8)'],
    ['ff00::/8', 'shorter than the minimum IPv6 prefix /32'],
    ['fe80::1', 'link-local (fe80::/10)'],
    ['fe80::1%eth0', 'zone id'],
    ['[2001:db8::1]:5060', 'bracketed or has a port'],
    ['[2001:db8::1]', 'bracketed or has a port'],
    ['2001:db8::/129', 'prefix longer than 128'],
    ['2001:db8::1/64', 'has host bits set; the network is 2001:db8::/64'],
    ['2001::/16', 'shorter than the minimum IPv6 prefix /32'],
    ['::/0', 'shorter than the minimum IPv6 prefix /32'],
    ['2001:db8:5e1f::/48', "covers this host's address 2001:db8:5e1f::1"],
    ['2001:db8:a11:1::/64', 'covered by the allowlist entry 2001:db8:a11::/48'],
    ['2001:db8:::1', 'is not an IPv6 address'],
    ['2001:db8::1::2', 'is not an IPv6 address'],
    ['1:2:3:4:5:6:7:8:9', 'is not an IPv6 address'],
  ])('refuses %j, naming it: %s', (text, why) => {
    const r = reason6(text);
    expect(r).toContain(`'${text}'`);
    expect(r).toContain(why);
  });

  it.each([
    ['[2001:db8::7]:5060', "'2001:db8::7'"],
    ['[2001:db8:cafe::42]', "'2001:db8:cafe::42'"],
    ['[2001:db8:cafe::/48]:', "'2001:db8:cafe::/48'"],
    ['[  2001:DB8::9  ]:5061', "'2001:DB8::9'"],
    ['[nonsense]:5060', 'the address alone, without brackets or port'],
    ['2001:db8::7]', 'the address alone, without brackets or port'],
  ])('refuses the bracketed or port-suffixed %j naming it and the bare address inside (%s)', (text, bare) => {
    const r = parseTarget(text);
    if (r.ok) throw new Error('accepted');
    expect(r.reason).toContain(`'${text}'`);
    expect(r.reason).toContain(bare);
    expect(r.reason).not.toContain('2001:db8::1');
  });

  it.each([
    ['::192.0.2.1', '192.0.2.1'],
    ['::c000:201', '192.0.2.1'],
    ['0:0:0:0:0:0:203.0.113.9', '203.0.113.9'],
    ['::c000:200/120', '192.0.2.0/24'],
    ['::2', '0.0.0.2'],
  ])('refuses the IPv4-compatible %j (RFC 4291 2.5.5.1, deprecated), naming it and its IPv4 form %s', (text, v4) => {
    for (const r of [parseTarget(text), checkBlockTarget(text, policy6)]) {
      if (r.ok) throw new Error('accepted');
      expect(r.reason).toContain(`'${text}'`);
      expect(r.reason).toContain('IPv4-compatible');
      expect(r.reason).toContain(`give the IPv4 form: ${v4}`);
    }
  });

  it('lets unblock and disallow name an IPv4-compatible entry added before it was refused', () => {
    expect(parseRemovable('::192.0.2.1')).toMatchObject({ ok: true, target: { text: '::c000:201', family: 6 } });
    expect(parseRemovable('::ffff:192.0.2.1')).toMatchObject({ ok: true, target: { text: '192.0.2.1' } });
    expect(parseRemovable('[::c000:201]')).toMatchObject({ ok: false });
    expect(checkActionTarget('unblock', '::c000:201', policy6)).toMatchObject({ ok: true });
    expect(checkActionTarget('block', '::c000:201', policy6)).toMatchObject({ ok: false });
  });

  it('keeps :: and ::1 under their own names, not IPv4-compatible', () => {
    expect(reason6('::')).toContain('the unspecified address');
    expect(reason6('::1')).toContain('the loopback address');
  });

  it('takes NAT64 addresses (RFC 6052) as IPv6, holding a prefix inside 64:ff9b::/96 to the IPv4 minimum', () => {
    expect(checkBlockTarget('64:ff9b::192.0.2.1', policy6)).toMatchObject({ ok: true, target: { text: '64:ff9b::c000:201', family: 6, prefixlen: 128 } });
    expect(reason6('64:ff9b::c000:200/120')).toBe('64:ff9b::c000:200/120');
    expect(reason6('64:ff9b::c000:0/104')).toBe('64:ff9b::c000:0/104'); // 192.0.0.0/8, the IPv4 minimum
    expect(reason6('64:ff9b::c000:0/100')).toContain('is 192.0.0.0/4 through NAT64, shorter than the minimum prefix /8');
    expect(reason6('64:ff9b::/96')).toContain('covers the NAT64 prefix 64:ff9b::/96');
    expect(reason6('64:ff9b::/64')).toContain('covers the NAT64 prefix 64:ff9b::/96');
    expect(reason6('64:ff9b:1::c000:201')).toBe('64:ff9b:1::c000:201'); // the local-use prefix (RFC 8215): ordinary IPv6
  });

  it.each([
    ['2002:c000:201::/48', '6to4 site of 192.0.2.1 (RFC 3056)'],
    ['2001:0:4136:e378:8000:63bf:3fff:fdd2', 'a Teredo client (RFC 4380)'],
    ['2001::/32', 'every Teredo client: the operator\'s call'],
    ['2001:db8::7', 'documentation (RFC 3849)'],
    ['3fff::7', 'documentation (RFC 9637)'],
    ['fd00:1:2::/48', 'unique local (RFC 4193)'],
    ['100::/64', 'discard-only (RFC 6666): harmless'],
  ])('accepts %j as an ordinary IPv6 target: %s', (text) => {
    expect(reason6(text)).toBe(text);
  });

  it('refuses the whole 6to4 range for its length', () => {
    expect(reason6('2002::/16')).toContain('shorter than the minimum IPv6 prefix /32');
  });

  it('honours --min-prefix6', () => {
    expect(checkBlockTarget('2001:db8::/40', { ...policy6, minPrefix6: 48 })).toMatchObject({ ok: false });
    expect(checkBlockTarget('2001:db8::/40', { ...policy6, minPrefix6: 40 })).toMatchObject({ ok: true });
  });

  it('formats every 16 bytes as RFC 5952 text that parses back to them (property)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 16, maxLength: 16 }).map((b) => (b.subarray(0, 10).every((x) => x === 0) && (b[10] === 0xff || b[10] === 0) ? (b[0] = 0x20, b) : b)), (b) => {
        const text = formatAddr6(b);
        const r = parseTarget(text);
        return r.ok && r.target.text === text && Buffer.from(bytesOf6(text)).equals(Buffer.from(b));
      }),
    );
  });

  it('covers6 agrees with prefix arithmetic', () => {
    expect(covers6({ bytes: bytesOf6('2001:db8::'), prefixlen: 32 }, { bytes: bytesOf6('2001:db8:ffff::'), prefixlen: 48 })).toBe(true);
    expect(covers6({ bytes: bytesOf6('2001:db8::'), prefixlen: 33 }, { bytes: bytesOf6('2001:db8:8000::'), prefixlen: 48 })).toBe(false);
    expect(covers6({ bytes: bytesOf6('2001:db8::'), prefixlen: 48 }, { bytes: bytesOf6('2001:db8::'), prefixlen: 32 })).toBe(false);
  });

  it('keeps IPv6 targets apart from IPv4 ones in a TargetSet', () => {
    const set = new TargetSet();
    const v6 = parseTarget('2001:db8::1');
    if (!v6.ok) throw new Error(v6.reason);
    expect(set.add(v6.target)).toBe(true);
    expect(set.add(v6.target)).toBe(false);
    expect(set.has(v6.target)).toBe(true);
    expect(set.has({ addr: 0, prefixlen: 32 })).toBe(false);
  });
});

describe('refusals name what the operator typed', () => {
  it.each([
    ['::ffff:0:0/96', "'::ffff:0:0/96' (0.0.0.0/0) is shorter than the minimum prefix /8"],
    ['::ffff:127.0.0.1', "'::ffff:127.0.0.1' (127.0.0.1) is loopback"],
    ['::FFFF:C000:205', "'::FFFF:C000:205' (192.0.2.5) is covered by the allowlist entry 192.0.2.0/24"],
    ['2001:DB8::/16', "'2001:DB8::/16' has host bits set"],
    ['2001::/16', "'2001::/16' is shorter than the minimum IPv6 prefix /32"],
    ['2001:0:0::/16', "'2001:0:0::/16' (2001::/16) is shorter than the minimum IPv6 prefix /32"],
    ['127.0.0.1', "'127.0.0.1' is loopback"],
  ])('%j', (text, message) => {
    expect(reason(text)).toContain(message);
  });

  it.each([
    ['2001:db8::/048', '/48'],
    ['2001:db8::/0048', '/48'],
    ['10.0.0.0/08', '/8'],
    ['0.0.0.0/00', '/0'],
    ['::ffff:10.0.0.0/0104', '/104'],
  ])('refuses a leading zero in the prefix length of %j, for blocks and removals alike', (text, write) => {
    for (const r of [parseTarget(text), parseRemovable(text)]) {
      expect(r).toEqual({ ok: false, reason: `'${text}' has a leading zero in its prefix length (ambiguous: octal to some tools); write ${write}` });
    }
  });

  it('still takes /0 and prefix lengths without a leading zero', () => {
    expect(parseTarget('2001:db8::/48')).toMatchObject({ ok: true, target: { text: '2001:db8::/48' } });
    expect(parseTarget('10.0.0.0/8')).toMatchObject({ ok: true, target: { text: '10.0.0.0/8' } });
    expect(parseTarget('0.0.0.0/0')).toMatchObject({ ok: true, target: { prefixlen: 0 } });
  });

  it('cuts a long value at 64 characters and says how long it was', () => {
    const long = `2001:db8::${'1'.repeat(100_000)}`;
    const r = parseTarget(long);
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.reason).toBe(`'${long.slice(0, 64)}…(${long.length} chars)' is not an IPv6 address or CIDR`);
      expect(r.reason.length).toBeLessThan(200);
    }
  });
});

describe('checkStoredTarget', () => {
  it('takes exactly the canonical texts ip-address gives, of both families (property)', () => {
    const v4 = fc.tuple(fc.integer({ min: 0, max: 0xffffffff }), fc.integer({ min: 0, max: 32 })).map(([a, l]) => {
      const m = l === 0 ? 0 : (0xffffffff << (32 - l)) >>> 0;
      return formatTarget((a & m) >>> 0, l);
    });
    const v6 = fc.tuple(fc.uint8Array({ minLength: 16, maxLength: 16 }), fc.integer({ min: 0, max: 128 })).map(([b, l]) => `${formatAddr6(b)}/${l}`);
    fc.assert(
      fc.property(fc.oneof(v4, v6), fc.constantFrom(' ', 'x', '[', '%', '\n', '.'), (text, junk) => {
        const p = parseRemovable(text);
        const mine = checkStoredTarget(text);
        if (p.ok && p.target.text === text) expect(typeof mine).toBe('object');
        else expect(typeof mine).toBe('string');
        // A byte more in front or behind is not a stored target.
        expect(typeof checkStoredTarget(junk + text)).toBe('string');
        expect(typeof checkStoredTarget(text + junk)).toBe('string');
      }),
      { numRuns: 3000 },
    );
  });

  it('refuses garbage, other spellings and host bits', () => {
    for (const t of ['zzz', '', '1.2.3.400', '01.2.3.4', '10.0.0.0/08', '10.0.0.1/24', '10.0.0.0/33', '1.2.3', '2001:DB8::1', '2001:db8:0::1', '2001:db8::1/64', '2001:db8::/129', '::ffff:1.2.3.4/NaN', '1.2.3.4/NaN'])
      expect([t, typeof checkStoredTarget(t)]).toEqual([t, 'string']);
    expect(checkStoredTarget('2001:db8::/32')).toEqual({ family: 6, prefixlen: 32 });
    expect(checkStoredTarget('203.0.113.7')).toEqual({ family: 4, prefixlen: 32 });
  });
});
