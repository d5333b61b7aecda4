/**
 * Each failure names its real cause: a read-only state folder (EROFS, not
 * Node's ENOENT), a helper without exec permission, a bad --priority as
 * typed, and a detach where nothing was attached.
 */
import { afterAll, beforeAll, expect, it } from '@jest/globals';
import { execa } from 'execa';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { describeKernel } from '../helpers/env.js';
import { Lab, ROOT, type Veth } from '../helpers/lab.js';

describeKernel('failures name their cause', () => {
  let lab: Lab;
  let v: Veth;
  const vosctl = join(ROOT, 'bin/vosctl');
  const run = async (args: string[], env: Record<string, string> = {}) => {
    const r = await execa(vosctl, args, { env: { ...lab.env(), VOS_LOG_FORMAT: 'json', ...env }, reject: false });
    return { code: r.exitCode, out: r.stdout, err: r.stderr };
  };

  beforeAll(async () => {
    lab = new Lab();
    v = await lab.veth();
    await lab.loadUnattached();
  }, 60_000);
  afterAll(() => lab.cleanup());

  it('a read-only state folder is reported as read-only (EROFS)', async () => {
    const ro = join(lab.tmp, 'ro');
    mkdirSync(ro);
    const script = `mount -t tmpfs -o ro,size=64k tmpfs "$0" && exec ${vosctl} block 198.51.100.5 --state-dir "$0/state"`;
    const r = await execa('unshare', ['-m', '--propagation', 'private', 'sh', '-c', script, ro], { env: lab.env(), reject: false });
    expect(r.exitCode).not.toBe(0);
    expect(r.stderr).toContain(`cannot create the state folder ${ro}/state (at ${ro}/state): the file system is read-only (EROFS)`);
  });

  it('a helper without exec permission is named with the fix', async () => {
    const tool = join(lab.tmp, 'vfp-maptool');
    await execa('install', ['-m', '0644', join(ROOT, 'build/vfp-maptool'), tool]);
    const r = await run(['list'], { VOS_MAPTOOL: tool });
    expect(r.code).toBe(3);
    expect(r.err).toBe(`vosctl: ${tool} is not executable by this user (EACCES): chmod 755 ${tool}, or reinstall the package`);
  });

  it.each(['abc', '', '0', '1000', '1.5'])('--priority %j is refused as typed (exit 2)', async (p) => {
    const r = await run(['attach', v.host, '--priority', p]);
    expect(r.code).toBe(2);
    expect(r.err).toContain(`bad --priority '${p}': a whole number from 1 to 999`);
  });

  it('detach where nothing was attached says so and logs no "detached"', async () => {
    const r = await run(['detach', v.host]);
    expect(r.code).toBe(0);
    expect(r.out).toContain(`vos-fastpath was not attached to ${v.host}`);
    expect(r.err).toContain('"message":"nothing attached"');
    expect(r.err).not.toContain('"message":"detached"');
  });

  it('attach with a full state folder reports no success: the program is attached, the blocklist NOT restored', async () => {
    const full = join(lab.tmp, 'full');
    mkdirSync(full);
    const script = `mount -t tmpfs -o size=64k tmpfs "$0" && (head -c 1M /dev/zero > "$0/fill" || true) && exec ${vosctl} attach ${v.host} --state-dir "$0/state"`;
    const r = await execa('unshare', ['-m', '--propagation', 'private', 'sh', '-c', script, full], { env: { ...lab.env(), VOS_LOG_FORMAT: 'json' }, reject: false });
    lab.defer(`xdp on ${v.host}`, () => execa(join(ROOT, 'scripts/unload.sh'), [v.host], { env: lab.env(), reject: false }));
    expect(r.exitCode).toBe(1);
    expect(r.stdout).not.toMatch(/^restored /m);
    expect(r.stderr).toContain(`the program is attached to ${v.host} and enforcing what the pinned maps hold, but the blocklist was NOT restored from ${full}/state`);
    expect(r.stderr).toMatch(/ENOSPC|full/);
  });
});
