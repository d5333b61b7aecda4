/** Crafted Ethernet/IPv4/UDP frames for BPF_PROG_TEST_RUN. Pure: bytes in, bytes out. */

export interface FrameOptions {
  src?: string;
  dst?: string;
  sport?: number;
  dport?: number;
  /** 0x8100 (802.1Q) or 0x88a8 (802.1ad) outer tags, in order. */
  vlans?: number[];
  protocol?: number;
  /** IPv4 fragment offset in 8-byte units (non-zero = not the first fragment). */
  fragOffset?: number;
  moreFragments?: boolean;
  /** When false, no UDP header is written (the payload follows the IP header). */
  udp?: boolean;
  /** UDP length field override (for truncated datagrams). */
  udpLength?: number;
  /** IPv4 options (a multiple of 4 bytes, up to 40): the IHL grows to match. */
  ipOptions?: Uint8Array;
}

const ETH_P_IP = 0x0800;
const ETH_P_IPV6 = 0x86dd;

function ipv4Bytes(text: string): number[] {
  return text.split('.').map((o) => Number(o));
}

function checksum(bytes: Uint8Array): number {
  let sum = 0;
  for (let i = 0; i < bytes.length; i += 2) sum += (bytes[i]! << 8) | (bytes[i + 1] ?? 0);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

function ethernet(vlans: number[], etherType: number): number[] {
  const out = [0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2];
  const types = [...vlans, etherType];
  out.push(types[0]! >> 8, types[0]! & 0xff);
  for (let i = 1; i < types.length; i++) out.push(0x00, 0x64, types[i]! >> 8, types[i]! & 0xff);
  return out;
}

/** A UDP header (checksum 0) for a payload of n bytes. */
function udpHeader(o: FrameOptions, n: number): Uint8Array {
  const sport = o.sport ?? 5060;
  const dport = o.dport ?? 5060;
  const ulen = o.udpLength ?? 8 + n;
  return Uint8Array.from([sport >> 8, sport & 0xff, dport >> 8, dport & 0xff, ulen >> 8, ulen & 0xff, 0, 0]);
}

export function udpFrame(payload: string | Uint8Array, o: FrameOptions = {}): Buffer {
  const body = typeof payload === 'string' ? Buffer.from(payload, 'latin1') : Buffer.from(payload);
  const withUdp = o.udp !== false;
  const l4len = (withUdp ? 8 : 0) + body.length;
  const options = o.ipOptions ?? new Uint8Array(0);
  if (options.length % 4 || options.length > 40) throw new Error(`IPv4 options of ${options.length} bytes: a multiple of 4, up to 40`);
  const ip = new Uint8Array(20 + options.length);
  ip.set(options, 20);
  const total = ip.length + l4len;
  const frag = ((o.moreFragments ? 0x2000 : 0) | (o.fragOffset ?? 0)) & 0xffff;
  ip.set([0x45 + options.length / 4, 0, total >> 8, total & 0xff, 0x12, 0x34, frag >> 8, frag & 0xff, 64, o.protocol ?? 17, 0, 0]);
  ip.set(ipv4Bytes(o.src ?? '198.51.100.7'), 12);
  ip.set(ipv4Bytes(o.dst ?? '192.0.2.1'), 16);
  const sum = checksum(ip);
  ip[10] = sum >> 8;
  ip[11] = sum & 0xff;
  const parts: Uint8Array[] = [Uint8Array.from(ethernet(o.vlans ?? [], ETH_P_IP)), ip];
  if (withUdp) parts.push(udpHeader(o, body.length));
  parts.push(body);
  return Buffer.concat(parts);
}

/** The 16 bytes of an IPv6 address in text ("2001:db8::1"; no zone, no embedded IPv4). */
export function ipv6Bytes(text: string): number[] {
  const [head, tail] = text.includes('::') ? text.split('::') : [text, undefined];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
  if (groups.length !== 8) throw new Error(`not an IPv6 address: ${text}`);
  return groups.flatMap((g) => [parseInt(g, 16) >> 8, parseInt(g, 16) & 0xff]);
}

export const IPPROTO_HOPOPTS = 0;
export const IPPROTO_ROUTING = 43;
export const IPPROTO_FRAGMENT = 44;
export const IPPROTO_DSTOPTS = 60;

export interface Frame6Options extends Omit<FrameOptions, 'fragOffset' | 'moreFragments'> {
  /** Extension headers before the fragment header (if any) and UDP, in order: hop-by-hop, routing or destination options, each `len` 8-byte units past the first 8. */
  ext?: Array<{ type: number; len?: number }>;
  /** A fragment header: offset in 8-byte units (non-zero = not the first fragment) and M. */
  fragment?: { offset: number; more: boolean };
  /** IPv6 payload length override. */
  payloadLength?: number;
  /** Write the real UDP checksum (RFC 8200 8.1: mandatory over IPv6) for frames a real stack receives; else 0. */
  udpChecksum?: boolean;
}

/**
 * Fill an options header's option area (from byte 2) as Linux takes it: at
 * most 7 bytes of padding (Pad1/PadN; ip6_parse_tlv refuses more, after RFC
 * 4942 2.1.9.5), the rest in options of the experimental type 0x1e (RFC 4727),
 * whose high bits say "skip if unknown" (RFC 8200 4.2), up to 257 bytes each
 * (8 of them, the kernel's default max_dst_opts_number, fill 2,048 bytes).
 */
function fillOptions(bytes: number[]): void {
  let at = 2;
  while (at < bytes.length) {
    const left = bytes.length - at;
    if (left === 1) {
      bytes[at] = 0; // Pad1
      at += 1;
    } else if (left <= 7) {
      bytes[at] = 1; // PadN
      bytes[at + 1] = left - 2;
      at += left;
    } else {
      const len = Math.min(255, left - 2);
      bytes[at] = 0x1e;
      bytes[at + 1] = len;
      at += 2 + len;
    }
  }
}

/** An Ethernet/IPv6[/extension headers]/UDP frame. */
export function udp6Frame(payload: string | Uint8Array, o: Frame6Options = {}): Buffer {
  const body = typeof payload === 'string' ? Buffer.from(payload, 'latin1') : Buffer.from(payload);
  const withUdp = o.udp !== false;
  const upper = o.protocol ?? 17;
  const chain: Array<{ type: number; bytes: number[] }> = [];
  for (const e of o.ext ?? []) chain.push({ type: e.type, bytes: Array<number>(8 + 8 * (e.len ?? 0)).fill(0) });
  if (o.fragment) {
    const f = (o.fragment.offset << 3) | (o.fragment.more ? 1 : 0);
    chain.push({ type: IPPROTO_FRAGMENT, bytes: [0, 0, f >> 8, f & 0xff, 0x12, 0x34, 0x56, 0x78] });
  }
  // Each header's first byte names the next one.
  chain.forEach((h, i) => {
    h.bytes[0] = i + 1 < chain.length ? chain[i + 1]!.type : upper;
    if (h.type !== IPPROTO_FRAGMENT) h.bytes[1] = (h.bytes.length - 8) / 8;
    if (h.type === IPPROTO_DSTOPTS || h.type === IPPROTO_HOPOPTS) fillOptions(h.bytes);
  });
  const extBytes = chain.flatMap((h) => h.bytes);
  const l4len = (withUdp ? 8 : 0) + body.length;
  const plen = o.payloadLength ?? extBytes.length + l4len;
  const ip6 = new Uint8Array(40);
  ip6.set([0x60, 0, 0, 0, plen >> 8, plen & 0xff, chain.length ? chain[0]!.type : upper, 64]);
  ip6.set(ipv6Bytes(o.src ?? '2001:db8:5::7'), 8);
  ip6.set(ipv6Bytes(o.dst ?? '2001:db8::1'), 24);
  const parts: Uint8Array[] = [Uint8Array.from(ethernet(o.vlans ?? [], ETH_P_IPV6)), ip6, Uint8Array.from(extBytes)];
  if (withUdp) parts.push(o.udpChecksum ? udp6Checksummed(ip6, udpHeader(o, body.length), body) : udpHeader(o, body.length));
  parts.push(body);
  return Buffer.concat(parts);
}

/** The UDP header with its checksum over the IPv6 pseudo-header (RFC 8200 8.1), the header and the payload. */
function udp6Checksummed(ip6: Uint8Array, udp: Uint8Array, body: Uint8Array): Uint8Array {
  const len = udp.length + body.length;
  const pseudo = Uint8Array.from([...ip6.subarray(8, 40), len >>> 24, (len >> 16) & 0xff, (len >> 8) & 0xff, len & 0xff, 0, 0, 0, 17]);
  const sum = checksum(Buffer.concat([pseudo, udp, body])) || 0xffff; // 0 means "no checksum": sent as all ones
  const out = Uint8Array.from(udp);
  out[6] = sum >> 8;
  out[7] = sum & 0xff;
  return out;
}

/** An ARP request: a frame that is neither IPv4 nor IPv6. */
export function arpFrame(): Buffer {
  const arp = [0, 1, 0x08, 0x00, 6, 4, 0, 1, 2, 0, 0, 0, 0, 2, 192, 0, 2, 7, 0, 0, 0, 0, 0, 0, 192, 0, 2, 1];
  return Buffer.concat([Uint8Array.from(ethernet([], 0x0806)), Uint8Array.from(arp)]);
}

/** The first n bytes of a frame: a packet cut short inside its headers. */
export function truncated(frame: Buffer, n: number): Buffer {
  return frame.subarray(0, n);
}

/** The frame with bytes appended past its IP payload (Ethernet padding, or anything a sender adds). */
export function trailing(frame: Buffer, extra: string): Buffer {
  return Buffer.concat([frame, Buffer.from(extra, 'latin1')]);
}

export interface SipRequestOptions {
  method?: string;
  uri?: string;
  requestLine?: string;
  headers?: string[];
  body?: string;
  /** What ends the header block; the default is an empty line (CRLF). */
  end?: string;
}

export const DEFAULT_HEADERS = [
  'Via: SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bK776asdhds',
  'Max-Forwards: 70',
  'From: <sip:alice@example.com>;tag=1928301774',
  'To: <sip:alice@example.com>',
  'Call-ID: a84b4c76e66710@pc33.example.com',
  'CSeq: 1 REGISTER',
  'Contact: <sip:alice@198.51.100.7:5060>',
  'Content-Length: 0',
];

export function sipRequest(o: SipRequestOptions = {}): string {
  const method = o.method ?? 'REGISTER';
  const line = o.requestLine ?? `${method} ${o.uri ?? 'sip:example.com'} SIP/2.0`;
  const headers = o.headers ?? DEFAULT_HEADERS.map((h) => h.replace('CSeq: 1 REGISTER', `CSeq: 1 ${method}`));
  return `${line}\r\n${headers.map((h) => `${h}\r\n`).join('')}${o.end ?? '\r\n'}${o.body ?? ''}`;
}

/** A REGISTER padded with a long Contact so the datagram is about `size` bytes. */
export function registerOfSize(size: number): string {
  const base = sipRequest();
  const pad = Math.max(0, size - base.length - 'X-Pad: \r\n'.length);
  return sipRequest({ headers: [...DEFAULT_HEADERS.slice(0, -1), `X-Pad: ${'a'.repeat(pad)}`, 'Content-Length: 0'] });
}
