/**
 * The one place the metrics read the state: what the blocklist intends. When
 * the state store changes, only this function changes.
 */
import type { Context } from '../context.js';
import type { Intended } from '../drift.js';

/**
 * Every target the state holds, with its source and wall-clock expiry (unix
 * s, 0 = never), expired ones included (the caller judges liveness). Takes no
 * lock: a reader never makes a writer wait.
 */
export function intendedEntries(ctx: Context): ReadonlyMap<string, Intended> {
  return ctx.store.all();
}
