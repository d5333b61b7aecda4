/**
 * Metrics as an operator sees them: Debian's real Prometheus (2.42) scraping
 * `vosctl exporter` every second, with the shipped scrape snippet and alert
 * rules; promtool on the exposition and the rules; `vosctl consume
 * --metrics-listen` on the shared RabbitMQ.
 */
import { afterAll, beforeAll, expect, it } from '@jest/globals';
import { execa } from 'execa';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { Broker, ConsumerProcess, brokerMissing } from '../helpers/broker.js';
import { describeWith, kernelMissing } from '../helpers/env.js';
import { Lab, ROOT, sendUdpFrom, type Veth } from '../helpers/lab.js';

const VOSCTL = join(ROOT, 'bin/vosctl');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function missing(): string | null {
  for (const tool of ['/usr/bin/prometheus', '/usr/bin/promtool']) {
    try {
      readFileSync(tool);
    } catch {
      return `${tool} is not installed (scripts/setup.sh installs prometheus)`;
    }
  }
  return kernelMissing() ?? brokerMissing();
}

/** A loopback port nobody listens on right now. */
async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const port = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return port;
}

async function waitFor<T>(what: string, probe: () => Promise<T>, done: (v: T) => boolean, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    // Not up yet (connection refused) counts as not done.
    const got = await probe().then((value) => ({ value }), (err: Error) => ({ error: err.message }));
    if ('value' in got && done(got.value)) return got.value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; last: ${JSON.stringify(got).slice(0, 600)}`);
    await sleep(250);
  }
}

async function scrape(port: number): Promise<string> {
  const r = await fetch(`http://127.0.0.1:${port}/metrics`);
  if (!r.ok) throw new Error(`HTTP ${r.status}`);
  return r.text();
}

/** The value of one series in an exposition, e.g. `vos_fastpath_messages_total{outcome="applied"}`. */
function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(series + ' '));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

describeWith('metrics with a real Prometheus', missing(), () => {
  let lab: Lab;
  let v: Veth;
  let exporterPort: number;
  let promPort: number;
  const env = () => lab.env({ VOS_STATE_DIR: join(lab.tmp, 'state'), VOS_LOG_FORMAT: 'json' });
  const vosctl = (...args: string[]) => execa(VOSCTL, args, { env: env(), reject: false });

  /** An instant query against the test's Prometheus: [labels, value] per series. */
  async function query(q: string): Promise<Array<{ metric: Record<string, string>; value: number }>> {
    const r = await fetch(`http://127.0.0.1:${promPort}/api/v1/query?query=${encodeURIComponent(q)}`);
    const body = (await r.json()) as { status: string; data: { result: Array<{ metric: Record<string, string>; value: [number, string] }> } };
    if (body.status !== 'success') throw new Error(`query ${q}: ${JSON.stringify(body)}`);
    return body.data.result.map((s) => ({ metric: s.metric, value: Number(s.value[1]) }));
  }

  async function alerts(): Promise<Array<{ name: string; state: string }>> {
    const r = await fetch(`http://127.0.0.1:${promPort}/api/v1/alerts`);
    const body = (await r.json()) as { data: { alerts: Array<{ labels: { alertname: string }; state: string }> } };
    return body.data.alerts.map((a) => ({ name: a.labels.alertname, state: a.state }));
  }

  beforeAll(async () => {
    lab = new Lab();
    v = await lab.veth();
    await lab.mustScript('load.sh', [v.host, '--mode', 'native']);
    lab.defer(`xdp on ${v.host}`, () => lab.script('unload.sh', [v.host]));
    // The attacker (the namespace end) and two more exact addresses, one prefix.
    const r = await vosctl('block', v.peerIp, '198.51.100.21', '198.51.100.22', '203.0.113.0/24', '--reason', 'metrics test');
    expect(r.exitCode).toBe(0);

    exporterPort = await freePort();
    lab.spawn(VOSCTL, ['exporter', '--listen', `127.0.0.1:${exporterPort}`, '--iface', v.host, '--drift-interval', '1'], { env: env(), stdout: 'ignore', stderr: 'ignore' });
    await waitFor('the exporter', () => scrape(exporterPort), (t) => t.includes('vos_fastpath_enforcement_drift_entries'));

    // Prometheus with the shipped scrape snippet and a copy of the shipped rules
    // whose `for:` durations are seconds, so the test sees alerts fire.
    const dir = join(lab.tmp, 'prometheus');
    mkdirSync(join(dir, 'data'), { recursive: true });
    const rules = readFileSync(join(ROOT, 'contrib/prometheus/vos-fastpath.rules.yml'), 'utf8').replace(/^(\s+for: )\S+$/gm, '$12s');
    writeFileSync(join(dir, 'rules.yml'), rules);
    const snippet = readFileSync(join(ROOT, 'contrib/prometheus/scrape.yml'), 'utf8')
      .replace('/etc/prometheus/rules/vos-fastpath.rules.yml', join(dir, 'rules.yml'))
      .replace(/scrape_interval: \S+/, 'scrape_interval: 1s')
      .replace(/scrape_timeout: \S+/, 'scrape_timeout: 1s')
      .replace(/- targets:\n(\s+- \S+\n)+/, `- targets: ['127.0.0.1:${exporterPort}']\n`);
    writeFileSync(join(dir, 'prometheus.yml'), `global:\n  evaluation_interval: 1s\n${snippet}`);
    const check = await execa('promtool', ['check', 'config', join(dir, 'prometheus.yml')], { reject: false });
    expect({ code: check.exitCode, out: check.stdout + check.stderr }).toMatchObject({ code: 0 });

    promPort = await freePort();
    lab.spawn('/usr/bin/prometheus', [
      `--config.file=${join(dir, 'prometheus.yml')}`,
      `--storage.tsdb.path=${join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${promPort}`,
      '--log.level=warn',
    ], { stdout: 'ignore', stderr: 'ignore' });
    await waitFor('Prometheus to scrape the exporter', () => query('up{job="vos-fastpath"}'), (s) => s.length === 1 && s[0]!.value === 1);
  }, 90_000);

  afterAll(() => lab?.cleanup());

  it('the exposition passes promtool check metrics, and the shipped rules promtool check rules', async () => {
    const text = await scrape(exporterPort);
    const lint = await execa('promtool', ['check', 'metrics'], { input: text, reject: false });
    expect({ code: lint.exitCode, out: lint.stdout + lint.stderr }).toEqual({ code: 0, out: '' });
    const rules = await execa('promtool', ['check', 'rules', join(ROOT, 'contrib/prometheus/vos-fastpath.rules.yml')], { reject: false });
    expect(rules.exitCode).toBe(0);
    expect(rules.stdout).toContain('SUCCESS: 6 rules found');
  });

  it('a bad or busy listen address is refused, naming it', async () => {
    const bad = await vosctl('exporter', '--listen', '9864');
    expect({ code: bad.exitCode, err: bad.stderr }).toEqual({ code: 2, err: expect.stringContaining("bad metrics listen address '9864'") });
    const busy = await vosctl('exporter', '--listen', `127.0.0.1:${exporterPort}`);
    expect({ code: busy.exitCode, err: busy.stderr }).toEqual({ code: 3, err: expect.stringContaining(`cannot listen on 127.0.0.1:${exporterPort} for metrics: EADDRINUSE`) });
    const malformed = ['[:::::]:19875', '999.1.1.1:19876', '[fe80::1]:19873'];
    const runs = await Promise.all(malformed.map((l) => vosctl('exporter', '--listen', l)));
    expect(runs.map((r, i) => ({ code: r.exitCode, named: r.stderr.includes(`bad metrics listen address '${malformed[i]}'`) }))).toEqual(malformed.map(() => ({ code: 2, named: true })));
    // Well formed, not this host's: written back in brackets, an environment error.
    const foreign = await vosctl('exporter', '--listen', '[2001:db8::77]:19874');
    expect({ code: foreign.exitCode, err: foreign.stderr }).toEqual({ code: 3, err: expect.stringContaining('cannot listen on [2001:db8::77]:19874 for metrics: EADDRNOTAVAIL') });
  });

  it('timer options out of range are refused, naming the value and the range', async () => {
    const r = await Promise.all([
      vosctl('exporter', '--drift-interval', '2147484'),
      vosctl('exporter', '--drift-interval', '0.001'),
      vosctl('consume', '--queue', `vfp_test_${lab.id}_never`, '--gc-interval', '2147484'),
      vosctl('consume', '--queue', `vfp_test_${lab.id}_never`, '--batch-wait', '2147483648'),
      vosctl('stats', '--watch', '0'),
    ]);
    expect(r.map((x) => [x.exitCode, x.stderr.trim().split('\n').pop()])).toEqual([
      [2, expect.stringContaining("bad --drift-interval '2147484': 0 (off) or 1 to 86400 seconds")],
      [2, expect.stringContaining("bad --drift-interval '0.001': 0 (off) or 1 to 86400 seconds")],
      [2, expect.stringContaining("bad --gc-interval '2147484': 0 (off) or 1 to 86400 seconds")],
      [2, expect.stringContaining("bad --batch-wait '2147483648': 0 to 10000 ms")],
      [2, expect.stringContaining("bad --watch '0': 0.1 to 86400 seconds")],
    ]);
  });

  it('100 concurrent scrapes all answer (they share collects); HEAD answers without a body', async () => {
    const bodies = await Promise.all(Array.from({ length: 100 }, () => scrape(exporterPort)));
    expect(bodies.filter((b) => b.includes('vos_fastpath_map_entries{map="blocked_ips"}')).length).toBe(100);
    const head = await fetch(`http://127.0.0.1:${exporterPort}/metrics`, { method: 'HEAD' });
    expect({ status: head.status, body: await head.text(), type: head.headers.get('content-type') }).toEqual({ status: 200, body: '', type: expect.stringContaining('text/plain') });
  });

  it('Prometheus stores the drop counter vosctl stats shows, the map entries, the attachment', async () => {
    // Real packets from the blocked namespace address: dropped at the NIC.
    await sendUdpFrom(v.ns, v.hostIp, 5060, Array(25).fill('OPTIONS sip:x SIP/2.0\r\n\r\n'));
    const stats = JSON.parse((await vosctl('stats', '--json')).stdout) as Record<string, { packets: number; bytes: number }>;
    expect(stats.blocked_exact!.packets).toBeGreaterThanOrEqual(25);
    const q = 'vos_fastpath_packets_total{reason="blocked_exact",family="ipv4"}';
    const stored = await waitFor('Prometheus to store the drops', () => query(q), (s) => s[0]?.value === stats.blocked_exact!.packets);
    expect(stored[0]!.value).toBe(stats.blocked_exact!.packets);
    const bytes = await waitFor('bytes', () => query('vos_fastpath_bytes_total{reason="blocked_exact",family="ipv4"}'), (s) => s[0]?.value === stats.blocked_exact!.bytes);
    expect(bytes[0]!.value).toBe(stats.blocked_exact!.bytes);

    const listed = JSON.parse((await vosctl('list', '--json')).stdout) as Array<{ ip: string }>;
    const exact = listed.filter((e) => !e.ip.includes('/')).length;
    expect(exact).toBe(3);
    expect((await query('vos_fastpath_map_entries{map="blocked_ips"}'))[0]!.value).toBe(exact);
    expect((await query('vos_fastpath_map_entries{map="blocked_prefixes"}'))[0]!.value).toBe(1);
    expect((await query('vos_fastpath_blocklist_entries{source="manual"}'))[0]!.value).toBe(4);
    expect((await query(`vos_fastpath_program_attached{iface="${v.host}"}`))[0]!.value).toBe(1);
    expect((await alerts()).filter((a) => a.state === 'firing')).toEqual([]);
  });

  it('the drift alert fires when an entry leaves the map behind the state, and clears after reconcile', async () => {
    const hex = '198.51.100.22'.split('.').map((o) => Number(o).toString(16).padStart(2, '0'));
    await execa('bpftool', ['map', 'delete', 'pinned', `${lab.pinDir}/blocked_ips`, 'key', 'hex', ...hex]);
    const missing = await waitFor('drift{kind="missing"} in Prometheus', () => query('vos_fastpath_enforcement_drift_entries{kind="missing"}'), (s) => s[0]?.value === 1);
    expect(missing[0]!.value).toBe(1);
    await waitFor('the drift alert to fire', alerts, (a) => a.some((x) => x.name === 'VosFastpathEnforcementDrift' && x.state === 'firing'));

    const r = await vosctl('reconcile', '--from', 'state');
    expect(r.exitCode).toBe(0);
    await waitFor('the drift alert to clear', alerts, (a) => !a.some((x) => x.name === 'VosFastpathEnforcementDrift'));
    expect((await query('sum(vos_fastpath_enforcement_drift_entries)'))[0]!.value).toBe(0);
    expect((await query('vos_fastpath_map_entries{map="blocked_ips"}'))[0]!.value).toBe(3);
  });

  it('consume --metrics-listen: message counters and the enforce histogram move as messages are applied, repeated and dead-lettered', async () => {
    const broker = new Broker(lab);
    const queue = broker.name('metrics');
    const port = await freePort();
    const consumer = new ConsumerProcess(lab, env(), ['--queue', queue, '--metrics-listen', `127.0.0.1:${port}`, '--drift-interval', '0']);
    await consumer.start();
    const before = await scrape(port);
    expect(sample(before, 'vos_fastpath_broker_connected')).toBe(1);
    expect(sample(before, 'vos_fastpath_messages_total{outcome="applied"}')).toBe(0);
    expect(sample(before, 'vos_fastpath_enforce_seconds_count')).toBe(0);
    expect(sample(before, 'vos_fastpath_last_apply_timestamp_seconds')).toBe(0);

    await broker.publish(queue, ['{"ip":"198.51.100.31"}', '198.51.100.32', 'not an address', '{"action":"block","ip":"127.0.0.1"}', '["198.51.100.33"]']);
    const after = await waitFor('the counters', () => scrape(port), (t) => (sample(t, 'vos_fastpath_messages_total{outcome="applied"}') ?? 0) + (sample(t, 'vos_fastpath_messages_total{outcome="dead_lettered"}') ?? 0) === 5);
    expect(sample(after, 'vos_fastpath_messages_total{outcome="applied"}')).toBe(3);
    expect(sample(after, 'vos_fastpath_messages_total{outcome="dead_lettered"}')).toBe(2);
    expect(sample(after, 'vos_fastpath_enforce_seconds_count')).toBe(3);
    expect(sample(after, 'vos_fastpath_enforce_seconds_sum')).toBeGreaterThan(0);
    expect(sample(after, 'vos_fastpath_messages_unacked')).toBe(0);
    expect(sample(after, `vos_fastpath_queue_messages_ready{queue="${queue}"}`)).toBe(0);
    expect(sample(after, 'vos_fastpath_last_apply_timestamp_seconds')).toBeGreaterThan(Date.now() / 1000 - 60);
    // The same block again only moves its expiry later: extended. A shorter block of
    // it, and an unblock of an address not blocked, change nothing: duplicates. All
    // acked and timed; applied does not move.
    await sleep(1100); // the resent block's expiry is a second later
    await broker.publish(queue, ['{"ip":"198.51.100.31"}']);
    await waitFor('the extended', () => scrape(port), (t) => sample(t, 'vos_fastpath_messages_total{outcome="extended"}') === 1);
    await broker.publish(queue, ['{"ip":"198.51.100.31","ttl":60}', '{"action":"unblock","ip":"198.51.100.99"}']);
    const again = await waitFor('the duplicates', () => scrape(port), (t) => sample(t, 'vos_fastpath_messages_total{outcome="duplicate"}') === 2);
    expect(sample(again, 'vos_fastpath_messages_total{outcome="applied"}')).toBe(3);
    expect(sample(again, 'vos_fastpath_messages_total{outcome="extended"}')).toBe(1);
    expect(sample(again, 'vos_fastpath_enforce_seconds_count')).toBe(6);
    // The host's metrics too: no second process needed on a consume host. (A fresh
    // scrape: the one above may have counted the map just before the batch landed.)
    expect(sample(await scrape(port), 'vos_fastpath_map_entries{map="blocked_ips"}')).toBe(6);
    const lint = await execa('promtool', ['check', 'metrics'], { input: after, reject: false });
    expect({ code: lint.exitCode, out: lint.stdout + lint.stderr }).toEqual({ code: 0, out: '' });
    expect(await consumer.stop()).toBe(0);
  }, 60_000);

  it('consume --metrics-listen with the broker unreachable: broker_connected is 0 and no queue depth is made up', async () => {
    const port = await freePort();
    const nowhere = await freePort(); // nothing listens there
    const child = lab.spawn(VOSCTL, ['consume', '--queue', `vfp_test_${lab.id}_nowhere`, '--metrics-listen', `127.0.0.1:${port}`, '--drift-interval', '0'], {
      env: { ...env(), VOS_AMQP_URL: `amqp://guest:guest@127.0.0.1:${nowhere}` },
      stdout: 'ignore',
      stderr: 'ignore',
    });
    const text = await waitFor('the consumer metrics', () => scrape(port), (t) => t.includes('vos_fastpath_broker_connected'));
    expect(sample(text, 'vos_fastpath_broker_connected')).toBe(0);
    expect(text).not.toContain('vos_fastpath_queue_messages_ready{');
    child.kill('SIGTERM');
    expect((await child).exitCode).toBe(0);
  });
});
