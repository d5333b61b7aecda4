/**
 * vosctl consume, publish to map, against the real broker and real maps:
 *   - sustained throughput over 100,000 block messages (published with confirms
 *     as fast as the publisher goes; clock stops when the last entry is in the map);
 *   - latency p50/p99 from publish to entry-in-map at a steady 1,000 msg/s;
 *   - the consumer's peak RSS over both runs.
 * Reference, measured in the same run: the naive consumer, `amqp-consume`
 * (Debian's amqp-tools) running scripts/block_ip.sh once per message.
 *
 * Run as root: npm run bench:consume   (MESSAGES=100000 RATE=1000 SECONDS=10 to vary)
 */
import { connect, type ConfirmChannel } from 'amqplib';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { BLOCK_VALUE, EXACT_KEY } from '../lib/maps/layout.js';
import { MapServer } from '../lib/maps/maptool.js';
import { AMQP_URL, Broker } from '../test/helpers/broker.js';
import { ipOf, keyOf, pct, steadyLatency } from './common.js';
import { Lab, ROOT } from '../test/helpers/lab.js';

const MESSAGES = Number(process.env.MESSAGES ?? 100_000);
const RATE = Number(process.env.RATE ?? 1000);
const SECONDS = Number(process.env.SECONDS ?? 10);
const REF_MESSAGES = Number(process.env.REF_MESSAGES ?? 500);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function mapCount(maps: MapServer, pin: string): Promise<number> {
  return (await maps.dump(pin)).length / (EXACT_KEY + BLOCK_VALUE);
}

/** Publish n messages as fast as confirms allow; resolve when all are confirmed. */
async function flood(ch: ConfirmChannel, queue: string, base: number, n: number): Promise<void> {
  for (let i = 0; i < n; i += 1000) {
    for (let j = i; j < Math.min(n, i + 1000); j++) ch.sendToQueue(queue, Buffer.from(ipOf(base, j)), { persistent: true });
    await ch.waitForConfirms();
  }
}

async function throughput(ch: ConfirmChannel, queue: string, maps: MapServer, pin: string, base: number, n: number): Promise<{ seconds: number; publishSeconds: number }> {
  const start = await mapCount(maps, pin);
  const t0 = performance.now();
  let publishSeconds = 0;
  const pub = flood(ch, queue, base, n).then(() => (publishSeconds = (performance.now() - t0) / 1000));
  while ((await mapCount(maps, pin)) < start + n) await sleep(10);
  const seconds = (performance.now() - t0) / 1000;
  await pub;
  return { seconds, publishSeconds };
}

/** Publish at a steady rate; for each message, the time until its key is in the map. */
function latency(ch: ConfirmChannel, queue: string, maps: MapServer, pin: string, base: number, rate: number, seconds: number): Promise<number[]> {
  return steadyLatency(maps, [pin], (i) => keyOf(base, i), (i) => ch.sendToQueue(queue, Buffer.from(ipOf(base, i)), { persistent: true }), () => ch.waitForConfirms(), rate, seconds);
}

async function waitForLog(file: string, text: string): Promise<void> {
  for (let i = 0; i < 300; i++) {
    if (existsSync(file) && readFileSync(file, 'utf8').includes(text)) return;
    await sleep(50);
  }
  throw new Error(`no "${text}" in ${file}`);
}

async function main(): Promise<void> {
  const lab = new Lab();
  const broker = new Broker(lab);
  const maps = new MapServer();
  try {
    await lab.loadUnattached(['--block-capacity', String(2 ** Math.ceil(Math.log2((MESSAGES + RATE * SECONDS + REF_MESSAGES * 2) * 1.3)))]);
    const pin = join(lab.pinDir, 'blocked_ips');
    const conn = await connect(AMQP_URL);
    const ch = await conn.createConfirmChannel();

    // --- the reference: a process per message ---
    const refQ = broker.name('ref');
    await ch.assertQueue(refQ, { durable: true });
    const refThroughput = async (base: number, n: number) => {
      const child = lab.spawn('amqp-consume', ['--url', AMQP_URL, '-q', refQ, '-p', '1', '--', 'bash', '-c', 'read -r ip; exec "$0" "$ip"', join(ROOT, 'scripts/block_ip.sh')], { env: lab.env() });
      await sleep(500);
      const r = await throughput(ch, refQ, maps, pin, base, n);
      child.kill('SIGTERM');
      await child;
      return r;
    };
    process.stderr.write('reference throughput...\n');
    const ref = await refThroughput(21, REF_MESSAGES);
    process.stderr.write('vosctl consume throughput and latency...\n');

    // --- vosctl consume ---
    const q = broker.name('bench');
    const logFile = join(lab.tmp, 'consume.log');
    const consumer = lab.spawn(join(ROOT, 'bin/vosctl'), ['consume', '--queue', q], {
      env: lab.env({ VOS_STATE_DIR: join(lab.tmp, 'state'), VOS_LOG_FORMAT: 'json', VOS_AMQP_URL: AMQP_URL }),
      stderr: { file: logFile },
      stdout: 'ignore',
    });
    await waitForLog(logFile, '"consuming"');
    const tp = await throughput(ch, q, maps, pin, 11, MESSAGES);
    const lat = await latency(ch, q, maps, pin, 12, RATE, SECONDS);
    const hwm = Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${consumer.pid}/status`, 'utf8'))?.[1] ?? 0);
    consumer.kill('SIGTERM');
    await consumer;

    process.stderr.write('reference latency...\n');
    // The reference at the same steady rate, for one second.
    const refLat = await (async () => {
      const child = lab.spawn('amqp-consume', ['--url', AMQP_URL, '-q', refQ, '-p', '1', '--', 'bash', '-c', 'read -r ip; exec "$0" "$ip"', join(ROOT, 'scripts/block_ip.sh')], { env: lab.env() });
      await sleep(500);
      const l = await latency(ch, refQ, maps, pin, 22, RATE, 1);
      child.kill('SIGTERM');
      await child;
      return l;
    })();
    await conn.close();

    const rate = (n: number, s: number) => Math.round(n / s).toLocaleString('en');
    console.log(`\nvosctl consume: publish -> entry in the map (RabbitMQ on 127.0.0.1, ${MESSAGES.toLocaleString('en')} messages)`);
    console.log(`  sustained throughput   ${rate(MESSAGES, tp.seconds).padStart(8)} msg/s  (${tp.seconds.toFixed(2)} s; the publisher alone took ${tp.publishSeconds.toFixed(2)} s)   goal >= 20,000`);
    console.log(`  reference              ${rate(REF_MESSAGES, ref.seconds).padStart(8)} msg/s  amqp-consume + block_ip.sh, a process per message (${REF_MESSAGES} messages)   ${(MESSAGES / tp.seconds / (REF_MESSAGES / ref.seconds)).toFixed(0)}x`);
    console.log(`\nlatency at a steady ${RATE.toLocaleString('en')} msg/s for ${SECONDS} s`);
    console.log(`  vosctl consume         p50 ${pct(lat, 50).toFixed(1).padStart(8)} ms   p99 ${pct(lat, 99).toFixed(1).padStart(8)} ms   max ${Math.max(...lat).toFixed(1)} ms   goal p50 <= 10, p99 <= 50`);
    console.log(`  reference (1 s burst)  p50 ${pct(refLat, 50).toFixed(1).padStart(8)} ms   p99 ${pct(refLat, 99).toFixed(1).padStart(8)} ms   (falls behind: it cannot keep up with ${RATE}/s)`);
    console.log(`\nconsumer peak RSS over both runs: ${(hwm / 1024).toFixed(1)} MiB`);
  } finally {
    await maps.close();
    await lab.cleanup();
  }
}

await main();
