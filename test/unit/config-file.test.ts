import { afterAll, describe, expect, it } from '@jest/globals';
import { execa } from 'execa';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readConfigFile } from '../../lib/context.js';
import { UsageError } from '../../lib/errors.js';

const dir = mkdtempSync(join(tmpdir(), 'vfp-config-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('a config file that cannot be used is named with the reason', () => {
  it('missing, a folder, or an empty name: usage error (exit 2)', () => {
    for (const [file, words] of [
      [join(dir, 'nope.json'), 'does not exist'],
      [dir, 'is a folder, not a file'],
      ['', 'is empty'],
    ] as const) {
      let err: unknown;
      try {
        readConfigFile(file, '--config');
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(UsageError);
      expect((err as Error).message).toContain(words);
      if (file) expect((err as Error).message).toContain(file);
    }
  });

  (process.getuid?.() === 0 ? it : it.skip)('unreadable by this user (root-only config.json, vosctl run as nobody): exit 3 naming the file and root', async () => {
    const file = join(dir, 'config.json');
    writeFileSync(file, '{}');
    chmodSync(file, 0o600);
    chmodSync(dir, 0o755);
    const bin = fileURLToPath(new URL('../../bin/vosctl', import.meta.url));
    const r = await execa('setpriv', ['--reuid=nobody', '--regid=nogroup', '--clear-groups', process.execPath, bin, 'doctor', '--config', file], { reject: false });
    expect(r.exitCode).toBe(3);
    expect(r.stderr).toBe(`vosctl: config file ${file} (--config) is not readable by this user (EACCES): it usually is root-only (it holds the broker URL); run as root`);
  });
});
