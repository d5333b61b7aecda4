import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { execa } from 'execa';
import { fileURLToPath } from 'node:url';
import { readFileSync } from 'node:fs';
import { bundleCommands, cacheKey, cacheName } from '../../lib/boot.js';

/** Widths by the shim and by string-width, in plain Node (the shim's require() of an ES module is Node's, not Jest's). */
async function widths(texts: string[]): Promise<{ shim: number[]; real: number[] }> {
  const script = `
    const shim = require('./lib/shims/string-width.cjs');
    import('string-width').then(({ default: real }) => {
      const texts = JSON.parse(require('node:fs').readFileSync(0, 'utf8'));
      console.log(JSON.stringify({ shim: texts.map((t) => shim(t)), real: texts.map((t) => real(t)) }));
    });`;
  const r = await execa(process.execPath, ['-e', script], { input: JSON.stringify(texts), cwd: fileURLToPath(new URL('../..', import.meta.url)) });
  return JSON.parse(r.stdout) as { shim: number[]; real: number[] };
}

const BUNDLE = fileURLToPath(new URL('../../dist/vosctl.cjs', import.meta.url));

describe('code cache naming', () => {
  const commands = bundleCommands(readFileSync(BUNDLE, 'utf8'));
  it.each([
    [['block', '203.0.113.1'], 'block'],
    [['--pin-dir', '/sys/fs/bpf/x', 'load-file', 'ips.txt'], 'load-file'],
    [['--log-format', 'text', 'status'], 'status'],
    [['--log-format', 'text', 'install-units'], 'install-units'],
    [['--log-level', 'debug', '--log-format', 'json', 'block', 'list'], 'block'],
    [['--help'], 'none'],
    [['lst'], 'none'],
    [[], 'none'],
  ])('%j uses the cache named %s', (argv, name) => expect(cacheName(argv, commands)).toBe(name));

  it('the bundle names every command on its first line', () => {
    for (const c of ['attach', 'detach', 'block', 'list', 'doctor', 'install-units', 'completion']) expect(commands).toContain(c);
  });

  it('a rebuilt bundle or another V8 never reuses a cache, and the key is a plain file name', () => {
    const base = cacheKey(1284048, 1795519780303.5, '11.3.244.8-node.38', 'x64');
    expect(base).toMatch(/^[\w.-]+$/);
    expect(new Set([base, cacheKey(1284049, 1795519780303.5, '11.3.244.8-node.38', 'x64'), cacheKey(1284048, 1795519790000, '11.3.244.8-node.38', 'x64'), cacheKey(1284048, 1795519780303.5, '12.4.254.21-node.33', 'x64')]).size).toBe(4);
  });
});

describe('the bundle run from the code cache', () => {
  // Node 20 refuses a dynamic import() in a vm.Script given cachedData
  // (ERR_VM_DYNAMIC_IMPORT_CALLBACK_MISSING); scripts/bundle.sh refuses such a bundle, this checks the one built.
  it('holds no dynamic import()', () => {
    expect(readFileSync(BUNDLE, 'utf8').match(/(^|[^\w$.])import\([^)]{0,40}/gm) ?? []).toEqual([]);
  });
});

describe('string-width shim (bundle only)', () => {
  it('agrees with string-width on any text: ASCII, controls, CJK, emoji, ANSI colours', async () => {
    const text = fc.oneof(fc.string(), fc.string({ unit: 'grapheme' }), fc.string({ unit: fc.constantFrom('a', ' ', '\t', '\u001b[31m', '日', '👍', '\u0301', '~') }));
    const texts = ['', 'vosctl block <targets..>', ...fc.sample(text, 3000)];
    const { shim, real } = await widths(texts);
    expect(shim).toEqual(real);
    expect(real.length).toBe(texts.length);
  });
});
