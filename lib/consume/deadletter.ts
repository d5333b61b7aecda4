/**
 * Dead letters go out on a connection of their own: a broker resource alarm
 * blocks a publishing connection (RabbitMQ "connection.blocked"), and only
 * this one publishes, so enforcing good blocks never waits for the broker
 * to accept a publish. Every dead letter is published mandatory with
 * publisher confirms; its outcome is one of:
 * - confirmed: routed to the dead-letter queue and safe there;
 * - returned: unroutable (the queue was deleted): the queue is declared again and the publish retried once;
 * - nacked: the queue refused it (x-overflow reject-publish at its length limit, for example);
 * - refused: the broker closed the channel or connection for a reason another
 *   publish cannot fix (no write permission: ACCESS_REFUSED; NOT_FOUND); its
 *   words are in `refusal`;
 * - lost: the connection or channel went away before the broker answered.
 * Only `confirmed` lets the consumer ack the original message.
 */
import type { ChannelModel, ConfirmChannel, Options } from 'amqplib';
import { connectBroker, type BrokerAccess } from './broker.js';
import type { ConsumerEvents } from './events.js';
import { permanentPublishError } from './faults.js';

export type DeadLetterOutcome = 'confirmed' | 'returned' | 'nacked' | 'refused' | 'lost';

const ID_HEADER = 'x-vos-dead-letter-id';

export class DeadLetterPublisher {
  private conn?: ChannelModel;
  private opening?: Promise<ConfirmChannel>;
  private ch?: ConfirmChannel;
  private readonly returned = new Set<string>();
  private seq = 0;
  /** Counts the broker's permanent refusals, so a publish can tell whether one came while it waited. */
  private refusalSeq = 0;
  private inFlight = 0;
  /** The broker's reason while it blocks this connection (a resource alarm), else undefined. */
  blockedReason?: string;
  /** The broker's words when it last refused a dead letter for good (ACCESS_REFUSED, NOT_FOUND...); cleared by a confirm. */
  refusal?: string;

  constructor(
    /** The broker node to publish to: the one the consumer is connected to now (failover). */
    private readonly access: () => BrokerAccess,
    private readonly queue: string,
    private readonly events: ConsumerEvents,
  ) {}

  /** Dead letters published and not yet answered by the broker. */
  get unanswered(): number {
    return this.inFlight;
  }

  /** Publish one dead letter; resolves with its outcome, never rejects. A returned one is re-published once after declaring the queue. */
  async publish(content: Buffer, options: Options.Publish): Promise<DeadLetterOutcome> {
    const first = await this.publishOnce(content, options);
    if (first !== 'returned') return first;
    try {
      const ch = await this.channel();
      await ch.assertQueue(this.queue, { durable: true });
      this.events.emit('warn', 'dead-letter queue was missing: declared it again', { action: 'dead-letter', dead_letter: this.queue });
    } catch (err) {
      this.events.emit('warn', 'dead-letter queue is missing and cannot be declared', { action: 'dead-letter', dead_letter: this.queue, error: (err as Error).message });
      return 'returned';
    }
    return this.publishOnce(content, options);
  }

  private async publishOnce(content: Buffer, options: Options.Publish): Promise<DeadLetterOutcome> {
    let ch: ConfirmChannel;
    try {
      ch = await this.channel();
    } catch (err) {
      const refused = permanentPublishError(err as Error);
      if (refused) this.refusal = refused;
      this.events.emit('warn', 'cannot open the dead-letter connection', { action: 'dead-letter', error: refused ?? (err as Error).message });
      return refused ? 'refused' : 'lost';
    }
    const id = `${process.pid}.${++this.seq}`;
    const refusedNow = this.refusalSeq;
    this.inFlight++;
    return new Promise((resolve) => {
      const done = (o: DeadLetterOutcome): void => {
        this.inFlight--;
        resolve(o);
      };
      try {
        ch.sendToQueue(this.queue, content, { ...options, mandatory: true, headers: { ...(options.headers ?? {}), [ID_HEADER]: id } }, (err) => {
          // basic.return comes before the confirm of the same message (RabbitMQ publisher confirms guide).
          if (this.returned.delete(id)) done('returned');
          else if (!err) {
            this.refusal = undefined;
            done('confirmed');
          } else if (err.message === 'message nacked') done('nacked');
          // The broker's channel.close (or connection.close) comes before the callbacks it fails: its reason is known here.
          else done(refusedNow === this.refusalSeq ? 'lost' : 'refused');
        });
      } catch {
        done('lost'); // the channel closed between channel() and the publish
      }
    });
  }

  private onError(what: string, err: Error): void {
    const refused = permanentPublishError(err);
    if (refused) {
      this.refusal = refused;
      this.refusalSeq++;
    }
    this.events.emit('warn', what, { action: 'dead-letter', error: err.message, ...(refused ? { refused: true } : {}) });
  }

  private channel(): Promise<ConfirmChannel> {
    if (this.ch) return Promise.resolve(this.ch);
    this.opening ??= this.open().finally(() => (this.opening = undefined));
    return this.opening;
  }

  private async open(): Promise<ConfirmChannel> {
    const conn = await connectBroker(this.access(), 'vosctl consume (dead letters)');
    const forget = (): void => {
      if (this.conn === conn) {
        this.conn = undefined;
        this.ch = undefined;
        this.blockedReason = undefined;
      }
    };
    conn.on('error', (err: Error) => this.onError('dead-letter connection error', err));
    conn.on('close', forget);
    conn.on('blocked', (reason: string) => {
      this.blockedReason = reason;
      this.events.emit('warn', 'blocked', { action: 'broker', connection: 'dead letters', reason, note: 'the broker accepts no publish on this connection; enforcement goes on, dead-lettered messages stay unacked until it unblocks' });
    });
    conn.on('unblocked', () => {
      this.blockedReason = undefined;
      this.events.emit('info', 'unblocked', { action: 'broker', connection: 'dead letters' });
    });
    try {
      const ch = await conn.createConfirmChannel();
      ch.on('error', (err: Error) => this.onError('dead-letter channel error', err));
      ch.on('close', () => {
        if (this.ch === ch) this.ch = undefined;
        void conn.close().catch(() => undefined);
      });
      ch.on('return', (m: { properties: { headers?: Record<string, unknown> } }) => {
        const id = m.properties.headers?.[ID_HEADER];
        if (typeof id === 'string') this.returned.add(id);
      });
      this.conn = conn;
      this.ch = ch;
      return ch;
    } catch (err) {
      await closeWithin(conn, 2000);
      throw err;
    }
  }

  /** Close, waiting at most ms (a blocked connection may never answer connection.close). */
  async close(ms = 3000): Promise<void> {
    const conn = this.conn;
    this.conn = undefined;
    this.ch = undefined;
    if (conn) await closeWithin(conn, ms);
  }
}

/** Close a connection, waiting at most ms for the broker's close-ok; past that the socket is dropped. */
export async function closeWithin(conn: ChannelModel, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const closed = conn.close().then(
    () => true,
    () => true,
  );
  const late = new Promise<boolean>((r) => (timer = setTimeout(() => r(false), ms)));
  const ok = await Promise.race([closed, late]);
  clearTimeout(timer);
  const stream = (conn as unknown as { connection?: { stream?: { destroyed?: boolean; destroy(err?: Error): void } } }).connection?.stream;
  if (!stream || stream.destroyed) return;
  // With an error, so that amqplib sees the socket fail and stops its heartbeat timer.
  if (!ok) stream.destroy(new Error(`no close-ok within ${ms} ms`));
  // A blocked connection is "closed" by amqplib at once, but its socket still waits to flush frames the broker no longer reads.
  else setTimeout(() => stream.destroyed || stream.destroy(), 1000).unref();
}
