/**
 * vosctl consume: RabbitMQ messages become map updates, at least once.
 *
 * - Messages are taken in micro-batches (up to batchSize, waiting at most
 *   batchWaitMs after the first), applied with one map operation per run of
 *   blocks or unblocks, persisted, and only then acked.
 * - A bad message goes to the dead-letter queue with its reason in the
 *   x-vos-reason header (publisher-confirmed before the ack); its good
 *   addresses are still applied.
 * - A transient failure (maps missing, program detached, bpf error) pauses:
 *   the batch stays unacked and is retried with backoff; prefetch caps what
 *   the broker sends meanwhile.
 * - A lost connection is re-established forever with jittered backoff;
 *   what was unacked is redelivered by the broker.
 */
import type { ChannelModel, ConfirmChannel, ConsumeMessage } from 'amqplib';
import { existsSync } from 'node:fs';
import { applyBlocks, applyUnblocks, collectExpired, fillLevel, sourceIds } from '../blocklist.js';
import type { Context } from '../context.js';
import { EnvError, MapFullError, RuntimeError, UsageError } from '../errors.js';
import { MAP } from '../maps/layout.js';
import { messageOutcome, noObserver, queueReadyProbe, type ConsumeObserver, type MessageOutcome } from '../metrics/consume.js';
import { connectBroker, declareTopology, redactUrl, type Topology } from './broker.js';
import { backoffMs, planMessage, planRuns, type Defaults, type PlannedMessage } from './plan.js';

export interface ConsumeOptions extends Topology, Defaults {
  url: string;
  caFile?: string;
  prefetch: number;
  batchSize: number;
  batchWaitMs: number;
  /** Seconds between expiry sweeps; 0 = none. */
  gcIntervalS: number;
  retryBaseMs: number;
  retryCapMs: number;
  /** Metrics (vosctl consume --metrics-listen); none by default. */
  observer?: ConsumeObserver;
}

/** The maps or the program are not there: wait for them, do not ack. */
class NotReady extends EnvError {}

interface Live {
  conn: ChannelModel;
  ch: ConfirmChannel;
  gen: number;
  consumerTag?: string;
}

interface Pending {
  msg: ConsumeMessage;
  gen: number;
  /** performance.now() at delivery. */
  at: number;
}

/** Wait ms, or less if the signal aborts; leaves no listener behind (a consumer may retry for days). */
const sleep = (ms: number, signal: AbortSignal): Promise<void> =>
  new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(t);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const t = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });

export class Consumer {
  private live?: Live;
  private gen = 0;
  private pending: Pending[] = [];
  private busy = false;
  private timer?: NodeJS.Timeout;
  private gcTimer?: NodeJS.Timeout;
  private gcDue = false;
  private readonly stopping = new AbortController();
  private idleWaiters: Array<() => void> = [];
  /** Totals, for the log line at exit. */
  readonly totals = { messages: 0, applied: 0, deadLettered: 0, batches: 0 };
  private readonly obs: ConsumeObserver;
  /** Messages of the batch in hand that only repeat blocks in force (for the metrics). */
  private readonly outcomes = new WeakMap<PlannedMessage, MessageOutcome>();

  constructor(
    private readonly ctx: Context,
    private readonly o: ConsumeOptions,
  ) {
    ctx.sourceIdCache = { mapId: -1, ids: new Map() };
    this.obs = o.observer ?? noObserver;
  }

  private get log() {
    return this.ctx.log;
  }

  /** Ask for a clean stop: no new messages, finish and ack what is here, close. */
  stop(signal = 'stop'): void {
    if (this.stopping.signal.aborted) return;
    this.log.info('stopping: finishing the batch in flight', { action: 'consume', queue: this.o.queue, signal });
    this.stopping.abort();
  }

  /** Consume until stop(); reconnects forever. */
  async run(): Promise<void> {
    // The whole state, once: every batch after that reads only what was appended.
    this.ctx.store.load();
    if (this.o.gcIntervalS > 0) {
      this.gcTimer = setInterval(() => {
        this.gcDue = true;
        void this.drain();
      }, this.o.gcIntervalS * 1000);
      this.gcTimer.unref();
    }
    let attempt = 0;
    const url = redactUrl(this.o.url);
    const stopped = new Promise<undefined>((resolve) => this.stopping.signal.addEventListener('abort', () => resolve(undefined), { once: true }));
    while (!this.stopping.signal.aborted) {
      let lost: Error | undefined;
      let conn: ChannelModel | undefined;
      try {
        conn = await connectBroker(this.o.url, this.o.caFile);
        const closed = new Promise<Error | undefined>((resolve) => conn!.once('close', (err?: Error) => resolve(err ?? new Error('connection closed'))));
        conn.on('error', (err: Error) => this.log.warn('broker connection error', { action: 'consume', url, error: err.message }));
        const { created } = await declareTopology(conn, this.o);
        for (const what of created) this.log.info(`declared ${what}`, { action: 'declare', queue: this.o.queue });
        const ch = await conn.createConfirmChannel();
        ch.on('error', (err: Error) => this.log.warn('channel error', { action: 'consume', queue: this.o.queue, error: err.message }));
        ch.on('close', () => void conn!.close().catch(() => undefined));
        await ch.prefetch(this.o.prefetch);
        const live: Live = { conn, ch, gen: ++this.gen };
        this.live = live;
        live.consumerTag = (await ch.consume(this.o.queue, (msg) => this.onMessage(live, msg), { noAck: false })).consumerTag;
        attempt = 0;
        this.obs.onConnection(true, queueReadyProbe(conn, this.o.queue));
        this.log.info('consuming', { action: 'consume', queue: this.o.queue, dead_letter: this.o.deadLetter, url, prefetch: this.o.prefetch, ...(this.o.exchange || this.o.fanout ? { exchange: this.o.exchange ?? this.o.fanout } : {}) });
        lost = await Promise.race([closed, stopped]);
        if (!lost) {
          await this.shutdown(live);
          return;
        }
      } catch (err) {
        lost = err as Error;
        // A connection that failed half-way (declaring, opening the channel) is closed, not leaked.
        await conn?.close().catch(() => undefined);
      }
      this.live = undefined;
      this.obs.onConnection(false);
      // What was delivered on the lost channel can no longer be acked; the broker redelivers it.
      this.pending = [];
      if (this.stopping.signal.aborted) break;
      const delay = backoffMs(attempt++, this.o.retryBaseMs, this.o.retryCapMs);
      this.log.warn('broker unreachable; reconnecting', { action: 'reconnect', url, queue: this.o.queue, attempt, retry_in_ms: delay, error: lost.message });
      await sleep(delay, this.stopping.signal);
    }
    await this.close();
  }

  private async shutdown(live: Live): Promise<void> {
    if (live.consumerTag) await live.ch.cancel(live.consumerTag).catch(() => undefined);
    clearTimeout(this.timer);
    await this.drain();
    await this.idle();
    await live.ch.close().catch(() => undefined);
    await live.conn.close().catch(() => undefined);
    await this.close();
  }

  private async close(): Promise<void> {
    clearInterval(this.gcTimer);
    await this.ctx.maps.close();
    this.log.info('consumer stopped', { action: 'consume', queue: this.o.queue, ...this.totals });
  }

  private idle(): Promise<void> {
    return this.busy ? new Promise((r) => this.idleWaiters.push(r)) : Promise.resolve();
  }

  private onMessage(live: Live, msg: ConsumeMessage | null): void {
    if (!msg) {
      this.log.warn('the broker cancelled the consumer (queue deleted?)', { action: 'consume', queue: this.o.queue });
      void live.conn.close().catch(() => undefined);
      return;
    }
    this.pending.push({ msg, gen: live.gen, at: performance.now() });
    this.obs.onDelivered();
    if (this.pending.length >= this.o.batchSize) void this.drain();
    else this.timer ??= setTimeout(() => {
      this.timer = undefined;
      void this.drain();
    }, this.o.batchWaitMs);
  }

  /** The one worker: batches (and the expiry sweep) run one at a time, in arrival order. */
  private async drain(): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    try {
      while (this.pending.length) {
        clearTimeout(this.timer);
        this.timer = undefined;
        const batch = this.pending.splice(0, this.o.batchSize);
        await this.processBatch(batch);
      }
      if (this.gcDue && !this.stopping.signal.aborted) {
        this.gcDue = false;
        await this.sweep();
      }
    } catch (err) {
      this.log.error('batch failed unexpectedly; reconnecting so the broker redelivers it', { action: 'consume', queue: this.o.queue, error: (err as Error).stack ?? String(err) });
      this.pending = [];
      await this.live?.conn.close().catch(() => undefined);
    } finally {
      this.busy = false;
      for (const w of this.idleWaiters.splice(0)) w();
    }
  }

  private async sweep(): Promise<void> {
    try {
      const { removed } = await collectExpired(this.ctx);
      if (removed) this.log.info('expired entries removed', { action: 'gc', removed });
    } catch (err) {
      this.log.warn('expiry sweep failed; will try again', { action: 'gc', error: (err as Error).message });
    }
  }

  private async processBatch(batch: Pending[]): Promise<void> {
    const started = performance.now();
    let planned: PlannedMessage[] | undefined;
    for (let attempt = 0; ; attempt++) {
      const live = this.live;
      if (!live || batch.some((p) => p.gen !== live.gen)) return; // channel gone: redelivered later
      try {
        planned = await this.enforce(batch.map((p) => p.msg));
        const enforcedAt = performance.now();
        batch.forEach((p, i) => planned![i]!.commands.length && this.obs.onApplied((enforcedAt - p.at) / 1000));
        if (attempt > 0) this.log.info('resumed', { action: 'resume', queue: this.o.queue, attempts: attempt + 1, paused_ms: Math.round(performance.now() - started) });
        break;
      } catch (err) {
        if (!(err instanceof EnvError || err instanceof RuntimeError)) throw err;
        const delay = backoffMs(attempt, this.o.retryBaseMs, this.o.retryCapMs);
        this.log.warn(err instanceof NotReady ? 'paused: not ready to enforce' : 'paused: map update failed', {
          action: 'pause',
          queue: this.o.queue,
          unacked: batch.length,
          attempt: attempt + 1,
          retry_in_ms: delay,
          error: err.message,
        });
        await sleep(delay, this.stopping.signal);
        if (this.stopping.signal.aborted) {
          // Leave it unacked, and everything after it: an ack of a later message would cover it.
          this.pending = [];
          return;
        }
      }
    }
    await this.settle(batch, planned);
    this.totals.batches++;
    this.log.debug('batch done', { action: 'batch', queue: this.o.queue, size: batch.length, ms: Number((performance.now() - started).toFixed(2)) });
  }

  /** Apply a batch to the maps and the state. Throws (and changes nothing it cannot redo) when not ready. */
  private async enforce(msgs: ConsumeMessage[]): Promise<PlannedMessage[]> {
    if (!existsSync(this.ctx.pin(MAP.blockedIps))) throw new NotReady(`no maps in ${this.ctx.settings.pinDir}`);
    if (!existsSync(this.ctx.pin('prog'))) throw new NotReady(`the XDP program is not loaded (no ${this.ctx.pin('prog')}); attach it again`);
    const policy = await this.ctx.policy();
    const planned = msgs.map((m) => planMessage(m.content, policy, this.o));
    if (this.o.observer) {
      const state = this.ctx.store.lookup(planned.flatMap((p) => p.commands.map((c) => c.target.text)));
      for (const p of planned) this.outcomes.set(p, messageOutcome(p.commands, state, Math.floor(Date.now() / 1000)));
    }
    // A source name that cannot be registered (all ids in use, bad name) refuses its messages, not the batch.
    for (const source of new Set(planned.flatMap((p) => p.commands.filter((c) => c.action === 'block').map((c) => c.source)))) {
      try {
        await sourceIds(this.ctx, [source]);
      } catch (err) {
        if (!(err instanceof UsageError)) throw err;
        for (const p of planned) {
          if (!p.commands.some((c) => c.source === source)) continue;
          p.commands = p.commands.filter((c) => c.source !== source);
          p.deadReason = [p.deadReason, err.message].filter(Boolean).join('; ');
        }
      }
    }
    for (const run of planRuns(planned)) {
      if (run.action === 'unblock') {
        await applyUnblocks(this.ctx, run.targets);
        continue;
      }
      try {
        await applyBlocks(this.ctx, run.reqs);
      } catch (err) {
        if (!(err instanceof MapFullError)) throw err;
        await this.mapFull(err, planned);
      }
    }
    return planned;
  }

  /** Messages whose blocks did not fit are dead-lettered; what fit stays enforced. */
  private async mapFull(err: MapFullError, planned: PlannedMessage[]): Promise<void> {
    const fit = new Set(err.appliedTargets);
    let refused = 0;
    for (const p of planned) {
      const missing = p.commands.filter((c) => c.action === 'block' && !fit.has(c.target.text));
      if (!missing.length) continue;
      refused++;
      p.commands = p.commands.filter((c) => !missing.includes(c));
      p.deadReason = [p.deadReason, `map full: ${err.map} holds ${err.capacity} of ${err.capacity}; not blocked: ${missing.map((c) => c.target.text).join(', ')}`].filter(Boolean).join('; ');
    }
    const fill = await fillLevel(this.ctx, err.map).catch(() => undefined);
    this.log.error('blocklist map full: messages dead-lettered', { action: 'block', queue: this.o.queue, map: err.map, entries: fill?.entries, capacity: err.capacity, fill: fill?.fill, dead_lettered: refused });
  }

  /** Dead-letter what must be, log what was applied, then ack the whole batch at once. */
  private async settle(batch: Pending[], planned: PlannedMessage[] | undefined): Promise<void> {
    const live = this.live;
    if (!live || !planned) return;
    const { ch } = live;
    const now = Math.floor(Date.now() / 1000);
    batch.forEach(({ msg }, i) => {
      const p = planned[i]!;
      const msgId = msg.properties.messageId ?? `delivery:${msg.fields.deliveryTag}`;
      for (const c of p.commands) {
        this.log.info(c.action === 'block' ? 'blocked' : 'unblocked', {
          action: c.action,
          ip: c.target.text,
          ttl_s: c.action === 'block' ? c.ttlS : undefined,
          source: c.source,
          reason: c.reason ?? undefined,
          queue: this.o.queue,
          msg_id: msgId,
        });
      }
      this.totals.applied += p.commands.length;
      this.obs.onMessages(p.deadReason !== undefined ? 'dead_lettered' : (this.outcomes.get(p) ?? 'applied'), 1);
      if (p.deadReason === undefined) return;
      this.totals.deadLettered++;
      this.log.warn('dead-lettered', { action: 'dead-letter', queue: this.o.queue, dead_letter: this.o.deadLetter, msg_id: msgId, reason: p.deadReason });
      ch.sendToQueue(this.o.deadLetter, msg.content, {
        persistent: true,
        contentType: msg.properties.contentType,
        messageId: msg.properties.messageId,
        headers: { ...(msg.properties.headers ?? {}), 'x-vos-reason': p.deadReason.slice(0, 2000), 'x-vos-queue': this.o.queue, 'x-vos-dead-at': now },
      });
    });
    this.totals.messages += batch.length;
    try {
      await ch.waitForConfirms();
      ch.ack(batch[batch.length - 1]!.msg, true);
    } catch (err) {
      // Channel lost before the ack: the broker redelivers; applying again changes nothing.
      this.log.warn('could not ack (channel lost); the broker will redeliver', { action: 'consume', queue: this.o.queue, error: (err as Error).message });
    }
  }
}
