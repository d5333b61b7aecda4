/**
 * vosctl end to end, as root, against real pinned maps in a private pin
 * folder and a private state folder.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { execa } from 'execa';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describeKernel } from '../helpers/env.js';
import { attachedLab, type VosctlLab } from '../helpers/vosctl.js';
import { Lab, ROOT, sendUdpFrom, type Veth } from '../helpers/lab.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));


describeKernel('vosctl', () => {
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

  it('block puts the entry in the map, which drops real packets; unblock lets them through', async () => {
    const dgram = await import('node:dgram');
    const sock = dgram.createSocket('udp4');
    let got = 0;
    sock.on('message', () => got++);
    await new Promise<void>((r) => sock.bind(5060, v.hostIp, r));
    try {
      await sendUdpFrom(v.ns, v.hostIp, 5060, ['INVITE sip:a@b SIP/2.0\r\n\r\n']);
      await sleep(150);
      const primed = got;
      expect(await vosctl('block', v.peerIp, '--reason', 'test')).toMatchObject({ code: 0, out: `blocked ${v.peerIp}` });
      await sendUdpFrom(v.ns, v.hostIp, 5060, Array(5).fill('INVITE sip:a@b SIP/2.0\r\n\r\n'));
      await sleep(150);
      expect(got).toBe(primed);
      expect(await vosctl('unblock', v.peerIp)).toMatchObject({ code: 0, out: `unblocked ${v.peerIp}` });
      await sendUdpFrom(v.ns, v.hostIp, 5060, Array(5).fill('INVITE sip:a@b SIP/2.0\r\n\r\n'));
      await sleep(150);
      expect(got).toBe(primed + 5);
    } finally {
      sock.close();
    }
  });

  it('logs each block as JSON on stderr with the fields operators grep for', async () => {
    const r = await vosctl('block', '203.0.113.40', '--ttl', '10m', '--source', 'ops', '--reason', 'scanner');
    const log = JSON.parse(r.err.trim().split('\n').pop()!);
    expect(log).toMatchObject({ level: 'info', action: 'block', ip: '203.0.113.40', source: 'ops', ttl_s: 600, reason: 'scanner' });
    await vosctl('unblock', '203.0.113.40');
  });

  it.each([
    ['not-an-ip', "'not-an-ip' is not an IPv4 address"],
    ['010.1.1.1', "'010.1.1.1' has a leading zero"],
    ['0.0.0.1', "'0.0.0.1' is in 0.0.0.0/8"],
    ['127.0.0.2', "'127.0.0.2' is loopback"],
    ['239.1.1.1', "'239.1.1.1' is multicast"],
    ['255.255.255.255', "'255.255.255.255' is the limited broadcast address"],
    ['20.0.0.0/7', "'20.0.0.0/7' is shorter than the minimum prefix /8"],
    ['203.0.113.0/23', "'203.0.113.0/23' has host bits set"],
  ])('block %s exits 2 and names the problem', async (text, message) => {
    const r = await vosctl('block', text);
    expect(r.code).toBe(2);
    expect(r.err).toContain(message);
  });

  it('refuses an allowlisted address and this host\'s own address, and still applies the good ones', async () => {
    expect(await vosctl('allow', '192.0.2.0/24')).toMatchObject({ code: 0 });
    const r = await vosctl('block', '192.0.2.7', v.hostIp, '203.0.113.41');
    expect(r.code).toBe(2);
    expect(r.err).toContain("'192.0.2.7' is covered by the allowlist entry 192.0.2.0/24");
    expect(r.err).toContain(`'${v.hostIp}' covers this host's address ${v.hostIp}`);
    expect(await ips()).toContain('203.0.113.41');
    await vosctl('unblock', '203.0.113.41');
    await vosctl('disallow', '192.0.2.0/24');
  });

  it('honours --min-prefix', async () => {
    const r = await vosctl('block', '203.0.113.0/24', '--min-prefix', '28');
    expect(r.code).toBe(2);
    expect(r.err).toContain('shorter than the minimum prefix /28');
  });

  it('list --json has ip, source, reason, added and expires', async () => {
    await vosctl('block', '203.0.113.50', '--ttl', '2h', '--reason', 'pike', '--source', 'kamailio');
    await vosctl('block', '198.51.100.0/24');
    const all = await list();
    const one = all.find((e) => e.ip === '203.0.113.50')!;
    expect(one).toMatchObject({ source: 'kamailio', reason: 'pike' });
    expect(Date.parse(one.expires!) - Date.now()).toBeGreaterThan(7190_000);
    expect(Date.parse(one.added)).toBeLessThanOrEqual(Date.now());
    expect(all.find((e) => e.ip === '198.51.100.0/24')).toMatchObject({ source: 'manual', expires: null });
    expect(await ips('--source', 'kamailio')).toEqual(['203.0.113.50']);
    await vosctl('unblock', '203.0.113.50', '198.51.100.0/24');
  });

  it('a repeat block extends the expiry and never shortens it', async () => {
    await vosctl('block', '203.0.113.51', '--ttl', '1h');
    const first = (await list()).find((e) => e.ip === '203.0.113.51')!.expires!;
    await vosctl('block', '203.0.113.51', '--ttl', '10m');
    expect((await list()).find((e) => e.ip === '203.0.113.51')!.expires).toBe(first);
    await vosctl('block', '203.0.113.51', '--ttl', '2h');
    expect(Date.parse((await list()).find((e) => e.ip === '203.0.113.51')!.expires!) - Date.parse(first)).toBeGreaterThan(3500_000);
    await vosctl('unblock', '203.0.113.51');
  });

  it('load-file reports bad lines by number, loads every good line, and exits non-zero', async () => {
    const file = join(lab.tmp, 'feed.txt');
    writeFileSync(file, '# feed\n11.0.0.1\nbogus\n11.0.0.2\n127.0.0.1\n11.0.1.0/24\n');
    const r = await vosctl('load-file', file, '--source', 'feedx');
    expect(r.code).toBe(2);
    expect(r.err).toContain("line 3: 'bogus' is not an IPv4 address");
    expect(r.err).toContain("line 5: '127.0.0.1' is loopback");
    expect((await ips('--source', 'feedx')).sort()).toEqual(['11.0.0.1', '11.0.0.2', '11.0.1.0/24']);
  });

  it('load-file --replace makes the file the whole set of that source and leaves other sources alone', async () => {
    await vosctl('block', '11.0.0.9'); // manual
    await vosctl('block', '11.0.0.1', '--source', 'other'); // already feedx: stays feedx
    const file = join(lab.tmp, 'feed2.txt');
    writeFileSync(file, '11.0.0.2\n11.0.0.3\n');
    const r = await vosctl('load-file', file, '--source', 'feedx', '--replace');
    expect(r.code).toBe(0);
    expect(r.out).toContain('1 new, 0 extended, 1 unchanged), 2 removed');
    expect((await ips('--source', 'feedx')).sort()).toEqual(['11.0.0.2', '11.0.0.3']);
    expect(await ips('--source', 'manual')).toContain('11.0.0.9');
    await vosctl('unblock', '11.0.0.2', '11.0.0.3', '11.0.0.9');
  });

  it('load-file takes a list of 200,000 addresses in one go, and --replace swaps a tenth of it', async () => {
    const big = new Lab();
    try {
      await big.loadUnattached(['--block-capacity', '262144']);
      const env = { VOS_PIN_DIR: big.pinDir, VOS_STATE_DIR: join(big.tmp, 'state'), VOS_LOG_FORMAT: 'json' };
      const addr = (i: number) => `12.${(i >> 16) & 255}.${(i >> 8) & 255}.${(i & 255) + 0}`;
      const lines = Array.from({ length: 200_000 }, (_, i) => addr(i + 1));
      writeFileSync(join(big.tmp, 'big.txt'), lines.join('\n') + '\n');
      const r = await execa(join(ROOT, 'bin/vosctl'), ['load-file', join(big.tmp, 'big.txt'), '--source', 'bigfeed'], { env, reject: false });
      expect(r.exitCode).toBe(0);
      expect(r.stdout).toContain('200000 entries (200000 new');
      const next = [...lines.slice(20_000), ...Array.from({ length: 20_000 }, (_, i) => addr(300_000 + i))];
      writeFileSync(join(big.tmp, 'next.txt'), next.join('\n') + '\n');
      const r2 = await execa(join(ROOT, 'bin/vosctl'), ['load-file', join(big.tmp, 'next.txt'), '--source', 'bigfeed', '--replace'], { env, reject: false });
      expect(r2.stdout).toContain('200000 entries (20000 new, 0 extended, 180000 unchanged), 20000 removed');
      const status = JSON.parse((await execa(join(ROOT, 'bin/vosctl'), ['status', '--json'], { env })).stdout);
      expect(status.maps.find((m: { name: string }) => m.name === 'blocked_ips').entries).toBe(200_000);
      expect(status.state_matches_maps).toBe(true);
    } finally {
      await big.cleanup();
    }
  });

  it('load-file --replace without --source is refused', async () => {
    const r = await vosctl('load-file', '-', '--replace');
    expect(r.code).toBe(2);
    expect(r.err).toContain('--replace needs --source NAME');
  });

  it('gc removes expired entries from map and state', async () => {
    await vosctl('block', '203.0.113.60', '--ttl', '1');
    await sleep(1200);
    expect(await ips()).not.toContain('203.0.113.60');
    const r = await vosctl('gc');
    expect(r.out).toContain('removed 1 expired entries');
    const dump = await execa('bpftool', ['map', 'lookup', 'pinned', `${lab.pinDir}/blocked_ips`, 'key', '203', '0', '113', '60'], { reject: false });
    expect(dump.exitCode).not.toBe(0);
  });

  it('status shows attachment, program, fill levels, and whether state and maps agree; reconcile fixes a difference made by hand', async () => {
    let s = JSON.parse((await vosctl('status', '--json')).out);
    expect(s.attached).toEqual([{ iface: v.host, mode: 'native', progId: s.program_id }]);
    expect(s.maps.find((m: { name: string }) => m.name === 'blocked_ips')).toMatchObject({ capacity: 262144 });
    expect(s.state_matches_maps).toBe(true);
    // The scripts write the state too: no divergence.
    await lab.mustScript('block_ip.sh', ['203.0.113.69', '--source', 'script']);
    expect(JSON.parse((await vosctl('status', '--json')).out)).toMatchObject({ state_matches_maps: true });
    await vosctl('unblock', '203.0.113.69');
    // A map changed by hand with bpftool is what reconcile is for.
    await execa('bpftool', ['map', 'update', 'pinned', `${lab.pinDir}/blocked_ips`, 'key', '203', '0', '113', '70', 'value', ...Array(12).fill('0'), '1', '0', '0', '0']);
    s = JSON.parse((await vosctl('status', '--json')).out);
    expect(s).toMatchObject({ state_matches_maps: false, divergence: { only_in_maps: 1 } });
    expect((await vosctl('status')).out).toContain('DIVERGES: 1 only in the maps');
    expect((await vosctl('reconcile')).code).toBe(0);
    s = JSON.parse((await vosctl('status', '--json')).out);
    expect(s.state_matches_maps).toBe(true);
    await vosctl('unblock', '203.0.113.70');
  });

  it('unblock finds a block that only the maps hold (made by block_ip.sh) and names the targets that were not blocked', async () => {
    await lab.mustScript('block_ip.sh', ['203.0.113.71']);
    expect(await ips()).toContain('203.0.113.71');
    const r = await vosctl('unblock', '203.0.113.71', '203.0.113.72', '198.51.100.64/26');
    expect(r).toMatchObject({ code: 0, out: 'unblocked 203.0.113.71\n203.0.113.72 was not blocked\n198.51.100.64/26 was not blocked' });
    expect(await ips()).not.toContain('203.0.113.71');
  });

  it('stats --json has every counter', async () => {
    const c = JSON.parse((await vosctl('stats', '--json')).out);
    expect(Object.keys(c)).toEqual(['passed', 'allowlisted', 'blocked_exact', 'blocked_prefix', 'options_dropped', 'malformed_register', 'redirected', 'not_ip', 'shadow_would_drop', 'tiny_fragment', ...['passed', 'allowlisted', 'blocked_exact', 'blocked_prefix', 'options_dropped', 'malformed_register', 'redirected', 'shadow_would_drop', 'tiny_fragment', 'unparsed_headers', 'unjudged'].map((r) => `${r}_ipv6`)]);
    expect(c.blocked_exact.packets).toBeGreaterThanOrEqual(5);
  });

  it('after a reboot (maps gone), attach restores every unexpired entry with its remaining lifetime', async () => {
    await vosctl('block', '203.0.113.80', '--ttl', '1h', '--source', 'kamailio', '--reason', 'pike');
    await vosctl('block', '203.0.113.81');
    await vosctl('block', '203.0.113.82', '--ttl', '1');
    await sleep(1100);
    const before = (await list()).find((e) => e.ip === '203.0.113.80')!;
    // A reboot: the program is detached and bpffs is empty.
    expect((await vosctl('detach', v.host, '--purge')).code).toBe(0);
    expect(await vosctl('list')).toMatchObject({ code: 3 });
    const r = await vosctl('attach', v.host);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/restored \d+ entries/);
    const after = await list();
    expect(after.map((e) => e.ip)).toEqual(expect.arrayContaining(['203.0.113.80', '203.0.113.81']));
    expect(after.map((e) => e.ip)).not.toContain('203.0.113.82');
    const restored = after.find((e) => e.ip === '203.0.113.80')!;
    expect(restored).toMatchObject({ source: 'kamailio', reason: 'pike' });
    expect(Math.abs(Date.parse(restored.expires!) - Date.parse(before.expires!))).toBeLessThanOrEqual(2000);
    expect(JSON.parse((await vosctl('status', '--json')).out).state_matches_maps).toBe(true);
  });

  it.each([
    ['blocked_ips', '--block-capacity', '11.1.0.1\n11.1.0.2\n11.1.0.3\n11.1.0.4\n11.1.0.5\n'],
    ['blocked_ips6', '--block-capacity6', '2a00:1::1\n2a00:1::2\n2a00:1::3\n2a00:1::4\n2a00:1::5\n'],
  ])('a full map (%s) is an error with the numbers and the flag that sizes it, and what fit is kept', async (map, flag, input) => {
    const small = new Lab();
    try {
      await small.loadUnattached([flag, '3']);
      const r = await execa(join(ROOT, 'bin/vosctl'), ['load-file', '-'], {
        input,
        env: { VOS_PIN_DIR: small.pinDir, VOS_STATE_DIR: join(small.tmp, 'state') },
        reject: false,
      });
      expect(r.exitCode).toBe(1);
      expect(r.stderr).toContain(`${map} is full: 3 of 3 entries in use; applied 3 of 5`);
      expect(r.stderr).toContain(`attach ${flag} N`);
      const listed = await execa(join(ROOT, 'bin/vosctl'), ['list', '--json'], { env: { VOS_PIN_DIR: small.pinDir, VOS_STATE_DIR: join(small.tmp, 'state') } });
      expect(JSON.parse(listed.stdout)).toHaveLength(3);
    } finally {
      await small.cleanup();
    }
  });

  it('runs from a code cache per command; a damaged cache is ignored and written anew', async () => {
    const cacheDir = join(ROOT, 'dist/.v8cache');
    const statsCache = () => (existsSync(cacheDir) ? readdirSync(cacheDir).filter((f) => f.startsWith('stats-') && f.endsWith('.bin')) : []);
    const first = await vosctl('stats', '--json');
    expect(first.code).toBe(0);
    const [file] = statsCache();
    expect(file).toBeDefined();
    writeFileSync(join(cacheDir, file!), 'not a V8 code cache');
    const again = await vosctl('stats', '--json');
    expect(again.code).toBe(0);
    expect(Object.keys(JSON.parse(again.out) as object)).toEqual(Object.keys(JSON.parse(first.out) as object));
    expect(statsCache()).toEqual([file]);
    expect(readFileSync(join(cacheDir, file!)).length).toBeGreaterThan(1000);
  });

  it('without maps, commands say what to do and exit 3', async () => {
    const r = await execa(join(ROOT, 'bin/vosctl'), ['block', '203.0.113.90'], { env: { VOS_PIN_DIR: '/sys/fs/bpf/vfp_absent', VOS_STATE_DIR: join(lab.tmp, 'x') }, reject: false });
    expect(r.exitCode).toBe(3);
    expect(r.stderr).toContain('attach first');
  });
});

describe('vosctl usage', () => {
  const run = (...args: string[]) => execa(join(ROOT, 'bin/vosctl'), args, { reject: false });
  it('a bare vosctl prints help and exits 2', async () => {
    const r = await run();
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toContain('vosctl block <targets..>');
  });
  it('an unknown flag is an error', async () => {
    const r = await run('block', '203.0.113.1', '--tll', '5m');
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toContain('Unknown argument: tll');
  });
  it('a bad --ttl names the value', async () => {
    const r = await run('block', '203.0.113.1', '--ttl', '5 weeks');
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toContain("bad --ttl '5 weeks'");
  });
});
