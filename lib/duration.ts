/** Durations as operators write them: 90, 90s, 30m, 2h, 7d. Pure. */

const UNIT: Record<string, number> = { '': 1, s: 1, m: 60, h: 3600, d: 86400 };
const MAX_SECONDS = 10 * 365 * 86400;

/** Seconds, or null when the text is not a duration. 0 means "never expires". */
export function parseDuration(input: string | number): number | null {
  if (typeof input === 'number') return Number.isInteger(input) && input >= 0 && input <= MAX_SECONDS ? input : null;
  const m = /^\s*(\d{1,10})\s*([smhd]?)\s*$/.exec(input);
  if (!m) return null;
  const seconds = Number(m[1]) * UNIT[m[2]!]!;
  return seconds <= MAX_SECONDS ? seconds : null;
}

export function formatDuration(seconds: number): string {
  if (seconds % 86400 === 0 && seconds >= 86400) return `${seconds / 86400}d`;
  if (seconds % 3600 === 0 && seconds >= 3600) return `${seconds / 3600}h`;
  if (seconds % 60 === 0 && seconds >= 60) return `${seconds / 60}m`;
  return `${seconds}s`;
}
