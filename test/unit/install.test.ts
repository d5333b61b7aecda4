import { describe, expect, it } from '@jest/globals';
import { completionShell } from '../../lib/cli.js';
import { UsageError } from '../../lib/errors.js';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import yargs from 'yargs';
import { checkConsumeArgs, consume, sourceQueue } from '../../lib/commands/consume.js';
import { decide, installPlan, parseManifest, sha256, targetRoot } from '../../lib/install/units.js';

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

describe('the consume unit as installed, with its consume.env', () => {
  const contribDir = fileURLToPath(new URL('../../contrib/systemd', import.meta.url));
  const contrib = Object.fromEntries(['vos-fastpath-consume.service', 'consume.env.example'].map((n) => [n, readFileSync(join(contribDir, n), 'utf8')]));
  const plan = installPlan('/r', '/opt/pkg', contrib, { bash: '', zsh: '' });
  const text = (p: string): string => plan.find((f) => f.path === p)!.content;
  /** An EnvironmentFile read as systemd does for these plain lines: KEY=VALUE, comments skipped, the last one wins. */
  const envOf = (file: string): Record<string, string> => Object.fromEntries(file.split('\n').filter((l) => /^[A-Z_]+=/.test(l)).map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
  /** ExecStart's words after `consume`, per systemd.service(5): ${VAR} one word, $VAR split at whitespace. */
  const execWords = (env: Record<string, string>): string[] => {
    const line = text('/r/etc/systemd/system/vos-fastpath-consume.service').split('\n').find((l) => l.startsWith('ExecStart='))!;
    const words = line.slice('ExecStart='.length).split(/\s+/);
    expect(words.slice(0, 2)).toEqual(['/opt/pkg/bin/vosctl', 'consume']);
    return words.slice(2).flatMap((w) => {
      const braced = /^\$\{(\w+)\}$/.exec(w);
      if (braced) return [env[braced[1]!] ?? ''];
      const bare = /^\$(\w+)$/.exec(w);
      return bare ? (env[bare[1]!] ?? '').split(/\s+/).filter(Boolean) : [w];
    });
  };
  /** What consume would run with: its options parsed by its own yargs builder, the source resolved, the combination checked. */
  const run = (env: Record<string, string>): { queue?: string; stream?: string; fanout?: string; note?: string } => {
    let got: Record<string, unknown> = {};
    yargs().command({ ...consume, handler: (a: unknown) => { got = a as Record<string, unknown>; } } as never).strict().parseSync(['consume', ...execWords(env)]);
    const a = got as never as Parameters<typeof checkConsumeArgs>[0];
    const src = sourceQueue(a, env);
    checkConsumeArgs({ ...a, queue: src.queue });
    return { queue: src.queue, stream: a.stream, fanout: a.fanout, note: src.note };
  };
  const uncomment = (opts: string): Record<string, string> => {
    const file = text('/r/etc/vos-fastpath/consume.env');
    expect(file).toContain(`#VOS_CONSUME_OPTS=${opts}\n`);
    // The operator's edit the README describes: that line instead of the empty one.
    return envOf(file.replace(/^VOS_CONSUME_OPTS=$/m, '').replace(`#VOS_CONSUME_OPTS=${opts}\n`, `VOS_CONSUME_OPTS=${opts}\n`));
  };

  it('as installed: the queue blocklist', () => {
    expect(run(envOf(text('/r/etc/vos-fastpath/consume.env')))).toEqual({ queue: 'blocklist', stream: undefined, fanout: undefined, note: undefined });
  });
  it('the README cluster line --stream runs on the stream (VOS_QUEUE noted, not used)', () => {
    expect(run(uncomment('--stream vos-blocklist'))).toEqual({ queue: undefined, stream: 'vos-blocklist', fanout: undefined, note: 'VOS_QUEUE=blocklist not used: --stream vos-blocklist is the source' });
  });
  it('--fanout gets the per-node queue, never the shared VOS_QUEUE', () => {
    expect(run(uncomment('--fanout vos-blocklist'))).toMatchObject({ queue: undefined, fanout: 'vos-blocklist' });
  });
  it('an older consume.env (VOS_QUEUE and extra options only) still runs its queue', () => {
    expect(run({ VOS_QUEUE: 'blocklist', VOS_CONSUME_OPTS: '--delivery-limit 20' })).toMatchObject({ queue: 'blocklist' });
  });
});

describe('consume source options', () => {
  const base = { streamMaxAge: '7D', streamMaxBytes: 1, batchWait: 2, gcInterval: 60, pauseHold: 60, deliveryLimit: 0, ttl: '1h', source: 'amqp', maxBody: 4096 } as never as Parameters<typeof checkConsumeArgs>[0];
  const refused = (o: object): string => {
    try {
      checkConsumeArgs({ ...base, ...o });
    } catch (e) {
      expect(e).toBeInstanceOf(UsageError);
      return (e as Error).message;
    }
    throw new Error('not refused');
  };
  it('refuses --queue with --fanout, saying why and what to use', () => {
    expect(refused({ fanout: 'vos-blocklist', queue: 'blocklist' })).toBe('--fanout vos-blocklist with --queue blocklist: every node given the same --queue would share one queue and each block would reach one node only; --fanout gives each node its own queue <exchange>.<node name>: set a node\'s name with --node NAME (default the host name)');
  });
  it('refuses --stream with another source, naming each', () => {
    expect(refused({ stream: 's', queue: 'blocklist' })).toMatch(/^--stream s excludes --queue blocklist: /);
    expect(refused({ stream: 's', fanout: 'f' })).toMatch(/^--stream s excludes --fanout f: /);
  });
  it('refuses --node without --fanout and a --node that is no queue-name word', () => {
    expect(refused({ queue: 'q', node: 'n1' })).toBe('--node n1 names this node\'s fanout queue: it needs --fanout');
    expect(refused({ fanout: 'f', node: 'a b' })).toMatch(/^bad --node 'a b'/);
  });
  it('takes VOS_QUEUE only when no other source is given', () => {
    expect(sourceQueue({}, { VOS_QUEUE: 'blocklist' })).toEqual({ queue: 'blocklist' });
    expect(sourceQueue({ queue: 'mine' }, { VOS_QUEUE: 'blocklist' })).toEqual({ queue: 'mine' });
    expect(sourceQueue({ fanout: 'f' }, { VOS_QUEUE: 'blocklist' })).toEqual({ note: 'VOS_QUEUE=blocklist not used: --fanout f (this node\'s own queue) is the source' });
    expect(sourceQueue({ fanout: 'f' }, {})).toEqual({});
  });
});
