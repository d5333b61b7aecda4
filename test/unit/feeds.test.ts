import { describe, expect, it } from '@jest/globals';
import { parseTarget, type Target } from '../../lib/address.js';
import { detectFormat, parseApiban, specialPurpose, splitJsonDocuments } from '../../lib/feeds.js';
import { parseApibanList, parseList } from '../../lib/listfile.js';

const t = (s: string): Target => {
  const r = parseTarget(s);
  if (!r.ok) throw new Error(r.reason);
  return r.target;
};
const policy = { minPrefix: 8, allow: [], own: [] };

describe('specialPurpose (IANA IPv4 special-purpose registry)', () => {
  it.each([
    ['10.1.2.3', 'private-use'],
    ['172.31.255.255', 'private-use'],
    ['192.168.1.1', 'private-use'],
    ['100.64.0.1', 'shared address space'],
    ['100.127.255.255', 'shared address space'],
    ['192.0.2.5', 'TEST-NET-1'],
    ['198.51.100.0/24', 'TEST-NET-2'],
    ['203.0.113.9', 'TEST-NET-3'],
    ['198.18.0.1', 'benchmarking'],
    ['198.19.255.255', 'benchmarking'],
    ['0.1.0.1', 'this network'],
    ['169.254.1.1', 'link local'],
    ['192.0.0.8', 'IETF protocol'],
    ['192.88.99.1', '6to4'],
    ['240.0.0.1', 'reserved'],
    ['224.0.0.5', 'multicast'],
    ['255.255.255.255', 'broadcast'],
    ['10.0.0.0/7', 'contains private-use'],
  ])('%s is special: %s', (ip, what) => expect(specialPurpose(t(ip))).toContain(what));

  it.each(['100.63.255.255', '100.128.0.0', '198.17.255.255', '198.20.0.0', '172.32.0.1', '45.134.26.1', '8.8.8.8', '11.0.0.0/8'])('%s is ordinary unicast', (ip) => expect(specialPurpose(t(ip))).toBeNull());
});

describe('APIBAN pages', () => {
  const page1 = JSON.stringify({ ipaddress: ['45.134.26.1', '10.0.0.9', '2001:db8::1'], ID: '1700000100' });
  const page2 = '{\n  "ipaddress": [\n    "45.134.26.2",\n    "45.134.26.1"\n  ],\n  "ID": "1700000200"\n}';
  const end = '{"ipaddress":["no new bans"],"ID":"none"}';

  it('splits pages written one after another, strings with braces included', () => {
    expect(splitJsonDocuments(`${page1}\n${page2}\n${end}\n`)).toHaveLength(3);
    expect(splitJsonDocuments('{"a":"}{"} {"b":1}')).toEqual(['{"a":"}{"}', '{"b":1}']);
  });

  it('collects addresses across pages, keeps the last ID, reads "no new bans" as the end', () => {
    const r = parseApiban(`${page1}\n${page2}\n${end}`);
    expect(r.entries.map((e) => e.text)).toEqual(['45.134.26.1', '10.0.0.9', '2001:db8::1', '45.134.26.2', '45.134.26.1']);
    expect(r.entries[3]!.where).toBe('page 2 entry 1');
    expect(r.lastId).toBe('1700000200');
    expect(r.errors).toEqual([]);
  });

  it('a page that is not a page is an error naming it (rate limit, cut short)', () => {
    const r = parseApiban('{"ipaddress":"rate limit exceeded","ID":"none"}\n{"ipaddress":["1.2.3.4"');
    expect(r.errors.map((e) => e.where)).toEqual(['page 1', 'page 2']);
    expect(r.errors[0]!.reason).toContain('rate limit exceeded');
  });

  it('as a feed: special-purpose addresses of both families skipped and reported, duplicates collapse, a non-address fails', () => {
    const r = parseApibanList(`${page1}\n${page2}\n{"ipaddress":["not-an-ip"],"ID":"1700000300"}\n${end}`, policy, { feed: true });
    expect(r.targets.map((x) => x.text)).toEqual(['45.134.26.1', '45.134.26.2']);
    expect(r.skipped.map((s) => s.text)).toEqual(['10.0.0.9', '2001:db8::1']);
    expect(r.errors).toHaveLength(1);
    expect(r.errors[0]!.reason).toContain('not-an-ip');
  });

  it('as a feed: public IPv6 is taken, IPv6 special-purpose space (IANA registry) skipped with its name', () => {
    const r = parseApibanList(JSON.stringify({ ipaddress: ['2a0b:4e07:2::5', '2A0B:4E07:2:0::5', 'fd00::1', '2002:c000:201::/48', '3fff::1', '2001:db8::9', '64:ff9b::c000:201'], ID: 'x' }), policy, { feed: true });
    expect(r.targets.map((x) => x.text)).toEqual(['2a0b:4e07:2::5']);
    expect(r.skipped.map((s) => s.reason)).toEqual([
      "'fd00::1' is unique-local (RFC 4193), fc00::/7",
      "'2002:c000:201::/48' is 6to4 (RFC 3056), 2002::/16",
      "'3fff::1' is documentation (RFC 9637), 3fff::/20",
      "'2001:db8::9' is documentation (RFC 3849), 2001:db8::/32",
      "'64:ff9b::c000:201' is IPv4-IPv6 translation (RFC 6052), 64:ff9b::/96",
    ]);
  });

  it('detects the format by content', () => {
    expect(detectFormat(`  ${end}`)).toBe('apiban');
    expect(detectFormat('# VoIPBL\n1.2.3.4/32\n')).toBe('plain');
  });
});

describe('VoIPBL-style lists as a feed', () => {
  it('skips 10.x, 0.1.0.1 and documentation ranges instead of failing; a non-address still fails', () => {
    const r = parseList('# voipbl\n45.134.26.0/24\n10.20.30.40/32\n0.1.0.1\n203.0.113.0/24\n46.1.2.3/32\nfoo\n', policy, { feed: true });
    expect(r.targets.map((x) => x.text)).toEqual(['45.134.26.0/24', '46.1.2.3']);
    expect(r.skipped.map((s) => s.where)).toEqual(['line 3', 'line 4', 'line 5']);
    expect(r.errors.map((e) => e.where)).toEqual(['line 7']);
  });

  it('without feed, special-purpose addresses are loaded as before (an operator may block a documentation range on purpose)', () => {
    expect(parseList('203.0.113.7\n', policy).targets).toHaveLength(1);
  });
});
