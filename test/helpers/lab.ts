/**
 * Everything a kernel test creates goes through a Lab: pin folders, network
 * namespaces, veth pairs and processes. Each gets a name unique to this run,
 * and cleanup() removes them in reverse order, also after a failed test.
 */
import { execa, type Options, type ResultPromise } from 'execa';
import { existsSync, mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

/** The checkout: the nearest folder above this file with scripts/load.sh (works from dist/ too). */
function findRoot(from: string): string {
  for (let dir = from; dir !== dirname(dir); dir = dirname(dir)) if (existsSync(join(dir, 'scripts/load.sh'))) return dir;
  throw new Error(`no vos-fastpath checkout above ${from}`);
}
export const ROOT = findRoot(import.meta.dirname);
export const SCRIPTS = join(ROOT, 'scripts');

let counter = 0;

export interface Veth {
  ns: string;
  host: string;
  peer: string;
  hostIp: string;
  peerIp: string;
  /** The same pair's IPv6 addresses, in 2001:db8::/32 (RFC 3849), a /64 per pair. */
  hostIp6: string;
  peerIp6: string;
}

export interface RunResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

export interface ProgRun {
  verdict: number;
  durationNs: number;
}

export const XDP_DROP = 1;
export const XDP_PASS = 2;

export type Counters = Record<string, { packets: number; bytes: number }>;

/** Packets each counter gained from before to after; counters that did not move are left out. */
export function countersDelta(before: Counters, after: Counters): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(after)) {
    const d = v.packets - (before[k]?.packets ?? 0);
    if (d) out[k] = d;
  }
  return out;
}

export class Lab {
  readonly id: string;
  readonly pinDir: string;
  readonly tmp: string;
  private readonly undo: Array<{ what: string; run: () => Promise<unknown> }> = [];

  constructor() {
    counter += 1;
    this.id = `${process.pid.toString(36)}${counter.toString(36)}`;
    this.pinDir = `/sys/fs/bpf/vfp_test_${this.id}`;
    this.tmp = mkdtempSync(join(tmpdir(), `vfp-${this.id}-`));
    this.defer(`pin folder ${this.pinDir}`, async () => rmSync(this.pinDir, { recursive: true, force: true }));
    this.defer(`temp folder ${this.tmp}`, async () => rmSync(this.tmp, { recursive: true, force: true }));
  }

  defer(what: string, run: () => Promise<unknown>): void {
    this.undo.push({ what, run });
  }

  async cleanup(): Promise<void> {
    const failures: string[] = [];
    while (this.undo.length) {
      const step = this.undo.pop()!;
      try {
        await step.run();
      } catch (err) {
        failures.push(`${step.what}: ${(err as Error).message}`);
      }
    }
    if (failures.length) throw new Error(`cleanup left things behind:\n${failures.join('\n')}`);
  }

  /** The pin folder and a state folder of this lab's own (the scripts write the state too). */
  env(extra: Record<string, string> = {}): Record<string, string> {
    return { VOS_PIN_DIR: this.pinDir, VOS_STATE_DIR: join(this.tmp, 'state'), ...extra };
  }

  /** Run scripts/NAME with this lab's pin folder; never throws on a non-zero exit. */
  async script(name: string, args: string[] = [], input?: string): Promise<RunResult> {
    const r = await execa(join(SCRIPTS, name), args, { env: this.env(), reject: false, input });
    return { exitCode: r.exitCode ?? -1, stdout: r.stdout, stderr: r.stderr };
  }

  async mustScript(name: string, args: string[] = [], input?: string): Promise<RunResult> {
    const r = await this.script(name, args, input);
    if (r.exitCode !== 0) throw new Error(`${name} ${args.join(' ')} exited ${r.exitCode}: ${r.stderr}`);
    return r;
  }

  /** Load and pin program and maps without attaching them anywhere. */
  async loadUnattached(args: string[] = []): Promise<void> {
    await this.mustScript('load.sh', ['--no-attach', ...args]);
  }

  /** Run the pinned program once (or `repeat` times) on a crafted frame. */
  async run(frame: Buffer, repeat = 1): Promise<ProgRun> {
    const file = join(this.tmp, 'frame.bin');
    writeFileSync(file, frame);
    const r = await execa('bpftool', ['prog', 'run', 'pinned', `${this.pinDir}/prog`, 'data_in', file, 'repeat', String(repeat)]);
    const m = /Return value: (\d+), duration(?: \(average\))?: (\d+)ns/.exec(r.stdout + r.stderr);
    if (!m) throw new Error(`unexpected bpftool prog run output: ${r.stdout} ${r.stderr}`);
    return { verdict: Number(m[1]), durationNs: Number(m[2]) };
  }

  async counters(): Promise<Counters> {
    const r = await this.mustScript('stats.sh', ['--json']);
    return JSON.parse(r.stdout) as Counters;
  }

  /** Verdicts of the pinned program on frames, run one by one, and the packets each counter gained meanwhile. */
  async verdictsOf(frames: Buffer[]): Promise<{ verdicts: number[]; counted: Record<string, number> }> {
    const before = await this.counters();
    const verdicts: number[] = [];
    for (const f of frames) verdicts.push((await this.run(f)).verdict);
    return { verdicts, counted: countersDelta(before, await this.counters()) };
  }

  /** verdictsOf one frame. */
  async verdictOf(frame: Buffer): Promise<{ verdict: number; counted: Record<string, number> }> {
    const { verdicts, counted } = await this.verdictsOf([frame]);
    return { verdict: verdicts[0]!, counted };
  }

  /** A veth pair with one end in a new namespace: the "remote" host of a lab. */
  async veth(): Promise<Veth> {
    counter += 1;
    const tag = `${process.pid.toString(36)}${counter.toString(36)}`;
    const subnet = `10.201.${((process.pid + counter) % 250) + 1}`;
    // Lab IPv6 stays inside 2001:db8:7000::/36, which no fixed prefix in the tests
    // touches: a pid-derived group elsewhere once fell inside a test's 2001:db8:1000::/36,
    // and block refused it for covering this host.
    const net6 = `2001:db8:${(0x7000 + (process.pid % 0x1000)).toString(16)}:${counter.toString(16)}`;
    const v: Veth = { ns: `vfp-${tag}`, host: `vfa${tag}`, peer: `vfb${tag}`, hostIp: `${subnet}.1`, peerIp: `${subnet}.2`, hostIp6: `${net6}::1`, peerIp6: `${net6}::2` };
    await execa('ip', ['netns', 'add', v.ns]);
    this.defer(`namespace ${v.ns}`, () => execa('ip', ['netns', 'del', v.ns]));
    await execa('ip', ['link', 'add', v.host, 'type', 'veth', 'peer', 'name', v.peer]);
    this.defer(`link ${v.host}`, () => execa('ip', ['link', 'del', v.host], { reject: false }));
    await execa('ip', ['link', 'set', v.peer, 'netns', v.ns]);
    await execa('ip', ['addr', 'add', `${v.hostIp}/24`, 'dev', v.host]);
    await execa('ip', ['link', 'set', v.host, 'up']);
    await execa('ip', ['-n', v.ns, 'addr', 'add', `${v.peerIp}/24`, 'dev', v.peer]);
    await execa('ip', ['-n', v.ns, 'link', 'set', v.peer, 'up']);
    await execa('ip', ['-n', v.ns, 'link', 'set', 'lo', 'up']);
    // nodad: usable at once, not after duplicate address detection's second or so.
    await execa('ip', ['-6', 'addr', 'add', `${v.hostIp6}/64`, 'dev', v.host, 'nodad']);
    await execa('ip', ['-n', v.ns, '-6', 'addr', 'add', `${v.peerIp6}/64`, 'dev', v.peer, 'nodad']);
    return v;
  }

  /** Start a process this lab owns; cleanup ends it by its pid. */
  spawn(cmd: string, args: string[], opts: Options = {}): ResultPromise {
    const child = execa(cmd, args, { reject: false, ...opts });
    this.defer(`process ${cmd} (${child.pid})`, async () => {
      if (child.exitCode === null && child.pid) child.kill('SIGKILL');
      await child;
    });
    return child;
  }
}

/** Send UDP datagrams from inside a namespace (a real socket, real packets). */
export async function sendUdpFrom(ns: string, host: string, port: number, payloads: string[], sourcePort = 0): Promise<void> {
  await execa('ip', ['netns', 'exec', ns, process.execPath, join(ROOT, 'scripts/lab/sip-send.mjs'), host, String(port), '--source-port', String(sourcePort)], {
    input: JSON.stringify(payloads),
  });
}

/**
 * End a process that forks workers (Kamailio): the main process by its id with
 * SIGTERM, up to 5 s for it to go, then any worker it left, by id, with SIGKILL.
 */
export async function endForking(proc: ResultPromise): Promise<void> {
  const workers = (await execa('pgrep', ['-P', String(proc.pid)], { reject: false })).stdout.split('\n').filter(Boolean).map(Number);
  if (proc.exitCode === null) proc.kill('SIGTERM');
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([proc, new Promise((r) => (timer = setTimeout(r, 5000)))]);
  clearTimeout(timer);
  for (const pid of workers) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* already gone */
    }
  }
  if (proc.exitCode === null) proc.kill('SIGKILL');
}
