import type { CommandModule } from 'yargs';
import type { Args } from './common.js';
import { failIfRefused } from './common.js';

interface UnblockArgs {
  targets: string[];
  source?: string;
}

export const unblock: CommandModule<object, UnblockArgs> = {
  command: 'unblock <targets..>',
  describe: 'Remove addresses or CIDR prefixes from the blocklist (idempotent)',
  builder: (y) =>
    y
      .positional('targets', { type: 'string', array: true, demandOption: true })
      .option('source', { type: 'string', describe: "only entries of this source (another source's block of the address stays)" }) as never,
  handler: async (argv) => {
    const a = argv as Args<UnblockArgs>;
    const { Context } = await import('../context.js');
    const { parseTarget, partitionTargets } = await import('../address.js');
    const { applyUnblocks } = await import('../blocklist.js');
    const ctx = Context.fromArgs(a);
    const { targets, refused } = partitionTargets(a.targets, parseTarget);
    if (targets.length) {
      const { removed, absent, kept } = await applyUnblocks(ctx, targets, { source: a.source });
      for (const ip of removed) {
        ctx.log.info('unblocked', { action: 'unblock', ip });
        process.stdout.write(`unblocked ${ip}\n`);
      }
      for (const ip of absent) process.stdout.write(`${ip} was not blocked\n`);
      for (const ip of kept) process.stdout.write(`${ip} kept: blocked by another source than ${a.source}\n`);
    }
    failIfRefused(refused, a.targets.length);
  },
};
