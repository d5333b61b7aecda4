import { describe, expect, it } from '@jest/globals';
import { quoted, QUOTED_MAX } from '../../lib/quote.js';

describe('quoted', () => {
  it('quotes a value of up to 64 characters whole', () => {
    expect(quoted('')).toBe("''");
    expect(quoted('x'.repeat(QUOTED_MAX))).toBe(`'${'x'.repeat(64)}'`);
    expect(quoted(42)).toBe("'42'");
  });
  it('cuts a longer one at 64 characters and names its length', () => {
    expect(quoted('y'.repeat(65))).toBe(`'${'y'.repeat(64)}…(65 chars)'`);
    expect(quoted('z'.repeat(100_000))).toBe(`'${'z'.repeat(64)}…(100000 chars)'`);
  });
});
