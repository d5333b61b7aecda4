/**
 * What a Prometheus scrape and a drift check cost on a host holding
 * 1,000,000 blocked addresses, beside references timed in the same run:
 * `bpftool map dump` of the same map, `vfp-maptool dump` of it, `vosctl
 * stats` and `vosctl status` (which compares maps and state in full).
 *
 * Then what a running drift check costs others, with drift checks every
 * second against none, in the same run: the latency of scrapes, and the
 * enforce latency of `vosctl consume --metrics-listen` taking 20 blocks a
 * second from the shared RabbitMQ (its enforce_seconds histogram). BASE=<an
 * older built checkout> measures that checkout's vosctl on the same maps and
 * state too, as the reference.
 *
 * Run as root: npm run bench:metrics   (SIZE=100000 ROUNDS=5 BASE=/tmp/base to vary)
 */
import { execa } from 'execa';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Broker } from '../test/helpers/broker.js';
import { Lab, ROOT } from '../test/helpers/lab.js';
import { addr, median, timed } from './common.js';

const SIZE = Number(process.env.SIZE ?? 1_000_000);
const ROUNDS = Number(process.env.ROUNDS ?? 5);
const VOSCTL = join(ROOT, 'bin/vosctl');
const PORT = 20000 + (process.pid % 20000);
const LOAD_S = Number(process.env.LOAD_S ?? 12);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Upper bound of the histogram bucket holding quantile q, from an exposition. */
function bucketQuantile(text: string, name: string, q: number): number {
  const buckets = [...text.matchAll(new RegExp(`^${name}_bucket\\{le="([^"]+)"\\} (\\d+)`, 'gm'))].map((m) => [m[1] === '+Inf' ? Infinity : Number(m[1]), Number(m[2])] as const);
  const count = buckets.at(-1)?.[1] ?? 0;
  return buckets.find(([, n]) => n >= q * count)?.[0] ?? NaN;
}

async function waitScrape(pred: (t: string) => boolean): Promise<string> {
  for (let i = 0; i < 1200; i++) {
    const t = await scrape().catch(() => '');
    if (pred(t)) return t;
    await sleep(100);
  }
  throw new Error('the metrics endpoint did not come up');
}

interface LoadFigures {
  scrapeMedianMs: number;
  scrapeMaxMs: number;
  scrapes: number;
  enforceMeanMs: number;
  enforceP99Ms: number;
  enforceCount: number;
}

/**
 * With `vosctl` (this checkout's or BASE's) and drift checks every
 * `driftS` seconds (0 = none): scrapes back to back for LOAD_S seconds,
 * then consume taking 20 blocks/s for LOAD_S seconds.
 */
async function underLoad(vosctl: string, env: Record<string, string>, driftS: number, broker: Broker, queue: string, first: number): Promise<LoadFigures> {
  const exporter = lab.spawn(vosctl, ['exporter', '--listen', `127.0.0.1:${PORT}`, '--drift-interval', String(driftS), '--log-level', 'error'], { env });
  await waitScrape((t) => (driftS ? metric(t, 'vos_fastpath_drift_check_timestamp_seconds') !== undefined : t.includes('vos_fastpath_map_entries')));
  const lat: number[] = [];
  for (const until = Date.now() + LOAD_S * 1000; Date.now() < until; ) lat.push(await timed(scrape));
  exporter.kill('SIGTERM');
  await exporter;

  const consumer = lab.spawn(vosctl, ['consume', '--queue', queue, '--metrics-listen', `127.0.0.1:${PORT}`, '--drift-interval', String(driftS), '--log-level', 'error'], { env });
  await waitScrape((t) => metric(t, 'vos_fastpath_broker_connected') === 1 && (!driftS || metric(t, 'vos_fastpath_drift_check_timestamp_seconds') !== undefined));
  const n = LOAD_S * 20;
  for (let i = 0; i < n; i++) {
    const a = 198 * 2 ** 24 + 18 * 2 ** 16 + first + i;
    await broker.publish(queue, [`{"ip":"${a >>> 24}.${(a >>> 16) & 255}.${(a >>> 8) & 255}.${a & 255}"}`]);
    await sleep(50);
  }
  const text = await waitScrape((t) => (metric(t, 'vos_fastpath_enforce_seconds_count') ?? 0) >= n);
  consumer.kill('SIGTERM');
  await consumer;
  const count = metric(text, 'vos_fastpath_enforce_seconds_count')!;
  return {
    scrapeMedianMs: median(lat),
    scrapeMaxMs: Math.max(...lat),
    scrapes: lat.length,
    enforceMeanMs: (metric(text, 'vos_fastpath_enforce_seconds_sum')! / count) * 1000,
    enforceP99Ms: bucketQuantile(text, 'vos_fastpath_enforce_seconds', 0.99) * 1000,
    enforceCount: count,
  };
}

async function must(cmd: string, args: string[], env: Record<string, string> = {}): Promise<string> {
  const r = await execa(cmd, args, { env, reject: false, maxBuffer: 2 ** 30 });
  if (r.exitCode !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

async function scrape(): Promise<string> {
  const r = await fetch(`http://127.0.0.1:${PORT}/metrics`);
  if (!r.ok) throw new Error(`scrape: HTTP ${r.status}`);
  return r.text();
}

function metric(text: string, name: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(name + ' ') || l.startsWith(name + '{'));
  return line ? Number(line.slice(line.lastIndexOf(' ') + 1)) : undefined;
}

const lab = new Lab();
try {
  const cap = String(2 ** Math.ceil(Math.log2(SIZE * 1.2)));
  await lab.loadUnattached(['--block-capacity', cap]);
  const env = lab.env({ VOS_STATE_DIR: join(lab.tmp, 'state') });
  const list = join(lab.tmp, 'list.txt');
  writeFileSync(list, Array.from({ length: SIZE }, (_, i) => addr(i)).join('\n') + '\n');
  await must(VOSCTL, ['load-file', list, '--source', 'feed'], env);
  const pin = `${lab.pinDir}/blocked_ips`;

  const bpftoolDump = await timed(() => must('bpftool', ['-j', 'map', 'dump', 'pinned', pin]));
  const maptoolDump = await timed(() => must(join(ROOT, 'build/vfp-maptool'), ['dump', pin]));
  const how = (await must(join(ROOT, 'build/vfp-maptool'), ['count', pin])).trim().split(' ')[1];
  const maptoolCount: number[] = [];
  const stats: number[] = [];
  for (let i = 0; i < ROUNDS; i++) {
    maptoolCount.push(await timed(() => must(join(ROOT, 'build/vfp-maptool'), ['count', pin])));
    stats.push(await timed(() => must(VOSCTL, ['stats', '--json'], env)));
  }
  const status = await timed(() => must(VOSCTL, ['status', '--json'], env));

  // A long drift interval: the first check runs at start; the bench triggers none meanwhile.
  const exporter = lab.spawn(VOSCTL, ['exporter', '--listen', `127.0.0.1:${PORT}`, '--drift-interval', '3600', '--log-level', 'warn'], { env });
  let text = '';
  // The timestamp, not the duration: a gauge reads 0 before the first check completes.
  for (let i = 0; i < 1200 && !metric(text, 'vos_fastpath_drift_check_timestamp_seconds'); i++) {
    await new Promise((r) => setTimeout(r, 100));
    text = await scrape().catch(() => '');
  }
  const firstCheck = metric(text, 'vos_fastpath_drift_check_duration_seconds')!;
  const scrapes: number[] = [];
  for (let i = 0; i < ROUNDS; i++) scrapes.push(await timed(async () => (text = await scrape())));
  const entries = metric(text, 'vos_fastpath_map_entries{map="blocked_ips"}');
  exporter.kill('SIGTERM');
  await exporter;

  // Later checks: each one a child process reading the state afresh (the page cache warm).
  const exporter2 = lab.spawn(VOSCTL, ['exporter', '--listen', `127.0.0.1:${PORT}`, '--drift-interval', '1', '--log-level', 'warn'], { env });
  // Wait for the third completed check.
  const seen = new Set<number>();
  for (let i = 0; i < 600 && seen.size < 3; i++) {
    await new Promise((r) => setTimeout(r, 100));
    text = await scrape().catch(() => '');
    const t = metric(text, 'vos_fastpath_drift_check_timestamp_seconds');
    if (t) seen.add(t); // 0 (no check yet) counts as one: the third distinct value is the second check
  }
  const steadyCheck = metric(text, 'vos_fastpath_drift_check_duration_seconds')!;
  const drift = ['missing', 'expired_early', 'different', 'unintended'].map((k) => `${k}=${metric(text, `vos_fastpath_enforcement_drift_entries{kind="${k}"}`)}`).join(' ');
  exporter2.kill('SIGTERM');
  await exporter2;

  // What a running check costs the scrapes and the consumer: checks every second against none.
  const broker = new Broker(lab);
  const queue = broker.name('benchmetrics');
  const runs: Array<[string, LoadFigures]> = [];
  let first = 0;
  for (const [label, bin] of [...(process.env.BASE ? [['BASE', join(process.env.BASE, 'bin/vosctl')] as const] : []), ['this', VOSCTL] as const]) {
    for (const driftS of [0, 1]) {
      runs.push([`${label}, ${driftS ? 'drift check every 1 s' : 'no drift check'}`, await underLoad(bin, env, driftS, broker, queue, first)]);
      first += LOAD_S * 20;
    }
  }
  await broker.close();

  const n = SIZE.toLocaleString('en');
  console.log(`\nmetrics on a host with ${n} blocked addresses (map_entries reports ${entries?.toLocaleString('en')})`);
  console.log(`  bpftool -j map dump blocked_ips             ${(bpftoolDump / 1000).toFixed(2)} s   reference`);
  console.log(`  vfp-maptool dump blocked_ips (raw records)  ${(maptoolDump / 1000).toFixed(2)} s`);
  console.log(`  vfp-maptool count blocked_ips               ${median(maptoolCount).toFixed(0)} ms   (median of ${ROUNDS}, one process each; ${how === 'kernel' ? "the kernel's element count" : 'walked: no kernel count here'}; what a scrape asks per map)`);
  console.log(`  vosctl stats --json                         ${median(stats).toFixed(0)} ms   (median of ${ROUNDS})`);
  console.log(`  one scrape of /metrics                      ${median(scrapes).toFixed(0)} ms   (median of ${ROUNDS}, max ${Math.max(...scrapes).toFixed(0)} ms; goal < 1000 ms)`);
  console.log(`  vosctl status (full maps/state comparison)  ${(status / 1000).toFixed(2)} s   reference for the drift check`);
  console.log(`  drift check, first                          ${firstCheck.toFixed(2)} s`);
  console.log(`  drift check, second                         ${steadyCheck.toFixed(2)} s   (${drift})`);
  console.log(`\nunder load, ${LOAD_S} s each (scrapes back to back; consume: 20 blocks/s, enforce_seconds histogram)`);
  console.log(`  ${'run'.padEnd(36)} ${'scrape median'.padStart(13)} ${'scrape max'.padStart(11)} ${'enforce mean'.padStart(13)} ${'enforce p99 <='.padStart(15)}`);
  for (const [label, f] of runs) {
    console.log(`  ${label.padEnd(36)} ${`${f.scrapeMedianMs.toFixed(0)} ms`.padStart(13)} ${`${f.scrapeMaxMs.toFixed(0)} ms`.padStart(11)} ${`${f.enforceMeanMs.toFixed(1)} ms`.padStart(13)} ${`${f.enforceP99Ms} ms`.padStart(15)}   (${f.scrapes} scrapes, ${f.enforceCount} messages)`);
  }
} finally {
  await lab.cleanup();
}
