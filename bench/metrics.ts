/**
 * What a Prometheus scrape and a drift check cost on a host holding
 * 1,000,000 blocked addresses, beside references timed in the same run:
 * `bpftool map dump` of the same map, `vfp-maptool dump` of it, `vosctl
 * stats` and `vosctl status` (which compares maps and state in full).
 *
 * Run as root: npm run bench:metrics   (SIZE=100000 ROUNDS=5 to vary)
 */
import { execa } from 'execa';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Lab, ROOT } from '../test/helpers/lab.js';
import { addr, median, timed } from './common.js';

const SIZE = Number(process.env.SIZE ?? 1_000_000);
const ROUNDS = Number(process.env.ROUNDS ?? 5);
const VOSCTL = join(ROOT, 'bin/vosctl');
const PORT = 20000 + (process.pid % 20000);

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
  for (let i = 0; i < 200 && metric(text, 'vos_fastpath_drift_check_duration_seconds') === undefined; i++) {
    await new Promise((r) => setTimeout(r, 100));
    text = await scrape().catch(() => '');
  }
  const firstCheck = metric(text, 'vos_fastpath_drift_check_duration_seconds')!;
  const scrapes: number[] = [];
  for (let i = 0; i < ROUNDS; i++) scrapes.push(await timed(async () => (text = await scrape())));
  const entries = metric(text, 'vos_fastpath_map_entries{map="blocked_ips"}');
  exporter.kill('SIGTERM');
  await exporter;

  // The steady state: a second drift check in the same process (the state is in memory, read incrementally).
  const exporter2 = lab.spawn(VOSCTL, ['exporter', '--listen', `127.0.0.1:${PORT}`, '--drift-interval', '1', '--log-level', 'warn'], { env });
  // Wait for the third completed check: the first loads the state, the later ones read only what changed.
  const seen = new Set<number>();
  for (let i = 0; i < 600 && seen.size < 3; i++) {
    await new Promise((r) => setTimeout(r, 100));
    text = await scrape().catch(() => '');
    const t = metric(text, 'vos_fastpath_drift_check_timestamp_seconds');
    if (t) seen.add(t);
  }
  const steadyCheck = metric(text, 'vos_fastpath_drift_check_duration_seconds')!;
  const drift = ['missing', 'expired_early', 'different', 'unintended'].map((k) => `${k}=${metric(text, `vos_fastpath_enforcement_drift_entries{kind="${k}"}`)}`).join(' ');
  exporter2.kill('SIGTERM');
  await exporter2;

  const n = SIZE.toLocaleString('en');
  console.log(`\nmetrics on a host with ${n} blocked addresses (map_entries reports ${entries?.toLocaleString('en')})`);
  console.log(`  bpftool -j map dump blocked_ips             ${(bpftoolDump / 1000).toFixed(2)} s   reference`);
  console.log(`  vfp-maptool dump blocked_ips (raw records)  ${(maptoolDump / 1000).toFixed(2)} s`);
  console.log(`  vfp-maptool count blocked_ips               ${median(maptoolCount).toFixed(0)} ms   (median of ${ROUNDS}, one process each; ${how === 'kernel' ? "the kernel's element count" : 'walked: no kernel count here'}; what a scrape asks per map)`);
  console.log(`  vosctl stats --json                         ${median(stats).toFixed(0)} ms   (median of ${ROUNDS})`);
  console.log(`  one scrape of /metrics                      ${median(scrapes).toFixed(0)} ms   (median of ${ROUNDS}, max ${Math.max(...scrapes).toFixed(0)} ms; goal < 1000 ms)`);
  console.log(`  vosctl status (full maps/state comparison)  ${(status / 1000).toFixed(2)} s   reference for the drift check`);
  console.log(`  drift check, first (state loaded from disk) ${firstCheck.toFixed(2)} s`);
  console.log(`  drift check, steady (state in memory)       ${steadyCheck.toFixed(2)} s   (${drift})`);
} finally {
  await lab.cleanup();
}
