/**
 * vosctl doctor on the real host: ready here, and not ready, naming the
 * problem, with bpffs unmounted (a private mount namespace), with the state
 * folder read-only (a read-only bind mount there), and as a user without root.
 */
import { afterAll, beforeAll, expect, it } from '@jest/globals';
import { execa } from 'execa';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { describeKernel } from '../helpers/env.js';
import { Lab, ROOT, type Veth } from '../helpers/lab.js';

interface Report {
  ok: boolean;
  checks: Array<{ name: string; status: string; detail: string; fix?: string }>;
}

describeKernel('vosctl doctor', () => {
  let lab: Lab;
  let v: Veth;
  let stateDir: string;
  const vosctl = join(ROOT, 'bin/vosctl');
  const env = () => ({ VOS_PIN_DIR: lab.pinDir, VOS_STATE_DIR: stateDir, VOS_LOG_FORMAT: 'json' });
  /** Run `cmd...` (ending in vosctl doctor) and parse its --json report. */
  const doctor = async (cmd: string[]) => {
    const r = await execa(cmd[0]!, cmd.slice(1), { env: env(), reject: false });
    return { code: r.exitCode, report: JSON.parse(r.stdout) as Report, stderr: r.stderr };
  };
  const failed = (r: Report) => r.checks.filter((c) => c.status === 'fail').map((c) => c.name);

  beforeAll(async () => {
    lab = new Lab();
    v = await lab.veth();
    stateDir = join(lab.tmp, 'state');
    mkdirSync(stateDir);
  });
  afterAll(() => lab.cleanup());

  it('passes on this host, with the veth driver named as native-capable', async () => {
    const r = await doctor([vosctl, 'doctor', v.host, '--json']);
    expect(failed(r.report)).toEqual([]);
    expect(r.code).toBe(0);
    expect(r.report.checks.find((c) => c.name === 'driver')).toMatchObject({ status: 'ok', detail: expect.stringMatching(/driver veth, native XDP supported/) });
    const text = await execa(vosctl, ['doctor', v.host], { env: env() });
    expect(text.stdout).toMatch(/ready: an attach would work here/);
  });

  it('warns that attach mounts bpffs when /sys/fs/bpf has none (private mount namespace), as load.sh does', async () => {
    const r = await doctor(['unshare', '-m', '--propagation', 'private', 'sh', '-c', `umount /sys/fs/bpf && exec ${vosctl} doctor --json`]);
    expect(failed(r.report)).toEqual([]);
    expect(r.report.checks.find((c) => c.name === 'bpffs')).toMatchObject({ status: 'warn', detail: expect.stringMatching(/vosctl attach \(load.sh\) mounts it/), fix: expect.stringMatching(/mount -t bpf bpf \/sys\/fs\/bpf/) });
  });

  it('fails naming bpffs for a pin folder on no bpffs, which attach cannot pin in', async () => {
    const r = await doctor([vosctl, 'doctor', '--json', '--pin-dir', join(lab.tmp, 'pins')]);
    expect(r.code).toBe(3);
    expect(failed(r.report)).toEqual(['bpffs']);
  });

  it('fails naming the state folder on a full file system (tmpfs filled), where a 0-byte write still succeeds', async () => {
    const full = join(lab.tmp, 'full');
    mkdirSync(full);
    const script = `mount -t tmpfs -o size=64k tmpfs "$0" && (head -c 1M /dev/zero > "$0/fill" || true) && exec ${vosctl} doctor --json --state-dir "$0"`;
    const r = await doctor(['unshare', '-m', '--propagation', 'private', 'sh', '-c', script, full]);
    expect(r.code).toBe(3);
    expect(failed(r.report)).toEqual(['state']);
    expect(r.report.checks.find((c) => c.name === 'state')!.detail).toMatch(/the file system is full, ENOSPC/);
  });

  it('judges the interface for the attach mode: a bridge fails native and passes --mode skb', async () => {
    const br = `vfpbr${lab.id}`.slice(0, 15);
    await execa('ip', ['link', 'add', br, 'type', 'bridge']);
    lab.defer(`link ${br}`, () => execa('ip', ['link', 'del', br], { reject: false }));
    const native = await doctor([vosctl, 'doctor', br, '--json']);
    expect(native.code).toBe(3);
    expect(native.report.checks.find((c) => c.name === 'driver')).toMatchObject({ status: 'fail', fix: expect.stringMatching(/--mode skb/) });
    const skb = await doctor([vosctl, 'doctor', br, '--json', '--mode', 'skb']);
    expect(failed(skb.report)).toEqual([]);
    expect(skb.code).toBe(0);
  });

  it('without an interface, says which checks were not done', async () => {
    const r = await doctor([vosctl, 'doctor', '--json']);
    expect((r.report as Report & { unchecked: string[] }).unchecked).toEqual(['driver', 'xdp']);
    const text = await execa(vosctl, ['doctor'], { env: env() });
    expect(text.stdout).toMatch(/ready as far as checked; not checked: driver, xdp/);
  });

  it('fails naming a helper that is not executable, beside a missing one', async () => {
    const tool = join(lab.tmp, 'vfp-xdp-noexec');
    await execa('install', ['-m', '0644', join(ROOT, 'build/vfp-xdp'), tool]);
    const r = await execa(vosctl, ['doctor', '--json'], { env: { ...env(), VOS_XDP_TOOL: tool, VOS_MAPTOOL: join(lab.tmp, 'no-maptool') }, reject: false });
    expect(r.exitCode).toBe(3);
    const files = (JSON.parse(r.stdout) as Report).checks.find((c) => c.name === 'files')!;
    expect(files.status).toBe('fail');
    expect(files.detail).toContain(`${tool}: not executable`);
    expect(files.detail).toContain(`${join(lab.tmp, 'no-maptool')}: missing`);
    expect(files.detail).toContain(`${join(lab.tmp, 'map_count.bpf.o')}: missing`);
  });

  it('fails naming the state folder when it is not writable (read-only bind mount)', async () => {
    const script = `mount --bind "$0" "$0" && mount -o remount,ro,bind "$0" && exec ${vosctl} doctor --json`;
    const r = await doctor(['unshare', '-m', '--propagation', 'private', 'sh', '-c', script, stateDir]);
    expect(r.code).toBe(3);
    expect(failed(r.report)).toEqual(['state']);
    expect(r.report.checks.find((c) => c.name === 'state')!.detail).toMatch(new RegExp(`${stateDir} cannot be written .*read-only, EROFS`));
  });

  it('fails naming the privileges as a user without root', async () => {
    const r = await doctor(['setpriv', '--reuid=nobody', '--regid=nogroup', '--clear-groups', vosctl, 'doctor', '--json']);
    expect(r.code).toBe(3);
    expect(failed(r.report)).toContain('privileges');
    expect(r.report.checks.find((c) => c.name === 'privileges')!.detail).toMatch(/not root; holds neither CAP_BPF nor CAP_NET_ADMIN/);
  });

  it('checks the broker when a URL is configured, and names refused credentials', async () => {
    const ok = await execa(vosctl, ['doctor', '--json'], { env: { ...env(), VOS_AMQP_URL: 'amqp://guest:guest@127.0.0.1:5672' }, reject: false });
    expect((JSON.parse(ok.stdout) as Report).checks.find((c) => c.name === 'broker')).toMatchObject({ status: 'ok' });
    const bad = await execa(vosctl, ['doctor', '--json'], { env: { ...env(), VOS_AMQP_URL: `amqp://guest:wrong-${lab.id}@127.0.0.1:5672` }, reject: false });
    expect(bad.exitCode).toBe(3);
    expect((JSON.parse(bad.stdout) as Report).checks.find((c) => c.name === 'broker')).toMatchObject({ status: 'fail', detail: expect.stringContaining('amqp://guest:***@127.0.0.1:5672: ACCESS_REFUSED') });
  });
});
