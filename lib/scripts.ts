/** Runs the bash scripts of the enforcement layer (argument arrays, never a shell string). */
import { execa } from 'execa';
import { join } from 'node:path';
import type { Context } from './context.js';
import { EnvError, RuntimeError, UsageError } from './errors.js';
import { SCRIPTS } from './paths.js';

/** Run scripts/NAME; its stdout is returned, its stderr passed through; its exit code maps onto our errors. */
export async function runScript(ctx: Context, name: string, args: string[]): Promise<string> {
  const r = await execa(join(SCRIPTS, name), args, {
    env: { VOS_PIN_DIR: ctx.settings.pinDir, VOS_MIN_PREFIX: String(ctx.settings.minPrefix), VOS_MIN_PREFIX6: String(ctx.settings.minPrefix6) },
    reject: false,
    stderr: 'pipe',
  });
  const why = r.stderr.trim();
  if (r.exitCode === 0) {
    if (why) process.stderr.write(why + '\n');
    return r.stdout;
  }
  if (r.exitCode === 2) throw new UsageError(why || `${name} refused its arguments`);
  if (r.exitCode === 3) throw new EnvError(why || `${name}: the host is not ready`);
  throw new RuntimeError(why || `${name} failed with exit ${r.exitCode}`);
}
