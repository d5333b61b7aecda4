/**
 * vosctl against a lab with a veth attached: the pin folder and state folder
 * of the lab, JSON logs; never throws on a non-zero exit.
 */
import { expect } from '@jest/globals';
import { execa } from 'execa';
import { join } from 'node:path';
import type { ListedEntry } from '../../lib/blocklist.js';
import { Lab, ROOT, type Veth } from './lab.js';

export interface VosctlLab {
  lab: Lab;
  stateDir: string;
  v: Veth;
  vosctl: (...args: string[]) => Promise<{ code: number | undefined; out: string; err: string }>;
  list: (...args: string[]) => Promise<ListedEntry[]>;
  ips: (...args: string[]) => Promise<string[]>;
}

/** A lab with a veth pair, vosctl attached (native mode) to its host end; cleanup detaches. */
export async function attachedLab(): Promise<VosctlLab> {
  const lab = new Lab();
  const stateDir = join(lab.tmp, 'state');
  const vosctl = async (...args: string[]) => {
    const r = await execa(join(ROOT, 'bin/vosctl'), [...args], { env: { VOS_PIN_DIR: lab.pinDir, VOS_STATE_DIR: stateDir, VOS_LOG_FORMAT: 'json' }, reject: false });
    return { code: r.exitCode, out: r.stdout, err: r.stderr };
  };
  const list = async (...args: string[]) => JSON.parse((await vosctl('list', '--json', ...args)).out) as ListedEntry[];
  const v = await lab.veth();
  expect(await vosctl('attach', v.host, '--mode', 'native')).toMatchObject({ code: 0 });
  lab.defer(`xdp on ${v.host}`, () => lab.script('unload.sh', [v.host]));
  return { lab, stateDir, v, vosctl, list, ips: async (...args) => (await list(...args)).map((e) => e.ip) };
}
