/**
 * The real loop, measured: Kamailio (contrib config) on a lab, an attacker
 * flooding INVITEs at RATE/s with sipp, vosctl consume on the queue.
 *   - publish -> first drop: from Kamailio's "published block" log line to the
 *     first increment of the blocked_exact counter, over RUNS floods, each from
 *     a fresh attacker address;
 *   - requests per second Kamailio stops seeing, against the reference measured
 *     in the same run: the same flood with XDP in shadow mode (counts, drops
 *     nothing), which is what Kamailio sees without vos-fastpath;
 *   - the XDP counters at the end.
 *
 * Run as root: npm run bench:loop   (RUNS=5 RATE=300 to vary)
 */
import { execa } from 'execa';
import { LoopLab } from '../test/helpers/loop.js';

const RUNS = Number(process.env.RUNS ?? 5);
const RATE = Number(process.env.RATE ?? 300);
const BLOCKED_EXACT = 'blocked_exact';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const esc = (ip: string) => ip.replace(/\./g, '\\.');

interface Flood {
  latencyMs: number | null;
  /** requests per second Kamailio saw from the attacker, over the window after the block (or the whole flood in shadow mode) */
  seenPerS: number;
  droppedPerS: number;
}

async function flood(loop: LoopLab, ip: string, shadow: boolean): Promise<Flood> {
  await execa('ip', ['-n', loop.attacker.ns, 'addr', 'add', `${ip}/24`, 'dev', loop.attacker.peer]);
  const before = await loop.counter(BLOCKED_EXACT);
  const start = performance.now();
  const sipp = loop.sipp(loop.attacker.ns, ['-sn', 'uac', `${loop.attacker.hostIp}:5060`, '-i', ip, '-p', '5090', '-s', 'nobody', '-r', String(RATE), '-m', String(RATE * 20), '-timeout', '30']);
  let latencyMs: number | null = null;
  let windowStart = start;
  if (!shadow) {
    const published = await loop.waitForKamailio(new RegExp(`published block for ${esc(ip)} \\(pike\\)`));
    while (latencyMs === null) {
      if ((await loop.counter(BLOCKED_EXACT)) > before) latencyMs = performance.now() - published.at;
      else if (performance.now() - published.at > 10_000) throw new Error(`no drop within 10 s of the publish for ${ip}`);
    }
    await sleep(200); // what was already queued at the socket may still be read
    windowStart = performance.now();
  } else {
    await sleep(500);
    windowStart = performance.now();
  }
  const dropsAt = await loop.counter(BLOCKED_EXACT);
  const seenAt = loop.seenFrom(ip, 0);
  await sleep(3000);
  const seconds = (performance.now() - windowStart) / 1000;
  const result = {
    latencyMs,
    seenPerS: (loop.seenFrom(ip, 0) - seenAt) / seconds,
    droppedPerS: ((await loop.counter(BLOCKED_EXACT)) - dropsAt) / seconds,
  };
  sipp.kill('SIGTERM');
  await sipp;
  return result;
}

async function main(): Promise<void> {
  const loop = new LoopLab();
  try {
    await loop.start({ stealth: true });
    const base = loop.attacker.peerIp.replace(/\.2$/, '');
    // The reference: shadow mode counts what it would drop and drops nothing.
    await loop.mustVosctl('attach', loop.attacker.host, '--mode', 'native', '--shadow');
    const reference = await flood(loop, `${base}.40`, true);
    await loop.mustVosctl('attach', loop.attacker.host, '--mode', 'native');
    const runs: Flood[] = [];
    for (let i = 0; i < RUNS; i++) runs.push(await flood(loop, `${base}.${50 + i}`, false));
    const lat = runs.map((r) => r.latencyMs!).sort((a, b) => a - b);
    const counters = JSON.parse(await loop.mustVosctl('stats', '--json')) as Record<string, { packets: number }>;
    const avg = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    console.log(`\nthe real loop: Kamailio pike -> RabbitMQ -> vosctl consume -> XDP  (${RUNS} floods of ${RATE} INVITE/s, each from a new address)`);
    console.log(`  publish -> first drop      median ${lat[Math.floor(lat.length / 2)]!.toFixed(1)} ms, min ${lat[0]!.toFixed(1)}, max ${lat[lat.length - 1]!.toFixed(1)}   goal <= 100 ms (fail2ban: log polling, seconds)`);
    console.log(`  Kamailio sees from a flood  ${avg(runs.map((r) => r.seenPerS)).toFixed(1)} req/s with vos-fastpath   vs ${reference.seenPerS.toFixed(1)} req/s in shadow mode (reference, same run)`);
    console.log(`  XDP drops                   ${avg(runs.map((r) => r.droppedPerS)).toFixed(0)} packets/s per flood (sipp sends ${RATE}/s plus retransmissions)`);
    console.log(`  XDP counters                ${Object.entries(counters).map(([k, v]) => `${k} ${v.packets}`).join(', ')}`);
  } finally {
    await loop.stop();
  }
}

await main();
