/**
 * What libxdp's dispatcher costs vos-fastpath: median ns per `bpftool prog
 * run` repetition of the blocklist drop and the INVITE pass, for the program
 * run alone (loaded as a plain XDP program) and through the dispatcher
 * (`bpftool prog run` on the dispatcher program of a veth that vfp-xdp
 * attached it to, which calls our program as its first component), same
 * maps, same frames, same run, alternating.
 *
 * The dispatcher needs freplace programs (BPF_PROG_TYPE_EXT); on a kernel
 * that refuses them it says so and measures nothing.
 *
 * Run as root: npm run bench:xdp   (ENTRIES=... ROUNDS=... REPEAT=... to vary)
 */
import { execa } from 'execa';
import { renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Lab, ROOT } from '../test/helpers/lab.js';
import { sipRequest, udpFrame } from '../test/helpers/packets.js';

const ENTRIES = Number(process.env.ENTRIES ?? 100_000);
const ROUNDS = Number(process.env.ROUNDS ?? 15);
const REPEAT = Number(process.env.REPEAT ?? 200_000);
const BLOCKED = '203.0.113.9';
const CLEAN = '198.51.100.7';
const XDP_TOOL = join(ROOT, 'build/vfp-xdp');

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function once(lab: Lab, progArgs: string[], file: string, expectVerdict: number): Promise<number> {
  const r = await execa('bpftool', ['prog', 'run', ...progArgs, 'data_in', file, 'repeat', String(REPEAT)]);
  const m = /Return value: (\d+), duration(?: \(average\))?: (\d+)ns/.exec(r.stdout + r.stderr)!;
  if (Number(m[1]) !== expectVerdict) throw new Error(`verdict ${m[1]}, expected ${expectVerdict} for ${progArgs.join(' ')}`);
  return Number(m[2]);
}

async function main(): Promise<void> {
  const probe = (await execa(XDP_TOOL, ['probe'])).stdout;
  console.log('\nlibxdp dispatcher cost (blocklist drop, INVITE pass): alone vs through the dispatcher');
  if (!probe.includes('dispatcher yes')) {
    console.log('not measured: this kernel refuses freplace programs (BPF_PROG_TYPE_EXT), so libxdp runs no dispatcher here and vos-fastpath attaches alone');
    return;
  }
  const lab = new Lab();
  try {
    await lab.loadUnattached(['--block-capacity', String(2 ** Math.ceil(Math.log2(ENTRIES + 1)))]);
    const lines = [BLOCKED];
    for (let i = 0; lines.length < ENTRIES; i++) {
      const a = 11 * 2 ** 24 + 1 + i;
      lines.push(`${a >>> 24}.${(a >>> 16) & 255}.${(a >>> 8) & 255}.${a & 255}`);
    }
    const load = await lab.script('block_ips_from_file.sh', ['-'], lines.join('\n') + '\n');
    if (load.exitCode !== 0) throw new Error(load.stderr);
    // The plain XDP program keeps its own pin; attaching pins the dispatcher's component as prog.
    renameSync(`${lab.pinDir}/prog`, `${lab.pinDir}/prog_alone`);
    const v = await lab.veth();
    await lab.mustScript('load.sh', [v.host, '--mode', 'native']);
    lab.defer(`xdp on ${v.host}`, () => lab.script('unload.sh', [v.host]));
    const listed = JSON.parse((await execa(XDP_TOOL, ['list', v.host])).stdout) as Array<{ dispatcher_id: number }>;
    const dispatcher = String(listed[0]!.dispatcher_id);

    const paths: Array<[string, Buffer, number]> = [
      ['blocklist drop', udpFrame(sipRequest({ method: 'INVITE' }), { src: BLOCKED }), 1],
      ['valid INVITE pass', udpFrame(sipRequest({ method: 'INVITE' }), { src: CLEAN }), 2],
    ];
    console.log(`median of ${ROUNDS} x bpftool prog run repeat ${REPEAT}, ${ENTRIES} entries in blocked_ips`);
    console.log(`${'path'.padEnd(20)} ${'alone'.padStart(7)} ${'dispatcher'.padStart(11)}  cost`);
    for (const [name, frame, verdict] of paths) {
      const file = join(lab.tmp, 'frame.bin');
      writeFileSync(file, frame);
      const alone: number[] = [];
      const through: number[] = [];
      for (let i = 0; i < ROUNDS; i++) {
        alone.push(await once(lab, ['pinned', `${lab.pinDir}/prog_alone`], file, verdict));
        through.push(await once(lab, ['id', dispatcher], file, verdict));
      }
      const a = median(alone);
      const d = median(through);
      console.log(`${name.padEnd(20)} ${String(a).padStart(7)} ${String(d).padStart(11)}  +${d - a} ns (${(d / a).toFixed(2)}x)`);
    }
  } finally {
    await lab.cleanup();
  }
}

await main();
