/**
 * The one address validator of vosctl. Pure: text and policy in, a target or
 * a reason out. Built on ip-address: strict dotted quads for IPv4, Address6
 * for IPv6 with RFC 5952 canonical text. IPv4 stays on its own numeric path
 * (a million-line load parses no IPv6); IPv6 targets carry family 6 and
 * their 16 bytes.
 */
import { Address4, Address6 } from 'ip-address';
import { quoted } from './quote.js';

export interface Target {
  /** Canonical text: "a.b.c.d" or "a.b.c.d/n"; IPv6 in RFC 5952 form ("2001:db8::1", "2001:db8::/32"). */
  text: string;
  /** IPv4: network address as an unsigned 32-bit integer. IPv6: 0 (see bytes). */
  addr: number;
  /** 0-32 for IPv4, 0-128 for IPv6. */
  prefixlen: number;
  /** 6 for an IPv6 target; absent for IPv4. */
  family?: 6;
  /** IPv6 only: the network address, 16 bytes in network order. */
  bytes?: Uint8Array;
}

/** An IPv6 prefix: 16 bytes in network order and a length 0-128. */
export interface Cidr6 {
  bytes: Uint8Array;
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
  /** Shortest IPv6 prefix accepted (default 32: a /32 is a whole LIR's allocation). */
  minPrefix6?: number;
  /** IPv6 never-block entries (allow_ips6). */
  allow6?: readonly Cidr6[];
  /** This host's own IPv6 addresses. */
  own6?: readonly Uint8Array[];
}

export const DEFAULT_MIN_PREFIX6 = 32;

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
  /** IPv6 targets by canonical text: a path of their own, so IPv4 keys stay int32. */
  private readonly v6 = new Set<string>();

  /** Add; false if it was already there. */
  add(t: Cidr | Target): boolean {
    if ('family' in t && t.family === 6) return this.v6.size < this.v6.add(t.text).size;
    const set = t.prefixlen === 32 ? this.addrs : this.prefixes;
    const before = set.size;
    set.add(t.prefixlen === 32 ? t.addr | 0 : t.addr * 33 + t.prefixlen);
    return set.size > before;
  }

  /** An IPv6 target by its canonical text. */
  hasV6(text: string): boolean {
    return this.v6.has(text);
  }

  has(t: Cidr | Target): boolean {
    if ('family' in t && t.family === 6) return this.v6.has(t.text);
    return t.prefixlen === 32 ? this.addrs.has(t.addr | 0) : this.prefixes.has(t.addr * 33 + t.prefixlen);
  }
}

/**
 * Parse an IPv4 or IPv6 address or CIDR. A prefix with host bits set is
 * refused, not silently widened; so is an IPv4-compatible IPv6 address (see
 * parseTarget6).
 */
export function parseTarget(input: string): Checked {
  const text = input.trim();
  const zero = prefixLeadingZero(input, text);
  if (zero) return zero;
  if (text.includes(':') || text.includes('[')) return parseTarget6(input, text);
  if (!DOTTED.test(text)) return { ok: false, reason: `${quoted(input)} is not an IPv4 address or CIDR (dotted quad)` };
  let parsed: Address4;
  try {
    parsed = new Address4(text);
  } catch (err) {
    const why = (err as Error).message.includes('leading zero')
      ? 'has a leading zero (ambiguous: octal to some tools)'
      : 'is not an IPv4 address or CIDR (dotted quad, octets 0-255, prefix 0-32)';
    return { ok: false, reason: `${quoted(input)} ${why}` };
  }
  const prefixlen = parsed.subnetMask;
  // The octets as ip-address parsed them (cheaper than its BigInt round trip, which bulk loads feel).
  const o = parsed.parsedAddress;
  const addr = ((Number(o[0]) << 24) | (Number(o[1]) << 16) | (Number(o[2]) << 8) | Number(o[3])) >>> 0;
  const network = (addr & mask(prefixlen)) >>> 0;
  if (network !== addr) {
    return { ok: false, reason: `${quoted(input)} has host bits set; the network is ${formatTarget(network, prefixlen)}` };
  }
  // A plain dotted quad that ip-address accepted is already canonical.
  return { ok: true, target: { text: prefixlen === 32 && !text.includes('/') ? text : formatTarget(addr, prefixlen), addr, prefixlen } };
}

/**
 * The refusal of a prefix length written with a leading zero ("/08",
 * "/048"), for IPv4 and IPv6 alike, or null. Refused, not read as decimal:
 * as for the octets, some tools read a leading zero as octal, and the
 * scripts refuse the same text.
 */
function prefixLeadingZero(input: string, text: string): Checked | null {
  const m = /\/0+(\d+)$/.exec(text);
  if (!m) return null;
  return { ok: false, reason: `${quoted(input)} has a leading zero in its prefix length (ambiguous: octal to some tools); write /${Number(m[1])}` };
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

/**
 * How a refusal names a target: as the operator typed it (quoted, see
 * quote.ts), with the canonical form after it when that differs
 * ("'::ffff:0:0/96' (0.0.0.0/0)", "'2001:DB8::1' (2001:db8::1)").
 */
export function namedTarget(t: Target, typed?: string): string {
  const as = typed?.trim();
  return as === undefined || as === t.text ? quoted(t.text) : `${quoted(as)} (${t.text})`;
}

/**
 * The rules for anything that goes into the blocklist: null, or the reason
 * the target is refused, naming it as typed (the text it was parsed from).
 */
export function checkBlockable(t: Target, policy: BlockPolicy, typed?: string): string | null {
  const why = t.family === 6 ? blockRule6(t, policy) : blockRule4(t, policy);
  return why === null ? null : `${namedTarget(t, typed)} ${why}`; // the name only for a refusal: bulk loads pass millions
}

/** Which IPv4 never-block rule t breaks, as the rest of a sentence ("is loopback"), or null. */
function blockRule4(t: Target, policy: BlockPolicy): string | null {
  const first = t.addr >>> 24;
  if (t.prefixlen < policy.minPrefix) return `is shorter than the minimum prefix /${policy.minPrefix}`;
  if (first === 0) return `is in 0.0.0.0/8 (this network)`;
  if (first === 127) return `is loopback`;
  if (first >= 224 && first <= 239) return `is multicast`;
  if (t.addr === 0xffffffff) return `is the limited broadcast address`;
  for (const own of policy.own) {
    if (covers(t, { addr: own, prefixlen: 32 })) return `covers this host's address ${formatAddr(own)}`;
  }
  for (const p of policy.peers ?? []) {
    if (covers(p, t) || covers(t, p)) return `overlaps the cluster's own address ${formatTarget(p.addr, p.prefixlen)} (never-block)`;
  }
  for (const a of policy.allow) {
    if (covers(a, t)) return `is covered by the allowlist entry ${formatTarget(a.addr, a.prefixlen)}`;
  }
  return null;
}

export function checkBlockTarget(input: string, policy: BlockPolicy): Checked {
  const parsed = parseTarget(input);
  if (!parsed.ok) return parsed;
  const why = checkBlockable(parsed.target, policy, input);
  return why ? { ok: false, reason: why } : parsed;
}

/**
 * The target of a block or unblock request (consume's messages, feed lines):
 * a block meets every blocklist rule; lifting a block needs a well-formed
 * target only (parseRemovable: an entry added under older rules still goes).
 */
export function checkActionTarget(action: 'block' | 'unblock', input: string, policy: BlockPolicy): Checked {
  return action === 'block' ? checkBlockTarget(input, policy) : parseRemovable(input);
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

const V6_CHARS = /^[0-9A-Fa-f:.]+(?:\/\d{1,3})?$/;

/** RFC 5952 text of 16 bytes: lower case, no leading zeros, the longest run of two or more zero groups (the first on a tie) as "::". */
export function formatAddr6(b: Uint8Array): string {
  const g: number[] = [];
  for (let i = 0; i < 16; i += 2) g.push((b[i]! << 8) | b[i + 1]!);
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) [best, bestLen] = [i, j - i];
    i = j;
  }
  const hex = (from: number, to: number) => g.slice(from, to).map((x) => x.toString(16)).join(':');
  return best < 0 ? hex(0, 8) : `${hex(0, best)}::${hex(best + bestLen, 8)}`;
}

export function formatTarget6(b: Uint8Array, prefixlen: number): string {
  return prefixlen === 128 ? formatAddr6(b) : `${formatAddr6(b)}/${prefixlen}`;
}

/** Does a contain all of b (both IPv6)? */
export function covers6(a: Cidr6, b: Cidr6): boolean {
  if (b.prefixlen < a.prefixlen) return false;
  const full = a.prefixlen >> 3;
  for (let i = 0; i < full; i++) if (a.bytes[i] !== b.bytes[i]) return false;
  const rest = a.prefixlen & 7;
  return rest === 0 || ((a.bytes[full]! ^ b.bytes[full]!) & (0xff << (8 - rest)) & 0xff) === 0;
}

/** The 16 bytes of a canonical IPv6 text (as formatAddr6 writes it; no prefix). */
export function bytesOf6(text: string): Uint8Array {
  const out = new Uint8Array(16);
  const [head, tail] = text.includes('::') ? text.split('::') : [text, undefined];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
  groups.forEach((x, i) => {
    const n = parseInt(x, 16);
    out[2 * i] = n >> 8;
    out[2 * i + 1] = n & 0xff;
  });
  return out;
}

/**
 * parseTarget for removals (unblock, disallow, options-disallow): also takes
 * an IPv4-compatible address as the IPv6 entry it names, so an entry added
 * before such addresses were refused can still be removed by name.
 */
export function parseRemovable(input: string): Checked {
  const text = input.trim();
  const zero = prefixLeadingZero(input, text);
  if (zero) return zero;
  if (text.includes(':') || text.includes('[')) return parseTarget6(input, text, true);
  return parseTarget(input);
}

/** The address inside "[addr]" or "[addr]:port" (RFC 3986 3.2.2 forms), or null. */
function unbracketed(text: string): string | null {
  const m = /^\[([^\]]*)\](?::\d*)?$/.exec(text);
  return m ? m[1]! : null;
}

/**
 * Parse IPv6 text (RFC 4291 2.2 forms, RFC 4291 2.3 prefixes). Refused with
 * the value named: brackets or a port ("[2001:db8::1]:5060": RFC 3986 forms,
 * not an address; the bare address inside is suggested), a zone id
 * ("fe80::1%eth0": meaningful on one host only), a prefix over 128 or with
 * host bits set, and an IPv4-compatible address (::a.b.c.d in ::/96 other
 * than :: and ::1, RFC 4291 2.5.5.1: deprecated, never a packet's source;
 * the IPv4 form is suggested) unless removable. An IPv4-mapped address
 * (::ffff:0:0/96, RFC 4291 2.5.5.2) is the IPv4 address it carries and is
 * validated as IPv4. Other special ranges are ordinary IPv6 here (README:
 * IPv6 special ranges).
 */
export function parseTarget6(input: string, text = input.trim(), removable = false): Checked {
  if (text.includes('[') || text.includes(']')) {
    const inner = unbracketed(text);
    const bare = inner !== null && parseTarget6(inner, inner.trim(), removable).ok ? quoted(inner.trim()) : 'the address alone, without brackets or port';
    return { ok: false, reason: `${quoted(input)} is bracketed or has a port; give the bare IPv6 address: ${bare}` };
  }
  if (text.includes('%')) return { ok: false, reason: `${quoted(input)} has a zone id (%...): zone-scoped addresses are not blockable` };
  if (!V6_CHARS.test(text)) return { ok: false, reason: `${quoted(input)} is not an IPv4 or IPv6 address or CIDR` };
  let a: Address6;
  try {
    a = new Address6(text);
  } catch {
    const m = /\/(\d+)$/.exec(text);
    if (m && Number(m[1]) > 128) return { ok: false, reason: `${quoted(input)} has a prefix longer than 128` };
    return { ok: false, reason: `${quoted(input)} is not an IPv6 address or CIDR` };
  }
  const prefixlen = a.subnetMask;
  const bytes = new Uint8Array(16);
  const groups = a.parsedAddress;
  let leadingZero = true; // groups 0-4 all zero: the start of an IPv4-mapped address
  for (let i = 0; i < 8; i++) {
    const n = parseInt(groups[i]!, 16);
    bytes[2 * i] = n >> 8;
    bytes[2 * i + 1] = n & 0xff;
    if (i < 5 && n !== 0) leadingZero = false;
  }
  // IPv4-mapped: the IPv4 address (or prefix) it carries.
  if (leadingZero && bytes[10] === 0xff && bytes[11] === 0xff && prefixlen >= 96) {
    const v4 = `${bytes[12]}.${bytes[13]}.${bytes[14]}.${bytes[15]}`;
    const r = parseTarget(prefixlen === 128 ? v4 : `${v4}/${prefixlen - 96}`);
    return r.ok ? r : { ok: false, reason: `${quoted(input)} (IPv4-mapped): ${r.reason}` };
  }
  // IPv4-compatible (::a.b.c.d): deprecated, no stack sends from one; :: and ::1 keep their own rules.
  if (!removable && leadingZero && bytes[10] === 0 && bytes[11] === 0 && prefixlen >= 96 && !isUnspecifiedOrLoopback(bytes, prefixlen)) {
    const v4 = `${bytes[12]}.${bytes[13]}.${bytes[14]}.${bytes[15]}${prefixlen === 128 ? '' : `/${prefixlen - 96}`}`;
    return { ok: false, reason: `${quoted(input)} is an IPv4-compatible IPv6 address (::a.b.c.d, deprecated by RFC 4291 2.5.5.1; never a packet's source); give the IPv4 form: ${v4}` };
  }
  if (prefixlen < 128 && hostBitsSet6(bytes, prefixlen)) {
    const network = bytes.slice();
    for (let bit = prefixlen; bit < 128; bit++) network[bit >> 3]! &= ~(0x80 >> (bit & 7));
    return { ok: false, reason: `${quoted(input)} has host bits set; the network is ${formatTarget6(network, prefixlen)}` };
  }
  return { ok: true, target: { text: formatTarget6(bytes, prefixlen), addr: 0, prefixlen, family: 6, bytes } };
}

function isUnspecifiedOrLoopback(b: Uint8Array, prefixlen: number): boolean {
  return prefixlen === 128 && b.subarray(0, 15).every((x) => x === 0) && b[15]! <= 1;
}

function hostBitsSet6(b: Uint8Array, prefixlen: number): boolean {
  for (let bit = prefixlen; bit < 128; bit++) if (b[bit >> 3]! & (0x80 >> (bit & 7))) return true;
  return false;
}

/** Ranges no IPv6 block may touch (RFC 4291 2.5.2, 2.5.3, 2.7, 2.5.6). */
const NEVER6: Array<[Cidr6, string]> = [
  [{ bytes: new Uint8Array(16), prefixlen: 128 }, 'the unspecified address (::)'],
  [{ bytes: Uint8Array.from([...Array<number>(15).fill(0), 1]), prefixlen: 128 }, 'the loopback address (::1)'],
  [{ bytes: Uint8Array.from([0xff, ...Array<number>(15).fill(0)]), prefixlen: 8 }, 'multicast (ff00::/8)'],
  [{ bytes: Uint8Array.from([0xfe, 0x80, ...Array<number>(14).fill(0)]), prefixlen: 10 }, 'link-local (fe80::/10)'],
];

/** The NAT64 well-known prefix (RFC 6052 2.1): 64:ff9b::a.b.c.d is the IPv4 host a.b.c.d as an IPv6-only network sees it. */
const NAT64_WKP: Cidr6 = { bytes: Uint8Array.from([0, 0x64, 0xff, 0x9b, ...Array<number>(12).fill(0)]), prefixlen: 96 };

/** blockRule4 for IPv6. */
function blockRule6(t: Target, policy: BlockPolicy): string | null {
  const c: Cidr6 = { bytes: t.bytes!, prefixlen: t.prefixlen };
  const min = policy.minPrefix6 ?? DEFAULT_MIN_PREFIX6;
  if (t.prefixlen < min) return `is shorter than the minimum IPv6 prefix /${min}`;
  for (const [r, what] of NEVER6) if (covers6(r, c) || covers6(c, r)) return `is ${covers6(r, c) ? '' : 'a prefix covering '}${what}`;
  // NAT64: a prefix inside 64:ff9b::/96 is an IPv4 prefix, held to the IPv4 minimum; the whole /96 is every IPv4 host.
  if (covers6(c, NAT64_WKP)) return `covers the NAT64 prefix 64:ff9b::/96: every IPv4 host reached through NAT64`;
  if (covers6(NAT64_WKP, c) && t.prefixlen - 96 < policy.minPrefix) {
    const b = c.bytes;
    return `is ${b[12]}.${b[13]}.${b[14]}.${b[15]}/${t.prefixlen - 96} through NAT64, shorter than the minimum prefix /${policy.minPrefix}`;
  }
  for (const own of policy.own6 ?? []) {
    if (covers6(c, { bytes: own, prefixlen: 128 })) return `covers this host's address ${formatAddr6(own)}`;
  }
  for (const a of policy.allow6 ?? []) {
    if (covers6(a, c)) return `is covered by the allowlist entry ${formatTarget6(a.bytes, a.prefixlen)}`;
  }
  return null;
}

/**
 * Family and prefix length of a target as the state holds it, or why it is
 * not one. Rows were validated with ip-address when written; this re-check
 * on every read (a million rows at attach) proves the text is the canonical
 * form of a key by a round trip through our own formatting: any other text
 * ('zzz', '1.2.3.400', '2001:DB8::1', '10.0.0.1/08') formats differently.
 * Prefix lengths 0-32 (IPv4) or 0-128 (IPv6), host bits clear.
 */
export function checkStoredTarget(text: string): { family: 4 | 6; prefixlen: number } | string {
  const slash = text.indexOf('/');
  const v6 = text.includes(':');
  const max = v6 ? 128 : 32;
  let prefixlen = max;
  if (slash >= 0) {
    const p = text.slice(slash + 1);
    if (!/^(0|[1-9]\d{0,2})$/.test(p) || Number(p) > max) return `prefix length '${p}' is not 0-${max}`;
    prefixlen = Number(p);
  }
  const host = slash >= 0 ? text.slice(0, slash) : text;
  if (v6) {
    const bytes = bytesOf6(host);
    if (formatTarget6(bytes, prefixlen) !== text) return 'not an IPv6 address or prefix in RFC 5952 form';
    const full = prefixlen >> 3;
    const rest = prefixlen & 7;
    for (let i = full; i < 16; i++) {
      const keep = i === full && rest ? (0xff << (8 - rest)) & 0xff : 0;
      if (bytes[i]! & ~keep & 0xff) return 'host bits set';
    }
    return { family: 6, prefixlen };
  }
  const m = DOTTED.exec(host);
  if (!m) return 'not a dotted-quad IPv4 address or prefix';
  const addr = ((+m[1]! << 24) | (+m[2]! << 16) | (+m[3]! << 8) | +m[4]!) >>> 0;
  // Octets over 255 or with leading zeros format differently.
  if (formatTarget(addr, prefixlen) !== text) return 'not a dotted-quad IPv4 address or prefix in canonical form';
  if (((addr & mask(prefixlen)) >>> 0) !== addr) return 'host bits set';
  return { family: 4, prefixlen };
}
