/**
 * From a batch of message bodies to the map work and the per-message outcome.
 * Pure: the consumer does the I/O around it.
 */
import { MAX_TTL_S } from '../duration.js';
import { checkActionTarget, type BlockPolicy, type Target } from '../address.js';
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
  /** Blocks left out because their expiry (expires, or ts + ttl) has passed: acked, counted, not applied. */
  expired?: number;
  /** Set when the message goes to the dead-letter queue (after its good commands are applied). */
  deadReason?: string;
  /** A `ts` in the future this message carried (the first such one), or its AMQP timestamp when it had no ts: its ttl ran from now instead. */
  futureTs?: number;
  /** Which of the two futureTs is: the body's `ts`, or the AMQP `timestamp` property. */
  futureField?: 'ts' | 'timestamp';
}

/** `through`: the index of the last message of the batch whose commands are all in this run or earlier ones (a stream offset may be recorded up to it with this run). */
export type Run = ({ action: 'block'; reqs: BlockRequest[] } | { action: 'unblock'; targets: Target[] }) & { through: number };

/** When a message is planned: now, and the AMQP timestamp property (basic.properties timestamp, Unix seconds) if the publisher set one. */
export interface When {
  nowS: number;
  publishedS?: number;
}

/**
 * The seconds a block has left when it is applied now, or 0 when none (ttl 0
 * and no expires: never expires), or -1 when its expiry has passed. The
 * expiry is `expires` if given, else the decision time + ttl; without a
 * decision time the ttl runs from now. A `ts` in the future (a publisher's
 * clock ahead) counts as the AMQP timestamp, or now: it never lengthens the
 * ttl (decisionTime).
 */
export function remainingTtl(ttlS: number, c: { ts?: number; expires?: number }, when: When): number {
  const decided = decisionTime(c.ts, when);
  if (c.expires !== undefined) {
    // One TTL rule for every input: an absolute expiry is capped like a ttl (lib/duration.ts MAX_TTL_S), from the
    // decision time when the message has one, so that every node (and every replay) stores the same expiry.
    const ends = Math.min(c.expires, (decided ?? when.nowS) + MAX_TTL_S);
    return ends > when.nowS ? ends - when.nowS : -1;
  }
  if (ttlS === 0 || decided === undefined) return ttlS;
  const left = Math.min(ttlS, decided + ttlS - when.nowS);
  return left > 0 ? left : -1;
}

/**
 * When the decision was made (Unix seconds), or undefined when the message
 * says nothing: `ts`, else the AMQP timestamp, never later than now. A `ts`
 * in the future (the publisher's clock ahead) is replaced by the AMQP
 * timestamp when there is one (when it was published, the same on every
 * replay), else by now: it never gives a fresh full ttl from a time to come.
 */
export function decisionTime(ts: number | undefined, when: When): number | undefined {
  if (ts !== undefined && ts <= when.nowS) return ts;
  if (ts === undefined && when.publishedS === undefined) return undefined;
  return Math.min(when.publishedS ?? when.nowS, when.nowS);
}

/** A ts this far ahead of now is reported (clamped to now in any case): clocks a few seconds apart are not news. */
export const FUTURE_TS_SLACK_S = 5;

/** AMQP 0-9-1 timestamps are seconds; above this a value is milliseconds (10^11 s is the year 5138). */
const MS_FROM = 1e11;
/** Above this even milliseconds are implausible (the year 5138 in ms): microseconds or garbage. */
const MS_UNTIL = 1e14;
/** Below this a seconds value is before 2001-09-09: 0 (unset) or garbage, not a decision time. */
const SECONDS_FROM = 1e9;

/**
 * The AMQP timestamp property (basic.properties timestamp) as Unix seconds.
 * A value in milliseconds (10^11 .. 10^14, a common publisher mistake) is
 * converted, with a note saying so; a value below 10^9 (before 2001) or
 * above 10^14 is not a time and is ignored, with a note (0 silently: unset).
 */
export function amqpTimestamp(v: unknown): { publishedS?: number; note?: string } {
  if (typeof v !== 'number' || !Number.isFinite(v) || v === 0) return {};
  if (v >= SECONDS_FROM && v < MS_FROM) return { publishedS: Math.floor(v) };
  if (v >= MS_FROM && v < MS_UNTIL) return { publishedS: Math.floor(v / 1000), note: `the AMQP timestamp ${v} is in milliseconds (AMQP 0-9-1 timestamps are seconds): read as ${Math.floor(v / 1000)}` };
  return { note: `the AMQP timestamp ${v} is not Unix seconds: ignored` };
}

export function planMessage(body: Uint8Array, policy: BlockPolicy, d: Defaults, when: When = { nowS: Math.floor(Date.now() / 1000) }): PlannedMessage {
  const parsed = parseMessage(body, d.maxBytes);
  if (!parsed.ok) return { commands: [], deadReason: parsed.reason };
  const commands: ValidCommand[] = [];
  const refused: string[] = [];
  let expired = 0;
  let futureTs: number | undefined;
  let futureField: 'ts' | 'timestamp' | undefined;
  for (const c of parsed.commands) {
    const checked = checkActionTarget(c.action, c.target, policy);
    if (!checked.ok) {
      refused.push(checked.reason);
      continue;
    }
    // The decision time, the body's ts or else the AMQP timestamp, ahead of now: clamped (decisionTime), reported, counted.
    if (c.ts !== undefined && c.ts > when.nowS + FUTURE_TS_SLACK_S) {
      futureTs ??= c.ts;
      futureField ??= 'ts';
    } else if (c.ts === undefined && when.publishedS !== undefined && when.publishedS > when.nowS + FUTURE_TS_SLACK_S) {
      futureTs ??= when.publishedS;
      futureField ??= 'timestamp';
    }
    const ttlS = c.action === 'block' ? remainingTtl(c.ttlS ?? d.ttlS, c, when) : (c.ttlS ?? d.ttlS);
    if (ttlS < 0) {
      expired++;
      continue;
    }
    commands.push({ action: c.action, target: checked.target, ttlS, source: c.source ?? d.source, reason: c.reason ?? null });
  }
  const out: PlannedMessage = refused.length ? { commands, deadReason: `refused ${refused.length} of ${parsed.commands.length}: ${refused.join('; ')}` } : { commands };
  if (expired) out.expired = expired;
  if (futureTs !== undefined) {
    out.futureTs = futureTs;
    out.futureField = futureField;
  }
  return out;
}

/** The batch's commands in arrival order, consecutive ones of one action merged into one map operation. */
export function planRuns(messages: readonly PlannedMessage[]): Run[] {
  const runs: Run[] = [];
  messages.forEach((m, i) => {
    for (const c of m.commands) {
      let last = runs[runs.length - 1];
      if (!last || last.action !== c.action) {
        last = c.action === 'block' ? { action: 'block', reqs: [], through: i - 1 } : { action: 'unblock', targets: [], through: i - 1 };
        runs.push(last);
      }
      if (last.action === 'block') last.reqs.push({ target: c.target, ttlS: c.ttlS, source: c.source, reason: c.reason });
      else last.targets.push(c.target);
    }
    if (runs.length) runs[runs.length - 1]!.through = i;
  });
  return runs;
}

/** Exponential backoff with full jitter: a random delay up to min(cap, base * 2^attempt). */
export function backoffMs(attempt: number, baseMs: number, capMs: number, random: () => number = Math.random): number {
  const ceiling = Math.min(capMs, baseMs * 2 ** Math.min(attempt, 30));
  return Math.max(baseMs, Math.round(ceiling * random()));
}
