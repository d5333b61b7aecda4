import { existsSync } from 'node:fs';
import type { CommandModule } from 'yargs';
import type { Args } from './common.js';
import { printJson } from './common.js';

interface GcArgs {
  check: boolean;
}

export const gc: CommandModule<object, GcArgs> = {
  command: 'gc',
  describe: 'Remove expired entries from the maps and the state, then check the state file for damage (for the timer or cron; consume also removes expired entries)',
  builder: (y) => y.option('check', { type: 'boolean', default: true, describe: "run SQLite's PRAGMA quick_check over the state file (about 0.4 s per 1,000,000 entries); --no-check skips it" }) as never,
  handler: async (argv) => {
    const a = argv as Args<GcArgs>;
    const { Context } = await import('../context.js');
    const { collectExpired } = await import('../blocklist.js');
    const ctx = Context.fromArgs(a);
    const { removed } = await collectExpired(ctx);
    ctx.log.info('expired entries removed', { action: 'gc', removed });
    process.stdout.write(`removed ${removed} expired entries\n`);
    // Damage in pages no command reads (the middle of an index) is found here, every 5 minutes with the timer.
    if (a.check) ctx.store.check();
  },
};

interface ReconcileArgs {
  from?: 'map' | 'state';
}

export const reconcileCmd: CommandModule<object, ReconcileArgs> = {
  command: 'reconcile',
  describe: 'Make the persisted state and the maps agree (after blocks made with the scripts)',
  builder: (y) =>
    y.option('from', {
      choices: ['map', 'state'] as const,
      describe:
        'state: rewrite the maps from the state (after a reboot or an interrupted command); map: adopt what the maps hold (maps changed by hand with bpftool). Without it: as map, refused when that would delete more than a few state entries',
    }) as never,
  handler: async (argv) => {
    const a = argv as Args<ReconcileArgs>;
    const { Context } = await import('../context.js');
    const { reconcile } = await import('../blocklist.js');
    const ctx = Context.fromArgs(a);
    const d = await reconcile(ctx, a.from);
    if (d.setAside?.includes('.not-ours-')) process.stdout.write(`the state database was not a vos-fastpath state database: set aside as ${d.setAside}; a new one was built from the maps\n`);
    else if (d.setAside) process.stdout.write(`the state database was unreadable: set aside as ${d.setAside}; ${d.salvaged} entries salvaged from it, merged with the maps into a new one\n`);
    ctx.log.info('reconciled', { action: 'reconcile', from: a.from ?? 'map', salvaged: d.salvaged, only_in_state: d.onlyInState.length, only_in_map: d.onlyInMap.length, differing: d.differing.length });
    process.stdout.write(`reconciled from ${d.setAside ? 'the salvaged state and the maps' : (a.from ?? 'map')}: ${d.onlyInMap.length} only in the maps, ${d.onlyInState.length} only in the state, ${d.differing.length} differing\n`);
  },
};

interface StatusArgs {
  json: boolean;
}

export const status: CommandModule<object, StatusArgs> = {
  command: 'status',
  describe: 'Attachments, program, pin folder, map fill levels, and whether state and maps agree',
  builder: (y) => y.option('json', { type: 'boolean', default: false }) as never,
  handler: async (argv) => {
    const a = argv as Args<StatusArgs>;
    const { Context } = await import('../context.js');
    const { divergence, fillLevel } = await import('../blocklist.js');
    const { attachments, pinnedProgId } = await import('../maps/bpftool.js');
    const { EnvError } = await import('../errors.js');
    const ctx = Context.fromArgs(a);
    if (!existsSync(ctx.pin('blocked_ips'))) throw new EnvError(`no vos-fastpath maps in ${ctx.settings.pinDir}; run vosctl attach <iface> (or set --pin-dir)`);
    const progId = await pinnedProgId(ctx.pin('prog'));
    const maps = [];
    for (const name of ['blocked_ips', 'blocked_prefixes', 'allow_ips', 'options_allow', 'blocked_ips6', 'blocked_prefixes6', 'allow_ips6', 'options_allow6']) {
      // The IPv6 maps are missing in a pin folder made before IPv6, until the next attach.
      if (name.endsWith('6') && !existsSync(ctx.pin(name))) continue;
      maps.push({ name, ...(await fillLevel(ctx, name)) });
    }
    const cfg = (await ctx.maps.dump(ctx.pin('config'))).subarray(4);
    const flags = cfg.readUInt32LE(0);
    const ports = Array.from({ length: cfg.readUInt32LE(4) }, (_, i) => cfg.readUInt16LE(8 + 2 * i));
    ctx.store.check();
    const d = await divergence(ctx);
    const reconcileAdvice =
      'after a reboot or an interrupted command the state is the truth: run vosctl reconcile --from state; only if the maps were changed by hand with bpftool: vosctl reconcile --from map';
    const report = {
      pin_dir: ctx.settings.pinDir,
      state_dir: ctx.settings.stateDir,
      program_id: progId,
      attached: progId === null ? [] : await attachments(progId),
      config: { ports, scope: flags & 1 ? 'sip' : 'all', stealth: Boolean(flags & 2), malformed_register: Boolean(flags & 4), shadow: Boolean(flags & 8) },
      maps,
      reconcile_advice: !d.onlyInMap.length && !d.onlyInState.length && !d.differing.length ? null : reconcileAdvice,
      state_matches_maps: !d.onlyInMap.length && !d.onlyInState.length && !d.differing.length,
      divergence: { only_in_maps: d.onlyInMap.length, only_in_state: d.onlyInState.length, differing: d.differing.length },
    };
    if (a.json) return printJson(report);
    const out = [
      `pin folder   ${report.pin_dir}`,
      `state folder ${report.state_dir}`,
      `program      ${progId ?? 'not loaded'}`,
      `attached     ${report.attached.map((x) => `${x.iface} (${x.mode})`).join(', ') || 'nowhere'}`,
      `config       ports ${ports.join(',')}, scope ${report.config.scope}, stealth ${report.config.stealth ? 'on' : 'off'}, malformed REGISTER ${report.config.malformed_register ? 'on' : 'off'}${report.config.shadow ? ', SHADOW (drops nothing)' : ''}`,
      ...maps.map((m) => `map          ${m.name.padEnd(17)} ${m.entries} / ${m.capacity} (${(m.fill * 100).toFixed(1)}%)`),
      report.state_matches_maps
        ? 'state        matches the maps'
        : `state        DIVERGES: ${d.onlyInMap.length} only in the maps, ${d.onlyInState.length} only in the state, ${d.differing.length} differing; ${reconcileAdvice}`,
    ];
    process.stdout.write(out.join('\n') + '\n');
  },
};
