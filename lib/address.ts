/**
 * The one address validator of vosctl. Pure: text and policy in, a target or
 * a reason out. Built on ip-address; strict dotted quads only.
 */
import { Address4 } from 'ip-address';

export interface Target {
  /** Canonical text: "a.b.c.d" for a single address, "a.b.c.d/n" for a prefix. */
  text: string;
  /** Network address as an unsigned 32-bit integer. */
  addr: number;
  prefixlen: number;
}

export interface Cidr {
  addr: number;
  prefixlen: number;
}

export interface BlockPolicy {
  /** Shortest prefix accepted (default 8). */
  minPrefix: number;
  /** Never-block entries: a target they cover is refused. */
  allow: readonly Cidr[];
  /** This host's own addresses: a target that covers one is refused. */
  own: readonly number[];
  /** The cluster's own addresses (never-block, the same on every node): a target that overlaps one is refused. */
  peers?: readonly Cidr[];
}

export type Checked = { ok: true; target: Target } | { ok: false; reason: string };

const DOTTED = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})(?:\/(\d{1,2}))?$/;

export function formatAddr(addr: number): string {
  return `${addr >>> 24}.${(addr >>> 16) & 255}.${(addr >>> 8) & 255}.${addr & 255}`;
}

export function formatTarget(addr: number, prefixlen: number): string {
  return prefixlen === 32 ? formatAddr(addr) : `${formatAddr(addr)}/${prefixlen}`;
}

function mask(prefixlen: number): number {
  return prefixlen === 0 ? 0 : (0xffffffff << (32 - prefixlen)) >>> 0;
}

/** Does the prefix a/alen contain all of b/blen? */
export function covers(a: Cidr, b: Cidr): boolean {
  return b.prefixlen >= a.prefixlen && ((b.addr & mask(a.prefixlen)) >>> 0) === a.addr;
}

/**
 * A set of targets keyed by number, for million-entry lists: a /32 by its
 * address as an int32 (the keys V8 hashes fastest), a prefix by address * 33 +
 * length. Strings or other numbers cost two to four times as much.
 */
export class TargetSet {
  private readonly addrs = new Set<number>();
  private readonly prefixes = new Set<number>();

  /** Add; false if it was already there. */
  add(t: Cidr): boolean {
    const set = t.prefixlen === 32 ? this.addrs : this.prefixes;
    const before = set.size;
    set.add(t.prefixlen === 32 ? t.addr | 0 : t.addr * 33 + t.prefixlen);
    return set.size > before;
  }

  has(t: Cidr): boolean {
    return t.prefixlen === 32 ? this.addrs.has(t.addr | 0) : this.prefixes.has(t.addr * 33 + t.prefixlen);
  }
}

/** Parse an IPv4 address or CIDR. A prefix with host bits set is refused, not silently widened. */
export function parseTarget(input: string): Checked {
  const text = input.trim();
  if (!DOTTED.test(text)) return { ok: false, reason: `'${input}' is not an IPv4 address or CIDR (dotted quad)` };
  let parsed: Address4;
  try {
    parsed = new Address4(text);
  } catch (err) {
    const why = (err as Error).message.includes('leading zero')
      ? 'has a leading zero (ambiguous: octal to some tools)'
      : 'is not an IPv4 address or CIDR (dotted quad, octets 0-255, prefix 0-32)';
    return { ok: false, reason: `'${input}' ${why}` };
  }
  const prefixlen = parsed.subnetMask;
  // The octets as ip-address parsed them (cheaper than its BigInt round trip, which bulk loads feel).
  const o = parsed.parsedAddress;
  const addr = ((Number(o[0]) << 24) | (Number(o[1]) << 16) | (Number(o[2]) << 8) | Number(o[3])) >>> 0;
  const network = (addr & mask(prefixlen)) >>> 0;
  if (network !== addr) {
    return { ok: false, reason: `'${input}' has host bits set; the network is ${formatTarget(network, prefixlen)}` };
  }
  // A plain dotted quad that ip-address accepted is already canonical.
  return { ok: true, target: { text: prefixlen === 32 && !text.includes('/') ? text : formatTarget(addr, prefixlen), addr, prefixlen } };
}

/**
 * The network of a CIDR written with host bits set ("198.51.100.77/28" to
 * "198.51.100.64/28"), or null when `input` is no such CIDR. For inputs whose
 * own rules allow it (a CrowdSec Range); parseTarget itself keeps refusing.
 */
export function networkOf(input: string): string | null {
  const m = /^\s*([^/\s]+)\/(\d{1,2})\s*$/.exec(input);
  if (!m || Number(m[2]) > 32) return null;
  const host = parseTarget(m[1]!);
  if (!host.ok || host.target.prefixlen !== 32) return null;
  const n = Number(m[2]);
  const network = (host.target.addr & mask(n)) >>> 0;
  return network === host.target.addr ? null : formatTarget(network, n);
}

/** The rules for anything that goes into the blocklist. */
export function checkBlockable(t: Target, policy: BlockPolicy): string | null {
  const first = t.addr >>> 24;
  if (t.prefixlen < policy.minPrefix) return `'${t.text}' is shorter than the minimum prefix /${policy.minPrefix}`;
  if (first === 0) return `'${t.text}' is in 0.0.0.0/8 (this network)`;
  if (first === 127) return `'${t.text}' is loopback`;
  if (first >= 224 && first <= 239) return `'${t.text}' is multicast`;
  if (t.addr === 0xffffffff) return `'${t.text}' is the limited broadcast address`;
  for (const own of policy.own) {
    if (covers(t, { addr: own, prefixlen: 32 })) return `'${t.text}' covers this host's address ${formatAddr(own)}`;
  }
  for (const p of policy.peers ?? []) {
    if (covers(p, t) || covers(t, p)) return `'${t.text}' overlaps the cluster's own address ${formatTarget(p.addr, p.prefixlen)} (never-block)`;
  }
  for (const a of policy.allow) {
    if (covers(a, t)) return `'${t.text}' is covered by the allowlist entry ${formatTarget(a.addr, a.prefixlen)}`;
  }
  return null;
}

export function checkBlockTarget(input: string, policy: BlockPolicy): Checked {
  const parsed = parseTarget(input);
  if (!parsed.ok) return parsed;
  const why = checkBlockable(parsed.target, policy);
  return why ? { ok: false, reason: why } : parsed;
}

/** Split operator input into accepted targets and refusal reasons, keeping the input order. */
export function partitionTargets(texts: readonly string[], check: (text: string) => Checked): { targets: Target[]; refused: string[] } {
  const targets: Target[] = [];
  const refused: string[] = [];
  for (const t of texts) {
    const r = check(String(t));
    if (r.ok) targets.push(r.target);
    else refused.push(r.reason);
  }
  return { targets, refused };
}
