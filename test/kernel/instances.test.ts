/**
 * Two vos-fastpath instances (two pin folders) and one interface: the second
 * never replaces the first, and a detach with one folder never removes the
 * other's program. "Ours" is the program using this folder's maps, not any
 * program named vfp_xdp.
 */
import { afterAll, beforeAll, expect, it } from '@jest/globals';
import { execa } from 'execa';
import { execFileSync } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { describeKernel } from '../helpers/env.js';
import { Lab, ROOT, type Veth } from '../helpers/lab.js';

describeKernel('another vos-fastpath instance on the same interface', () => {
  let lab: Lab;
  let v: Veth;
  let other: string;

  const vosctl = async (...args: string[]) => {
    const r = await execa(join(ROOT, 'bin/vosctl'), args, { env: { ...lab.env(), VOS_LOG_FORMAT: 'json' }, reject: false });
    return { code: r.exitCode, err: r.stderr };
  };
  const attachedIds = async () => {
    const r = await execa(join(ROOT, 'build/vfp-xdp'), ['list', v.host]);
    return (JSON.parse(r.stdout) as Array<{ programs: Array<{ id: number }> }>).flatMap((i) => i.programs.map((p) => p.id));
  };
  const pinnedId = async (dir: string) => (JSON.parse((await execa('bpftool', ['-j', 'prog', 'show', 'pinned', join(dir, 'prog')])).stdout) as { id: number }).id;

  beforeAll(async () => {
    lab = new Lab();
    other = `${lab.pinDir}_b`;
    lab.defer(`pin folder ${other}`, async () => rmSync(other, { recursive: true, force: true }));
    v = await lab.veth();
    lab.defer(`xdp on ${v.host}`, () => execa('ip', ['link', 'set', 'dev', v.host, 'xdp', 'off'], { reject: false }));
  }, 60_000);
  afterAll(() => lab.cleanup());

  it('attach with another pin folder is refused naming the first one, and its program stays', async () => {
    expect((await vosctl('attach', v.host, '--mode', 'native')).code).toBe(0);
    const first = await pinnedId(lab.pinDir);
    const r = await vosctl('attach', v.host, '--mode', 'native', '--pin-dir', other);
    expect(r.code).toBe(3);
    expect(r.err).toContain(`another vos-fastpath instance (program ${first}, maps pinned in ${lab.pinDir})`);
    expect(await attachedIds()).toEqual([first]);
  });

  it('detach with another pin folder removes nothing and names the owner; its own folder detaches it', async () => {
    const first = await pinnedId(lab.pinDir);
    const r = await vosctl('detach', v.host, '--pin-dir', other);
    expect(r.code).toBe(3);
    expect(r.err).toContain(`pinned in ${lab.pinDir}`);
    expect(await attachedIds()).toEqual([first]);
    expect((await vosctl('detach', v.host)).code).toBe(0);
    expect(await attachedIds()).toEqual([]);
  });

  it('re-attach with the same folder still replaces its own program (a reload)', async () => {
    expect((await vosctl('attach', v.host, '--mode', 'native')).code).toBe(0);
    const first = await pinnedId(lab.pinDir);
    expect((await vosctl('attach', v.host, '--mode', 'native')).code).toBe(0);
    const second = await pinnedId(lab.pinDir);
    expect(second).not.toBe(first);
    expect(await attachedIds()).toEqual([second]);
    expect((await vosctl('detach', v.host)).code).toBe(0);
  });

  // With libxdp's dispatcher the new program joins beside the leftover instead; this kernel runs one program.
  const alone = process.getuid?.() === 0 && existsSync(join(ROOT, 'build/vfp-xdp')) && execFileSync(join(ROOT, 'build/vfp-xdp'), ['probe']).toString().includes('dispatcher no');
  (alone ? it : it.skip)('a program whose pin folder was removed by hand is refused with the command that removes it', async () => {
    expect((await vosctl('attach', v.host, '--mode', 'native')).code).toBe(0);
    const left = await pinnedId(lab.pinDir);
    rmSync(lab.pinDir, { recursive: true, force: true });
    const r = await vosctl('attach', v.host, '--mode', 'native');
    expect(r.code).toBe(3);
    expect(r.err).toContain(`another vos-fastpath instance (program ${left}, maps not in ${lab.pinDir})`);
    expect(r.err).toContain(`if it is a leftover, detach it (ip link set dev ${v.host} xdpdrv off)`);
    await execa('ip', ['link', 'set', 'dev', v.host, 'xdpdrv', 'off']);
    expect(await attachedIds()).toEqual([]);
  });
});
