import { readFileSync } from 'node:fs';
import type { CommandModule } from 'yargs';
import type { Args } from './common.js';
import { checkSourceOption, ttlSeconds } from './common.js';
import { quoted } from '../quote.js';

interface LoadFileArgs {
  file: string;
  ttl?: string;
  source: string;
  reason?: string;
  replace: boolean;
  format: string;
  skipSpecial?: boolean;
  maxShrink: number;
}

export const loadFile: CommandModule<object, LoadFileArgs> = {
  command: 'load-file <file>',
  describe: 'Block every IPv4 or IPv6 address or CIDR prefix in a file (- for stdin; both families may mix); bad lines are reported and skipped',
  builder: (y) =>
    y
      .positional('file', { type: 'string', demandOption: true, describe: 'one IPv4 or IPv6 address or CIDR prefix per line; # comments' })
      .option('ttl', { type: 'string', describe: 'expiry for every entry (default: never)' })
      .option('source', { type: 'string', default: 'manual', describe: 'feed name the entries belong to' })
      .option('reason', { type: 'string', describe: 'why, kept with each entry' })
      .option('replace', { type: 'boolean', default: false, describe: "make the file the source's whole set: add new, then remove what is no longer listed" })
      .option('format', { type: 'string', choices: ['auto', 'plain', 'apiban', 'voipbl'], default: 'auto', describe: 'plain/voipbl: one IPv4 or IPv6 address or CIDR per line; apiban: APIBAN JSON pages; auto: by content' })
      .option('max-shrink', { type: 'number', default: 1, describe: "with --replace: refuse (change nothing, exit 1) when more than this fraction of the source's entries would be removed, e.g. 0.5 (default 1: no limit)" })
      .option('skip-special', { type: 'boolean', describe: 'skip and report special-purpose addresses of either family (private, shared, documentation, unique-local, NAT64, 6to4, ...) instead of failing (default: on for apiban and voipbl)' }) as never,
  handler: async (argv) => {
    const a = argv as Args<LoadFileArgs>;
    // yargs hands a lone "-" positional over as an empty string.
    if (a.file === '') a.file = '-';
    const ttlS = ttlSeconds(a.ttl);
    if (!(a.maxShrink >= 0 && a.maxShrink <= 1)) {
      const { UsageError } = await import('../errors.js');
      throw new UsageError(`bad --max-shrink ${quoted(a.maxShrink)}: a fraction from 0 to 1 (0.5 = refuse to remove more than half)`);
    }
    const { Context } = await import('../context.js');
    const { parseApibanList, parseList } = await import('../listfile.js');
    const { applyBlocks, replaceSource } = await import('../blocklist.js');
    const { BadInputError, RuntimeError, UsageError } = await import('../errors.js');
    await checkSourceOption(a.source);
    if (a.replace && a.source === 'manual') throw new UsageError('--replace needs --source NAME: it replaces that source\'s entries only');
    let text: string;
    try {
      text = readFileSync(a.file === '-' ? 0 : a.file, 'utf8');
    } catch (err) {
      throw new UsageError(`cannot read ${quoted(a.file)}: ${(err as Error).message}`);
    }
    const ctx = Context.fromArgs(a);
    const { detectFormat } = await import('../feeds.js');
    const format = a.format === 'auto' ? detectFormat(text) : a.format;
    const feed = a.skipSpecial ?? format !== 'plain';
    const parsed = format === 'apiban' ? parseApibanList(text, await ctx.policy(), { feed }) : { ...parseList(text, await ctx.policy(), { feed }), pageErrors: 0 };
    const { targets, errors, skipped } = parsed;
    // A page that is not a page (cut short, rate limited) means the set is incomplete: replacing with it would unblock the rest.
    if (a.replace && parsed.pageErrors) {
      for (const e of errors) process.stderr.write(`vosctl: ${a.file}: ${e.where}: ${e.reason}\n`);
      throw new BadInputError(`${a.file}: ${parsed.pageErrors} page(s) unreadable; nothing applied, source ${quoted(a.source)} left as it was`);
    }
    for (const e of errors) process.stderr.write(`vosctl: ${a.file}: ${e.where}: ${e.reason}\n`);
    // A feed's error page served as 200 (HTML, a rate-limit note) is not a list: replacing with it would unblock the whole set.
    if (a.replace && (errors.length || skipped.length) && errors.length >= targets.length) {
      throw new RuntimeError(`${a.file}: ${errors.length} bad line(s) and ${targets.length} address(es): not a list; nothing applied, source ${quoted(a.source)} left as it was`);
    }
    if (a.replace && a.maxShrink < 1) {
      const { listEntries } = await import('../blocklist.js');
      const keep = new Set(targets.map((t) => t.text));
      const before = await listEntries(ctx, a.source);
      const removing = before.filter((e) => !keep.has(e.ip)).length;
      if (removing > a.maxShrink * before.length) {
        throw new RuntimeError(
          `${a.file}: would remove ${removing} of the ${before.length} entries of source ${quoted(a.source)} (more than --max-shrink ${a.maxShrink}); nothing applied. If the feed really shrank, run again with a higher --max-shrink (1 = no limit)`,
        );
      }
    }
    for (const e of skipped) process.stderr.write(`vosctl: ${a.file}: ${e.where}: skipped: ${e.reason}\n`);
    const reqs = targets.map((target) => ({ target, ttlS, source: a.source, reason: a.reason ?? null }));
    const started = Date.now();
    // parseList collapses duplicates: every request is a distinct target.
    const res = a.replace ? await replaceSource(ctx, a.source, reqs, { distinct: true }) : { ...(await applyBlocks(ctx, reqs, { distinct: true })), removed: 0 };
    ctx.log.info('loaded list', {
      action: a.replace ? 'replace' : 'load',
      file: a.file,
      source: a.source,
      ttl_s: ttlS,
      added: res.added,
      extended: res.extended,
      unchanged: res.unchanged,
      removed: res.removed,
      bad_lines: errors.length,
      skipped: skipped.length,
      format,
      ms: Date.now() - started,
    });
    process.stdout.write(`${a.file}: ${reqs.length} entries (${res.added} new, ${res.extended} extended, ${res.unchanged} unchanged), ${res.removed} removed, ${skipped.length} skipped, ${errors.length} bad lines\n`);
    if (errors.length) throw new BadInputError(`${errors.length} bad line(s) in ${a.file} were skipped; every good line was loaded`);
  },
};
