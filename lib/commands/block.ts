import type { CommandModule } from 'yargs';
import type { Args } from './common.js';
import { failIfRefused, TARGETS_HELP, ttlSeconds } from './common.js';
import { OPERATOR_SOURCE } from '../merge.js';

interface BlockArgs {
  targets: string[];
  ttl?: string;
  reason?: string;
  source: string;
}

export const block: CommandModule<object, BlockArgs> = {
  command: 'block <targets..>',
  describe: 'Block IPv4 or IPv6 addresses or CIDR prefixes (a repeat block keeps the entry and extends its expiry)',
  builder: (y) =>
    y
      .positional('targets', { type: 'string', array: true, demandOption: true, describe: TARGETS_HELP })
      .option('ttl', { type: 'string', describe: 'expire after 90, 90s, 30m, 2h or 7d (default: never)' })
      .option('reason', { type: 'string', describe: 'why, kept with the entry' })
      .option('source', { type: 'string', default: OPERATOR_SOURCE, describe: 'who blocked it (a feed or system name)' }) as never,
  handler: async (argv) => {
    const a = argv as Args<BlockArgs>;
    const ttlS = ttlSeconds(a.ttl);
    const { Context } = await import('../context.js');
    const { checkBlockTarget, partitionTargets } = await import('../address.js');
    const { applyBlocks } = await import('../blocklist.js');
    const ctx = Context.fromArgs(a);
    const policy = await ctx.policy();
    const { targets, refused } = partitionTargets(a.targets, (t) => checkBlockTarget(t, policy));
    const reqs = targets.map((target) => ({ target, ttlS, source: a.source, reason: a.reason ?? null }));
    if (reqs.length) {
      const res = await applyBlocks(ctx, reqs);
      for (const e of res.entries) {
        ctx.log.info('blocked', { action: 'block', ip: e.ip, source: e.source, ttl_s: e.expires ? e.expires - Math.floor(Date.now() / 1000) : 0, reason: e.reason });
        process.stdout.write(`blocked ${e.ip}${e.expires ? ` until ${new Date(e.expires * 1000).toISOString()}` : ''}\n`);
      }
    }
    failIfRefused(refused, a.targets.length);
  },
};
