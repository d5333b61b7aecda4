/**
 * vosctl consume --stream against the real RabbitMQ (a stream of this run's
 * own on the shared broker, deleted afterwards) and real pinned maps: a node
 * that joins late ends with exactly the live set, expired decisions are not
 * applied, and a node that was down resumes from the offset in its state.
 */
import { afterAll, beforeAll, expect, it } from '@jest/globals';
import { execa } from 'execa';
import { join } from 'node:path';
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
    for (const name of ['a', 'b', 'c', 'd', 'e', 'f']) {
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
    const cb2 = await b.consume(args, { VOS_LOG_LEVEL: 'debug' }); // a line per address even in batches of thousands
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
    expect(both).toMatchObject({ code: 2, err: expect.stringContaining(`--stream ${s2} excludes --queue ${q}: publishers send to the stream by its name`) });
    expect((await a.vosctl('consume', '--stream', s2, '--stream-max-age', '7 days')).err).toContain("bad --stream-max-age '7 days'");
    // Retention other than asked: the stream keeps its own, and the consumer says so, naming both.
    const other = await a.consume(['--stream', s2, '--stream-max-age', '2D', '--gc-interval', '0']);
    const warned = other.logs.find((l) => l.message.startsWith('the stream exists with another retention'));
    expect(String(warned?.broker).split(', ').sort()).toEqual(["x-max-age '1h' (asked '2D')", "x-max-length-bytes '100000000' (asked '10000000000')"]);
    expect(warned).toMatchObject({ level: 'warn', stream: s2, hint: expect.stringContaining(`rabbitmqctl set_policy --apply-to queues vos-retention '^${s2}$' '{"max-age":"2D"`) });
    expect(await other.stop()).toBe(0);
  }, 60_000);

  const blocks = (ips: string[], extra: Record<string, unknown> = {}) => ips.map((ip) => JSON.stringify({ action: 'block', ip, ttl: '1h', ...extra }));
  const stopped = (c: { logs: Array<{ message: string }> }) => c.logs.find((l) => l.message === 'consumer stopped');

  it('a stream deleted and declared again under its name is replayed from its first message, shorter or longer than before', async () => {
    const d = nodes.d!;
    const s = broker.name('again');
    const args = ['--stream', s, '--stream-max-age', '1h', '--gc-interval', '0'];
    const declare = async () => (await broker.channel()).assertQueue(s, { durable: true, arguments: { 'x-queue-type': 'stream', 'x-max-age': '1h', 'x-max-length-bytes': 10_000_000_000 } });
    const again = async () => {
      const ch = await broker.channel();
      await ch.deleteQueue(s);
      await declare();
    };
    const first = ipsOf(3000, 5);
    await declare();
    await broker.publish(s, blocks(first));
    let c = await d.consume(args);
    await sameAs(d, first);
    expect(await c.stop()).toBe(0);

    // Resuming the same stream: no warning, nothing consumed again.
    c = await d.consume(args);
    await broker.publish(s, blocks(ipsOf(3005, 1)));
    await sameAs(d, ipsOf(3000, 6));
    expect(await c.stop()).toBe(0);
    expect(c.logs.filter((l) => l.message.startsWith('stream re-created'))).toEqual([]);
    expect(stopped(c)).toMatchObject({ messages: 1, skippedDuplicates: 0 });

    // Declared again, shorter than the stored offset (5): the broker would wait at offset 5 for ever.
    await again();
    const shorter = ipsOf(3100, 3);
    await broker.publish(s, blocks(shorter));
    c = await d.consume(args);
    await sameAs(d, [...ipsOf(3000, 6), ...shorter].sort());
    expect(c.logs.find((l) => l.message.startsWith('stream re-created'))).toMatchObject({ level: 'warn', stream: s, stored_offset: 5, seen: 'the stream ends at offset 2, before the stored 5' });
    expect(await c.stop()).toBe(0);

    // Declared again, longer than the stored offset (2): offsets 0..2 would be skipped as "applied".
    await again();
    const longer = ipsOf(3200, 8);
    await broker.publish(s, blocks(longer));
    c = await d.consume(args);
    await sameAs(d, [...ipsOf(3000, 6), ...shorter, ...longer].sort());
    expect(c.logs.find((l) => l.message.startsWith('stream re-created'))).toMatchObject({ stream: s, stored_offset: 2, seen: expect.stringContaining('the message at offset 2 is not the one this node applied there') });
    expect(await c.stop()).toBe(0);
    expect(stopped(c)).toMatchObject({ messages: 8 });

    // Declared again and still empty: found once its first message comes.
    await again();
    c = await d.consume(args);
    await broker.publish(s, blocks(ipsOf(3300, 1)));
    await sameAs(d, [...ipsOf(3000, 6), ...shorter, ...longer, ...ipsOf(3300, 1)].sort());
    expect(c.logs.find((l) => l.message.startsWith('stream re-created'))).toMatchObject({ stored_offset: 7, seen: 'the stream ends at offset 0, before the stored 7' });
    expect(await c.stop()).toBe(0);
  }, 180_000);

  it('warns and counts what retention removed before a node came back', async () => {
    const e = nodes.e!;
    const s = broker.name('retention');
    // Tiny segments and size bound: the broker drops old segments as new ones fill.
    await (await broker.channel()).assertQueue(s, { durable: true, arguments: { 'x-queue-type': 'stream', 'x-max-length-bytes': 20_000, 'x-stream-max-segment-size-bytes': 5_000 } });
    const args = ['--stream', s, '--gc-interval', '0'];
    let c = await e.consume(args);
    const early = ipsOf(4000, 5);
    await broker.publish(s, blocks(early));
    await sameAs(e, early);
    expect(await c.stop()).toBe(0);
    const later = ipsOf(4100, 400);
    for (let i = 0; i < later.length; i += 20) await broker.publish(s, blocks(later.slice(i, i + 20), { reason: 'x'.repeat(100) }));
    c = await e.consume(args);
    const gap = await c.waitForLog((l) => l.message.startsWith('stream retention removed messages'), 30_000);
    expect(gap).toMatchObject({ level: 'warn', stream: s, stored_offset: 4 });
    expect(Number(gap.first_offset)).toBeGreaterThan(5);
    expect(gap.lost).toBe(Number(gap.first_offset) - 5);
    // What retention kept is applied: the last block published is there.
    await waitFor('the newest block', async () => (await e.ips()).includes(later[later.length - 1]!), 30_000);
    expect(await c.stop()).toBe(0);
    expect(stopped(c)).toMatchObject({ retentionGap: gap.lost });
  }, 120_000);

  it('refuses a second consumer of one stream on one state folder, naming the holder; the lock goes with its process', async () => {
    const f = nodes.f!;
    const s = broker.name('lock');
    const args = ['--stream', s, '--gc-interval', '0'];
    const c = await f.consume(args);
    const second = await f.vosctl('consume', ...args);
    expect(second.code).toBe(1);
    expect(second.err).toContain(`vosctl consume --stream ${s} already runs on the state folder ${f.stateDir}: pid ${c.pid} (`);
    expect(second.err).toContain(join(f.stateDir, 'locks'));
    // Killed without a chance to clean up: the kernel dropped its lock, a new consumer starts.
    await c.kill9();
    const c2 = await f.consume(args);
    expect(await c2.stop()).toBe(0);
  }, 60_000);

  it('refuses a malformed stored offset by name, at once, without retrying the broker', async () => {
    const f = nodes.f!;
    const s = broker.name('badoffset');
    const args = ['--stream', s, '--gc-interval', '0'];
    const c = await f.consume(args);
    await broker.publish(s, blocks(ipsOf(5000, 2)));
    await waitFor('two blocks', async () => (await f.ips()).includes(ipsOf(5001, 1)[0]!), 30_000);
    expect(await c.stop()).toBe(0);
    const db = join(f.stateDir, 'state.sqlite3');
    const cases = [
      ["'abc'", "the text 'abc', not a stream offset"],
      ['1.5', 'the real number 1.5, not a stream offset'],
      ['-3', 'the integer -3, not a stream offset'],
      ["x'3132'", "a blob x'3132', not a stream offset"],
      ["''", "the text '', not a stream offset"],
      ['9007199254740993', 'the integer 9007199254740993, above 9007199254740991'],
    ] as const;
    for (const [sql, shown] of cases) {
      await execa('sqlite3', [db, `UPDATE consumer_offsets SET position = ${sql} WHERE consumer = 'stream:${s}'`]);
      const r = await f.vosctl('consume', ...args);
      expect(r.code).toBe(2);
      expect(r.err).toContain(`the stored offset of stream '${s}' is ${shown}`);
      expect(r.err).toContain(`row consumer = 'stream:${s}' in ${db}`);
      expect(r.err).not.toContain('broker unreachable');
    }
    // The other fix the message gives: the offset of the last message applied (here the first, 0) set by hand.
    // The fingerprint row is of the old offset: no check, said at info; the node resumes after 0, nothing replayed whole.
    await execa('sqlite3', [db, `UPDATE consumer_offsets SET position = 0 WHERE consumer = 'stream:${s}'`]);
    const c1 = await f.consume(args);
    await c1.waitForLog((l) => l.message === 'consuming');
    const next = blocks(ipsOf(5010, 1));
    await broker.publish(s, next);
    await waitFor('the next block', async () => (await f.ips()).includes(ipsOf(5010, 1)[0]!), 30_000);
    expect(await c1.stop()).toBe(0);
    expect(c1.logs).toContainEqual(expect.objectContaining({ level: 'info', message: 'the stored fingerprint is of offset 1, not of the stored offset 0 (set by hand?): resuming without checking that the stream is the one this node read' }));
    expect(c1.logs.map((l) => l.message)).not.toContain('stream re-created: the stored offset belongs to an earlier stream of this name; replaying from its first message');
    // Resumed after 0: only offset 1 again (a duplicate to the state, applied once more), then the new one.
    expect((await execa('sqlite3', [db, `SELECT position FROM consumer_offsets WHERE consumer IN ('stream:${s}', 'stream-check-at:${s}') ORDER BY consumer`])).stdout.split('\n')).toEqual(['2', '2']);
    // The fix the message gives works: the rows deleted, the stream replays from its first message.
    await execa('sqlite3', [db, `DELETE FROM consumer_offsets WHERE consumer IN ('stream:${s}', 'stream-check:${s}', 'stream-check-at:${s}')`]);
    const c2 = await f.consume(args);
    await c2.waitForLog((l) => l.message === 'consuming');
    expect(await c2.stop()).toBe(0);
  }, 60_000);

  it('dead-letters a bad message once per node: not again when it resumes from its offset', async () => {
    const e = nodes.e!;
    const s = broker.name('deadonce');
    const args = ['--stream', s, '--gc-interval', '0'];
    let c = await e.consume(args);
    await broker.publish(s, ['garbage!', ...blocks(ipsOf(6000, 1))]);
    await c.waitForLog((l) => l.message === 'dead-lettered', 30_000);
    await waitFor('the good block', async () => (await e.ips()).includes(ipsOf(6000, 1)[0]!), 30_000);
    expect(await c.stop()).toBe(0);
    c = await e.consume(args);
    await broker.publish(s, blocks(ipsOf(6001, 1)));
    await waitFor('the next block', async () => (await e.ips()).includes(ipsOf(6001, 1)[0]!), 30_000);
    expect(await c.stop()).toBe(0);
    expect(c.logs.filter((l) => l.message === 'dead-lettered')).toEqual([]);
    const dead = await broker.drain(`${s}.dead`);
    expect(dead.map((m) => m.content.toString())).toEqual(['garbage!']);
    expect(dead[0]!.properties.headers).toMatchObject({ 'x-vos-queue': s, 'x-vos-node': expect.any(String), 'x-stream-offset': 0 });
  }, 60_000);
});
