/**
 * Enforcement drift: what the state intends against what the kernel's block
 * maps hold. Pure: the caller reads the state and dumps the maps.
 *
 * Works on the raw dump records (key||struct vfp_block), so comparing a
 * million entries builds no million objects: one target text per record for
 * the state lookup, nothing else.
 */
import { formatTarget } from './address.js';
import type { Clocks } from './clock.js';
import { BLOCK_VALUE, EXACT_KEY, EXACT_KEY6, LPM_KEY, LPM_KEY6, keyToText } from './maps/layout.js';
import { isLive } from './merge.js';

/** What the state wants enforced for one target. */
export interface Intended {
  source: string;
  /** Wall-clock unix seconds; 0 = never. */
  expires: number;
}

/**
 * - missing: the state holds a live entry the maps do not have at all;
 * - expired_early: the maps have it, but it already expired there while the state's is live;
 * - different: both live, but another source or an expiry more than 2 s apart (as `vosctl status`);
 * - unintended: the maps enforce a live entry the state does not hold (or holds expired).
 */
export const DRIFT_KINDS = ['missing', 'expired_early', 'different', 'unintended'] as const;
export type DriftKind = (typeof DRIFT_KINDS)[number];

export interface BlockDump {
  /** key||value records of blocked_ips (keySize EXACT_KEY), blocked_prefixes (LPM_KEY), blocked_ips6 (EXACT_KEY6) or blocked_prefixes6 (LPM_KEY6). */
  records: Buffer;
  keySize: number;
}

export interface DriftReport {
  drift: Record<DriftKind, number>;
  /** Live entries in the maps per source name (ids without a name: `id:N`). */
  liveBySource: Map<string, number>;
}

/** A target counted as drift by compareEnforced, for the caller to re-verify (lib/metrics/driftcheck.ts). */
export interface Suspect {
  /** Canonical target text, as the state keys it. */
  target: string;
  kind: DriftKind;
}

/** Same tolerance as merge.diffEntries: the clocks are converted at one instant, to the second. */
const EXPIRY_SLACK_S = 2;
const NS_PER_S = 1e9;

/**
 * Address of an exact target text ("a.b.c.d", already canonical), or -1 for
 * a prefix: state texts parsed without a string or object per entry.
 */
function exactAddr(ip: string): number {
  let addr = 0;
  let octet = 0;
  for (let i = 0; i < ip.length; i++) {
    const c = ip.charCodeAt(i);
    if (c === 46) {
      addr = addr * 256 + octet;
      octet = 0;
    } else if (c === 47) return -1;
    else octet = octet * 10 + c - 48;
  }
  return addr * 256 + octet;
}

/**
 * Open-addressing index address -> record number over blocked_ips' dump: a
 * million lookups by number instead of a million target strings hashed
 * into a Map (0.7 s of the 1 s the string way took here).
 */
class ExactIndex {
  private readonly keys: Uint32Array;
  private readonly slots: Int32Array;
  private readonly mask: number;

  constructor(addrs: Uint32Array) {
    let size = 16;
    while (size < addrs.length * 2) size *= 2;
    this.keys = new Uint32Array(size);
    this.slots = new Int32Array(size);
    this.mask = size - 1;
    for (let i = 0; i < addrs.length; i++) {
      let h = Math.imul(addrs[i]!, 0x9e3779b1) & this.mask;
      while (this.slots[h] !== 0) h = (h + 1) & this.mask;
      this.keys[h] = addrs[i]!;
      this.slots[h] = i + 1;
    }
  }

  /** Record number of addr, or -1. */
  get(addr: number): number {
    let h = Math.imul(addr, 0x9e3779b1) & this.mask;
    for (;;) {
      const s = this.slots[h]!;
      if (s === 0) return -1;
      if (this.keys[h] === addr) return s - 1;
      h = (h + 1) & this.mask;
    }
  }
}

/** One dump's records as parallel columns. */
interface Columns {
  count: number;
  /** Expiry, boottime ns as a double (0 = never): exact enough for second-level comparisons. */
  expiresNs: Float64Array;
  sourceId: Uint16Array;
  matched: Uint8Array;
}

function columns(d: BlockDump): Columns {
  const rec = d.keySize + BLOCK_VALUE;
  const count = Math.floor(d.records.length / rec);
  const c: Columns = { count, expiresNs: new Float64Array(count), sourceId: new Uint16Array(count), matched: new Uint8Array(count) };
  for (let i = 0, v = d.keySize; i < count; i++, v += rec) {
    c.expiresNs[i] = d.records.readUInt32LE(v + 4) * 4294967296 + d.records.readUInt32LE(v);
    c.sourceId[i] = d.records.readUInt16LE(v + 12);
  }
  return c;
}

/**
 * Compare the intended set with the block maps' dumps (blocked_ips, then
 * blocked_prefixes; either may be absent). `sourceNames`: id -> name.
 * `now`: both clocks read once. Cost: linear in map plus state entries, no
 * per-entry allocation for exact addresses. `suspects`, when given, receives
 * each target counted (one object per discrepancy, none otherwise).
 */
export function compareEnforced(intended: ReadonlyMap<string, Intended>, dumps: readonly BlockDump[], sourceNames: ReadonlyMap<number, string>, now: Clocks, suspects?: Suspect[]): DriftReport {
  const drift: Record<DriftKind, number> = { missing: 0, expired_early: 0, different: 0, unintended: 0 };
  const bootNs = Number(now.bootNs);
  const exact = dumps.find((d) => d.keySize === EXACT_KEY);
  const prefix = dumps.find((d) => d.keySize === LPM_KEY);
  const ex = exact ? columns(exact) : undefined;
  const px = prefix ? columns(prefix) : undefined;
  const addrs = new Uint32Array(ex?.count ?? 0);
  for (let i = 0; i < addrs.length; i++) addrs[i] = exact!.records.readUInt32BE(i * (EXACT_KEY + BLOCK_VALUE));
  const exactIndex = new ExactIndex(addrs);
  // Prefixes are few (an LPM trie of /8 to /31): a Map by text is fine.
  const prefixIndex = new Map<string, number>();
  if (prefix && px) for (let i = 0, at = 0; i < px.count; i++, at += prefix.keySize + BLOCK_VALUE) prefixIndex.set(formatTarget(prefix.records.readUInt32BE(at + 4), prefix.records.readUInt32LE(at)), i);

  // IPv6 entries by canonical text (the state's key): a path of their own, so IPv4 stays numeric.
  const v6 = dumps.filter((d) => d.keySize === EXACT_KEY6 || d.keySize === LPM_KEY6).map((d) => ({ d, c: columns(d) }));
  const v6Index = new Map<string, { c: Columns; i: number }>();
  for (const { d, c } of v6) for (let i = 0, at = 0; i < c.count; i++, at += d.keySize + BLOCK_VALUE) v6Index.set(keyToText(d.records.subarray(at, at + d.keySize)), { c, i });

  const live = (c: Columns, i: number): boolean => c.expiresNs[i] === 0 || c.expiresNs[i]! > bootNs;
  for (const [ip, want] of intended) {
    if (!isLive(want, now.wallS)) continue;
    const hit6 = ip.includes(':') ? (v6Index.get(ip) ?? { c: undefined, i: -1 }) : undefined;
    const addr = hit6 ? -1 : exactAddr(ip);
    const c = hit6 ? hit6.c : addr >= 0 ? ex : px;
    const i = hit6 ? hit6.i : addr >= 0 ? exactIndex.get(addr) : (prefixIndex.get(ip) ?? -1);
    if (!c || i < 0) {
      drift.missing++;
      suspects?.push({ target: ip, kind: 'missing' });
      continue;
    }
    c.matched[i] = 1;
    if (!live(c, i)) {
      drift.expired_early++;
      suspects?.push({ target: ip, kind: 'expired_early' });
      continue;
    }
    const ns = c.expiresNs[i]!;
    const expires = ns === 0 ? 0 : now.wallS + Math.trunc((ns - bootNs) / NS_PER_S);
    const source = sourceNames.get(c.sourceId[i]!) ?? `id:${c.sourceId[i]}`;
    if (source !== want.source || (expires === 0) !== (want.expires === 0) || Math.abs(expires - want.expires) > EXPIRY_SLACK_S) {
      drift.different++;
      suspects?.push({ target: ip, kind: 'different' });
    }
  }

  const liveById = new Map<number, number>();
  const all: Array<readonly [Columns | undefined, BlockDump | undefined]> = [[ex, exact], [px, prefix], ...v6.map((x) => [x.c, x.d] as const)];
  for (const [c, d] of all) {
    if (!c || !d) continue;
    for (let i = 0; i < c.count; i++) {
      if (!live(c, i)) continue;
      liveById.set(c.sourceId[i]!, (liveById.get(c.sourceId[i]!) ?? 0) + 1);
      if (c.matched[i]) continue;
      drift.unintended++;
      const at = i * (d.keySize + BLOCK_VALUE);
      const target =
        d.keySize === EXACT_KEY ? formatTarget(d.records.readUInt32BE(at), 32) : d.keySize === LPM_KEY ? formatTarget(d.records.readUInt32BE(at + 4), d.records.readUInt32LE(at)) : keyToText(d.records.subarray(at, at + d.keySize));
      suspects?.push({ target, kind: 'unintended' });
    }
  }
  const liveBySource = new Map<string, number>();
  for (const [id, n] of liveById) {
    const name = sourceNames.get(id) ?? `id:${id}`;
    liveBySource.set(name, (liveBySource.get(name) ?? 0) + n);
  }
  return { drift, liveBySource };
}
