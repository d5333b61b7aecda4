/** The list-file format shared with scripts/block_ips_from_file.sh. Pure. */
import { checkBlockTarget, TargetSet, type BlockPolicy, type Target } from './address.js';

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
  const seen = new TargetSet();
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const hash = lines[i]!.indexOf('#');
    const body = (hash >= 0 ? lines[i]!.slice(0, hash) : lines[i]!).trim();
    if (!body) continue;
    const r = checkBlockTarget(body, policy);
    if (!r.ok) errors.push({ line: i + 1, text: body, reason: r.reason });
    else if (seen.add(r.target)) targets.push(r.target);
  }
  return { targets, errors };
}
