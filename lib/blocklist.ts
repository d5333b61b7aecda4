/**
 * Blocklist operations over the pinned maps and the state on disk. Every
 * writer goes through here, so the map and the state change together: the
 * map first (enforcement), then the state (durably), under the state lock.
 */
import { existsSync } from 'node:fs';
import { formatTarget, TargetSet, type Target } from './address.js';
import { bootToWall, readClocks, wallToBoot, type Clocks } from './clock.js';
import type { Context } from './context.js';
import { MapFullError, UsageError } from './errors.js';
import {
  BLOCK_MAPS,
  BLOCK_VALUE,
  FIRST_FEED_SOURCE,
  FIXED_SOURCES,
  MAP,
  MAX_SOURCES,
  SOURCE_NAME,
  SOURCE_NAME_LEN,
  blockMapIndex,
  blockValueSourceId,
  isV6Text,
  decodeBlockValue,
  decodeSourceName,
  encodeBlockValue,
  encodeSourceName,
  keyToText,
  readBlockKey,
  records,
  writeBlockKey,
  writeBlockKey6,
} from './maps/layout.js';
import { diffEntries, freshEntry, isLive, mergeBlock, planReplace, type BlockIntent, type Change, type Divergence } from './merge.js';
import { salvage, StateCorruptError, StateError, StateNotOursError, type Entry, type Lookup } from './state.js';
import { quoted } from './quote.js';
import { describeRowProblem } from './state-row.js';
import { failAtEnd } from './closers.js';

export interface BlockRequest {
  target: Target;
  ttlS: number;
  source: string;
  reason: string | null;
}

export interface ApplyResult {
  added: number;
  extended: number;
  unchanged: number;
  /** The entry each request ended as, in request order (for up to 10,000 requests; empty beyond). */
  entries: Entry[];
}

/** Address and prefix length of a canonical IPv4 target text (already validated: digits, dots, one slash). */
function targetOf(ip: string): { addr: number; prefixlen: number } {
  let addr = 0;
  let octet = 0;
  let i = 0;
  for (; i < ip.length; i++) {
    const c = ip.charCodeAt(i);
    if (c === 46) {
      addr = addr * 256 + octet;
      octet = 0;
    } else if (c === 47) break;
    else octet = octet * 10 + c - 48;
  }
  return { addr: (addr * 256 + octet) >>> 0, prefixlen: i < ip.length ? Number(ip.slice(i + 1)) : 32 };
}

/** Source name <-> id, kept in the pinned source_names map (shared with the scripts). */
export async function sourceRegistry(ctx: Context): Promise<Map<string, number>> {
  const names = new Map<string, number>(Object.entries(FIXED_SOURCES));
  for (const [key, value] of records(await ctx.maps.dump(ctx.pin(MAP.sourceNames)), 4, SOURCE_NAME_LEN)) {
    const name = decodeSourceName(value);
    if (name) names.set(name, key.readUInt32LE(0));
  }
  return names;
}

/**
 * Ids for source names, registering new names. A long-lived caller (consume)
 * sets ctx.sourceIdCache: then the registry is read again only when a name is
 * new or the source_names map was created anew (its map id changed).
 */
export async function sourceIds(ctx: Context, wanted: Iterable<string>): Promise<Map<string, number>> {
  const names = [...wanted];
  const cache = ctx.sourceIdCache;
  let mapId = -1;
  if (cache) {
    mapId = (await ctx.maps.info(ctx.pin(MAP.sourceNames))).id;
    if (cache.mapId === mapId && names.every((n) => cache.ids.has(n))) return cache.ids;
  }
  const ids = await sourceRegistry(ctx);
  const used = new Set(ids.values());
  const fresh: Buffer[] = [];
  for (const name of names) {
    if (ids.has(name)) continue;
    if (!SOURCE_NAME.test(name)) throw new UsageError(`bad source name ${quoted(name)}: 1-31 of A-Z a-z 0-9 . _ -`);
    let id = FIRST_FEED_SOURCE;
    while (used.has(id)) id++;
    if (id >= MAX_SOURCES) throw new UsageError(`no free source id for ${quoted(name)}: all ${MAX_SOURCES} in use`);
    used.add(id);
    ids.set(name, id);
    const key = Buffer.alloc(4);
    key.writeUInt32LE(id);
    fresh.push(key, encodeSourceName(name));
  }
  if (fresh.length) await ctx.maps.update(ctx.pin(MAP.sourceNames), Buffer.concat(fresh), fresh.length / 2);
  if (cache) ctx.sourceIdCache = { mapId, ids };
  return ids;
}

/** Thrown by writeEntries when a map fills: `written` are the entries that did reach the kernel. */
export class PartialWrite extends Error {
  constructor(readonly full: MapFullError, readonly written: Entry[]) {
    super(full.message);
  }
}

/** Write the block key of a canonical target text (either family) at `at`. */
function writeKeyOf(into: Buffer, at: number, ip: string, group: number): void {
  if (group >= 2) return writeBlockKey6(into, at, ip);
  const t = targetOf(ip);
  writeBlockKey(into, at, t.addr, t.prefixlen);
}

/** Entries grouped by BLOCK_MAPS index. */
function groupByMap<T>(items: readonly T[], ipOf: (x: T) => string): T[][] {
  const groups: T[][] = [[], [], [], []];
  for (const x of items) groups[blockMapIndex(ipOf(x))]!.push(x);
  return groups;
}

/** Write entries into the maps, prefixes first (they are few), IPv4 then IPv6. */
async function writeEntries(ctx: Context, entries: readonly Entry[], now: Clocks, whileWriting?: () => void): Promise<void> {
  const ids = await sourceIds(ctx, new Set(entries.map((e) => e.source)));
  const groups = groupByMap(entries, (e) => e.ip);
  const written: Entry[] = [];
  // The caller's own work overlaps the largest batch, the one the kernel takes longest over.
  const overlap = groups.reduce((best, g, i) => (g.length > groups[best]!.length ? i : best), 0);
  for (const g of [1, 0, 3, 2]) {
    const group = groups[g]!;
    if (!group.length) continue;
    const [map, keySize] = BLOCK_MAPS[g]!;
    const rec = keySize + BLOCK_VALUE;
    const buf = Buffer.alloc(group.length * rec);
    for (let i = 0; i < group.length; i++) {
      const e = group[i]!;
      writeKeyOf(buf, i * rec, e.ip, g);
      encodeBlockValue({ expiresNs: wallToBoot(e.expires, now), addedUnix: e.added, sourceId: ids.get(e.source) ?? 0 }, buf, i * rec + keySize);
    }
    try {
      if (g !== overlap || !whileWriting) {
        await ctx.maps.update(ctx.pin(map), buf, group.length);
      } else {
        // The kernel takes the batch in the helper, on another core: do the caller's own work meanwhile,
        // but only once the records are all in the helper's pipe (this thread's event loop feeds it).
        let sent!: () => void;
        const inPipe = new Promise<void>((resolve) => (sent = resolve));
        const pending = ctx.maps.update(ctx.pin(map), buf, group.length, sent);
        await Promise.race([inPipe, pending.catch(() => undefined)]);
        const work = whileWriting;
        whileWriting = undefined;
        let failed: { err: unknown } | undefined;
        try {
          work();
        } catch (err) {
          failed = { err };
        }
        // The map's outcome first (a full map rolls the work back anyway), then the work's own failure.
        await pending;
        if (failed) throw failed.err;
      }
    } catch (err) {
      if (err instanceof MapFullError) throw new PartialWrite(err, written.concat(group.slice(0, err.applied)));
      throw err;
    }
    for (const e of group) written.push(e); // not push(...group): a million arguments overflow the stack
  }
  whileWriting?.();
}

export interface ApplyOptions {
  /**
   * The caller guarantees one request per target (a parsed list file), so
   * the per-target merge map a million-line load would pay for is skipped.
   */
  distinct?: boolean;
  /**
   * Bookkeeping written in the same transaction as the entries, so both or
   * neither are persisted (a consumer's stream offset: store.setConsumerOffset).
   */
  record?: (store: Context['store']) => void;
}

/** applyBlocks inside a transaction: the result, and the map-full error to throw once what fit is committed. */
async function blocksInTx(ctx: Context, reqs: readonly BlockRequest[], opts: ApplyOptions): Promise<{ result: ApplyResult; full?: MapFullError; before: Lookup }> {
  const now = readClocks();
  const state = ctx.store.lookup(reqs.map((r) => r.target.text));
  const entries: Entry[] = [];
  const changed: Entry[] = [];
  const result: ApplyResult = { added: 0, extended: 0, unchanged: 0, entries: [] };
  const merged = new Map<string, { entry: Entry; change: Change }>();
  const intent = (r: BlockRequest): BlockIntent => ({ ip: r.target.text, source: r.source, reason: r.reason, ttlS: r.ttlS });
  for (const r of reqs) {
    const ip = r.target.text;
    if (opts.distinct) {
      const prev = state.get(ip);
      if (!prev) {
        // New target (the bulk of a load): the entry mergeBlock would make, without its intent and result objects.
        const e = freshEntry(ip, r.source, r.reason, r.ttlS, now.wallS);
        entries.push(e);
        changed.push(e);
        result.added++;
        continue;
      }
      const m = mergeBlock(prev, intent(r), now.wallS);
      entries.push(m.entry);
      if (m.change !== 'unchanged') changed.push(m.entry);
      result[m.change]++;
      continue;
    }
    const prev = merged.get(ip);
    const m = mergeBlock(prev?.entry ?? state.get(ip), intent(r), now.wallS);
    merged.set(ip, prev && prev.change === 'added' ? { entry: m.entry, change: 'added' } : m);
  }
  for (const m of merged.values()) {
    entries.push(m.entry);
    if (m.change !== 'unchanged') changed.push(m.entry);
    result[m.change]++;
  }
  ctx.store.savepoint('blocks');
  let full: MapFullError | undefined;
  try {
    // The rows are written while the kernel takes the batch on another core; committed after it.
    await writeEntries(ctx, entries, now, () => ctx.store.commit(changed, []));
  } catch (err) {
    if (!(err instanceof PartialWrite)) throw err;
    // Keep what fit: those entries are enforced, so the state must know them.
    ctx.store.rollbackTo('blocks');
    const fit = new Set(err.written.map((e) => e.ip));
    ctx.store.commit(changed.filter((e) => fit.has(e.ip)), []);
    err.full.appliedTargets = [...fit];
    full = err.full;
  }
  opts.record?.(ctx.store);
  // Per-request entries only when a caller may print them: a bulk load has no use for a million.
  if (reqs.length <= 10_000) result.entries = opts.distinct ? entries : reqs.map((r) => merged.get(r.target.text)!.entry);
  return { result, full, before: state };
}

/**
 * Block targets: in one state transaction, the maps first (enforcement), then
 * the state rows; returns once the transaction is committed, so what it
 * reports is on disk. A full map keeps (and records) what fit, then throws
 * MapFullError. A state failure (disk full, locked past the wait, unreadable
 * file) throws StateError naming the database.
 */
export async function applyBlocks(ctx: Context, reqs: readonly BlockRequest[], opts: ApplyOptions = {}): Promise<ApplyResult> {
  const { result, full } = await inState(ctx, () => blocksInTx(ctx, reqs, opts));
  if (full) throw full;
  return result;
}

/**
 * Run fn in one state transaction. If the state cannot be written after the
 * maps were (disk full at commit), the error says so: the change is enforced
 * now but not persisted, and how to make the state agree.
 */
async function inState<T>(ctx: Context, fn: () => Promise<T>): Promise<T> {
  let mapsTouched = false;
  try {
    return await ctx.store.transaction(async () => {
      const out = await fn();
      mapsTouched = true;
      return out;
    });
  } catch (err) {
    if (err instanceof StateError && mapsTouched) {
      err.message += '. NOT persisted: the maps already enforce the change, the state does not record it (a reboot would lose it); once the state can be written, run vosctl reconcile --from map';
    }
    throw err;
  }
}

/** Targets by the map they live in, with their keys (maps with no target left out). */
function byMap(ips: readonly string[]): Array<{ pin: string; ips: string[]; keys: Buffer[] }> {
  return groupByMap(ips, (ip) => ip)
    .map((group, g) => {
      const [pin, keySize] = BLOCK_MAPS[g]!;
      return { pin, ips: group, keys: group.map((ip) => {
        const key = Buffer.alloc(keySize);
        writeKeyOf(key, 0, ip, g);
        return key;
      }) };
    })
    .filter((g) => g.ips.length);
}

async function deleteTargets(ctx: Context, ips: readonly string[]): Promise<{ deleted: number; absent: number }> {
  const out = { deleted: 0, absent: 0 };
  for (const g of byMap(ips)) {
    const r = await ctx.maps.delete(ctx.pin(g.pin), Buffer.concat(g.keys));
    out.deleted += r.deleted;
    out.absent += r.absent;
  }
  return out;
}

/** Which of these targets the maps hold: one lookup request per map, not a dump of a million entries. */
async function inMaps(ctx: Context, ips: readonly string[]): Promise<Set<string>> {
  const found = new Set<string>();
  for (const g of byMap(ips)) {
    if (!g.keys.length) continue;
    (await ctx.maps.lookup(ctx.pin(g.pin), Buffer.concat(g.keys))).forEach((hit, i) => hit && found.add(g.ips[i]!));
  }
  return found;
}

/**
 * Unblock targets (idempotent). Returns those that were blocked (in map or state) and those that were not.
 * `source`: lift only that source's entries (a feed withdrawing its decision must not lift an
 * operator's block of the same address); others are returned in `kept`.
 */
export async function applyUnblocks(
  ctx: Context,
  targets: readonly Target[],
  opts: Pick<ApplyOptions, 'record'> & { source?: string } = {},
): Promise<{ removed: string[]; absent: string[]; kept: string[] }> {
  return inState(ctx, async () => {
    let ips = [...new Set(targets.map((t) => t.text))];
    let state = ctx.store.lookup(ips);
    const kept: string[] = [];
    if (opts.source !== undefined) {
      const own = (ip: string): boolean => state.get(ip)?.source === opts.source;
      for (const ip of ips) if (state.has(ip) && !own(ip)) kept.push(ip);
      ips = ips.filter((ip) => !state.has(ip) || own(ip));
      state = new Map([...state].filter(([ip]) => own(ip)));
    }
    const live = await inMaps(ctx, ips);
    await deleteTargets(ctx, ips);
    const removed = ips.filter((ip) => state.has(ip) || live.has(ip));
    // Every named target goes from the state, also a row skipped as not valid (its source unreadable, say): unblock is how such a row is removed.
    ctx.store.commit([], ips);
    opts.record?.(ctx.store);
    const gone = new Set(removed);
    return { removed, absent: ips.filter((ip) => !gone.has(ip)), kept };
  });
}

/**
 * Make `source`'s set exactly `reqs`, in one state transaction: add and
 * extend first, then remove what the list no longer has (so the old set is
 * never gone before the new one is in). A full map stops before removing.
 */
export async function replaceSource(ctx: Context, source: string, reqs: readonly BlockRequest[], opts: ApplyOptions = {}): Promise<ApplyResult & { removed: number }> {
  const { result, full, removed } = await inState(ctx, async () => {
    const { result, full, before } = await blocksInTx(ctx, reqs, opts);
    if (full) return { result, full, removed: 0 };
    const keep = new TargetSet();
    for (const r of reqs) keep.add(r.target);
    // The source's rows before this transaction: what blocksInTx added is all in keep. A complete lookup already holds them.
    const inState = planReplace(before.complete ? before.values() : ctx.store.targetsOf(source), source, { has: (ip) => (isV6Text(ip) ? keep.hasV6(ip) : keep.has(targetOf(ip))) });
    const gone = new Set([...inState, ...(await mapTargetsNotKept(ctx, source, keep))]);
    await deleteTargets(ctx, [...gone]);
    ctx.store.commit([], inState);
    return { result, full, removed: gone.size };
  });
  if (full) throw full;
  return { ...result, removed };
}

/**
 * The map side of planReplace: `source`'s targets in the maps that `keep`
 * lacks. Records stay numbers until one is picked, so a million-entry map
 * costs no million strings and objects.
 */
async function mapTargetsNotKept(ctx: Context, source: string, keep: TargetSet): Promise<string[]> {
  const id = (await sourceRegistry(ctx)).get(source);
  const out: string[] = [];
  if (id === undefined) return out;
  for (const [map, keySize] of await presentBlockMaps(ctx)) {
    const buf = await ctx.maps.dump(ctx.pin(map));
    const rec = keySize + BLOCK_VALUE;
    const v6 = map === MAP.blockedIps6 || map === MAP.blockedPrefixes6;
    for (let at = 0; at + rec <= buf.length; at += rec) {
      if (blockValueSourceId(buf, at + keySize) !== id) continue;
      if (v6) {
        const text = keyToText(buf.subarray(at, at + keySize));
        if (!keep.hasV6(text)) out.push(text);
        continue;
      }
      const t = readBlockKey(buf, at, keySize);
      if (!keep.has(t)) out.push(formatTarget(t.addr, t.prefixlen));
    }
  }
  return out;
}

/**
 * The block maps that exist: all four, or the IPv4 two in a pin folder made
 * before IPv6 (load.sh creates the IPv6 maps at the next load or attach).
 */
export async function presentBlockMaps(ctx: Context): Promise<ReadonlyArray<(typeof BLOCK_MAPS)[number]>> {
  return BLOCK_MAPS.filter(([map], i) => i < 2 || existsSync(ctx.pin(map)));
}

/** Every entry in the block maps (both families), as state-like entries (source by name, wall-clock expiry). */
export async function mapEntries(ctx: Context, now: Clocks = readClocks()): Promise<Map<string, Entry>> {
  const byId = new Map<number, string>([...(await sourceRegistry(ctx))].map(([n, id]) => [id, n]));
  const out = new Map<string, Entry>();
  for (const [map, keySize] of await presentBlockMaps(ctx)) {
    for (const [key, value] of records(await ctx.maps.dump(ctx.pin(map)), keySize, BLOCK_VALUE)) {
      const v = decodeBlockValue(value);
      const ip = keyToText(key);
      out.set(ip, { ip, source: byId.get(v.sourceId) ?? `id:${v.sourceId}`, reason: null, added: v.addedUnix, expires: bootToWall(v.expiresNs, now) });
    }
  }
  return out;
}

export interface ListedEntry {
  ip: string;
  source: string;
  reason: string | null;
  added: string;
  expires: string | null;
}

/** What is enforced now: live map entries, with the reason from the state where it has one. */
export async function listEntries(ctx: Context, source?: string): Promise<ListedEntry[]> {
  const now = readClocks();
  const state = source === undefined ? ctx.store.all() : new Map([...ctx.store.iterate(source)].map((e) => [e.ip, e]));
  const out: ListedEntry[] = [];
  for (const e of (await mapEntries(ctx, now)).values()) {
    if (!isLive(e, now.wallS) || (source && e.source !== source)) continue;
    // Where the state agrees with the map (within the clocks' rounding), its wall-clock times are the exact ones.
    const s = state.get(e.ip);
    const agreed = s && s.source === e.source && (s.expires === 0) === (e.expires === 0) && Math.abs(s.expires - e.expires) <= 2 ? s : e;
    out.push({
      ip: e.ip,
      source: e.source,
      reason: s?.reason ?? null,
      added: new Date(agreed.added * 1000).toISOString(),
      expires: agreed.expires ? new Date(agreed.expires * 1000).toISOString() : null,
    });
  }
  return out.sort((a, b) => a.ip.localeCompare(b.ip, 'en', { numeric: true }));
}

/**
 * After a reboot: put every unexpired state entry back with its remaining
 * lifetime; purge the expired. A full map restores what fits and throws
 * MapFullError saying how many were not restored (they stay in the state).
 */
export async function restoreFromState(ctx: Context): Promise<{ restored: number; purged: number }> {
  let notRestored: { full: MapFullError; restored: number; live: number } | undefined;
  // A state folder that cannot be written (full, read-only) is still restored from; the expired stay.
  const readOnly = ctx.store.openedReadOnly();
  const body = async () => {
    const now = readClocks();
    const live: Entry[] = [];
    const expired: string[] = [];
    for (const e of ctx.store.iterate()) if (isLive(e, now.wallS)) live.push(e);
    else expired.push(e.ip);
    try {
      await writeEntries(ctx, live, now);
    } catch (err) {
      if (!(err instanceof PartialWrite)) throw err;
      notRestored = { full: err.full, restored: err.written.length, live: live.length };
    }
    if (!readOnly) ctx.store.commit([], expired);
    return { restored: notRestored?.restored ?? live.length, purged: readOnly ? 0 : expired.length };
  };
  const out = readOnly ? await body() : await inState(ctx, body);
  if (notRestored) {
    const { full, restored, live } = notRestored;
    throw new MapFullError(full.map, full.capacity, restored, live, `restored ${restored} of ${live} entries: ${full.map} is full at ${full.capacity}; the ${live - restored} not restored stay in the state. Make room (vosctl detach --purge, then attach with --block-capacity/--prefix-capacity of at least the numbers vosctl status shows) and attach again`);
  }
  return out;
}

/** Remove expired entries from the maps and the state. */
export async function collectExpired(ctx: Context): Promise<{ removed: number }> {
  return inState(ctx, async () => {
    const now = readClocks();
    const inState = ctx.store.expired(now.wallS);
    const gone = new Set<string>(inState);
    for (const e of (await mapEntries(ctx, now)).values()) if (!isLive(e, now.wallS)) gone.add(e.ip);
    await deleteTargets(ctx, [...gone]);
    ctx.store.commit([], inState);
    return { removed: gone.size };
  });
}

export interface FillLevel {
  entries: number;
  capacity: number;
  /** entries / capacity, 4 decimals */
  fill: number;
}

/** How full a pinned map is (a dump: costly on a big map, so for status and for errors). */
export async function fillLevel(ctx: Context, name: string): Promise<FillLevel> {
  const info = await ctx.maps.info(ctx.pin(name));
  const entries = (await ctx.maps.dump(ctx.pin(name))).length / (info.key_size + info.value_size);
  return { entries, capacity: info.max_entries, fill: Number((entries / info.max_entries).toFixed(4)) };
}

export async function divergence(ctx: Context): Promise<Divergence> {
  const now = readClocks();
  return diffEntries(ctx.store.all(), await mapEntries(ctx, now), now.wallS);
}

/** State entries a reconcile without --from may delete (entries unblocked by hand with bpftool); more asks the operator to choose. */
export const RECONCILE_SAFE_DELETES = 10;

/**
 * Make map and state agree. from='map': the map is the truth (blocks and
 * unblocks made by hand with bpftool are adopted). from='state': the state is
 * the truth (the map is rewritten from it: after a reboot or an interrupted
 * command). from undefined: as 'map', but refused (UsageError) when that
 * would delete more than RECONCILE_SAFE_DELETES state entries or the maps are
 * empty while the state is not. A damaged state file is set aside; the rows
 * still readable in it are salvaged and merged with the maps (both are put
 * in the state and the maps, nothing deleted).
 */
export async function reconcile(ctx: Context, from: 'map' | 'state' | undefined): Promise<Divergence & { setAside?: string; salvaged?: number }> {
  let setAside: string | undefined;
  let salvaged: Entry[] = [];
  if (from !== 'state') {
    // A damaged state is rebuilt from what is readable in it and from the maps: the file is set aside, never deleted.
    try {
      // quick_check too: damage in pages a scan of the rows never reads (an index) counts as well.
      ctx.store.check();
      ctx.store.all();
    } catch (err) {
      if (err instanceof StateNotOursError && from === 'map') {
        // Not a state database at all (a lookalike): no row in it is trusted; the maps rebuild the state.
        setAside = ctx.store.setAside('not-ours');
      } else if (err instanceof StateCorruptError) {
        setAside = ctx.store.setAside();
        const got = salvage(setAside);
        salvaged = got.entries;
        // Rows that read without error but are not valid (garbage from a damaged page) go neither into the state nor the maps.
        for (const p of got.invalid.slice(0, 20)) process.stderr.write(`vosctl: ${describeRowProblem(p, setAside)} (not salvaged)\n`);
        if (got.invalid.length) {
          failAtEnd(`${setAside}#salvage`, new StateError(setAside, 'BAD_ROWS', `${got.invalid.length} row${got.invalid.length === 1 ? '' : 's'} read from the damaged ${setAside} ${got.invalid.length === 1 ? 'was' : 'were'} not valid and not salvaged${got.invalid.length > 20 ? ' (the first 20 named above)' : ' (named above)'}; every sound row was; what the maps hold was kept`));
        }
      } else throw err;
    }
  }
  const d = await inState(ctx, async () => {
    const now = readClocks();
    if (salvaged.length) ctx.store.commit(salvaged.filter((e) => isLive(e, now.wallS)), []);
    const state = ctx.store.all();
    const inMap = await mapEntries(ctx, now);
    const d = diffEntries(state, inMap, now.wallS);
    if (from === undefined && !setAside && d.onlyInState.length && (d.onlyInState.length > RECONCILE_SAFE_DELETES || inMap.size === 0)) {
      throw new UsageError(
        `reconcile would delete ${d.onlyInState.length} entries from the state that the maps do not hold${inMap.size === 0 ? ' (the maps are empty: recreated?)' : ''}; nothing was changed. ` +
          'After a reboot or an interrupted command the state is the truth: vosctl reconcile --from state. Only if the maps were changed by hand with bpftool: vosctl reconcile --from map',
      );
    }
    if (setAside) {
      // Merge: the salvaged rows go back into the maps, the maps' entries into the state.
      ctx.store.commit(d.onlyInMap.map((ip) => inMap.get(ip)!), []);
      await writeEntries(ctx, d.onlyInState.map((ip) => state.get(ip)!), now);
    } else if (from !== 'state') {
      const puts = [...d.onlyInMap, ...d.differing].map((ip) => ({ ...inMap.get(ip)!, reason: state.get(ip)?.reason ?? inMap.get(ip)!.reason }));
      ctx.store.commit(puts, d.onlyInState);
    } else {
      await writeEntries(ctx, [...d.onlyInState, ...d.differing].map((ip) => state.get(ip)!), now);
      await deleteTargets(ctx, d.onlyInMap);
    }
    return d;
  });
  return { ...d, setAside, salvaged: setAside ? salvaged.length : undefined };
}
