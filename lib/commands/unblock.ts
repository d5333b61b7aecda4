import type { CommandModule } from 'yargs';
import type { Args } from './common.js';
import { failIfRefused, TARGETS_HELP } from './common.js';

interface UnblockArgs {
  targets?: string[];
  source?: string;
  all: boolean;
}

export const unblock: CommandModule<object, UnblockArgs> = {
  command: 'unblock [targets..]',
  describe: 'Remove IPv4 or IPv6 addresses or CIDR prefixes from the blocklist (idempotent); --all --source NAME removes every entry of one source',
  builder: (y) =>
    y
      .positional('targets', { type: 'string', array: true, describe: TARGETS_HELP })
      .option('source', { type: 'string', describe: "only entries of this source (another source's block of the address stays)" })
      .option('all', { type: 'boolean', default: false, describe: 'every entry of --source (e.g. after fail2ban-client unban --all)' }) as never,
  handler: async (argv) => {
    const a = argv as Args<UnblockArgs>;
    const { Context } = await import('../context.js');
    const { UsageError } = await import('../errors.js');
    const given = (a.targets ?? []).map(String);
    if (a.all) {
      if (!a.source) throw new UsageError('--all needs --source NAME: it removes that source\'s entries only');
      if (given.length) throw new UsageError('--all takes no addresses');
      const { replaceSource } = await import('../blocklist.js');
      const ctx = Context.fromArgs(a);
      const { removed } = await replaceSource(ctx, a.source, []);
      ctx.log.info('unblocked source', { action: 'unblock', source: a.source, removed });
      process.stdout.write(`removed ${removed} entries of source ${a.source}\n`);
      return;
    }
    if (!given.length) throw new UsageError('name addresses or CIDR prefixes to unblock (or --all --source NAME)');
    const { parseRemovable, partitionTargets } = await import('../address.js');
    const { applyUnblocks } = await import('../blocklist.js');
    const ctx = Context.fromArgs(a);
    const { targets, refused } = partitionTargets(given, parseRemovable);
    if (targets.length) {
      const { removed, absent, kept } = await applyUnblocks(ctx, targets, { source: a.source });
      for (const ip of removed) {
        ctx.log.info('unblocked', { action: 'unblock', ip });
        process.stdout.write(`unblocked ${ip}\n`);
      }
      for (const ip of absent) process.stdout.write(`${ip} was not blocked\n`);
      for (const ip of kept) process.stdout.write(`${ip} kept: blocked by another source than ${a.source}\n`);
    }
    failIfRefused(refused, given.length);
  },
};
