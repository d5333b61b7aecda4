/** Durations as operators write them: 90, 90s, 30m, 2h, 7d. Pure. */
import { UsageError } from './errors.js';
import { quoted } from './quote.js';

const UNIT: Record<string, number> = { '': 1, s: 1, m: 60, h: 3600, d: 86400 };

/**
 * The longest TTL an entry gets: 10 years (3650d, 315,360,000 s). One rule for
 * every input (vosctl --ttl, consume and stdin messages, fail2ban, CrowdSec): a
 * longer one is taken as this limit, with a note, since it means "as good as
 * forever" and refusing it would leave the address unblocked.
 */
export const MAX_TTL_S = 10 * 365 * 86400;

/** The seconds a duration asks for, before the cap, or null when the text is not a duration (negative, fractional, no unit we know). */
export function requestedSeconds(input: string | number): number | null {
  if (typeof input === 'number') return Number.isSafeInteger(input) && input >= 0 ? input : null;
  const m = /^\s*(\d{1,15})\s*([smhd]?)\s*$/.exec(input);
  if (!m) return null;
  return Number(m[1]) * UNIT[m[2]!]!;
}

/** Seconds (capped at MAX_TTL_S), or null when the text is not a duration. 0 means "never expires". */
export function parseDuration(input: string | number): number | null {
  const s = requestedSeconds(input);
  return s === null ? null : Math.min(s, MAX_TTL_S);
}

/** The note for a TTL that was capped, or null when it was within the limit. */
export function ttlCapNote(input: string | number): string | null {
  const s = requestedSeconds(input);
  return s !== null && s > MAX_TTL_S ? `ttl ${JSON.stringify(input)} is above the 10-year limit: taken as 3650d (${MAX_TTL_S} s)` : null;
}

export function formatDuration(seconds: number): string {
  if (seconds % 86400 === 0 && seconds >= 86400) return `${seconds / 86400}d`;
  if (seconds % 3600 === 0 && seconds >= 3600) return `${seconds / 3600}h`;
  if (seconds % 60 === 0 && seconds >= 60) return `${seconds / 60}m`;
  return `${seconds}s`;
}

/** Bounds of a timer option: `min`..`max` in its unit; 0 allowed (off, or no wait) when `zero`. */
export interface IntervalBounds {
  unit: 's' | 'ms';
  min: number;
  max: number;
  zero: boolean;
}

/** 0 = off, else 1 s to 1 day: every periodic check (drift, expiry sweep). */
export const PERIOD_S: IntervalBounds = { unit: 's', min: 1, max: 86400, zero: true };
/** How long a batch waits for more: 0 (none) to 10 s. */
export const BATCH_WAIT_MS: IntervalBounds = { unit: 'ms', min: 0, max: 10_000, zero: true };

/**
 * Check a timer option (`--drift-interval`, `--gc-interval`, `--batch-wait`,
 * `--watch`) against its bounds. Node's timers take at most 2^31-1 ms and
 * fire after 1 ms beyond it, so an unbounded value turns "rarely" into
 * "constantly"; a value under the minimum would spin.
 * @throws UsageError naming the option, the value and the range.
 */
export function checkInterval(option: string, value: unknown, b: IntervalBounds): number {
  const v = Number(value);
  const ok = typeof value === 'number' && Number.isFinite(v) && ((b.zero && v === 0) || (v >= b.min && v <= b.max));
  if (!ok) {
    const range = `${b.zero && b.min > 0 ? '0 (off) or ' : ''}${b.min} to ${b.max} ${b.unit === 's' ? 'seconds' : 'ms'}`;
    throw new UsageError(`bad --${option} ${quoted(String(value))}: ${range}`);
  }
  return v;
}
/** vosctl stats --watch: 0.1 s to 1 day. */
export const WATCH_S: IntervalBounds = { unit: 's', min: 0.1, max: 86400, zero: false };
