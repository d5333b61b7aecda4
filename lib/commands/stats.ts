import type { CommandModule } from 'yargs';
import type { Args } from './common.js';
import { printJson } from './common.js';

interface StatsArgs {
  json: boolean;
  watch?: number;
}

export const stats: CommandModule<object, StatsArgs> = {
  command: 'stats',
  describe: 'Packet counters by reason (summed over CPUs); --watch shows rates',
  builder: (y) =>
    y
      .option('json', { type: 'boolean', default: false })
      .option('watch', { type: 'number', describe: 'print rates every SECONDS until interrupted' }) as never,
  handler: async (argv) => {
    const a = argv as Args<StatsArgs>;
    const { Context } = await import('../context.js');
    const { readCounters } = await import('../maps/bpftool.js');
    const { checkInterval, WATCH_S } = await import('../duration.js');
    const ctx = Context.fromArgs(a);
    const pin = ctx.pin('stats');
    if (a.watch === undefined) {
      const c = await readCounters(pin);
      if (a.json) return printJson(c);
      process.stdout.write(`${'reason'.padEnd(20)} ${'packets'.padStart(15)} ${'bytes'.padStart(18)}\n`);
      for (const [name, v] of Object.entries(c)) process.stdout.write(`${name.padEnd(20)} ${String(v.packets).padStart(15)} ${String(v.bytes).padStart(18)}\n`);
      return;
    }
    checkInterval('watch', a.watch, WATCH_S);
    let prev = await readCounters(pin);
    let stop = false;
    process.once('SIGINT', () => (stop = true));
    process.once('SIGTERM', () => (stop = true));
    while (!stop) {
      await new Promise((r) => setTimeout(r, a.watch! * 1000));
      const cur = await readCounters(pin);
      const rates = Object.fromEntries(Object.entries(cur).map(([k, v]) => [k, Math.round((v.packets - (prev[k]?.packets ?? 0)) / a.watch!)]));
      if (a.json) process.stdout.write(JSON.stringify({ time: new Date().toISOString(), pps: rates }) + '\n');
      else process.stdout.write(`${new Date().toISOString()} ${Object.entries(rates).map(([k, v]) => `${k}=${v}/s`).join(' ')}\n`);
      prev = cur;
    }
  },
};
