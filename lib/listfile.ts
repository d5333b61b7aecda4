/** The list-file format shared with scripts/block_ips_from_file.sh. Pure. */
import { checkBlockTarget, type BlockPolicy, type Target } from './address.js';

export interface LineError {
  line: number;
  text: string;
  reason: string;
}

export interface ParsedList {
  targets: Target[];
  errors: LineError[];
}

/** One address or CIDR per line; '#' starts a comment; blank lines are skipped; duplicates collapse. */
export function parseList(text: string, policy: BlockPolicy): ParsedList {
  const targets: Target[] = [];
  const errors: LineError[] = [];
  // Numbers hash faster than strings, and int32s (the /32s, by far the most) faster than other numbers.
  const seenAddrs = new Set<number>();
  const seenPrefixes = new Set<number>(); // address * 33 + prefix length
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const hash = lines[i]!.indexOf('#');
    const body = (hash >= 0 ? lines[i]!.slice(0, hash) : lines[i]!).trim();
    if (!body) continue;
    const r = checkBlockTarget(body, policy);
    if (!r.ok) errors.push({ line: i + 1, text: body, reason: r.reason });
    else {
      const t = r.target;
      const seen = t.prefixlen === 32 ? seenAddrs : seenPrefixes;
      const before = seen.size;
      seen.add(t.prefixlen === 32 ? t.addr | 0 : t.addr * 33 + t.prefixlen);
      if (seen.size > before) targets.push(t);
    }
  }
  return { targets, errors };
}
