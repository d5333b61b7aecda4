/** The allowlist and the OPTIONS allow set: LPM tries of address marks. */
import type { Target } from './address.js';
import type { Context } from './context.js';
import { LPM_KEY, MARK_VALUE, encodeMark, lpmKey } from './maps/layout.js';

export async function addMarks(ctx: Context, map: string, targets: readonly Target[]): Promise<void> {
  const buf = Buffer.alloc(targets.length * (LPM_KEY + MARK_VALUE));
  const now = Math.floor(Date.now() / 1000);
  targets.forEach((t, i) => {
    lpmKey(t.addr, t.prefixlen).copy(buf, i * (LPM_KEY + MARK_VALUE));
    encodeMark(now).copy(buf, i * (LPM_KEY + MARK_VALUE) + LPM_KEY);
  });
  await ctx.maps.update(ctx.pin(map), buf, targets.length);
}

export async function removeMarks(ctx: Context, map: string, targets: readonly Target[]): Promise<{ deleted: number; absent: number }> {
  return ctx.maps.delete(ctx.pin(map), Buffer.concat(targets.map((t) => lpmKey(t.addr, t.prefixlen))));
}
