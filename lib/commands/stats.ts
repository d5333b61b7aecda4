import type { CommandModule } from 'yargs';
import type { Args } from './common.js';
import { printJson } from './common.js';

interface StatsArgs {
  json: boolean;
  watch?: number;
}

/**
 * The counters as vosctl stats prints them: one line per reason, the reason
 * column as wide as the longest name ("malformed_register_ipv6" and longer
 * stay in line), packets and bytes right-aligned. scripts/stats.sh sizes its
 * column the same way.
 */
export function counterTable(c: Record<string, { packets: number; bytes: number }>): string {
  const width = Math.max('reason'.length, ...Object.keys(c).map((k) => k.length));
  const row = (name: string, packets: string, bytes: string) => `${name.padEnd(width)} ${packets.padStart(15)} ${bytes.padStart(18)}\n`;
  return row('reason', 'packets', 'bytes') + Object.entries(c).map(([name, v]) => row(name, String(v.packets), String(v.bytes))).join('');
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
      process.stdout.write(counterTable(c));
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
