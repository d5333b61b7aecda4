/** Helpers the benchmarks share. */
import { blockKey } from '../lib/maps/layout.js';
import type { MapServer } from '../lib/maps/maptool.js';

/** The middle value (upper middle for an even count). */
export const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** The i-th test address from 11.0.0.1 up (documentation ranges are too small for a million). */
export const addr = (i: number): string => {
  const a = 11 * 2 ** 24 + 1 + i;
  return `${a >>> 24}.${(a >>> 16) & 255}.${(a >>> 8) & 255}.${a & 255}`;
};

/** The i-th address from base.0.0.1 up, and its blocklist map key. */
export const ipOf = (base: number, i: number): string => {
  const a = base * 2 ** 24 + 1 + i;
  return `${a >>> 24}.${(a >>> 16) & 255}.${(a >>> 8) & 255}.${a & 255}`;
};
export const keyOf = (base: number, i: number): Buffer => blockKey(base * 2 ** 24 + 1 + i, 32);

/** The p-th percentile (0-100) of xs, nearest rank. */
export const pct = (xs: number[], p: number): number => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((xs.length * p) / 100))]!;

/** Milliseconds fn took. */
export async function timed(fn: () => Promise<unknown>): Promise<number> {
  const t = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - t) / 1e6;
}

/**
 * Publish message i = 0.. at a steady `rate` (per second) for `seconds`; for
 * each, the milliseconds until every map in `pins` holds key(i) (the slowest
 * node's). publish(i) sends it; confirmed() waits for the broker's confirms.
 */
export async function steadyLatency(maps: MapServer, pins: readonly string[], key: (i: number) => Buffer, publish: (i: number) => void, confirmed: () => Promise<void>, rate: number, seconds: number): Promise<number[]> {
  const n = rate * seconds;
  const sentAt = new Array<number>(n);
  const lat = new Array<number>(n);
  const seenOn = new Array<number>(n).fill(0); // a bit per map
  const all = (1 << pins.length) - 1;
  let sent = 0;
  let done = 0;
  let firstOpen = 0; // every message below this index has been seen
  const t0 = performance.now();
  const publisher = (async () => {
    while (sent < n) {
      const due = Math.min(n, Math.floor(((performance.now() - t0) / 1000) * rate) + 1);
      for (; sent < due; sent++) {
        sentAt[sent] = performance.now();
        publish(sent);
      }
      await new Promise((r) => setTimeout(r, 1));
    }
    await confirmed();
  })();
  while (done < n) {
    const open: number[] = [];
    for (let i = firstOpen; i < sent; i++) if (lat[i] === undefined) open.push(i);
    if (open.length) {
      for (const [k, pin] of pins.entries()) {
        const mine = open.filter((i) => !(seenOn[i]! & (1 << k)));
        if (!mine.length) continue;
        const found = await maps.lookup(pin, Buffer.concat(mine.map(key)));
        mine.forEach((i, j) => found[j] && (seenOn[i]! |= 1 << k));
      }
      const now = performance.now();
      for (const i of open) {
        if (seenOn[i] === all) {
          lat[i] = now - sentAt[i]!;
          done++;
        }
      }
      while (firstOpen < sent && lat[firstOpen] !== undefined) firstOpen++;
    }
    // A 1 ms poll, not a busy loop: the measurer must not take a core from the consumers it measures (2-core hosts).
    await new Promise((r) => setTimeout(r, 1));
  }
  await publisher;
  return lat;
}
