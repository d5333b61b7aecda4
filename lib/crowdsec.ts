/**
 * CrowdSec decisions as crowdsec-custom-bouncer hands them over. Pure: text in,
 * feed commands (or the reason a decision is refused or skipped) out; the
 * address is checked later by the one validator in address.ts.
 *
 * Two forms (crowdsec-custom-bouncer 0.0.15):
 *   - feed_via_stdin: true: one JSON object per line, a models.Decision plus
 *     "action": {"action":"add","value":"1.2.3.4","duration":"3h59m56.919s",
 *     "scope":"Ip","type":"ban","origin":"cscli","scenario":"manual 'ban' from '...'",...}
 *   - one process per decision: `add|del <value> <duration_s> <reason> <json>`.
 */
import { networkOf } from './address.js';
import { MAX_TTL_S } from './duration.js';
import type { FeedCommand, LineOutcome } from './feedline.js';
import { quoted } from './quote.js';

const GO_UNIT_S: Record<string, number> = { ns: 1e-9, us: 1e-6, 'µs': 1e-6, 'μs': 1e-6, ms: 1e-3, s: 1, m: 60, h: 3600 };

/**
 * A Go time.Duration string ("3h59m56.919s", "-1.5s", "300ms", "0") in
 * seconds (may be negative or fractional), or null if it is not one.
 * Source: Go's time.ParseDuration (a sign, then number+unit pairs; units ns us µs ms s m h).
 */
export function parseGoDuration(text: string): number | null {
  const m = /^([-+]?)(.*)$/.exec(text.trim())!;
  const body = m[2]!;
  if (body === '0') return 0;
  if (!body) return null;
  const part = /(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)/gy;
  let total = 0;
  let at = 0;
  for (let p = part.exec(body); p; p = part.exec(body)) {
    total += Number(p[1]) * GO_UNIT_S[p[2]!]!;
    at = part.lastIndex;
  }
  if (at !== body.length) return null;
  return m[1] === '-' ? -total : total;
}

export interface DecisionOptions {
  /** Our source name for CrowdSec's decisions (a short tag). */
  source: string;
}

/** Scopes we can enforce at the NIC; CrowdSec spells them "Ip" and "Range" (case varies across versions). */
const SCOPES = new Set(['ip', 'range']);

/**
 * One decision object (already JSON-parsed) to a command. Deletions need only
 * the value; additions also a positive duration and a "ban" type (a captcha
 * has no meaning at the NIC, so it is skipped, not refused).
 */
export function decisionCommand(d: unknown, o: DecisionOptions, actionOverride?: string): LineOutcome {
  if (!d || typeof d !== 'object' || Array.isArray(d)) return { ok: false, reason: `not a decision object: ${JSON.stringify(d)}` };
  const r = d as Record<string, unknown>;
  const action = actionOverride ?? r.action;
  if (action !== 'add' && action !== 'del') return { ok: false, reason: `unknown action ${JSON.stringify(action)} (add or del)` };
  if (typeof r.value !== 'string' || !r.value) return { ok: false, reason: `decision without a "value": ${JSON.stringify(d)}` };
  let value: string = r.value;
  const scope = typeof r.scope === 'string' ? r.scope : 'Ip';
  if (!SCOPES.has(scope.toLowerCase())) return { skip: `scope ${scope} of ${value} is not an address or range` };
  // CrowdSec accepts a Range with host bits set and means its network; the operator's CLI keeps refusing one.
  let note: string | undefined;
  const network = scope.toLowerCase() === 'range' ? networkOf(value) : null;
  if (network) {
    note = `range ${value} has host bits set: taken as its network ${network}`;
    value = network;
  }
  if (action === 'del') return { ok: true, cmds: [{ action: 'unblock', target: value, ttlS: 0, source: o.source, reason: null }], note };
  if (r.type !== undefined && r.type !== 'ban') return { skip: `type ${JSON.stringify(r.type)} of ${value}: only bans are enforced at the NIC` };
  // Go durations as the bouncer sends them ("3h59m56.919s"); a bare number is taken as seconds.
  let seconds: number | null;
  if (typeof r.duration === 'number') seconds = Number.isFinite(r.duration) ? r.duration : null;
  else if (typeof r.duration === 'string') seconds = parseGoDuration(r.duration);
  else return { ok: false, reason: `decision for ${value} without a "duration" (a Go duration like "4h" or a number of seconds)` };
  if (seconds === null) return { ok: false, reason: `bad duration ${JSON.stringify(r.duration)} for ${value}: a Go duration like "3h59m56.919s" or a number of seconds` };
  if (seconds <= 0) return { skip: `decision for ${value} has already expired (duration ${JSON.stringify(r.duration)})` };
  const scenario = typeof r.scenario === 'string' && r.scenario ? r.scenario.slice(0, 200) : null;
  // Capped like every other TTL we take (10 years, lib/duration.ts); CrowdSec writes "forever" as a very long duration.
  const ttlS = Math.min(Math.ceil(seconds), MAX_TTL_S);
  if (ttlS === MAX_TTL_S && seconds > MAX_TTL_S) note = [note, `duration ${JSON.stringify(r.duration)} of ${value} is above the 10-year limit: taken as 3650d`].filter(Boolean).join('; ');
  const cmd: FeedCommand = { action: 'block', target: value, ttlS, source: o.source, reason: scenario };
  return { ok: true, cmds: [cmd], note };
}

/** One line of the feed_via_stdin stream. */
export function parseDecisionLine(line: string, o: DecisionOptions): LineOutcome {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch (err) {
    return { ok: false, reason: `not JSON: ${(err as Error).message}` };
  }
  return decisionCommand(value, o);
}

/**
 * The one-process-per-decision form: `add|del <value> <duration_s> <reason> [<json>]`.
 * The positional values are the decision; the JSON, when given, adds what they
 * lack (scope, type, and its duration, which is more precise) and wins where both say.
 */
export function parseDecisionArgs(args: readonly string[], o: DecisionOptions): LineOutcome {
  const [action, value, duration, reason, json] = args;
  if (duration !== undefined && !/^-?\d+$/.test(duration)) return { ok: false, reason: `bad duration ${quoted(duration)}: whole seconds` };
  const positional: Record<string, unknown> = { value, duration: `${duration ?? 0}s`, scenario: reason, scope: value?.includes('/') ? 'Range' : 'Ip' };
  if (!json) return decisionCommand(positional, o, action);
  let d: unknown;
  try {
    d = JSON.parse(json);
  } catch (err) {
    return { ok: false, reason: `decision JSON is not JSON: ${(err as Error).message}` };
  }
  if (!d || typeof d !== 'object' || Array.isArray(d)) return { ok: false, reason: `decision JSON is not an object: ${json}` };
  const fields = Object.fromEntries(Object.entries(d as Record<string, unknown>).filter(([, v]) => v !== null && v !== undefined && v !== ''));
  return decisionCommand({ ...positional, ...fields }, o, action);
}
