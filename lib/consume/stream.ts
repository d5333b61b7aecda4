/**
 * Stream mode's bookkeeping, pure: what the stored offset may be, how a
 * message is recognised again, and what the first delivery of a resume says
 * about the stream (the same one, shortened by retention, or deleted and
 * declared again with its offsets restarted at 0).
 *
 * RabbitMQ streams (3.9+) number messages from 0 in each stream; a consumer
 * asks where to start with the x-stream-offset argument of basic.consume, and
 * each delivery carries its offset in the x-stream-offset header. An offset
 * past the stream's end is not refused: the consumer waits there silently.
 * Retention removes whole segments from the start, so a stream's first
 * offset only grows, and its last one never goes back.
 */
import { createHash } from 'node:crypto';
import { UsageError } from '../errors.js';

/** Where a stream consumer's offset is kept in consumer_offsets. */
export function streamOffsetKey(stream: string): string {
  return `stream:${stream}`;
}

/** Where the fingerprint of the message at the stored offset is kept in consumer_offsets (its position column). */
export function streamCheckKey(stream: string): string {
  return `stream-check:${stream}`;
}

/** Where the offset that the fingerprint row describes is kept: a hand-edited offset then no longer matches it, and the check is skipped. */
export function streamCheckAtKey(stream: string): string {
  return `stream-check-at:${stream}`;
}

/**
 * A value read from SQLite as a person reads it, with its type: the integer
 * 9007199254740993 (exact, from a bigint), the real number 1.5, the text
 * 'abc', a blob x'3132', NULL. For refusals that must name the exact value.
 */
export function describeSqlValue(v: unknown): string {
  if (v === null || v === undefined) return 'NULL';
  if (typeof v === 'bigint') return `the integer ${v}`;
  if (typeof v === 'number') return Number.isInteger(v) ? `the integer ${v}` : `the real number ${v}`;
  if (typeof v === 'string') return `the text '${v}'`;
  if (v instanceof Uint8Array) return `a blob x'${Buffer.from(v).toString('hex')}'`;
  return `${typeof v} ${String(v)}`;
}

/** The stored offset is not an offset: named, with the way to fix it; exit 2, never retried. */
export class StoredOffsetError extends UsageError {}

/**
 * The stored offset as a number, or undefined when none is stored. An offset
 * is a whole number >= 0 (SQLite keeps whatever was written by hand: 'abc',
 * 1.5, -3 come back as they are, and the broker answers such an
 * x-stream-offset with 541 INTERNAL_ERROR on the whole connection).
 * Throws StoredOffsetError naming the value, the row and the fix.
 */
export function checkStoredOffset(value: unknown, stream: string, statePath: string): number | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value === 'number' && Number.isSafeInteger(value) && value >= 0) return value;
  if (typeof value === 'bigint' && value >= 0n && value <= BigInt(Number.MAX_SAFE_INTEGER)) return Number(value);
  const key = streamOffsetKey(stream);
  const why = typeof value === 'bigint' && value > 0n ? `above ${Number.MAX_SAFE_INTEGER}, the largest offset this node keeps exactly` : 'not a stream offset (a whole number >= 0)';
  throw new StoredOffsetError(
    `the stored offset of stream '${stream}' is ${describeSqlValue(value)}, ${why}: table consumer_offsets, row consumer = '${key}' in ${statePath}. ` +
      `To replay the stream from its first message: sqlite3 ${statePath} "DELETE FROM consumer_offsets WHERE consumer IN ('${key}', '${streamCheckKey(stream)}', '${streamCheckAtKey(stream)}')"; ` +
      `or set the offset of the last message this node applied: sqlite3 ${statePath} "UPDATE consumer_offsets SET position = N WHERE consumer = '${key}'"`,
  );
}

/** A stored fingerprint, or undefined when none (or not one: it is only a check, never a reason to stop). */
export function checkStoredFingerprint(value: unknown): number | undefined {
  if (typeof value === 'bigint') return value >= 0n && value < 2n ** 48n ? Number(value) : undefined;
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0 ? value : undefined;
}

/**
 * The fingerprint to check a resume against: the stored one when its row
 * `stream-check-at` names the stored offset (or is absent: states written
 * before it, where both rows were always written together). When it names
 * another offset (the offset was set by hand), no check (undefined) and a
 * note saying so: comparing another message's fingerprint would take the
 * stream for a new one and replay it whole.
 */
export function fingerprintFor(offset: number, fingerprint: unknown, at: unknown): { fingerprint?: number; note?: string } {
  const print = checkStoredFingerprint(fingerprint);
  if (print === undefined || at === undefined || at === null) return { fingerprint: print };
  if ((typeof at === 'bigint' || typeof at === 'number') && BigInt(at) === BigInt(offset)) return { fingerprint: print };
  return { note: `the stored fingerprint is of offset ${describeSqlValue(at).replace(/^the integer /, '')}, not of the stored offset ${offset} (set by hand?): resuming without checking that the stream is the one this node read` };
}

/**
 * A message's fingerprint: the first 48 bits of SHA-256 over its body and
 * message-id, a safe integer that fits consumer_offsets.position. Kept with
 * the offset, it tells the same stream from one declared again under the
 * same name (whose message at that offset is another one).
 */
export function messageFingerprint(body: Uint8Array, messageId?: string): number {
  const h = createHash('sha256').update(body).update('\0').update(messageId ?? '').digest();
  return h.readUIntBE(0, 6);
}

/**
 * What the first delivery of a resume says, the consumer having asked for
 * x-stream-offset = stored (the stored message itself, to recognise it):
 * - same: the stored message is there (fingerprint equal, or none stored);
 * - gap: the stream starts after the stored offset: retention removed the
 *   stored message and `lost` more after it (offsets stored+1 .. first-1);
 * - recreated: the message at the stored offset is another one, or the
 *   stream's offsets are below the stored one: the stream was deleted and
 *   declared again, its offsets restarted at 0.
 */
export type Resume = { kind: 'same' } | { kind: 'gap'; lost: number } | { kind: 'recreated'; why: string };

export function judgeResume(stored: number, storedFingerprint: number | undefined, first: number, firstFingerprint: number): Resume {
  if (first < stored) return { kind: 'recreated', why: `the first offset delivered is ${first}, below the stored ${stored}` };
  if (first > stored) return { kind: 'gap', lost: first - stored - 1 };
  if (storedFingerprint !== undefined && storedFingerprint !== firstFingerprint) return { kind: 'recreated', why: `the message at offset ${stored} is not the one this node applied there (fingerprint ${firstFingerprint.toString(16)}, stored ${storedFingerprint.toString(16)})` };
  return { kind: 'same' };
}

/**
 * What the stream's end says at a resume: the last chunk (x-stream-offset
 * 'last') ends at `tail`, below the stored offset: this stream never held
 * it, so it was deleted and declared again (a stream's end never goes back).
 * undefined when the stored offset may still come.
 */
export function judgeTail(stored: number, tail: number): Resume | undefined {
  return tail < stored ? { kind: 'recreated', why: `the stream ends at offset ${tail}, before the stored ${stored}` } : undefined;
}
