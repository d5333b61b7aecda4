import type { CommandModule } from 'yargs';
import type { Args } from './common.js';

interface MarkArgs {
  targets: string[];
}

function markCommand(name: string, map: string, add: boolean, describe: string): CommandModule<object, MarkArgs> {
  return {
    command: `${name} <targets..>`,
    describe,
    builder: (y) => y.positional('targets', { type: 'string', array: true, demandOption: true }) as never,
    handler: async (argv) => {
      const a = argv as Args<MarkArgs>;
      const { Context } = await import('../context.js');
      const { parseTarget } = await import('../address.js');
      const { addMarks, removeMarks } = await import('../marks.js');
      const { BadInputError } = await import('../errors.js');
      const ctx = Context.fromArgs(a);
      const targets = [];
      const bad: string[] = [];
      for (const t of a.targets.map(String)) {
        const r = parseTarget(t);
        if (r.ok) targets.push(r.target);
        else bad.push(r.reason);
      }
      if (targets.length) {
        if (add) await addMarks(ctx, map, targets);
        else await removeMarks(ctx, map, targets);
        for (const t of targets) {
          ctx.log.info(`${name} ${t.text}`, { action: name, ip: t.text, map });
          process.stdout.write(`${add ? 'added' : 'removed'} ${t.text} ${add ? 'to' : 'from'} ${map}\n`);
        }
      }
      if (bad.length) throw new BadInputError(`refused ${bad.length} of ${a.targets.length}:\n  ${bad.join('\n  ')}`);
    },
  };
}

export const allow = markCommand('allow', 'allow_ips', true, 'Never block these sources: they pass before any other rule');
export const disallow = markCommand('disallow', 'allow_ips', false, 'Remove entries from the never-block allowlist');
export const optionsAllow = markCommand('options-allow', 'options_allow', true, 'Let these sources send OPTIONS (trunk providers that ping you)');
export const optionsDisallow = markCommand('options-disallow', 'options_allow', false, 'Remove entries from the OPTIONS allow set');
