/**
 * The package an operator installs: `npm pack` of this checkout, installed
 * with `npm install -g --prefix` into a temporary folder, then run from
 * outside the checkout: attach to a veth pair, block a source, real UDP from
 * the namespace dropped, stats, detach; shell completion; install-units.
 *
 * The install is what a production host can do: no compiler on PATH (gcc,
 * g++, cc, make removed), npm --offline (nothing fetched: the tarball carries
 * the bundle and better-sqlite3's prebuilt addon), and a prefix with a space
 * and non-ASCII (paths from file URLs must be decoded). Each command then
 * runs twice, the second time from V8's code cache.
 */
import { afterAll, beforeAll, expect, it } from '@jest/globals';
import { execa } from 'execa';
import dgram from 'node:dgram';
import { once } from 'node:events';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, statSync, symlinkSync } from 'node:fs';
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

  let nocc: string;

  /** The installed vosctl, run from the temp folder (not the checkout), with a PATH that has no compiler. */
  const vosctl = async (...args: string[]) => {
    const r = await execa(join(prefix, 'bin/vosctl'), args, {
      cwd: lab.tmp,
      env: { PATH: nocc, VOS_PIN_DIR: lab.pinDir, VOS_STATE_DIR: join(lab.tmp, 'state'), VOS_LOG_FORMAT: 'json' },
      reject: false,
    });
    return { code: r.exitCode, out: r.stdout, err: r.stderr };
  };

  beforeAll(async () => {
    lab = new Lab();
    prefix = join(lab.tmp, 'pré fix');
    // --ignore-scripts: the checkout is built already (npm test runs setup.sh); prepack would rebuild
    // dist/ under the other suites' feet.
    const packed = await execa('npm', ['pack', '--silent', '--ignore-scripts', '--pack-destination', lab.tmp], { cwd: ROOT });
    const tarball = join(lab.tmp, packed.stdout.trim().split('\n').pop()!);
    files = (await execa('tar', ['-tzf', tarball])).stdout.split('\n').map((f) => f.replace(/^package\//, ''));

    // A PATH like a production host's: every command of this one but the compilers and make.
    nocc = join(lab.tmp, 'nocc-bin');
    mkdirSync(nocc);
    for (const dir of ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin']) {
      for (const name of existsSync(dir) ? readdirSync(dir) : []) {
        if (/^(cc|c\+\+|make|gmake|cpp|ld(\..*)?|(.*-)?(gcc|g\+\+)(-.*)?|clang.*)$/.test(name) || existsSync(join(nocc, name))) continue;
        symlinkSync(join(dir, name), join(nocc, name));
      }
    }
    const which = await execa('sh', ['-c', 'command -v gcc g++ cc make'], { env: { PATH: nocc }, reject: false });
    expect(which.stdout).toBe('');

    const t0 = Date.now();
    await execa('npm', ['install', '-g', '--offline', '--prefix', prefix, '--no-audit', '--no-fund', tarball], { cwd: lab.tmp, env: { PATH: nocc } });
    console.log(`npm install -g --offline of the tarball: ${((Date.now() - t0) / 1000).toFixed(1)} s`);
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
    // Self-contained: the bundle holds every JavaScript dependency, build/ the SQLite addon; npm fetches nothing.
    const pkg = JSON.parse(readFileSync(join(pkgDir, 'package.json'), 'utf8')) as { dependencies?: Record<string, string> };
    expect(pkg.dependencies ?? {}).toEqual({});
    expect(existsSync(join(pkgDir, 'node_modules'))).toBe(false);
    expect(files).toContain(`build/better_sqlite3-node${process.versions.modules}-linux-${process.arch}.node`);
  });

  it('runs from the install, not the checkout: doctor finds its own helpers', async () => {
    const r = await vosctl('doctor', v.host, '--json');
    expect(r.code).toBe(0);
    const checks = (JSON.parse(r.out) as { checks: Array<{ name: string; detail: string }> }).checks;
    expect(checks.find((c) => c.name === 'files')!.detail).toBe(`XDP object and helpers in ${join(pkgDir, 'build')}`);
  });

  it('attaches, blocks a source (real UDP dropped), counts it in stats, and detaches', async () => {
    expect(await vosctl('attach', v.host, '--mode', 'native')).toMatchObject({ code: 0 });
    expect((await vosctl('list')).code).toBe(0);
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
    const r = await execa('bash', ['-c', script], { cwd: lab.tmp, env: { PATH: `${join(prefix, 'bin')}:${nocc}` } });
    expect(r.stdout.trim()).toBe('block');
  });

  it('install-units puts the units, the config example and completion in place, pointing at the installed vosctl', async () => {
    const root = join(lab.tmp, 'root');
    expect((await vosctl('install-units', '--root', root)).code).toBe(0);
    const attach = readFileSync(join(root, 'etc/systemd/system/vos-fastpath-attach@.service'), 'utf8');
    // The prefix holds a space: the command word is quoted for systemd.
    expect(attach).toContain(`ExecStart="${pkgDir}/bin/vosctl" attach %i`);
    expect(attach).not.toContain('/opt/vos-fastpath');
    // The cron, CrowdSec and fail2ban examples name this install too (a cron line quoted for sh).
    const cron = readFileSync(join(root, 'etc/vos-fastpath/examples/cron/vos-fastpath.cron'), 'utf8');
    expect(cron).toContain(`root '${pkgDir}/bin/vosctl' gc`);
    expect(cron).not.toContain('/opt/vos-fastpath');
    expect(readFileSync(join(root, 'etc/vos-fastpath/examples/fail2ban/action.d/vos-fastpath.conf'), 'utf8')).toContain(`${pkgDir}/bin/vosctl`);
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

  it('runs every command twice (the second run from the code cache) without a crash', async () => {
    const root = join(lab.tmp, 'root2');
    const runs: Array<[string[], number]> = [
      [['--log-format', 'text', 'status'], 0],
      [['--log-format', 'text', 'install-units', '--root', root, '--force'], 0],
      [['install-units', '--root', root, '--force'], 0],
      [['list'], 0],
      [['stats'], 0],
      [['doctor', '--json'], 0],
      [['completion'], 0],
      [['--version'], 0],
      [['gc'], 0],
      [['reconcile'], 0],
      [['block', '198.51.100.77'], 0],
      [['unblock', '198.51.100.77'], 0],
      [['allow', '198.51.100.78'], 0],
      [['disallow', '198.51.100.78'], 0],
      [['options-allow', '198.51.100.79'], 0],
      [['options-disallow', '198.51.100.79'], 0],
    ];
    expect(await vosctl('attach', v.host, '--mode', 'native')).toMatchObject({ code: 0 });
    const seen: string[] = [];
    for (const [args, code] of runs) {
      for (const round of [1, 2]) {
        const r = await vosctl(...args);
        seen.push(`${args.join(' ')} #${round}: ${r.code}${/unexpected error|ERR_VM/.test(r.err) ? ` ${r.err}` : ''}`);
        expect({ args, round, code: r.code, crash: /unexpected error|ERR_VM/.test(r.err) }).toEqual({ args, round, code, crash: false });
      }
    }
    const fed = await execa(join(prefix, 'bin/vosctl'), ['stdin'], { input: '', cwd: lab.tmp, env: { PATH: nocc, VOS_PIN_DIR: lab.pinDir, VOS_STATE_DIR: join(lab.tmp, 'state') }, reject: false });
    expect(fed.stderr).not.toMatch(/unexpected error|ERR_VM/);
    expect(await vosctl('detach', v.host)).toMatchObject({ code: 0 });
  });

  it('where the shipped SQLite addon does not fit (another Node ABI), postinstall, vosctl and doctor say what to run', async () => {
    const addon = join(pkgDir, `build/better_sqlite3-node${process.versions.modules}-linux-${process.arch}.node`);
    const aside = `${addon}.aside`;
    renameSync(addon, aside);
    try {
      const build = `npm install --prefix ${pkgDir} --no-save --no-package-lock better-sqlite3@`;
      const post = await execa('sh', [join(pkgDir, 'scripts/postinstall.sh')], { env: { PATH: nocc }, reject: false });
      expect(post.stderr).toContain(build);
      const list = await vosctl('list');
      expect(list.code).toBe(3);
      expect(list.err).toContain(`the SQLite addon for this Node (${process.version}, ABI ${process.versions.modules}, ${process.arch}) is not in ${join(pkgDir, 'build')}`);
      expect(list.err).toContain(build);
      const doc = JSON.parse((await vosctl('doctor', '--json')).out) as { checks: Array<{ name: string; status: string; detail: string }> };
      expect(doc.checks.find((c) => c.name === 'files')).toMatchObject({ status: 'fail', detail: expect.stringContaining(build) });
    } finally {
      renameSync(aside, addon);
    }
  });
});
