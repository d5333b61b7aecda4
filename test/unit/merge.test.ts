import { describe, expect, it } from '@jest/globals';
import { diffEntries, mergeBlock, planReplace } from '../../lib/merge.js';
import type { Entry } from '../../lib/state.js';

const NOW = 1_800_000_000;
const entry = (ip: string, over: Partial<Entry> = {}): Entry => ({ ip, source: 'manual', reason: null, added: NOW - 100, expires: 0, ...over });

describe('mergeBlock', () => {
  it("an operator's block takes over an automated source's entry (source, reason), so that source's withdrawal cannot lift it", () => {
    const held = { ip: '192.0.2.51', source: 'crowdsec', reason: 'ssh-bf', added: NOW - 60, expires: NOW + 3600 };
    const m = mergeBlock(held, { ip: '192.0.2.51', source: 'manual', reason: 'operator: never', ttlS: 0 }, NOW);
    expect(m).toEqual({ change: 'extended', entry: { ...held, source: 'manual', reason: 'operator: never', expires: 0 } });
    // a shorter operator TTL still takes ownership, and never shortens the expiry
    expect(mergeBlock(held, { ip: '192.0.2.51', source: 'manual', reason: null, ttlS: 60 }, NOW).entry).toEqual({ ...held, source: 'manual' });
    // an automated source never takes an operator's entry
    const mine = { ...held, source: 'manual' };
    expect(mergeBlock(mine, { ip: '192.0.2.51', source: 'crowdsec', reason: 'x', ttlS: 60 }, NOW)).toEqual({ change: 'unchanged', entry: mine });
  });

  const intent = { ip: '203.0.113.5', source: 'amqp', reason: 'pike', ttlS: 3600 };

  it('adds a new entry with its expiry', () => {
    expect(mergeBlock(undefined, intent, NOW)).toEqual({ change: 'added', entry: { ip: '203.0.113.5', source: 'amqp', reason: 'pike', added: NOW, expires: NOW + 3600 } });
  });
  it('extends a shorter expiry and keeps source, reason and time added', () => {
    const old = entry('203.0.113.5', { expires: NOW + 60, source: 'feed', reason: 'x' });
    expect(mergeBlock(old, intent, NOW)).toEqual({ change: 'extended', entry: { ...old, expires: NOW + 3600 } });
  });
  it('never shortens: a later expiry or a permanent block stays', () => {
    const later = entry('203.0.113.5', { expires: NOW + 7200 });
    expect(mergeBlock(later, intent, NOW)).toEqual({ change: 'unchanged', entry: later });
    const forever = entry('203.0.113.5');
    expect(mergeBlock(forever, intent, NOW)).toEqual({ change: 'unchanged', entry: forever });
  });
  it('makes a temporary block permanent when blocked without TTL', () => {
    expect(mergeBlock(entry('203.0.113.5', { expires: NOW + 60 }), { ...intent, ttlS: 0 }, NOW).entry.expires).toBe(0);
  });
  it('treats an expired entry as absent', () => {
    expect(mergeBlock(entry('203.0.113.5', { expires: NOW - 1, source: 'old' }), intent, NOW)).toMatchObject({ change: 'added', entry: { source: 'amqp', added: NOW } });
  });
});

describe('planReplace', () => {
  it("removes only the source's entries that the new list lacks", () => {
    const current = [entry('1.1.1.1', { source: 'feed' }), entry('2.2.2.2', { source: 'feed' }), entry('3.3.3.3', { source: 'manual' })];
    expect(planReplace(current, 'feed', new Set(['2.2.2.2', '4.4.4.4']))).toEqual(['1.1.1.1']);
    expect(planReplace(current, 'feed', new Set())).toEqual(['1.1.1.1', '2.2.2.2']);
  });
});

describe('diffEntries', () => {
  it('finds entries only in one place and entries that differ, ignoring expired ones', () => {
    const state = new Map([
      ['1.1.1.1', entry('1.1.1.1')],
      ['2.2.2.2', entry('2.2.2.2', { expires: NOW + 100 })],
      ['5.5.5.5', entry('5.5.5.5', { expires: NOW - 5 })],
    ]);
    const map = new Map([
      ['2.2.2.2', entry('2.2.2.2', { expires: NOW + 1000 })],
      ['3.3.3.3', entry('3.3.3.3')],
    ]);
    expect(diffEntries(state, map, NOW)).toEqual({ onlyInState: ['1.1.1.1'], onlyInMap: ['3.3.3.3'], differing: ['2.2.2.2'] });
  });
  it('tolerates the 2 s of rounding between the two clocks', () => {
    const state = new Map([['2.2.2.2', entry('2.2.2.2', { expires: NOW + 100 })]]);
    const map = new Map([['2.2.2.2', entry('2.2.2.2', { expires: NOW + 101 })]]);
    expect(diffEntries(state, map, NOW).differing).toEqual([]);
  });
});
