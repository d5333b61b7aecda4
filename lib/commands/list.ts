import type { CommandModule } from 'yargs';
import type { Args } from './common.js';
import { printJson } from './common.js';

interface ListArgs {
  source?: string;
  family?: number;
  json: boolean;
}

/**
 * Text a terminal shows as written: control characters (C0, DEL, C1: a reason
 * comes from feeds and SIP servers and could move the cursor or fake rows)
 * become \xNN escapes, and a backslash becomes \\ so an escape cannot be faked.
 */
export function visible(text: string): string {
  return text.replace(/[\\\x00-\x1f\x7f-\x9f]/g, (c) => (c === '\\' ? '\\\\' : `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`));
}

export const list: CommandModule<object, ListArgs> = {
  command: 'list',
  describe: 'Every blocklist entry in force, with source, reason, time added and expiry',
  builder: (y) =>
    y
      .option('source', { type: 'string', describe: 'only entries of this source' })
      .option('family', { type: 'number', choices: [4, 6], describe: 'only IPv4 (4) or IPv6 (6) entries' })
      .option('json', { type: 'boolean', default: false, describe: 'an array of {ip, source, reason, added, expires}' }) as never,
  handler: async (argv) => {
    const a = argv as Args<ListArgs>;
    const { Context } = await import('../context.js');
    const { listEntries } = await import('../blocklist.js');
    const all = await listEntries(Context.fromArgs(a), a.source);
    const entries = a.family === undefined ? all : all.filter((e) => e.ip.includes(':') === (a.family === 6));
    if (a.json) return printJson(entries);
    const rows = entries.map((e) => [e.ip, e.source, e.added.replace('.000Z', 'Z'), e.expires?.replace('.000Z', 'Z') ?? 'never', visible(e.reason ?? '')]);
    const head = ['ip', 'source', 'added', 'expires', 'reason'];
    const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
    const line = (r: string[]) => r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd();
    process.stdout.write([line(head), ...rows.map(line)].join('\n') + `\n${entries.length} entries\n`);
  },
};
