/**
 * The package an operator installs: `npm pack` of this checkout, installed
 * with `npm install -g --prefix` into a temporary folder, then run from
 * outside the checkout: attach to a veth pair, block a source, real UDP from
 * the namespace dropped, stats, detach; shell completion; install-units.
 *
 * better-sqlite3 is a native module with no prebuilt download here: a real
 * install builds it from source (1 min 40 s on this machine). The test hands
 * prebuild-install the binary scripts/setup.sh already built from the same
 * source on this machine, as a local prebuild (its documented
 * npm_config_<pkg>_local_prebuilds), so the install takes seconds.
 */
import { afterAll, beforeAll, expect, it } from '@jest/globals';
import { execa } from 'execa';
import dgram from 'node:dgram';
import { once } from 'node:events';
import { copyFileSync, existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describeKernel } from '../helpers/env.js';
import { Lab, ROOT, sendUdpFrom, type Veth } from '../helpers/lab.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describeKernel('the npm package, installed with npm install -g', () => {
  let lab: Lab;
  let v: Veth;
  let prefix: string;
  let pkgDir: string;
  let files: string[];
  let received = 0;

  /** The installed vosctl, run from the temp folder (not the checkout) with PATH pointing at the prefix only for vosctl. */
  const vosctl = async (...args: string[]) => {
    const r = await execa(join(prefix, 'bin/vosctl'), args, {
      cwd: lab.tmp,
      env: { VOS_PIN_DIR: lab.pinDir, VOS_STATE_DIR: join(lab.tmp, 'state'), VOS_LOG_FORMAT: 'json' },
      reject: false,
    });
    return { code: r.exitCode, out: r.stdout, err: r.stderr };
  };

  beforeAll(async () => {
    lab = new Lab();
    prefix = join(lab.tmp, 'prefix');
    // --ignore-scripts: the checkout is built already (npm test runs setup.sh); prepack would rebuild
    // dist/ under the other suites' feet.
    const packed = await execa('npm', ['pack', '--silent', '--ignore-scripts', '--pack-destination', lab.tmp], { cwd: ROOT });
    const tarball = join(lab.tmp, packed.stdout.trim().split('\n').pop()!);
    files = (await execa('tar', ['-tzf', tarball])).stdout.split('\n').map((f) => f.replace(/^package\//, ''));

    const sqlite = JSON.parse(readFileSync(join(ROOT, 'node_modules/better-sqlite3/package.json'), 'utf8')) as { version: string };
    const prebuilds = join(lab.tmp, 'prebuilds');
    await execa('mkdir', ['-p', prebuilds]);
    const name = `better-sqlite3-v${sqlite.version}-node-v${process.versions.modules}-linux-${process.arch}.tar.gz`;
    await execa('tar', ['-czf', join(prebuilds, name), 'build/Release/better_sqlite3.node'], { cwd: join(ROOT, 'node_modules/better-sqlite3') });

    const t0 = Date.now();
    await execa('npm', ['install', '-g', '--prefix', prefix, '--prefer-offline', '--no-audit', '--no-fund', '--allow-scripts=vos-fastpath,better-sqlite3', tarball], {
      cwd: lab.tmp,
      env: { npm_config_better_sqlite3_local_prebuilds: prebuilds },
    });
    console.log(`npm install -g of the tarball: ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    pkgDir = join(prefix, 'lib/node_modules/vos-fastpath');

    v = await lab.veth();
    const sock = dgram.createSocket('udp4');
    sock.on('message', () => (received += 1));
    sock.bind(5060, v.hostIp);
    await once(sock, 'listening');
    lab.defer('udp socket', async () => sock.close());
    lab.defer(`xdp on ${v.host}`, () => execa(join(pkgDir, 'scripts/unload.sh'), [v.host], { env: { VOS_PIN_DIR: lab.pinDir }, reject: false }));
  }, 240_000);
  afterAll(() => lab.cleanup());

  it('ships what runs and none of the tests, benchmarks or build sources', () => {
    for (const f of ['bin/vosctl', 'dist/vosctl.cjs', 'build/vos_fastpath.bpf.o', 'build/vfp-maptool', 'build/vfp-xdp', 'scripts/load.sh', 'scripts/lib.sh', 'contrib/systemd/vos-fastpath-attach@.service']) {
      expect(files).toContain(f);
    }
    expect(files.filter((f) => /^(test|bench|lib)\/|\.ts$|\.bpf\.c$|^scripts\/(setup|demo|bundle)\.sh$|^scripts\/lab\//.test(f))).toEqual([]);
    expect(statSync(join(pkgDir, 'scripts/load.sh')).mode & 0o111).not.toBe(0);
    const pkg = JSON.parse(readFileSync(join(pkgDir, 'package.json'), 'utf8')) as { dependencies: Record<string, string> };
    expect(Object.keys(pkg.dependencies)).not.toContain('jest');
    expect(existsSync(join(pkgDir, 'node_modules/jest'))).toBe(false);
  });

  it('runs from the install, not the checkout: doctor finds its own helpers', async () => {
    const r = await vosctl('doctor', v.host, '--json');
    expect(r.code).toBe(0);
    const checks = (JSON.parse(r.out) as { checks: Array<{ name: string; detail: string }> }).checks;
    expect(checks.find((c) => c.name === 'files')!.detail).toBe(`XDP object and helpers in ${join(pkgDir, 'build')}`);
  });

  it('attaches, blocks a source (real UDP dropped), counts it in stats, and detaches', async () => {
    expect(await vosctl('attach', v.host, '--mode', 'native')).toMatchObject({ code: 0 });
    const send = async () => {
      const before = received;
      await sendUdpFrom(v.ns, v.hostIp, 5060, Array(5).fill('INVITE sip:x SIP/2.0\r\n\r\n'));
      await sleep(150);
      return received - before;
    };
    await send(); // prime ARP
    expect(await send()).toBe(5);
    expect((await vosctl('block', v.peerIp, '--reason', 'package test')).code).toBe(0);
    expect(await send()).toBe(0);
    const stats = JSON.parse((await vosctl('stats', '--json')).out) as Record<string, { packets: number }>;
    expect(stats.blocked_exact!.packets).toBe(5);
    expect((await vosctl('detach', v.host)).code).toBe(0);
    expect(await send()).toBe(5);
  });

  it('completes `vosctl bl` to `block` in bash, from the installed completion script', async () => {
    const script = 'source <(vosctl completion); COMP_WORDS=(vosctl bl); COMP_CWORD=1; _vosctl_yargs_completions; echo "${COMPREPLY[*]}"';
    const r = await execa('bash', ['-c', script], { cwd: lab.tmp, env: { PATH: `${join(prefix, 'bin')}:${process.env.PATH}` } });
    expect(r.stdout.trim()).toBe('block');
  });

  it('install-units puts the units, the config example and completion in place, pointing at the installed vosctl', async () => {
    const root = join(lab.tmp, 'root');
    expect((await vosctl('install-units', '--root', root)).code).toBe(0);
    const attach = readFileSync(join(root, 'etc/systemd/system/vos-fastpath-attach@.service'), 'utf8');
    expect(attach).toContain(`ExecStart=${pkgDir}/bin/vosctl attach %i`);
    expect(attach).not.toContain('/opt/vos-fastpath');
    expect(statSync(join(root, 'etc/vos-fastpath/consume.env')).mode & 0o777).toBe(0o600);
    expect(readFileSync(join(root, 'usr/share/bash-completion/completions/vosctl'), 'utf8')).toContain('_vosctl_yargs_completions');
    expect(readFileSync(join(root, 'usr/share/zsh/vendor-completions/_vosctl'), 'utf8')).toContain('#compdef vosctl');
    // systemd accepts them as installed (it checks that ExecStart's vosctl exists).
    const unitDir = join(root, 'etc/systemd/system');
    copyFileSync(join(unitDir, 'vos-fastpath-attach@.service'), join(unitDir, 'vos-fastpath-attach@eth0.service'));
    const units = ['vos-fastpath-attach@eth0.service', 'vos-fastpath-consume.service', 'vos-fastpath-gc.service', 'vos-fastpath-gc.timer'].map((u) => join(unitDir, u));
    const r = await execa('systemd-analyze', ['verify', '--man=no', ...units], { reject: false, env: { SYSTEMD_LOG_LEVEL: 'warning' } });
    expect({ code: r.exitCode, out: `${r.stdout}${r.stderr}` }).toEqual({ code: 0, out: '' });
  });
});
