/** Durations as operators write them: 90, 90s, 30m, 2h, 7d. Pure. */

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
