/**
 * Enforcement drift: what the state intends against what the kernel's block
 * maps hold. Pure: the caller reads the state and dumps the maps.
 *
 * Works on the raw dump records (key||struct vfp_block), so comparing a
 * million entries builds no million objects: one target text per record for
 * the state lookup, nothing else.
 */
import { formatTarget } from './address.js';
import { bootToWall, type Clocks } from './clock.js';
import { BLOCK_VALUE, EXACT_KEY } from './maps/layout.js';
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
  /** key||value records of blocked_ips (keySize EXACT_KEY) or blocked_prefixes (LPM_KEY). */
  records: Buffer;
  keySize: number;
}

export interface DriftReport {
  drift: Record<DriftKind, number>;
  /** Live entries in the maps per source name (ids without a name: `id:N`). */
  liveBySource: Map<string, number>;
}

/** Same tolerance as merge.diffEntries: the clocks are converted at one instant, to the second. */
const EXPIRY_SLACK_S = 2;

/**
 * Compare the intended set with the block maps' dumps.
 * `sourceNames`: id -> name from source_names. `now`: both clocks read once.
 */
export function compareEnforced(intended: ReadonlyMap<string, Intended>, dumps: readonly BlockDump[], sourceNames: ReadonlyMap<number, string>, now: Clocks): DriftReport {
  const drift: Record<DriftKind, number> = { missing: 0, expired_early: 0, different: 0, unintended: 0 };
  const liveBySource = new Map<string, number>();
  let matchedLive = 0;
  for (const { records, keySize } of dumps) {
    const rec = keySize + BLOCK_VALUE;
    for (let at = 0; at + rec <= records.length; at += rec) {
      const v = at + keySize;
      const expiresNs = records.readBigUInt64LE(v);
      const sourceId = records.readUInt16LE(v + 12);
      const live = expiresNs === 0n || expiresNs > now.bootNs; // as the XDP program decides
      const ip = keySize === EXACT_KEY ? formatTarget(records.readUInt32BE(at), 32) : formatTarget(records.readUInt32BE(at + 4), records.readUInt32LE(at));
      const want = intended.get(ip);
      const wantLive = want !== undefined && isLive(want, now.wallS);
      if (live) {
        const source = sourceNames.get(sourceId) ?? `id:${sourceId}`;
        liveBySource.set(source, (liveBySource.get(source) ?? 0) + 1);
      }
      if (!wantLive) {
        if (live) drift.unintended++;
        continue;
      }
      matchedLive++;
      if (!live) {
        drift.expired_early++;
        continue;
      }
      const expires = bootToWall(expiresNs, now);
      const source = sourceNames.get(sourceId) ?? `id:${sourceId}`;
      if (source !== want.source || (expires === 0) !== (want.expires === 0) || Math.abs(expires - want.expires) > EXPIRY_SLACK_S) drift.different++;
    }
  }
  let intendedLive = 0;
  for (const e of intended.values()) if (isLive(e, now.wallS)) intendedLive++;
  drift.missing = intendedLive - matchedLive;
  return { drift, liveBySource };
}
