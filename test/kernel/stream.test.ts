/**
 * vosctl consume --stream against the real RabbitMQ (a stream of this run's
 * own on the shared broker, deleted afterwards) and real pinned maps: a node
 * that joins late ends with exactly the live set, expired decisions are not
 * applied, and a node that was down resumes from the offset in its state.
 */
import { afterAll, beforeAll, expect, it } from '@jest/globals';
import { Broker, brokerMissing } from '../helpers/broker.js';
import { describeWith, kernelMissing } from '../helpers/env.js';
import { Lab } from '../helpers/lab.js';
import { Node } from '../helpers/node.js';
import { waitFor } from '../helpers/wait.js';

const ipsOf = (from: number, n: number): string[] => Array.from({ length: n }, (_, i) => `198.18.${(from + i) >> 8}.${(from + i) & 255}`);

describeWith('vosctl consume --stream', kernelMissing() ?? brokerMissing(), () => {
  let lab: Lab;
  let broker: Broker;
  let stream: string;
  const nodes: Record<string, Node> = {};
  const now = () => Math.floor(Date.now() / 1000);
  const sameAs = async (n: Node, want: string[]) => waitFor(`${n.name} to hold the ${want.length} live entries`, async () => JSON.stringify(await n.ips()) === JSON.stringify(want), 60_000);

  beforeAll(async () => {
    lab = new Lab();
    broker = new Broker(lab);
    stream = broker.name('stream');
    for (const name of ['a', 'b', 'c']) {
      nodes[name] = new Node(lab, name);
      await nodes[name]!.load();
    }
  }, 60_000);
  afterAll(() => lab?.cleanup(), 60_000);

  it('a late joiner ends with exactly the live set; a node that was down resumes from its offset', async () => {
    const { a, b, c } = nodes as Record<'a' | 'b' | 'c', Node>;
    const args = ['--stream', stream, '--stream-max-age', '1h', '--gc-interval', '0'];
    const ca = await a.consume(args);
    expect(ca.logs.find((l) => l.message === 'declared stream ' + `${stream} (x-max-age 1h, x-max-length-bytes 10000000000)`)).toBeDefined();
    expect(ca.logs.find((l) => l.message === 'no stream offset stored: starting from the first message')).toBeDefined();
    const cb = await b.consume(args);
    const t = now();
    await broker.publish(stream, [
      ...ipsOf(0, 20).map((ip) => JSON.stringify({ action: 'block', ip, ttl: 3600, ts: t - 600 })),
      JSON.stringify({ action: 'block', ip: '198.51.100.50', ttl: 3600, ts: t - 7200 }), // expired by ts + ttl
      JSON.stringify({ action: 'block', ip: '198.51.100.51', expires: t - 1 }), // expired by expires
      JSON.stringify({ action: 'unblock', ip: ipsOf(5, 1)[0] }),
      JSON.stringify({ action: 'unblock', ip: ipsOf(6, 1)[0] }),
      JSON.stringify({ action: 'block', ip: ipsOf(6, 1)[0], ttl: '1h' }), // unblocked, then blocked again: order kept
    ]);
    await broker.publish(stream, ['{"ip":"198.51.100.52","ttl":60}'], { timestamp: t - 120 }); // expired by the AMQP timestamp
    const live1 = ipsOf(0, 20).filter((ip) => ip !== ipsOf(5, 1)[0]).sort();
    await sameAs(a, live1);
    await sameAs(b, live1);

    // b goes down; 10,000 blocks and some unblocks arrive meanwhile.
    expect(await cb.stop()).toBe(0);
    const bulk = ipsOf(1000, 10_000);
    await broker.publish(stream, bulk.map((ip) => JSON.stringify({ action: 'block', ip, ttl: '1h', ts: now() })));
    const lifted = [...ipsOf(0, 3), ...bulk.slice(0, 2)];
    await broker.publish(stream, lifted.map((ip) => JSON.stringify({ action: 'unblock', ip })));
    const live = [...live1, ...bulk].filter((ip) => !lifted.includes(ip)).sort();
    await sameAs(a, live);
    const cb2 = await b.consume(args);
    expect(cb2.logs.find((l) => l.message === 'resuming the stream after the stored offset')).toMatchObject({ offset: 25 });
    await sameAs(b, live);
    expect(await cb2.stop()).toBe(0);
    // Exactly what came while it was down, nothing it had before re-applied; duplicates (none here) counted.
    expect(cb2.logs.find((l) => l.message === 'consumer stopped')).toMatchObject({ messages: bulk.length + lifted.length, expired: 0, skippedDuplicates: 0 });
    const reapplied = cb2.logs.filter((l) => l.message === 'blocked' && live1.includes(String(l.ip)));
    expect(reapplied).toEqual([]);

    // c joins with a fresh pin folder and state: from the first message, the whole live set, nothing expired.
    const cc = await c.consume(args);
    await sameAs(c, live);
    expect(await a.ips()).toEqual(live);
    expect(cc.logs.filter((l) => l.message === 'expired: not applied').length).toBe(3);
    // The ttl ran from the decision, not from the late apply: c's expiries are a's.
    const expiry = async (n: Node, ip: string) => Date.parse((await n.list()).find((e) => e.ip === ip)!.expires!) / 1000;
    expect(Math.abs((await expiry(c, ipsOf(10, 1)[0]!)) - (t + 3000))).toBeLessThanOrEqual(2);
    expect(Math.abs((await expiry(a, ipsOf(10, 1)[0]!)) - (t + 3000))).toBeLessThanOrEqual(2);
    await cc.stop();
    await ca.stop();
  }, 180_000);

  it('keeps --queue away from a stream, and --stream away from a queue, naming the fix', async () => {
    const a = nodes.a!;
    const s2 = broker.name('stream2');
    const ch = await broker.channel();
    await ch.assertQueue(s2, { durable: true, arguments: { 'x-queue-type': 'stream', 'x-max-age': '1h', 'x-max-length-bytes': 1e8 } });
    const onStream = await a.vosctl('consume', '--queue', s2);
    expect(onStream.code).toBe(2);
    expect(onStream.err).toContain(`consume it with --stream ${s2}`);
    const q = broker.name('classic');
    await ch.assertQueue(q, { durable: true });
    await broker.publish(q, ['198.51.100.77']);
    const onQueue = await a.vosctl('consume', '--stream', q);
    expect(onQueue.code).toBe(2);
    expect(onQueue.err).toContain(`'${q}' is not a stream (a classic queue)`);
    const both = await a.vosctl('consume', '--stream', s2, '--queue', q);
    expect(both).toMatchObject({ code: 2, err: expect.stringContaining('--stream excludes --queue') });
    expect((await a.vosctl('consume', '--stream', s2, '--stream-max-age', '7 days')).err).toContain("bad --stream-max-age '7 days'");
  }, 60_000);
});
