/**
 * The drift check (maps against state), run in a child process of its own
 * (`vosctl drift-check`, hidden): its own SQLite connection, its own
 * vfp-maptool, its own event loop. At 1,000,000 entries the comparison and
 * the state load take a second or more of CPU; in a child they stall
 * neither the scrapes nor the consumer's enforcement, and a check that hangs
 * can be killed with everything it started.
 */
import { execa, type ResultPromise } from 'execa';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { parseTarget } from '../address.js';
import { readClocks } from '../clock.js';
import type { Context } from '../context.js';
import { compareEnforced, DRIFT_KINDS, type BlockDump, type DriftKind, type Intended, type Suspect } from '../drift.js';
import { RuntimeError } from '../errors.js';
import { BLOCK_MAPS, BLOCK_VALUE, FIXED_SOURCES, MAP, SOURCE_NAME_LEN, blockKey, blockMapIndex, decodeSourceName, isV6Text, records, writeBlockKey6 } from '../maps/layout.js';
import { ROOT } from '../paths.js';
import { intendedEntries } from './intended.js';

export interface DriftResult {
  drift: Record<DriftKind, number>;
  /** Live entries in the maps per source name. */
  liveBySource: Array<[string, number]>;
  /** Entries the maps held. */
  entries: number;
  /** Discrepancies of the first pass that changed during the check (a writer's work), not counted. */
  settled: number;
  /** Seconds the check took (state read, map dumps, comparison, re-verification). */
  seconds: number;
}

/**
 * Suspects re-verified while holding the state's write lock (point lookups:
 * milliseconds). Beyond this many (a wiped map), they are re-verified
 * without the lock, so no writer ever waits on a large re-verification.
 */
const LOCKED_RECHECK_MAX = 10_000;

/** id -> name of the sources registered in source_names (array slots holding a name). */
export async function registeredSources(ctx: Context): Promise<Map<number, string>> {
  const out = new Map<number, string>();
  for (const [key, value] of records(await ctx.maps.dump(ctx.pin(MAP.sourceNames)), 4, SOURCE_NAME_LEN)) {
    const name = decodeSourceName(value);
    if (name) out.set(key.readUInt32LE(0), name);
  }
  return out;
}

const sameRow = (a: Intended | undefined, b: Intended | undefined): boolean => (a === undefined ? b === undefined : b !== undefined && a.source === b.source && a.expires === b.expires);

/**
 * Compare the maps with the state, counting only what a writer did not
 * change during the check:
 * 1. the state is read in one statement (one SQLite read snapshot), then
 *    the maps are dumped;
 * 2. each discrepancy is looked up again, in the state and in its map,
 *    while holding the state's write lock (every writer, scripts included,
 *    changes map and state inside that lock, so none is half-way); it is
 *    counted only if its state row is the one of the snapshot and its map
 *    presence is the one of the dump. A block or unblock that landed
 *    between the snapshot and the dump changed one of them: not drift. A
 *    map entry removed behind the state's back changed neither: drift.
 */
export async function checkDriftOnce(ctx: Context): Promise<DriftResult> {
  const started = performance.now();
  const intended = intendedEntries(ctx);
  const names = new Map([...Object.entries(FIXED_SOURCES).map(([n, id]) => [id, n] as const), ...(await registeredSources(ctx))]);
  const dumps: BlockDump[] = [];
  // The IPv6 maps may be missing in a pin folder made before IPv6: no dump, not an error.
  for (const [map, keySize] of BLOCK_MAPS.filter(([m], i) => i < 2 || existsSync(ctx.pin(m)))) {
    dumps.push({ records: await ctx.maps.dump(ctx.pin(map)), keySize });
  }
  const suspects: Suspect[] = [];
  const report = compareEnforced(intended, dumps, names, readClocks(), suspects);
  let settled = 0;
  if (suspects.length) {
    const recheck = async (): Promise<void> => {
      const now = ctx.store.lookup(suspects.map((s) => s.target));
      const byMap = new Map<string, { keys: Buffer[]; at: number[] }>();
      suspects.forEach((s, i) => {
        const [map, keySize] = BLOCK_MAPS[blockMapIndex(s.target)];
        let key: Buffer;
        if (isV6Text(s.target)) {
          key = Buffer.alloc(keySize);
          writeBlockKey6(key, 0, s.target);
        } else {
          const t = parseTarget(s.target);
          if (!t.ok) return;
          key = blockKey(t.target.addr, t.target.prefixlen);
        }
        const m = byMap.get(map) ?? { keys: [], at: [] };
        m.keys.push(key);
        m.at.push(i);
        byMap.set(map, m);
      });
      const present = new Uint8Array(suspects.length);
      for (const [map, m] of byMap) (await ctx.maps.lookup(ctx.pin(map), Buffer.concat(m.keys))).forEach((p, j) => (present[m.at[j]!] = p ? 1 : 0));
      suspects.forEach((s, i) => {
        const stillPresent = present[i] === 1;
        if (sameRow(intended.get(s.target), now.get(s.target)) && stillPresent === (s.kind !== 'missing')) return;
        report.drift[s.kind]--;
        settled++;
      });
    };
    if (suspects.length <= LOCKED_RECHECK_MAX) await ctx.store.transaction(recheck);
    else await recheck();
  }
  const entries = dumps.reduce((n, d) => n + d.records.length / (d.keySize + BLOCK_VALUE), 0);
  return { drift: report.drift, liveBySource: [...report.liveBySource], entries, settled, seconds: (performance.now() - started) / 1000 };
}

/**
 * Run one drift check in a child `vosctl drift-check` for this context's pin
 * and state folders. `signal` ends it (SIGTERM, then SIGKILL after 2 s); a
 * check is also ended past `timeoutMs`. Its vfp-maptool exits with it (its
 * stdin closes).
 * @throws RuntimeError with the child's words when it fails or is ended.
 */
export async function checkDriftInChild(ctx: Context, signal: AbortSignal, timeoutMs: number): Promise<DriftResult> {
  const args = [join(ROOT, 'bin/vosctl'), 'drift-check', '--pin-dir', ctx.settings.pinDir, '--state-dir', ctx.settings.stateDir, '--log-level', 'error'];
  const child: ResultPromise = execa(process.execPath, args, { reject: false, cancelSignal: signal, forceKillAfterDelay: 2000, timeout: timeoutMs, stdin: 'ignore' });
  const r = await child;
  if (r.isCanceled) throw new RuntimeError('drift check ended (stopping)');
  if (r.timedOut) throw new RuntimeError(`drift check took over ${timeoutMs / 1000} s; ended`);
  if (r.exitCode !== 0) throw new RuntimeError(`drift check failed: ${String(r.stderr).trim() || `exit ${r.exitCode}`}`);
  const out = JSON.parse(String(r.stdout)) as DriftResult;
  for (const k of DRIFT_KINDS) if (typeof out.drift?.[k] !== 'number') throw new RuntimeError(`drift check answered without ${k}`);
  return out;
}
