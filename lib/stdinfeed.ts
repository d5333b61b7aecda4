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
import { existsSync } from 'node:fs';
import { applyBlocks, applyUnblocks } from './blocklist.js';
import { backoffMs } from './consume/plan.js';
import { Context, type GlobalArgs } from './context.js';
import { BadInputError, EnvError, MapFullError, RuntimeError, UsageError } from './errors.js';
import { MAP } from './maps/layout.js';
import { BATCH_WAIT_MS, checkInterval, MAX_TTL_S } from './duration.js';
import { planFeedRuns, type FeedCommand, type LineOutcome } from './feedline.js';
import { quoted } from './quote.js';

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
  /** Pause between tries while the maps are missing or an update fails: first and longest, ms (default 250 and 30,000). */
  retryBaseMs?: number;
  retryCapMs?: number;
}

/** Not ready to enforce (maps or program not pinned): the batch waits, it is not dropped. */
class NotReady extends EnvError {}

/** Parse one batch of lines; `first` is the line number of lines[0]. Bad lines are reported and counted here, once. */
function parseBatch(ctx: Context, lines: readonly string[], first: number, parse: (line: string) => LineOutcome, o: FeedOptions, t: FeedTotals): FeedCommand[] {
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
    } else {
      if (r.note) ctx.log.info('adjusted', { action: 'note', feed: o.label, line: first + i, note: r.note });
      for (const c of r.cmds) {
        if (c.action === 'block' && c.ttlS === MAX_TTL_S && !r.note) ctx.log.info('ttl at the 10-year limit (a longer one is taken as 10 years)', { action: 'note', feed: o.label, line: first + i, ip: c.target });
        cmds.push(c);
      }
    }
  });
  return cmds;
}

/**
 * Apply a batch's commands, waiting (and logging `paused`, then `resumed`)
 * while the maps are missing or an update fails: a bouncer sends its start-up
 * stream once, so what was read is kept, never dropped. A full map is not
 * waited for (see applyCommands). Returns when applied or when `stop` aborts.
 */
async function applyWithRetry(ctx: Context, cmds: FeedCommand[], lineCount: number, o: FeedOptions, t: FeedTotals, stop: AbortSignal): Promise<void> {
  const started = performance.now();
  for (let attempt = 0; ; attempt++) {
    // Totals of a failed try are thrown away: a retry applies the whole batch again (idempotent).
    const tryTotals = { ...t };
    try {
      if (!existsSync(ctx.pin(MAP.blockedIps))) throw new NotReady(`no maps in ${ctx.settings.pinDir}; attach first (vosctl attach <iface>)`);
      await applyCommands(ctx, cmds, lineCount, o, tryTotals);
      Object.assign(t, tryTotals);
      if (attempt > 0) ctx.log.info('resumed', { action: 'resume', feed: o.label, attempts: attempt + 1, paused_ms: Math.round(performance.now() - started) });
      return;
    } catch (err) {
      if (!(err instanceof EnvError || err instanceof RuntimeError) || stop.aborted) throw err;
      const delay = backoffMs(attempt, o.retryBaseMs ?? 250, o.retryCapMs ?? 30_000);
      ctx.log.warn(err instanceof NotReady ? 'paused: not ready to enforce' : 'paused: map update failed', {
        action: 'pause',
        feed: o.label,
        held: cmds.length,
        attempt: attempt + 1,
        retry_in_ms: delay,
        error: err.message,
      });
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, delay);
        stop.addEventListener('abort', () => (clearTimeout(timer), resolve()), { once: true });
      });
      if (stop.aborted) throw err;
      // A map recreated by a new attach has new source ids.
      ctx.sourceIdCache = { mapId: -1, ids: new Map() };
    }
  }
}

async function applyCommands(ctx: Context, cmds: FeedCommand[], lineCount: number, o: FeedOptions, t: FeedTotals): Promise<void> {
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
  ctx.log.info('applied', { action: 'feed', feed: o.label, lines: lineCount, blocks: cmds.filter((c) => c.action === 'block').length, unblocks: cmds.filter((c) => c.action === 'unblock').length });
}

/**
 * Read `input` to its end, applying as it goes. Returns the totals. While the
 * maps are missing it holds what it read and retries (reading stops when a few
 * batches wait: the writer blocks, nothing is lost); throws only on an
 * unexpected failure or when `stop` aborts a wait.
 */
export async function runLineFeed(ctx: Context, input: Readable, parse: (line: string) => LineOutcome, o: FeedOptions, stop: AbortSignal = new AbortController().signal): Promise<FeedTotals> {
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
    const cmds = parseBatch(ctx, batch, lineNo, parse, o, t);
    lineNo += batch.length;
    if (cmds.length) await applyWithRetry(ctx, cmds, batch.length, o, t, stop);
  }
  ctx.log.info('feed ended', { action: 'feed', feed: o.label, ...t });
  return t;
}

function checkBatchOptions(o: FeedOptions): void {
  if (!Number.isInteger(o.batchSize) || o.batchSize < 1) throw new UsageError(`bad --batch-size ${quoted(o.batchSize)}: a positive integer`);
  checkInterval('batch-wait', o.batchWaitMs, BATCH_WAIT_MS);
}

/** The command side: stdin to its end, then a summary on stdout; refused lines make the exit status 2. */
export async function feedFromStdin(args: GlobalArgs, parse: (line: string) => LineOutcome, o: FeedOptions): Promise<void> {
  checkBatchOptions(o);
  const ctx = Context.fromArgs(args);
  let t: FeedTotals;
  try {
    t = await runLineFeed(ctx, process.stdin, parse, o);
  } finally {
    // Whatever ended the feed, stop reading: an open stdin would keep the process alive, silent.
    process.stdin.destroy();
  }
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
  if (r.note) process.stderr.write(`vosctl: ${label}: note: ${r.note}\n`);
  // One process per decision: no waiting for the maps; a failure is the exit status (the bouncer logs it).
  const t = await runLineFeed(ctx, Readable.from(['x']), () => r, { label, batchSize: 1, batchWaitMs: 0 }, AbortSignal.abort());
  if (t.refused) throw new BadInputError(`${label}: refused (named above)`);
  process.stdout.write(`${label}: ${r.cmds.map((c) => `${c.action} ${c.target}`).join(', ')}: ${t.added} new, ${t.extended} extended, ${t.unchanged} unchanged, ${t.removed} removed, ${t.kept} kept\n`);
}
