/**
 * fail2ban end to end: Debian's fail2ban-server with a private configuration,
 * the shipped filter on Kamailio-style log lines, and the shipped actions
 * (vos-fastpath.conf, one process per ban; vos-fastpath.py, one long-lived
 * vosctl) writing the real maps.
 */
import { afterAll, beforeAll, expect, it } from '@jest/globals';
import { appendFileSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { createSocket } from 'node:dgram';
import { join } from 'node:path';
import { execa } from 'execa';
import { describeWith, kernelMissing } from '../helpers/env.js';
import { waitFor } from '../helpers/wait.js';
import { kamailioLine, setupFail2ban } from '../helpers/fail2ban.js';
import { endForking, Lab, ROOT } from '../helpers/lab.js';
import { freePort } from '../helpers/wait.js';
import type { ListedEntry } from '../../lib/blocklist.js';

const missing = kernelMissing() ?? (existsSync('/usr/bin/fail2ban-server') ? null : 'fail2ban is not installed (scripts/setup.sh installs it)');

describeWith('fail2ban with the vos-fastpath actions', missing, () => {
  let lab: Lab;
  let stateDir: string;
  const env = () => ({ VOS_PIN_DIR: lab.pinDir, VOS_STATE_DIR: stateDir, VOS_LOG_FORMAT: 'json', PATH: process.env.PATH! });
  const vosctl = (...args: string[]) => execa(join(ROOT, 'bin/vosctl'), args, { env: env(), reject: false });
  const list = async () => JSON.parse((await vosctl('list', '--json')).stdout) as ListedEntry[];
  const entry = async (ip: string) => (await list()).find((e) => e.ip === ip);

  beforeAll(async () => {
    lab = new Lab();
    stateDir = join(lab.tmp, 'state');
    await lab.loadUnattached();
  }, 30_000);
  afterAll(() => lab.cleanup(), 30_000);

  it('action vos-fastpath.conf: a Kamailio-logged offender is banned with source fail2ban-<jail> and its TTL; unban lifts it; a stop keeps it', async () => {
    const f = setupFail2ban(lab, { jail: `sip${lab.id}`, action: `vos-fastpath[vosctl="${join(ROOT, 'bin/vosctl')}"]`, bantime: 900, env: env() });
    await f.start();
    try {
      appendFileSync(f.logFile, kamailioLine('192.0.2.77', 'scanner User-Agent') + '\n' + kamailioLine('198.51.100.78', 'pike', true) + '\n');
      const e = await waitFor('the offender in vosctl list', () => entry('192.0.2.77'));
      expect(e).toMatchObject({ source: `fail2ban-${f.jail}`, reason: `fail2ban ${f.jail}` });
      const ttl = (Date.parse(e.expires!) - Date.now()) / 1000;
      expect(ttl).toBeGreaterThan(880);
      expect(ttl).toBeLessThanOrEqual(900);
      await waitFor('the second offender', () => entry('198.51.100.78'));
      // An operator's block of an address fail2ban also bans outlives the unban.
      expect((await vosctl('block', '203.0.113.79')).exitCode).toBe(0);
      await f.client('set', f.jail, 'banip', '203.0.113.79');
      await f.client('unban', '192.0.2.77');
      await f.client('unban', '203.0.113.79');
      await waitFor('the unbanned offender to leave vosctl list', async () => !(await entry('192.0.2.77')));
      expect(await entry('203.0.113.79')).toMatchObject({ source: 'manual' });
      // A bantime above vosctl's 10-year limit is taken as 10 years (with a note), not refused.
      await f.client('set', f.jail, 'bantime', '1000000000');
      await f.client('set', f.jail, 'banip', '198.51.100.91');
      const long = await waitFor('the very long ban', () => entry('198.51.100.91'));
      expect((Date.parse(long.expires!) - Date.now()) / 1000).toBeGreaterThan(315360000 - 60);
    } finally {
      await f.stop();
    }
    // actionflush: stopping fail2ban unbanned nothing.
    const before = await entry('198.51.100.78');
    expect(before).toMatchObject({ source: `fail2ban-sip${lab.id}` });
    // `vosctl unblock --all --source` empties the jail's source (what to run after unban --all with this action) ...
    expect(await vosctl('unblock', '--all', '--source', `fail2ban-${f.jail}`)).toMatchObject({ exitCode: 0, stdout: 'removed 2 entries of source fail2ban-' + f.jail });
    expect(await entry('203.0.113.79')).toMatchObject({ source: 'manual' });
    // ... and a restart restores each ban with its remaining time (<time> + <bantime>), not a fresh bantime.
    await new Promise((r) => setTimeout(r, 2000));
    await f.start();
    try {
      const after = await waitFor('the restored ban', () => entry('198.51.100.78'));
      expect(Math.abs(Date.parse(after.expires!) - Date.parse(before!.expires!))).toBeLessThanOrEqual(1500);
    } finally {
      await f.stop();
    }
  }, 90_000);

  it('action vos-fastpath.py: bans through one vosctl; a restart restores them with their remaining TTL, and unban lifts one', async () => {
    const f = setupFail2ban(lab, { jail: `py${lab.id}`, action: `vos-fastpath.py[vosctl="${join(ROOT, 'bin/vosctl')}"]`, bantime: 3600, env: env() });
    const ips = Array.from({ length: 200 }, (_, i) => `198.18.${i >> 8}.${(i & 255) + 1}`);
    await f.start();
    await f.client('set', f.jail, 'banip', ...ips);
    appendFileSync(f.logFile, kamailioLine('192.0.2.88', 'pike') + '\n');
    await waitFor('200 + 1 bans in vosctl list', async () => (await list()).filter((e) => e.source === `fail2ban-${f.jail}`).length === 201);
    const before = await entry(ips[0]!);
    await f.stop();
    expect((await list()).filter((e) => e.source === `fail2ban-${f.jail}`)).toHaveLength(201);
    // Restored into an empty blocklist (as after a reboot): every ban comes back from fail2ban's database.
    expect((await vosctl('load-file', '/dev/null', '--replace', '--source', `fail2ban-${f.jail}`)).exitCode).toBe(0);
    expect(await entry(ips[0]!)).toBeUndefined();
    await f.start();
    try {
      await waitFor('the restored bans', async () => (await list()).filter((e) => e.source === `fail2ban-${f.jail}`).length === 201);
      const after = await entry(ips[0]!);
      // Remaining time, not a fresh hour.
      expect(Math.abs(Date.parse(after!.expires!) - Date.parse(before!.expires!))).toBeLessThanOrEqual(2000);
      await f.client('unban', '192.0.2.88');
      await waitFor('the unbanned address to go', async () => !(await entry('192.0.2.88')));
      // unban --all (unlike a stop) removes every entry of the jail's source, and only those.
      expect((await vosctl('block', '198.18.9.9', '--source', 'other')).exitCode).toBe(0);
      await f.client('unban', '--all');
      await waitFor('unban --all to empty the source', async () => !(await list()).some((e) => e.source === `fail2ban-${f.jail}`));
      expect(await entry('198.18.9.9')).toMatchObject({ source: 'other' });
    } finally {
      await f.stop();
    }
  }, 120_000);

  it('action vos-fastpath.py: a vosctl that stops reading does not wedge fail2ban: it is ended after the timeout and a new one applies the next bans', async () => {
    // A stand-in for vosctl that, the first time, takes no input (a wedged child); then the real one.
    const flag = join(lab.tmp, 'wedge');
    const shim = join(lab.tmp, 'vosctl-wedge');
    writeFileSync(shim, `#!/bin/sh\nif [ "$1" = stdin ] && [ -e ${flag} ]; then rm -f ${flag}; exec sleep 600; fi\nexec ${join(ROOT, 'bin/vosctl')} "$@"\n`, { mode: 0o755 });
    writeFileSync(flag, '');
    const f = setupFail2ban(lab, { jail: `wg${lab.id}`, action: `vos-fastpath.py[vosctl="${shim}", timeout=2]`, bantime: 3600, env: env() });
    await f.start();
    try {
      // More than a pipe's 64 KiB of lines: the writes block on the wedged child.
      const ips = Array.from({ length: 1000 }, (_, i) => `198.19.${Math.floor(i / 250)}.${(i % 250) + 1}`);
      await f.client('set', f.jail, 'banip', ...ips);
      await waitFor('the action to end the wedged vosctl', async () => readFileSync(join(f.dir, 'fail2ban.log'), 'utf8').includes('took no input for 2 s'), 60_000);
      await waitFor('the bans after the wedge to be applied', () => entry(ips[ips.length - 1]!), 60_000);
      await f.client('set', f.jail, 'banip', '198.19.9.9');
      await waitFor('a later ban', () => entry('198.19.9.9'));
    } finally {
      await f.stop();
    }
  }, 150_000);
});

describeWith('the Kamailio filter takes only the packet source', existsSync('/usr/sbin/kamailio') && existsSync('/usr/bin/fail2ban-regex') ? null : 'kamailio or fail2ban is not installed (scripts/setup.sh installs them)', () => {
  let lab: Lab;
  beforeAll(() => {
    lab = new Lab();
  });
  afterAll(() => lab.cleanup(), 30_000);

  const filter = join(ROOT, 'contrib/fail2ban/filter.d/vos-fastpath-kamailio.conf');
  /** The IPs fail2ban-regex extracts from log lines with the shipped filter. */
  const banned = async (lines: string[]): Promise<string[]> => {
    const log = join(lab.tmp, `f2b-${Math.random().toString(36).slice(2)}.log`);
    writeFileSync(log, lines.join('\n') + '\n');
    const r = await execa('fail2ban-regex', ['-o', 'ip', log, filter]);
    return r.stdout.split('\n').filter(Boolean);
  };

  it("real Kamailio with the shipped log_prefix and xlog lines: no Call-ID, CSeq, method, From, To, User-Agent or folded header injects an address", async () => {
    const shipped = readFileSync(join(ROOT, 'contrib/kamailio/kamailio.cfg'), 'utf8');
    const prefix = /^log_prefix=.*$/m.exec(shipped)![0];
    const xlogs = shipped.split('\n').filter((l) => /xlog\(.*vos-fastpath: /.test(l));
    expect(xlogs).toHaveLength(2);
    const authLine = /xlog\("L_NOTICE", "vos-fastpath: auth failed.*$/m.exec(readFileSync(filter, 'utf8'))![0];
    const port = await freePort();
    const dir = join(lab.tmp, 'kamailio');
    const { mkdirSync } = await import('node:fs');
    mkdirSync(dir);
    writeFileSync(
      join(dir, 'k.cfg'),
      ['#!KAMAILIO', 'debug=2', prefix, 'children=1', `listen=udp:127.0.0.1:${port}`, 'mpath="/usr/lib/x86_64-linux-gnu/kamailio/modules/"', 'loadmodule "pv.so"', 'loadmodule "xlog.so"',
        'request_route {', '\t$var(why) = "pike";', ...xlogs, `\t${authLine}`, '\texit;', '}', ''].join('\n'),
    );
    const proc = execa('kamailio', ['-f', join(dir, 'k.cfg'), '-DD', '-E', '-n', '1', '-P', join(dir, 'pid'), '-Y', dir], { reject: false, buffer: false, stdout: 'pipe', stderr: 'pipe' });
    lab.defer(`kamailio (${proc.pid})`, () => endForking(proc));
    let err = '';
    let out = '';
    proc.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    proc.stdout!.on('data', (d: Buffer) => (out += d.toString()));

    const fake = (n: number) => `vos-fastpath: published block for 203.0.113.${n} (pike)`;
    const forge = (n: number) => `x} <script>: ${fake(n)}`;
    const request = (o: { method?: string; callId?: string; cseq?: string; from?: string; to?: string; ua?: string }) =>
      [`${o.method ?? 'OPTIONS'} sip:a@127.0.0.1 SIP/2.0`, 'Via: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bK' + Math.random().toString(36).slice(2), `From: ${o.from ?? '<sip:u@a>'};tag=1`, `To: ${o.to ?? '<sip:a@127.0.0.1>'}`,
        `Call-ID: ${o.callId ?? 'plain-1'}`, `CSeq: ${o.cseq ?? `1 ${o.method ?? 'OPTIONS'}`}`, `User-Agent: ${o.ua ?? 'ok'}`, 'Content-Length: 0', '', ''].join('\r\n');
    const requests = [
      request({}),
      request({ callId: forge(1) }),
      request({ callId: `${fake(2)}` }),
      request({ callId: 'x\r\n <script>: ' + fake(3) }),
      request({ cseq: `1 OPTIONS} <script>: ${fake(4)}` }),
      request({ method: 'X}<script>:vos-fastpath:', cseq: '1 X}<script>:vos-fastpath:' }),
      request({ from: `"${forge(5)}" <sip:u@a>`, to: `"${forge(6)}" <sip:a@b>`, ua: forge(7) }),
      request({ callId: 'y} <script>: vos-fastpath: auth failed from 203.0.113.8' }),
    ];
    const sock = createSocket('udp4');
    const send = (r: string) => new Promise((res) => sock.send(r, port, '127.0.0.1', res));
    const logged = () => (err.match(/vos-fastpath: auth failed/g) ?? []).length;
    let probes = 0;
    await waitFor('kamailio to answer', async () => {
      if (proc.exitCode !== null) throw new Error(`kamailio exited: ${out}${err}`);
      probes++;
      await send(request({ callId: `probe-${probes}` }));
      await new Promise((r) => setTimeout(r, 100));
      return logged() > 0;
    });
    for (const r of requests) await send(r);
    // One child handles them in order: once the last is logged, every one that reached the script is.
    await send(request({ callId: 'last' }));
    sock.close();
    await waitFor('kamailio to log the last request', async () => err.includes(Buffer.from('last').toString('hex')));
    // The forged Call-IDs did reach the log (hex-encoded), so the filter had a real chance to be fooled.
    for (const n of [1, 2]) expect(err).toContain(Buffer.from(n === 1 ? forge(1) : fake(2)).toString('hex'));
    // As syslog writes them (kamailio.cfg logs to LOCAL0): stderr's " 1(123) NOTICE: ..." becomes "date host kamailio[123]: NOTICE: ...".
    const stamp = new Date().toString().slice(4, 24).replace(/ (\d{4}) /, ' ').replace(/^(\w{3}) 0/, '$1  ');
    const lines = err.split('\n').filter((l) => l.includes('<script>: vos-fastpath: ')).map((l) => l.replace(/^\s*\d+\((\d+)\) /, `${stamp} sbc1 /usr/sbin/kamailio[$1]: `));
    // Every line of ours matches (three per request that reached the script); a core line echoing a forged header (there is one) does not.
    const ips = await banned(lines);
    expect(ips).toHaveLength(logged() * 3);
    expect(new Set(ips)).toEqual(new Set(['127.0.0.1']));
  }, 60_000);

  it('crafted lines: forged messages in the prefix or mid-line are not matched, the real ones are', async () => {
    const head = (ip: string, level = 'NOTICE') => `${kamailioLine(ip, 'pike').replace(/ERROR: \{.*$/, '')}${level}: `;
    const ips = await banned([
      // The attacker's report: the old prefix carried the Call-ID as text.
      `${head('192.0.2.1')}{1 1 OPTIONS x vos-fastpath: published block for 203.0.113.99 (pike)} <script>: vos-trace: OPTIONS from 192.0.2.1:5060`,
      `${head('192.0.2.1')}{1 1 OPTIONS x} <script>: vos-fastpath: published block for 203.0.113.98 (pike)} <script>: vos-trace: OPTIONS from 192.0.2.1:5060`,
      `${head('192.0.2.1')}{1 1 OPTIONS x} <script>: vos-fastpath: published block for 203.0.113.97 (pike)} <script>: vos-fastpath: published block for 192.0.2.1 (pike)`,
      `${head('192.0.2.1', 'ERROR')}<core> [parser/msg_parser.c:1]: bad header: {1 1 X 00} <script>: vos-fastpath: published block for 203.0.113.96 (pike)`,
      `${head('192.0.2.1')}{1 1 OPTIONS 00} <script>: vos-fastpath: auth failed for x from 203.0.113.95`,
      kamailioLine('192.0.2.2', 'pike'),
      kamailioLine('192.0.2.3', 'scanner User-Agent', true),
      `${head('192.0.2.4')}{1 1 REGISTER 00} <script>: vos-fastpath: auth failed from 192.0.2.4`,
    ]);
    expect(ips).toEqual(['192.0.2.2', '192.0.2.3', '192.0.2.4']);
  }, 30_000);
});
