import type { CommandModule } from 'yargs';
import type { Args } from './common.js';
import { checkSourceOption, ttlSeconds } from './common.js';

interface StdinArgs {
  ttl: string;
  source: string;
  batchSize: number;
  batchWait: number;
}

export const stdin: CommandModule<object, StdinArgs> = {
  command: 'stdin',
  describe: "Apply block/unblock lines from stdin as they come, in micro-batches (one consume message per line; fail2ban's Python action feeds this)",
  builder: (y) =>
    y
      .option('ttl', { type: 'string', default: '0', describe: 'expiry for lines that carry none (0 = never)' })
      .option('source', { type: 'string', default: 'stdin', describe: 'source name for lines that carry none' })
      .option('batch-size', { type: 'number', default: 5000, describe: 'most lines applied in one map operation' })
      .option('batch-wait', { type: 'number', default: 5, describe: 'ms a batch waits for more lines after its first one' }) as never,
  handler: async (argv) => {
    const a = argv as Args<StdinArgs>;
    const ttlS = ttlSeconds(a.ttl);
    await checkSourceOption(a.source);
    const { parseMessageLine } = await import('../feedline.js');
    const { feedFromStdin } = await import('../stdinfeed.js');
    await feedFromStdin(a, (line) => parseMessageLine(line, { ttlS, source: a.source }), { label: 'stdin', batchSize: a.batchSize, batchWaitMs: a.batchWait });
  },
};
