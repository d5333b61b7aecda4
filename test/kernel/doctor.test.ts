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

  it('fails naming bpffs when it is not mounted (private mount namespace)', async () => {
    const r = await doctor(['unshare', '-m', '--propagation', 'private', 'sh', '-c', `umount /sys/fs/bpf && exec ${vosctl} doctor --json`]);
    expect(r.code).toBe(3);
    expect(failed(r.report)).toEqual(['bpffs']);
    expect(r.report.checks.find((c) => c.name === 'bpffs')!.fix).toMatch(/mount -t bpf bpf \/sys\/fs\/bpf/);
  });

  it('fails naming the state folder when it is not writable (read-only bind mount)', async () => {
    const script = `mount --bind "$0" "$0" && mount -o remount,ro,bind "$0" && exec ${vosctl} doctor --json`;
    const r = await doctor(['unshare', '-m', '--propagation', 'private', 'sh', '-c', script, stateDir]);
    expect(r.code).toBe(3);
    expect(failed(r.report)).toEqual(['state']);
    expect(r.report.checks.find((c) => c.name === 'state')!.detail).toMatch(new RegExp(`${stateDir} is not writable .*EROFS`));
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
