import type { CommandModule } from 'yargs';
import type { Args } from './common.js';

interface InstallUnitsArgs {
  root: string;
  reload: boolean;
}

export const installUnits: CommandModule<object, InstallUnitsArgs> = {
  command: 'install-units',
  describe: 'Install the systemd units, the consume.env example and shell completion, pointing at this installed vosctl',
  builder: (y) =>
    y
      .option('root', { type: 'string', default: '/', describe: 'install below this folder instead of / (an image, a test)' })
      .option('reload', { type: 'boolean', default: true, describe: 'run systemctl daemon-reload afterwards (--no-reload: skip; skipped with --root)' }) as never,
  handler: async (argv) => {
    const a = argv as Args<InstallUnitsArgs>;
    const { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } = await import('node:fs');
    const { dirname, join, resolve } = await import('node:path');
    const { execa } = await import('execa');
    const { ROOT } = await import('../paths.js');
    const { installPlan } = await import('../install/units.js');
    const { RuntimeError } = await import('../errors.js');
    const contribDir = join(ROOT, 'contrib/systemd');
    const contrib = Object.fromEntries(readdirSync(contribDir).map((f) => [f, readFileSync(join(contribDir, f), 'utf8')]));
    const vosctl = join(ROOT, 'bin/vosctl');
    const script = async (shell: string) => (await execa(process.execPath, [vosctl, 'completion'], { env: { SHELL: shell } })).stdout + '\n';
    const plan = installPlan(resolve(a.root), ROOT, contrib, { bash: await script('/bin/bash'), zsh: await script('/bin/zsh') });
    for (const f of plan) {
      if (f.keepExisting && existsSync(f.path)) {
        process.stdout.write(`kept     ${f.path}\n`);
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
    if (a.reload && resolve(a.root) === '/') await execa('systemctl', ['daemon-reload'], { reject: false });
    process.stdout.write(
      `\nnext: put the broker URL and password in /etc/vos-fastpath/consume.env, then\n` +
        `  systemctl enable --now vos-fastpath-attach@eth0 vos-fastpath-consume vos-fastpath-gc.timer\n`,
    );
  },
};
