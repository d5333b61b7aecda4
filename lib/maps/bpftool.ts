/** Reads that only bpftool and ip answer: per-CPU counters, programs, attachments. */
import { execa } from 'execa';
import { EnvError, NEEDS_ROOT } from '../errors.js';
import { STAT_NAMES, type StatName } from './layout.js';

export type Counters = Record<StatName, { packets: number; bytes: number }>;

function u64(bytes: string[], at: number): number {
  let n = 0;
  for (let i = at + 7; i >= at; i--) n = n * 256 + parseInt(bytes[i]!, 16);
  return n;
}

async function bpftoolJson(args: string[]): Promise<unknown> {
  const r = await execa('bpftool', ['-j', ...args], { reject: false });
  if (r.exitCode !== 0) {
    const why = (r.stderr || r.stdout).trim();
    throw new EnvError(`bpftool ${args.join(' ')}: ${why}${/permission denied|operation not permitted/i.test(why) ? `; ${NEEDS_ROOT}` : ''}`);
  }
  return JSON.parse(r.stdout);
}

/** The per-reason counters, summed over CPUs: IPv4 (and not_ip) by reason, IPv6 as "<reason>_ipv6" (layout.ts STAT_NAMES). */
export async function readCounters(statsPin: string): Promise<Counters> {
  const dump = (await bpftoolJson(['map', 'dump', 'pinned', statsPin])) as Array<{ key: string[]; values: Array<{ value: string[] }> }>;
  const out = Object.fromEntries(STAT_NAMES.filter((n) => n !== null).map((n) => [n, { packets: 0, bytes: 0 }])) as Counters;
  for (const e of dump) {
    const name = STAT_NAMES[parseInt(e.key[0]!, 16)];
    // Slots a family never counts hold 0 (STAT_NAMES null).
    const c = name ? out[name] : undefined;
    if (!c) continue;
    for (const cpu of e.values) {
      c.packets += u64(cpu.value, 0);
      c.bytes += u64(cpu.value, 8);
    }
  }
  return out;
}

export async function pinnedProgId(progPin: string): Promise<number | null> {
  const r = await execa('bpftool', ['-j', 'prog', 'show', 'pinned', progPin], { reject: false });
  return r.exitCode === 0 ? (JSON.parse(r.stdout) as { id: number }).id : null;
}

export interface Attachment {
  iface: string;
  mode: 'native' | 'skb' | 'offload';
  progId: number;
}

/**
 * Interfaces (in this network namespace) running the given program, alone or
 * in libxdp's dispatcher (where `ip link` shows only the dispatcher), as
 * build/vfp-xdp list reports them.
 */
export async function attachments(progId: number): Promise<Attachment[]> {
  const { XDP_TOOL } = await import('../paths.js');
  const listed = JSON.parse((await execa(XDP_TOOL, ['list'])).stdout) as Array<{ iface: string; mode: Attachment['mode']; libxdp: boolean; programs: Array<{ id: number }> }>;
  return listed.filter((l) => l.programs.some((p) => p.id === progId)).map((l) => ({ iface: l.iface, mode: l.mode, progId }));
}
