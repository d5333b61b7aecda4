/**
 * Line-fed inputs (CrowdSec's stdin stream, fail2ban's action, any script):
 * each line becomes feed commands, a batch of them becomes the runs of the one
 * apply path (lib/blocklist.ts). Pure.
 */
import { checkActionTarget, type BlockPolicy, type Target } from './address.js';
import type { BlockRequest } from './blocklist.js';
import { SOURCE_NAME } from './maps/layout.js';
import { parseMessage } from './messages.js';
import { quoted } from './quote.js';

export interface FeedCommand {
  action: 'block' | 'unblock';
  /** Address or CIDR as written; validated by planFeedRuns. */
  target: string;
  /** Seconds; 0 = never. */
  ttlS: number;
  /** Source the entry is recorded under; an unblock removes only this source's entries. */
  source: string;
  reason: string | null;
}

/** A line's commands (with a note to log when the input was adjusted), or why it is refused (reported, counted, skipped), or why it is ignored on purpose. */
export type LineOutcome = { ok: true; cmds: FeedCommand[]; note?: string } | { ok: false; reason: string } | { skip: string };

export type FeedRun = { action: 'block'; reqs: BlockRequest[] } | { action: 'unblock'; source: string; targets: Target[] };

/**
 * Validate a batch of commands and merge consecutive ones of one kind into map
 * operations, keeping arrival order (a del after an add of the same address
 * wins). Refusals name the value and why.
 */
export function planFeedRuns(cmds: readonly FeedCommand[], policy: BlockPolicy): { runs: FeedRun[]; refused: string[] } {
  const runs: FeedRun[] = [];
  const refused: string[] = [];
  for (const c of cmds) {
    if (!SOURCE_NAME.test(c.source)) {
      refused.push(`bad source name ${quoted(c.source)} for ${c.target}: 1-31 of A-Z a-z 0-9 . _ -`);
      continue;
    }
    const checked = checkActionTarget(c.action, c.target, policy);
    if (!checked.ok) {
      refused.push(checked.reason);
      continue;
    }
    let last = runs[runs.length - 1];
    if (c.action === 'block') {
      if (last?.action !== 'block') runs.push((last = { action: 'block', reqs: [] }));
      last.reqs.push({ target: checked.target, ttlS: c.ttlS, source: c.source, reason: c.reason });
    } else {
      if (last?.action !== 'unblock' || last.source !== c.source) runs.push((last = { action: 'unblock', source: c.source, targets: [] }));
      last.targets.push(checked.target);
    }
  }
  return { runs, refused };
}

/**
 * One line in `vosctl consume`'s message format (lib/messages.ts), e.g.
 * {"action":"block","ip":"192.0.2.7","ttl":600,"source":"fail2ban-sip","reason":"auth"}.
 * Fields the line lacks come from `defaults`.
 */
export function parseMessageLine(line: string, defaults: { ttlS: number; source: string }): LineOutcome {
  const parsed = parseMessage(Buffer.from(line));
  if (!parsed.ok) return { ok: false, reason: parsed.reason };
  return {
    ok: true,
    cmds: parsed.commands.map((c) => ({ action: c.action, target: c.target, ttlS: c.ttlS ?? defaults.ttlS, source: c.source ?? defaults.source, reason: c.reason ?? null })),
  };
}
