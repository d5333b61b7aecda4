/**
 * One consuming node for tests: its own pin folder with the program loaded
 * (unattached), its own state folder, and its `vosctl consume` child.
 */
import { execa } from 'execa';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import type { ListedEntry as Listed } from '../../lib/blocklist.js';
import { ConsumerProcess } from './broker.js';
import { ROOT, type Lab } from './lab.js';

/** One node: a pin folder with the program loaded (unattached), a state folder, a consumer. */
export class Node {
  readonly stateDir: string;
  readonly pinDir: string;
  consumer?: ConsumerProcess;

  constructor(
    readonly lab: Lab,
    readonly name: string,
  ) {
    this.stateDir = join(lab.tmp, `state-${name}`);
    this.pinDir = `${lab.pinDir}_${name}`;
    lab.defer(`pin folder ${this.pinDir}`, async () => rmSync(this.pinDir, { recursive: true, force: true }));
  }

  env(): Record<string, string> {
    return { VOS_PIN_DIR: this.pinDir, VOS_STATE_DIR: this.stateDir };
  }

  async load(): Promise<void> {
    const r = await execa(join(ROOT, 'scripts/load.sh'), ['--no-attach'], { env: this.env(), reject: false });
    if (r.exitCode !== 0) throw new Error(`load.sh: ${r.stderr}`);
  }

  async vosctl(...args: string[]): Promise<{ code: number | undefined; out: string; err: string }> {
    const r = await execa(join(ROOT, 'bin/vosctl'), args, { env: { ...this.env(), VOS_LOG_FORMAT: 'json' }, reject: false });
    return { code: r.exitCode, out: r.stdout, err: r.stderr };
  }

  async list(): Promise<Listed[]> {
    const r = await this.vosctl('list', '--json');
    if (r.code !== 0) throw new Error(`vosctl list: ${r.err}`);
    return JSON.parse(r.out) as Listed[];
  }

  async ips(): Promise<string[]> {
    return (await this.list()).map((e) => e.ip).sort();
  }

  async consume(args: string[], env: Record<string, string> = {}): Promise<ConsumerProcess> {
    this.consumer = new ConsumerProcess(this.lab, { ...this.env(), ...env }, args);
    await this.consumer.start();
    return this.consumer;
  }
}

