/**
 * Every command that takes addresses says, in its --help, that it takes both
 * families (IPv6 came later, and one help once still said "IPv4 addresses").
 */
import { describe, expect, it } from '@jest/globals';
import { execa } from 'execa';
import { fileURLToPath } from 'node:url';

const VOSCTL = fileURLToPath(new URL('../../bin/vosctl', import.meta.url));

describe('vosctl --help of the commands that take addresses', () => {
  it.each(['block', 'unblock', 'allow', 'disallow', 'options-allow', 'options-disallow', 'load-file'])('%s says IPv4 or IPv6, never IPv4 alone', async (cmd) => {
    const r = await execa(VOSCTL, [cmd, '--help'], { reject: false, env: { VOS_LOG_FORMAT: 'text' } });
    expect(r.exitCode).toBe(0);
    // The command's line and its positional: what it takes (the options below are shared, --min-prefix is IPv4's own).
    const takes = r.stdout.replace(/\s+/g, ' ').split(' Options: ')[0]!;
    expect(takes).toContain('IPv4 or IPv6');
    expect(takes).not.toMatch(/IPv4 (?!or IPv6)/);
  });
});
