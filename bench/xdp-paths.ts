/**
 * Per-path cost of the XDP program, in median ns per `bpftool prog run`
 * repetition, with 1,000,000 blocklist entries loaded, printed beside two
 * references measured in the same run: a program that only returns XDP_PASS,
 * and xdp-filter (xdp-tools) dropping the same packet; and two floors: a
 * program that only looks the source up in the same blocked_ips, and one that
 * only reads a REGISTER's payload 8 bytes at a time.
 *
 * BASELINE_REF=<git ref> also builds the program as it was at that ref and
 * times it on the same frames and the same maps, in the same run, printed
 * beside ours as "before" (its verdict shown where it differs).
 *
 * Run as root: npm run bench:xdp   (ENTRIES=... ROUNDS=... REPEAT=... BASELINE_REF=... to vary)
 */
import { execa } from 'execa';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Lab, ROOT } from '../test/helpers/lab.js';
import { IPPROTO_DSTOPTS, ipv6Bytes, registerOfSize, sipRequest, udp6Frame, udpFrame } from '../test/helpers/packets.js';

const ENTRIES = Number(process.env.ENTRIES ?? 1_000_000);
const ROUNDS = Number(process.env.ROUNDS ?? 15);
const REPEAT = Number(process.env.REPEAT ?? 200_000);
const BASELINE_REF = process.env.BASELINE_REF;
const BLOCKED = '203.0.113.9';
const ALLOWED = '192.0.2.50';
const CLEAN = '198.51.100.7';
const BLOCKED6 = '2001:db8:bad::9';
const CLEAN6 = '2001:db8:5::7';

const dstopts = (n: number) => Array.from({ length: n }, () => ({ type: IPPROTO_DSTOPTS }));
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** Median ns of the program on frame; expectVerdict null: any verdict, returned in `verdict`. */
async function timeVerdict(lab: Lab, progArgs: string[], frame: Buffer, expectVerdict: number | null, rounds = ROUNDS): Promise<{ ns: number; verdict: number }> {
  const file = join(lab.tmp, 'bench.bin');
  writeFileSync(file, frame);
  const samples: number[] = [];
  let verdict = -1;
  for (let i = 0; i < rounds; i++) {
    const r = await execa('bpftool', ['prog', 'run', ...progArgs, 'data_in', file, 'repeat', String(REPEAT)]);
    const m = /Return value: (\d+), duration(?: \(average\))?: (\d+)ns/.exec(r.stdout + r.stderr)!;
    verdict = Number(m[1]);
    if (expectVerdict !== null && verdict !== expectVerdict) throw new Error(`verdict ${m[1]}, expected ${expectVerdict} for ${progArgs.join(' ')}`);
    samples.push(Number(m[2]));
  }
  return { ns: median(samples), verdict };
}

async function timeProg(lab: Lab, progArgs: string[], frame: Buffer, expectVerdict: number): Promise<number> {
  return (await timeVerdict(lab, progArgs, frame, expectVerdict)).ns;
}

/** The program as it was at ref, built into the lab and loaded on the lab's maps (its own stats map: counters may differ). */
async function loadBaseline(lab: Lab, ref: string): Promise<string> {
  const dir = join(lab.tmp, 'baseline');
  mkdirSync(dir);
  for (const f of ['vos_fastpath.bpf.c', 'vfp_maps.h', 'vfp_blocked_ips.bpf.h']) {
    const r = await execa('git', ['-C', ROOT, 'show', `${ref}:xdp/${f}`], { reject: false, stripFinalNewline: false });
    if (r.exitCode === 0) writeFileSync(join(dir, f), r.stdout);
  }
  const obj = join(dir, 'baseline.bpf.o');
  await execa('clang', ['-target', 'bpf', '-O2', '-g', '-Wall', `-I/usr/include/${(await execa('uname', ['-m'])).stdout}-linux-gnu`, '-c', join(dir, 'vos_fastpath.bpf.c'), '-o', obj]);
  const pin = `${lab.pinDir}/baseline`;
  // The IPv6 maps too where the ref has them, so its IPv6 paths meet the same 1,000,000 entries.
  const source = ['vos_fastpath.bpf.c', 'vfp_blocked_ips.bpf.h'].filter((f) => existsSync(join(dir, f))).map((f) => readFileSync(join(dir, f), 'utf8')).join('\n');
  const maps = ['blocked_ips', 'blocked_prefixes', 'allow_ips', 'options_allow', 'blocked_ips6', 'blocked_prefixes6', 'allow_ips6', 'options_allow6', 'config', 'xsks_map']
    .filter((m) => new RegExp(`\\b${m}\\b SEC\\("\\.maps"\\)`).test(source));
  await execa('bpftool', ['prog', 'load', obj, pin, ...maps.flatMap((m) => ['map', 'name', m, 'pinned', `${lab.pinDir}/${m}`])]);
  return pin;
}

function addresses(n: number): string {
  // n distinct public-looking addresses from 11.0.0.1 up, plus the one we time.
  const out: string[] = [BLOCKED];
  for (let i = 0; out.length < n; i++) {
    const a = 11 * 2 ** 24 + 1 + i;
    out.push(`${a >>> 24}.${(a >>> 16) & 255}.${(a >>> 8) & 255}.${a & 255}`);
  }
  return out.join('\n') + '\n';
}

/**
 * n distinct IPv6 entries (2a00::1 upwards, plus the one we time) as
 * vfp-maptool records for blocked_ips6: 16-byte key, struct vfp_block that
 * never expires. Written raw: the awk validator's cost is bench:load's to
 * measure, not this one's.
 */
async function fillBlocked6(lab: Lab, n: number): Promise<void> {
  const rec = 32;
  const buf = Buffer.alloc(n * rec);
  buf.set(ipv6Bytes(BLOCKED6), 0);
  for (let i = 1; i < n; i++) {
    buf.writeUInt16BE(0x2a00, i * rec);
    buf.writeUInt32BE(i, i * rec + 12);
  }
  for (let i = 0; i < n; i++) buf.writeUInt16LE(1, i * rec + 16 + 12); // source manual
  await execa(join(ROOT, 'build/vfp-maptool'), ['update', `${lab.pinDir}/blocked_ips6`], { input: buf });
}

async function main(): Promise<void> {
  const lab = new Lab();
  let xdpFilterIface: string | null = null;
  // libxdp makes /sys/fs/bpf/xdp for its dispatcher; leave bpffs as we found it.
  const libxdpDir = '/sys/fs/bpf/xdp';
  const hadLibxdpDir = existsSync(libxdpDir);
  try {
    const capacity = 2 ** Math.ceil(Math.log2(ENTRIES + 1));
    await lab.loadUnattached(['--block-capacity', String(capacity), '--block-capacity6', String(capacity)]);
    const t0 = Date.now();
    const load = await lab.script('block_ips_from_file.sh', ['-'], addresses(ENTRIES));
    if (load.exitCode !== 0) throw new Error(load.stderr);
    console.log(`loaded ${ENTRIES} entries with block_ips_from_file.sh in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    await lab.mustScript('allow_ip.sh', [ALLOWED]);
    const t6 = Date.now();
    await fillBlocked6(lab, ENTRIES);
    console.log(`loaded ${ENTRIES} IPv6 entries with vfp-maptool in ${((Date.now() - t6) / 1000).toFixed(1)} s`);

    const ours = ['pinned', `${lab.pinDir}/prog`];
    const emptyPin = `${lab.pinDir}/xdp_pass`;
    await execa('bpftool', ['prog', 'load', join(ROOT, 'build/xdp_pass.bpf.o'), emptyPin]);
    const blockedFrame = udpFrame(sipRequest({ method: 'INVITE' }), { src: BLOCKED });

    // xdp-filter needs an interface: a veth pair in a lab namespace, generic mode.
    const v = await lab.veth();
    await execa('xdp-filter', ['load', '--mode', 'skb', '--features', 'ipv4,udp', v.host]);
    xdpFilterIface = v.host;
    await execa('xdp-filter', ['ip', '--mode', 'src', BLOCKED]);
    const link = JSON.parse((await execa('ip', ['-j', 'link', 'show', 'dev', v.host])).stdout)[0];
    const filterProg = String(link.xdp.prog?.id ?? link.xdp.attached[0].prog.id);

    // Floors: one lookup in the same pinned blocked_ips and nothing else; one SWAR read of the whole payload.
    const lookupPin = `${lab.pinDir}/lookup_floor`;
    await execa('bpftool', ['prog', 'load', join(ROOT, 'build/lookup_floor.bpf.o'), lookupPin, 'map', 'name', 'blocked_ips', 'pinned', `${lab.pinDir}/blocked_ips`]);
    const scanPin = `${lab.pinDir}/scan_floor`;
    await execa('bpftool', ['prog', 'load', join(ROOT, 'build/scan_floor.bpf.o'), scanPin]);
    const registerFrame = udpFrame(registerOfSize(500), { src: CLEAN });

    const empty = await timeProg(lab, ['pinned', emptyPin], blockedFrame, 2);
    const filter = await timeProg(lab, ['id', filterProg], blockedFrame, 1);
    const lookupFloor = await timeProg(lab, ['pinned', lookupPin], blockedFrame, 1);
    const scanFloor = await timeProg(lab, ['pinned', scanPin], registerFrame, 2);
    const paths: Array<[string, Buffer, number, (ns: number) => string]> = [
      ['blocklist drop', blockedFrame, 1, (ns) => `${(ns / empty).toFixed(2)}x empty (goal <= 1.6x), ${(ns / filter).toFixed(2)}x xdp-filter (goal < 0.35x)`],
      ['allowlist pass', udpFrame(sipRequest({ method: 'OPTIONS' }), { src: ALLOWED }), 2, (ns) => `${(ns / empty).toFixed(2)}x empty`],
      ['OPTIONS drop', udpFrame(sipRequest({ method: 'OPTIONS' }), { src: CLEAN }), 1, (ns) => `${(ns / empty).toFixed(2)}x empty`],
      ['CRLF-prefixed OPTIONS drop', udpFrame(`\r\n${sipRequest({ method: 'OPTIONS' })}`, { src: CLEAN }), 1, (ns) => `${(ns / empty).toFixed(2)}x empty`],
      ['valid INVITE pass', udpFrame(sipRequest({ method: 'INVITE' }), { src: CLEAN }), 2, (ns) => `${(ns / empty).toFixed(2)}x empty`],
      ['valid 500-byte REGISTER pass', registerFrame, 2, (ns) => `${(ns / empty).toFixed(2)}x empty (goal <= 4x); the read alone: ${(scanFloor / empty).toFixed(2)}x`],
      // IPv6 beside IPv4, same run: each compared with its IPv4 twin (the drop's goal: within 1.3x).
      ['IPv6 blocklist drop', udp6Frame(sipRequest({ method: 'INVITE' }), { src: BLOCKED6 }), 1, (ns) => `${(ns / empty).toFixed(2)}x empty, ${(ns / v4.get('blocklist drop')!).toFixed(2)}x IPv4 drop (goal <= 1.3x)`],
      ['IPv6 OPTIONS drop', udp6Frame(sipRequest({ method: 'OPTIONS' }), { src: CLEAN6 }), 1, (ns) => `${(ns / empty).toFixed(2)}x empty, ${(ns / v4.get('OPTIONS drop')!).toFixed(2)}x IPv4`],
      ['IPv6 valid INVITE pass', udp6Frame(sipRequest({ method: 'INVITE' }), { src: CLEAN6 }), 2, (ns) => `${(ns / empty).toFixed(2)}x empty, ${(ns / v4.get('valid INVITE pass')!).toFixed(2)}x IPv4`],
      ['IPv6 valid 500-byte REGISTER', udp6Frame(registerOfSize(500), { src: CLEAN6 }), 2, (ns) => `${(ns / empty).toFixed(2)}x empty, ${(ns / v4.get('valid 500-byte REGISTER pass')!).toFixed(2)}x IPv4`],
      // Extension headers: the walk's own cost, against the same datagram without them.
      ['IPv6 INVITE, 2 dest-options', udp6Frame(sipRequest({ method: 'INVITE' }), { src: CLEAN6, ext: dstopts(2) }), 2, (ns) => `${(ns / v4.get('IPv6 valid INVITE pass')!).toFixed(2)}x without them`],
      ['IPv6 OPTIONS, 8 dest-options', udp6Frame(sipRequest({ method: 'OPTIONS' }), { src: CLEAN6, ext: dstopts(8) }), 1, (ns) => `${(ns / v4.get('IPv6 OPTIONS drop')!).toFixed(2)}x without them`],
      ['IPv6 OPTIONS, 300 dest-options', udp6Frame(sipRequest({ method: 'OPTIONS' }), { src: CLEAN6, ext: dstopts(300) }), 1, (ns) => `${(ns / v4.get('IPv6 OPTIONS drop')!).toFixed(2)}x without them`],
    ];
    const v4 = new Map<string, number>();
    console.log(`\nmedian of ${ROUNDS} x bpftool prog run repeat ${REPEAT}, ${ENTRIES} entries in blocked_ips and ${ENTRIES} in blocked_ips6`);
    console.log(`${'path'.padEnd(30)} ${'ns/pkt'.padStart(7)}  compared with`);
    console.log(`${'reference: XDP_PASS only'.padEnd(30)} ${String(empty).padStart(7)}`);
    console.log(`${'reference: xdp-filter drop'.padEnd(30)} ${String(filter).padStart(7)}`);
    console.log(`${'floor: one blocked_ips lookup'.padEnd(30)} ${String(lookupFloor).padStart(7)}  ${(lookupFloor / empty).toFixed(2)}x empty: no blocklist drop can cost less`);
    console.log(`${'floor: SWAR read of a REGISTER'.padEnd(30)} ${String(scanFloor).padStart(7)}  ${(scanFloor / empty).toFixed(2)}x empty: reading 500 bytes, judging nothing`);
    const baseline = BASELINE_REF ? ['pinned', await loadBaseline(lab, BASELINE_REF)] : null;
    if (baseline) console.log(`before: the program at ${BASELINE_REF}, on the same frames and maps, rounds alternating with ours`);
    for (const [name, frame, verdict, compare] of paths) {
      let ns: number;
      let before = '';
      if (baseline) {
        // Alternate the two programs round by round, so drift on a shared machine hits both alike.
        const ours_: number[] = [];
        const theirs: number[] = [];
        let bv = -1;
        for (let i = 0; i < ROUNDS; i++) {
          ours_.push((await timeVerdict(lab, ours, frame, verdict, 1)).ns);
          const b = await timeVerdict(lab, baseline, frame, null, 1);
          theirs.push(b.ns);
          bv = b.verdict;
        }
        ns = median(ours_);
        before = `  before ${median(theirs)} ns${bv === verdict ? '' : ` (verdict ${bv === 2 ? 'PASS' : bv})`}`;
      } else {
        ns = await timeProg(lab, ours, frame, verdict);
      }
      v4.set(name, ns);
      console.log(`${name.padEnd(30)} ${String(ns).padStart(7)}  ${compare(ns)}${before}`);
    }
  } finally {
    if (xdpFilterIface) await execa('xdp-filter', ['unload', xdpFilterIface], { reject: false });
    if (!hadLibxdpDir && existsSync(libxdpDir)) await execa('rmdir', [libxdpDir], { reject: false });
    await execa('rm', ['-rf', '/sys/fs/bpf/xdp-filter'], { reject: false });
    await lab.cleanup();
  }
}

await main();
