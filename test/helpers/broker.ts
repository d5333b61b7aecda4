/**
 * The real RabbitMQ on 127.0.0.1 for tests: names unique to the run, deleted
 * by cleanup(); a publisher with confirms; and `vosctl consume` as a child
 * process owned by a Lab (ended by its pid).
 */
import { connect, type ChannelModel, type ConfirmChannel, type GetMessage } from 'amqplib';
import { execa, type ResultPromise } from 'execa';
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
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

  /** On the shared broker by default; on a PrivateNode with its url and rabbitmqctl. */
  constructor(
    readonly lab: Lab,
    readonly url: string = AMQP_URL,
    private readonly ctl: (args: string[]) => Promise<string> = async (args) => (await execa('rabbitmqctl', args)).stdout,
  ) {
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
      this.conn = await connect(this.url);
      this.conn.on('error', () => undefined);
      this.ch = await this.conn.createConfirmChannel();
      this.ch.on('error', () => undefined);
      this.ch.on('close', () => (this.ch = undefined));
      this.conn.on('close', () => ((this.conn = undefined), (this.ch = undefined)));
    }
    return this.ch;
  }

  /** Publish bodies to a queue (or an exchange) and wait for the broker's confirms. */
  async publish(queue: string, bodies: Array<string | Buffer>, opts: { exchange?: string; routingKey?: string; timestamp?: number } = {}): Promise<void> {
    const ch = await this.channel();
    bodies.forEach((b, i) => {
      const content = typeof b === 'string' ? Buffer.from(b) : b;
      const props = { persistent: true, messageId: `t${i}`, timestamp: opts.timestamp };
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
    const out = await this.ctl(['-q', 'list_queues', 'name', 'messages_ready', 'messages_unacknowledged']);
    for (const line of out.split('\n')) {
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
    const conn = await connect(this.url).catch(() => undefined);
    if (!conn) return; // a private node already stopped took its queues with it
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

/**
 * A RabbitMQ node of the test's own (recipe: /work/shared/README.md), for
 * what must never touch the shared broker: alarms, close_connection, users,
 * vhosts, consumer_timeout. Ports derive from the pid and are checked free.
 * One node per test file keeps the suite short (a start costs ~5-10 s).
 */
export class PrivateNode {
  readonly name: string;
  readonly dir: string;
  port = 0;

  /** `suffix` tells apart the nodes of one test (a cluster); `portFrom` where the port search starts. */
  constructor(private readonly lab: Lab, private readonly conf: string[] = [], suffix = '', private readonly portFrom = 30_000 + ((process.pid * 7) % 10_000)) {
    this.name = `vfpt${lab.id}${suffix}@localhost`;
    this.dir = join(lab.tmp, `rabbit${suffix}`);
  }

  get url(): string {
    return `amqp://guest:guest@127.0.0.1:${this.port}`;
  }

  private env(): Record<string, string> {
    return { RABBITMQ_CONF_ENV_FILE: join(this.dir, 'env.conf') };
  }

  async ctl(args: string[]): Promise<string> {
    return (await execa('rabbitmqctl', ['-n', this.name, ...args], { env: this.env() })).stdout;
  }

  async start(): Promise<void> {
    this.port = await freePortPair(this.portFrom);
    mkdirSync(this.dir, { recursive: true });
    writeFileSync(join(this.dir, 'rabbitmq.conf'), [`listeners.tcp.local = 127.0.0.1:${this.port}`, ...this.conf, ''].join('\n'));
    writeFileSync(join(this.dir, 'env.conf'), 'ERL_EPMD_ADDRESS=127.0.0.1\n');
    writeFileSync(join(this.dir, 'plugins'), '');
    await execa('chown', ['-R', 'rabbitmq', this.dir]);
    await execa('chmod', ['o+x', this.lab.tmp]);
    this.lab.defer(`rabbitmq node ${this.name}`, () => this.stop());
    const d = this.dir;
    await execa('rabbitmq-server', ['-detached'], {
      env: {
        RABBITMQ_NODENAME: this.name,
        RABBITMQ_NODE_IP_ADDRESS: '127.0.0.1',
        RABBITMQ_NODE_PORT: String(this.port),
        RABBITMQ_DIST_PORT: String(this.port + 20_000),
        RABBITMQ_MNESIA_BASE: join(d, 'mnesia'),
        RABBITMQ_LOG_BASE: join(d, 'log'),
        RABBITMQ_PID_FILE: join(d, 'pid'),
        RABBITMQ_CONFIG_FILE: join(d, 'rabbitmq.conf'),
        RABBITMQ_CONF_ENV_FILE: join(d, 'env.conf'),
        RABBITMQ_ENABLED_PLUGINS_FILE: join(d, 'plugins'),
      },
    });
    for (let i = 0; ; i++) {
      const r = await execa('rabbitmqctl', ['-q', '-n', this.name, 'await_startup', '--timeout', '5'], { env: this.env(), reject: false });
      if (r.exitCode === 0) return;
      if (i > 60) throw new Error(`private RabbitMQ node ${this.name} did not start: ${r.stderr}`);
      await new Promise((res) => setTimeout(res, 500));
    }
  }

  async stop(): Promise<void> {
    const r = await execa('rabbitmqctl', ['-q', '-n', this.name, 'stop'], { env: this.env(), reject: false });
    if (r.exitCode === 0) return;
    // Not answering: end it by the pid in its own pid file, never by name.
    try {
      const pid = Number(readFileSync(join(this.dir, 'pid'), 'utf8').trim());
      if (pid > 1) process.kill(pid, 'SIGKILL');
    } catch {
      /* no pid file: it never started */
    }
  }

  /** The connection names the broker shows, with their pids (for close_connection). */
  async connections(): Promise<Array<{ pid: string; name: string }>> {
    const out = await this.ctl(['-q', 'list_connections', 'pid', 'client_properties']);
    return out
      .split('\n')
      .slice(1)
      .filter((l) => l.trim())
      .map((l) => ({ pid: l.split('\t')[0]!, name: /connection_name","([^"]*)"/.exec(l)?.[1] ?? /\{<<"connection_name">>,longstr,<<"([^"]*)">>\}/.exec(l)?.[1] ?? '' }));
  }
}

/**
 * Three private nodes joined into one RabbitMQ cluster (stop_app,
 * join_cluster, start_app: /work/shared/README.md), for replication and
 * failover tests. Every node is stopped at the Lab's cleanup.
 */
export class PrivateCluster {
  readonly nodes: PrivateNode[];

  constructor(lab: Lab, size = 3) {
    const from = 30_000 + ((process.pid * 7) % 9_000);
    this.nodes = Array.from({ length: size }, (_, i) => new PrivateNode(lab, [], `c${i}`, from + i * 300));
  }

  /** Every node's URL, in node order. */
  get urls(): string[] {
    return this.nodes.map((n) => n.url);
  }

  async start(): Promise<void> {
    await Promise.all(this.nodes.map((n) => n.start()));
    const [first, ...rest] = this.nodes;
    for (const n of rest) {
      await n.ctl(['stop_app']);
      await n.ctl(['join_cluster', first!.name]);
      await n.ctl(['start_app']);
    }
    await first!.ctl(['await_online_nodes', String(this.nodes.length)]);
  }
}

/** A port p with p and p + 20000 (the node's distribution port) both free on 127.0.0.1. */
async function freePortPair(start: number): Promise<number> {
  const free = (p: number) =>
    new Promise<boolean>((resolve) => {
      const srv = createServer();
      srv.once('error', () => resolve(false));
      srv.listen(p, '127.0.0.1', () => srv.close(() => resolve(true)));
    });
  for (let p = start; p < start + 200; p++) if ((await free(p)) && (await free(p + 20_000)) && (await free(p + 1))) return p;
  throw new Error(`no free port pair from ${start}`);
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

  /** Its exit code once it ends by itself; undefined if it still runs after ms. */
  async exited(ms: number): Promise<number | undefined> {
    if (!this.child) return undefined;
    const timer = new Promise<undefined>((r) => setTimeout(() => r(undefined), ms).unref());
    const done = this.child.then((r) => r.exitCode, (e: { exitCode?: number }) => e.exitCode);
    return Promise.race([done, timer]);
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
