/**
 * Expiries live in two clocks: the kernel compares CLOCK_BOOTTIME ns (it keeps
 * counting through suspend), the state on disk keeps wall-clock seconds (it
 * survives a reboot). These convert at one instant.
 */
import { readFileSync } from 'node:fs';

export interface Clocks {
  /** CLOCK_BOOTTIME now, in ns (from /proc/uptime: 10 ms resolution). */
  bootNs: bigint;
  /** Wall clock now, in unix seconds. */
  wallS: number;
}

export function readClocks(): Clocks {
  const [up] = readFileSync('/proc/uptime', 'latin1').split(' ');
  const [s, cs = '0'] = up!.split('.');
  return { bootNs: BigInt(s!) * 1_000_000_000n + BigInt(cs.padEnd(2, '0').slice(0, 2)) * 10_000_000n, wallS: Math.floor(Date.now() / 1000) };
}

/** Wall-clock expiry (unix s, 0 = never) to the kernel's boottime ns (0n = never). */
export function wallToBoot(expiresWallS: number, now: Clocks): bigint {
  if (!expiresWallS) return 0n;
  const remaining = Math.max(0, expiresWallS - now.wallS);
  return now.bootNs + BigInt(remaining) * 1_000_000_000n;
}

/** Kernel boottime expiry to wall-clock unix seconds (0 = never). */
export function bootToWall(expiresNs: bigint, now: Clocks): number {
  if (!expiresNs) return 0;
  return now.wallS + Number((expiresNs - now.bootNs) / 1_000_000_000n);
}
