/**
 * A private fail2ban for a test: Debian's fail2ban-server with its own
 * configuration folder (socket, pid file and SQLite database in the lab's temp
 * folder), the shipped vos-fastpath action and Kamailio filter, and one jail on
 * a log file the test writes. Stopped through its socket, or by its pid.
 */
import { execa, type ResultPromise } from 'execa';
import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { waitFor } from './wait.js';
import { ROOT, type Lab } from './lab.js';

export interface Fail2ban {
  dir: string;
  jail: string;
  logFile: string;
  client: (...args: string[]) => Promise<string>;
  start: () => Promise<void>;
  stop: () => Promise<void>;
}

/** A Kamailio log line as syslog writes it (kamailio.cfg's log_prefix and route[VOS_BLOCK]), stamped now. */
export function kamailioLine(ip: string, why: string, published = false, at = new Date()): string {
  const stamp = at.toString().slice(4, 24).replace(/ (\d{4}) /, ' ').replace(/^(\w{3}) 0/, '$1  ');
  const callId = Buffer.from(`1-4242@${ip}`).toString('hex');
  return `${stamp} sbc1 /usr/sbin/kamailio[4242]: ${published ? 'NOTICE' : 'ERROR'}: {1 1 OPTIONS ${callId}} <script>: vos-fastpath: ${published ? 'published' : 'could not publish'} block for ${ip} (${why})`;
}

export function setupFail2ban(lab: Lab, o: { jail: string; action: string; bantime: number; env: Record<string, string> }): Fail2ban {
  const dir = join(lab.tmp, `fail2ban-${o.jail}`);
  for (const d of ['action.d', 'filter.d', 'jail.d']) mkdirSync(join(dir, d), { recursive: true });
  for (const f of ['action.d/vos-fastpath.conf', 'action.d/vos-fastpath.py', 'filter.d/vos-fastpath-kamailio.conf']) copyFileSync(join(ROOT, 'contrib/fail2ban', f), join(dir, f));
  const logFile = join(dir, 'kamailio.log');
  writeFileSync(logFile, '');
  const sock = join(dir, 'fail2ban.sock');
  writeFileSync(
    join(dir, 'fail2ban.conf'),
    `[Definition]\nloglevel = INFO\nlogtarget = ${join(dir, 'fail2ban.log')}\nsocket = ${sock}\npidfile = ${join(dir, 'fail2ban.pid')}\ndbfile = ${join(dir, 'fail2ban.sqlite3')}\ndbpurgeage = 1d\n`,
  );
  writeFileSync(
    join(dir, 'jail.conf'),
    `[DEFAULT]\nbackend = polling\n\n[${o.jail}]\nenabled = true\nfilter = vos-fastpath-kamailio\nlogpath = ${logFile}\nmaxretry = 1\nfindtime = 10m\nbantime = ${o.bantime}\naction = ${o.action}\n`,
  );
  const client = async (...args: string[]) => (await execa('fail2ban-client', ['-c', dir, '-s', sock, ...args])).stdout;
  let server: ResultPromise | undefined;
  return {
    dir,
    jail: o.jail,
    logFile,
    client,
    start: async () => {
      server = lab.spawn('fail2ban-server', ['-f', '-x', '-c', dir, '-s', sock, '-p', join(dir, 'fail2ban.pid')], { env: o.env, all: true });
      await waitFor('fail2ban to answer on its socket', async () => {
        if (server!.exitCode !== null) throw new Error(`fail2ban-server exited: ${(await server!).all}\n${existsSync(join(dir, 'fail2ban.log')) ? readFileSync(join(dir, 'fail2ban.log'), 'utf8').slice(-3000) : ''}`);
        const r = existsSync(sock) && (await execa('fail2ban-client', ['-c', dir, '-s', sock, 'status', o.jail], { reject: false }));
        return r && r.exitCode === 0;
      });
    },
    stop: async () => {
      await client('stop');
      await server;
    },
  };
}
