import type { CommandModule } from 'yargs';
import type { Args } from './common.js';

interface AttachArgs {
  iface: string;
  mode: string;
  ports?: string;
  scope?: string;
  blockCapacity?: number;
  prefixCapacity?: number;
  stealth: boolean;
  malformed: boolean;
  shadow: boolean;
  priority?: number;
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
      .option('block-capacity', { type: 'number', describe: 'exact entries the blocklist holds (default 262144)' })
      .option('prefix-capacity', { type: 'number', describe: 'CIDR entries (default 65536)' })
      .option('stealth', { type: 'boolean', default: true, describe: 'drop OPTIONS from sources not in the OPTIONS allow set (--no-stealth: off)' })
      .option('malformed', { type: 'boolean', default: true, describe: 'drop malformed REGISTER (--no-malformed: off)' })
      .option('shadow', { type: 'boolean', default: false, describe: 'count would-drops, drop nothing' })
      .option('priority', { type: 'number', describe: "run priority in libxdp's dispatcher, 1-999, lower runs first (default 5: before xdp-filter's 10)" }) as never,
  handler: async (argv) => {
    const a = argv as Args<AttachArgs>;
    const { Context } = await import('../context.js');
    const { runScript } = await import('../scripts.js');
    const { restoreFromState } = await import('../blocklist.js');
    const ctx = Context.fromArgs(a);
    const args = [a.iface, '--mode', a.mode];
    if (a.ports) args.push('--ports', a.ports);
    if (a.scope) args.push('--scope', a.scope);
    if (a.blockCapacity !== undefined) args.push('--block-capacity', String(a.blockCapacity));
    if (a.prefixCapacity !== undefined) args.push('--prefix-capacity', String(a.prefixCapacity));
    if (!a.stealth) args.push('--no-stealth');
    if (!a.malformed) args.push('--no-malformed');
    if (a.shadow) args.push('--shadow');
    if (a.priority !== undefined) args.push('--priority', String(a.priority));
    process.stdout.write(`${await runScript(ctx, 'load.sh', args)}\n`);
    const { restored, purged } = await restoreFromState(ctx);
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
    process.stdout.write(`${await runScript(ctx, 'unload.sh', a.purge ? [a.iface, '--purge'] : [a.iface])}\n`);
    ctx.log.info('detached', { action: 'detach', iface: a.iface, purge: a.purge });
  },
};
