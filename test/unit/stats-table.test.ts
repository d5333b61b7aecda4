import { describe, expect, it } from '@jest/globals';

describe('counterTable (vosctl stats)', () => {
  it('sizes the reason column to the longest name, so every line is as long as the header', async () => {
    const { counterTable } = await import('../../lib/commands/stats.js');
    const out = counterTable({ passed: { packets: 1, bytes: 60 }, malformed_register_ipv6: { packets: 12345, bytes: 999999 }, shadow_would_drop_ipv6: { packets: 0, bytes: 0 } });
    const lines = out.trimEnd().split('\n');
    expect(lines[0]).toBe(`${'reason'.padEnd(23)} ${'packets'.padStart(15)} ${'bytes'.padStart(18)}`);
    expect(lines[2]).toBe(`malformed_register_ipv6 ${'12345'.padStart(15)} ${'999999'.padStart(18)}`);
    expect(new Set(lines.map((l) => l.length)).size).toBe(1);
  });
});
