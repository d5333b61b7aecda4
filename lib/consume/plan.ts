/**
 * From a batch of message bodies to the map work and the per-message outcome.
 * Pure: the consumer does the I/O around it.
 */
import { checkBlockTarget, parseTarget, type BlockPolicy, type Target } from '../address.js';
import type { BlockRequest } from '../blocklist.js';
import { parseMessage, type Action } from '../messages.js';

export interface Defaults {
  /** For messages without a ttl; 0 = never. */
  ttlS: number;
  source: string;
  maxBytes: number;
}

export interface ValidCommand {
  action: Action;
  target: Target;
  ttlS: number;
  source: string;
  reason: string | null;
}

export interface PlannedMessage {
  commands: ValidCommand[];
  /** Set when the message goes to the dead-letter queue (after its good commands are applied). */
  deadReason?: string;
}

export type Run = { action: 'block'; reqs: BlockRequest[] } | { action: 'unblock'; targets: Target[] };

export function planMessage(body: Uint8Array, policy: BlockPolicy, d: Defaults): PlannedMessage {
  const parsed = parseMessage(body, d.maxBytes);
  if (!parsed.ok) return { commands: [], deadReason: parsed.reason };
  const commands: ValidCommand[] = [];
  const refused: string[] = [];
  for (const c of parsed.commands) {
    // Unblocking needs a well-formed target only: lifting a block is always allowed.
    const checked = c.action === 'block' ? checkBlockTarget(c.target, policy) : parseTarget(c.target);
    if (!checked.ok) {
      refused.push(checked.reason);
      continue;
    }
    commands.push({ action: c.action, target: checked.target, ttlS: c.ttlS ?? d.ttlS, source: c.source ?? d.source, reason: c.reason ?? null });
  }
  return refused.length ? { commands, deadReason: `refused ${refused.length} of ${parsed.commands.length}: ${refused.join('; ')}` } : { commands };
}

/** The batch's commands in arrival order, consecutive ones of one action merged into one map operation. */
export function planRuns(messages: readonly PlannedMessage[]): Run[] {
  const runs: Run[] = [];
  for (const m of messages) {
    for (const c of m.commands) {
      let last = runs[runs.length - 1];
      if (!last || last.action !== c.action) {
        last = c.action === 'block' ? { action: 'block', reqs: [] } : { action: 'unblock', targets: [] };
        runs.push(last);
      }
      if (last.action === 'block') last.reqs.push({ target: c.target, ttlS: c.ttlS, source: c.source, reason: c.reason });
      else last.targets.push(c.target);
    }
  }
  return runs;
}

/** Exponential backoff with full jitter: a random delay up to min(cap, base * 2^attempt). */
export function backoffMs(attempt: number, baseMs: number, capMs: number, random: () => number = Math.random): number {
  const ceiling = Math.min(capMs, baseMs * 2 ** Math.min(attempt, 30));
  return Math.max(baseMs, Math.round(ceiling * random()));
}
