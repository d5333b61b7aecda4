/**
 * The drift check against real writers: 200,000 blocked addresses in real
 * pinned maps and SQLite state, `vosctl consume --metrics-listen` applying a
 * steady stream of blocks from the shared RabbitMQ while its drift check runs
 * every second. Writes landing during a check are not drift; an entry removed
 * from the map behind the state's back (bpftool) is. Shutdown during a check
 * ends the check's child process and its vfp-maptool.
 */
import { afterAll, beforeAll, expect, it } from '@jest/globals';
import { execa } from 'execa';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Broker, ConsumerProcess, brokerMissing } from '../helpers/broker.js';
import { describeWith, kernelMissing } from '../helpers/env.js';
import { Lab, ROOT } from '../helpers/lab.js';
import { freePort, waitFor } from '../helpers/wait.js';

const VOSCTL = join(ROOT, 'bin/vosctl');
const ENTRIES = 200_000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function scrape(port: number): Promise<string | undefined> {
  try {
    const r = await fetch(`http://127.0.0.1:${port}/metrics`);
    return r.ok ? await r.text() : undefined;
  } catch {
    return undefined; // not listening yet
  }
}

function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(series + ' '));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

const drift = (t: string) => Object.fromEntries(['missing', 'expired_early', 'different', 'unintended'].map((k) => [k, sample(t, `vos_fastpath_enforcement_drift_entries{kind="${k}"}`)]));

/** Pids of a process's children (from /proc). */
function children(pid: number): number[] {
  const out: number[] = [];
  for (const task of readdirSync(`/proc/${pid}/task`)) {
    const text = readFileSync(`/proc/${pid}/task/${task}/children`, 'utf8').trim();
    if (text) out.push(...text.split(/\s+/).map(Number));
  }
  return out;
}

const cmdline = (pid: number) => {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ');
  } catch {
    return '';
  }
};

describeWith('drift check under real writers', kernelMissing() ?? brokerMissing(), () => {
  let lab: Lab;
  const env = () => lab.env({ VOS_STATE_DIR: join(lab.tmp, 'state'), VOS_LOG_FORMAT: 'json' });
  const vosctl = (...args: string[]) => execa(VOSCTL, args, { env: env(), reject: false });

  beforeAll(async () => {
    lab = new Lab();
    await lab.loadUnattached();
    const list = join(lab.tmp, 'feed.txt');
    // 10.0.0.0 onwards: 200,000 addresses, one per line.
    writeFileSync(list, Array.from({ length: ENTRIES }, (_, i) => `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`).join('\n') + '\n');
    const r = await vosctl('load-file', list, '--source', 'feed', '--ttl', '0');
    expect({ code: r.exitCode, err: r.stderr }).toMatchObject({ code: 0 });
  }, 180_000);

  afterAll(() => lab?.cleanup());

  it('blocks arriving during every check are not drift; a bpftool delete behind the state is', async () => {
    const broker = new Broker(lab);
    const queue = broker.name('driftload');
    const port = await freePort();
    const consumer = new ConsumerProcess(lab, { ...env(), VOS_LOG_LEVEL: 'debug' }, ['--queue', queue, '--metrics-listen', `127.0.0.1:${port}`, '--drift-interval', '1', '--ttl', '0']);
    await consumer.start(30_000);
    // A steady stream: one block every 25 ms while the checks run.
    let publishing = true;
    let sent = 0;
    const publisher = (async () => {
      while (publishing) {
        await broker.publish(queue, [`{"ip":"198.18.${(sent >> 8) & 255}.${sent & 255}"}`]);
        sent++;
        await sleep(25);
      }
    })();
    const seen: Array<Record<string, number | undefined>> = [];
    let last = 0;
    while (seen.length < 6) {
      const t = await waitFor('a completed drift check', async () => {
        const text = await scrape(port);
        const at = text ? sample(text, 'vos_fastpath_drift_check_timestamp_seconds') : undefined;
        return at && at > last ? text : undefined;
      }, 30_000);
      last = sample(t, 'vos_fastpath_drift_check_timestamp_seconds')!;
      seen.push(drift(t));
    }
    publishing = false;
    await publisher;
    expect(sent).toBeGreaterThan(50);
    expect(seen).toEqual(Array(6).fill({ missing: 0, expired_early: 0, different: 0, unintended: 0 }));
    expect(consumer.logs.filter((l) => l.message === 'enforcement drift: maps and state disagree')).toEqual([]);

    // Real drift: an entry removed from the map, the state untouched.
    await execa('bpftool', ['map', 'delete', 'pinned', `${lab.pinDir}/blocked_ips`, 'key', 'hex', '0a', '00', '01', '02']);
    const after = await waitFor('drift{kind="missing"} 1', async () => {
      const text = await scrape(port);
      return text && sample(text, 'vos_fastpath_enforcement_drift_entries{kind="missing"}') === 1 ? text : undefined;
    }, 30_000);
    expect(drift(after)).toEqual({ missing: 1, expired_early: 0, different: 0, unintended: 0 });
    expect(await consumer.stop()).toBe(0);
    expect((await vosctl('reconcile', '--from', 'state')).exitCode).toBe(0);
  }, 120_000);

  it('SIGTERM during a drift check: the exporter ends it (and its vfp-maptool) and exits', async () => {
    const port = await freePort();
    const exporter = lab.spawn(VOSCTL, ['exporter', '--listen', `127.0.0.1:${port}`, '--drift-interval', '1'], { env: env(), stdout: 'ignore', stderr: 'ignore' });
    // Catch a check running: a `drift-check` child with its own vfp-maptool.
    const caught = await waitFor('a drift check running', async () => {
      const check = children(exporter.pid!).find((p) => cmdline(p).includes('drift-check'));
      const helpers = check ? children(check) : [];
      return check && helpers.length ? { check, helpers } : undefined;
    }, 30_000);
    exporter.kill('SIGTERM');
    const r = await exporter;
    expect(r.exitCode).toBe(0);
    for (const pid of [caught.check, ...caught.helpers]) await waitFor(`process ${pid} to end`, async () => !existsSync(`/proc/${pid}`) || cmdline(pid) === '', 10_000);
  }, 60_000);
});
