import { describe, expect, it } from '@jest/globals';
import { completionShell } from '../../lib/cli.js';
import { UsageError } from '../../lib/errors.js';
import { decide, parseManifest, sha256, targetRoot } from '../../lib/install/units.js';

describe('install-units --root', () => {
  it("refuses '' and blanks (they would mean the live system)", () => {
    for (const r of ['', ' ']) expect(() => targetRoot(r, '/tmp')).toThrow(UsageError);
  });
  it('resolves a relative root against the working folder and says so', () => {
    expect(targetRoot('img', '/srv')).toEqual({ root: '/srv/img', note: '--root img is relative: installing below /srv/img' });
    expect(targetRoot('/srv/img/', '/x')).toEqual({ root: '/srv/img' });
  });
});

describe('install-units overwrite decision', () => {
  const unit = { path: '/etc/systemd/system/u.service', content: 'new\n', mode: 0o644 };
  it('writes a missing file, leaves an identical one, keeps the operator config', () => {
    expect(decide(unit, undefined, undefined, false)).toBe('write');
    expect(decide(unit, 'new\n', undefined, false)).toBe('same');
    expect(decide({ ...unit, keepExisting: true }, 'mine\n', undefined, false)).toBe('keep');
  });
  it('replaces its own unchanged earlier file, refuses an edited or foreign one unless --force', () => {
    expect(decide(unit, 'old\n', sha256('old\n'), false)).toBe('write');
    expect(decide(unit, 'old\n# admin edit\n', sha256('old\n'), false)).toBe('changed');
    expect(decide(unit, 'foreign\n', undefined, false)).toBe('changed');
    expect(decide(unit, 'foreign\n', undefined, true)).toBe('write');
  });
  it('reads back the manifest it writes', () => {
    expect(parseManifest(`${sha256('a')}  /r/etc/x y.service\njunk\n`)).toEqual(new Map([['/r/etc/x y.service', sha256('a')]]));
  });
});

describe('completion --shell', () => {
  it('takes bash or zsh out of the arguments and sets SHELL for yargs', () => {
    const saved = process.env.SHELL;
    try {
      expect(completionShell(['completion', '--shell', 'zsh'])).toEqual(['completion']);
      expect(process.env.SHELL).toBe('/bin/zsh');
      expect(completionShell(['completion', '--shell=bash'])).toEqual(['completion']);
      expect(process.env.SHELL).toBe('/bin/bash');
      expect(() => completionShell(['completion', '--shell', 'fish'])).toThrow("--shell 'fish': give bash or zsh");
      expect(() => completionShell(['completion', '--shell'])).toThrow(UsageError);
      expect(completionShell(['block', '--shell'])).toEqual(['block', '--shell']);
    } finally {
      process.env.SHELL = saved;
    }
  });
});
