/**
 * fail2ban end to end: Debian's fail2ban-server with a private configuration,
 * the shipped filter on Kamailio-style log lines, and the shipped actions
 * (vos-fastpath.conf, one process per ban; vos-fastpath.py, one long-lived
 * vosctl) writing the real maps.
 */
import { afterAll, beforeAll, expect, it } from '@jest/globals';
import { appendFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { describeWith, kernelMissing } from '../helpers/env.js';
import { waitFor } from '../helpers/wait.js';
import { kamailioLine, setupFail2ban } from '../helpers/fail2ban.js';
import { Lab, ROOT } from '../helpers/lab.js';
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
    } finally {
      await f.stop();
    }
    // actionflush: stopping fail2ban unbanned nothing.
    expect(await entry('198.51.100.78')).toMatchObject({ source: `fail2ban-sip${lab.id}` });
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
    } finally {
      await f.stop();
    }
  }, 120_000);
});
