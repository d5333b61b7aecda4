import type { CommandModule } from 'yargs';
import type { Args } from './common.js';
import { checkSourceOption } from './common.js';

interface CrowdsecArgs {
  decision: string[];
  source: string;
  batchSize: number;
  batchWait: number;
}

export const crowdsec: CommandModule<object, CrowdsecArgs> = {
  command: 'crowdsec [decision..]',
  describe: "Enforce CrowdSec decisions from crowdsec-custom-bouncer: with no arguments its feed_via_stdin stream (JSON lines, micro-batched), else one decision: add|del <value> <duration_s> <reason> <json>",
  builder: (y) =>
    y
      .positional('decision', { type: 'string', array: true, describe: 'add|del <value> <duration_s> <reason> <json> (the per-decision form)' })
      .option('source', { type: 'string', default: 'crowdsec', describe: "source name of CrowdSec's entries (the scenario is kept as the reason)" })
      .option('batch-size', { type: 'number', default: 5000, describe: 'most decisions applied in one map operation' })
      .option('batch-wait', { type: 'number', default: 5, describe: 'ms a batch waits for more decisions after its first one' }) as never,
  handler: async (argv) => {
    const a = argv as Args<CrowdsecArgs>;
    await checkSourceOption(a.source);
    const { parseDecisionArgs, parseDecisionLine } = await import('../crowdsec.js');
    const decision = (a.decision ?? []).map(String);
    if (decision.length) {
      const { applyOne } = await import('../stdinfeed.js');
      await applyOne(a, parseDecisionArgs(decision, { source: a.source }), 'crowdsec');
      return;
    }
    const { feedFromStdin } = await import('../stdinfeed.js');
    await feedFromStdin(a, (line) => parseDecisionLine(line, { source: a.source }), { label: 'crowdsec', batchSize: a.batchSize, batchWaitMs: a.batchWait });
  },
};
