import type { CommandModule } from 'yargs';
import type { Args } from './common.js';
import { UsageError } from '../errors.js';
import { DEFAULT_MAX_BODY } from '../messages.js';
import { BATCH_WAIT_MS, checkInterval, PERIOD_S } from '../duration.js';
import { checkSourceOption, ttlSeconds } from './common.js';
import { checkMetricsArgs, metricsOptions, type MetricsArgs } from './exporter.js';
import { parseTarget, type Cidr } from '../address.js';
import { quoted } from '../quote.js';

interface ConsumeArgs extends MetricsArgs {
  metricsListen?: string;
  queue?: string;
  stream?: string;
  streamMaxAge: string;
  streamMaxBytes: number;
  fanout?: string;
  node?: string;
  exchange?: string;
  routingKey?: string;
  url?: string[];
  caFile?: string;
  passwordFile?: string;
  deadLetter?: string;
  prefetch?: number;
  batchSize?: number;
  batchWait: number;
  ttl: string;
  source: string;
  maxBody: number;
  gcInterval: number;
  pauseHold: number;
  deliveryLimit: number;
  neverBlock?: string[];
}

/**
 * Prefetch and batch size by mode. A stream's backlog is the whole stream (a
 * node joining catches up from its first message): larger batches spread
 * each transaction's fsync and map round trip over more messages; a batch
 * only fills when messages wait, so live traffic is not held back by it.
 */
export const DEFAULTS = { queue: { prefetch: 2000, batchSize: 500 }, stream: { prefetch: 8000, batchSize: 2000 } } as const;

/** systemd's TimeoutStopSec in contrib/systemd/vos-fastpath-consume.service is 30 s: stop well within it. */
const STOP_DEADLINE_MS = 20_000;

/** --never-block values (repeatable, each comma-separated) to CIDRs; a bad one is a usage error naming it. */
export function parseNeverBlock(values: readonly string[]): Cidr[] {
  const out: Cidr[] = [];
  for (const v of values.flatMap((x) => x.split(',')).map((x) => x.trim()).filter(Boolean)) {
    const t = parseTarget(v);
    if (!t.ok) throw new UsageError(`bad --never-block address: ${t.reason}`);
    out.push({ addr: t.target.addr, prefixlen: t.target.prefixlen });
  }
  return out;
}

/** x-max-age as RabbitMQ reads it: a positive whole number and one unit of Y, M, D, h, m, s. */
export function checkMaxAge(v: string): string {
  if (!/^[1-9]\d*[YMDhms]$/.test(v)) throw new UsageError(`bad --stream-max-age ${quoted(v)}: a number and one unit of Y, M, D, h, m, s (7D)`);
  return v;
}

/**
 * The queue of the single-queue mode: --queue, else the environment's
 * VOS_QUEUE (what the shipped consume.env sets; the unit passes no --queue)
 * when neither --stream nor --fanout chose another source. Returns the queue
 * (or undefined) and, when VOS_QUEUE is set but another source wins, a note
 * saying it is not used.
 */
export function sourceQueue(a: Pick<ConsumeArgs, 'queue' | 'stream' | 'fanout'>, env: NodeJS.ProcessEnv): { queue?: string; note?: string } {
  const fromEnv = env.VOS_QUEUE?.trim() || undefined;
  if (a.queue !== undefined) return { queue: a.queue };
  if (a.stream === undefined && a.fanout === undefined) return { queue: fromEnv };
  if (fromEnv === undefined) return {};
  return { note: `VOS_QUEUE=${fromEnv} not used: ${a.stream !== undefined ? `--stream ${a.stream}` : `--fanout ${a.fanout!} (this node's own queue)`} is the source` };
}

/** Refusals of option sets that cannot work or would silently lose per-node delivery; UsageError (exit 2) naming them. */
export function checkConsumeArgs(a: ConsumeArgs): void {
  if (a.stream !== undefined && (a.queue || a.fanout || a.exchange)) throw new UsageError(`--stream ${a.stream} excludes ${[a.queue && `--queue ${a.queue}`, a.fanout && `--fanout ${a.fanout}`, a.exchange && `--exchange ${a.exchange}`].filter(Boolean).join(', ')}: publishers send to the stream by its name (the default exchange); give one source`);
  // One --queue shared by the nodes of a fanout cluster would hand each block to one node only (the broker round-robins a queue's consumers).
  if (a.fanout !== undefined && a.queue !== undefined) throw new UsageError(`--fanout ${a.fanout} with --queue ${a.queue}: every node given the same --queue would share one queue and each block would reach one node only; --fanout gives each node its own queue <exchange>.<node name>: set a node's name with --node NAME (default the host name)`);
  if (a.node !== undefined && a.fanout === undefined) throw new UsageError(`--node ${a.node} names this node's fanout queue: it needs --fanout`);
  if (a.node !== undefined && !/^[A-Za-z0-9._-]+$/.test(a.node)) throw new UsageError(`bad --node '${a.node}': letters, digits, '.', '_' and '-' only`);
  if (a.stream !== undefined && !a.stream.trim()) throw new UsageError('--stream needs the stream\'s name');
  if (!a.queue && !a.fanout && !a.stream) throw new UsageError('give --queue NAME, --fanout EXCHANGE for a per-node queue, or --stream NAME');
  if (a.stream !== undefined) checkMaxAge(a.streamMaxAge);
  if (!Number.isSafeInteger(a.streamMaxBytes) || a.streamMaxBytes < 1) throw new UsageError(`bad --stream-max-bytes ${quoted(String(a.streamMaxBytes))}: a positive number of bytes`);
  if (a.fanout && a.exchange) throw new UsageError('--fanout and --exchange exclude each other');
  if (a.routingKey !== undefined && !a.exchange) throw new UsageError('--routing-key needs --exchange');
  const positive = { prefetch: a.prefetch, 'batch-size': a.batchSize, 'max-body': a.maxBody };
  for (const [k, v] of Object.entries(positive)) if (v !== undefined && (!Number.isInteger(v) || v < 1)) throw new UsageError(`bad --${k} ${quoted(String(v))}: a positive integer`);
  checkInterval('batch-wait', a.batchWait, BATCH_WAIT_MS);
  checkInterval('gc-interval', a.gcInterval, PERIOD_S);
  checkInterval('pause-hold', a.pauseHold, PERIOD_S);
  if (!Number.isInteger(a.deliveryLimit) || a.deliveryLimit < 0) throw new UsageError(`bad --delivery-limit ${quoted(String(a.deliveryLimit))}: an integer >= 0`);
}

export const consume: CommandModule<object, ConsumeArgs> = {
  command: 'consume',
  describe: 'Apply block/unblock messages from RabbitMQ to the maps (acked only once enforced and persisted)',
  builder: (y) =>
    y
      .option('stream', { type: 'string', describe: 'cluster mode: consume this RabbitMQ stream (declared if missing), the offset kept in the state; a new node starts at its first message' })
      .option('stream-max-age', { type: 'string', default: '7D', describe: 'retention of a stream declared here (x-max-age: 7D, 12h, ...)' })
      .option('stream-max-bytes', { type: 'number', default: 10_000_000_000, describe: 'size bound of a stream declared here (x-max-length-bytes)' })
      .option('queue', { type: 'string', describe: 'queue to consume (a stream is refused here: use --stream); not with --stream or --fanout [env VOS_QUEUE, used only when neither --stream nor --fanout is given]' })
      .option('fanout', { type: 'string', describe: 'cluster mode: bind a durable per-node queue <exchange>.<node name> to this fanout exchange' })
      .option('node', { type: 'string', describe: 'with --fanout: this node\'s name in its queue <exchange>.<node> and in dead letters\' x-vos-node (default the host name); different on every node' })
      .option('exchange', { type: 'string', describe: 'bind the queue to this exchange (declared direct if missing)' })
      .option('routing-key', { type: 'string', describe: 'binding key for --exchange (default: the queue name)' })
      .option('url', { type: 'string', array: true, describe: 'broker URL, amqp:// or amqps://; repeat it (or give a comma list) for the nodes of a RabbitMQ cluster, tried in turn [env VOS_AMQP_URL]; keep passwords out of it (ps shows it)' })
      .option('ca-file', { type: 'string', describe: 'CA bundle for amqps:// [env VOS_AMQP_CA_FILE]' })
      .option('password-file', { type: 'string', describe: 'file holding the broker password [env VOS_AMQP_PASSWORD_FILE]' })
      .option('dead-letter', { type: 'string', describe: 'queue for refused messages, reason in header x-vos-reason (default <queue>.dead)' })
      .option('prefetch', { type: 'number', describe: `unacked messages the broker may send ahead (default ${DEFAULTS.queue.prefetch}; --stream: ${DEFAULTS.stream.prefetch})` })
      .option('batch-size', { type: 'number', describe: `most messages applied in one map operation and state transaction (default ${DEFAULTS.queue.batchSize}; --stream: ${DEFAULTS.stream.batchSize})` })
      .option('batch-wait', { type: 'number', default: 2, describe: 'ms a batch waits for more after its first message' })
      .option('ttl', { type: 'string', default: '1h', describe: 'expiry for messages that carry none (0 = never)' })
      .option('source', { type: 'string', default: 'amqp', describe: 'source name for messages that carry none' })
      .option('max-body', { type: 'number', default: DEFAULT_MAX_BODY, describe: 'bytes; a larger message is dead-lettered' })
      .option('gc-interval', { type: 'number', default: 60, describe: 'seconds between expiry sweeps (0 = none)' })
      .option('pause-hold', { type: 'number', default: 60, describe: 'seconds a pause (maps missing) holds deliveries before returning them to the queue; keep under the broker\'s consumer_timeout' })
      .option('delivery-limit', { type: 'number', default: 0, describe: 'the queue\'s x-delivery-limit, if any: warn before a pause brings a block near it' })
      .option('never-block', { type: 'string', array: true, describe: 'the cluster\'s own addresses/CIDRs, comma-separated, the same on every node: never blocked [env VOS_NEVER_BLOCK, config neverBlock]' })
      .option('metrics-listen', { type: 'string', describe: 'also serve Prometheus /metrics on HOST:PORT (bare flag: VOS_METRICS_LISTEN or 127.0.0.1:9864)' })
      .options(metricsOptions) as never,
  handler: async (argv) => {
    const a = argv as Args<ConsumeArgs>;
    const ttlS = ttlSeconds(a.ttl);
    const { Context } = await import('../context.js');
    const { brokerAccess, fanoutQueueName, readPasswordFile, redactUrl, splitUrls } = await import('../consume/broker.js');
    const { Consumer } = await import('../consume/consumer.js');
    const src = sourceQueue(a, process.env);
    a.queue = src.queue;
    checkConsumeArgs(a);
    await checkMetricsArgs(a);
    await checkSourceOption(a.source);
    const ctx = Context.fromArgs({ ...a, url: a.url?.join(',') } as never);
    const s = ctx.settings;
    const urls = splitUrls([s.amqpUrl]);
    if (a.url && urls.some((u) => redactUrl(u) !== u)) ctx.log.warn('the --url carries a password, which ps shows to every user; use VOS_AMQP_URL or --password-file', { action: 'consume' });
    const password = s.amqpPasswordFile ? readPasswordFile(s.amqpPasswordFile) : undefined;
    const accesses = urls.map((u) => brokerAccess(u, password, s.amqpCaFile));
    const access = accesses[0]!;
    const neverBlock = parseNeverBlock(s.neverBlock ? [s.neverBlock] : []);
    if (src.note) ctx.log.info(src.note, { action: 'consume' });
    const queue = a.stream ?? a.queue ?? fanoutQueueName(a.fanout!, a.node);
    let metrics: { endpoint: import('../metrics/index.js').MetricsEndpoint; observer: import('../metrics/consume.js').ConsumeMetrics } | undefined;
    if (a.metricsListen !== undefined) {
      const { startMetrics } = await import('../metrics/index.js');
      const { ConsumeMetrics } = await import('../metrics/consume.js');
      const endpoint = await startMetrics(ctx, { listen: a.metricsListen || s.metricsListen, ifaces: a.iface ?? [], driftIntervalS: a.driftInterval });
      metrics = { endpoint, observer: new ConsumeMetrics(endpoint.registry, queue) };
    }
    const consumer = new Consumer(ctx, {
      access,
      accesses,
      queue,
      stream: a.stream !== undefined ? { maxAge: a.streamMaxAge, maxBytes: a.streamMaxBytes } : undefined,
      deadLetter: a.deadLetter ?? `${queue}.dead`,
      exchange: a.exchange,
      routingKey: a.routingKey,
      fanout: a.fanout,
      node: a.node,
      prefetch: a.prefetch ?? DEFAULTS[a.stream !== undefined ? 'stream' : 'queue'].prefetch,
      batchSize: a.batchSize ?? DEFAULTS[a.stream !== undefined ? 'stream' : 'queue'].batchSize,
      batchWaitMs: a.batchWait,
      gcIntervalS: a.gcInterval,
      retryBaseMs: 250,
      retryCapMs: 30_000,
      pauseHoldMs: a.pauseHold * 1000,
      deliveryLimit: a.deliveryLimit,
      permanentAttempts: 3,
      neverBlock,
      ttlS,
      source: a.source,
      maxBytes: a.maxBody,
      observer: metrics?.observer,
    });
    // on, not once: execa's exit hook re-raises a signal that no other listener holds.
    const onSignal = (sig: string): void => {
      consumer.stop(sig);
      // Every wait of a stop is bounded; this is the last resort (a map helper that hangs, say), inside systemd's stop timeout.
      setTimeout(() => {
        ctx.log.error('stop did not finish in time; exiting with work unacked (the broker redelivers it)', { action: 'consume', signal: sig, deadline_ms: STOP_DEADLINE_MS });
        process.exit(1);
      }, STOP_DEADLINE_MS).unref();
    };
    process.on('SIGTERM', () => onSignal('SIGTERM'));
    process.on('SIGINT', () => onSignal('SIGINT'));
    try {
      await consumer.run();
    } finally {
      await metrics?.endpoint.close();
    }
  },
};
