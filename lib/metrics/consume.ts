/**
 * The consumer's own metrics, fed through a small observer so the consumer
 * knows nothing of Prometheus (and runs without it: noObserver).
 */
import type { ChannelModel } from 'amqplib';
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { ValidCommand } from '../consume/plan.js';
import { isLive, mergeBlock } from '../merge.js';
import type { Entry } from '../state.js';
import { PREFIX } from './host.js';

/**
 * What a settled message did to enforcement, for messages_total{outcome}:
 * - applied: it changed what is enforced: an address newly blocked (absent
 *   or expired before), or a blocked address unblocked;
 * - extended: everything it asks was already enforced, and it moved an
 *   expiry later (a block sent again with its TTL);
 * - duplicate: everything it asks was already so, nothing changed (a block
 *   no longer than the one in force, an unblock of an address not blocked);
 * - dead_lettered: the message (or part of it) was refused.
 */
export type MessageOutcome = 'applied' | 'extended' | 'duplicate' | 'dead_lettered';
export const MESSAGE_OUTCOMES: readonly MessageOutcome[] = ['applied', 'extended', 'duplicate', 'dead_lettered'];

/**
 * The outcome of a message that was not refused (see MessageOutcome), judged
 * against `state` as it was before the message's batch (merge.mergeBlock
 * decides what a block changes). `nowS`: unix seconds.
 */
export function messageOutcome(commands: readonly ValidCommand[], state: ReadonlyMap<string, Entry>, nowS: number): Exclude<MessageOutcome, 'dead_lettered'> {
  let extended = false;
  for (const c of commands) {
    const existing = state.get(c.target.text);
    if (c.action === 'unblock') {
      if (existing && isLive(existing, nowS)) return 'applied';
      continue;
    }
    const change = mergeBlock(existing, { ip: c.target.text, source: c.source, reason: c.reason, ttlS: c.ttlS }, nowS).change;
    if (change === 'added') return 'applied';
    if (change === 'extended') extended = true;
  }
  return extended ? 'extended' : 'duplicate';
}

export interface ConsumeObserver {
  /** A message arrived from the broker (not acked yet). */
  onDelivered(): void;
  /** `n` messages were settled (acked) with this outcome. */
  onMessages(outcome: MessageOutcome, n: number): void;
  /** A message's addresses are in the maps and the state, `latencySeconds` after its delivery. */
  onApplied(latencySeconds: number): void;
  /** Connected (with a way to ask the broker how many messages wait) or disconnected. */
  onConnection(up: boolean, readyMessages?: () => Promise<number>): void;
  /** Stream mode: `offsets` offsets after the stored one were removed by retention before this node read them. */
  onStreamGap?(offsets: number): void;
  /** A message's `ts` was in the future (clamped to now). */
  onFutureTs?(): void;
}

export const noObserver: ConsumeObserver = {
  onDelivered: () => undefined,
  onMessages: () => undefined,
  onApplied: () => undefined,
  onConnection: () => undefined,
};

/** Histogram buckets, seconds: a batch is applied in milliseconds; a pause (maps gone) lasts seconds to minutes. */
const ENFORCE_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300];

export class ConsumeMetrics implements ConsumeObserver {
  private readonly messages: Counter<'outcome'>;
  private readonly enforce: Histogram;
  private readonly connected: Gauge;
  private readonly lastApply: Gauge;
  private readonly unacked: Gauge;
  private readyProbe?: () => Promise<number>;
  private readonly streamGap: Counter;
  private readonly futureTs: Counter;

  constructor(registry: Registry, queue: string) {
    const registers = [registry];
    this.messages = new Counter({ name: `${PREFIX}messages_total`, help: 'Messages consumed and acked, by outcome: applied (changed what is enforced), extended (already enforced, expiry moved later), duplicate (already so, nothing changed), dead_lettered.', labelNames: ['outcome'], registers });
    for (const outcome of MESSAGE_OUTCOMES) this.messages.inc({ outcome }, 0);
    this.enforce = new Histogram({ name: `${PREFIX}enforce_seconds`, help: 'From a message\'s delivery to its addresses being in the maps and the state.', buckets: ENFORCE_BUCKETS, registers });
    this.connected = new Gauge({ name: `${PREFIX}broker_connected`, help: '1 while the consumer holds a connection and a channel to the broker, else 0.', registers });
    this.lastApply = new Gauge({ name: `${PREFIX}last_apply_timestamp_seconds`, help: 'Unix time a batch of messages was last enforced; 0 before the first.', registers });
    this.unacked = new Gauge({ name: `${PREFIX}messages_unacked`, help: 'Messages delivered to this consumer and not acked yet.', registers });
    const probe = (): (() => Promise<number>) | undefined => this.readyProbe;
    new Gauge({
      name: `${PREFIX}queue_messages_ready`,
      help: 'Messages waiting in the consumed queue, not delivered yet (asked from the broker at each scrape; absent while disconnected).',
      labelNames: ['queue'],
      registers,
      async collect() {
        this.reset();
        const p = probe();
        if (!p) return;
        // A broker that does not answer within a second leaves the series out, not the scrape hanging.
        const late = new Promise<undefined>((r) => AbortSignal.timeout(1000).addEventListener('abort', () => r(undefined)));
        const n = await Promise.race([p().catch(() => undefined), late]);
        if (n !== undefined) this.set({ queue }, n);
      },
    });
    this.streamGap = new Counter({ name: `${PREFIX}stream_retention_gap_offsets_total`, help: 'Stream mode: offsets after the stored one that retention removed before this node read them (messages it never applied; it may miss blocks).', registers });
    this.futureTs = new Counter({ name: `${PREFIX}messages_future_ts_total`, help: 'Messages whose ts (decision time) was in the future: their ttl ran from the time they were applied instead.', registers });
    this.connected.set(0);
    this.lastApply.set(0);
    this.unacked.set(0);
  }

  onDelivered(): void {
    this.unacked.inc();
  }

  onMessages(outcome: MessageOutcome, n: number): void {
    this.messages.inc({ outcome }, n);
    this.unacked.dec(n);
  }

  onStreamGap(offsets: number): void {
    this.streamGap.inc(offsets);
  }

  onFutureTs(): void {
    this.futureTs.inc();
  }

  onApplied(latencySeconds: number): void {
    this.enforce.observe(latencySeconds);
    this.lastApply.set(Date.now() / 1000);
  }

  onConnection(up: boolean, readyMessages?: () => Promise<number>): void {
    this.connected.set(up ? 1 : 0);
    this.readyProbe = up ? readyMessages : undefined;
    // What was delivered on a lost channel is the broker's again.
    if (!up) this.unacked.set(0);
  }
}

/** How many messages wait in `queue`: a passive declare on a channel of its own, so a failure never closes the consumer's. */
export function queueReadyProbe(conn: ChannelModel, queue: string): () => Promise<number> {
  return async () => {
    const ch = await conn.createChannel();
    ch.on('error', () => undefined);
    try {
      return (await ch.checkQueue(queue)).messageCount;
    } finally {
      await ch.close().catch(() => undefined);
    }
  };
}
