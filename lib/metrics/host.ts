/**
 * What every host exports: the XDP counters, map fill levels, the program's
 * attachments (read at each scrape), and enforcement drift with the live
 * entries per source (read every drift interval, in the background).
 *
 * A scrape takes no state lock and writes no map: the maps are read with
 * batch lookups, which the XDP program never waits on (its lookups are RCU).
 * A scrape never waits on a drift check: it serves the last completed one.
 * The check itself runs in a child process (driftcheck.ts), so it blocks
 * neither scrapes nor a consumer sharing this process.
 */
import { Counter, Gauge, type Registry } from 'prom-client';
import type { Context } from '../context.js';
import { DRIFT_KINDS } from '../drift.js';
import { attachments, pinnedProgId, readCounters } from '../maps/bpftool.js';
import { MAP, splitStatName } from '../maps/layout.js';
import { checkDriftInChild, registeredSources } from './driftcheck.js';

export const PREFIX = 'vos_fastpath_';

/** Maps whose fill level is exported: the hash and LPM maps that grow. */
const FILLED_MAPS = [MAP.blockedIps, MAP.blockedPrefixes, MAP.allowIps, MAP.optionsAllow, MAP.blockedIps6, MAP.blockedPrefixes6, MAP.allowIps6, MAP.optionsAllow6] as const;

export interface HostMetricsOptions {
  /** Interfaces that should run the program: each gets a program_attached series, 0 when it does not. */
  ifaces: readonly string[];
  /** Seconds between drift checks; 0 = none. */
  driftIntervalS: number;
}

export class HostMetrics {
  private readonly packets: Counter<'reason' | 'family'>;
  private readonly bytes: Counter<'reason' | 'family'>;
  private readonly entries: Gauge<'map'>;
  private readonly capacity: Gauge<'map'>;
  private readonly attached: Gauge<'iface'>;
  private readonly bySource: Gauge<'source'>;
  private readonly drift: Gauge<'kind'>;
  private readonly driftSeconds: Gauge;
  private readonly driftTime: Gauge;
  private timer?: NodeJS.Timeout;
  private checking?: Promise<void>;
  /** Ends the running check's child process on stop(). */
  private readonly stopping = new AbortController();
  /** Parts of the scrape failing now: logged when they start failing and when they recover, not at every scrape. */
  private readonly failing = new Set<string>();

  /** `ctx`: its own map server (Context.withOwnMaps), the state it compares with. */
  constructor(
    private readonly ctx: Context,
    registry: Registry,
    private readonly o: HostMetricsOptions,
  ) {
    const registers = [registry];
    this.packets = new Counter({ name: `${PREFIX}packets_total`, help: 'Packets the XDP program judged, by reason (as vosctl stats) and address family (ipv4, ipv6; none for frames that are not IP), summed over CPUs.', labelNames: ['reason', 'family'], registers });
    this.bytes = new Counter({ name: `${PREFIX}bytes_total`, help: 'Bytes of the packets the XDP program judged, by reason and address family, summed over CPUs.', labelNames: ['reason', 'family'], registers });
    this.entries = new Gauge({ name: `${PREFIX}map_entries`, help: 'Entries in a pinned map (live and expired alike, as the kernel holds them).', labelNames: ['map'], registers });
    this.capacity = new Gauge({ name: `${PREFIX}map_capacity`, help: 'Most entries a pinned map can hold (max_entries).', labelNames: ['map'], registers });
    this.attached = new Gauge({ name: `${PREFIX}program_attached`, help: '1 if the pinned vos-fastpath program runs on the interface, else 0.', labelNames: ['iface'], registers });
    this.bySource = new Gauge({ name: `${PREFIX}blocklist_entries`, help: 'Live (unexpired) block entries in the maps per source, as of the last drift check.', labelNames: ['source'], registers });
    this.drift = new Gauge({ name: `${PREFIX}enforcement_drift_entries`, help: 'Entries where the kernel maps and the intended state disagree, by kind (missing, expired_early, different, unintended), as of the last drift check.', labelNames: ['kind'], registers });
    this.driftSeconds = new Gauge({ name: `${PREFIX}drift_check_duration_seconds`, help: 'How long the last drift check took (map dumps and comparison).', registers });
    this.driftTime = new Gauge({ name: `${PREFIX}drift_check_timestamp_seconds`, help: 'Unix time the last drift check completed.', registers });
  }

  /** Start the periodic drift check (first one at once). */
  start(): void {
    if (this.o.driftIntervalS <= 0) return;
    void this.checkDrift();
    this.timer = setInterval(() => void this.checkDrift(), this.o.driftIntervalS * 1000);
    this.timer.unref();
  }

  /** Stop the checks: a running one is ended (its child gets SIGTERM, SIGKILL 2 s later), so this returns within seconds. */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.stopping.abort();
    await this.checking;
  }

  /** Read the counters, fill levels and attachments; set the metrics. Called before each scrape. */
  async collect(): Promise<void> {
    const [counters, fills, attachedTo] = await Promise.all([
      this.part('counters', () => readCounters(this.ctx.pin(MAP.stats))),
      this.part('maps', () => this.fillLevels()),
      this.part('program', () => this.attachedIfaces()),
    ]);
    this.packets.reset();
    this.bytes.reset();
    for (const [name, v] of Object.entries(counters ?? {})) {
      const labels = splitStatName(name);
      this.packets.inc(labels, v.packets);
      this.bytes.inc(labels, v.bytes);
    }
    this.entries.reset();
    this.capacity.reset();
    for (const f of fills ?? []) {
      this.entries.set({ map: f.map }, f.entries);
      this.capacity.set({ map: f.map }, f.capacity);
    }
    this.attached.reset();
    for (const iface of this.o.ifaces) this.attached.set({ iface }, 0);
    for (const iface of attachedTo ?? []) this.attached.set({ iface }, 1);
  }

  /** One part of a scrape: a failure (maps not pinned yet, bpftool missing) leaves its series out, not the scrape. */
  private async part<T>(what: string, fn: () => Promise<T>): Promise<T | undefined> {
    try {
      const v = await fn();
      if (this.failing.delete(what)) this.ctx.log.info('metrics: readable again', { action: 'metrics', part: what });
      return v;
    } catch (err) {
      if (!this.failing.has(what)) this.ctx.log.warn('metrics: cannot read; its series are left out until it can', { action: 'metrics', part: what, error: (err as Error).message });
      this.failing.add(what);
      return undefined;
    }
  }

  private async fillLevels(): Promise<Array<{ map: string; entries: number; capacity: number }>> {
    const out: Array<{ map: string; entries: number; capacity: number }> = [];
    for (const map of FILLED_MAPS) {
      const pin = this.ctx.pin(map);
      const info = await this.ctx.maps.info(pin).catch(() => undefined);
      if (!info) continue; // not pinned (older layout, not attached yet)
      out.push({ map, entries: await this.ctx.maps.count(pin), capacity: info.max_entries });
    }
    const info = await this.ctx.maps.info(this.ctx.pin(MAP.sourceNames)).catch(() => undefined);
    if (info) out.push({ map: MAP.sourceNames, entries: (await registeredSources(this.ctx)).size, capacity: info.max_entries });
    return out;
  }

  private async attachedIfaces(): Promise<string[]> {
    const id = await pinnedProgId(this.ctx.pin('prog'));
    return id === null ? [] : (await attachments(id)).map((a) => a.iface);
  }

  /** One drift check; a check still running is not started twice. */
  checkDrift(): Promise<void> {
    this.checking ??= this.runDriftCheck().finally(() => (this.checking = undefined));
    return this.checking;
  }

  private async runDriftCheck(): Promise<void> {
    if (this.stopping.signal.aborted) return;
    try {
      // A check may run for several intervals at most, then it is ended and the next one starts.
      const r = await checkDriftInChild(this.ctx, this.stopping.signal, Math.max(60, 5 * this.o.driftIntervalS) * 1000);
      for (const kind of DRIFT_KINDS) this.drift.set({ kind }, r.drift[kind]);
      this.bySource.reset();
      for (const [source, n] of r.liveBySource) this.bySource.set({ source }, n);
      this.driftSeconds.set(r.seconds);
      this.driftTime.set(Date.now() / 1000);
      const total = DRIFT_KINDS.reduce((n, k) => n + r.drift[k], 0);
      if (total) this.ctx.log.warn('enforcement drift: maps and state disagree', { action: 'drift', ...r.drift, entries: r.entries });
      else this.ctx.log.debug('drift check', { action: 'drift', seconds: r.seconds, entries: r.entries, settled: r.settled });
    } catch (err) {
      if (this.stopping.signal.aborted) return;
      // No maps (not attached yet): no drift figures rather than made-up ones.
      this.drift.reset();
      this.ctx.log.warn('drift check failed', { action: 'drift', error: (err as Error).message });
    }
  }
}
