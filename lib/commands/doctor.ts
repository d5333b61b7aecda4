import type { CommandModule } from 'yargs';
import type { Args } from './common.js';
import { printJson } from './common.js';

interface DoctorArgs {
  iface?: string;
  mode: 'native' | 'skb';
  json: boolean;
}

export const doctor: CommandModule<object, DoctorArgs> = {
  command: 'doctor [iface]',
  describe: 'Check the host before an attach: privileges, kernel, bpffs, tools, the NIC, the state folder, the broker; exit 0 only when an attach would work',
  builder: (y) =>
    y
      .positional('iface', { type: 'string', describe: 'also check this interface: its driver, native XDP, programs already on it' })
      .option('json', { type: 'boolean', default: false })
      .option('mode', { type: 'string', choices: ['native', 'skb'], default: 'native', describe: 'the attach mode to judge the interface for (as vosctl attach --mode)' })
      .option('url', { type: 'string', describe: 'broker URL to check [env VOS_AMQP_URL]; checked when one is configured' })
      .option('ca-file', { type: 'string', describe: 'CA certificate for amqps [env VOS_AMQP_CA_FILE]' })
      .option('password-file', { type: 'string', describe: 'file holding the broker password [env VOS_AMQP_PASSWORD_FILE]' }) as never,
  handler: async (argv) => {
    const a = argv as Args<DoctorArgs>;
    const { Context } = await import('../context.js');
    const { DEFAULTS } = await import('../settings.js');
    const { doctor: run } = await import('../doctor/probe.js');
    const { report, renderText } = await import('../doctor/judge.js');
    const ctx = Context.fromArgs(a);
    const brokerConfigured = a.url !== undefined || process.env.VOS_AMQP_URL !== undefined || ctx.settings.amqpUrl !== DEFAULTS.amqpUrl;
    const r = report(await run(ctx.settings, { iface: a.iface, mode: a.mode, brokerConfigured }));
    if (a.json) printJson(r);
    else process.stdout.write(renderText(r));
    // 3: the host is not ready (lib/errors.ts EnvError), without a second message on stderr.
    if (!r.ok) process.exitCode = 3;
  },
};
