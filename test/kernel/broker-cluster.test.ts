/**
 * A RabbitMQ cluster of three private nodes on this machine (own names,
 * ports, data folders), one stream replicated across them, three consumers
 * each with its own pin folder and state, each given every node's URL.
 * One broker node is stopped in the middle of a stream of confirmed blocks:
 * every block the cluster confirmed ends up in all three maps.
 */
import { afterAll, beforeAll, expect, it } from '@jest/globals';
import { connect, type ChannelModel, type ConfirmChannel } from 'amqplib';
import { brokerMissing, PrivateCluster, type ConsumerProcess } from '../helpers/broker.js';
import { describeWith, kernelMissing } from '../helpers/env.js';
import { Lab } from '../helpers/lab.js';
import { Node } from '../helpers/node.js';
import { waitFor } from '../helpers/wait.js';

const ipOf = (i: number): string => `198.18.${i >> 8}.${i & 255}`;

/** A publisher that, like a SIP server's, moves to the next node when its node goes, and resends what was not confirmed. */
class FailoverPublisher {
  private conn?: ChannelModel;
  private ch?: ConfirmChannel;
  private node = 0;
  readonly confirmed: string[] = [];
  failovers = 0;
  /** Connections opened: more than one once a node went away. */
  connects = 0;

  constructor(private readonly urls: string[]) {}

  private async channel(): Promise<ConfirmChannel> {
    while (!this.ch) {
      try {
        this.conn = await connect(this.urls[this.node]!);
        this.connects++;
        this.conn.on('error', () => undefined);
        this.ch = await this.conn.createConfirmChannel();
        this.ch.on('error', () => undefined);
        this.ch.on('close', () => (this.ch = undefined));
      } catch {
        this.failovers++;
        this.node = (this.node + 1) % this.urls.length;
        await new Promise((r) => setTimeout(r, 200));
      }
    }
    return this.ch;
  }

  /** Publish one chunk until the cluster confirms all of it. */
  async send(stream: string, ips: string[]): Promise<void> {
    for (;;) {
      const ch = await this.channel();
      try {
        for (const ip of ips) ch.sendToQueue(stream, Buffer.from(JSON.stringify({ action: 'block', ip, ttl: '1h', ts: Math.floor(Date.now() / 1000) })), { persistent: true });
        await ch.waitForConfirms();
        this.confirmed.push(...ips);
        return;
      } catch {
        this.failovers++;
        this.ch = undefined;
        await this.conn?.close().catch(() => undefined);
        this.node = (this.node + 1) % this.urls.length;
      }
    }
  }

  async close(): Promise<void> {
    await this.conn?.close().catch(() => undefined);
  }
}

describeWith('consume --stream on a three-node RabbitMQ cluster', kernelMissing() ?? brokerMissing(), () => {
  let lab: Lab;
  let cluster: PrivateCluster;
  const nodes: Node[] = [];

  beforeAll(async () => {
    lab = new Lab();
    cluster = new PrivateCluster(lab);
    await Promise.all([
      cluster.start(),
      (async () => {
        for (const name of ['x', 'y', 'z']) {
          const n = new Node(lab, name);
          await n.load();
          nodes.push(n);
        }
      })(),
    ]);
  }, 180_000);
  afterAll(() => lab?.cleanup(), 120_000);

  it('every confirmed block reaches all three maps when a broker node stops mid-stream', async () => {
    const stream = `vfp_test_${lab.id}_cluster`;
    const urls = cluster.urls;
    // Each consumer starts on a different node and knows them all (rotated lists).
    const consumers: ConsumerProcess[] = [];
    for (const [i, n] of nodes.entries()) {
      const mine = [...urls.slice(i), ...urls.slice(0, i)];
      consumers.push(await n.consume(['--stream', stream, '--gc-interval', '0', ...mine.flatMap((u) => ['--url', u])]));
    }
    const members = await cluster.nodes[0]!.ctl(['-q', 'list_queues', 'name', 'type', 'members']);
    const line = members.split('\n').find((l) => l.startsWith(`${stream}\tstream\t`)) ?? '';
    for (const n of cluster.nodes) expect(line).toContain(n.name); // replicated on every node

    const pub = new FailoverPublisher([urls[0]!, urls[2]!, urls[1]!]);
    const victim = cluster.nodes[0]!; // the stream's leader (declared there), the publisher's node and the first consumer's
    // Blocks keep coming, 100 at a time, while the node stops, and for 10 chunks after it is down.
    let stopped = false;
    let chunk = 0;
    let after = 0;
    let stopping: Promise<void> | undefined;
    while (after < 10) {
      if (chunk === 10) stopping = victim.ctl(['stop']).then(() => void (stopped = true));
      await pub.send(stream, Array.from({ length: 100 }, (_, i) => ipOf(chunk * 100 + i)));
      chunk++;
      if (stopped) after++;
      await new Promise((r) => setTimeout(r, 50));
    }
    await stopping;
    await pub.close();
    expect(pub.connects).toBeGreaterThan(1); // the publisher lost its node too
    const want = [...new Set(pub.confirmed)].sort();
    expect(want.length).toBe(chunk * 100);
    for (const [i, n] of nodes.entries()) {
      await waitFor(`${n.name} to hold every confirmed block`, async () => JSON.stringify(await n.ips()) === JSON.stringify(want), 90_000).catch(async (err: Error) => {
        const have = new Set(await n.ips());
        throw new Error(`${err.message}: ${want.filter((ip) => !have.has(ip)).length} missing; log: ${JSON.stringify(consumers[i]!.logs.filter((l) => l.message !== 'blocked').slice(-15))}`);
      });
    }
    expect(consumers[0]!.logs.some((l) => l.message === 'trying the next broker node')).toBe(true);
    for (const c of consumers) expect(await c.stop()).toBe(0);
  }, 240_000);
});
