/**
 * The cluster on RabbitMQ (the shared broker on 127.0.0.1, names unique to
 * the run), three nodes each with its own pin folder, state and consumer:
 *   - publish -> enforced on ALL three (the slowest node's map), p50/p99 at a
 *     steady RATE msg/s for SECONDS, on one stream (--stream) and, in the
 *     same run, on per-node queues behind a fanout exchange (--fanout);
 *   - catch-up: a fourth node with a fresh state joins behind CATCHUP
 *     messages on a stream: the time until its map holds them all; beside it,
 *     the same backlog in a per-node queue (fanout mode's catch-up).
 *
 * Run as root: npm run bench:cluster   (RATE=1000 SECONDS=10 CATCHUP=100000 to vary)
 */
import { connect, type ConfirmChannel } from 'amqplib';
import { execa } from 'execa';
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { BLOCK_VALUE, EXACT_KEY } from '../lib/maps/layout.js';
import { MapServer } from '../lib/maps/maptool.js';
import { AMQP_URL, Broker } from '../test/helpers/broker.js';
import { ipOf, keyOf, pct, steadyLatency } from './common.js';
import { Lab, ROOT } from '../test/helpers/lab.js';

const RATE = Number(process.env.RATE ?? 1000);
const SECONDS = Number(process.env.SECONDS ?? 10);
const CATCHUP = Number(process.env.CATCHUP ?? 100_000);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface BenchNode {
  pinDir: string;
  stateDir: string;
  pin: string;
}

async function waitForLog(file: string, text: string, timeoutMs = 30_000): Promise<number> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    if (existsSync(file) && readFileSync(file, 'utf8').includes(text)) return performance.now();
    await sleep(20);
  }
  throw new Error(`no "${text}" in ${file}`);
}

/** A node of its own: pin folder with the program loaded (unattached), a state folder. */
async function newNode(lab: Lab, name: string, capacity: number): Promise<BenchNode> {
  const pinDir = `${lab.pinDir}_${name}`;
  const stateDir = join(lab.tmp, `state-${name}`);
  mkdirSync(stateDir, { recursive: true });
  lab.defer(`pin folder ${pinDir}`, async () => rmSync(pinDir, { recursive: true, force: true }));
  const out = await execa(join(ROOT, 'scripts/load.sh'), ['--no-attach', '--block-capacity', String(capacity)], { env: { VOS_PIN_DIR: pinDir, VOS_STATE_DIR: stateDir }, reject: false });
  if (out.exitCode !== 0) throw new Error(`load.sh: ${out.stderr}`);
  return { pinDir, stateDir, pin: join(pinDir, 'blocked_ips') };
}

/** vosctl consume for a node, its log in a file; resolves once it consumes. */
async function consume(lab: Lab, n: BenchNode, args: string[], log: string): Promise<{ child: ReturnType<Lab['spawn']> }> {
  const child = lab.spawn(join(ROOT, 'bin/vosctl'), ['consume', ...args], {
    env: { VOS_PIN_DIR: n.pinDir, VOS_STATE_DIR: n.stateDir, VOS_LOG_FORMAT: 'json', VOS_AMQP_URL: AMQP_URL },
    stderr: { file: log },
    stdout: 'ignore',
  });
  await waitForLog(log, '"consuming"');
  return { child }; // wrapped: the child is a promise of its exit, which an async function would wait for
}

/** Publish at a steady rate; for each message, the time until its key is in every node's map. */
function latency(publish: (body: Buffer) => void, ch: ConfirmChannel, maps: MapServer, pins: string[], base: number): Promise<number[]> {
  const body = (i: number) => Buffer.from(JSON.stringify({ action: 'block', ip: ipOf(base, i), ttl: '1h', ts: Math.floor(Date.now() / 1000) }));
  return steadyLatency(maps, pins, (i) => keyOf(base, i), (i) => publish(body(i)), () => ch.waitForConfirms(), RATE, SECONDS);
}

async function mapCount(maps: MapServer, pin: string): Promise<number> {
  return (await maps.dump(pin)).length / (EXACT_KEY + BLOCK_VALUE);
}

/** Publish n block messages with confirms, 1,000 at a time. */
async function backlog(ch: ConfirmChannel, send: (body: Buffer) => void, base: number, n: number): Promise<void> {
  for (let i = 0; i < n; i += 1000) {
    for (let j = i; j < Math.min(n, i + 1000); j++) send(Buffer.from(JSON.stringify({ action: 'block', ip: ipOf(base, j), ttl: '1h', ts: Math.floor(Date.now() / 1000) })));
    await ch.waitForConfirms();
  }
}

/** Start a fresh node's consumer behind a backlog of n: seconds from spawn, and from "consuming", until its map holds n. */
async function catchUp(lab: Lab, maps: MapServer, node: BenchNode, args: string[], log: string, n: number): Promise<{ fromSpawn: number; fromConsuming: number }> {
  const t0 = performance.now();
  const child = lab.spawn(join(ROOT, 'bin/vosctl'), ['consume', ...args], {
    env: { VOS_PIN_DIR: node.pinDir, VOS_STATE_DIR: node.stateDir, VOS_LOG_FORMAT: 'json', VOS_AMQP_URL: AMQP_URL },
    stderr: { file: log },
    stdout: 'ignore',
  });
  const consuming = await waitForLog(log, '"consuming"');
  while ((await mapCount(maps, node.pin)) < n) await sleep(50);
  const t1 = performance.now();
  child.kill('SIGTERM');
  await child;
  return { fromSpawn: (t1 - t0) / 1000, fromConsuming: (t1 - consuming) / 1000 };
}

/** The host's load now (1/5/15 min) and its cores: the figures mean little without it on a shared machine. */
const load = (): string => `load ${loadavg().map((l) => l.toFixed(2)).join(' ')} on ${cpus().length} cores`;

async function main(): Promise<void> {
  const loadBefore = load();
  const lab = new Lab();
  const broker = new Broker(lab);
  const maps = new MapServer();
  try {
    const capacity = 2 ** Math.ceil(Math.log2((2 * RATE * SECONDS + CATCHUP) * 1.3));
    const nodes = await Promise.all(['n1', 'n2', 'n3'].map((n) => newNode(lab, n, capacity)));
    const conn = await connect(AMQP_URL);
    const ch = await conn.createConfirmChannel();
    const pins = nodes.map((n) => n.pin);

    process.stderr.write(`stream: three consumers, ${RATE}/s for ${SECONDS} s...\n`);
    const stream = broker.name('stream');
    const children = [];
    for (const [i, n] of nodes.entries()) children.push(await consume(lab, n, ['--stream', stream], join(lab.tmp, `stream-${i}.log`)));
    const streamLat = await latency((b) => ch.sendToQueue(stream, b, { persistent: true }), ch, maps, pins, 31);
    for (const { child } of children.splice(0)) {
      child.kill('SIGTERM');
      await child;
    }

    process.stderr.write(`fanout: three per-node queues, ${RATE}/s for ${SECONDS} s...\n`);
    const fanout = broker.name('fanout');
    for (const [i, n] of nodes.entries()) {
      broker.name(`fanout.q${i}`); // the node's queue <exchange>.<node>, registered for cleanup
      children.push(await consume(lab, n, ['--fanout', fanout, '--node', `q${i}`], join(lab.tmp, `fanout-${i}.log`)));
    }
    const fanoutLat = await latency((b) => ch.publish(fanout, '', b, { persistent: true }), ch, maps, pins, 32);
    for (const { child } of children.splice(0)) {
      child.kill('SIGTERM');
      await child;
    }

    process.stderr.write(`catch-up behind ${CATCHUP.toLocaleString('en')} messages...\n`);
    const behind = broker.name('behind');
    await ch.assertQueue(behind, { durable: true, arguments: { 'x-queue-type': 'stream', 'x-max-age': '1h', 'x-max-length-bytes': 1e9 } });
    await backlog(ch, (b) => ch.sendToQueue(behind, b, { persistent: true }), 33, CATCHUP);
    const joiner = await newNode(lab, 'n4', capacity);
    const streamCatch = await catchUp(lab, maps, joiner, ['--stream', behind], join(lab.tmp, 'catchup-stream.log'), CATCHUP);
    const queued = broker.name('behind_q');
    await ch.assertQueue(queued, { durable: true });
    await backlog(ch, (b) => ch.sendToQueue(queued, b, { persistent: true }), 34, CATCHUP);
    const joinerQ = await newNode(lab, 'n5', capacity);
    const queueCatch = await catchUp(lab, maps, joinerQ, ['--queue', queued], join(lab.tmp, 'catchup-queue.log'), CATCHUP);
    await conn.close();

    const row = (name: string, l: number[]) => `  ${name.padEnd(34)} p50 ${pct(l, 50).toFixed(1).padStart(7)} ms   p99 ${pct(l, 99).toFixed(1).padStart(7)} ms   max ${Math.max(...l).toFixed(1).padStart(7)} ms`;
    console.log(`\nhost: ${loadBefore} at the start, ${load()} at the end (other jobs on this host raise the figures)`);
    console.log(`\npublish -> enforced on all three nodes, ${RATE.toLocaleString('en')} msg/s for ${SECONDS} s (RabbitMQ on 127.0.0.1; 3 consumers on this host)`);
    console.log(`${row('--stream (one stream)', streamLat)}   goal p99 <= 50`);
    console.log(`${row('--fanout (per-node queues), ref.', fanoutLat)}`);
    const rate = (s: number) => Math.round(CATCHUP / s).toLocaleString('en');
    console.log(`\ncatch-up of a node joining behind ${CATCHUP.toLocaleString('en')} messages (fresh pin folder and state)`);
    console.log(`  --stream from its first message    ${streamCatch.fromSpawn.toFixed(2).padStart(6)} s from start (${streamCatch.fromConsuming.toFixed(2)} s from "consuming", ${rate(streamCatch.fromConsuming)} msg/s)   goal <= 10 s`);
    console.log(`  a queue holding the backlog, ref.  ${queueCatch.fromSpawn.toFixed(2).padStart(6)} s from start (${queueCatch.fromConsuming.toFixed(2)} s from "consuming", ${rate(queueCatch.fromConsuming)} msg/s)`);
  } finally {
    await maps.close();
    await lab.cleanup();
  }
}

await main();
