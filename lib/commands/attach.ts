import type { CommandModule } from 'yargs';
import type { Args } from './common.js';
import { quoted } from '../quote.js';

/** load.sh's defaults (scripts/load.sh): maps created for a larger state get room for it and a quarter more. */
const DEFAULT_BLOCK_CAPACITY = 262_144;
const DEFAULT_PREFIX_CAPACITY = 65_536;

interface AttachArgs {
  iface: string;
  mode: string;
  ports?: string;
  scope?: string;
  blockCapacity?: number;
  prefixCapacity?: number;
  blockCapacity6?: number;
  prefixCapacity6?: number;
  stealth: boolean;
  malformed: boolean;
  shadow: boolean;
  priority?: string;
}

export const attach: CommandModule<object, AttachArgs> = {
  command: 'attach <iface>',
  describe: 'Attach the XDP program to an interface and restore the persisted blocklist',
  builder: (y) =>
    y
      .positional('iface', { type: 'string', demandOption: true })
      .option('mode', { type: 'string', choices: ['native', 'skb'], default: 'native', describe: 'native (driver) or skb (generic) XDP' })
      .option('ports', { type: 'string', describe: 'SIP ports, comma separated (default 5060)' })
      .option('scope', { type: 'string', choices: ['all', 'sip'], describe: 'blocklist applies to all traffic (default) or only to SIP ports' })
      .option('block-capacity', { type: 'number', describe: 'exact entries the blocklist holds (default 262144, or the persisted entries and a quarter more)' })
      .option('prefix-capacity', { type: 'number', describe: 'CIDR entries (default 65536, or the persisted prefixes and a quarter more)' })
      .option('block-capacity6', { type: 'number', describe: 'exact IPv6 entries (default: as --block-capacity)' })
      .option('prefix-capacity6', { type: 'number', describe: 'IPv6 prefix entries (default: as --prefix-capacity)' })
      .option('stealth', { type: 'boolean', default: true, describe: 'drop OPTIONS from sources not in the OPTIONS allow set (--no-stealth: off)' })
      .option('malformed', { type: 'boolean', default: true, describe: 'drop malformed REGISTER (--no-malformed: off)' })
      .option('shadow', { type: 'boolean', default: false, describe: 'count would-drops, drop nothing' })
      .option('priority', { type: 'string', describe: "run priority in libxdp's dispatcher, 1-999, lower runs first (default 5: before xdp-filter's 10)" }) as never,
  handler: async (argv) => {
    const a = argv as Args<AttachArgs>;
    const { Context } = await import('../context.js');
    const { runScript } = await import('../scripts.js');
    const { restoreFromState } = await import('../blocklist.js');
    const { StateError } = await import('../state.js');
    const { RuntimeError, UsageError } = await import('../errors.js');
    const ctx = Context.fromArgs(a);
    // What the state will restore sizes maps created now (existing maps keep their size: load.sh says so).
    let unreadable: InstanceType<typeof StateError> | undefined;
    let live = { exact: 0, prefixes: 0 };
    try {
      live = ctx.store.liveCounts(Math.floor(Date.now() / 1000));
    } catch (err) {
      if (!(err instanceof StateError)) throw err;
      unreadable = err;
    }
    const room = (n: number) => Math.ceil((n * 5) / 4);
    const args = [a.iface, '--mode', a.mode];
    if (a.ports) args.push('--ports', a.ports);
    if (a.scope) args.push('--scope', a.scope);
    const blockCap = a.blockCapacity ?? (room(live.exact) > DEFAULT_BLOCK_CAPACITY ? room(live.exact) : undefined);
    const prefixCap = a.prefixCapacity ?? (room(live.prefixes) > DEFAULT_PREFIX_CAPACITY ? room(live.prefixes) : undefined);
    if (blockCap !== undefined) args.push('--block-capacity', String(blockCap));
    if (prefixCap !== undefined) args.push('--prefix-capacity', String(prefixCap));
    if (a.blockCapacity6 !== undefined) args.push('--block-capacity6', String(a.blockCapacity6));
    if (a.prefixCapacity6 !== undefined) args.push('--prefix-capacity6', String(a.prefixCapacity6));
    if (!a.stealth) args.push('--no-stealth');
    if (!a.malformed) args.push('--no-malformed');
    if (a.shadow) args.push('--shadow');
    if (a.priority !== undefined) {
      // Given as text: yargs' number type turns 'abc' into NaN and '' into 0.
      if (!/^[1-9]\d{0,2}$/.test(a.priority)) throw new UsageError(`bad --priority ${quoted(a.priority)}: a whole number from 1 to 999 (lower runs first)`);
      args.push('--priority', a.priority);
    }
    const loaded = await runScript(ctx, 'load.sh', args);
    // Success is reported once the blocklist is back; until then the program enforces what the maps hold.
    const failed = (why: string) => {
      ctx.log.error('attached, blocklist not restored', { action: 'attach', iface: a.iface, state: ctx.store.path, error: why });
      process.stdout.write(`${loaded}\n`);
      return new RuntimeError(
        `the program is attached to ${a.iface} and enforcing what the pinned maps hold, but the blocklist was NOT restored from ${ctx.settings.stateDir}: ${why}. ` +
          `Fix that, then run vosctl attach ${a.iface} again (or vosctl detach ${a.iface})`,
      );
    };
    if (unreadable) throw failed(unreadable.message);
    let result: { restored: number; purged: number };
    try {
      result = await restoreFromState(ctx);
    } catch (err) {
      throw failed((err as Error).message);
    }
    const { restored, purged } = result;
    process.stdout.write(`${loaded}\n`);
    ctx.log.info('attached', { action: 'attach', iface: a.iface, mode: a.mode, restored, purged });
    process.stdout.write(`restored ${restored} entries from ${ctx.settings.stateDir}${purged ? `, purged ${purged} expired` : ''}\n`);
  },
};

interface DetachArgs {
  iface: string;
  purge: boolean;
}

export const detach: CommandModule<object, DetachArgs> = {
  command: 'detach <iface>',
  describe: 'Detach the XDP program; the maps stay pinned unless --purge',
  builder: (y) =>
    y.positional('iface', { type: 'string', demandOption: true }).option('purge', { type: 'boolean', default: false, describe: 'also remove the pinned maps (the state on disk stays)' }) as never,
  handler: async (argv) => {
    const a = argv as Args<DetachArgs>;
    const { Context } = await import('../context.js');
    const { runScript } = await import('../scripts.js');
    const ctx = Context.fromArgs(a);
    const out = await runScript(ctx, 'unload.sh', a.purge ? [a.iface, '--purge'] : [a.iface]);
    process.stdout.write(`${out}\n`);
    // unload.sh says "detached from X" only when it removed a program.
    const detached = /^detached from /m.test(out);
    ctx.log.info(detached ? 'detached' : 'nothing attached', { action: 'detach', iface: a.iface, detached, purge: a.purge });
  },
};
