/**
 * The integrations under load, each beside a reference from the same run:
 *   - 100,000 CrowdSec decisions through `vosctl crowdsec`'s stdin form (the
 *     lines crowdsec-custom-bouncer writes with feed_via_stdin), beside
 *     `vosctl load-file` of the same addresses and the per-decision form
 *     (one process per decision, timed on 20 and scaled);
 *   - 20,000 fail2ban bans restored by fail2ban-server 1.0 at start with
 *     action vos-fastpath.py into an empty blocklist, beside
 *     vos-fastpath.conf (one process per ban) restoring 100 and scaled, and
 *     fail2ban restoring them with a Python action that does nothing (its floor).
 *
 * Run as root: npm run bench:integrations   (DECISIONS=100000 BANS=20000 PARTS=crowdsec,fail2ban to vary)
 */
import { execa } from 'execa';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { waitFor } from '../test/helpers/wait.js';
import { setupFail2ban } from '../test/helpers/fail2ban.js';
import { Lab, ROOT } from '../test/helpers/lab.js';
import { addr, timed } from './common.js';

const DECISIONS = Number(process.env.DECISIONS ?? 100_000);
const BANS = Number(process.env.BANS ?? 20_000);
const VOSCTL = join(ROOT, 'bin/vosctl');


async function must(args: string[], env: Record<string, string>, input?: string): Promise<string> {
  const r = await execa(VOSCTL, args, { env, input, reject: false });
  if (r.exitCode !== 0) throw new Error(`vosctl ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

async function crowdsec(): Promise<void> {
  const lab = new Lab();
  try {
    await lab.loadUnattached(['--block-capacity', String(2 ** Math.ceil(Math.log2(DECISIONS * 1.3)))]);
    const env = lab.env({ VOS_STATE_DIR: join(lab.tmp, 'state'), VOS_LOG_LEVEL: 'warn' });
    const ips = Array.from({ length: DECISIONS }, (_, i) => addr(i));
    const stream = ips.map((ip, i) => JSON.stringify({ duration: '3h59m56.919s', id: i + 1, origin: 'crowdsec', scenario: 'crowdsecurity/sip-bf', scope: 'Ip', type: 'ban', value: ip, action: 'add' })).join('\n') + '\n';
    await must(['load-file', '/dev/null', '--source', 'warm'], env); // code cache, as on a host that ran vosctl before
    const stdinMs = await timed(() => must(['crowdsec'], env, stream));
    const listed = JSON.parse(await must(['status', '--json'], env)) as { maps: Array<{ name: string; entries: number }> };
    const entries = listed.maps.find((m) => m.name === 'blocked_ips')!.entries;

    await execa('rm', ['-rf', lab.pinDir, join(lab.tmp, 'state')]);
    await lab.loadUnattached(['--block-capacity', String(2 ** Math.ceil(Math.log2(DECISIONS * 1.3)))]);
    const list = join(lab.tmp, 'list.txt');
    writeFileSync(list, ips.join('\n') + '\n');
    const loadMs = await timed(() => must(['load-file', list, '--source', 'crowdsec', '--ttl', '4h'], env));

    const one: number[] = [];
    for (let i = 0; i < 20; i++) one.push(await timed(() => must(['crowdsec', 'add', addr(DECISIONS + i), '14396', 'crowdsecurity/sip-bf'], env)));
    const perDecisionMs = one.reduce((a, b) => a + b, 0) / one.length;

    const n = DECISIONS.toLocaleString('en');
    console.log(`\nCrowdSec: ${n} decisions`);
    console.log(`  vosctl load-file of the same addresses         ${(loadMs / 1000).toFixed(2)} s   reference (bulk floor)`);
    console.log(`  vosctl crowdsec, stdin form (feed_via_stdin)   ${(stdinMs / 1000).toFixed(2)} s   ${(stdinMs / loadMs).toFixed(2)}x load-file; ${Math.round(DECISIONS / (stdinMs / 1000)).toLocaleString('en')} decisions/s; ${entries.toLocaleString('en')} in the map`);
    console.log(`  per-decision form, one process each            ${(perDecisionMs / 1000).toFixed(3)} s/decision   ~${((perDecisionMs * DECISIONS) / 60000).toFixed(0)} min for ${n} (mean of 20, scaled)`);
  } finally {
    await lab.cleanup();
  }
}

/** fail2ban's own floor: a Python action that does nothing. */
const NOOP_ACTION = `from fail2ban.server.actions import ActionBase


class Noop(ActionBase):
	def ban(self, aInfo):
		pass

	def unban(self, aInfo):
		pass

	def flush(self):
		return True


Action = Noop
`;

async function fail2banRestore(action: string, bans: number): Promise<{ banMs: number; restoreMs: number }> {
  const lab = new Lab();
  try {
    await lab.loadUnattached(['--block-capacity', String(2 ** Math.ceil(Math.log2(bans * 1.3 + 1024)))]);
    const env = { ...lab.env({ VOS_STATE_DIR: join(lab.tmp, 'state'), VOS_LOG_LEVEL: 'warn' }), PATH: process.env.PATH! };
    const jail = `bench${lab.id}`;
    const noop = action === 'noop.py';
    const f = setupFail2ban(lab, { jail, action: noop ? action : `${action}[vosctl="${VOSCTL}"]`, bantime: 86400, env });
    if (noop) writeFileSync(join(f.dir, 'action.d/noop.py'), NOOP_ACTION);
    // Done when the blocklist holds every ban (fail2ban's own count for the no-op action).
    const count = async () =>
      noop
        ? Number(/Currently banned:\s*(\d+)/.exec(await f.client('status', jail))![1])
        : (JSON.parse(await must(['list', '--json', '--source', `fail2ban-${jail}`], env)) as unknown[]).length;
    const ips = Array.from({ length: bans }, (_, i) => addr(i));
    await f.start();
    const banMs = await timed(async () => {
      for (let i = 0; i < ips.length; i += 1000) await f.client('set', jail, 'banip', ...ips.slice(i, i + 1000));
      await waitFor(`${bans} bans in the blocklist`, async () => (await count()) === bans, 3_600_000);
    });
    await f.stop();
    // As after a reboot: the blocklist is empty, fail2ban's database holds every ban.
    if (!noop) await must(['load-file', '/dev/null', '--replace', '--source', `fail2ban-${jail}`], env);
    const restoreMs = await timed(async () => {
      await f.start();
      await waitFor(`${bans} restored bans`, async () => (await count()) === bans, 3_600_000);
    });
    await f.stop();
    return { banMs, restoreMs };
  } finally {
    await lab.cleanup();
  }
}

async function fail2ban(): Promise<void> {
  const small = 100;
  const floor = await fail2banRestore('noop.py', BANS);
  const conf = await fail2banRestore('vos-fastpath', small);
  const py = await fail2banRestore('vos-fastpath.py', BANS);
  const perBan = conf.restoreMs / small;
  console.log(`\nfail2ban 1.0: ${BANS.toLocaleString('en')} bans restored at start (into an empty blocklist)`);
  console.log(`  action vos-fastpath.conf, one process per ban   ${(perBan / 1000).toFixed(3)} s/ban (${small} restored in ${(conf.restoreMs / 1000).toFixed(1)} s)   ~${((perBan * BANS) / 60000).toFixed(0)} min for ${BANS.toLocaleString('en')}, scaled: reference`);
  console.log(`  action vos-fastpath.py, one vosctl stdin         ${(py.restoreMs / 1000).toFixed(2)} s   ${((perBan * BANS) / py.restoreMs).toFixed(0)}x faster; ${Math.round(BANS / (py.restoreMs / 1000)).toLocaleString('en')} bans/s (first bans via banip: ${(py.banMs / 1000).toFixed(1)} s)`);
  console.log(`  fail2ban alone, a Python action doing nothing   ${(floor.restoreMs / 1000).toFixed(2)} s   floor: fail2ban's own restore (ours is ${(py.restoreMs / floor.restoreMs).toFixed(2)}x)`);
}

const PARTS = (process.env.PARTS ?? 'crowdsec,fail2ban').split(',');
if (PARTS.includes('crowdsec')) await crowdsec();
if (PARTS.includes('fail2ban')) await fail2ban();
