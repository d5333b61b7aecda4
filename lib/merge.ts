/** The rules for combining blocklist changes. Pure. */
import type { Entry } from './state.js';

export interface BlockIntent {
  ip: string;
  source: string;
  reason: string | null;
  /** 0 = never expires. */
  ttlS: number;
}

export type Change = 'added' | 'extended' | 'unchanged';

export function isLive(e: { expires: number }, nowS: number): boolean {
  return e.expires === 0 || e.expires > nowS;
}

/** The source of an operator's own blocks (`vosctl block`'s default): it outranks every automated source. */
export const OPERATOR_SOURCE = 'manual';

/** The entry a block of a target the state does not hold (or holds expired) makes: added now, expiring ttlS seconds from now (0 = never). */
export function freshEntry(ip: string, source: string, reason: string | null, ttlS: number, nowS: number): Entry {
  return { ip, source, reason, added: nowS, expires: ttlS ? nowS + ttlS : 0 };
}

/**
 * An address has one entry. Blocking it again keeps its source, reason and
 * time added, and moves its expiry later, never earlier (0 = never is latest).
 * One exception: an operator's block (source `manual`) of an address an
 * automated source holds takes the entry over (source, and reason if given),
 * so that the automated source withdrawing its decision (`unblock --source`,
 * a feed's `--replace`) never lifts the operator's block.
 * An expired entry counts as absent.
 */
export function mergeBlock(existing: Entry | undefined, b: BlockIntent, nowS: number): { entry: Entry; change: Change } {
  if (!existing || !isLive(existing, nowS)) return { entry: freshEntry(b.ip, b.source, b.reason, b.ttlS, nowS), change: 'added' };
  const expires = b.ttlS ? nowS + b.ttlS : 0;
  const later = existing.expires === 0 || expires === 0 ? 0 : Math.max(existing.expires, expires);
  const takeOver = b.source === OPERATOR_SOURCE && existing.source !== OPERATOR_SOURCE;
  if (later === existing.expires && !takeOver) return { entry: existing, change: 'unchanged' };
  const owner = takeOver ? { source: b.source, reason: b.reason ?? existing.reason } : {};
  return { entry: { ...existing, ...owner, expires: later }, change: 'extended' };
}

/** What `--replace` removes: entries of that source that the new list no longer has. */
export function planReplace(current: Iterable<{ ip: string; source: string }>, source: string, keep: { has(ip: string): boolean }): string[] {
  const out: string[] = [];
  for (const e of current) if (e.source === source && !keep.has(e.ip)) out.push(e.ip);
  return out;
}

export interface Divergence {
  onlyInState: string[];
  onlyInMap: string[];
  /** Present in both, with a different source or an expiry more than 2 s apart. */
  differing: string[];
}

export function diffEntries(state: ReadonlyMap<string, Entry>, map: ReadonlyMap<string, Entry>, nowS: number): Divergence {
  const d: Divergence = { onlyInState: [], onlyInMap: [], differing: [] };
  for (const [ip, e] of state) {
    if (!isLive(e, nowS)) continue;
    const m = map.get(ip);
    if (!m || !isLive(m, nowS)) d.onlyInState.push(ip);
    else if (m.source !== e.source || Math.abs(m.expires - e.expires) > 2 || (m.expires === 0) !== (e.expires === 0)) d.differing.push(ip);
  }
  for (const [ip, m] of map) {
    if (!isLive(m, nowS)) continue;
    const e = state.get(ip);
    if (!e || !isLive(e, nowS)) d.onlyInMap.push(ip);
  }
  return d;
}
