/**
 * Byte layouts of the pinned maps, mirroring xdp/vfp_maps.h. Pure encoders and
 * decoders; change them together with the header.
 */
import { bytesOf6, formatTarget, formatTarget6, type Target } from '../address.js';

export const MAP = {
  blockedIps: 'blocked_ips',
  blockedPrefixes: 'blocked_prefixes',
  allowIps: 'allow_ips',
  optionsAllow: 'options_allow',
  blockedIps6: 'blocked_ips6',
  blockedPrefixes6: 'blocked_prefixes6',
  allowIps6: 'allow_ips6',
  optionsAllow6: 'options_allow6',
  config: 'config',
  stats: 'stats',
  xsks: 'xsks_map',
  sourceNames: 'source_names',
} as const;

/** Reasons in the index order of enum vfp_stat. */
export const REASONS = [
  'passed',
  'allowlisted',
  'blocked_exact',
  'blocked_prefix',
  'options_dropped',
  'malformed_register',
  'redirected',
  'not_ip',
  'shadow_would_drop',
  'tiny_fragment',
  'unparsed_headers',
  'unjudged',
] as const;
export type Reason = (typeof REASONS)[number];
/** Suffix of an IPv6 counter's name ("blocked_exact_ipv6"); IPv4 ones (and not_ip) carry none. */
export const IPV6_SUFFIX = '_ipv6';
/**
 * Reasons only IPv6 counts: its extension headers (unparsed_headers), and a
 * payload they push past what the SIP checks read (unjudged; IPv4's headers
 * never reach that far).
 */
const IPV6_ONLY: ReadonlySet<Reason> = new Set<Reason>(['unparsed_headers', 'unjudged']);
/**
 * Counter names by stats map index: IPv4 at [reason], IPv6 at [REASONS.length
 * + reason] (VFP_STAT_IPV6). Slots a family never counts (IPv4's IPV6_ONLY,
 * IPv6 not_ip) are null and left out of listings.
 */
export const STAT_NAMES: ReadonlyArray<string | null> = [
  ...REASONS.map((r) => (IPV6_ONLY.has(r) ? null : r)),
  ...REASONS.map((r) => (r === 'not_ip' ? null : `${r}${IPV6_SUFFIX}`)),
];
export type StatName = string;

/** Reason and family of a counter name: "blocked_exact_ipv6" -> blocked_exact, ipv6; "not_ip" -> not_ip, none. */
export function splitStatName(name: string): { reason: string; family: 'ipv4' | 'ipv6' | 'none' } {
  if (name.endsWith(IPV6_SUFFIX)) return { reason: name.slice(0, -IPV6_SUFFIX.length), family: 'ipv6' };
  return { reason: name, family: name === 'not_ip' ? 'none' : 'ipv4' };
}

export const EXACT_KEY = 4;
export const LPM_KEY = 8;
/** IPv6: struct vfp_in6 (16 bytes) and struct vfp_lpm_key6 (prefixlen u32 LE + 16 bytes). */
export const EXACT_KEY6 = 16;
export const LPM_KEY6 = 20;
export const BLOCK_VALUE = 16;
export const MARK_VALUE = 4;
export const SOURCE_NAME_LEN = 32;
export const MAX_SOURCES = 256;
export const FIRST_FEED_SOURCE = 16;
/** Source ids with a fixed meaning, shared with scripts/lib.sh. */
export const FIXED_SOURCES: Record<string, number> = { unknown: 0, manual: 1, amqp: 2 };

export interface BlockValue {
  /** CLOCK_BOOTTIME ns; 0n = never. */
  expiresNs: bigint;
  addedUnix: number;
  sourceId: number;
}

export function exactKey(addr: number): Buffer {
  const b = Buffer.alloc(EXACT_KEY);
  b.writeUInt32BE(addr >>> 0);
  return b;
}

export function lpmKey(addr: number, prefixlen: number): Buffer {
  const b = Buffer.alloc(LPM_KEY);
  b.writeUInt32LE(prefixlen);
  b.writeUInt32BE(addr >>> 0, 4);
  return b;
}

/** The key of a target in the map it belongs to (exact: blocked_ips; prefix: blocked_prefixes). */
export function blockKey(addr: number, prefixlen: number): Buffer {
  return prefixlen === 32 ? exactKey(addr) : lpmKey(addr, prefixlen);
}

/** blockKey written in place (bulk writes build one buffer, not a buffer per key). */
export function writeBlockKey(into: Buffer, at: number, addr: number, prefixlen: number): void {
  if (prefixlen === 32) {
    into.writeUInt32BE(addr >>> 0, at);
    return;
  }
  into.writeUInt32LE(prefixlen, at);
  into.writeUInt32BE(addr >>> 0, at + 4);
}

export function blockMapOf(prefixlen: number): string {
  return prefixlen === 32 ? MAP.blockedIps : MAP.blockedPrefixes;
}

export function encodeBlockValue(v: BlockValue, into = Buffer.alloc(BLOCK_VALUE), at = 0): Buffer {
  into.writeBigUInt64LE(v.expiresNs, at);
  into.writeUInt32LE(v.addedUnix >>> 0, at + 8);
  into.writeUInt16LE(v.sourceId, at + 12);
  into.writeUInt16LE(0, at + 14);
  return into;
}

export function decodeBlockValue(b: Buffer, at = 0): BlockValue {
  return { expiresNs: b.readBigUInt64LE(at), addedUnix: b.readUInt32LE(at + 8), sourceId: blockValueSourceId(b, at) };
}

/** Only the source id of a block value: scanning a million for one source decodes nothing else. */
export function blockValueSourceId(b: Buffer, at = 0): number {
  return b.readUInt16LE(at + 12);
}

/** Address and prefix length of the key at `at` in a dump of blocked_ips (keySize EXACT_KEY) or blocked_prefixes. */
export function readBlockKey(b: Buffer, at: number, keySize: number): { addr: number; prefixlen: number } {
  return keySize === EXACT_KEY ? { addr: b.readUInt32BE(at), prefixlen: 32 } : { addr: b.readUInt32BE(at + 4), prefixlen: b.readUInt32LE(at) };
}

export function encodeMark(addedUnix: number): Buffer {
  const b = Buffer.alloc(MARK_VALUE);
  b.writeUInt32LE(addedUnix >>> 0);
  return b;
}

/** Records key||value of fixed sizes, as vfp-maptool reads and writes them. */
export function* records(buf: Buffer, keySize: number, valueSize: number): Generator<[Buffer, Buffer]> {
  const rec = keySize + valueSize;
  for (let at = 0; at + rec <= buf.length; at += rec) yield [buf.subarray(at, at + keySize), buf.subarray(at + keySize, at + rec)];
}

/** Target text of a key of any block or mark map, told apart by its size (4, 8, 16 or 20 bytes). */
export function keyToText(key: Buffer): string {
  if (key.length === EXACT_KEY6) return formatTarget6(key, 128);
  if (key.length === LPM_KEY6) return formatTarget6(key.subarray(4), key.readUInt32LE(0));
  const t = readBlockKey(key, 0, key.length);
  return formatTarget(t.addr, t.prefixlen);
}

/** The four block maps, IPv4 first, with their key sizes. */
export const BLOCK_MAPS = [
  [MAP.blockedIps, EXACT_KEY],
  [MAP.blockedPrefixes, LPM_KEY],
  [MAP.blockedIps6, EXACT_KEY6],
  [MAP.blockedPrefixes6, LPM_KEY6],
] as const;

/** Is this canonical target text IPv6? (Only IPv6 text has a colon.) */
export const isV6Text = (ip: string): boolean => ip.includes(':');

/** Index in BLOCK_MAPS of the map a canonical target text lives in. */
export function blockMapIndex(ip: string): 0 | 1 | 2 | 3 {
  if (isV6Text(ip)) return ip.includes('/') ? 3 : 2;
  return ip.includes('/') ? 1 : 0;
}

/** Write the IPv6 key of a canonical target text at `at` (16 bytes for an address, 20 for a prefix). */
export function writeBlockKey6(into: Buffer, at: number, ip: string): void {
  const slash = ip.indexOf('/');
  if (slash < 0) {
    into.set(bytesOf6(ip), at);
    return;
  }
  into.writeUInt32LE(Number(ip.slice(slash + 1)), at);
  into.set(bytesOf6(ip.slice(0, slash)), at + 4);
}

/** The LPM key of a target in the allow and OPTIONS maps of its family, and that map's key size. */
export function markKey(t: Target): Buffer {
  if (t.family !== 6) return lpmKey(t.addr, t.prefixlen);
  const b = Buffer.alloc(LPM_KEY6);
  b.writeUInt32LE(t.prefixlen);
  b.set(t.bytes!, 4);
  return b;
}

/** The IPv6 twin of an IPv4 mark map (allow_ips -> allow_ips6). */
export const v6MapOf = (map: string): string => `${map}6`;

export function encodeSourceName(name: string): Buffer {
  const b = Buffer.alloc(SOURCE_NAME_LEN);
  b.write(name, 'latin1');
  return b;
}

export function decodeSourceName(b: Buffer): string {
  const end = b.indexOf(0);
  return b.subarray(0, end < 0 ? b.length : end).toString('latin1');
}

export const SOURCE_NAME = /^[A-Za-z0-9._-]{1,31}$/;
