/**
 * The real loop on a lab: an attacker namespace (a flooder address and a
 * scanner address) and a customer namespace, each on a veth link to the host
 * side, XDP attached to both host ends, Kamailio listening on the host-side
 * addresses with contrib/kamailio/kamailio.cfg, and `vosctl consume` reading
 * the queue Kamailio publishes to. Used by the end-to-end test and bench/loop.
 */
import { execa, type ResultPromise } from 'execa';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { readCounters } from '../../lib/maps/bpftool.js';
import type { StatName } from '../../lib/maps/layout.js';
import { AMQP_URL, Broker, ConsumerProcess } from './broker.js';
import { endForking, Lab, ROOT, type Veth } from './lab.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface TraceLine {
  at: number;
  text: string;
}

/** Seconds; the consumer's heartbeat in the loop (the broker drops a connection after two missed ones). */
export const LOOP_HEARTBEAT_S = 2;

export class LoopLab {
  readonly lab = new Lab();
  readonly broker = new Broker(this.lab);
  readonly queue = this.broker.name('loop');
  readonly stateDir = join(this.lab.tmp, 'state');
  attacker!: Veth;
  customer!: Veth;
  /** A second address in the attacker's namespace, for the scanner. */
  scannerIp!: string;
  consumer!: ConsumerProcess;
  /** Kamailio's log lines, stamped when they arrived here. */
  readonly kamailio: TraceLine[] = [];

  env(): Record<string, string> {
    return { VOS_PIN_DIR: this.lab.pinDir, VOS_STATE_DIR: this.stateDir, VOS_LOG_FORMAT: 'json' };
  }

  async vosctl(...args: string[]): Promise<{ code: number | undefined; out: string; err: string }> {
    const r = await execa(join(ROOT, 'bin/vosctl'), args, { env: this.env(), reject: false });
    return { code: r.exitCode, out: r.stdout, err: r.stderr };
  }

  async mustVosctl(...args: string[]): Promise<string> {
    const r = await this.vosctl(...args);
    if (r.code !== 0) throw new Error(`vosctl ${args.join(' ')}: ${r.err}`);
    return r.out;
  }

  /** Kamailio also listens on the host ends' IPv6 addresses. */
  private ipv6 = false;

  /** Namespaces, XDP on both host ends (stealth as given), consumer, Kamailio (ipv6: on the IPv6 addresses too). */
  async start(opts: { stealth: boolean; ipv6?: boolean }): Promise<void> {
    this.ipv6 = opts.ipv6 ?? false;
    this.attacker = await this.lab.veth();
    this.customer = await this.lab.veth();
    this.scannerIp = this.attacker.peerIp.replace(/\.2$/, '.3');
    await execa('ip', ['-n', this.attacker.ns, 'addr', 'add', `${this.scannerIp}/24`, 'dev', this.attacker.peer]);
    await this.attach(opts.stealth);
    for (const v of [this.attacker, this.customer]) this.lab.defer(`xdp on ${v.host}`, () => this.lab.script('unload.sh', [v.host]));
    // A 2 s heartbeat, so that the loop test's idle period outlasts every heartbeat in play (Kamailio's rabbitmq module asks for none).
    this.consumer = new ConsumerProcess(this.lab, { VOS_PIN_DIR: this.lab.pinDir, VOS_STATE_DIR: this.stateDir, VOS_AMQP_URL: `${AMQP_URL}/?heartbeat=${LOOP_HEARTBEAT_S}` }, ['--queue', this.queue, '--ttl', '10m']);
    await this.consumer.start();
    await this.startKamailio();
  }

  /** (Re)load XDP on both host ends; a reload keeps every entry. */
  async attach(stealth: boolean): Promise<void> {
    for (const v of [this.attacker, this.customer]) await this.mustVosctl('attach', v.host, '--mode', 'native', ...(stealth ? [] : ['--no-stealth']));
  }

  private async startKamailio(): Promise<void> {
    const runDir = join(this.lab.tmp, 'kamailio');
    const pidFile = join(this.lab.tmp, 'kamailio.pid');
    const args = [
      '-f', join(ROOT, 'contrib/kamailio/kamailio.cfg'),
      '-l', `udp:${this.attacker.hostIp}:5060`,
      '-l', `udp:${this.customer.hostIp}:5060`,
      ...(this.ipv6 ? ['-l', `udp:[${this.attacker.hostIp6}]:5060`, '-l', `udp:[${this.customer.hostIp6}]:5060`] : []),
      '-n', '2', '-DD', '-E', '-P', pidFile, '-Y', runDir,
      '-A', 'VOS_TRACE',
      '-A', `VOS_ROUTING_KEY="${this.queue}"`,
    ];
    await execa('mkdir', ['-p', runDir]);
    const proc = execa('kamailio', args, { reject: false, buffer: false, stdout: 'ignore' });
    // Kamailio forks its workers: end the main process by its id, then any worker it left, by id.
    this.lab.defer(`kamailio (${proc.pid})`, () => endForking(proc));
    let partial = '';
    proc.stderr?.on('data', (d: Buffer) => {
      const at = performance.now();
      const lines = (partial + d.toString()).split('\n');
      partial = lines.pop() ?? '';
      for (const text of lines) this.kamailio.push({ at, text });
    });
    // Ready once both addresses are bound.
    for (let i = 0; i < 100; i++) {
      const ss = (await execa('ss', ['-lun'])).stdout;
      const v6 = !this.ipv6 || (ss.includes(`[${this.attacker.hostIp6}]:5060`) && ss.includes(`[${this.customer.hostIp6}]:5060`));
      if (v6 && ss.includes(`${this.attacker.hostIp}:5060`) && ss.includes(`${this.customer.hostIp}:5060`)) return;
      if (proc.exitCode !== null) break;
      await sleep(100);
    }
    throw new Error(`kamailio did not start: ${this.kamailio.map((l) => l.text).slice(-10).join('\n')}`);
  }

  kamailioLog(): string {
    return this.kamailio.map((l) => l.text).join('\n');
  }

  /** Requests Kamailio saw from an address (its VOS_TRACE lines), optionally only after a moment. */
  seenFrom(ip: string, after = 0): number {
    const re = new RegExp(`vos-trace: \\S+ from ${ip.replace(/\./g, '\\.')}:`);
    return this.kamailio.filter((l) => l.at > after && re.test(l.text)).length;
  }

  async waitForKamailio(re: RegExp, timeoutMs = 15_000): Promise<TraceLine> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const hit = this.kamailio.find((l) => re.test(l.text));
      if (hit) return hit;
      if (Date.now() > deadline) throw new Error(`kamailio never logged ${re}; last lines:\n${this.kamailio.slice(-8).map((l) => l.text).join('\n')}`);
      await sleep(2);
    }
  }

  /** One counter summed over CPUs (one bpftool call: a few ms). */
  async counter(name: StatName): Promise<number> {
    return (await readCounters(join(this.lab.pinDir, 'stats')))[name]?.packets ?? 0;
  }

  /** A sipp process inside a namespace, owned by the lab. */
  sipp(ns: string, args: string[]): ResultPromise {
    return this.lab.spawn('ip', ['netns', 'exec', ns, 'sipp', ...args, '-nostdin'], { stdout: 'pipe', stderr: 'pipe', cwd: this.lab.tmp });
  }

  /** svmap from the scanner address; the addresses it reports as SIP devices. */
  async svmap(target: string): Promise<{ found: string[]; output: string }> {
    const r = await execa('ip', ['netns', 'exec', this.attacker.ns, 'svmap', '-b', this.scannerIp, '-p', '5060', '-t', '0.05', target], { reject: false, timeout: 60_000, cwd: this.lab.tmp });
    const output = `${r.stdout}\n${r.stderr}`;
    const found = [...output.matchAll(/\|\s*(\d+\.\d+\.\d+\.\d+):5060\s*\|/g)].map((m) => m[1]!);
    return { found, output };
  }

  async stop(): Promise<void> {
    try {
      await this.consumer?.stop();
    } finally {
      await this.lab.cleanup();
    }
  }
}

/** sipp scenarios of scripts/lab whose dialogs follow the route set, as real phones do: uac.xml (ACK and BYE), uas.xml (copies Record-Route). */
export function labScenario(name: 'uac' | 'uas'): string {
  const path = join(ROOT, `scripts/lab/${name}.xml`);
  if (!existsSync(path)) throw new Error(`missing ${path}`);
  return path;
}

export function registerScenario(): string {
  const path = join(ROOT, 'scripts/lab/register.xml');
  if (!existsSync(path)) throw new Error(`missing ${path}`);
  return readFileSync(path, 'utf8') && path;
}
