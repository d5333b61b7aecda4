/**
 * vosctl over IPv6, as root, against real pinned maps and a real veth pair
 * with 2001:db8::/32 addresses: real UDP over IPv6 to a real socket before
 * and after block and unblock, every address-taking command with IPv6, RFC
 * 5952 text in listings, refusals naming the value, mixed load-file and
 * --replace across both families, TTL expiry, attach restoring IPv6 entries.
 */
import { afterAll, beforeAll, expect, it } from '@jest/globals';
import { execa } from 'execa';
import dgram from 'node:dgram';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describeKernel } from '../helpers/env.js';
import { attachedLab, type VosctlLab } from '../helpers/vosctl.js';
import { Lab, sendUdpFrom, type Veth } from '../helpers/lab.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describeKernel('vosctl over IPv6', () => {
  let lab: Lab;
  let v: Veth;
  let t: VosctlLab;
  const vosctl = (...args: string[]) => t.vosctl(...args);
  const list = (...args: string[]) => t.list(...args);
  const ips = (...args: string[]) => t.ips(...args);

  beforeAll(async () => {
    t = await attachedLab();
    ({ lab, v } = t);
  });
  afterAll(() => lab.cleanup());

  /** Datagrams a real UDP socket on the host's IPv6 address receives from the namespace. */
  async function received(payloads: string[]): Promise<number> {
    const sock = dgram.createSocket({ type: 'udp6', reuseAddr: true });
    let got = 0;
    sock.on('message', () => got++);
    await new Promise<void>((r) => sock.bind(5060, v.hostIp6, r));
    try {
      await sendUdpFrom(v.ns, v.hostIp6, 5060, payloads);
      await sleep(200);
      return got;
    } finally {
      sock.close();
    }
  }
  const INVITE = 'INVITE sip:a@[2001:db8::1] SIP/2.0\r\n\r\n';

  it('block drops real IPv6 packets at the NIC; unblock lets them through', async () => {
    expect(await received([INVITE, INVITE])).toBe(2);
    expect(await vosctl('block', v.peerIp6, '--reason', 'test')).toMatchObject({ code: 0, out: `blocked ${v.peerIp6}` });
    expect(await received(Array(5).fill(INVITE))).toBe(0);
    const stats = JSON.parse((await vosctl('stats', '--json')).out) as Record<string, { packets: number }>;
    expect(stats.blocked_exact_ipv6!.packets).toBeGreaterThanOrEqual(5);
    expect((await vosctl('stats')).out).toMatch(/blocked_exact_ipv6\s+\d+/);
    // Columns in line for the longest names (malformed_register_ipv6 and its like).
    const lines = (await vosctl('stats')).out.trimEnd().split('\n');
    expect(lines.some((l) => l.startsWith('malformed_register_ipv6 '))).toBe(true);
    expect(new Set(lines.map((l) => l.length)).size).toBe(1);
    expect(await vosctl('unblock', v.peerIp6)).toMatchObject({ code: 0, out: `unblocked ${v.peerIp6}` });
    expect(await received(Array(3).fill(INVITE))).toBe(3);
  });

  it('stealth drops OPTIONS over IPv6 unless options-allow names the source', async () => {
    const OPTIONS = 'OPTIONS sip:a@[2001:db8::1] SIP/2.0\r\nVia: SIP/2.0/UDP [2001:db8::2]\r\n\r\n';
    expect(await received([OPTIONS])).toBe(0);
    expect(await vosctl('options-allow', v.peerIp6)).toMatchObject({ code: 0, out: `added ${v.peerIp6} to options_allow6` });
    expect(await received([OPTIONS])).toBe(1);
    expect(await vosctl('options-disallow', v.peerIp6)).toMatchObject({ code: 0, out: `removed ${v.peerIp6} from options_allow6` });
    expect(await received([OPTIONS])).toBe(0);
  });

  it('writes and lists RFC 5952 text whatever form was given; list --family picks one family', async () => {
    expect(await vosctl('block', '2001:DB8:0:0:0:0:bad:0001', '2001:0db8:0bad:0000::/64', '203.0.113.40')).toMatchObject({ code: 0 });
    expect(await ips('--family', '6')).toEqual(expect.arrayContaining(['2001:db8::bad:1', '2001:db8:bad::/64']));
    expect(await ips('--family', '6')).not.toContain('203.0.113.40');
    expect(await ips('--family', '4')).toEqual(['203.0.113.40']);
    const log = JSON.parse((await vosctl('block', '2001:DB8::BAD:2')).err.trim().split('\n').pop()!);
    expect(log).toMatchObject({ ip: '2001:db8::bad:2' });
    const key = ['20', '01', '0d', 'b8', ...Array(8).fill('00'), '0b', 'ad', '00', '02'].map((h) => String(parseInt(h, 16)));
    expect((await execa('bpftool', ['map', 'lookup', 'pinned', `${lab.pinDir}/blocked_ips6`, 'key', ...key], { reject: false })).exitCode).toBe(0);
    expect((await vosctl('unblock', '2001:db8::bad:1', '2001:db8:bad::/64', '203.0.113.40', '2001:db8::bad:2')).code).toBe(0);
  });

  it.each([
    ['::', 'unspecified'],
    ['::1', 'loopback'],
    ['ff02::1', 'multicast'],
    ['fe80::1', 'link-local'],
    ['fe80::1%eth0', 'zone id'],
    ['[2001:db8::1]:5060', 'bracketed or has a port'],
    ['[2001:db8::7]:5060', "give the bare IPv6 address: '2001:db8::7'"],
    ['::192.0.2.1', 'IPv4-compatible IPv6 address (::a.b.c.d, deprecated by RFC 4291 2.5.5.1; never a packet\'s source); give the IPv4 form: 192.0.2.1'],
    ['64:ff9b::/96', 'covers the NAT64 prefix 64:ff9b::/96'],
    ['64:ff9b::c000:0/100', 'is 192.0.0.0/4 through NAT64, shorter than the minimum prefix /8'],
    ['2001:db8::/129', 'longer than 128'],
    ['2001:db8::1/64', 'host bits set'],
    ['2001:d00::/24', 'minimum IPv6 prefix /32'],
  ])('block refuses %s with exit 2, naming it (%s)', async (bad, why) => {
    const r = await vosctl('block', bad);
    expect(r.code).toBe(2);
    expect(r.err).toContain(bad);
    expect(r.err).toContain(why);
  });

  it.each([
    ['::ffff:0:0/96', "'::ffff:0:0/96' (0.0.0.0/0) is shorter than the minimum prefix /8"],
    ['::ffff:127.0.0.1', "'::ffff:127.0.0.1' (127.0.0.1) is loopback"],
    ['2001:db8::/048', "'2001:db8::/048' has a leading zero in its prefix length (ambiguous: octal to some tools); write /48"],
    ['10.0.0.0/08', "'10.0.0.0/08' has a leading zero in its prefix length (ambiguous: octal to some tools); write /8"],
  ])('block refuses %s with exit 2, naming it as typed, as block_ip.sh does', async (bad, message) => {
    const r = await vosctl('block', bad);
    expect([r.code, r.err]).toEqual([2, expect.stringContaining(message)]);
    const s = await lab.script('block_ip.sh', [bad]);
    expect([s.exitCode, s.stderr]).toEqual([2, expect.stringContaining(message)]);
  });

  it('names a 100,000-character value by its first 64 characters and its length, in vosctl and the scripts', async () => {
    const long = `2001:db8::${'1'.repeat(100_000 - 10)}`;
    const cut = `'${long.slice(0, 64)}…(100000 chars)' is not an IPv6 address or CIDR`;
    const r = await vosctl('block', long);
    expect([r.code, r.err]).toEqual([2, expect.stringContaining(cut)]);
    expect(r.err.length).toBeLessThan(1000);
    const s = await lab.script('block_ip.sh', [long]);
    expect([s.exitCode, s.stderr]).toEqual([2, expect.stringContaining(`'${long.slice(0, 64)}…(100000 chars)'`)]);
    expect(s.stderr.length).toBeLessThan(1000);
  });

  it('blocks a NAT64 address as IPv6 (RFC 6052), and lets unblock name an IPv4-compatible entry it would refuse to add', async () => {
    expect(await vosctl('block', '64:ff9b::198.51.100.7')).toMatchObject({ code: 0 });
    expect(await ips('--family', '6')).toContain('64:ff9b::c633:6407');
    expect(await ips('--family', '4')).not.toContain('198.51.100.7');
    expect((await vosctl('unblock', '64:ff9b::c633:6407')).code).toBe(0);
    // One text per address (README: NAT64 addresses are written in hex): the dotted form names the same entry.
    expect((await vosctl('block', '64:ff9b::c633:6407')).code).toBe(0);
    expect(await vosctl('unblock', '64:ff9b::198.51.100.7')).toMatchObject({ code: 0, out: expect.stringContaining('64:ff9b::c633:6407') });
    expect(await ips('--family', '6')).not.toContain('64:ff9b::c633:6407');
    expect(await vosctl('unblock', '::198.51.100.7')).toMatchObject({ code: 0, out: '::c633:6407 was not blocked' });
    const allow = await vosctl('options-allow', '::198.51.100.7');
    expect([allow.code, allow.err]).toEqual([2, expect.stringContaining("'::198.51.100.7' is an IPv4-compatible")]);
  });

  it('refuses a prefix covering this host\'s own IPv6 address, and one inside the IPv6 allowlist', async () => {
    const own = await vosctl('block', `${v.hostIp6.replace(/::1$/, '::')}/64`);
    expect(own.code).toBe(2);
    expect(own.err).toContain(`covers this host's address ${v.hostIp6}`);
    expect(await vosctl('allow', '2001:db8:a11::/48')).toMatchObject({ code: 0, out: 'added 2001:db8:a11::/48 to allow_ips6' });
    const allowed = await vosctl('block', '2001:db8:a11:1::9');
    expect(allowed.code).toBe(2);
    expect(allowed.err).toContain('covered by the allowlist entry 2001:db8:a11::/48');
    expect((await vosctl('disallow', '2001:db8:a11::/48')).code).toBe(0);
    expect((await vosctl('block', '2001:db8:a11:1::9')).code).toBe(0);
    await vosctl('unblock', '2001:db8:a11:1::9');
  });

  it('honours --min-prefix6', async () => {
    expect((await vosctl('block', '2001:db8:1000::/36', '--min-prefix6', '40')).code).toBe(2);
    expect((await vosctl('block', '2001:db8:1000::/36', '--min-prefix6', '36')).code).toBe(0);
    await vosctl('unblock', '2001:db8:1000::/36');
  });

  it('an IPv4-mapped address blocks the IPv4 address it carries', async () => {
    expect(await vosctl('block', '::ffff:203.0.113.44')).toMatchObject({ code: 0, out: 'blocked 203.0.113.44' });
    expect(await ips('--family', '4')).toContain('203.0.113.44');
    await vosctl('unblock', '203.0.113.44');
  });

  it('load-file takes a mixed file; --replace swaps a source\'s set across both families', async () => {
    const file = join(lab.tmp, 'mixed.txt');
    writeFileSync(file, '203.0.113.50\n2001:db8:feed::1\n2001:db8:feed:1::/64\n# comment\n198.51.100.0/24\n2001:DB8:FEED::2\nfe80::9\n');
    const r = await vosctl('load-file', file, '--source', 'feed6');
    expect(r.code).not.toBe(0);
    expect(r.err).toContain("line 7: 'fe80::9' is link-local");
    expect((await ips('--source', 'feed6')).sort()).toEqual(['198.51.100.0/24', '2001:db8:feed:1::/64', '2001:db8:feed::1', '2001:db8:feed::2', '203.0.113.50'].sort());
    writeFileSync(file, '2001:db8:feed::2\n2001:db8:feed::3\n203.0.113.51\n');
    expect((await vosctl('load-file', file, '--source', 'feed6', '--replace')).code).toBe(0);
    expect((await ips('--source', 'feed6')).sort()).toEqual(['2001:db8:feed::2', '2001:db8:feed::3', '203.0.113.51']);
    writeFileSync(file, '');
    expect((await vosctl('load-file', file, '--source', 'feed6', '--replace')).code).toBe(0);
    expect(await ips('--source', 'feed6')).toEqual([]);
  });

  it('an IPv6 entry expires with its TTL; gc removes it from map and state; status agrees', async () => {
    await vosctl('block', '2001:db8:e:1::7', '--ttl', '1');
    await vosctl('block', '2001:db8:e:2::/64', '--ttl', '1');
    await sleep(1200);
    expect(await ips('--family', '6')).not.toContain('2001:db8:e:1::7');
    expect((await vosctl('gc')).out).toContain('removed 2 expired entries');
    const s = JSON.parse((await vosctl('status', '--json')).out);
    expect(s.state_matches_maps).toBe(true);
    expect(s.maps.map((m: { name: string }) => m.name)).toEqual(expect.arrayContaining(['blocked_ips6', 'blocked_prefixes6']));
  });

  it('reconcile adopts an IPv6 entry written into the map by hand', async () => {
    const key = ['20', '01', '0d', 'b8', '00', '0e', ...Array(9).fill('00'), '77'].map((h) => String(parseInt(h, 16)));
    await execa('bpftool', ['map', 'update', 'pinned', `${lab.pinDir}/blocked_ips6`, 'key', ...key, 'value', ...Array(12).fill('0'), '1', '0', '0', '0']);
    expect(JSON.parse((await vosctl('status', '--json')).out)).toMatchObject({ state_matches_maps: false, divergence: { only_in_maps: 1 } });
    expect((await vosctl('reconcile')).code).toBe(0);
    expect(JSON.parse((await vosctl('status', '--json')).out).state_matches_maps).toBe(true);
    expect(await ips('--family', '6')).toContain('2001:db8:e::77');
    await vosctl('unblock', '2001:db8:e::77');
  });

  it('svmap -6 finds nothing behind stealth, and finds the responder without it', async () => {
    // A SIP responder on the host's IPv6 address: answers OPTIONS with 200 OK, as a server would.
    const sock = dgram.createSocket({ type: 'udp6', reuseAddr: true });
    sock.on('message', (m, r) => {
      const t = m.toString('latin1');
      if (!t.startsWith('OPTIONS ')) return;
      const hdr = (n: string) => new RegExp(`^${n}:.*$`, 'mi').exec(t)?.[0] ?? '';
      sock.send(['SIP/2.0 200 OK', hdr('Via'), hdr('From'), `${hdr('To')};tag=vfp`, hdr('Call-ID'), hdr('CSeq'), 'User-Agent: vfp-lab-responder', 'Content-Length: 0', '', ''].join('\r\n'), r.port, r.address);
    });
    await new Promise<void>((r) => sock.bind(5060, v.hostIp6, r));
    const svmap = async () => {
      const r = await execa('ip', ['netns', 'exec', v.ns, 'svmap', '-6', '-p', '5060', '-t', '0.05', v.hostIp6], { reject: false, timeout: 60_000, cwd: lab.tmp });
      return `${r.stdout}\n${r.stderr}`;
    };
    try {
      expect(await svmap()).not.toContain('vfp-lab-responder');
      expect((await vosctl('attach', v.host, '--mode', 'native', '--no-stealth')).code).toBe(0);
      expect(await svmap()).toContain(`${v.hostIp6}:5060`);
    } finally {
      sock.close();
      expect((await vosctl('attach', v.host, '--mode', 'native')).code).toBe(0);
    }
  });

  it('the scripts take IPv6 too: same validation, same maps, same state as vosctl', async () => {
    expect((await lab.mustScript('block_ip.sh', ['2001:DB8:5C::1', '--ttl', '1h', '--source', 'script'])).stdout).toBe('blocked 2001:db8:5c::1 for 3600s');
    expect((await lab.mustScript('block_ips_from_file.sh', ['-', '--source', 'script'], '2001:db8:5c:1::/64\n203.0.113.90\n')).stdout).toContain('loaded 2 entries');
    expect((await ips('--source', 'script')).sort()).toEqual(['2001:db8:5c:1::/64', '2001:db8:5c::1', '203.0.113.90']);
    expect(JSON.parse((await vosctl('status', '--json')).out).state_matches_maps).toBe(true);
    for (const [bad, why] of [['fe80::1%eth0', 'zone id'], ['[2001:db8::1]:5060', 'bracketed'], ['ff02::1', 'multicast'], ['2001:db8::/24', 'host bits set'], ['2001:d00::/24', 'minimum IPv6 prefix /32']]) {
      const r = await lab.script('block_ip.sh', [bad!]);
      expect({ bad, code: r.exitCode, named: r.stderr.includes(`'${bad}'`) && r.stderr.includes(why!) }).toEqual({ bad, code: 2, named: true });
    }
    expect((await lab.mustScript('allow_ip.sh', ['2001:db8:a11::/48'])).stdout).toBe('added 2001:db8:a11::/48 to allow_ips6');
    expect((await lab.script('block_ip.sh', ['2001:db8:a11::5'])).stderr).toContain('covered by the allowlist entry 2001:db8:a11::/48');
    await lab.mustScript('disallow_ip.sh', ['2001:db8:a11::/48']);
    expect((await lab.mustScript('unblock_ip.sh', ['2001:db8:5c:0::1'])).stdout).toBe('unblocked 2001:db8:5c::1');
    await vosctl('unblock', '2001:db8:5c:1::/64', '203.0.113.90');
    expect(await ips('--source', 'script')).toEqual([]);
  });

  it('after a reboot (maps gone), attach restores IPv6 entries with their remaining lifetime, and they drop again', async () => {
    await vosctl('block', v.peerIp6, '--ttl', '1h', '--source', 'kamailio', '--reason', 'pike');
    await vosctl('block', '2001:db8:c0de::/48');
    const before = (await list()).find((e) => e.ip === v.peerIp6)!;
    expect((await vosctl('detach', v.host, '--purge')).code).toBe(0);
    const r = await vosctl('attach', v.host);
    expect(r.code).toBe(0);
    const after = await list('--family', '6');
    expect(after.map((e) => e.ip)).toEqual(expect.arrayContaining([v.peerIp6, '2001:db8:c0de::/48']));
    const restored = after.find((e) => e.ip === v.peerIp6)!;
    expect(restored).toMatchObject({ source: 'kamailio', reason: 'pike' });
    expect(Math.abs(Date.parse(restored.expires!) - Date.parse(before.expires!))).toBeLessThanOrEqual(2000);
    expect(await received([INVITE, INVITE])).toBe(0);
    await vosctl('unblock', v.peerIp6, '2001:db8:c0de::/48');
    expect(await received([INVITE])).toBe(1);
  });
});
