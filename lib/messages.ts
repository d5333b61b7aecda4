/**
 * What a blocklist message says, whatever shape it came in. Pure: bytes in,
 * commands (or the reason the message is refused) out. Addresses are checked
 * later, by the one validator in address.ts.
 *
 * Accepted bodies:
 *   {"action":"block"|"unblock","ip":"1.2.3.4","ttl":"30m","reason":"..","source":"..",
 *    "ts":1764410000 (Unix seconds of the decision) | "expires":1764413600 (Unix seconds)}
 *   {"ip":"1.2.3.4"} (block), {"ips":[..]}, ["1.2.3.4", ..], "1.2.3.4"
 *   JSON-RPC 2.0 notifications as OpenSIPS event_rabbitmq sends them:
 *     {"jsonrpc":"2.0","method":"E_PIKE_BLOCKED","params":{"ip":"1.2.3.4"}}
 *     params by name or in order (["1.2.3.4"]); method block/unblock as well
 *   plain text: one address or CIDR per line (# comments and blank lines skipped)
 */
import { parseDuration } from './duration.js';
import { quoted } from './quote.js';

export type Action = 'block' | 'unblock';

export interface Command {
  action: Action;
  /** The address or CIDR as written; validated later. */
  target: string;
  /** Seconds; undefined = the consumer's default, 0 = never. */
  ttlS?: number;
  reason?: string;
  source?: string;
  /** Unix seconds when the publisher decided (the ttl runs from then). */
  ts?: number;
  /** Unix seconds when the block ends (wins over ts + ttl). */
  expires?: number;
}

export type ParsedMessage = { ok: true; commands: Command[] } | { ok: false; reason: string };

export const DEFAULT_MAX_BODY = 64 * 1024;
/** More targets than this in one message is a bulk import: use load-file. */
export const MAX_TARGETS = 10_000;

/** JSON-RPC methods that mean "block the ip in params". */
const BLOCK_METHODS = new Set(['E_PIKE_BLOCKED', 'block']);
/**
 * Who raises an event, and why, when its params do not say: OpenSIPS's pike
 * module raises E_PIKE_BLOCKED (OpenSIPS pike module docs, "Exported
 * Events"), so `vosctl list --source opensips` tells it apart.
 */
const EVENT_ORIGIN: Record<string, { source: string; reason: string }> = { E_PIKE_BLOCKED: { source: 'opensips', reason: 'pike' } };
const UNBLOCK_METHODS = new Set(['unblock']);

/**
 * A JSON number literal beyond a double's range (1e400): JSON.parse makes it
 * Infinity, which JSON.stringify shows as null. Kept with its text so that a
 * refusal names it as the message body has it.
 */
class Overflow {
  constructor(readonly raw: string) {}
  toJSON(): string {
    return this.raw;
  }
}

/**
 * A value of a message as the body has it, with its JSON type, for refusals:
 * `"abc" (a string)`, `1.5 (a number)`, `1e400 (a number beyond the range of
 * a double)`, `null`, `[1] (an array)`.
 */
export function shownJson(v: unknown): string {
  if (v instanceof Overflow) return `${v.raw} (a number beyond the range of a double)`;
  if (v === null) return 'null';
  if (typeof v === 'string') return `${JSON.stringify(v)} (a string)`;
  if (typeof v === 'number') return `${v} (a number)`;
  if (typeof v === 'boolean') return `${v} (a boolean)`;
  if (Array.isArray(v)) return `${JSON.stringify(v)} (an array)`;
  if (typeof v === 'object') return `${JSON.stringify(v)} (an object)`;
  return String(v);
}

/** A literal that may overflow a double: an exponent of 3+ digits, or 300+ digits in a row. Checked before paying for the reviver. */
const MAY_OVERFLOW = /[eE][+]?\d{3}|\d{300}/;

/** JSON.parse, number literals beyond a double kept as Overflow with their text (in document order; strings skipped). */
function parseJson(text: string): unknown {
  if (!MAY_OVERFLOW.test(text)) return JSON.parse(text);
  const big: string[] = [];
  for (const m of text.matchAll(/"(?:[^"\\]|\\.)*"|-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?/g)) if (m[0][0] !== '"' && !Number.isFinite(Number(m[0]))) big.push(m[0]);
  return JSON.parse(text, (_k, v: unknown) => (typeof v === 'number' && !Number.isFinite(v) ? new Overflow(big.shift() ?? (v > 0 ? 'a number' : 'a negative number')) : v));
}

function fail(reason: string): ParsedMessage {
  return { ok: false, reason };
}

type Fields = { ttlS?: number; reason?: string; source?: string; ts?: number; expires?: number };

/** Unix seconds after 2001-09-09 (1e9) and before 5138 (1e11): a millisecond value is refused by name. */
function unixSeconds(v: unknown): number | undefined {
  const n = typeof v === 'number' ? v : typeof v === 'string' && /^\d+(\.\d+)?$/.test(v.trim()) ? Number(v) : NaN;
  return Number.isFinite(n) && n >= 1e9 && n < 1e11 ? Math.floor(n) : undefined;
}

function optionalFields(o: Record<string, unknown>): Fields | string {
  const out: Fields = {};
  if (o.ttl !== undefined && o.ttl !== null) {
    const ttl = typeof o.ttl === 'number' || typeof o.ttl === 'string' ? parseDuration(o.ttl) : null;
    if (ttl === null) return `bad ttl ${shownJson(o.ttl)}: seconds or 30m, 2h, 7d (a longer one than 10 years is taken as 10 years)`;
    out.ttlS = ttl;
  }
  for (const k of ['ts', 'expires'] as const) {
    if (o[k] === undefined || o[k] === null) continue;
    const t = unixSeconds(o[k]);
    if (t === undefined) return `bad ${k} ${shownJson(o[k])}: Unix seconds (not milliseconds)`;
    out[k] = t;
  }
  for (const k of ['reason', 'source'] as const) {
    const v = o[k];
    if (v === undefined || v === null) continue;
    if (typeof v !== 'string') return `bad ${k} ${shownJson(v)}: must be a string`;
    if (v.length > 200) return `${k} is longer than 200 characters`;
    out[k] = v;
  }
  return out;
}

function targetsOf(list: unknown, what: string): string[] | string {
  if (!Array.isArray(list)) return `${what} must be an array of addresses`;
  if (list.length === 0) return `${what} is empty`;
  if (list.length > MAX_TARGETS) return `${what} has ${list.length} addresses, over ${MAX_TARGETS}: use vosctl load-file for bulk imports`;
  const bad = list.find((x) => typeof x !== 'string');
  if (bad !== undefined) return `${what} holds ${shownJson(bad)}, not an address string`;
  return list as string[];
}

function fromObject(o: Record<string, unknown>): ParsedMessage {
  let action: Action = 'block';
  let targets: string[];
  let fieldsFrom = o;
  if ('jsonrpc' in o || 'method' in o) {
    const method = o.method;
    if (typeof method !== 'string') return fail('JSON-RPC message without a method');
    if (BLOCK_METHODS.has(method)) action = 'block';
    else if (UNBLOCK_METHODS.has(method)) action = 'unblock';
    else return fail(`unknown JSON-RPC method ${quoted(method)} (known: ${[...BLOCK_METHODS, ...UNBLOCK_METHODS].join(', ')})`);
    const params = o.params;
    if (Array.isArray(params)) {
      // Parameters in order: the address first; OpenSIPS sends values only when the event names none.
      if (typeof params[0] !== 'string') return fail(`JSON-RPC ${method} params[0] must be the address, got ${shownJson(params[0])}`);
      return { ok: true, commands: [{ action, target: params[0], ...EVENT_ORIGIN[method] }] };
    }
    if (!params || typeof params !== 'object') return fail(`JSON-RPC ${method} without params`);
    fieldsFrom = { ...EVENT_ORIGIN[method], ...(params as Record<string, unknown>) };
  } else if (o.action !== undefined) {
    if (o.action !== 'block' && o.action !== 'unblock') return fail(`unknown action ${shownJson(o.action)} (block or unblock)`);
    action = o.action;
  }
  const { ip, ips } = fieldsFrom;
  if (ip !== undefined && ips !== undefined) return fail('both "ip" and "ips" given: use one');
  if (typeof ip === 'string') targets = [ip];
  else if (ip !== undefined) return fail(`"ip" must be a string, got ${shownJson(ip)}`);
  else if (ips !== undefined) {
    const t = targetsOf(ips, '"ips"');
    if (typeof t === 'string') return fail(t);
    targets = t;
  } else return fail('no "ip" or "ips" in the message');
  const fields = optionalFields(fieldsFrom);
  if (typeof fields === 'string') return fail(fields);
  return { ok: true, commands: targets.map((target) => ({ action, target, ...fields })) };
}

function fromJson(value: unknown): ParsedMessage {
  if (typeof value === 'string') return { ok: true, commands: [{ action: 'block', target: value }] };
  if (Array.isArray(value)) {
    const commands: Command[] = [];
    if (value.length > MAX_TARGETS) return fail(`the array has ${value.length} entries, over ${MAX_TARGETS}: use vosctl load-file for bulk imports`);
    for (const [i, item] of value.entries()) {
      const one = typeof item === 'string' ? { ok: true as const, commands: [{ action: 'block' as const, target: item }] } : item && typeof item === 'object' && !Array.isArray(item) ? fromObject(item as Record<string, unknown>) : fail(`not an address or object: ${shownJson(item)}`);
      if (!one.ok) return fail(`entry ${i}: ${one.reason}`);
      commands.push(...one.commands);
    }
    if (!commands.length) return fail('empty array');
    return { ok: true, commands };
  }
  if (value && typeof value === 'object') return fromObject(value as Record<string, unknown>);
  return fail(`a JSON ${value === null ? 'null' : typeof value} is not a blocklist message`);
}

function fromText(text: string): ParsedMessage {
  const targets = text
    .split(/\r?\n/)
    .map((l) => l.replace(/#.*/, '').trim())
    .filter(Boolean);
  if (!targets.length) return fail('empty message');
  if (targets.length > MAX_TARGETS) return fail(`${targets.length} lines, over ${MAX_TARGETS}: use vosctl load-file for bulk imports`);
  return { ok: true, commands: targets.map((target) => ({ action: 'block', target })) };
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

export function parseMessage(body: Uint8Array, maxBytes = DEFAULT_MAX_BODY): ParsedMessage {
  if (body.length > maxBytes) return fail(`body of ${body.length} bytes is over the ${maxBytes}-byte limit`);
  let text: string;
  try {
    text = utf8.decode(body);
  } catch {
    return fail('body is not UTF-8 text');
  }
  const start = text.trimStart()[0];
  if (start === '{' || start === '[' || start === '"') {
    let value: unknown;
    try {
      value = parseJson(text);
    } catch (err) {
      return fail(`body is not valid JSON: ${(err as Error).message}`);
    }
    return fromJson(value);
  }
  return fromText(text);
}
