/**
 * The counter reasons are written down four times: enum vfp_stat in
 * xdp/vfp_maps.h (the program), REASONS in lib/maps/layout.ts (vosctl, the
 * metrics), the reasons list in scripts/stats.sh and the stats map's size in
 * scripts/load.sh. A reason added to one and not the others shifts every IPv6
 * counter's name, or leaves the new counter without a slot to count in.
 */
import { describe, expect, it } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { REASONS, STAT_NAMES } from '../../lib/maps/layout.js';

const ROOT = join(import.meta.dirname, '../..');
const read = (f: string) => readFileSync(join(ROOT, f), 'utf8');

/** Reasons of enum vfp_stat, in order, as lower-case names (VFP_STAT_BLOCKED_EXACT -> blocked_exact). */
function headerReasons(): string[] {
  const body = /enum vfp_stat \{([\s\S]*?)\};/.exec(read('xdp/vfp_maps.h'))![1]!;
  return [...body.matchAll(/^\s*VFP_STAT_([A-Z0-9_]+)/gm)].map((m) => m[1]!.toLowerCase()).filter((r) => r !== 'max');
}

describe('counter reasons', () => {
  it('are the same, in the same order, in the header, layout.ts and stats.sh', () => {
    const stats = JSON.parse(/^reasons='(.*)'$/m.exec(read('scripts/stats.sh'))![1]!) as string[];
    expect(headerReasons()).toEqual([...REASONS]);
    expect(stats).toEqual([...REASONS]);
  });

  it('fit the stats map load.sh creates: both families, VFP_STAT_ENTRIES slots', () => {
    const entries = Number(/"stats percpu_array 4 16 (\d+) 0"/.exec(read('scripts/load.sh'))![1]);
    expect(entries).toBe(2 * REASONS.length);
    expect(STAT_NAMES).toHaveLength(entries);
  });

  it('name unjudged and unparsed_headers for IPv6 only, not_ip for neither family but once', () => {
    const names = STAT_NAMES.filter((n) => n !== null);
    expect(names).toContain('unjudged_ipv6');
    expect(names).toContain('unparsed_headers_ipv6');
    expect(names).not.toContain('unjudged');
    expect(names).not.toContain('unparsed_headers');
    expect(names.filter((n) => n.startsWith('not_ip'))).toEqual(['not_ip']);
  });
});
