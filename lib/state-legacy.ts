/**
 * Reader of the file store vosctl used before SQLite (blocklist.jsonl
 * snapshot + journal.jsonl), for the one-time migration in lib/state.ts.
 * Never writes. Lines that cannot be read (a torn last line, a `null`, a
 * record cut mid-way) are skipped and named, so one bad line costs one entry,
 * not the state.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Entry } from './state.js';

function decodeEntry(a: unknown): Entry | null {
  if (!Array.isArray(a) || typeof a[0] !== 'string' || typeof a[1] !== 'string') return null;
  return { ip: a[0], source: a[1], reason: typeof a[2] === 'string' ? a[2] : null, added: Number(a[3]) || 0, expires: Number(a[4]) || 0 };
}

/** Apply one journal line ({op: put|puts|del}); false when the line is not a record. */
function applyJournalLine(line: string, into: Map<string, Entry>): boolean {
  let op: { op?: unknown; e?: unknown; ip?: unknown; ips?: unknown; s?: unknown; r?: unknown; a?: unknown; x?: unknown };
  try {
    op = JSON.parse(line) as typeof op;
  } catch {
    return false;
  }
  if (!op || typeof op !== 'object') return false;
  if (op.op === 'puts' && Array.isArray(op.ips)) {
    for (const ip of op.ips) {
      if (typeof ip === 'string') into.set(ip, { ip, source: String(op.s), reason: typeof op.r === 'string' ? op.r : null, added: Number(op.a) || 0, expires: Number(op.x) || 0 });
    }
    return true;
  }
  if (op.op === 'put') {
    const e = decodeEntry(op.e);
    if (!e) return false;
    into.set(e.ip, e);
    return true;
  }
  if (op.op === 'del' && typeof op.ip === 'string') {
    into.delete(op.ip);
    return true;
  }
  return false;
}

/** The entries the old files hold, and the unreadable lines as "file:line". */
export function readLegacy(dir: string): { entries: Map<string, Entry>; badLines: string[] } {
  const entries = new Map<string, Entry>();
  const badLines: string[] = [];
  const lines = (name: string): string[] => (existsSync(join(dir, name)) ? readFileSync(join(dir, name), 'utf8').split('\n') : []);
  lines('blocklist.jsonl').forEach((line, i) => {
    if (!line) return;
    let e: Entry | null = null;
    try {
      e = decodeEntry(JSON.parse(line));
    } catch {
      /* named below */
    }
    if (e) entries.set(e.ip, e);
    else badLines.push(`blocklist.jsonl:${i + 1}`);
  });
  lines('journal.jsonl').forEach((line, i) => {
    if (line && !applyJournalLine(line, entries)) badLines.push(`journal.jsonl:${i + 1}`);
  });
  return { entries, badLines };
}
