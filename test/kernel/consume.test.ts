/**
 * vosctl consume against the real RabbitMQ and real pinned maps: every message
 * format, dead-lettering, duplicates, broker restart, kill -9, the program
 * going away, and fanout to two nodes.
 */
import { afterEach, expect, it } from '@jest/globals';
import { execa } from 'execa';
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { createServer as createTlsServer } from 'node:tls';
import { join } from 'node:path';
import { Broker, ConsumerProcess, PrivateNode, brokerMissing } from '../helpers/broker.js';
import { Node } from '../helpers/node.js';
import { describeWith, kernelMissing } from '../helpers/env.js';
import { Lab, ROOT } from '../helpers/lab.js';
import type { ListedEntry as Listed } from '../../lib/blocklist.js';
import { afterAll, beforeAll } from '@jest/globals';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));


async function waitFor<T>(what: string, probe: () => Promise<T>, done: (v: T) => boolean, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (done(v)) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; last: ${JSON.stringify(v).slice(0, 400)}`);
    await sleep(100);
  }
}

describeWith('vosctl consume', kernelMissing() ?? brokerMissing(), () => {
  let lab: Lab;
  let broker: Broker;

  const fresh = async (name = 'a'): Promise<Node> => {
    lab = new Lab();
    broker = new Broker(lab);
    const node = new Node(lab, name);
    await node.load();
    return node;
  };
  afterEach(async () => {
    await lab?.cleanup();
  });

  it('applies every message format, then acks', async () => {
    const n = await fresh();
    const q = broker.name('formats');
    await n.consume(['--queue', q, '--ttl', '2h']);
    await broker.publish(q, [
      '{"action":"block","ip":"198.51.100.1","ttl":"30m","reason":"REGISTER flood","source":"kamailio"}',
      '{"ip":"198.51.100.2"}',
      '{"ips":["198.51.100.3","198.51.100.4"]}',
      '["198.51.100.5","198.51.100.6"]',
      '198.51.100.7',
      '198.51.100.8\n198.51.100.9\n',
      '"198.51.100.10"',
      '{"jsonrpc":"2.0","method":"E_PIKE_BLOCKED","params":{"ip":"198.51.100.11"}}',
      '{"jsonrpc":"2.0","method":"E_PIKE_BLOCKED","params":["198.51.100.12"]}',
      '{"action":"block","ip":"203.0.113.0/24","reason":"scanner net"}',
      '{"action":"block","ip":"198.51.100.99"}',
      '{"action":"unblock","ip":"198.51.100.99"}',
    ]);
    const want = ['198.51.100.1', '198.51.100.10', '198.51.100.11', '198.51.100.12', '198.51.100.2', '198.51.100.3', '198.51.100.4', '198.51.100.5', '198.51.100.6', '198.51.100.7', '198.51.100.8', '198.51.100.9', '203.0.113.0/24'];
    await waitFor('every format in the map', () => n.ips(), (ips) => ips.length === want.length);
    const list = await n.list();
    expect(list.map((e) => e.ip).sort()).toEqual(want.sort());
    const first = list.find((e) => e.ip === '198.51.100.1')!;
    expect(first).toMatchObject({ source: 'kamailio', reason: 'REGISTER flood' });
    const ttl = (Date.parse(first.expires!) - Date.parse(first.added)) / 1000;
    expect(ttl).toBeGreaterThanOrEqual(1799);
    expect(ttl).toBeLessThanOrEqual(1801);
    // An OpenSIPS pike event is recorded as OpenSIPS's pike, not as the default source.
    expect(list.find((e) => e.ip === '198.51.100.11')).toMatchObject({ source: 'opensips', reason: 'pike' });
    expect((await n.vosctl('list', '--json', '--source', 'opensips')).out).toContain('198.51.100.12');
    const defaulted = list.find((e) => e.ip === '198.51.100.2')!;
    expect(defaulted.source).toBe('amqp');
    expect((Date.parse(defaulted.expires!) - Date.parse(defaulted.added)) / 1000).toBeCloseTo(7200, -1);
    await waitFor('the queue to be empty', () => broker.depth(q), (d) => d.ready === 0 && d.unacked === 0);
    expect(await broker.drain(`${q}.dead`)).toHaveLength(0);
    // Each accepted message is logged with queue, message id, action, address and TTL.
    expect(n.consumer!.logs).toContainEqual(expect.objectContaining({ message: 'blocked', action: 'block', ip: '198.51.100.1', ttl_s: 1800, queue: q, msg_id: 't0', source: 'kamailio' }));
    expect(await n.consumer!.stop()).toBe(0);
  });

  it('dead-letters each bad message with its reason and applies the good ones of the same burst', async () => {
    const n = await fresh();
    const q = broker.name('bad');
    expect((await n.vosctl('allow', '192.0.2.0/24')).code).toBe(0);
    await n.consume(['--queue', q, '--max-body', '512']);
    const bad: Record<string, string> = {
      unparsable: '{"ip": "198.51.100.20"',
      'bad address': '{"ip":"300.1.2.3"}',
      'leading zero': '010.1.1.1',
      allowlisted: '{"ip":"192.0.2.7"}',
      'too short': '{"ip":"16.0.0.0/4"}',
      loopback: '127.0.0.1',
      oversized: `{"ip":"198.51.100.21","reason":"${'x'.repeat(600)}"}`,
      'unknown action': '{"action":"nuke","ip":"198.51.100.22"}',
      'bad ttl': '{"ip":"198.51.100.23","ttl":"soon"}',
      'unknown method': '{"jsonrpc":"2.0","method":"E_SCANNER","params":{"ip":"198.51.100.24"}}',
      binary: Buffer.from([0xff, 0xfe, 0x00, 0x01]).toString('latin1'),
    };
    const good = ['198.51.100.30', '198.51.100.31', '198.51.100.32'];
    const bodies: Array<string | Buffer> = [good[0]!];
    for (const [k, body] of Object.entries(bad)) bodies.push(k === 'binary' ? Buffer.from([0xff, 0xfe, 0x00, 0x01]) : body);
    bodies.push(`{"ip":"${good[1]}"}`, `{"ips":["${good[2]}","999.1.1.1"]}`);
    await broker.publish(q, bodies);
    await waitFor('good entries', () => n.ips(), (ips) => ips.length === 3);
    expect(await n.ips()).toEqual(good);
    await waitFor('the queue to be empty', () => broker.depth(q), (d) => d.ready === 0 && d.unacked === 0);
    const dead = await broker.drain(`${q}.dead`);
    const reasons = dead.map((m) => String(m.properties.headers?.['x-vos-reason']));
    expect(dead).toHaveLength(Object.keys(bad).length + 1);
    const expected: Array<[string, RegExp]> = [
      ['unparsable', /not valid JSON/],
      ['bad address', /'300\.1\.2\.3' is not an IPv4 address/],
      ['leading zero', /leading zero/],
      ['allowlisted', /covered by the allowlist entry 192\.0\.2\.0\/24/],
      ['too short', /shorter than the minimum prefix \/8/],
      ['loopback', /loopback/],
      ['oversized', /over the 512-byte limit/],
      ['unknown action', /unknown action "nuke"/],
      ['bad ttl', /bad ttl "soon"/],
      ['unknown method', /unknown JSON-RPC method 'E_SCANNER'/],
      ['binary', /not UTF-8/],
      ['mixed', /refused 1 of 2: '999\.1\.1\.1'/],
    ];
    for (const [what, re] of expected) expect({ what, hit: reasons.some((r) => re.test(r)) }).toEqual({ what, hit: true });
    expect(dead.every((m) => m.properties.headers?.['x-vos-queue'] === q)).toBe(true);
    // the dead letter keeps the original body
    expect(dead.map((m) => m.content.toString())).toContain(bad['leading zero']);
    await n.consumer!.stop();
  });

  it('treats a repeat block as one entry whose expiry only moves later', async () => {
    const n = await fresh();
    const q = broker.name('dup');
    await n.consume(['--queue', q]);
    const expiry = async () => (await n.list()).find((e) => e.ip === '198.51.100.40')?.expires ?? null;
    await broker.publish(q, ['{"ip":"198.51.100.40","ttl":60}', '{"ip":"198.51.100.40","ttl":60}']);
    const e1 = await waitFor('the first block', expiry, (e) => e !== null);
    await broker.publish(q, ['{"ip":"198.51.100.40","ttl":"2h"}']);
    const e2 = await waitFor('the extension', expiry, (e) => e !== e1);
    expect(Date.parse(e2!) - Date.parse(e1!)).toBeGreaterThan(7000 * 1000);
    await broker.publish(q, ['{"ip":"198.51.100.40","ttl":10}']);
    await waitFor('the queue to be empty', () => broker.depth(q), (d) => d.ready === 0 && d.unacked === 0);
    expect(await expiry()).toBe(e2);
    expect(await n.ips()).toEqual(['198.51.100.40']);
    await n.consumer!.stop();
  });

  it('after kill -9 in the middle of a burst, a restarted consumer applies every message', async () => {
    const n = await fresh();
    const q = broker.name('kill');
    const c = await n.consume(['--queue', q, '--batch-size', '20', '--prefetch', '100']);
    const ips = Array.from({ length: 20_000 }, (_, i) => `198.19.${Math.floor(i / 250)}.${(i % 250) + 1}`);
    await broker.publish(q, ips);
    await c.waitForLog((l) => l.message === 'blocked', 30_000);
    await c.kill9(); // mid-burst: some batches applied, some in flight, most still queued
    const before = (await n.ips()).length;
    expect(before).toBeGreaterThan(0);
    expect(before).toBeLessThan(ips.length);
    const again = await n.consume(['--queue', q]);
    await waitFor('the whole burst', async () => (await n.ips()).length, (k) => k === ips.length, 60_000).catch((err: Error) => {
      throw new Error(`${err.message}\nconsumer: ${JSON.stringify(again.logs.filter((l) => l.message !== 'blocked').slice(-10))}`);
    });
    expect(await n.ips()).toEqual([...ips].sort());
    // Redelivery also brought the persisted state in line with the map.
    expect(JSON.parse((await n.vosctl('status', '--json')).out)).toMatchObject({ state_matches_maps: true });
    await n.consumer!.stop();
  }, 150_000);

  it('on SIGTERM mid-burst finishes and acks the batch in flight, exits 0, and leaves the rest queued', async () => {
    const n = await fresh();
    const q = broker.name('term');
    const c = await n.consume(['--queue', q, '--batch-size', '50', '--prefetch', '200']);
    const ips = Array.from({ length: 20_000 }, (_, i) => `198.20.${Math.floor(i / 250)}.${(i % 250) + 1}`);
    await broker.publish(q, ips);
    await c.waitForLog((l) => l.message === 'blocked', 30_000);
    expect(await c.stop()).toBe(0);
    const applied = (await n.ips()).length;
    const depth = await broker.depth(q);
    // Every message is either applied and acked, or still in the queue: none both, none lost.
    expect(depth.unacked).toBe(0);
    expect(applied).toBeGreaterThan(0);
    if (depth.ready + applied !== ips.length) console.log(JSON.stringify(c.logs.filter((l) => l.message !== "blocked").slice(-30)));
    expect(depth.ready + applied).toBe(ips.length);
    expect(c.logs.find((l) => l.message === 'consumer stopped')).toMatchObject({ messages: applied });
    await n.consume(['--queue', q]);
    await waitFor('the rest', async () => (await n.ips()).length, (k) => k === ips.length, 60_000);
    await n.consumer!.stop();
  });

  it('pauses without acking while the program and maps are gone, and resumes when they are back', async () => {
    const n = await fresh();
    const q = broker.name('gone');
    const c = await n.consume(['--queue', q]);
    await broker.publish(q, ['198.51.100.50']);
    await waitFor('the first block', () => n.ips(), (ips) => ips.length === 1);
    rmSync(n.pinDir, { recursive: true, force: true }); // program and maps gone (unload --purge)
    const from = c.logs.length;
    await broker.publish(q, ['198.51.100.51', '198.51.100.52', '{"action":"unblock","ip":"198.51.100.50"}']);
    const paused = await c.waitForLog((l) => l.message === 'paused: not ready to enforce', 10_000, from);
    expect(String(paused.error)).toContain('no maps in');
    // Nothing acked while paused: the batch in hand stays unacked, and the consumer is cancelled, so what the
    // broker had not delivered yet stays ready (how the three split depends on when the pause began).
    const depth = await broker.depth(q);
    expect(depth.ready + depth.unacked).toBe(3);
    expect(depth.unacked).toBeGreaterThan(0);
    await n.load();
    await waitFor('the paused batch applied', () => n.ips(), (ips) => ips.join() === '198.51.100.51,198.51.100.52', 20_000);
    expect(await c.waitForLog((l) => l.message === 'resumed', 5000, from)).toMatchObject({ action: 'resume', queue: q });
    await waitFor('the queue to be empty', () => broker.depth(q), (d) => d.ready === 0 && d.unacked === 0);
    // Pausing is not a hot loop: a handful of retries with backoff, not hundreds.
    const retries = c.logs.filter((l) => l.message === 'paused: not ready to enforce').length;
    expect(retries).toBeLessThan(30);
    await c.stop();
  });

  it('binds to an exchange with a routing key, and uses an existing queue with its own arguments as it is', async () => {
    const n = await fresh();
    const q = broker.name('bound');
    const ex = broker.name('direct');
    // The operator declared the queue first, with arguments of their own (a length cap, a TTL).
    const ch = await broker.channel();
    await ch.assertQueue(q, { durable: true, arguments: { 'x-max-length': 50_000, 'x-message-ttl': 3_600_000 } });
    const c = await n.consume(['--queue', q, '--exchange', ex, '--routing-key', 'sip.block']);
    expect(c.logs.map((l) => l.message)).not.toContain(`declared queue ${q}`);
    expect(c.logs.map((l) => l.message)).toContain(`declared direct exchange ${ex}`);
    await broker.publish('', ['198.51.100.60'], { exchange: ex, routingKey: 'sip.block' });
    await broker.publish('', ['198.51.100.61'], { exchange: ex, routingKey: 'other.key' }); // not bound: goes nowhere
    await waitFor('the bound message', () => n.ips(), (ips) => ips.includes('198.51.100.60'));
    await sleep(300);
    expect(await n.ips()).toEqual(['198.51.100.60']);
    // A second consumer with the same options declares nothing and fails on nothing.
    await c.stop();
    const again = await n.consume(['--queue', q, '--exchange', ex, '--routing-key', 'sip.block']);
    expect(again.logs.filter((l) => String(l.message).startsWith('declared'))).toEqual([]);
    await again.stop();
  });

  it('fanout: two nodes with their own pin folders end with identical maps', async () => {
    const a = await fresh('n1');
    const b = new Node(lab, 'n2');
    await b.load();
    const ex = broker.name('fan');
    // Both on this host: each its own --node name, so its own queue <exchange>.<node> (registered for cleanup).
    const qa = broker.name('fan.n1');
    const qb = broker.name('fan.n2');
    expect([qa, qb]).toEqual([`${ex}.n1`, `${ex}.n2`]);
    await a.consume(['--fanout', ex, '--node', 'n1']);
    await b.consume(['--fanout', ex, '--node', 'n2']);
    const ips = Array.from({ length: 200 }, (_, i) => `198.51.${100 + Math.floor(i / 100)}.${(i % 100) + 1}`);
    await broker.publish('', ips.map((ip) => JSON.stringify({ ip, source: 'cluster' })), { exchange: ex });
    await broker.publish('', ['{"action":"unblock","ip":"198.51.100.1"}'], { exchange: ex });
    const want = ips.filter((ip) => ip !== '198.51.100.1').sort();
    await waitFor('node 1', () => a.ips(), (x) => x.join() === want.join());
    await waitFor('node 2', () => b.ips(), (x) => x.join() === want.join());
    const strip = (l: Listed[]) => l.map((e) => [e.ip, e.source, e.expires !== null]);
    expect(strip(await a.list())).toEqual(strip(await b.list()));
    // A bad message: each node dead-letters its copy, named by its --node.
    await broker.publish('', ['{"ip":7}'], { exchange: ex });
    await waitFor('n1 dead letter', () => broker.depth(`${qa}.dead`), (d) => d.ready === 1);
    await waitFor('n2 dead letter', () => broker.depth(`${qb}.dead`), (d) => d.ready === 1);
    expect([(await broker.drain(`${qa}.dead`))[0]!.properties.headers?.['x-vos-node'], (await broker.drain(`${qb}.dead`))[0]!.properties.headers?.['x-vos-node']]).toEqual(['n1', 'n2']);
    await a.consumer!.stop();
    await b.consumer!.stop();
  });

  it('when the map is full, dead-letters what did not fit with that reason and logs the fill level', async () => {
    lab = new Lab();
    broker = new Broker(lab);
    const n = new Node(lab, 'full');
    const r = await execa(join(ROOT, 'scripts/load.sh'), ['--no-attach', '--block-capacity', '8'], { env: n.env(), reject: false });
    expect(r.exitCode).toBe(0);
    const q = broker.name('full');
    const c = await n.consume(['--queue', q]);
    const ips = Array.from({ length: 12 }, (_, i) => `198.51.100.${i + 1}`);
    await broker.publish(q, ips);
    await waitFor('the queue to be empty', () => broker.depth(q), (d) => d.ready === 0 && d.unacked === 0);
    const inMap = await n.ips();
    expect(inMap).toHaveLength(8);
    const dead = await broker.drain(`${q}.dead`);
    expect(dead).toHaveLength(4);
    for (const m of dead) {
      expect(String(m.properties.headers?.['x-vos-reason'])).toMatch(/^map full: blocked_ips holds 8 of 8; not blocked: 198\.51\.100\.\d+$/);
      expect(inMap).not.toContain(m.content.toString());
    }
    const err = await c.waitForLog((l) => l.level === 'error');
    expect(err).toMatchObject({ message: 'blocklist map full: messages dead-lettered', map: 'blocked_ips', entries: 8, capacity: 8, fill: 1 });
    await c.stop();
  });

  it('connects over amqps with a CA file and a password file (TLS in front of the broker)', async () => {
    const n = await fresh();
    const q = broker.name('tls');
    const dir = join(lab.tmp, 'tls');
    mkdirSync(dir);
    const ssl = (args: string[]) => execa('openssl', args, { cwd: dir });
    await ssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '1', '-subj', '/CN=vfp test CA']);
    await ssl(['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=127.0.0.1']);
    writeFileSync(join(dir, 'san.ext'), 'subjectAltName=IP:127.0.0.1\n');
    await ssl(['x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.pem', '-days', '1', '-extfile', 'san.ext']);
    // A TLS terminator on loopback that hands each connection to the broker's plain port.
    const server = createTlsServer({ key: readFileSync(join(dir, 'server.key')), cert: readFileSync(join(dir, 'server.pem')) }, (tls) => {
      const plain = connect(5672, '127.0.0.1');
      tls.pipe(plain).pipe(tls);
      tls.on('error', () => plain.destroy());
      plain.on('error', () => tls.destroy());
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    lab.defer('tls terminator', () => new Promise((r) => server.close(r)));
    const port = (server.address() as { port: number }).port;
    writeFileSync(join(dir, 'password'), 'guest\n', { mode: 0o600 });
    const c = new ConsumerProcess(lab, { ...n.env(), VOS_AMQP_URL: `amqps://guest@127.0.0.1:${port}/`, VOS_AMQP_CA_FILE: join(dir, 'ca.pem'), VOS_AMQP_PASSWORD_FILE: join(dir, 'password') }, ['--queue', q]);
    await c.start();
    expect(c.logs.find((l) => l.message === 'consuming')).toMatchObject({ url: `amqps://guest:***@127.0.0.1:${port}/` });
    await broker.publish(q, ['198.51.100.77']);
    await waitFor('the block over TLS', () => n.ips(), (ips) => ips.includes('198.51.100.77'));
    await c.stop();
    // Without the CA the broker's certificate is not trusted: no connection, a log line per attempt.
    const untrusted = new ConsumerProcess(lab, { ...n.env(), VOS_AMQP_URL: `amqps://guest:guest@127.0.0.1:${port}/` }, ['--queue', q]);
    await expect(untrusted.start(3000)).rejects.toThrow(/timed out/);
    expect(untrusted.logs.some((l) => l.message === 'broker unreachable; reconnecting' && /certificate/i.test(String(l.error)))).toBe(true);
    await untrusted.stop();
    // amqp:// to a TLS port is a configuration error: a few attempts, then exit 1 with the hint.
    const plainToTls = await execa(join(ROOT, 'bin/vosctl'), ['consume', '--queue', q], { reject: false, env: { ...n.env(), VOS_AMQP_URL: `amqp://guest:guest@127.0.0.1:${port}/` } });
    expect({ code: plainToTls.exitCode, hint: /if 127\.0\.0\.1:\d+ is a TLS listener, use amqps:\/\//.test(plainToTls.stderr) }).toEqual({ code: 1, hint: true });
  });

  it('refuses bad options with exit 2 and a named error', async () => {
    await fresh();
    const run = (args: string[]) => execa(join(ROOT, 'bin/vosctl'), ['consume', ...args], { reject: false, env: { VOS_PIN_DIR: lab.pinDir } });
    expect(await run([])).toMatchObject({ exitCode: 2, stderr: expect.stringContaining('give --queue NAME') });
    // One source only; nodes given one --queue under --fanout would share it (each block to one node).
    expect(await run(['--fanout', 'f', '--queue', 'blocklist'])).toMatchObject({ exitCode: 2, stderr: expect.stringContaining('--fanout f with --queue blocklist: every node given the same --queue would share one queue') });
    expect(await run(['--stream', 's', '--queue', 'blocklist'])).toMatchObject({ exitCode: 2, stderr: expect.stringContaining('--stream s excludes --queue blocklist') });
    expect(await run(['--queue', 'x', '--prefetch', '0'])).toMatchObject({ exitCode: 2, stderr: expect.stringContaining("bad --prefetch '0'") });
    expect(await run(['--queue', 'x', '--ttl', 'soon'])).toMatchObject({ exitCode: 2, stderr: expect.stringContaining("bad --ttl 'soon'") });
    expect(await run(['--queue', 'x', '--url', 'http://nope'])).toMatchObject({ exitCode: 2, stderr: expect.stringContaining("bad AMQP URL 'http://nope'") });
    // An empty password file (a lone newline too) would be sent as an empty password: refused up front, consume and doctor alike.
    const empty = join(lab.tmp, 'empty-password');
    writeFileSync(empty, '\n', { mode: 0o600 });
    expect(await run(['--queue', 'x', '--password-file', empty])).toMatchObject({ exitCode: 2, stderr: expect.stringContaining(`the password file ${empty} is empty`) });
    const doctor = await execa(join(ROOT, 'bin/vosctl'), ['doctor', '--url', 'amqp://guest@127.0.0.1:5672', '--password-file', empty], { reject: false, env: { VOS_PIN_DIR: lab.pinDir } });
    expect(doctor).toMatchObject({ exitCode: 2, stderr: expect.stringContaining(`the password file ${empty} is empty`) });
  });
});

/** The map helper (vfp-maptool serve) among the consumer's children, by pid. */
function maptoolChild(pid: number): number {
  for (const task of readdirSync(`/proc/${pid}/task`)) {
    for (const c of readFileSync(`/proc/${pid}/task/${task}/children`, 'utf8').split(' ').filter(Boolean)) {
      if (readFileSync(`/proc/${c}/comm`, 'utf8').trim() === 'vfp-maptool') return Number(c);
    }
  }
  throw new Error(`no vfp-maptool child of ${pid}`);
}

/**
 * Faults that need broker-wide changes (closing connections, alarms, users,
 * vhosts) run against one private RabbitMQ node for the whole block, never
 * the shared broker.
 */
describeWith('vosctl consume under broker faults (a private RabbitMQ node)', kernelMissing() ?? brokerMissing(), () => {
  let nodeLab: Lab;
  let rabbit: PrivateNode;
  let lab: Lab;
  let broker: Broker;
  const ctl = (args: string[]) => rabbit.ctl(args);

  beforeAll(async () => {
    nodeLab = new Lab();
    rabbit = new PrivateNode(nodeLab);
    await rabbit.start();
  }, 90_000);
  afterAll(async () => {
    await nodeLab?.cleanup();
  }, 60_000);

  const fresh = async (): Promise<{ n: Node; env: Record<string, string> }> => {
    lab = new Lab();
    broker = new Broker(lab, rabbit.url, ctl);
    const n = new Node(lab, 'f');
    await n.load();
    return { n, env: { VOS_AMQP_URL: rabbit.url } };
  };
  afterEach(async () => {
    await lab?.cleanup();
  });

  it('loses no confirmed block across a broker restart (stop_app, start_app)', async () => {
    const { n, env } = await fresh();
    const q = broker.name('restart');
    await n.consume(['--queue', q], env);
    const confirmed: string[] = [];
    let publishing = true;
    const publisher = (async () => {
      let i = 0;
      while (publishing) {
        const ip = `198.18.${Math.floor(i / 250)}.${(i % 250) + 1}`;
        try {
          await broker.publish(q, [ip]);
          confirmed.push(ip);
          i++;
        } catch {
          await broker.close(); // the broker went away: reconnect and publish the same one again
          await sleep(200);
        }
        await sleep(5);
      }
    })();
    await waitFor('some confirmed blocks', async () => confirmed.length, (c) => c >= 20);
    await ctl(['stop_app']);
    try {
      await sleep(1000);
    } finally {
      await ctl(['start_app']);
    }
    await n.consumer!.waitForLog((l) => l.message === 'broker unreachable; reconnecting', 5000);
    await waitFor('blocks after the restart', async () => confirmed.length, (c) => c >= 120, 60_000);
    publishing = false;
    await publisher;
    const inMap = new Set(await waitFor('every confirmed block in the map', () => n.ips(), (ips) => confirmed.every((ip) => ips.includes(ip)), 60_000));
    expect(confirmed.filter((ip) => !inMap.has(ip))).toEqual([]);
    await n.consumer!.stop();
  });

  it('never acks an old channel\'s batch on a new one: a connection closed in the middle of a large batch loses nothing', async () => {
    const { n, env } = await fresh();
    const q = broker.name('gen');
    const ch = await broker.channel();
    await ch.assertQueue(q, { durable: true });
    const per = 500;
    const msgs = Array.from({ length: 60 }, (_, m) => Array.from({ length: per }, (_, i) => `10.${100 + Math.floor(m / 10)}.${(m % 10) * 25 + Math.floor(i / 20)}.${(i % 20) + 1}`));
    await broker.publish(q, msgs.map((ips) => JSON.stringify({ ips })));
    const c = await n.consume(['--queue', q, '--batch-size', '5', '--batch-wait', '1000', '--log-level', 'debug'], env);
    let done = 0;
    await c.waitForLog((l) => l.message === 'batch done' && ++done === 2, 30_000);
    // A slow map update: the batch in flight outlives its channel.
    const helper = maptoolChild(c.pid!);
    process.kill(helper, 'SIGSTOP');
    try {
      const conns = await waitFor('the consumer\'s connection', () => rabbit.connections(), (cs) => cs.some((x) => x.name === 'vosctl consume'));
      await ctl(['close_connection', conns.find((x) => x.name === 'vosctl consume')!.pid, 'vfp test: close in the middle of a batch']);
      await c.waitForLog((l) => l.message === 'consuming' && l.gen === 2, 30_000);
      await waitFor('redeliveries on the new channel', () => broker.depth(q), (d) => d.unacked > 0);
    } finally {
      process.kill(helper, 'SIGCONT');
    }
    await waitFor('the queue to be empty', () => broker.depth(q), (d) => d.ready === 0 && d.unacked === 0, 60_000);
    const inMap = new Set(await n.ips());
    const missing = msgs.flat().filter((ip) => !inMap.has(ip));
    expect({ missing: missing.length, sample: missing.slice(0, 3) }).toEqual({ missing: 0, sample: [] });
    expect(c.logs.filter((l) => /unknown delivery tag/.test(String(l.error)))).toEqual([]);
    expect(c.logs).toContainEqual(expect.objectContaining({ message: 'applied, but its channel is gone: not acked, no dead letters; the broker redelivers the batch', gen: 1 }));
    expect(await c.stop()).toBe(0);
  }, 120_000);

  it('under a resource alarm enforces every good block, logs blocked with the reason, keeps the bad message unacked, and stops on SIGTERM', async () => {
    const { n, env } = await fresh();
    const q = broker.name('alarm');
    const ch = await broker.channel();
    await ch.assertQueue(q, { durable: true });
    await ch.assertQueue(`${q}.dead`, { durable: true });
    const good = Array.from({ length: 1200 }, (_, i) => `10.7.${Math.floor(i / 250)}.${(i % 250) + 1}`);
    await broker.publish(q, ['not an address', ...good]);
    await broker.close();
    await ctl(['set_disk_free_limit', '100000GB']);
    try {
      const c = await n.consume(['--queue', q, '--batch-size', '100'], env);
      await waitFor('every good block in the map', async () => (await n.ips()).length, (k) => k === good.length, 30_000);
      const blocked = await c.waitForLog((l) => l.message === 'blocked' && l.action === 'broker', 15_000);
      expect(String(blocked.reason)).toMatch(/disk/i);
      expect(c.logs.filter((l) => l.message === 'dead-lettered')).toEqual([]);
      const code = await c.stop();
      if (code !== 0) console.log(JSON.stringify(c.logs.filter((l) => l.message !== 'blocked' || l.action === 'broker').slice(-15)));
      expect(code).toBe(0);
      expect(c.logs).toContainEqual(expect.objectContaining({ message: 'stopping with dead letters unconfirmed: their messages stay unacked and come back on the next start' }));
    } finally {
      await ctl(['set_disk_free_limit', '50MB']);
    }
    // The bad message is back in the queue, the good ones are gone from it.
    expect(await waitFor('the queue', () => broker.depth(q), (d) => d.unacked === 0)).toEqual({ ready: 1, unacked: 0 });
    const c2 = await n.consume(['--queue', q], env);
    await c2.waitForLog((l) => l.message === 'dead-lettered', 15_000);
    await waitFor('the queue to be empty', () => broker.depth(q), (d) => d.ready === 0 && d.unacked === 0);
    // At least once: the dead letter sent during the alarm may land too once the alarm clears.
    const dead = (await broker.drain(`${q}.dead`)).map((m) => m.content.toString());
    expect(dead.length).toBeGreaterThanOrEqual(1);
    expect(new Set(dead)).toEqual(new Set(['not an address']));
    await c2.stop();
  }, 120_000);

  it('a deleted dead-letter queue is declared again; a full one (reject-publish) keeps the message unacked until it takes it', async () => {
    const { n, env } = await fresh();
    const q = broker.name('dlq');
    const ch = await broker.channel();
    await ch.assertQueue(q, { durable: true });
    const c = await n.consume(['--queue', q], env);
    await ch.deleteQueue(`${q}.dead`);
    await broker.publish(q, ['bad one', '10.8.0.1']);
    await c.waitForLog((l) => l.message === 'dead-letter queue was missing: declared it again');
    await c.waitForLog((l) => l.message === 'dead-lettered');
    expect((await broker.drain(`${q}.dead`)).map((m) => m.content.toString())).toEqual(['bad one']);
    // Full: at most one message, and publishes beyond it refused (nacked).
    await ch.deleteQueue(`${q}.dead`);
    await ch.assertQueue(`${q}.dead`, { durable: true, arguments: { 'x-max-length': 1, 'x-overflow': 'reject-publish' } });
    const from = c.logs.length;
    await broker.publish(q, ['bad two', 'bad three', '10.8.0.2', '10.8.0.3']);
    const refused = await c.waitForLog((l) => l.message === 'not dead-lettered: message kept unacked', 15_000, from);
    expect(refused).toMatchObject({ outcome: 'nacked', error: expect.stringContaining('refused') });
    await waitFor('the good blocks', () => n.ips(), (ips) => ips.includes('10.8.0.3'));
    // The refused one is neither lost nor acked by the acks of the messages after it.
    expect(await waitFor('one unacked', () => broker.depth(q), (d) => d.unacked === 1)).toEqual({ ready: 0, unacked: 1 });
    expect(c.logs.slice(from).map((l) => l.message)).not.toContain('could not ack (channel lost); the broker will redeliver');
    // Room again: the retry gets through, and the message is acked.
    const first = await broker.drain(`${q}.dead`);
    await waitFor('the queue to be empty', () => broker.depth(q), (d) => d.ready === 0 && d.unacked === 0, 30_000);
    const second = await broker.drain(`${q}.dead`);
    expect([...first, ...second].map((m) => m.content.toString()).sort()).toEqual(['bad three', 'bad two']);
    await c.stop();
  }, 90_000);

  it('pausing without maps stops deliveries and returns what it holds once, so a quorum queue\'s delivery limit is not used up', async () => {
    const { n, env } = await fresh();
    const q = broker.name('quorum');
    const ch = await broker.channel();
    await ch.assertQueue(q, { durable: true, arguments: { 'x-queue-type': 'quorum', 'x-delivery-limit': 2 } });
    const c = await n.consume(['--queue', q, '--pause-hold', '1', '--delivery-limit', '2'], env);
    rmSync(n.pinDir, { recursive: true, force: true });
    const ips = ['10.9.0.1', '10.9.0.2', '10.9.0.3'];
    await broker.publish(q, ips);
    const returned = await c.waitForLog((l) => String(l.message).startsWith('paused: returned the deliveries in hand'), 15_000);
    expect(returned).toMatchObject({ returned: 3, delivery_count: 1 });
    // No consumer while paused: the messages wait in the queue, unacked by nobody.
    expect(await waitFor('ready again', () => broker.depth(q), (d) => d.ready === 3)).toEqual({ ready: 3, unacked: 0 });
    expect(await ctl(['-q', 'list_consumers'])).not.toContain(q);
    await sleep(4000); // several pause-holds: no more returns
    expect(c.logs.filter((l) => String(l.message).startsWith('paused: returned')).length).toBe(1);
    await n.load();
    await waitFor('the blocks applied', () => n.ips(), (x) => x.join() === ips.join(), 60_000);
    await waitFor('the queue to be empty', () => broker.depth(q), (d) => d.ready === 0 && d.unacked === 0);
    expect(c.logs.map((l) => l.message)).toContain('consuming again');
    await c.stop();
  }, 90_000);

  it('a queue deleted while consumed: what was delivered is applied, the queue is declared again and consumed', async () => {
    const { n, env } = await fresh();
    const q = broker.name('deleted');
    // A long batch wait holds all ten in the consumer's hands while the test deletes the queue (rabbitmqctl is slow on a loaded machine).
    const c = await n.consume(['--queue', q, '--batch-size', '100', '--batch-wait', '10000'], env);
    const ips = Array.from({ length: 10 }, (_, i) => `10.10.0.${i + 1}`);
    await broker.publish(q, ips);
    await waitFor('delivered', () => broker.depth(q), (d) => d.unacked === 10);
    const ch = await broker.channel();
    await ch.deleteQueue(q); // within the batch wait: all ten are in the consumer's hands
    await c.waitForLog((l) => String(l.message).startsWith('the broker cancelled the consumer'));
    await waitFor('the delivered blocks applied', () => n.ips(), (x) => x.length === 10, 30_000);
    await c.waitForLog((l) => l.message === 'consuming' && l.gen === 2, 30_000);
    expect(c.logs.filter((l) => l.action === 'reconnect').map((l) => l.message)).toEqual(['consumer cancelled by the broker; declaring the queue again']);
    await broker.publish(q, ['10.10.1.1']);
    await waitFor('consumed again (after the batch wait)', () => n.ips(), (x) => x.includes('10.10.1.1'), 45_000);
    await c.stop();
  }, 150_000);

  it('refuses a stream queue with a clear error naming --stream, whatever arguments the stream has', async () => {
    const { n, env } = await fresh();
    const ch = await broker.channel();
    const plain = broker.name('stream');
    await ch.assertQueue(plain, { durable: true, arguments: { 'x-queue-type': 'stream' } });
    const r = await execa(join(ROOT, 'bin/vosctl'), ['consume', '--queue', plain], { reject: false, env: { ...n.env(), ...env } });
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toMatch(new RegExp(`queue '${plain}' is a stream`));
    const capped = broker.name('stream_capped');
    await ch.assertQueue(capped, { durable: true, arguments: { 'x-queue-type': 'stream', 'x-max-length-bytes': 10_000_000 } });
    await broker.publish(capped, ['10.11.0.1']);
    // The type is asked of the broker by a probe consume (x-stream-offset is refused by any other queue type), not read from the declare's arguments.
    const r2 = await execa(join(ROOT, 'bin/vosctl'), ['consume', '--queue', capped], { reject: false, env: { ...n.env(), ...env } });
    expect(r2.exitCode).toBe(2);
    expect(r2.stderr).toContain(`queue '${capped}' is a stream (x-queue-type stream): consume it with --stream ${capped}`);
    expect(await n.ips()).toEqual([]);
  }, 60_000);

  it('names permanent broker errors and exits non-zero after a few attempts; a password file passes any password', async () => {
    const { n } = await fresh();
    const q = broker.name('perm');
    const vhost = `vfp_${lab.id}`;
    const user = `vfp_u_${lab.id}`;
    const odd = `p%41ss wörd €  `;
    await ctl(['add_vhost', vhost]);
    nodeLab.defer(`vhost ${vhost}`, () => ctl(['delete_vhost', vhost]));
    await ctl(['add_user', user, odd]);
    nodeLab.defer(`user ${user}`, () => ctl(['delete_user', user]));
    const run = (url: string, extra: Record<string, string> = {}) => execa(join(ROOT, 'bin/vosctl'), ['consume', '--queue', q], { reject: false, env: { ...n.env(), VOS_LOG_FORMAT: 'json', VOS_AMQP_URL: url, ...extra } });
    const cases: Array<[string, RegExp]> = [
      [`amqp://guest:wrong@127.0.0.1:${rabbit.port}`, /ACCESS_REFUSED - Login was refused/],
      [`amqp://guest:guest@127.0.0.1:${rabbit.port}/nope_${lab.id}`, new RegExp(`NOT_ALLOWED - vhost nope_${lab.id} not found`)],
      [`amqp://guest:guest@127.0.0.1:${rabbit.port}/${vhost}`, new RegExp(`access to vhost '${vhost}' refused for user 'guest'`)],
    ];
    for (const [url, re] of cases) {
      const r = await run(url);
      expect({ url, code: r.exitCode, named: re.test(r.stderr) }).toEqual({ url, code: 1, named: true });
      expect(r.stderr.split('\n').filter((l) => l.includes('the broker refuses; retrying')).length).toBe(2);
      // The same refusal with a dead node listed first (a cluster node down): its ECONNREFUSED between
      // the refusals must not make them start over; exit 1 naming both nodes.
      const mixed = await run(`amqp://guest:guest@127.0.0.1:1,${url}`);
      const last = mixed.stderr.trim().split('\n').pop()!;
      expect({ url, code: mixed.exitCode, named: re.test(last), unreachable: last.includes('unreachable: amqp://guest:***@127.0.0.1:1 (') }).toEqual({ url, code: 1, named: true, unreachable: true });
      expect(last).toContain('every broker node that answers refuses: ');
      expect(mixed.stderr.split('\n').filter((l) => l.includes('the broker refuses; retrying')).length).toBe(2);
    }
    // No permission to configure the queue: refused on declare, named.
    await ctl(['set_permissions', '-p', vhost, user, '^$', '.*', '.*']);
    const pw = join(lab.tmp, 'password');
    writeFileSync(pw, `${odd}\n`, { mode: 0o600 });
    const denied = await run(`amqp://${user}@127.0.0.1:${rabbit.port}/${vhost}`, { VOS_AMQP_PASSWORD_FILE: pw });
    expect(denied.exitCode).toBe(1);
    expect(denied.stderr).toMatch(/ACCESS_REFUSED - (configure )?access to queue/);
    // With permission, the same password file works, the odd password byte for byte.
    await ctl(['set_permissions', '-p', vhost, user, '.*', '.*', '.*']);
    const vhostBroker = new Broker(lab, `amqp://guest:guest@127.0.0.1:${rabbit.port}/${vhost}`, (args) => ctl(['-p', vhost, ...args]));
    await ctl(['set_permissions', '-p', vhost, 'guest', '.*', '.*', '.*']);
    const c = new ConsumerProcess(lab, { ...n.env(), VOS_AMQP_URL: `amqp://${user}@127.0.0.1:${rabbit.port}/${vhost}`, VOS_AMQP_PASSWORD_FILE: pw }, ['--queue', q]);
    await c.start();
    await vhostBroker.publish(q, ['10.12.0.1']);
    await waitFor('the block', () => n.ips(), (x) => x.includes('10.12.0.1'));
    expect(await c.stop()).toBe(0);
    await vhostBroker.cleanup();
    // amqps:// to a plain port: a configuration error, named with the hint, not retried forever.
    const tls = await run(`amqps://guest:guest@127.0.0.1:${rabbit.port}`);
    expect({ code: tls.exitCode, hint: new RegExp(`is 127\\.0\\.0\\.1:${rabbit.port} a TLS port\\?`).test(tls.stderr) }).toEqual({ code: 1, hint: true });
    expect(tls.stderr).not.toContain('broker unreachable');
  }, 120_000);

  it('without write permission: good blocks applied, dead letters refused in the broker\'s words, exit 1 with the bad message back in the queue; forced closes named', async () => {
    const { n } = await fresh();
    const q = broker.name('nowrite');
    const user = `vfp_nw_${lab.id}`;
    await ctl(['add_user', user, 'pw']);
    nodeLab.defer(`user ${user}`, () => ctl(['delete_user', user]).catch(() => undefined));
    await ctl(['set_permissions', '-p', '/', user, '.*', '^$', '.*']);
    const c = await n.consume(['--queue', q], { VOS_AMQP_URL: `amqp://${user}:pw@127.0.0.1:${rabbit.port}` });
    // A forced close is named with the broker's reason, not "unreachable".
    const conns = await waitFor('the consumer\'s connection', () => rabbit.connections(), (cs) => cs.some((x) => x.name === 'vosctl consume'));
    await ctl(['close_connection', conns.find((x) => x.name === 'vosctl consume')!.pid, 'vfp atk']);
    const re = await c.waitForLog((l) => l.action === 'reconnect', 30_000);
    expect(re).toMatchObject({ message: 'the broker closed the connection; reconnecting', error: 'CONNECTION_FORCED - vfp atk' });
    await c.waitForLog((l) => l.message === 'consuming' && l.gen === 2, 30_000);
    await broker.publish(q, ['not an address', '10.13.0.1']);
    await waitFor('the good block', () => n.ips(), (x) => x.includes('10.13.0.1'), 30_000);
    expect(await c.exited(90_000)).toBe(1);
    expect(c.logs).toContainEqual(expect.objectContaining({ message: 'cannot dead-letter: the broker refuses; giving up', error: expect.stringContaining("ACCESS_REFUSED - access to exchange 'amq.default'") }));
    expect(c.logs.filter((l) => l.outcome === 'lost' || /closed before the broker confirmed/.test(String(l.error)))).toEqual([]);
    expect(await waitFor('the bad message back', () => broker.depth(q), (d) => d.unacked === 0, 30_000)).toEqual({ ready: 1, unacked: 0 });
    expect(await n.ips()).toContain('10.13.0.1');
    // A deleted user: the close says so; the next attempts are refused, and the consumer exits 1.
    await ctl(['set_permissions', '-p', '/', user, '.*', '.*', '.*']);
    const d = await n.consume(['--queue', q], { VOS_AMQP_URL: `amqp://${user}:pw@127.0.0.1:${rabbit.port}` });
    await waitFor('the bad message dead-lettered', () => broker.depth(q), (x) => x.ready === 0 && x.unacked === 0, 30_000);
    await ctl(['delete_user', user]);
    const gone = await d.waitForLog((l) => l.action === 'reconnect', 30_000);
    expect(gone).toMatchObject({ message: 'the broker closed the connection; reconnecting', error: expect.stringMatching(/CONNECTION_FORCED.*deleted/) });
    expect(await d.exited(60_000)).toBe(1);
    expect(d.logs.filter((l) => l.message === 'broker unreachable; reconnecting')).toEqual([]);
  }, 240_000);
});
