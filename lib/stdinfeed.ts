/**
 * A long-lived line feed (CrowdSec's feed_via_stdin, fail2ban's Python action):
 * read lines, apply them in micro-batches through the one apply path
 * (applyBlocks / applyUnblocks), report bad lines and go on. Lines that arrive
 * while a batch is being applied form the next batch, so a burst (a bouncer's
 * start-up stream, fail2ban restoring its database) costs a few map operations,
 * not one per line.
 */
import { createInterface } from 'node:readline';
import { Readable } from 'node:stream';
import { applyBlocks, applyUnblocks } from './blocklist.js';
import { Context, type GlobalArgs } from './context.js';
import { BATCH_WAIT_MS, checkInterval } from './duration.js';
import { BadInputError, MapFullError, RuntimeError, UsageError } from './errors.js';
import { planFeedRuns, type FeedCommand, type LineOutcome } from './feedline.js';

export interface FeedTotals {
  lines: number;
  added: number;
  extended: number;
  unchanged: number;
  removed: number;
  /** Unblocks of an address another source owns: left blocked. */
  kept: number;
  /** Bad lines and refused values: reported on stderr. */
  refused: number;
  /** Ignored on purpose (expired, not a ban, a scope or family not enforced): logged. */
  skipped: number;
  /** Blocks the full map could not take. */
  failed: number;
}

export interface FeedOptions {
  /** Name in messages ("crowdsec", "stdin"). */
  label: string;
  /** Most lines applied in one batch. */
  batchSize: number;
  /** ms a batch waits for more lines after its first one. */
  batchWaitMs: number;
}

/** Apply one batch of lines; `first` is the line number of lines[0]. */
async function applyBatch(ctx: Context, lines: readonly string[], first: number, parse: (line: string) => LineOutcome, o: FeedOptions, t: FeedTotals): Promise<void> {
  const cmds: FeedCommand[] = [];
  lines.forEach((line, i) => {
    if (!line.trim()) return;
    t.lines++;
    const r = parse(line);
    if ('skip' in r) {
      t.skipped++;
      ctx.log.info('skipped', { action: 'skip', feed: o.label, line: first + i, why: r.skip });
    } else if (!r.ok) {
      t.refused++;
      process.stderr.write(`vosctl: ${o.label}: line ${first + i}: ${r.reason}\n`);
    } else for (const c of r.cmds) cmds.push(c);
  });
  if (!cmds.length) return;
  const { runs, refused } = planFeedRuns(cmds, await ctx.policy());
  t.refused += refused.length;
  for (const why of refused) process.stderr.write(`vosctl: ${o.label}: refused ${why}\n`);
  for (const run of runs) {
    if (run.action === 'unblock') {
      const r = await applyUnblocks(ctx, run.targets, { source: run.source });
      t.removed += r.removed.length;
      t.kept += r.kept.length;
      for (const ip of r.removed) ctx.log.info('unblocked', { action: 'unblock', ip, source: run.source, feed: o.label });
      continue;
    }
    try {
      const r = await applyBlocks(ctx, run.reqs);
      t.added += r.added;
      t.extended += r.extended;
      t.unchanged += r.unchanged;
    } catch (err) {
      // A full map is the operator's to fix; the feed goes on (deletions still work) and says so each time.
      if (!(err instanceof MapFullError)) throw err;
      t.failed += run.reqs.length - err.appliedTargets.length;
      t.added += err.appliedTargets.length;
      ctx.log.error(err.message, { action: 'block', feed: o.label, failed: run.reqs.length - err.appliedTargets.length });
    }
  }
  ctx.log.info('applied', { action: 'feed', feed: o.label, lines: lines.length, blocks: cmds.filter((c) => c.action === 'block').length, unblocks: cmds.filter((c) => c.action === 'unblock').length });
}

/** Read `input` to its end, applying as it goes. Returns the totals; throws only on a runtime failure. */
export async function runLineFeed(ctx: Context, input: Readable, parse: (line: string) => LineOutcome, o: FeedOptions): Promise<FeedTotals> {
  const t: FeedTotals = { lines: 0, added: 0, extended: 0, unchanged: 0, removed: 0, kept: 0, refused: 0, skipped: 0, failed: 0 };
  ctx.sourceIdCache = { mapId: -1, ids: new Map() };
  const rl = createInterface({ input, crlfDelay: Infinity });
  const queue: string[] = [];
  let ended = false;
  let paused = false;
  let wake: (() => void) | null = null;
  rl.on('line', (line) => {
    queue.push(line);
    // Back-pressure: stop reading while a few batches are waiting.
    if (!paused && queue.length >= o.batchSize * 4) {
      paused = true;
      rl.pause();
    }
    wake?.();
  });
  rl.on('close', () => {
    ended = true;
    wake?.();
  });
  let lineNo = 1;
  for (;;) {
    if (!queue.length) {
      if (ended) break;
      await new Promise<void>((resolve) => (wake = resolve));
      wake = null;
      continue;
    }
    if (queue.length < o.batchSize && !ended && o.batchWaitMs > 0) await new Promise((r) => setTimeout(r, o.batchWaitMs));
    const batch = queue.splice(0, o.batchSize);
    if (paused && queue.length < o.batchSize) {
      paused = false;
      rl.resume();
    }
    await applyBatch(ctx, batch, lineNo, parse, o, t);
    lineNo += batch.length;
  }
  ctx.log.info('feed ended', { action: 'feed', feed: o.label, ...t });
  return t;
}

function checkBatchOptions(o: FeedOptions): void {
  if (!Number.isInteger(o.batchSize) || o.batchSize < 1) throw new UsageError(`bad --batch-size '${o.batchSize}': a positive integer`);
  checkInterval('batch-wait', o.batchWaitMs, BATCH_WAIT_MS);
}

/** The command side: stdin to its end, then a summary on stdout; refused lines make the exit status 2. */
export async function feedFromStdin(args: GlobalArgs, parse: (line: string) => LineOutcome, o: FeedOptions): Promise<void> {
  checkBatchOptions(o);
  const ctx = Context.fromArgs(args);
  const t = await runLineFeed(ctx, process.stdin, parse, o);
  process.stdout.write(`${o.label}: ${t.lines} lines: ${t.added} new, ${t.extended} extended, ${t.unchanged} unchanged, ${t.removed} removed, ${t.kept} kept (another source's), ${t.skipped} skipped, ${t.refused} refused, ${t.failed} failed (map full)\n`);
  if (t.failed) throw new RuntimeError(`${t.failed} block(s) did not fit: the blocklist map is full (logged above)`);
  if (t.refused) throw new BadInputError(`${t.refused} line(s) or value(s) refused (named above); every good one was applied`);
}

/** One command (the per-decision form): applied, or its refusal as the exit status. */
export async function applyOne(args: GlobalArgs, r: LineOutcome, label: string): Promise<void> {
  if ('skip' in r) {
    process.stdout.write(`${label}: skipped: ${r.skip}\n`);
    return;
  }
  if (!r.ok) throw new BadInputError(`${label}: ${r.reason}`);
  const ctx = Context.fromArgs(args);
  const t = await runLineFeed(ctx, Readable.from(['x']), () => r, { label, batchSize: 1, batchWaitMs: 0 });
  if (t.refused) throw new BadInputError(`${label}: refused (named above)`);
  process.stdout.write(`${label}: ${r.cmds.map((c) => `${c.action} ${c.target}`).join(', ')}: ${t.added} new, ${t.extended} extended, ${t.unchanged} unchanged, ${t.removed} removed, ${t.kept} kept\n`);
}
