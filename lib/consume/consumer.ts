/**
 * vosctl consume: RabbitMQ messages become map updates, at least once.
 *
 * - Messages are taken in micro-batches (up to batchSize, waiting at most
 *   batchWaitMs after the first), applied with one map operation per run of
 *   blocks or unblocks, persisted, and only then acked.
 * - A delivery tag belongs to the channel that delivered it: each channel is
 *   a generation (Live), every delivery remembers its own, and a batch is
 *   acked, and its dead letters published, only while its own channel is the
 *   open one. A batch applied after its channel closed is left to the
 *   broker, which redelivers it (applying it again changes nothing).
 * - A bad message goes to the dead-letter queue with its reason in the
 *   x-vos-reason header, on a connection of its own (DeadLetterPublisher),
 *   and is acked only once the broker confirmed the dead letter; its good
 *   addresses are applied at once, and the rest of the batch is acked
 *   without waiting for it. A dead letter that is not confirmed keeps its
 *   message unacked and is retried with backoff, logged for what it is.
 * - A transient failure (maps missing, program detached, bpf error) pauses:
 *   the consumer is cancelled (no more deliveries), the batch in hand is
 *   held unacked and retried with backoff; held past pauseHoldMs (well
 *   under the broker's consumer_timeout), what is in hand goes back to the
 *   queue once, and consuming resumes only when the maps are back.
 * - A lost connection is re-established with jittered backoff, forever for
 *   transient faults; a permanent one (bad credentials, no such vhost, no
 *   permission) ends the command after permanentAttempts attempts. With
 *   several broker URLs (the nodes of one RabbitMQ cluster) each attempt
 *   goes to the next node, so a node that goes away is left for a live one.
 * - Stream mode (stream set): a RabbitMQ stream keeps every message for its
 *   retention, and a consumer says where to start (x-stream-offset). The
 *   offset of the last message applied is written in the state database in
 *   the same transaction as the entries (applyBlocks' record hook), so a
 *   restart resumes right after it and a crash re-applies nothing committed;
 *   with no offset stored the node starts at the first message, and ends
 *   with the whole live blocklist. A delivery at or before the stored offset
 *   is skipped, counted as a duplicate. Acks only keep the credit flowing.
 * - Time: a block's ttl runs from the message's ts (or the AMQP timestamp),
 *   or ends at its expires; one whose expiry has passed is acked, counted
 *   and logged as expired, never applied (plan.remainingTtl).
 */
import type { Channel, ChannelModel, ConsumeMessage } from 'amqplib';
import { existsSync } from 'node:fs';
import { hostname } from 'node:os';
import type { BlockPolicy, Cidr } from '../address.js';
import { applyBlocks, applyUnblocks, collectExpired, fillLevel, sourceIds } from '../blocklist.js';
import type { Context } from '../context.js';
import { EnvError, MapFullError, RuntimeError, UsageError } from '../errors.js';
import { MAP } from '../maps/layout.js';
import { messageOutcome, noObserver, queueReadyProbe, type ConsumeObserver, type MessageOutcome } from '../metrics/consume.js';
import { holdLock, type HeldLock } from '../state.js';
import { connectBroker, declareTopology, followStreamTail, isStreamDelivery, NotAStreamError, openRefusal, StreamQueueError, type BrokerAccess, type Topology } from './broker.js';
import { closeWithin, DeadLetterPublisher } from './deadletter.js';
import { ConsumerEvents } from './events.js';
import { classifyBrokerError, nextNodeFault, reconnectMessage, refusedEverywhere, type Fault, type NodeFault } from './faults.js';
import { amqpTimestamp, backoffMs, planMessage, planRuns, type Defaults, type PlannedMessage } from './plan.js';
import { checkStoredOffset, fingerprintFor, judgeResume, judgeTail, messageFingerprint, streamCheckAtKey, streamCheckKey, streamOffsetKey } from './stream.js';

export { streamOffsetKey } from './stream.js';

export interface ConsumeOptions extends Topology, Defaults {
  access: BrokerAccess;
  /** This node's name in dead letters' x-vos-node (--node; default the host name). */
  node?: string;
  prefetch: number;
  batchSize: number;
  batchWaitMs: number;
  /** Seconds between expiry sweeps; 0 = none. */
  gcIntervalS: number;
  retryBaseMs: number;
  retryCapMs: number;
  /** How long a pause may hold deliveries unacked before it returns them to the queue (ms); keep it well under consumer_timeout. */
  pauseHoldMs: number;
  /** The queue's x-delivery-limit as the operator set it (0 = unknown or none): a return that brings a message near it is logged as an error. */
  deliveryLimit: number;
  /** Consecutive connection attempts failing with a permanent error (bad credentials, no vhost, no permission) before giving up. */
  permanentAttempts: number;
  /** The cluster's own addresses (never-block): a block that overlaps one is refused. */
  neverBlock: readonly Cidr[];
  /** Metrics (vosctl consume --metrics-listen); none by default. */
  observer?: ConsumeObserver;
  /** Every node of the broker cluster, `access` first; tried in turn. */
  accesses?: readonly BrokerAccess[];
}

/** The x-stream-offset of a stream delivery, or undefined. */
function streamOffset(msg: ConsumeMessage): number | undefined {
  const v = msg.properties.headers?.['x-stream-offset'];
  return typeof v === 'number' ? v : typeof v === 'bigint' ? Number(v) : undefined;
}

/**
 * Batches applying more addresses than this log one `applied` line instead of
 * a line per address (those at debug level): a node catching up 100,000
 * messages would spend a third of its time formatting lines that journald's
 * default rate limit (10,000 per 30 s) drops anyway, with the warnings among them.
 */
export const ADDRESS_LINES_MAX = 100;

/** How long the never-block rules read for one batch serve the next ones (ms). */
const POLICY_REFRESH_MS = 1000;

/** The broker refuses us for a reason retrying cannot fix: exit 1 so systemd and the operator see it. */
export class BrokerRefusedError extends RuntimeError {}

/** The maps or the program are not there: wait for them, do not ack. */
class NotReady extends EnvError {}

/** One channel generation: the deliveries of this channel can be acked on it only. */
interface Live {
  conn: ChannelModel;
  ch: Channel;
  gen: number;
  consumerTag?: string;
  /** Set once the channel or its connection closed: nothing is acked on it any more. */
  closed: boolean;
  /** Delivery tags whose dead letter is not confirmed yet (acked one by one when it is). */
  held: Set<number>;
  /** Why it ends, when we end it ourselves (reported instead of "channel closed"). */
  reason?: Error;
  /** Stream mode: deliveries of an attach being replaced (a re-created stream) are dropped until the next attach. */
  dropping?: boolean;
  /** Resolves with why this generation ended. */
  ended: Promise<Error>;
  end: (why: Error) => void;
}

interface Pending {
  msg: ConsumeMessage;
  live: Live;
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

/** Resolve with the promise's value, or with undefined after ms. */
async function within<T>(p: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<undefined>((r) => (timer = setTimeout(() => r(undefined), ms)));
  try {
    return await Promise.race([p, late]);
  } finally {
    clearTimeout(timer);
  }
}

export class Consumer {
  private live?: Live;
  private gen = 0;
  private pending: Pending[] = [];
  private busy = false;
  private timer?: NodeJS.Timeout;
  private gcTimer?: NodeJS.Timeout;
  private gcDue = false;
  private fatal?: Error;
  private readonly stopping = new AbortController();
  private idleWaiters: Array<() => void> = [];
  private readonly dead: DeadLetterPublisher;
  private deadInFlight = new Set<Promise<void>>();
  /** Every event the consumer reports (log lines; observers such as metrics). */
  readonly events: ConsumerEvents;
  /** Totals, for the log line at exit. */
  readonly totals = { messages: 0, applied: 0, deadLettered: 0, batches: 0, expired: 0, skippedDuplicates: 0, retentionGap: 0, futureTs: 0 };
  /** Stream mode: the offset of the last message whose effects are committed (undefined: none yet). */
  private offset?: number;
  /** Stream mode: the fingerprint of the message at `offset` (stream.messageFingerprint), when known. */
  private fingerprint?: number;
  /** Stream mode, after an attach at the stored offset: the check its first delivery gets (stream.judgeResume). */
  private verify?: { stored: number; fingerprint?: number; live: Live; tail?: { stop: () => void } };
  private retentionWarned = false;
  /** Stream mode: one consumer per stream and state folder (state.holdLock). */
  private lock?: HeldLock;
  /** Index in accesses of the node connected to (or tried) now. */
  private node = 0;
  private readonly accesses: readonly BrokerAccess[];
  private readonly obs: ConsumeObserver;
  /** What each message of the batch in hand changes (for the metrics). */
  private readonly outcomes = new WeakMap<PlannedMessage, MessageOutcome>();
  /** Stream deliveries at or before the committed offset (a re-consume overlapping what was applied). */
  private readonly skipped = new WeakSet<PlannedMessage>();

  constructor(
    private readonly ctx: Context,
    private readonly o: ConsumeOptions,
  ) {
    ctx.sourceIdCache = { mapId: -1, ids: new Map() };
    this.obs = o.observer ?? noObserver;
    this.accesses = o.accesses?.length ? o.accesses : [o.access];
    this.events = new ConsumerEvents(ctx.log, { queue: o.queue });
    this.dead = new DeadLetterPublisher(() => this.access, o.deadLetter, this.events);
  }

  /** The broker node in use now. */
  private get access(): BrokerAccess {
    return this.accesses[this.node]!;
  }

  /** Ask for a clean stop: no new messages, finish and ack what is here, close. */
  stop(signal = 'stop'): void {
    if (this.stopping.signal.aborted) return;
    this.events.emit('info', 'stopping: finishing the batch in flight', { action: 'consume', signal });
    this.stopping.abort();
  }

  /** Consume until stop(); reconnects forever on transient faults, throws BrokerRefusedError or UsageError on permanent ones. */
  async run(): Promise<void> {
    // The whole state, once: every batch after that reads only what was appended.
    this.ctx.store.load();
    if (this.o.stream) {
      // Before anything else: a second consumer of this stream on this state folder would interleave offsets.
      this.lock = holdLock(this.ctx.store.dir, streamOffsetKey(this.o.queue), `vosctl consume --stream ${this.o.queue}`);
      try {
        this.offset = checkStoredOffset(this.ctx.store.consumerOffset(streamOffsetKey(this.o.queue)), this.o.queue, this.ctx.store.path);
      } catch (err) {
        this.lock.release();
        throw err;
      }
      if (this.offset !== undefined) {
        const check = fingerprintFor(this.offset, this.ctx.store.consumerOffset(streamCheckKey(this.o.queue)), this.ctx.store.consumerOffset(streamCheckAtKey(this.o.queue)));
        if (check.note) this.events.emit('info', check.note, { action: 'consume', stream: this.o.queue, offset: this.offset });
        this.fingerprint = check.fingerprint;
      }
      this.events.emit('info', this.offset === undefined ? 'no stream offset stored: starting from the first message' : 'resuming the stream after the stored offset', { action: 'consume', stream: this.o.queue, offset: this.offset });
    }
    if (this.o.gcIntervalS > 0) {
      this.gcTimer = setInterval(() => {
        this.gcDue = true;
        void this.drain();
      }, this.o.gcIntervalS * 1000);
      this.gcTimer.unref();
    }
    let attempt = 0;
    // Per node since the last connection: a dead node's ECONNREFUSED must not reset another node's count of refusals.
    let faults: (NodeFault | undefined)[] = [];
    let url = this.access.display;
    const stopped = new Promise<undefined>((resolve) => this.stopping.signal.addEventListener('abort', () => resolve(undefined), { once: true }));
    try {
      while (!this.stopping.signal.aborted) {
        let lost: Error | undefined;
        let conn: ChannelModel | undefined;
        let live: Live | undefined;
        try {
          url = this.access.display;
          conn = await connectBroker(this.access, 'vosctl consume');
          live = this.newLive(conn);
          const { created, unavailable, retention } = await declareTopology(conn, this.o);
          for (const what of created) this.events.emit('info', `declared ${what}`, { action: 'declare' });
          if (retention && this.o.stream && !this.retentionWarned) {
            this.retentionWarned = true;
            this.events.emit('warn', 'the stream exists with another retention: its own applies, not --stream-max-age/--stream-max-bytes (retention is set when a stream is declared; a policy changes it later)', { action: 'declare', stream: this.o.queue, broker: retention, wanted: { 'x-max-age': this.o.stream.maxAge, 'x-max-length-bytes': this.o.stream.maxBytes }, hint: `rabbitmqctl set_policy --apply-to queues vos-retention '^${this.o.queue}$' '{"max-age":"${this.o.stream.maxAge}","max-length-bytes":${this.o.stream.maxBytes}}' (where a policy and the declared arguments both set a bound, RabbitMQ applies the smaller)` });
          }
          for (const what of unavailable) this.events.emit('warn', 'not available now; consuming anyway', { action: 'declare', error: what });
          await this.openChannel(live);
          attempt = 0;
          faults = [];
          this.obs.onConnection(true, queueReadyProbe(conn, this.o.queue));
          this.events.emit('info', 'consuming', { action: 'consume', dead_letter: this.o.deadLetter, url, prefetch: this.o.prefetch, gen: live.gen, ...(this.o.exchange || this.o.fanout ? { exchange: this.o.exchange ?? this.o.fanout } : {}) });
          lost = await Promise.race([live.ended, stopped]);
          if (!lost) {
            await this.shutdown(live);
            return;
          }
        } catch (err) {
          if (err instanceof UsageError) {
            if (conn) await closeWithin(conn, 2000);
            throw err; // a stream queue, a bad option: no retry helps
          }
          lost = err as Error;
          // A connection-level close (541, 406 on the connection) fails the call in flight with "Channel ended": the broker's reason is the connection's.
          if (live && /Channel ended|Channel closed|Connection closed/.test(lost.message)) lost = (await within(live.ended, 500)) ?? lost;
        }
        if (live) this.retire(live);
        this.obs.onConnection(false);
        if (conn) await closeWithin(conn, 2000);
        if (this.fatal) throw this.fatal;
        if (this.stopping.signal.aborted) break;
        const fault = await this.classify(lost);
        faults[this.node] = nextNodeFault(faults[this.node], fault);
        const refused = refusedEverywhere(faults, this.accesses.map((a) => a.display), this.o.permanentAttempts);
        if (refused) {
          this.events.emit('error', 'the broker refuses this consumer; giving up', { action: 'reconnect', url, attempts: faults[this.node]!.refusals, error: fault.message, nodes: this.accesses.map((a, i) => ({ url: a.display, kind: faults[i]?.kind, refusals: faults[i]?.refusals })) });
          throw new BrokerRefusedError(refused);
        }
        // The next node of the cluster; backoff only once every node was tried.
        const moved = this.accesses.length > 1;
        this.node = (this.node + 1) % this.accesses.length;
        const delay = moved && this.node !== 0 ? this.o.retryBaseMs : backoffMs(attempt++, this.o.retryBaseMs, this.o.retryCapMs);
        if (moved) this.events.emit('info', 'trying the next broker node', { action: 'reconnect', from: url, to: this.access.display });
        const message = reconnectMessage(fault.kind);
        this.events.emit('warn', message, { action: 'reconnect', url, attempt, retry_in_ms: delay, error: fault.message });
        await sleep(delay, this.stopping.signal);
      }
    } finally {
      await this.close();
    }
  }

  private async classify(err: Error): Promise<Fault> {
    const refused = /Expected ConnectionOpenOk; got <ConnectionClose/.test(err.message) ? await openRefusal(this.access) : undefined;
    return classifyBrokerError(err, this.access.endpoint, refused);
  }

  private newLive(conn: ChannelModel): Live {
    let end!: (why: Error) => void;
    const ended = new Promise<Error>((r) => (end = r));
    const live: Live = { conn, ch: undefined as unknown as Channel, gen: ++this.gen, closed: false, held: new Set(), ended, end: (why) => ((live.closed = true), end(live.reason ?? why)) };
    let lastError: Error | undefined;
    conn.on('error', (err: Error) => {
      lastError = err;
      this.events.emit('warn', 'broker connection error', { action: 'consume', url: this.access.display, error: err.message });
    });
    conn.once('close', (err?: Error) => live.end(err ?? lastError ?? new Error('connection closed')));
    conn.on('blocked', (reason: string) => this.events.emit('warn', 'blocked', { action: 'broker', connection: 'consume', reason }));
    conn.on('unblocked', () => this.events.emit('info', 'unblocked', { action: 'broker', connection: 'consume' }));
    return live;
  }

  private async openChannel(live: Live): Promise<void> {
    const ch = await live.conn.createChannel();
    live.ch = ch;
    let chError: Error | undefined;
    ch.on('error', (err: Error) => {
      chError = err;
      this.events.emit('warn', 'channel error', { action: 'consume', error: err.message });
    });
    // A connection.close from the broker closes the channels first: let its reason (CONNECTION_FORCED - ...) win.
    ch.on('close', () => {
      live.closed = true;
      setImmediate(() => live.end(chError ?? new Error('channel closed')));
    });
    await ch.prefetch(this.o.prefetch);
    this.live = live;
    await this.startConsuming(live);
  }

  private async startConsuming(live: Live): Promise<void> {
    // A stream starts where the state says: at the last offset committed (its message is checked, then
    // skipped: the same stream, or one declared again under its name?), or at its first message.
    const from = this.offset;
    const args = this.o.stream ? { arguments: { 'x-stream-offset': from === undefined ? 'first' : from } } : {};
    this.verify?.tail?.stop();
    this.verify = this.o.stream && from !== undefined ? { stored: from, fingerprint: this.fingerprint, live } : undefined;
    live.dropping = false;
    live.consumerTag = (await live.ch.consume(this.o.queue, (msg) => this.onMessage(live, msg), { noAck: false, ...args })).consumerTag;
    const v = this.verify;
    if (v && v.live === live) {
      // A stream that ends before the stored offset sends nothing at it: its end tells (stream.judgeTail).
      v.tail = await followStreamTail(live.conn, this.o.queue, (tail) => {
        if (this.verify !== v || live.closed) return;
        const r = judgeTail(v.stored, tail);
        if (r?.kind === 'recreated') void this.replayFromFirst(live, r.why);
      }).catch(() => undefined);
      if (this.verify !== v) v.tail?.stop();
    }
  }

  /**
   * The first delivery of an attach at the stored offset: the stored message
   * again (skipped), the stream shortened by retention past it (warned,
   * counted, consumed), or another stream under the same name (replayed from
   * its first message). False when the delivery is not to be consumed.
   */
  private checkResume(live: Live, msg: ConsumeMessage): boolean {
    const v = this.verify;
    if (!v || v.live !== live) return true;
    this.verify = undefined;
    v.tail?.stop();
    const off = streamOffset(msg);
    if (off === undefined) return true;
    const r = judgeResume(v.stored, v.fingerprint, off, messageFingerprint(msg.content, msg.properties.messageId));
    if (r.kind === 'recreated') {
      void this.replayFromFirst(live, r.why);
      return false;
    }
    if (r.kind === 'gap' && r.lost > 0) {
      this.totals.retentionGap += r.lost;
      this.obs.onStreamGap?.(r.lost);
      this.events.emit('warn', 'stream retention removed messages this node never applied: it may miss blocks (and unblocks) they carried', { action: 'consume', stream: this.o.queue, stored_offset: v.stored, first_offset: off, lost: r.lost, hint: 'keep nodes down for less than the stream\'s retention (x-max-age, x-max-length-bytes); re-sync this node from one that has the blocklist: the addresses of vosctl list --source SOURCE there, pushed with scripts/cluster_sync_blocklist.sh FILE --source SOURCE HOST (load-file --replace)' });
    }
    if (r.kind === 'same') {
      live.ch.ack(msg); // applied already: only the credit goes back
      return false;
    }
    return true;
  }

  /**
   * The stream was deleted and declared again under its name (offsets
   * restarted at 0): resuming after the stored offset would skip its messages
   * silently. Say so, and consume it from its first message.
   */
  private async replayFromFirst(live: Live, why: string): Promise<void> {
    if (live.closed) return;
    this.events.emit('warn', 'stream re-created: the stored offset belongs to an earlier stream of this name; replaying from its first message', { action: 'consume', stream: this.o.queue, stored_offset: this.offset, seen: why });
    const tag = live.consumerTag;
    live.consumerTag = undefined;
    live.dropping = true; // what the old attach still sends (offsets of the new stream past the stored one) is not applied
    this.verify = undefined;
    if (tag) await within(live.ch.cancel(tag).catch(() => undefined), 5000);
    // Deliveries of the old attach not applied yet: the replay brings them again.
    for (const p of this.pending.filter((q) => q.live === live)) live.ch.ack(p.msg);
    this.pending = this.pending.filter((q) => q.live !== live);
    await this.idle();
    this.offset = undefined;
    this.fingerprint = undefined;
    if (!live.closed && !this.stopping.signal.aborted) await this.resumeDeliveries(live);
  }

  /** A generation ends: nothing of it is acked any more; what it delivered and did not ack, the broker redelivers. */
  private retire(live: Live): void {
    live.closed = true;
    if (this.live === live) this.live = undefined;
    this.pending = this.pending.filter((p) => p.live !== live);
  }

  private async shutdown(live: Live): Promise<void> {
    // Every wait is bounded: a blocked or silent broker must not hold up a stop (systemd's TimeoutStopSec).
    if (live.consumerTag && !live.closed) await within(live.ch.cancel(live.consumerTag).catch(() => undefined), 3000);
    clearTimeout(this.timer);
    await within(this.drainAll(), 10_000);
    await within(Promise.all([...this.deadInFlight]), 3000);
    if (this.dead.unanswered) this.events.emit('warn', 'stopping with dead letters unconfirmed: their messages stay unacked and come back on the next start', { action: 'dead-letter', unconfirmed: this.dead.unanswered });
    this.retire(live);
    await this.closeLive(live);
  }

  /** Channel first: its close-ok comes after its acks; a connection.close alone may overtake acks still queued in the client. */
  private async closeLive(live: Live): Promise<void> {
    if (live.ch) await within(live.ch.close().catch(() => undefined), 3000);
    await closeWithin(live.conn, 3000);
  }

  private async close(): Promise<void> {
    clearInterval(this.gcTimer);
    clearTimeout(this.timer);
    await this.dead.close();
    await this.ctx.maps.close();
    this.verify?.tail?.stop();
    this.lock?.release();
    this.events.emit('info', 'consumer stopped', { action: 'consume', ...this.totals });
  }

  private idle(): Promise<void> {
    return this.busy ? new Promise((r) => this.idleWaiters.push(r)) : Promise.resolve();
  }

  /** Apply everything pending, and wait until the worker is idle. */
  private async drainAll(): Promise<void> {
    do {
      await this.idle();
      await this.drain();
    } while (this.pending.length && !this.stopping.signal.aborted);
  }

  private onMessage(live: Live, msg: ConsumeMessage | null): void {
    if (live.closed) return;
    if (!msg) {
      // basic.cancel from the broker: the queue was deleted (or moved). What was delivered is applied and
      // acked (the channel still takes the acks); then a new generation declares the queue again.
      this.events.emit('warn', 'the broker cancelled the consumer (queue deleted?): applying what was delivered, then declaring the queue again', { action: 'consume', in_hand: this.pending.filter((p) => p.live === live).length });
      void (async () => {
        await within(this.drainAll(), 30_000);
        await within(Promise.all([...this.deadInFlight]), 5000);
        live.reason = new Error('consumer cancelled by the broker (queue deleted?)');
        await this.closeLive(live);
        live.end(live.reason);
      })();
      return;
    }
    if (this.o.stream && !isStreamDelivery(msg.properties.headers)) {
      this.fatal = new NotAStreamError(this.o.queue);
      this.events.emit('error', 'refusing a queue that is not a stream', { action: 'consume', error: this.fatal.message });
      live.end(this.fatal);
      return;
    }
    if (!this.o.stream && isStreamDelivery(msg.properties.headers)) {
      this.fatal = new StreamQueueError(this.o.queue);
      this.events.emit('error', 'refusing a stream queue', { action: 'consume', error: this.fatal.message });
      live.end(this.fatal);
      return;
    }
    if (live.dropping) {
      live.ch.ack(msg);
      return;
    }
    if (this.o.stream && !this.checkResume(live, msg)) return;
    this.pending.push({ msg, live, at: performance.now() });
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
        const first = this.pending[0]!.live;
        // One batch, one generation: it is acked on its own channel or not at all.
        let n = 0;
        while (n < this.pending.length && n < this.o.batchSize && this.pending[n]!.live === first) n++;
        const batch = this.pending.splice(0, n);
        await this.processBatch(batch, first);
      }
      if (this.gcDue && !this.stopping.signal.aborted) {
        this.gcDue = false;
        await this.sweep();
      }
    } catch (err) {
      this.events.emit('error', 'batch failed unexpectedly; reconnecting so the broker redelivers it', { action: 'consume', error: (err as Error).stack ?? String(err) });
      const live = this.live;
      if (live) {
        this.retire(live);
        void closeWithin(live.conn, 2000);
      }
    } finally {
      this.busy = false;
      for (const w of this.idleWaiters.splice(0)) w();
    }
  }

  private async sweep(): Promise<void> {
    try {
      const { removed } = await collectExpired(this.ctx);
      if (removed) this.events.emit('info', 'expired entries removed', { action: 'gc', removed });
    } catch (err) {
      this.events.emit('warn', 'expiry sweep failed; will try again', { action: 'gc', error: (err as Error).message });
    }
  }

  private ready(): boolean {
    return existsSync(this.ctx.pin(MAP.blockedIps)) && existsSync(this.ctx.pin('prog'));
  }

  private async processBatch(batch: Pending[], live: Live): Promise<void> {
    const started = performance.now();
    let planned: PlannedMessage[] | undefined;
    for (let attempt = 0; ; attempt++) {
      if (live.closed) return; // channel gone: the broker redelivers
      try {
        planned = await this.enforce(batch.map((p) => p.msg));
        const enforcedAt = performance.now();
        batch.forEach((p, i) => planned![i]!.commands.length && this.obs.onApplied((enforcedAt - p.at) / 1000));
        if (attempt > 0) this.events.emit('info', 'resumed', { action: 'resume', attempts: attempt + 1, paused_ms: Math.round(performance.now() - started) });
        break;
      } catch (err) {
        if (!(err instanceof EnvError || err instanceof RuntimeError)) throw err;
        if (attempt === 0) await this.pauseDeliveries(live);
        const delay = backoffMs(attempt, this.o.retryBaseMs, this.o.retryCapMs);
        this.events.emit('warn', err instanceof NotReady ? 'paused: not ready to enforce' : 'paused: map update failed', {
          action: 'pause',
          unacked: batch.length,
          attempt: attempt + 1,
          retry_in_ms: delay,
          error: err.message,
        });
        if (performance.now() - started >= this.o.pauseHoldMs) {
          await this.returnInHand(live, batch);
          await this.waitUntilReady(live, err instanceof NotReady);
          return;
        }
        await sleep(Math.min(delay, Math.max(0, this.o.pauseHoldMs - (performance.now() - started)) + 1), this.stopping.signal);
        if (this.stopping.signal.aborted) {
          // Leave it unacked, and everything after it: an ack of a later message would cover it.
          this.retire(live);
          return;
        }
      }
    }
    this.settle(batch, planned, live);
    this.totals.batches++;
    this.events.emit('debug', 'batch done', { action: 'batch', size: batch.length, gen: live.gen, ms: Number((performance.now() - started).toFixed(2)) });
    if (!live.consumerTag && !live.closed && !this.stopping.signal.aborted) await this.resumeDeliveries(live);
  }

  /** No new deliveries while enforcement is unavailable: basic.cancel (RabbitMQ does not implement channel.flow from clients). */
  private async pauseDeliveries(live: Live): Promise<void> {
    const tag = live.consumerTag;
    if (!tag || live.closed) return;
    live.consumerTag = undefined;
    await within(live.ch.cancel(tag).catch(() => undefined), 5000);
  }

  private async resumeDeliveries(live: Live): Promise<void> {
    try {
      await this.startConsuming(live);
      this.events.emit('info', 'consuming again', { action: 'resume', gen: live.gen });
    } catch (err) {
      this.events.emit('warn', 'cannot consume again; reconnecting', { action: 'resume', error: (err as Error).message });
      live.end(err as Error);
    }
  }

  /**
   * Held past pauseHoldMs: give what is in hand back to the queue (one nack
   * each, requeue), before the broker's consumer_timeout closes the channel
   * and returns it anyway, again at every timeout. On a quorum queue a
   * return counts as a delivery attempt (x-delivery-count), so this costs one
   * per pause, not one per consumer_timeout.
   */
  private async returnInHand(live: Live, batch: Pending[]): Promise<void> {
    const inHand = [...batch, ...this.pending.filter((p) => p.live === live)];
    this.pending = this.pending.filter((p) => p.live !== live);
    if (live.closed) return;
    if (this.o.stream) {
      // A stream keeps them: acks only return the credit, and consuming again starts after the stored offset.
      for (const p of inHand) live.ch.ack(p.msg);
      this.events.emit('warn', 'paused: dropped the deliveries in hand; the stream resumes after the stored offset once the maps are back', { action: 'pause', dropped: inHand.length, offset: this.offset });
      return;
    }
    let maxCount = 0;
    for (const p of inHand) {
      maxCount = Math.max(maxCount, Number(p.msg.properties.headers?.['x-delivery-count'] ?? 0) + 1);
      live.ch.nack(p.msg, false, true);
    }
    const fields = { action: 'pause', returned: inHand.length, delivery_count: maxCount, delivery_limit: this.o.deliveryLimit || undefined, hold_ms: this.o.pauseHoldMs };
    if (this.o.deliveryLimit && maxCount >= this.o.deliveryLimit) {
      this.events.emit('error', 'paused too long: a block can be dropped by the broker at its delivery limit', { ...fields, hint: 'raise x-delivery-limit on the queue, or bring the maps back' });
    } else {
      this.events.emit('warn', 'paused: returned the deliveries in hand to the queue; consuming again once the maps are back', { ...fields, note: 'on a quorum queue each return counts as a delivery attempt' });
    }
  }

  /**
   * After a return: consume again once enforcement can work. Missing maps or
   * program are polled (cheap); a map update that failed with them present is
   * retried no faster than a pause lasts, each retry costing a return.
   */
  private async waitUntilReady(live: Live, notReady: boolean): Promise<void> {
    for (let attempt = 0; !live.closed && !this.stopping.signal.aborted; attempt++) {
      await sleep(notReady ? 1000 : backoffMs(attempt, Math.min(this.o.pauseHoldMs, this.o.retryCapMs), this.o.retryCapMs), this.stopping.signal);
      if (this.ready()) break;
    }
    if (!live.closed && !this.stopping.signal.aborted) await this.resumeDeliveries(live);
  }

  /** Apply a batch to the maps and the state. Throws (and changes nothing it cannot redo) when not ready. */
  private async enforce(msgs: ConsumeMessage[]): Promise<PlannedMessage[]> {
    if (!existsSync(this.ctx.pin(MAP.blockedIps))) throw new NotReady(`no maps in ${this.ctx.settings.pinDir}`);
    if (!existsSync(this.ctx.pin('prog'))) throw new NotReady(`the XDP program is not loaded (no ${this.ctx.pin('prog')}); attach it again`);
    const policy = await this.policy();
    const nowS = Math.floor(Date.now() / 1000);
    // Stream mode: the highest offset covered up to each message; one at or below it was applied already.
    const reach: Array<number | undefined> = [];
    // The message at each offset, fingerprinted only where an offset is recorded (once per run, not per message).
    const atOffset = new Map<number, ConsumeMessage>();
    const printAt = (off: number): number | undefined => {
      const m = atOffset.get(off);
      return m && messageFingerprint(m.content, m.properties.messageId);
    };
    let high = this.offset;
    const planned = msgs.map((m): PlannedMessage => {
      const off = this.o.stream ? streamOffset(m) : undefined;
      if (off !== undefined && high !== undefined && off <= high) {
        reach.push(high);
        const skip: PlannedMessage = { commands: [] };
        this.skipped.add(skip);
        return skip;
      }
      if (off !== undefined) {
        high = off;
        atOffset.set(off, m);
      }
      reach.push(high);
      // AMQP 0-9-1 timestamps are seconds: one in milliseconds is read as such, with a warning (plan.amqpTimestamp).
      const stamp = amqpTimestamp(m.properties.timestamp);
      if (stamp.note) this.events.emit('warn', stamp.note, { action: 'consume', msg_id: msgId(m), offset: off, timestamp: m.properties.timestamp });
      const p = planMessage(m.content, policy, this.o, { nowS, publishedS: stamp.publishedS });
      if (p.futureTs !== undefined) {
        this.totals.futureTs++;
        this.obs.onFutureTs?.();
        if (p.futureField === 'timestamp') this.events.emit('warn', 'AMQP timestamp in the future: the ttl runs from now, never from the future', { action: 'consume', msg_id: msgId(m), offset: off, timestamp: p.futureTs, now: nowS, ahead_s: p.futureTs - nowS });
        else this.events.emit('warn', 'ts in the future: the ttl runs from now (or the AMQP timestamp), never from the future', { action: 'consume', msg_id: msgId(m), offset: off, ts: p.futureTs, now: nowS, ahead_s: p.futureTs - nowS });
      }
      return p;
    });
    const key = streamOffsetKey(this.o.queue);
    const checkKey = streamCheckKey(this.o.queue);
    const checkAtKey = streamCheckAtKey(this.o.queue);
    const through = (i: number): { record?: (store: Context['store']) => void; off?: number } => {
      const off = i >= 0 ? reach[i] : undefined;
      if (off === undefined || !this.o.stream || (this.offset !== undefined && off <= this.offset)) return {};
      const print = printAt(off);
      return {
        off,
        record: (store) => {
          store.setConsumerOffset(key, off);
          if (print !== undefined) {
            store.setConsumerOffset(checkKey, print);
            store.setConsumerOffset(checkAtKey, off);
          }
        },
      };
    };
    const advance = (off: number | undefined): void => {
      if (off === undefined) return;
      this.offset = off;
      this.fingerprint = printAt(off);
    };
    if (this.o.observer) {
      const state = this.ctx.store.lookup(planned.flatMap((p) => p.commands.map((c) => c.target.text)));
      for (const p of planned) this.outcomes.set(p, messageOutcome(p.commands, state, Math.floor(Date.now() / 1000)));
    }
    // A source name that cannot be registered (all ids in use, bad name) refuses its messages, not the batch.
    // Names registered already are checked once, by the map write itself (it asks whether the map was reloaded): one round trip to the helper per batch, not two.
    const known = this.ctx.sourceIdCache?.ids;
    for (const source of new Set(planned.flatMap((p) => p.commands.filter((c) => c.action === 'block').map((c) => c.source)))) {
      if (known?.has(source)) continue;
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
    // Each run records the stream offset it completes in its own transaction: both or neither are on disk.
    for (const run of planRuns(planned)) {
      const { record, off } = through(run.through);
      if (run.action === 'unblock') {
        await applyUnblocks(this.ctx, run.targets, { record });
        advance(off);
        continue;
      }
      try {
        await applyBlocks(this.ctx, run.reqs, { record });
        advance(off);
      } catch (err) {
        // A name that could not be registered again (the maps reloaded with every id taken): forget the cache,
        // so the batch, delivered again, is checked source by source above and only its messages refused.
        if (err instanceof UsageError) this.ctx.sourceIdCache = { mapId: -1, ids: new Map() };
        if (!(err instanceof MapFullError)) throw err;
        advance(off); // what fit is committed with the offset
        await this.mapFull(err, planned);
      }
    }
    // Messages after the last run change no entry (expired, refused, skipped): their offset alone.
    const rest = through(planned.length - 1);
    if (rest.record) {
      await this.ctx.store.transaction(() => rest.record!(this.ctx.store));
      advance(rest.off);
    }
    return planned;
  }

  /**
   * The never-block rules (allowlist maps, this host's addresses, --never-block),
   * read again at most every POLICY_REFRESH_MS: reading them costs two map
   * dumps through the helper, which at 1,000 messages a second was a fifth
   * of each batch. An address allowlisted within that second may still be
   * stored as blocked; the XDP program passes it anyway (the allowlist is
   * checked before the blocklist).
   */
  private async policy(): Promise<BlockPolicy> {
    const now = performance.now();
    if (!this.policyCache || now - this.policyCache.at > POLICY_REFRESH_MS) this.policyCache = { at: now, policy: { ...(await this.ctx.policy()), peers: this.o.neverBlock } };
    return this.policyCache.policy;
  }

  private policyCache?: { at: number; policy: BlockPolicy };

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
    this.events.emit('error', 'blocklist map full: messages dead-lettered', { action: 'block', map: err.map, entries: fill?.entries, capacity: err.capacity, fill: fill?.fill, dead_lettered: refused });
  }

  /**
   * Log what was applied, ack what is done on the batch's own channel, and
   * hand the bad messages to the dead-letter publisher (each acked when its
   * dead letter is confirmed). Nothing here waits on the broker.
   */
  private settle(batch: Pending[], planned: PlannedMessage[] | undefined, live: Live): void {
    if (!planned) return;
    let skipped = 0;
    // A large batch (a catch-up, a backlog) gets one summary line; its addresses only at debug level.
    const addresses = planned.reduce((n, p) => n + p.commands.length, 0);
    const each = addresses <= ADDRESS_LINES_MAX ? 'info' : this.events.enabled('debug') ? 'debug' : undefined;
    if (!each) {
      const count = (a: string) => planned.reduce((n, p) => n + p.commands.filter((c) => c.action === a).length, 0);
      this.events.emit('info', 'applied', { action: 'batch', messages: batch.length, blocked: count('block'), unblocked: count('unblock'), first_offset: streamOffset(batch[0]!.msg), last_offset: streamOffset(batch[batch.length - 1]!.msg), note: `over ${ADDRESS_LINES_MAX} addresses: one line per address at VOS_LOG_LEVEL=debug` });
    }
    batch.forEach(({ msg }, i) => {
      const p = planned[i]!;
      if (each) for (const c of p.commands) {
        this.events.emit(each, c.action === 'block' ? 'blocked' : 'unblocked', {
          action: c.action,
          ip: c.target.text,
          ttl_s: c.action === 'block' ? c.ttlS : undefined,
          source: c.source,
          reason: c.reason ?? undefined,
          msg_id: msgId(msg),
        });
      }
      this.totals.applied += p.commands.length;
      if (p.expired) {
        this.totals.expired += p.expired;
        this.events.emit('info', 'expired: not applied', { action: 'expired', blocks: p.expired, msg_id: msgId(msg), offset: streamOffset(msg), published: msg.properties.timestamp });
      }
      if (this.skipped.has(p)) skipped++;
      if (p.deadReason === undefined) this.obs.onMessages(this.skipped.has(p) ? 'duplicate' : (this.outcomes.get(p) ?? 'applied'), 1);
    });
    if (skipped) {
      this.totals.skippedDuplicates += skipped;
      this.events.emit('info', 'skipped duplicates: at or before the stored stream offset', { action: 'consume', skipped, offset: this.offset });
    }
    this.totals.messages += batch.length;
    if (live.closed || live !== this.live) {
      if (this.o.stream) this.events.emit('info', 'applied, its channel is gone: the stream resumes after the stored offset', { action: 'consume', gen: live.gen, size: batch.length, offset: this.offset });
      else this.events.emit('warn', 'applied, but its channel is gone: not acked, no dead letters; the broker redelivers the batch', { action: 'consume', gen: live.gen, size: batch.length });
      return;
    }
    const bad = batch.filter((_, i) => planned[i]!.deadReason !== undefined);
    if (!bad.length && !live.held.size) {
      live.ch.ack(batch[batch.length - 1]!.msg, true);
    } else {
      // Acked one by one: a multiple ack would also cover the messages still waiting for their dead letter.
      batch.forEach((p, i) => planned[i]!.deadReason === undefined && live.ch.ack(p.msg));
    }
    const now = Math.floor(Date.now() / 1000);
    batch.forEach(({ msg }, i) => {
      const reason = planned[i]!.deadReason;
      if (reason === undefined) return;
      live.held.add(msg.fields.deliveryTag);
      const job = this.deadLetter(live, msg, reason, now).finally(() => this.deadInFlight.delete(job));
      this.deadInFlight.add(job);
    });
  }

  /** Publish one dead letter until the broker confirms it, then ack its message; give up when its channel is gone (the broker redelivers it). */
  private async deadLetter(live: Live, msg: ConsumeMessage, reason: string, now: number): Promise<void> {
    const fields = { dead_letter: this.o.deadLetter, msg_id: msgId(msg), reason };
    try {
      for (let attempt = 0; ; attempt++) {
        // A queue redelivers it with its channel, dead-lettered then; a stream does not (the offset is past it): go on.
        if (live.closed && !this.o.stream) return;
        const outcome = await this.dead.publish(msg.content, {
          persistent: true,
          contentType: msg.properties.contentType,
          messageId: msg.properties.messageId,
          // x-vos-node tells the copies apart: in stream mode every node dead-letters what it refuses (README: Dead letters in stream mode).
          headers: { ...(msg.properties.headers ?? {}), 'x-vos-reason': reason.slice(0, 2000), 'x-vos-queue': this.o.queue, 'x-vos-dead-at': now, 'x-vos-node': this.o.node ?? hostname() },
        });
        if (outcome === 'confirmed') {
          if (live.closed && this.o.stream) {
            this.totals.deadLettered++;
            this.obs.onMessages('dead_lettered', 1);
            this.events.emit('warn', 'dead-lettered', { action: 'dead-letter', ...fields, note: 'its channel is gone; a stream needs no ack' });
            return;
          }
          if (live.closed) {
            this.events.emit('warn', 'dead-lettered, but the channel of its message is gone: the broker redelivers it, and it is dead-lettered again', { action: 'dead-letter', ...fields });
            return;
          }
          live.ch.ack(msg);
          this.totals.deadLettered++;
          this.obs.onMessages('dead_lettered', 1);
          this.events.emit('warn', 'dead-lettered', { action: 'dead-letter', ...fields });
          return;
        }
        if (this.stopping.signal.aborted) return; // counted in the stop's own warning
        const why = {
          nacked: 'the dead-letter queue refused it (full, with x-overflow reject-publish?)',
          returned: 'the dead-letter queue does not exist and could not be declared',
          refused: `the broker refused the dead letter: ${this.dead.refusal ?? 'no reason given'}`,
          lost: 'the dead-letter connection closed before the broker confirmed it',
        }[outcome];
        if (outcome === 'refused' && attempt + 1 >= this.o.permanentAttempts) {
          // Permission, a missing exchange: retrying cannot fix it. Exit 1; the message stays unacked and goes back to the queue.
          this.fatal ??= new BrokerRefusedError(`cannot dead-letter to '${this.o.deadLetter}': ${this.dead.refusal ?? 'refused'} (${attempt + 1} attempts); give the user write permission on the default exchange and the dead-letter queue (rabbitmqctl set_permissions)`);
          this.events.emit('error', 'cannot dead-letter: the broker refuses; giving up', { action: 'dead-letter', ...fields, outcome, error: why, attempts: attempt + 1, note: 'the message stays unacked and goes back to the queue; blocks already applied stay' });
          live.end(this.fatal);
          return;
        }
        const delay = backoffMs(attempt, this.o.retryBaseMs * 4, this.o.retryCapMs);
        this.events.emit('warn', 'not dead-lettered: message kept unacked', { action: 'dead-letter', ...fields, outcome, error: why, attempt: attempt + 1, retry_in_ms: delay });
        await sleep(delay, this.stopping.signal);
        if (this.stopping.signal.aborted) return; // unacked: back in the queue when the connection closes
      }
    } finally {
      live.held.delete(msg.fields.deliveryTag);
    }
  }
}

function msgId(msg: ConsumeMessage): string {
  return msg.properties.messageId ?? `delivery:${msg.fields.deliveryTag}`;
}
