/**
 * The one check every row read from the state database passes before it is
 * used (restore at attach, reconcile and its salvage, list, status, gc,
 * consume's lookups): the same rules as input, since a row can be edited by
 * hand with the sqlite3 shell or come out of a damaged file. Pure: no I/O.
 */
import { checkStoredTarget } from './address.js';
import { MAX_TTL_S } from './duration.js';
import { SOURCE_NAME } from './maps/layout.js';

/** A row as read: rowid, target, source, reason, added, expires, family, prefixlen (the last two generated from target). */
export type StateRow = [number, unknown, unknown, unknown, unknown, unknown, unknown, unknown];

/** Why a row is not used: its rowid, the column at fault, the value as stored, and the rule it breaks. */
export interface RowProblem {
  rowid: number;
  column: string;
  value: unknown;
  why: string;
  /** The target text when it is a usable name for `vosctl unblock`. */
  target?: string;
}

/** Largest Unix time the maps' 32-bit `added` field holds. */
const U32_MAX = 0xffffffff;
/** Slack on the TTL cap for the clocks of the writer and the reader (s). */
const TTL_SLACK_S = 86_400;

const isInt = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v);

/**
 * null when the row is sound at wall-clock time nowS (Unix seconds), else
 * the first problem: target not an address or CIDR in canonical form
 * (checkStoredTarget; entries added under older blocklist rules still pass),
 * family/prefixlen not those of the target, source not a source name
 * (SOURCE_NAME), reason neither text nor NULL, added not an integer in
 * 0..2^32-1, expires neither 0 nor an integer at most MAX_TTL_S (+1 day)
 * after max(added, nowS).
 */
export function checkStateRow(r: StateRow, nowS: number): RowProblem | null {
  const [rowid, target, source, reason, added, expires, family, prefixlen] = r;
  const bad = (column: string, value: unknown, why: string, name?: string): RowProblem => ({ rowid, column, value, why, target: name });
  if (typeof target !== 'string') return bad('target', target, 'it is not text');
  const p = checkStoredTarget(target);
  if (typeof p === 'string') return bad('target', target, p);
  if (family !== p.family) return bad('family', family, `target ${target} is IPv${p.family}`);
  if (prefixlen !== p.prefixlen) return bad('prefixlen', prefixlen, `target ${target} has prefix length ${p.prefixlen}`);
  if (typeof source !== 'string' || !SOURCE_NAME.test(source)) return bad('source', source, 'not a source name (1-31 of A-Z a-z 0-9 . _ -)', target);
  if (reason !== null && typeof reason !== 'string') return bad('reason', reason, 'neither text nor NULL', target);
  if (!isInt(added) || added < 0 || added > U32_MAX) return bad('added', added, `not a Unix time in seconds (0..${U32_MAX})`, target);
  if (!isInt(expires) || expires < 0) return bad('expires', expires, 'not a Unix time in seconds (0 = never)', target);
  const cap = Math.max(added, nowS) + MAX_TTL_S + TTL_SLACK_S;
  if (expires > cap) return bad('expires', expires, `more than the 10-year TTL limit ahead (at most ${cap})`, target);
  return null;
}

/** One line naming a skipped row and how to remove it (`sqlite3 path`). */
export function describeRowProblem(p: RowProblem, path: string): string {
  const fix = [p.target ? `vosctl unblock ${p.target}` : '', `sqlite3 ${path} "DELETE FROM entries WHERE rowid = ${p.rowid}"`].filter(Boolean).join(', or ');
  return `row ${p.rowid} of ${path} skipped: ${p.column} = ${JSON.stringify(typeof p.value === 'bigint' ? String(p.value) : p.value) ?? String(p.value)}: ${p.why}; remove it: ${fix}`;
}
