/** The allowlist and the OPTIONS allow set: LPM tries of address marks, IPv6 ones in their "6" twins. */
import type { Target } from './address.js';
import type { Context } from './context.js';
import { encodeMark, markKey, v6MapOf } from './maps/layout.js';

/** Targets by the map of their family: `map` for IPv4, its "6" twin for IPv6. */
function byFamily(map: string, targets: readonly Target[]): Array<[string, Target[]]> {
  return [[map, targets.filter((t) => t.family !== 6)], [v6MapOf(map), targets.filter((t) => t.family === 6)]] as Array<[string, Target[]]>;
}

export async function addMarks(ctx: Context, map: string, targets: readonly Target[]): Promise<void> {
  const now = encodeMark(Math.floor(Date.now() / 1000));
  for (const [name, group] of byFamily(map, targets)) {
    if (!group.length) continue;
    await ctx.maps.update(ctx.pin(name), Buffer.concat(group.flatMap((t) => [markKey(t), now])), group.length);
  }
}

export async function removeMarks(ctx: Context, map: string, targets: readonly Target[]): Promise<{ deleted: number; absent: number }> {
  const out = { deleted: 0, absent: 0 };
  for (const [name, group] of byFamily(map, targets)) {
    if (!group.length) continue;
    const r = await ctx.maps.delete(ctx.pin(name), Buffer.concat(group.map(markKey)));
    out.deleted += r.deleted;
    out.absent += r.absent;
  }
  return out;
}
