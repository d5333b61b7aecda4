/**
 * The bash scripts as an operator uses them: bad input is refused with a
 * message naming it and a non-zero exit before bpftool sees it, and the bulk
 * loader loads every good line in one bpftool process.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { execa } from 'execa';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describeKernel } from '../helpers/env.js';
import { Lab, ROOT } from '../helpers/lab.js';

async function keys(lab: Lab, map: string): Promise<string[][]> {
  const { stdout } = await execa('bpftool', ['-j', 'map', 'dump', 'pinned', `${lab.pinDir}/${map}`]);
  return (JSON.parse(stdout) as Array<{ key: string[] }>).map((e) => e.key.map((b) => String(parseInt(b, 16))));
}

describeKernel('scripts', () => {
  const lab = new Lab();
  beforeAll(async () => {
    await lab.loadUnattached();
    await lab.mustScript('allow_ip.sh', ['192.0.2.0/24']);
  });
  afterAll(() => lab.cleanup());

  it.each([
    ['not.an.ip', "'not.an.ip' is not an IPv4 address"],
    ['1.2.3', "'1.2.3' is not an IPv4 address"],
    ['256.1.1.1', "'256.1.1.1' is not an IPv4 address"],
    ['010.1.1.1', "'010.1.1.1' has a leading zero"],
    ['1.2.3.4/33', "'1.2.3.4/33' has a bad prefix length"],
    ['10.1.1.1/8', "'10.1.1.1/8' has host bits set; the network is 10.0.0.0/8"],
    ['0.1.2.3', "'0.1.2.3' is in 0.0.0.0/8"],
    ['127.0.0.1', "'127.0.0.1' is loopback"],
    ['224.0.0.5', "'224.0.0.5' is multicast"],
    ['255.255.255.255', "'255.255.255.255' is the limited broadcast address"],
    ['4.0.0.0/6', "'4.0.0.0/6' is shorter than the minimum prefix /8"],
    ['192.0.2.5', "'192.0.2.5' is covered by the allowlist entry 192.0.2.0/24"],
    ['1.2.3.4;rm', "'1.2.3.4;rm' is not an IPv4 address"],
    ['', "'' is not an IPv4 or IPv6 address"],
    ['fe80::1%eth0', "'fe80::1%eth0' has a zone id"],
    ['[2001:db8::1]:5060', "'[2001:db8::1]:5060' is bracketed or has a port"],
    ['2001:db8::1/64', "'2001:db8::1/64' has host bits set; the network is 2001:db8::/64"],
    ['::1', "'::1' is the loopback address"],
    ['[2001:db8::7]:5060', "'[2001:db8::7]:5060' is bracketed or has a port; give the bare IPv6 address: '2001:db8::7'"],
    ['::192.0.2.1', "'::192.0.2.1' is an IPv4-compatible IPv6 address (::a.b.c.d, deprecated by RFC 4291 2.5.5.1; never a packet's source); give the IPv4 form: 192.0.2.1"],
    ['::c000:200/120', 'give the IPv4 form: 192.0.2.0/24'],
    ['64:ff9b::/96', "'64:ff9b::/96' covers the NAT64 prefix 64:ff9b::/96: every IPv4 host reached through NAT64"],
    ['64:ff9b::c000:0/100', "'64:ff9b::c000:0/100' is 192.0.0.0/4 through NAT64, shorter than the minimum prefix /8"],
    ['::ffff:0:0/96', "'::ffff:0:0/96' (0.0.0.0/0) is shorter than the minimum prefix /8"],
    ['2001:db8::/048', "'2001:db8::/048' has a leading zero in its prefix length (ambiguous: octal to some tools); write /48"],
    ['192.0.2.0/024', "'192.0.2.0/024' has a leading zero in its prefix length (ambiguous: octal to some tools); write /24"],
    [`${'9'.repeat(5000)}`, `'${'9'.repeat(64)}…(5000 chars)' is not an IPv4 address`],
  ])('block_ip.sh refuses %j', async (text, message) => {
    const r = await lab.script('block_ip.sh', [text]);
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toContain(message);
    expect(await keys(lab, 'blocked_ips')).toEqual([]);
  });

  it('takes a NAT64 address as IPv6; refuses an IPv4-compatible one to allow_ip.sh but lets the removals name it', async () => {
    const nat64 = await lab.script('block_ip.sh', ['64:ff9b::198.51.100.7']);
    expect([nat64.exitCode, nat64.stdout]).toEqual([0, expect.stringContaining('64:ff9b::c633:6407')]);
    await lab.mustScript('unblock_ip.sh', ['64:ff9b::c633:6407']);
    await lab.mustScript('block_ip.sh', ['64:ff9b::c633:6407']);
    const dotted = await lab.script('unblock_ip.sh', ['64:ff9b::198.51.100.7']); // the same entry, named in the other form
    expect([dotted.exitCode, dotted.stdout]).toEqual([0, expect.stringContaining('64:ff9b::c633:6407')]);
    const allow = await lab.script('allow_ip.sh', ['::198.51.100.7']);
    expect([allow.exitCode, allow.stderr]).toEqual([2, expect.stringContaining('give the IPv4 form: 198.51.100.7')]);
    for (const s of ['unblock_ip.sh', 'disallow_ip.sh', 'options_disallow_ip.sh']) {
      const r = await lab.script(s, ['::198.51.100.7']);
      expect([s, r.exitCode, r.stderr]).toEqual([s, 1, expect.stringContaining('::c633:6407')]); // not there: nothing to remove, but no refusal
    }
  });

  it('block_ip.sh refuses an address of this host', async () => {
    const r = await lab.script('block_ip.sh', ['127.0.0.1']);
    expect(r.exitCode).toBe(2);
    const own = (await execa('ip', ['-4', '-o', 'addr', 'show'])).stdout.split('\n')
      .map((l) => l.split(/\s+/)[3]?.split('/')[0]).find((a) => a && !a.startsWith('127.'));
    if (own) {
      const r2 = await lab.script('block_ip.sh', [own]);
      expect(r2.exitCode).toBe(2);
      expect(r2.stderr).toContain(`covers this host's address ${own}`);
    }
  });

  it('block_ip.sh refuses a bad TTL and a bad source name', async () => {
    expect((await lab.script('block_ip.sh', ['203.0.113.1', '--ttl', '5 minutes'])).stderr).toContain("bad --ttl '5 minutes'");
    expect((await lab.script('block_ip.sh', ['203.0.113.1', '--source', 'a b'])).stderr).toContain("bad source name 'a b'");
  });

  it('scripts print a usage line and exit 2 without arguments', async () => {
    for (const s of ['block_ip.sh', 'unblock_ip.sh', 'allow_ip.sh', 'options_allow_ip.sh', 'block_ips_from_file.sh', 'load.sh', 'unload.sh']) {
      const r = await lab.script(s, []);
      expect([s, r.exitCode]).toEqual([s, 2]);
      expect(r.stderr).toMatch(/^usage: /m);
    }
  });

  it('every operator script answers --help with its usage line and exit 2, and does nothing else', async () => {
    const scripts = ['block_ip.sh', 'unblock_ip.sh', 'allow_ip.sh', 'disallow_ip.sh', 'options_allow_ip.sh', 'options_disallow_ip.sh', 'block_ips_from_file.sh', 'load.sh', 'unload.sh', 'stats.sh', 'cluster_sync_blocklist.sh'];
    const before = await keys(lab, 'allow_ips');
    for (const s of scripts) {
      const r = await lab.script(s, ['--help']);
      expect([s, r.exitCode, r.stderr.split('\n')[0]]).toEqual([s, 2, expect.stringMatching(new RegExp(`^usage: ${s} `))]);
      // The ones that take addresses say both families do.
      if (/_ip\.sh$|_ips_from_file\.sh$/.test(s)) expect([s, r.stderr]).toEqual([s, expect.stringContaining('IPv4 or IPv6')]);
    }
    expect(await keys(lab, 'allow_ips')).toEqual(before);
  });

  it('a missing pin folder is an environment error that says what to do', async () => {
    const r = await execa('bash', ['scripts/block_ip.sh', '203.0.113.1', '--pin-dir', '/sys/fs/bpf/vfp_no_such_dir'], { reject: false });
    expect(r.exitCode).toBe(3);
    expect(r.stderr).toContain('no vos-fastpath maps in /sys/fs/bpf/vfp_no_such_dir');
  });

  it('block_ips_from_file.sh loads every good line, reports each bad one by line number, and exits 1', async () => {
    const file = join(lab.tmp, 'feed.txt');
    writeFileSync(file, ['# nightly feed', '203.0.113.1', '', '203.0.113.2   # trailing comment', '  203.0.113.3', 'bogus', '198.18.0.0/15', '127.0.0.1', '192.0.2.9', '203.0.113.4\r'].join('\n'));
    const r = await lab.script('block_ips_from_file.sh', [file, '--ttl', '1h', '--source', 'nightly']);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toContain("line 6: 'bogus' is not an IPv4 address");
    expect(r.stderr).toContain("line 8: '127.0.0.1' is loopback");
    expect(r.stderr).toContain("line 9: '192.0.2.9' is covered by the allowlist");
    expect(r.stdout).toContain('loaded 5 entries, skipped 3 bad lines');
    expect((await keys(lab, 'blocked_ips')).map((k) => k.join('.')).sort()).toEqual(['203.0.113.1', '203.0.113.2', '203.0.113.3', '203.0.113.4']);
    expect(await keys(lab, 'blocked_prefixes')).toEqual([['15', '0', '0', '0', '198', '18', '0', '0']]);
    for (const ip of ['203.0.113.1', '203.0.113.2', '203.0.113.3', '203.0.113.4', '198.18.0.0/15']) await lab.mustScript('unblock_ip.sh', [ip]);
  });

  it('block_ips_from_file.sh reads standard input and exits 0 when every line is good', async () => {
    const r = await lab.script('block_ips_from_file.sh', ['-'], '203.0.113.7\n203.0.113.8\n');
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toContain('loaded 2 entries, skipped 0 bad lines');
    for (const ip of ['203.0.113.7', '203.0.113.8']) await lab.mustScript('unblock_ip.sh', [ip]);
  });

  it('block_ips_from_file.sh uses one bpftool process for all lines', async () => {
    const lines = Array.from({ length: 300 }, (_, i) => `203.0.${113 + Math.floor(i / 250)}.${(i % 250) + 1}`);
    const file = join(lab.tmp, 'many.txt');
    writeFileSync(file, lines.join('\n'));
    // Count bpftool executions with a PATH shim that logs each call.
    const shim = join(lab.tmp, 'shim');
    await execa('mkdir', ['-p', shim]);
    const real = (await execa('sh', ['-c', 'command -v bpftool'])).stdout;
    writeFileSync(join(shim, 'bpftool'), `#!/bin/sh\necho "$@" | cut -c1-20 >> ${shim}/calls\nexec ${real} "$@"\n`, { mode: 0o755 });
    const r = await execa('scripts/block_ips_from_file.sh', [file], { env: { ...lab.env(), PATH: `${shim}:${process.env.PATH}` }, reject: false });
    expect(r.exitCode).toBe(0);
    const calls = (await execa('cat', [join(shim, 'calls')])).stdout.split('\n');
    expect(calls.filter((c) => c.startsWith('batch'))).toHaveLength(1);
    expect(calls.length).toBeLessThan(10);
    expect(await keys(lab, 'blocked_ips')).toHaveLength(300);
  });

  it('a full map is an error with the numbers', async () => {
    const small = new Lab();
    try {
      await small.loadUnattached(['--block-capacity', '4']);
      const r = await small.script('block_ips_from_file.sh', ['-'], '203.0.113.1\n203.0.113.2\n203.0.113.3\n203.0.113.4\n203.0.113.5\n203.0.113.6\n');
      expect(r.exitCode).toBe(1);
      expect(r.stderr).toContain('blocked_ips is full: 4 of 4 entries in use');
      const one = await small.script('block_ip.sh', ['203.0.113.9']);
      expect(one.exitCode).toBe(1);
      expect(one.stderr).toContain('blocked_ips is full: 4 of 4 entries in use');
    } finally {
      await small.cleanup();
    }
  });

  it('stats.sh sums the counters over CPUs', async () => {
    const r = await lab.mustScript('stats.sh', []);
    expect(r.stdout).toMatch(/^reason\s+packets\s+bytes$/m);
    expect(r.stdout).toMatch(/^blocked_exact\s+\d+\s+\d+$/m);
  });

  it('stats.sh keeps its columns in line for the longest reason names (malformed_register_ipv6...)', async () => {
    const lines = (await lab.mustScript('stats.sh', [])).stdout.trimEnd().split('\n');
    expect(lines.map((l) => l.split(/ +/)[0])).toEqual(expect.arrayContaining(['reason', 'malformed_register_ipv6', 'shadow_would_drop_ipv6']));
    // Every line as long as the header, the packets column ending where its title does.
    expect(new Set(lines.map((l) => l.length)).size).toBe(1);
    const end = lines[0]!.indexOf('packets') + 'packets'.length;
    for (const l of lines.slice(1)) expect([l, l[end - 1]]).toEqual([l, expect.stringMatching(/\d/)]);
  });
});

describeKernel('attach under ip netns exec', () => {
  const lab = new Lab();
  afterAll(() => lab.cleanup());

  it('refuses to pin into the private bpffs of ip netns exec, naming nsenter --net=; attach through nsenter works', async () => {
    const v = await lab.veth();
    const hint = `nsenter --net=/run/netns/${v.ns} vosctl attach IFACE`;
    for (const cmd of [[join(ROOT, 'scripts/load.sh'), v.peer, '--mode', 'skb'], [join(ROOT, 'bin/vosctl'), 'attach', v.peer, '--mode', 'skb']]) {
      const r = await execa('ip', ['netns', 'exec', v.ns, ...cmd], { env: lab.env(), reject: false });
      expect([cmd[1], r.exitCode, r.stderr]).toEqual([cmd[1], 3, expect.stringContaining(`ip netns exec ${v.ns} runs this in a private mount namespace`)]);
      expect(r.stderr).toContain(hint);
    }
    expect(existsSync(lab.pinDir)).toBe(false); // nothing pinned on the host either
    const ok = await execa('nsenter', [`--net=/run/netns/${v.ns}`, join(ROOT, 'bin/vosctl'), 'attach', v.peer, '--mode', 'skb'], { env: lab.env(), reject: false });
    expect([ok.exitCode, ok.stderr]).toEqual([0, expect.anything()]);
    lab.defer(`xdp on ${v.peer}`, () => execa('nsenter', [`--net=/run/netns/${v.ns}`, join(ROOT, 'scripts/unload.sh'), v.peer], { env: lab.env(), reject: false }));
    expect(existsSync(join(lab.pinDir, 'blocked_ips6'))).toBe(true); // the pins outlive the command
  });
});

describe('shellcheck', () => {
  it('passes on every script', async () => {
    const r = await execa('sh', ['-c', 'shellcheck scripts/*.sh contrib/cron/*.sh contrib/crowdsec/vos-fastpath-bouncer .ci/run'], { reject: false });
    expect(r.stdout + r.stderr).toBe('');
    expect(r.exitCode).toBe(0);
  });
});

describe('an interrupted validator', () => {
  it('is named as such (what was being validated, the status), exit 1, not its half output as the error', async () => {
    const { mkdtempSync, chmodSync, rmSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const dir = mkdtempSync(join(tmpdir(), 'vfp-killed-awk-'));
    try {
      // An awk that prints a validated line and is then killed (as a subshell of block_ip.sh killed mid-way).
      writeFileSync(join(dir, 'awk'), '#!/bin/sh\ncat >/dev/null; echo "1 198.18.3.3 32 c6 12 03 03"; kill -9 $$\n');
      chmodSync(join(dir, 'awk'), 0o755);
      const script = `set -euo pipefail; source scripts/lib.sh; PATH=${dir}:$PATH; vfp_own_addresses() { :; }; vfp_allow_entries() { :; }; vfp_validate_one 198.18.3.3 1 || vfp_die 2 "$VFP_ERROR"`;
      const r = await execa('bash', ['-c', script], { reject: false });
      expect(r.exitCode).toBe(1);
      expect(r.stderr).toMatch(/validating '198\.18\.3\.3' was interrupted: the address validator .* ended with status 137/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
