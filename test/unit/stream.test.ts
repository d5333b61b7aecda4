/**
 * Stream mode's pure parts: the stored offset's validation, the resume
 * judgement (same stream, retention gap, stream declared again), and the
 * decision time of a message (a ts in the future, an AMQP timestamp in
 * milliseconds).
 */
import { describe, expect, it } from '@jest/globals';
import { amqpTimestamp, decisionTime, planMessage, remainingTtl } from '../../lib/consume/plan.js';
import { MAX_TTL_S } from '../../lib/duration.js';
import { checkStoredFingerprint, checkStoredOffset, describeSqlValue, fingerprintFor, judgeResume, judgeTail, messageFingerprint, StoredOffsetError } from '../../lib/consume/stream.js';
import { classifyBrokerError } from '../../lib/consume/faults.js';

describe('the stored stream offset', () => {
  const path = '/var/lib/vos-fastpath/state.sqlite3';
  it('takes a whole number >= 0, and none', () => {
    expect(checkStoredOffset(undefined, 's', path)).toBeUndefined();
    expect(checkStoredOffset(null, 's', path)).toBeUndefined();
    expect(checkStoredOffset(0, 's', path)).toBe(0);
    expect(checkStoredOffset(123456, 's', path)).toBe(123456);
    expect(checkStoredOffset(5n, 's', path)).toBe(5);
  });

  it.each([
    ['abc', "the text 'abc', not a stream offset"],
    [1.5, 'the real number 1.5, not a stream offset'],
    [-3n, 'the integer -3, not a stream offset'],
    ['', "the text '', not a stream offset"],
    ['12', "the text '12', not a stream offset"],
    [Number.NaN, 'the real number NaN'],
    [9007199254740993n, 'the integer 9007199254740993, above 9007199254740991'],
    [2n ** 60n, `the integer ${2n ** 60n}, above`],
    [Buffer.from('12'), "a blob x'3132', not a stream offset"],
  ] as const)('refuses %p naming the exact value, its type, the row and the fix', (value, shown) => {
    let err: unknown;
    try {
      checkStoredOffset(value, 'blocks', path);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(StoredOffsetError);
    const msg = (err as Error).message;
    expect(msg).toContain(`the stored offset of stream 'blocks' is ${shown}`);
    expect(msg).toContain("table consumer_offsets, row consumer = 'stream:blocks'");
    expect(msg).toContain(path);
    expect(msg).toContain(`DELETE FROM consumer_offsets WHERE consumer IN ('stream:blocks', 'stream-check:blocks', 'stream-check-at:blocks')`);
    expect((err as StoredOffsetError).exitCode).toBe(2);
  });

  it('ignores a fingerprint that is not one (it is only a check)', () => {
    expect(checkStoredFingerprint('zz')).toBeUndefined();
    expect(checkStoredFingerprint(-1)).toBeUndefined();
    expect(checkStoredFingerprint(42)).toBe(42);
    expect(checkStoredFingerprint(42n)).toBe(42);
    expect(checkStoredFingerprint(2n ** 48n)).toBeUndefined();
  });

  it('checks the fingerprint only against the offset it is of (a hand-set offset is resumed unchecked, with a note)', () => {
    expect(fingerprintFor(7, 42n, 7n)).toEqual({ fingerprint: 42 });
    // States from before the row: both were always written together.
    expect(fingerprintFor(7, 42n, undefined)).toEqual({ fingerprint: 42 });
    expect(fingerprintFor(7, undefined, 7n)).toEqual({ fingerprint: undefined });
    expect(fingerprintFor(3, 42n, 7n)).toEqual({ note: 'the stored fingerprint is of offset 7, not of the stored offset 3 (set by hand?): resuming without checking that the stream is the one this node read' });
    expect(fingerprintFor(3, 42n, 'x')).toEqual({ note: "the stored fingerprint is of offset the text 'x', not of the stored offset 3 (set by hand?): resuming without checking that the stream is the one this node read" });
  });

  it('names SQLite values exactly, with their type', () => {
    expect([9007199254740993n, 1.5, 'abc', Buffer.from('12'), null].map(describeSqlValue)).toEqual(['the integer 9007199254740993', 'the real number 1.5', "the text 'abc'", "a blob x'3132'", 'NULL']);
  });
});

describe('resuming a stream', () => {
  const a = messageFingerprint(Buffer.from('{"ip":"198.51.100.1"}'), 'm1');
  const b = messageFingerprint(Buffer.from('{"ip":"198.51.100.2"}'), 'm1');

  it('fingerprints a message by body and message-id, as a safe integer', () => {
    expect(Number.isSafeInteger(a)).toBe(true);
    expect(a).toBe(messageFingerprint(Buffer.from('{"ip":"198.51.100.1"}'), 'm1'));
    expect(a).not.toBe(b);
    expect(a).not.toBe(messageFingerprint(Buffer.from('{"ip":"198.51.100.1"}'), 'm2'));
  });

  it('is the same stream when the stored message comes first again', () => {
    expect(judgeResume(25, a, 25, a)).toEqual({ kind: 'same' });
    expect(judgeResume(25, undefined, 25, b)).toEqual({ kind: 'same' }); // a state written before fingerprints
  });

  it('is a retention gap when the stream now starts after the stored offset', () => {
    expect(judgeResume(25, a, 26, b)).toEqual({ kind: 'gap', lost: 0 }); // only the stored message itself went
    expect(judgeResume(25, a, 400, b)).toEqual({ kind: 'gap', lost: 374 });
  });

  it('is another stream under the same name when the stored offset holds another message, or lies past its end', () => {
    expect(judgeResume(25, a, 25, b)).toMatchObject({ kind: 'recreated', why: expect.stringContaining('offset 25 is not the one this node applied') });
    expect(judgeResume(25, a, 3, b)).toMatchObject({ kind: 'recreated', why: 'the first offset delivered is 3, below the stored 25' });
    expect(judgeTail(25, 7)).toEqual({ kind: 'recreated', why: 'the stream ends at offset 7, before the stored 25' });
    expect(judgeTail(25, 25)).toBeUndefined();
    expect(judgeTail(25, 1000)).toBeUndefined();
  });
});

describe('permanent broker errors in stream mode', () => {
  const at = { protocol: 'amqp' as const, host: '127.0.0.1', port: 5672, vhost: '/' };
  it('names 541 and 406 (inequivalent arguments) as permanent; an unknown delivery tag stays transient', () => {
    expect(classifyBrokerError(new Error('Connection closed: 541 (INTERNAL-ERROR) with message "INTERNAL_ERROR"'), at)).toMatchObject({ kind: 'permanent', message: expect.stringContaining('541 INTERNAL_ERROR') });
    const inequivalent = new Error(`Operation failed: QueueDeclare; 406 (PRECONDITION-FAILED) with message "PRECONDITION_FAILED - inequivalent arg 'x-max-age' for queue 's' in vhost '/': received '2h' but current is '1h'"`);
    expect(classifyBrokerError(inequivalent, at)).toMatchObject({ kind: 'permanent', message: expect.stringContaining("inequivalent arg 'x-max-age'") });
    expect(classifyBrokerError(new Error('Channel closed by server: 406 (PRECONDITION-FAILED) with message "PRECONDITION_FAILED - unknown delivery tag 5"'), at).kind).toBe('transient');
  });
});

describe('the decision time of a message', () => {
  const now = 1_764_410_000;
  it('clamps a ts in the future to now, and to the AMQP timestamp when that is earlier', () => {
    expect(decisionTime(now + 500, { nowS: now })).toBe(now);
    expect(decisionTime(now + 500, { nowS: now, publishedS: now - 100 })).toBe(now - 100);
    expect(decisionTime(now - 50, { nowS: now, publishedS: now - 100 })).toBe(now - 50); // ts wins when it is no time to come
    expect(decisionTime(undefined, { nowS: now, publishedS: now + 30 })).toBe(now);
    expect(decisionTime(undefined, { nowS: now })).toBeUndefined();
  });

  it('never gives a replay a later expiry than the first application had', () => {
    // A block decided "in the future" (clock ahead), published at T with the AMQP timestamp: applied at T, replayed at T + 600.
    const c = { ts: now + 3000 };
    const first = now + remainingTtl(3600, c, { nowS: now, publishedS: now });
    const replay = now + 600 + remainingTtl(3600, c, { nowS: now + 600, publishedS: now });
    expect(replay).toBe(first);
    // A ts in the past is a fixed point: every replay computes the same expiry.
    const past = { ts: now - 100 };
    expect(now + 600 + remainingTtl(3600, past, { nowS: now + 600 })).toBe(now + remainingTtl(3600, past, { nowS: now }));
  });

  it('reports a ts in the future once per message, with its value, beyond a few seconds of skew', () => {
    const policy = { minPrefix: 8, allow: [], own: [] };
    const d = { ttlS: 3600, source: 'amqp', maxBytes: 65536 };
    const p = planMessage(Buffer.from(JSON.stringify({ ips: ['198.51.100.1', '198.51.100.2'], ts: now + 500 })), policy, d, { nowS: now });
    expect(p.futureTs).toBe(now + 500);
    expect(p.commands.map((c) => c.ttlS)).toEqual([3600, 3600]);
    expect(p.futureField).toBe('ts');
    expect(planMessage(Buffer.from(JSON.stringify({ ip: '198.51.100.1', ts: now + 2 })), policy, d, { nowS: now }).futureTs).toBeUndefined();
  });

  it('treats an AMQP timestamp in the future (no ts) like a future ts: clamped to now, reported with its value', () => {
    const policy = { minPrefix: 8, allow: [], own: [] };
    const d = { ttlS: 3600, source: 'amqp', maxBytes: 65536 };
    const body = Buffer.from(JSON.stringify({ ip: '198.51.100.1' }));
    const p = planMessage(body, policy, d, { nowS: now, publishedS: now + 900 });
    expect({ futureTs: p.futureTs, futureField: p.futureField, ttl: p.commands[0]!.ttlS }).toEqual({ futureTs: now + 900, futureField: 'timestamp', ttl: 3600 });
    // A few seconds of skew are not news; a ts in the body wins over the property, and is not in the future.
    expect(planMessage(body, policy, d, { nowS: now, publishedS: now + 2 }).futureTs).toBeUndefined();
    expect(planMessage(Buffer.from(JSON.stringify({ ip: '198.51.100.1', ts: now - 10 })), policy, d, { nowS: now, publishedS: now + 900 }).futureTs).toBeUndefined();
  });

  it('caps an expires beyond the 10-year limit from the decision time, so every node and replay stores the same expiry', () => {
    const far = { ts: now - 1000, expires: now + 50 * 365 * 86400 };
    const at = (nowS: number, c: { ts?: number; expires?: number }, publishedS?: number): number => nowS + remainingTtl(3600, c, { nowS, publishedS });
    expect(at(now, far)).toBe(now - 1000 + MAX_TTL_S);
    expect(at(now + 600, far)).toBe(at(now, far));
    // The AMQP timestamp is a decision time too; with neither, the cap runs from the apply time.
    expect(at(now + 600, { expires: far.expires }, now - 50)).toBe(now - 50 + MAX_TTL_S);
    expect(at(now, { expires: far.expires })).toBe(now + MAX_TTL_S);
    // Under the cap, expires is what it says.
    expect(at(now + 600, { ts: now, expires: now + 7200 })).toBe(now + 7200);
  });

  it('reads an AMQP timestamp in milliseconds as milliseconds, saying so; ignores one that is no time', () => {
    expect(amqpTimestamp(now)).toEqual({ publishedS: now });
    expect(amqpTimestamp(now * 1000 + 999)).toEqual({ publishedS: now, note: expect.stringContaining(`is in milliseconds (AMQP 0-9-1 timestamps are seconds): read as ${now}`) });
    expect(amqpTimestamp(0)).toEqual({});
    expect(amqpTimestamp(undefined)).toEqual({});
    expect(amqpTimestamp(12345)).toEqual({ note: 'the AMQP timestamp 12345 is not Unix seconds: ignored' });
    expect(amqpTimestamp(now * 1e6)).toEqual({ note: expect.stringContaining('ignored') }); // microseconds: not guessed
  });
});
