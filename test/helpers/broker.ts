/**
 * The real RabbitMQ on 127.0.0.1 for tests: names unique to the run, deleted
 * by cleanup(); a publisher with confirms; and `vosctl consume` as a child
 * process owned by a Lab (ended by its pid).
 */
import { connect, type ChannelModel, type ConfirmChannel, type GetMessage } from 'amqplib';
import { execa, type ResultPromise } from 'execa';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { ROOT, type Lab } from './lab.js';

export const AMQP_URL = process.env.VOS_TEST_AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672';

/** Why broker tests cannot run here, or null (a synchronous probe: describe() needs it up front). */
export function brokerMissing(): string | null {
  try {
    execFileSync('bash', ['-c', 'exec 3<>/dev/tcp/127.0.0.1/5672'], { stdio: 'ignore', timeout: 3000 });
    return null;
  } catch {
    return 'RabbitMQ is not listening on 127.0.0.1:5672 (scripts/setup.sh starts it)';
  }
}

export class Broker {
  private conn?: ChannelModel;
  private ch?: ConfirmChannel;
  private readonly queues = new Set<string>();
  private readonly exchanges = new Set<string>();

  constructor(readonly lab: Lab) {
    lab.defer('broker queues and exchanges', () => this.cleanup());
  }

  /** A name unique to this run; it is deleted (as queue and as exchange) at cleanup. */
  name(what: string): string {
    const n = `vfp_test_${this.lab.id}_${what}`;
    this.queues.add(n);
    this.queues.add(`${n}.dead`);
    this.exchanges.add(n);
    return n;
  }

  async channel(): Promise<ConfirmChannel> {
    if (!this.ch) {
      this.conn = await connect(AMQP_URL);
      this.conn.on('error', () => undefined);
      this.ch = await this.conn.createConfirmChannel();
      this.ch.on('error', () => undefined);
      this.ch.on('close', () => (this.ch = undefined));
      this.conn.on('close', () => ((this.conn = undefined), (this.ch = undefined)));
    }
    return this.ch;
  }

  /** Publish bodies to a queue (or an exchange) and wait for the broker's confirms. */
  async publish(queue: string, bodies: Array<string | Buffer>, opts: { exchange?: string; routingKey?: string } = {}): Promise<void> {
    const ch = await this.channel();
    bodies.forEach((b, i) => {
      const content = typeof b === 'string' ? Buffer.from(b) : b;
      const props = { persistent: true, messageId: `t${i}` };
      if (opts.exchange !== undefined) ch.publish(opts.exchange, opts.routingKey ?? '', content, props);
      else ch.sendToQueue(queue, content, props);
    });
    await ch.waitForConfirms();
  }

  /** Take every message now in a queue (acked). */
  async drain(queue: string): Promise<GetMessage[]> {
    const ch = await this.channel();
    const out: GetMessage[] = [];
    for (;;) {
      const m = await ch.get(queue, { noAck: true });
      if (!m) return out;
      out.push(m);
    }
  }

  /** Ready and unacknowledged counts, as the broker sees them. */
  async depth(queue: string): Promise<{ ready: number; unacked: number }> {
    const r = await execa('rabbitmqctl', ['-q', 'list_queues', 'name', 'messages_ready', 'messages_unacknowledged']);
    for (const line of r.stdout.split('\n')) {
      const [name, ready, unacked] = line.trim().split(/\s+/);
      if (name === queue) return { ready: Number(ready), unacked: Number(unacked) };
    }
    throw new Error(`no queue ${queue}`);
  }

  async close(): Promise<void> {
    await this.conn?.close().catch(() => undefined);
    this.conn = undefined;
    this.ch = undefined;
  }

  async cleanup(): Promise<void> {
    await this.close();
    const conn = await connect(AMQP_URL);
    try {
      for (const q of this.queues) {
        const ch = await conn.createChannel();
        ch.on('error', () => undefined);
        await ch.deleteQueue(q).catch(() => undefined);
        await ch.close().catch(() => undefined);
      }
      for (const e of this.exchanges) {
        const ch = await conn.createChannel();
        ch.on('error', () => undefined);
        await ch.deleteExchange(e).catch(() => undefined);
        await ch.close().catch(() => undefined);
      }
    } finally {
      await conn.close();
    }
  }
}

export interface LogLine {
  level: string;
  message: string;
  [k: string]: unknown;
}

/** `vosctl consume` as a child process of a Lab. */
export class ConsumerProcess {
  readonly logs: LogLine[] = [];
  private child?: ResultPromise;
  private partial = '';

  constructor(
    private readonly lab: Lab,
    private readonly env: Record<string, string>,
    private readonly args: string[],
  ) {}

  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** Start and wait until it consumes. */
  async start(timeoutMs = 15_000): Promise<void> {
    const from = this.logs.length;
    this.child = this.lab.spawn(join(ROOT, 'bin/vosctl'), ['consume', ...this.args], {
      env: { VOS_LOG_FORMAT: 'json', VOS_AMQP_URL: AMQP_URL, ...this.env },
      buffer: false,
      stdout: 'ignore',
    });
    this.child.stderr?.on('data', (d: Buffer) => {
      const text = this.partial + d.toString();
      const lines = text.split('\n');
      this.partial = lines.pop() ?? '';
      for (const l of lines) {
        try {
          this.logs.push(JSON.parse(l) as LogLine);
        } catch {
          this.logs.push({ level: 'raw', message: l });
        }
      }
    });
    await this.waitForLog((l) => l.message === 'consuming', timeoutMs, from);
  }

  async waitForLog(match: (l: LogLine) => boolean, timeoutMs = 10_000, from = 0): Promise<LogLine> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const hit = this.logs.slice(from).find(match);
      if (hit) return hit;
      if (this.child && this.child.exitCode !== null) throw new Error(`vosctl consume exited ${this.child.exitCode}: ${JSON.stringify(this.logs.slice(-5))}`);
      if (Date.now() > deadline) throw new Error(`timed out waiting for a log line; last: ${JSON.stringify(this.logs.slice(-5))}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  /** SIGTERM, then its exit code. */
  async stop(): Promise<number | undefined> {
    if (!this.child || this.child.exitCode !== null) return this.child?.exitCode ?? undefined;
    this.child.kill('SIGTERM');
    const r = await this.child;
    return r.exitCode;
  }

  async kill9(): Promise<void> {
    if (!this.child) return;
    this.child.kill('SIGKILL');
    await this.child;
  }
}
