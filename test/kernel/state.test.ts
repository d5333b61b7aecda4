/**
 * The state on SQLite under the faults an operator meets: a nearly full disk,
 * killed writers, parallel writers, a damaged file, the old format, the
 * scripts as a second writer. What is checked is what an operator checks:
 * every change whose command exited 0 is there after a simulated reboot (pin
 * folder removed, maps created anew, state restored by `vosctl attach`).
 */
import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { execa } from 'execa';
import { chmodSync, closeSync, utimesSync, existsSync, ftruncateSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { Broker, brokerMissing, ConsumerProcess } from '../helpers/broker.js';
import { describeKernel } from '../helpers/env.js';
import { Lab, ROOT, type Veth } from '../helpers/lab.js';
import type { ListedEntry as Listed } from '../../lib/blocklist.js';

const VOSCTL = join(ROOT, 'bin/vosctl');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** n distinct addresses in 11.0.0.0/8, from `from` on. */
const addrs = (n: number, from = 0) =>
  Array.from({ length: n }, (_, i) => {
    const a = 11 * 2 ** 24 + 1 + from + i;
    return `${a >>> 24}.${(a >>> 16) & 255}.${(a >>> 8) & 255}.${a & 255}`;
  });

/** Fill the file system of `file` with it, then give back `freeKiB`: a nearly full disk. */
function fillDisk(file: string, freeKiB: number): void {
  const fd = openSync(file, 'w');
  let size = 0;
  try {
    for (;;) size += writeSync(fd, Buffer.alloc(64 * 1024));
  } catch {
    /* full */
  }
  ftruncateSync(fd, Math.max(0, size - freeKiB * 1024));
  closeSync(fd);
}

// Million-line loads and reboots on a shared 2-core machine: room beyond the default minute.
jest.setTimeout(180_000);

describeKernel('state on SQLite: faults, and what survives a reboot', () => {
  let lab: Lab;
  let v: Veth;
  let nodes = 0;

  /** A host: its own pin folder and state folder, attached to the lab's veth while in use. */
  class Host {
    readonly pinDir = `${lab.pinDir}_s${++nodes}`;
    readonly stateDir: string;
    constructor(stateDir?: string) {
      this.stateDir = stateDir ?? join(lab.tmp, `state${nodes}`);
      lab.defer(`pins ${this.pinDir}`, async () => rmSync(this.pinDir, { recursive: true, force: true }));
    }
    env(extra: Record<string, string> = {}) {
      return { VOS_PIN_DIR: this.pinDir, VOS_STATE_DIR: this.stateDir, VOS_LOG_FORMAT: 'json', ...extra };
    }
    async vosctl(...args: string[]) {
      const r = await execa(VOSCTL, args, { env: this.env(), reject: false });
      return { code: r.exitCode, out: r.stdout, err: r.stderr };
    }
    spawn(cmd: string, args: string[]) {
      return lab.spawn(cmd, args, { env: this.env() });
    }
    async script(name: string, args: string[], input?: string) {
      const r = await execa(join(ROOT, 'scripts', name), args, { env: this.env(), reject: false, input });
      return { code: r.exitCode, out: r.stdout, err: r.stderr };
    }
    async ips(...args: string[]): Promise<string[]> {
      const r = await this.vosctl('list', '--json', ...args);
      if (r.code !== 0) throw new Error(`list: ${r.err}`);
      return (JSON.parse(r.out) as Listed[]).map((e) => e.ip);
    }
    async matches(): Promise<boolean> {
      return (JSON.parse((await this.vosctl('status', '--json')).out) as { state_matches_maps: boolean }).state_matches_maps;
    }
    /** Power cycle: the program detached, bpffs emptied, then attach as at boot. */
    async reboot(...attachArgs: string[]) {
      await this.detach();
      rmSync(this.pinDir, { recursive: true, force: true });
      return this.vosctl('attach', v.host, ...attachArgs);
    }
    async detach() {
      await execa(join(ROOT, 'scripts/unload.sh'), [v.host], { env: this.env(), reject: false });
    }
  }

  /** A host whose state folder is on a 3 MiB tmpfs, attached, with freeKiB left free. */
  async function nearlyFull(freeKiB: number): Promise<{ h: Host; disk: string; filler: string }> {
    const disk = join(lab.tmp, `disk${++nodes}`);
    mkdirSync(disk);
    await execa('mount', ['-t', 'tmpfs', '-o', 'size=3m', 'tmpfs', disk]);
    lab.defer(`tmpfs ${disk}`, () => execa('umount', ['-l', disk]));
    const h = new Host(join(disk, 'state'));
    expect(await h.vosctl('attach', v.host)).toMatchObject({ code: 0 });
    const filler = join(disk, 'filler');
    fillDisk(filler, freeKiB);
    return { h, disk, filler };
  }

  beforeAll(async () => {
    lab = new Lab();
    v = await lab.veth();
  });
  afterAll(() => lab.cleanup());

  it('on a nearly full disk every block that exited 0 survives a reboot; the rest fail naming the database', async () => {
    const { h, disk, filler } = await nearlyFull(150);
    const ok: string[] = [];
    const failed: string[] = [];
    for (const ip of addrs(40, 1000)) {
      const r = await h.vosctl('block', ip, '--reason', 'x'.repeat(3000));
      if (r.code === 0) ok.push(ip);
      else {
        failed.push(ip);
        expect(r.err).toContain(join(disk, 'state', 'state.sqlite3'));
        expect(r.err).toMatch(/database or disk is full|SQLITE_FULL/);
        expect(r.out).toBe(''); // nothing reported as blocked
      }
    }
    expect(ok.length).toBeGreaterThan(0);
    expect(failed.length).toBeGreaterThan(0);
    const list = join(lab.tmp, 'full.txt');
    writeFileSync(list, addrs(20_000, 5000).join('\n'));
    const bulk = await h.vosctl('load-file', list, '--source', 'feed');
    expect(bulk.code).toBe(1);
    expect(bulk.err).toContain(join(disk, 'state', 'state.sqlite3'));
    expect(bulk.out).toBe('');
    rmSync(filler);
    expect(await h.reboot()).toMatchObject({ code: 0 });
    const after = new Set(await h.ips());
    expect(ok.filter((ip) => !after.has(ip))).toEqual([]);
    await h.detach();
  });

  it('after a reboot on a full disk or a read-only state folder, attach, list and status still read the state', async () => {
    const { h, disk } = await nearlyFull(4000);
    const mine = addrs(3, 7000);
    expect(await h.vosctl('block', ...mine)).toMatchObject({ code: 0 });
    const filler2 = join(disk, 'filler2');
    fillDisk(filler2, 8);
    let r = await h.reboot();
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/restored 3 entries/);
    expect(r.err).toMatch(/is full .*reading a copy/);
    expect((await h.ips()).sort()).toEqual([...mine].sort());
    expect(await h.matches()).toBe(true);
    // A write says why it cannot be persisted, and changes nothing.
    r = await h.vosctl('block', addrs(1, 7100)[0]!);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/is full/);
    expect(r.err).not.toMatch(/needs root/);
    // Room again, one clean close (no -wal, no -shm left), then the folder read-only: SQLite alone cannot read it.
    rmSync(filler2);
    expect(await h.vosctl('gc')).toMatchObject({ code: 0 });
    expect(readdirSync(h.stateDir).filter((f) => f.startsWith('state.sqlite3'))).toEqual(['state.sqlite3']);
    await execa('mount', ['-o', 'remount,ro', disk]);
    r = await h.reboot();
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/restored 3 entries/);
    expect(r.err).toMatch(/read-only/);
    expect(r.err).not.toMatch(/needs root/);
    expect((await h.ips()).sort()).toEqual([...mine].sort());
    await h.detach();
  });

  it('consume on a nearly full disk acks only what it persisted', async () => {
    if (brokerMissing()) {
      if (process.env.CI === 'true') throw new Error(brokerMissing()!);
      return; // a laptop without RabbitMQ: the CLI faults above still ran
    }
    const { h, disk, filler } = await nearlyFull(60);
    const broker = new Broker(lab);
    const q = broker.name('nearlyfull');
    const c = new ConsumerProcess(lab, h.env(), ['--queue', q, '--batch-size', '5', '--batch-wait', '1', '--prefetch', '20']);
    await c.start();
    const ips = addrs(400, 9000);
    await broker.publish(q, ips.map((ip, i) => JSON.stringify({ action: 'block', ip, reason: `${i}`.padEnd(190, 'y') })));
    const paused = await c.waitForLog((l) => l.message === 'paused: map update failed', 30_000).catch((err: Error) => {
      throw new Error(`${err.message}\n${JSON.stringify(c.logs.filter((l) => l.message !== 'blocked').slice(-8))}`);
    });
    expect(String(paused.error)).toContain(join(disk, 'state', 'state.sqlite3'));
    await c.kill9();
    await broker.close();
    // The broker requeues what was not acked; acks are cumulative, so the acked ones are the first.
    const { ready, unacked } = await broker.depth(q);
    const acked = ips.length - ready - unacked;
    expect(acked).toBeLessThan(ips.length);
    rmSync(filler);
    expect(await h.reboot()).toMatchObject({ code: 0 });
    const after = new Set(await h.ips());
    expect(ips.slice(0, acked).filter((ip) => !after.has(ip))).toEqual([]);
    await h.detach();
  });

  it('a writer killed at any instant leaves a working state; status and one reconcile make them agree; exit-0 changes survive', async () => {
    const h = new Host();
    expect(await h.vosctl('attach', v.host, '--block-capacity', '600000')).toMatchObject({ code: 0 });
    expect(await h.vosctl('block', '198.51.100.1')).toMatchObject({ code: 0 });
    const list = join(lab.tmp, 'big.txt');
    writeFileSync(list, addrs(300_000).join('\n'));
    for (const afterMs of [300, 900, 1600]) {
      const p = h.spawn(VOSCTL, ['load-file', list, '--source', `feed${afterMs}`]);
      await sleep(afterMs);
      p.kill('SIGKILL');
      await p;
      expect(await h.vosctl('block', `198.51.100.${afterMs % 250}`)).toMatchObject({ code: 0 });
    }
    const s = h.spawn(join(ROOT, 'scripts/block_ips_from_file.sh'), ['-', '--source', 'scriptfeed']);
    s.stdin?.end(addrs(50_000, 400_000).join('\n'));
    await sleep(700);
    s.kill('SIGKILL');
    await s;
    await h.vosctl('status');
    expect(await h.vosctl('reconcile')).toMatchObject({ code: 0 });
    expect(await h.matches()).toBe(true);
    expect(await h.reboot()).toMatchObject({ code: 0 });
    expect(await h.ips('--source', 'manual')).toEqual(['198.51.100.1', '198.51.100.150', '198.51.100.50', '198.51.100.100'].sort((a, b) => a.localeCompare(b, 'en', { numeric: true })));
    await h.detach();
  });

  it('parallel writers and a --replace all exit 0, and the result is exactly their union', async () => {
    const h = new Host();
    expect(await h.vosctl('attach', v.host)).toMatchObject({ code: 0 });
    const old = addrs(20_000);
    const next = [...old.slice(2_000), ...addrs(2_000, 20_000)];
    writeFileSync(join(lab.tmp, 'old.txt'), old.join('\n'));
    writeFileSync(join(lab.tmp, 'next.txt'), next.join('\n'));
    expect(await h.vosctl('load-file', join(lab.tmp, 'old.txt'), '--source', 'feed')).toMatchObject({ code: 0 });
    const loops = Array.from({ length: 5 }, async (_, l) => {
      const codes: Array<number | undefined> = [];
      for (let i = 0; i < 6; i++) codes.push((await h.vosctl('block', `198.51.${100 + l}.${i + 1}`)).code);
      return codes;
    });
    const script = h.script('block_ip.sh', ['203.0.113.77', '--source', 'script']);
    const replace = h.vosctl('load-file', join(lab.tmp, 'next.txt'), '--source', 'feed', '--replace');
    const [codes, r, sc] = await Promise.all([Promise.all(loops), replace, script]);
    expect(codes.flat()).toEqual(Array(30).fill(0));
    expect(r).toMatchObject({ code: 0 });
    expect(sc).toMatchObject({ code: 0 });
    expect(await h.matches()).toBe(true);
    expect(await h.reboot()).toMatchObject({ code: 0 });
    expect((await h.ips('--source', 'manual')).length).toBe(30);
    expect(await h.ips('--source', 'script')).toEqual(['203.0.113.77']);
    const feed = new Set(await h.ips('--source', 'feed'));
    expect(feed.size).toBe(next.length);
    expect(next.every((ip) => feed.has(ip))).toBe(true);
    await h.detach();
  });

  it('a damaged database is named with SQLite\'s words; attach still attaches and says nothing was restored; reconcile --from map rebuilds it', async () => {
    const h = new Host();
    expect(await h.vosctl('attach', v.host)).toMatchObject({ code: 0 });
    expect(await h.vosctl('block', '198.51.100.7', '198.51.100.8')).toMatchObject({ code: 0 });
    const db = join(h.stateDir, 'state.sqlite3');
    const fd = openSync(db, 'r+');
    writeSync(fd, Buffer.from('garbage'.repeat(20)), 0, 100, 0);
    closeSync(fd);
    const listed = await h.vosctl('list');
    expect(listed.code).toBe(1);
    expect(listed.err).toContain(db);
    expect(listed.err).toContain('file is not a database');
    expect(listed.err).toContain('reconcile --from map');
    // After a reboot: enforcement comes back, the operator is told why the blocklist is empty.
    await h.detach();
    rmSync(h.pinDir, { recursive: true, force: true });
    const att = await h.vosctl('attach', v.host);
    expect(att.code).toBe(1);
    expect(att.err).toMatch(/the program is attached to .* but the blocklist was NOT restored/);
    expect(att.err).toContain(db);
    const links = JSON.parse((await execa('ip', ['-j', 'link', 'show', v.host])).stdout) as Array<{ xdp?: unknown }>;
    expect(links[0]!.xdp).toBeDefined();
    // The scripts refuse too, naming the file; reconcile --from map rebuilds the state from the maps.
    expect(await h.script('block_ip.sh', ['198.51.100.9'])).toMatchObject({ code: 1 });
    const rec = await h.vosctl('reconcile', '--from', 'map');
    expect(rec.code).toBe(0);
    expect(rec.out).toMatch(/set aside as .*state\.sqlite3\.damaged-/);
    expect(readdirSync(h.stateDir).some((f) => f.startsWith('state.sqlite3.damaged-'))).toBe(true);
    expect(await h.vosctl('block', '198.51.100.10')).toMatchObject({ code: 0 });
    expect(await h.matches()).toBe(true);
    expect(await h.reboot()).toMatchObject({ code: 0 });
    expect(await h.ips()).toEqual(['198.51.100.10']);
    await h.detach();
  });

  it('recovery keeps the persisted truth: status advises --from state, a plain reconcile refuses to empty the state, a damaged file is salvaged', async () => {
    const h = new Host();
    expect(await h.vosctl('attach', v.host)).toMatchObject({ code: 0 });
    const feed = addrs(20_000, 30_000);
    writeFileSync(join(lab.tmp, 'salvage.txt'), feed.join('\n'));
    expect(await h.vosctl('load-file', join(lab.tmp, 'salvage.txt'), '--source', 'feed')).toMatchObject({ code: 0 });
    expect(await h.vosctl('gc')).toMatchObject({ code: 0 }); // checkpointed: the rows are in the main file
    // Maps recreated empty (a boot without the restore): the state is the truth.
    await h.detach();
    rmSync(h.pinDir, { recursive: true, force: true });
    expect(await h.script('load.sh', [v.host])).toMatchObject({ code: 0 });
    const st = await h.vosctl('status');
    expect(st.out).toMatch(/20000 only in the state.*reconcile --from state/);
    const plain = await h.vosctl('reconcile');
    expect(plain.code).not.toBe(0);
    expect(plain.err).toMatch(/would delete 20000 entries .*--from state/);
    const rows = async () => Number((await execa('sqlite3', ['-readonly', join(h.stateDir, 'state.sqlite3'), 'SELECT count(*) FROM entries'])).stdout);
    expect(await rows()).toBe(20_000);
    expect(await h.vosctl('reconcile', '--from', 'state')).toMatchObject({ code: 0 });
    expect(await h.matches()).toBe(true);
    // Damage in the middle of the file, then a reboot: the maps come back empty, the rows still readable are salvaged.
    const db = join(h.stateDir, 'state.sqlite3');
    const size = statSync(db).size;
    const fd = openSync(db, 'r+');
    writeSync(fd, Buffer.alloc(8192, 0xa5), 0, 8192, Math.floor(size / 2 / 4096) * 4096);
    closeSync(fd);
    const st2 = await h.vosctl('status');
    expect(st2.code).toBe(1);
    expect(st2.err).toMatch(/state\.sqlite3 is (damaged \(PRAGMA quick_check|unreadable while checking it).*salvages the rows/);
    const att = await h.reboot();
    expect(att.code).toBe(1);
    expect(att.err).toMatch(/salvages the rows/);
    const rec = await h.vosctl('reconcile');
    expect(rec.code).toBe(0);
    const m = rec.out.match(/(\d+) entries salvaged/);
    expect(Number(m?.[1])).toBeGreaterThan(15_000);
    expect(await h.matches()).toBe(true);
    expect(await h.reboot()).toMatchObject({ code: 0 });
    expect((await h.ips()).length).toBe(Number(m?.[1]));
    await h.detach();
  });

  it('rows edited into something invalid are skipped and named (rowid, column, value, why); everything else is restored and used; the command exits 1', async () => {
    const h = new Host();
    expect(await h.vosctl('attach', v.host)).toMatchObject({ code: 0 });
    const good = addrs(50, 40_000);
    writeFileSync(join(lab.tmp, 'rows.txt'), good.join('\n'));
    expect(await h.vosctl('load-file', join(lab.tmp, 'rows.txt'), '--source', 'feed')).toMatchObject({ code: 0 });
    expect(await h.vosctl('block', '192.0.2.3', '192.0.2.4', '192.0.2.5', '192.0.2.6')).toMatchObject({ code: 0 });
    const db = join(h.stateDir, 'state.sqlite3');
    const sql = async (q: string) => (await execa('sqlite3', [db, q])).stdout;
    await sql("UPDATE entries SET source = 'bad name' WHERE target = '192.0.2.3'");
    await sql("UPDATE entries SET expires = 99999999999999 WHERE target = '192.0.2.4'");
    await sql("UPDATE entries SET target = 'zzz' WHERE target = '192.0.2.5'");
    await sql("UPDATE entries SET source = 'feu' || char(65533, 65533) WHERE target = '192.0.2.6'");
    const rowid = async (where: string) => Number(await sql(`SELECT rowid FROM entries WHERE ${where}`));
    const zzz = await rowid("target = 'zzz'");
    // After a reboot: attached, every sound row restored, each bad one named, exit 1 with the way out.
    const att = await h.reboot();
    expect(att.code).toBe(1);
    expect(att.err).toMatch(/row \d+ of .*state\.sqlite3 skipped: source = "bad name": not a source name.*vosctl unblock 192\.0\.2\.3/);
    expect(att.err).toMatch(/skipped: expires = 99999999999999: more than the 10-year TTL limit/);
    expect(att.err).toContain(`row ${zzz} of ${db} skipped: target = "zzz": not a dotted-quad IPv4 address or prefix`);
    expect(att.err).toContain(`DELETE FROM entries WHERE rowid = ${zzz}`);
    expect(att.err).toMatch(/4 rows of the state database .* were skipped/);
    expect(att.err).not.toMatch(/RangeError|NOT restored/);
    const links = JSON.parse((await execa('ip', ['-j', 'link', 'show', v.host])).stdout) as Array<{ xdp?: unknown }>;
    expect(links[0]!.xdp).toBeDefined();
    const listed = await h.vosctl('list', '--json');
    expect(listed.code).toBe(1);
    const ips = (JSON.parse(listed.out) as Listed[]).map((e) => e.ip);
    expect(ips.sort()).toEqual([...good].sort());
    // The non-address target blocks no unrelated host (it was once restored as 0.0.32.22).
    expect(ips).not.toContain('0.0.32.22');
    // status does not advise writing the bad rows back; a reconcile --from state writes none of them.
    const st = await h.vosctl('status');
    expect(st.code).toBe(1);
    expect(st.out).not.toMatch(/only in the state/);
    expect(await h.vosctl('reconcile', '--from', 'state')).toMatchObject({ code: 1 });
    const after = (JSON.parse((await h.vosctl('list', '--json')).out) as Listed[]).map((e) => e.ip);
    expect(after.sort()).toEqual([...good].sort());
    // The ways out named in the message: unblock by target, DELETE by rowid.
    expect(await h.vosctl('unblock', '192.0.2.3', '192.0.2.4', '192.0.2.6')).toMatchObject({ code: 1 }); // still exit 1: 'zzz' remains
    await sql(`DELETE FROM entries WHERE rowid = ${zzz}`);
    expect(await h.vosctl('status')).toMatchObject({ code: 0 });
    expect(Number(await sql('SELECT count(*) FROM entries'))).toBe(50);
    await h.detach();
  });

  it('salvage (reconcile --from map of a damaged file) returns only valid rows and names the rest', async () => {
    const dir = join(lab.tmp, 'salvage-rows');
    mkdirSync(dir, { recursive: true });
    const db = join(dir, 'aside.sqlite3');
    await execa('sqlite3', [db], { input: readFileSync(join(ROOT, 'scripts/state.sql'), 'utf8') });
    await execa('sqlite3', [db, "INSERT INTO entries (target, source, reason, added, expires) VALUES ('198.51.100.20', 'feed', NULL, 1800000000, 0), ('198.51.100.21', 'feu' || char(65533, 65533), NULL, 1800000000, 0), ('zzz', 'feed', NULL, 1800000000, 0)"]);
    const { salvage } = await import('../../lib/state.js');
    const got = salvage(db);
    expect(got.entries.map((e) => e.ip)).toEqual(['198.51.100.20']);
    expect(got.invalid.map((p) => [p.rowid, p.column])).toEqual([
      [2, 'source'],
      [3, 'target'],
    ]);
  });

  it('migrates a state folder of the old format on first use, and attach restores it sized for what it holds', async () => {
    const h = new Host();
    mkdirSync(h.stateDir, { recursive: true });
    const feed = addrs(300_000);
    const line = (ip: string) => `["${ip}","feed",null,1800000000,0]`;
    writeFileSync(join(h.stateDir, 'blocklist.jsonl'), feed.map(line).join('\n') + '\n');
    writeFileSync(join(h.stateDir, 'journal.jsonl'), ['{"op":"put","e":["198.51.100.3","manual","by hand",1800000000,0]}', 'null', '{"op":"put","e":["198.51.1'].join('\n'));
    // No --block-capacity: the default (262,144) would not hold them.
    const att = await h.vosctl('attach', v.host);
    expect(att).toMatchObject({ code: 0 });
    expect(att.out).toContain('restored 300001 entries');
    expect(att.err).toMatch(/migrated 300001 entries.*journal\.jsonl:2/);
    expect(readdirSync(join(h.stateDir, 'pre-sqlite')).sort()).toEqual(['blocklist.jsonl', 'journal.jsonl']);
    const status = JSON.parse((await h.vosctl('status', '--json')).out) as { maps: Array<{ name: string; entries: number }>; state_matches_maps: boolean };
    expect(status.maps.find((m) => m.name === 'blocked_ips')!.entries).toBe(300_001);
    expect(status.state_matches_maps).toBe(true);
    await h.detach();
  });

  it('commands started together on a folder of the old format: one migrates, all apply their blocks, nothing is lost', async () => {
    const h = new Host();
    mkdirSync(h.stateDir, { recursive: true });
    const feed = addrs(50_000, 60_000);
    writeFileSync(join(h.stateDir, 'blocklist.jsonl'), feed.map((ip) => `["${ip}","feed",null,1800000000,0]`).join('\n') + '\n');
    writeFileSync(join(h.stateDir, 'journal.jsonl'), '{"op":"put","e":["198.51.100.3","manual","by hand",1800000000,0]}\n');
    expect(await h.script('load.sh', [v.host])).toMatchObject({ code: 0 });
    const mine = ['203.0.113.31', '203.0.113.32', '203.0.113.33'];
    const runs = await Promise.all(mine.map((ip) => h.vosctl('block', ip)));
    expect(runs.map((r) => [r.code, r.err])).toEqual(mine.map(() => [0, expect.not.stringMatching(/ENOENT|error/i)]));
    const db = join(h.stateDir, 'state.sqlite3');
    const count = async (where: string) => Number((await execa('sqlite3', ['-readonly', db, `SELECT count(*) FROM entries WHERE ${where}`])).stdout);
    expect(await count("source = 'feed'")).toBe(50_000);
    expect(await count(`target IN ('198.51.100.3', '${mine.join("', '")}')`)).toBe(4);
    expect(readdirSync(h.stateDir).filter((f) => f.includes('migrating'))).toEqual([]);
    expect(readdirSync(join(h.stateDir, 'pre-sqlite')).sort()).toEqual(['blocklist.jsonl', 'journal.jsonl']);
    await h.detach();
  });

  it("a newer vos-fastpath's database or another program's file is refused by name, by vosctl and the scripts, and left untouched", async () => {
    const cases: Array<[string, RegExp]> = [
      ['CREATE TABLE moz_places (url TEXT);', /is not a vos-fastpath database \(tables: moz_places\)/],
      ['CREATE TABLE entries (ip TEXT, why TEXT);', /is not a vos-fastpath database/],
      // A lookalike: the state's columns but no generated ones, no unique index, no header marks.
      ['CREATE TABLE entries (target TEXT, source TEXT, reason TEXT, added INT, expires INT);', /is not a vos-fastpath database.*lacks table sources; .*column entries\.prefixlen; a unique index on entries \(target\); a vos-fastpath header/],
      [`${readFileSync(join(ROOT, 'scripts/state.sql'), 'utf8')}\nALTER TABLE entries RENAME COLUMN reason TO why; PRAGMA user_version = 7;`, /written by a newer vos-fastpath \(schema 7 > 1\)/],
      // Our very tables, but another program's id in the header (an operator pointed VOS_STATE_DIR at its folder).
      [`${readFileSync(join(ROOT, 'scripts/state.sql'), 'utf8')}\nPRAGMA application_id = 1179534157;`, /state\.sqlite3 is not a vos-fastpath database: its SQLite application_id is 1179534157 \(0x464e434d\), vos-fastpath's is 1448039238/],
    ];
    for (const [sql, says] of cases) {
      const h = new Host();
      mkdirSync(h.stateDir, { recursive: true });
      const db = join(h.stateDir, 'state.sqlite3');
      await execa('sqlite3', [db], { input: sql });
      const schema = async () => (await execa('sqlite3', ['-readonly', db, '.schema'])).stdout;
      const before = await schema();
      const att = await h.vosctl('attach', v.host);
      expect(att.code).toBe(1);
      expect(att.err).toMatch(says);
      expect(att.err).not.toMatch(/unexpected|    at /);
      const sc = await h.script('block_ip.sh', ['198.51.100.44']);
      expect(sc.code).toBe(1);
      expect(sc.err).toMatch(says);
      expect(await schema()).toBe(before);
      await h.detach();
    }
  });

  it('a lookalike database (the state\'s columns, no header marks) is refused naming what it lacks; reconcile --from map sets it aside and rebuilds', async () => {
    const h = new Host();
    expect(await h.vosctl('attach', v.host)).toMatchObject({ code: 0 });
    expect(await h.vosctl('block', '198.51.100.60', '198.51.100.61')).toMatchObject({ code: 0 });
    const db = join(h.stateDir, 'state.sqlite3');
    for (const f of readdirSync(h.stateDir)) if (f.startsWith('state.sqlite3')) rmSync(join(h.stateDir, f));
    await execa('sqlite3', [db, "CREATE TABLE entries (target TEXT, source TEXT, reason TEXT, added INT, expires INT); INSERT INTO entries VALUES ('198.51.100.99', 'x', NULL, 1, 0)"]);
    for (const r of [await h.vosctl('block', '198.51.100.62'), await h.vosctl('list'), await h.vosctl('status')]) {
      expect(r.code).toBe(1);
      expect(r.err).toContain(`${db} is not a vos-fastpath database`);
      expect(r.err).toContain('column entries.prefixlen');
      expect(r.err).toContain('reconcile --from map');
      expect(r.err).not.toMatch(/ON CONFLICT clause|no such column/);
    }
    const sc = await h.script('block_ip.sh', ['198.51.100.63']);
    expect(sc.code).toBe(1);
    expect(sc.err).toMatch(/is not a vos-fastpath database: it lacks .*column entries\.prefixlen.*reconcile --from map/);
    const rec = await h.vosctl('reconcile', '--from', 'map');
    expect(rec.code).toBe(0);
    expect(rec.out).toMatch(/not a vos-fastpath state database: set aside as .*state\.sqlite3\.not-ours-/);
    expect(readdirSync(h.stateDir).some((f) => f.startsWith('state.sqlite3.not-ours-'))).toBe(true);
    expect(await h.reboot()).toMatchObject({ code: 0 });
    // The refused script changed nothing (it checks the state before the map).
    expect((await h.ips()).sort()).toEqual(['198.51.100.60', '198.51.100.61']);
    await h.detach();
  });

  it("the state database carries vos-fastpath's application_id: set on create, stamped on an older file by vosctl and by the scripts; file(1) shows it", async () => {
    const appId = async (db: string) => Number((await execa('sqlite3', ['-readonly', db, 'PRAGMA application_id'])).stdout);
    const fresh = new Host();
    expect(await fresh.vosctl('attach', v.host)).toMatchObject({ code: 0 });
    const db = join(fresh.stateDir, 'state.sqlite3');
    expect(await appId(db)).toBe(1448039238);
    expect((await execa('file', [db])).stdout).toContain('application id 1448039238');
    await fresh.detach();
    // Files made before the id: one stamped by vosctl, one by a script; nothing else changes.
    for (const writer of ['vosctl', 'script'] as const) {
      const h = new Host();
      mkdirSync(h.stateDir, { recursive: true });
      const old = join(h.stateDir, 'state.sqlite3');
      await execa('sqlite3', [old], { input: `${readFileSync(join(ROOT, 'scripts/state.sql'), 'utf8')}\nPRAGMA application_id = 0;\nINSERT INTO entries (target, source, reason, added, expires) VALUES ('198.51.100.82', 'manual', 'kept', 1800000000, 0);` });
      expect(await appId(old)).toBe(0);
      expect(await h.script('load.sh', [v.host])).toMatchObject({ code: 0 });
      const r = writer === 'vosctl' ? await h.vosctl('block', '198.51.100.83') : await h.script('block_ip.sh', ['198.51.100.83']);
      expect(r).toMatchObject({ code: 0 });
      expect(await appId(old)).toBe(1448039238);
      expect((await execa('sqlite3', ['-readonly', old, "SELECT group_concat(target || ' ' || ifnull(reason, '-'), ', ') FROM (SELECT * FROM entries ORDER BY target)"])).stdout).toBe('198.51.100.82 kept, 198.51.100.83 -');
      await h.detach();
    }
  });

  it('damage in pages a block never reads: gc finds it (quick_check), every command then exits 1 naming it after doing its work, reconcile --from map rebuilds', async () => {
    const h = new Host();
    expect(await h.vosctl('attach', v.host)).toMatchObject({ code: 0 });
    writeFileSync(join(lab.tmp, 'unread.txt'), addrs(30_000, 200_000).join('\n'));
    expect(await h.vosctl('load-file', join(lab.tmp, 'unread.txt'), '--source', 'feed')).toMatchObject({ code: 0 });
    expect(await h.vosctl('gc')).toMatchObject({ code: 0 }); // sound: checked, and checkpointed into the main file
    const db = join(h.stateDir, 'state.sqlite3');
    // A leaf in the middle of the source index: a block of another address (rightmost in every b-tree) never reads it.
    const sql = async (q: string) => (await execa('sqlite3', ['-readonly', db, q])).stdout;
    const pageSize = Number(await sql('PRAGMA page_size'));
    const leaves = (await sql("SELECT pageno FROM dbstat WHERE name = 'entries_by_source' AND pagetype = 'leaf' ORDER BY path")).split('\n').map(Number);
    expect(leaves.length).toBeGreaterThan(4);
    const page = leaves[Math.floor(leaves.length / 2)]!;
    const fd = openSync(db, 'r+');
    writeSync(fd, Buffer.alloc(64, 0xa5), 0, 64, (page - 1) * pageSize + 8);
    closeSync(fd);
    // The write path never reads that page: the block works, and cannot know.
    expect(await h.vosctl('block', '203.0.113.90')).toMatchObject({ code: 0 });
    const gc = await h.vosctl('gc');
    expect(gc.code).toBe(1);
    expect(gc.err).toContain(`the state database ${db} is damaged (PRAGMA quick_check:`);
    expect(gc.err).toContain('vosctl reconcile --from map');
    // From now on every command says so and exits 1, once what it was asked to do is done.
    const after = await h.vosctl('block', '203.0.113.91');
    expect(after.code).toBe(1);
    expect(after.out).toContain('203.0.113.91');
    expect(after.err).toMatch(new RegExp(`the state database ${db.replace(/[.]/g, '\\.')} was found damaged at .*quick_check.*what this command did was done.*reconcile --from map`));
    expect(after.err).not.toMatch(/unexpected|    at /);
    expect((await h.vosctl('list', '--json')).code).toBe(1);
    // The scripts honour the same record: the work is done, then exit 1 naming the file, SQLite's words and the recovery.
    for (const [script, args] of [['block_ip.sh', ['203.0.113.93']], ['unblock_ip.sh', ['203.0.113.93']]] as const) {
      const sc = await h.script(script, [...args]);
      expect(sc.code).toBe(1);
      expect(sc.out).toContain('203.0.113.93');
      expect(sc.err).toMatch(new RegExp(`${script}: the state database ${db.replace(/[.]/g, '\\.')} was found damaged at .*quick_check.*what this command did was done.*reconcile --from map`));
    }
    const rec = await h.vosctl('reconcile', '--from', 'map');
    expect(rec.code).toBe(0);
    expect(rec.out).toMatch(/set aside as .*state\.sqlite3\.damaged-.*entries salvaged/);
    expect(readdirSync(h.stateDir).filter((f) => f.endsWith('.damage-found'))).toEqual([]);
    expect(await h.vosctl('block', '203.0.113.92')).toMatchObject({ code: 0 });
    expect(await h.vosctl('gc')).toMatchObject({ code: 0 });
    const kept = new Set(await h.ips());
    expect(['203.0.113.90', '203.0.113.91', '203.0.113.92', ...addrs(30_000, 200_000)].filter((ip) => !kept.has(ip))).toEqual([]);
    await h.detach();
  });

  it('a migration killed mid-way leaves its temporary database; the next command removes it (and any whose pid was reused) and says so', async () => {
    const h = new Host();
    mkdirSync(h.stateDir, { recursive: true });
    const feed = addrs(400_000, 300_000);
    writeFileSync(join(h.stateDir, 'blocklist.jsonl'), feed.map((ip) => `["${ip}","feed",null,1800000000,0]`).join('\n') + '\n');
    expect(await h.script('load.sh', [v.host])).toMatchObject({ code: 0 });
    const migrating = () => readdirSync(h.stateDir).filter((f) => f.includes('.migrating-'));
    const killed = h.spawn(VOSCTL, ['block', '203.0.113.95']);
    while (!migrating().length) await sleep(10);
    process.kill(killed.pid!, 'SIGKILL');
    await killed.catch(() => undefined);
    const left = migrating();
    expect(left).toContain(`state.sqlite3.migrating-${killed.pid}`);
    expect(existsSync(join(h.stateDir, 'state.sqlite3'))).toBe(false);
    // A leftover whose number now belongs to a live process started after it (pid reuse), and one of a live older process (pid 1: kept).
    const reused = lab.spawn('sleep', ['60']);
    writeFileSync(join(h.stateDir, `state.sqlite3.migrating-${reused.pid}`), 'x');
    utimesSync(join(h.stateDir, `state.sqlite3.migrating-${reused.pid}`), new Date(Date.now() - 3_600_000), new Date(Date.now() - 3_600_000));
    // pid 1 is never a vosctl migration (init is older than any file: it would be kept forever); a 20-digit pid is no process.
    writeFileSync(join(h.stateDir, 'state.sqlite3.migrating-1'), 'x');
    writeFileSync(join(h.stateDir, 'state.sqlite3.migrating-12345678901234567890'), 'x');
    // A directory by that name is no migration's database: named once as a warning, left alone, and no command fails over it.
    mkdirSync(join(h.stateDir, 'state.sqlite3.migrating-77'));
    const next = await h.vosctl('block', '203.0.113.96');
    reused.kill();
    expect(next.code).toBe(0);
    expect(next.err).toMatch(/removed state\.sqlite3\.migrating-1 from .*process 1 did not finish/);
    expect(next.err).toMatch(/removed state\.sqlite3\.migrating-12345678901234567890 .*process 12345678901234567890 did not finish/);
    expect(next.err.match(/state\.sqlite3\.migrating-77 is a directory, not a migration's database: left alone/g)).toHaveLength(1);
    expect(next.err).not.toMatch(/EISDIR/);
    for (const f of left) expect(next.err).toContain(f);
    expect(next.err).toMatch(new RegExp(`removed .*state\\.sqlite3\\.migrating-${killed.pid}.* from ${h.stateDir}: left by a migration that process ${killed.pid} did not finish`));
    expect(next.err).toContain(`state.sqlite3.migrating-${reused.pid}`);
    expect(migrating()).toEqual(['state.sqlite3.migrating-77']);
    expect(await h.vosctl('list')).toMatchObject({ code: 0 });
    expect(next.err).toMatch(/migrated 400000 entries/);
    const count = Number((await execa('sqlite3', ['-readonly', join(h.stateDir, 'state.sqlite3'), "SELECT count(*) FROM entries WHERE source = 'feed'"])).stdout);
    expect(count).toBe(400_000);
    await h.detach();
  });

  it('a block script whose sqlite3 has exited says the change is NOT persisted and exits 1 (never 141)', async () => {
    const dir = join(lab.tmp, 'deadsql');
    mkdirSync(dir);
    const r = await execa(
      'bash',
      [
        '-c',
        `set -euo pipefail; . "${ROOT}/scripts/lib.sh"; vfp_state_begin; kill "$VFP_SQL_CHILD"; while kill -0 "$VFP_SQL_CHILD" 2>/dev/null; do sleep 0.05; done
         vfp_state_sql "$(printf 'SELECT %d;\n' $(seq 1 20000))" || true; vfp_state_commit "blocked 198.51.100.45"`,
      ],
      { env: { VFP_STATE_DIR: dir }, reject: false },
    );
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(/blocked 198\.51\.100\.45: NOT persisted \(the map has it/);
  });

  it('VOS_STATE_TIMEOUT has one rule for vosctl and the scripts; a 0-byte database is named, not silently empty', async () => {
    const h = new Host();
    expect(await h.vosctl('attach', v.host)).toMatchObject({ code: 0 });
    const run = (cmd: string, args: string[], timeout: string) => execa(cmd, args, { env: { ...h.env(), VOS_STATE_TIMEOUT: timeout }, reject: false });
    for (const bad of ['abc', '-1', '2.5']) {
      const a = await run(VOSCTL, ['block', '198.51.100.61'], bad);
      const b = await run(join(ROOT, 'scripts/block_ip.sh'), ['198.51.100.62'], bad);
      for (const r of [a, b]) {
        expect(r.exitCode).toBe(2);
        expect(r.stderr).toContain(`bad VOS_STATE_TIMEOUT '${bad}': whole seconds`);
      }
    }
    expect((await run(VOSCTL, ['block', '198.51.100.63'], '0')).exitCode).toBe(0);
    expect((await run(join(ROOT, 'scripts/block_ip.sh'), ['198.51.100.64'], '0')).exitCode).toBe(0);
    expect((await h.ips()).sort()).toEqual(['198.51.100.63', '198.51.100.64']);
    writeFileSync(join(h.stateDir, 'state.sqlite3'), '');
    for (const f of ['state.sqlite3-wal', 'state.sqlite3-shm']) rmSync(join(h.stateDir, f), { force: true });
    const att = await h.reboot();
    expect(att.err).toMatch(/state\.sqlite3 is empty \(0 bytes\)/);
    await h.detach();
  });

  it('a state.sqlite3 that is a symbolic link in a folder others can write is refused; a directory in its place is named', async () => {
    const h = new Host();
    mkdirSync(h.stateDir, { recursive: true });
    chmodSync(h.stateDir, 0o1777);
    const elsewhere = join(lab.tmp, 'chosen-by-someone.db');
    symlinkSync(elsewhere, join(h.stateDir, 'state.sqlite3'));
    const att = await h.vosctl('attach', v.host);
    expect(att.code).toBe(1);
    expect(att.err).toMatch(/is a symbolic link \(to .*chosen-by-someone\.db\) in .*refusing to follow it/);
    const sc = await h.script('block_ip.sh', ['198.51.100.71']);
    expect(sc.code).toBe(1);
    expect(sc.err).toMatch(/is a symbolic link \(to .*chosen-by-someone\.db\) in .*refusing to follow it/);
    expect(existsSync(elsewhere)).toBe(false);
    rmSync(join(h.stateDir, 'state.sqlite3'));
    mkdirSync(join(h.stateDir, 'state.sqlite3'));
    chmodSync(h.stateDir, 0o755);
    const dir = await h.vosctl('attach', v.host);
    expect(dir.code).toBe(1);
    expect(dir.err).toMatch(/state\.sqlite3 is a directory, not a database file/);
    expect((await h.script('block_ip.sh', ['198.51.100.72'])).err).toMatch(/state\.sqlite3 is a directory, not a database file/);
    expect(dir.err).not.toMatch(/needs root/);
    await h.detach();
  });

  it('a state.sqlite3 that is a symbolic link to nothing (a mount not up yet) is refused, naming link and target; nothing is created there; attach still attaches', async () => {
    const h = new Host();
    expect(await h.vosctl('attach', v.host)).toMatchObject({ code: 0 });
    expect(await h.vosctl('block', '198.51.100.80', '198.51.100.81')).toMatchObject({ code: 0 });
    await h.detach();
    rmSync(h.pinDir, { recursive: true, force: true });
    const mount = join(lab.tmp, `not-mounted${nodes}`);
    const target = join(mount, 'state.sqlite3');
    const db = join(h.stateDir, 'state.sqlite3');
    await execa('sqlite3', [db, 'PRAGMA wal_checkpoint(TRUNCATE)']);
    const saved = join(lab.tmp, `saved${nodes}.sqlite3`);
    writeFileSync(saved, readFileSync(db));
    for (const f of readdirSync(h.stateDir)) if (f.startsWith('state.sqlite3')) rmSync(join(h.stateDir, f));
    symlinkSync(target, db);
    const att = await h.vosctl('attach', v.host);
    expect(att.code).toBe(1);
    expect(att.err).toContain(`the state database ${db} is a symbolic link to ${target}, which does not exist`);
    expect(att.err).toMatch(/blocklist was NOT restored/);
    const links = JSON.parse((await execa('ip', ['-j', 'link', 'show', v.host])).stdout) as Array<{ xdp?: unknown }>;
    expect(links[0]!.xdp).toBeDefined();
    const sc = await h.script('block_ip.sh', ['198.51.100.82']);
    expect(sc.code).toBe(1);
    expect(sc.err).toContain(`${db} is a symbolic link to ${target}, which does not exist`);
    expect(existsSync(mount)).toBe(false);
    // The mount comes up: the state is there again, and restored from.
    mkdirSync(mount);
    writeFileSync(target, readFileSync(saved));
    expect(await h.vosctl('reconcile', '--from', 'state')).toMatchObject({ code: 0 });
    expect((await h.ips()).sort()).toEqual(['198.51.100.80', '198.51.100.81']);
    await h.detach();
  });

  it('a user without root is told that root (or CAP_BPF and CAP_NET_ADMIN) is needed, by vosctl and the scripts', async () => {
    const h = new Host();
    expect(await h.script('load.sh', ['--no-attach'])).toMatchObject({ code: 0 });
    for (const [cmd, args] of [[VOSCTL, ['block', '198.51.100.30']], [join(ROOT, 'scripts/block_ip.sh'), ['198.51.100.30']], [join(ROOT, 'scripts/stats.sh'), []]] as const) {
      const r = await execa('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', cmd, ...args], { env: h.env(), reject: false });
      expect(r.exitCode).toBe(3);
      expect(r.stderr).toContain('needs root (or the capabilities CAP_BPF and CAP_NET_ADMIN');
      expect(r.stderr).not.toMatch(/unbound variable|unexpected error/);
    }
  });

  describe('the scripts write the state too', () => {
    it('block_ip.sh shows in vosctl list without a reconcile, unblock_ip.sh removes it, both survive a reboot', async () => {
      const h = new Host();
      expect(await h.vosctl('attach', v.host)).toMatchObject({ code: 0 });
      expect(await h.script('block_ip.sh', ['198.51.100.20', '--ttl', '1h', '--source', 'ops'])).toMatchObject({ code: 0 });
      expect(await h.script('block_ip.sh', ['198.51.100.21'])).toMatchObject({ code: 0 });
      expect(await h.script('block_ip.sh', ['10.20.0.0/16'])).toMatchObject({ code: 0 });
      expect(await h.script('unblock_ip.sh', ['198.51.100.21'])).toMatchObject({ code: 0 });
      expect(await h.ips()).toEqual(['10.20.0.0/16', '198.51.100.20']);
      expect(await h.matches()).toBe(true);
      expect(await h.reboot()).toMatchObject({ code: 0 });
      const listed = JSON.parse((await h.vosctl('list', '--json')).out) as Listed[];
      expect(listed.map((e) => [e.ip, e.source])).toEqual([['10.20.0.0/16', 'manual'], ['198.51.100.20', 'ops']]);
      await h.detach();
    });

    it('block_ips_from_file.sh on a full map reports what it loaded, still loads the prefixes, and names the full map', async () => {
      const h = new Host();
      expect(await h.vosctl('attach', v.host, '--block-capacity', '100', '--prefix-capacity', '3')).toMatchObject({ code: 0 });
      const lines = [...addrs(120), '10.30.0.0/16', '10.31.0.0/16', '10.32.0.0/16', '10.33.0.0/16'];
      const r = await h.script('block_ips_from_file.sh', ['-', '--source', 'feed'], lines.join('\n'));
      expect(r.code).toBe(1);
      expect(r.out).toBe('loaded 103 of 124 entries, skipped 0 bad lines');
      expect(r.err).toContain('blocked_ips is full: 100 of 100 entries in use');
      expect(r.err).toContain('blocked_prefixes is full: 3 of 3 entries in use');
      expect(await h.matches()).toBe(true);
      const full = await h.vosctl('block', '10.40.0.0/16');
      expect(full.err).toContain('blocked_prefixes is full');
      expect(await h.reboot('--block-capacity', '100', '--prefix-capacity', '3')).toMatchObject({ code: 0 });
      expect((await h.ips('--source', 'feed')).length).toBe(103);
      await h.detach();
    });
  });
});
