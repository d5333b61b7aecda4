import type { CommandModule } from 'yargs';
import type { Args } from './common.js';
import { failIfRefused, TARGETS_HELP } from './common.js';

interface MarkArgs {
  targets: string[];
}

function markCommand(name: string, map: string, add: boolean, describe: string): CommandModule<object, MarkArgs> {
  return {
    command: `${name} <targets..>`,
    describe,
    builder: (y) => y.positional('targets', { type: 'string', array: true, demandOption: true, describe: TARGETS_HELP }) as never,
    handler: async (argv) => {
      const a = argv as Args<MarkArgs>;
      const { Context } = await import('../context.js');
      const { parseRemovable, parseTarget, partitionTargets } = await import('../address.js');
      const { addMarks, removeMarks } = await import('../marks.js');
      const ctx = Context.fromArgs(a);
      const { targets, refused } = partitionTargets(a.targets, add ? parseTarget : parseRemovable);
      if (targets.length) {
        if (add) await addMarks(ctx, map, targets);
        else await removeMarks(ctx, map, targets);
        for (const t of targets) {
          const into = t.family === 6 ? `${map}6` : map;
          ctx.log.info(`${name} ${t.text}`, { action: name, ip: t.text, map: into });
          process.stdout.write(`${add ? 'added' : 'removed'} ${t.text} ${add ? 'to' : 'from'} ${into}\n`);
        }
      }
      failIfRefused(refused, a.targets.length);
    },
  };
}

export const allow = markCommand('allow', 'allow_ips', true, 'Never block these sources: they pass before any other rule');
export const disallow = markCommand('disallow', 'allow_ips', false, 'Remove entries from the never-block allowlist');
export const optionsAllow = markCommand('options-allow', 'options_allow', true, 'Let these sources send OPTIONS (trunk providers that ping you)');
export const optionsDisallow = markCommand('options-disallow', 'options_allow', false, 'Remove entries from the OPTIONS allow set');
