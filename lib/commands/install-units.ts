// node: builtins are imported statically: the bundle must hold no dynamic
// import() of a module esbuild leaves outside it (see lib/boot.ts).
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { CommandModule } from 'yargs';
import type { Args } from './common.js';

interface InstallUnitsArgs {
  root: string;
  reload: boolean;
  force: boolean;
}

export const installUnits: CommandModule<object, InstallUnitsArgs> = {
  command: 'install-units',
  describe: 'Install the systemd units, the consume.env example and shell completion, pointing at this installed vosctl',
  builder: (y) =>
    y
      .option('root', { type: 'string', default: '/', describe: "install below this folder instead of / (an image, a test); '' is refused, a relative one is resolved" })
      .option('force', { type: 'boolean', default: false, describe: 'overwrite files changed since install-units wrote them (admin edits)' })
      .option('reload', { type: 'boolean', default: true, describe: 'run systemctl daemon-reload afterwards (--no-reload: skip; skipped with --root)' }) as never,
  handler: async (argv) => {
    const a = argv as Args<InstallUnitsArgs>;
    const { execa } = await import('execa');
    const { ROOT } = await import('../paths.js');
    const { decide, EXAMPLES, installPlan, MANIFEST, parseManifest, sha256, targetRoot } = await import('../install/units.js');
    const { RuntimeError } = await import('../errors.js');
    const { root, note } = targetRoot(a.root, process.cwd());
    if (note) process.stderr.write(`vosctl: ${note}\n`);
    const contribDir = join(ROOT, 'contrib/systemd');
    const contrib = Object.fromEntries(readdirSync(contribDir).map((f) => [f, readFileSync(join(contribDir, f), 'utf8')]));
    const vosctl = join(ROOT, 'bin/vosctl');
    const script = async (shell: string) => (await execa(process.execPath, [vosctl, 'completion', '--shell', shell])).stdout + '\n';
    const examples = Object.fromEntries(EXAMPLES.filter((f) => existsSync(join(ROOT, 'contrib', f))).map((f) => [f, readFileSync(join(ROOT, 'contrib', f), 'utf8')]));
    const plan = installPlan(root, ROOT, contrib, { bash: await script('bash'), zsh: await script('zsh') }, examples);
    const manifestPath = join(root, MANIFEST);
    const recorded = existsSync(manifestPath) ? parseManifest(readFileSync(manifestPath, 'utf8')) : new Map<string, string>();
    const read = (p: string) => (existsSync(p) ? readFileSync(p, 'utf8') : undefined);
    const decisions = plan.map((f) => ({ f, what: decide(f, read(f.path), recorded.get(f.path), a.force) }));
    // Nothing is written while one file would be refused: an admin's edit is never half-replaced.
    const changed = decisions.filter((d) => d.what === 'changed').map((d) => d.f.path);
    if (changed.length) {
      throw new RuntimeError(
        `${changed.join(', ')} changed since install-units wrote ${changed.length > 1 ? 'them' : 'it'} (or ${changed.length > 1 ? 'were' : 'was'} not written by it); nothing was written. ` +
          'Keep local changes in a drop-in (systemctl edit <unit>), then run again with --force to install the package\'s version',
      );
    }
    for (const { f, what } of decisions) {
      if (what === 'keep') {
        const mode = statSync(f.path).mode & 0o777;
        process.stdout.write(`kept     ${f.path}\n`);
        if (mode & 0o077) process.stderr.write(`vosctl: warning: ${f.path} is mode ${mode.toString(8).padStart(4, '0')}: it holds the broker password, make it root-only: chmod 600 ${f.path}\n`);
        continue;
      }
      if (what === 'same') {
        chmodSync(f.path, f.mode);
        process.stdout.write(`same     ${f.path}\n`);
        continue;
      }
      try {
        mkdirSync(dirname(f.path), { recursive: true });
        writeFileSync(f.path, f.content, { mode: f.mode });
        chmodSync(f.path, f.mode);
      } catch (err) {
        throw new RuntimeError(`cannot write ${f.path}: ${(err as Error).message} (run as root, or give --root)`);
      }
      process.stdout.write(`wrote    ${f.path}\n`);
    }
    const manifest = plan.filter((f) => !f.keepExisting).map((f) => `${sha256(f.content)}  ${f.path}\n`).join('');
    writeFileSync(manifestPath, manifest, { mode: 0o644 });
    if (a.reload && root === '/') await execa('systemctl', ['daemon-reload'], { reject: false });
    process.stdout.write(
      `\nnext: put the broker URL and password in /etc/vos-fastpath/consume.env, then\n` +
        `  systemctl enable --now vos-fastpath-attach@eth0 vos-fastpath-consume vos-fastpath-gc.timer\n` +
        `feeds, CrowdSec, fail2ban: the examples in ${join(root, 'etc/vos-fastpath/examples')} name this install's paths\n` +
        `  (e.g. cp ${join(root, 'etc/vos-fastpath/examples/cron/vos-fastpath.cron')} /etc/cron.d/vos-fastpath after editing its feeds)\n`,
    );
  },
};
