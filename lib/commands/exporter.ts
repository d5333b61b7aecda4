import type { CommandModule } from 'yargs';
import type { Args } from './common.js';

export interface MetricsArgs {
  iface?: string[];
  driftInterval: number;
}

/** The options exporter and consume share. */
export const metricsOptions = {
  iface: { type: 'string', array: true, describe: 'interface that should run the program: program_attached{iface} is 0 when it does not (repeatable)' },
  'drift-interval': { type: 'number', default: 30, describe: 'seconds between comparisons of the maps with the state (0 = none, else 1 to 86400)' },
} as const;

export async function checkMetricsArgs(a: MetricsArgs): Promise<void> {
  const { checkInterval, PERIOD_S } = await import('../duration.js');
  checkInterval('drift-interval', a.driftInterval, PERIOD_S);
}

interface ExporterArgs extends MetricsArgs {
  listen?: string;
}

export const exporter: CommandModule<object, ExporterArgs> = {
  command: 'exporter',
  describe: 'Serve Prometheus metrics (/metrics): XDP counters, map fill levels, attachments, enforcement drift',
  builder: (y) =>
    y
      .option('listen', { type: 'string', describe: 'HOST:PORT to serve /metrics on [env VOS_METRICS_LISTEN] (default 127.0.0.1:9864)' })
      .options(metricsOptions) as never,
  handler: async (argv) => {
    const a = argv as Args<ExporterArgs>;
    await checkMetricsArgs(a);
    const { Context } = await import('../context.js');
    const { startMetrics } = await import('../metrics/index.js');
    const ctx = Context.fromArgs(a);
    const endpoint = await startMetrics(ctx, { listen: a.listen ?? ctx.settings.metricsListen, ifaces: a.iface ?? [], driftIntervalS: a.driftInterval });
    await new Promise<void>((resolve) => {
      // on, not once: execa's exit hook re-raises a signal that no other listener holds.
      process.on('SIGTERM', () => resolve());
      process.on('SIGINT', () => resolve());
    });
    ctx.log.info('exporter stopping', { action: 'metrics' });
    await endpoint.close();
  },
};

/** Internal: one drift check, its result as JSON on stdout; what the exporter runs in a child process (lib/metrics/driftcheck.ts). */
export const driftCheck: CommandModule<object, object> = {
  command: 'drift-check',
  describe: false,
  handler: async (argv) => {
    const { Context } = await import('../context.js');
    const { checkDriftOnce } = await import('../metrics/driftcheck.js');
    const { printJson } = await import('./common.js');
    printJson(await checkDriftOnce(Context.fromArgs(argv as Args<object>)));
  },
};
