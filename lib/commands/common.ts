/** Small helpers shared by command modules. Keep this import-light: every command loads it. */
import type { GlobalArgs } from '../context.js';
import { BadInputError, UsageError } from '../errors.js';
import { parseDuration, ttlCapNote } from '../duration.js';
import { quoted } from '../quote.js';

export type Args<T> = GlobalArgs & T & { _: (string | number)[]; $0: string };

/** What every command that takes addresses takes: its positional's help text. */
export const TARGETS_HELP = 'IPv4 or IPv6 addresses or CIDR prefixes (198.51.100.7, 2001:db8::7, 2001:db8:bad::/48)';

export function ttlSeconds(ttl: string | number | undefined): number {
  if (ttl === undefined) return 0;
  const s = parseDuration(ttl);
  if (s === null) throw new UsageError(`bad --ttl ${quoted(ttl)}: use seconds or a number with s, m, h or d (30m, 2h, 7d), at most 10 years (3650d)`);
  const note = ttlCapNote(ttl);
  if (note) process.stderr.write(`vosctl: note: ${note}\n`);
  return s;
}

export function printJson(value: unknown): void {
  process.stdout.write(JSON.stringify(value, null, 2) + '\n');
}

/** A --source value: a name the source_names map can hold. Loads the layout only when called. */
export async function checkSourceOption(name: string): Promise<void> {
  const { SOURCE_NAME } = await import('../maps/layout.js');
  if (!SOURCE_NAME.test(name)) throw new UsageError(`bad --source ${quoted(name)}: 1-31 of A-Z a-z 0-9 . _ -`);
}

/** After the good inputs were applied: fail with every refusal, named. */
export function failIfRefused(refused: readonly string[], total: number): void {
  if (refused.length) throw new BadInputError(`refused ${refused.length} of ${total}:\n  ${refused.join('\n  ')}`);
}
