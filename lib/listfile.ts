/** The list-file format shared with scripts/block_ips_from_file.sh, and feed entries through one check. Pure. */
import { checkBlockable, parseTarget, TargetSet, type BlockPolicy, type Target } from './address.js';
import { parseApiban, specialPurpose, type FeedEntry } from './feeds.js';

export interface LineError {
  line: number;
  text: string;
  reason: string;
  /** Where, for messages ("line 3", "page 2 entry 17"). */
  where: string;
}

export interface ParsedList {
  targets: Target[];
  errors: LineError[];
  /** Entries a feed should not carry (special-purpose ranges, IPv6 until it is supported): reported and counted, not errors. */
  skipped: LineError[];
}

export interface ListOptions {
  /** A feed import: special-purpose addresses and IPv6 are skipped and reported instead of failing the import. */
  feed?: boolean;
}

/** Check entries in order: duplicates collapse; a non-address is an error; see ListOptions.feed. */
export function checkEntries(entries: Iterable<FeedEntry & { line?: number }>, policy: BlockPolicy, o: ListOptions = {}): ParsedList {
  const out: ParsedList = { targets: [], errors: [], skipped: [] };
  const seen = new TargetSet();
  for (const e of entries) checkEntry(out, seen, e.text, e.line ?? 0, e.where, policy, o);
  return out;
}

/** One entry through the checks, into out; where (undefined: "line N") is only made for an entry that is reported. */
function checkEntry(out: ParsedList, seen: TargetSet, text: string, line: number, where: string | undefined, policy: BlockPolicy, o: ListOptions): void {
  const r = parseTarget(text);
  if (!r.ok) {
    out.errors.push({ line, where: where ?? `line ${line}`, text, reason: r.reason });
    return;
  }
  const special = o.feed ? specialPurpose(r.target) : null;
  if (special) {
    out.skipped.push({ line, where: where ?? `line ${line}`, text, reason: special });
    return;
  }
  const why = checkBlockable(r.target, policy, text);
  if (why) out.errors.push({ line, where: where ?? `line ${line}`, text, reason: why });
  else if (seen.add(r.target)) out.targets.push(r.target);
}

/** One address or CIDR per line; '#' starts a comment; blank lines are skipped; duplicates collapse. */
export function parseList(text: string, policy: BlockPolicy, o: ListOptions = {}): ParsedList {
  const out: ParsedList = { targets: [], errors: [], skipped: [] };
  const seen = new TargetSet();
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const hash = lines[i]!.indexOf('#');
    const body = (hash >= 0 ? lines[i]!.slice(0, hash) : lines[i]!).trim();
    if (body) checkEntry(out, seen, body, i + 1, undefined, policy, o);
  }
  return out;
}

/** APIBAN pages (lib/feeds.ts) through the same checks; a page that is not an APIBAN page is an error with line 0. */
export function parseApibanList(text: string, policy: BlockPolicy, o: ListOptions = {}): ParsedList & { pageErrors: number } {
  const pages = parseApiban(text);
  const r = checkEntries(pages.entries, policy, o);
  for (const e of pages.errors) r.errors.push({ line: 0, where: e.where, text: '', reason: e.reason });
  return { ...r, pageErrors: pages.errors.length };
}
