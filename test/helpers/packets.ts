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
  if (withUdp) {
    const sport = o.sport ?? 5060;
    const dport = o.dport ?? 5060;
    const ulen = o.udpLength ?? 8 + body.length;
    parts.push(Uint8Array.from([sport >> 8, sport & 0xff, dport >> 8, dport & 0xff, ulen >> 8, ulen & 0xff, 0, 0]));
  }
  parts.push(body);
  return Buffer.concat(parts);
}

export function ipv6Frame(): Buffer {
  const ip6 = new Uint8Array(40);
  ip6[0] = 0x60;
  ip6[6] = 17;
  ip6[7] = 64;
  return Buffer.concat([Uint8Array.from(ethernet([], ETH_P_IPV6)), ip6, new Uint8Array(8)]);
}

/** The first n bytes of a frame: a packet cut short inside its headers. */
export function truncated(frame: Buffer, n: number): Buffer {
  return frame.subarray(0, n);
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
