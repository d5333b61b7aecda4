/**
 * Verdicts of the real program on crafted IPv6 frames, through
 * BPF_PROG_TEST_RUN: every rule and edge of the IPv4 verdict tests, the
 * extension headers a SIP datagram can carry, IPv6 fragments, and the same
 * payloads (phones' REGISTERs, RFC 4475 corpus, RFC 5118) judged as over
 * IPv4. Each case asserts which counter moved: IPv6 ones end in _ipv6.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { execa } from 'execa';
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describeKernel, describeWith } from '../helpers/env.js';
import { Lab, ROOT, XDP_DROP, XDP_PASS } from '../helpers/lab.js';
import {
  arpFrame, DEFAULT_HEADERS, IPPROTO_DSTOPTS, IPPROTO_HOPOPTS, IPPROTO_ROUTING, ipv6Bytes, registerOfSize, sipRequest, trailing, truncated,
  udp6Frame, udpFrame, type Frame6Options,
} from '../helpers/packets.js';
import { PHONE_REGISTERS } from '../helpers/phones.js';
import { RFC5118 } from '../helpers/rfc5118.js';

const BLOCKED = '2001:db8:bad::9';
const IN_BLOCKED_PREFIX = '2001:db8:f00d:12::4';
const ALLOWED_AND_BLOCKED = '2001:db8:bad::10';
const OPTIONS_PEER = '2001:db8:77::77';
const CLEAN = '2001:db8:5::7';
const EXPIRED = '2001:db8:bad::11';
const CLEAN4 = '198.51.100.7';

const OPTIONS = sipRequest({ method: 'OPTIONS', uri: 'sip:100@[2001:db8::1]' });
const REGISTER = sipRequest();
const BARE_REGISTER = 'REGISTER sip:a SIP/2.0\r\n\r\n';
const VLAN_Q = 0x8100;
const VLAN_AD = 0x88a8;
const CORPUS = process.env.VOS_SIP_CORPUS ?? resolve(ROOT, '..', 'shared', 'sip-corpus');
const corpusMissing = existsSync(join(CORPUS, 'cases.json')) ? null : `no RFC 4475 corpus at ${CORPUS}`;

const hex = (bytes: number[]) => bytes.map((b) => b.toString(16).padStart(2, '0'));
const u32le = (n: number) => [n & 255, (n >> 8) & 255, (n >> 16) & 255, (n >>> 24) & 255];
const without = (prefix: string) => sipRequest({ headers: DEFAULT_HEADERS.filter((h) => !h.startsWith(prefix)) });
const f6 = (payload: string | Uint8Array, o: Frame6Options = {}) => udp6Frame(payload, { src: CLEAN, ...o });
/** n destination-options headers of 8 + 8 * len bytes each. */
const dstopts = (n: number, len = 0) => Array.from({ length: n }, () => ({ type: IPPROTO_DSTOPTS, len }));


/** The UDP payload of an Ethernet/IPv4/UDP frame (the corpus's frames). */
function udpPayloadOf(frame: Buffer): Buffer {
  const ihl = (frame[14]! & 0x0f) * 4;
  return frame.subarray(14 + ihl + 8);
}

describeKernel('XDP verdicts over IPv6 (bpftool prog run)', () => {
  const lab = new Lab();
  // vfp_block: expires_ns u64 (0 never, 1 long past), added_unix u32, source u16, flags u16.
  const NEVER = hex([0, 0, 0, 0, 0, 0, 0, 0, ...u32le(1700000000), 1, 0, 0, 0]);
  const PAST = hex([1, 0, 0, 0, 0, 0, 0, 0, ...u32le(1700000000), 1, 0, 0, 0]);
  const MARK = hex(u32le(1700000000));
  const update = (map: string, key: string[], value: string[]) =>
    execa('bpftool', ['map', 'update', 'pinned', `${lab.pinDir}/${map}`, 'key', 'hex', ...key, 'value', 'hex', ...value]);
  const lpm = (addr: string, len: number) => hex([...u32le(len), ...ipv6Bytes(addr)]);

  beforeAll(async () => {
    await lab.loadUnattached();
    await update('blocked_ips6', hex(ipv6Bytes(BLOCKED)), NEVER);
    await update('blocked_ips6', hex(ipv6Bytes(ALLOWED_AND_BLOCKED)), NEVER);
    await update('blocked_ips6', hex(ipv6Bytes(EXPIRED)), PAST);
    await update('blocked_prefixes6', lpm('2001:db8:f00d::', 48), NEVER);
    await update('allow_ips6', lpm(ALLOWED_AND_BLOCKED, 128), MARK);
    await update('options_allow6', lpm('2001:db8:77::', 64), MARK);
  });
  afterAll(() => lab.cleanup());

  const verdictOf = (frame: Buffer) => lab.verdictOf(frame);

  const cases: Array<[string, () => Buffer, number, string]> = [
    ['clean INVITE passes', () => f6(sipRequest({ method: 'INVITE' })), XDP_PASS, 'passed_ipv6'],
    ['exact blocklist entry drops', () => f6(REGISTER, { src: BLOCKED }), XDP_DROP, 'blocked_exact_ipv6'],
    ['blocklist drops all traffic from the source (scope all)', () => f6('x', { src: BLOCKED, dport: 53 }), XDP_DROP, 'blocked_exact_ipv6'],
    ['blocklist drops TCP from the source', () => f6('x', { src: BLOCKED, protocol: 6, udp: false }), XDP_DROP, 'blocked_exact_ipv6'],
    ['expired entry no longer drops', () => f6(REGISTER, { src: EXPIRED }), XDP_PASS, 'passed_ipv6'],
    ['prefix entry (/48) drops an address inside it', () => f6(REGISTER, { src: IN_BLOCKED_PREFIX }), XDP_DROP, 'blocked_prefix_ipv6'],
    ['an address just outside the /48 passes', () => f6(REGISTER, { src: '2001:db8:f00e::4' }), XDP_PASS, 'passed_ipv6'],
    ['the IPv4 maps do not apply to IPv6 (same low 32 bits as nothing blocked)', () => f6(REGISTER, { src: '::cb00:7109' }), XDP_PASS, 'passed_ipv6'],
    ['allowlist beats the blocklist', () => f6(OPTIONS, { src: ALLOWED_AND_BLOCKED }), XDP_PASS, 'allowlisted_ipv6'],
    ['OPTIONS from an unknown source is dropped (stealth)', () => f6(OPTIONS), XDP_DROP, 'options_dropped_ipv6'],
    ['OPTIONS after a leading CRLF is dropped', () => f6(`\r\n${OPTIONS}`), XDP_DROP, 'options_dropped_ipv6'],
    ['lower-case options is dropped', () => f6(OPTIONS.replace('OPTIONS', 'options')), XDP_DROP, 'options_dropped_ipv6'],
    ['OPTIONS from options_allow6 (a /64) passes', () => f6(OPTIONS, { src: OPTIONS_PEER }), XDP_PASS, 'passed_ipv6'],
    ['OPTIONS from options_allow6 after a CRLF passes', () => f6(`\r\n${OPTIONS}`, { src: OPTIONS_PEER }), XDP_PASS, 'passed_ipv6'],
    ['OPTIONS to a non-SIP port passes', () => f6(OPTIONS, { dport: 5070 }), XDP_PASS, 'passed_ipv6'],
    ['valid REGISTER passes', () => f6(REGISTER), XDP_PASS, 'passed_ipv6'],
    ['valid 500-byte REGISTER passes', () => f6(registerOfSize(500)), XDP_PASS, 'passed_ipv6'],
    ['valid 3,000-byte REGISTER passes', () => f6(registerOfSize(3000)), XDP_PASS, 'passed_ipv6'],
    ['REGISTER without SIP/2.0 is dropped', () => f6(sipRequest({ requestLine: 'REGISTER sip:example.com' })), XDP_DROP, 'malformed_register_ipv6'],
    ['REGISTER with a non-SIP URI scheme is dropped', () => f6(sipRequest({ requestLine: 'REGISTER http://[2001:db8::1] SIP/2.0' })), XDP_DROP, 'malformed_register_ipv6'],
    ['REGISTER with a space inside the URI is dropped', () => f6(sipRequest({ requestLine: 'REGISTER sip:[2001:db8:: 1] SIP/2.0' })), XDP_DROP, 'malformed_register_ipv6'],
    ...['Via', 'From', 'To', 'Call-ID', 'CSeq'].map((h): [string, () => Buffer, number, string] => [`REGISTER without ${h} is dropped`, () => f6(without(h)), XDP_DROP, 'malformed_register_ipv6']),
    ['REGISTER without an end of headers is dropped', () => f6(sipRequest({ end: '' })), XDP_DROP, 'malformed_register_ipv6'],
    ['REGISTER without headers after a CRLF is dropped', () => f6(`\r\n${BARE_REGISTER}`), XDP_DROP, 'malformed_register_ipv6'],
    ['REGISTER to a non-SIP port is not judged', () => f6(without('Via'), { dport: 5070 }), XDP_PASS, 'passed_ipv6'],
    ['keepalive CRLFCRLF passes', () => f6('\r\n\r\n'), XDP_PASS, 'passed_ipv6'],
    // Extension headers.
    ['OPTIONS behind a hop-by-hop header is dropped', () => f6(OPTIONS, { ext: [{ type: IPPROTO_HOPOPTS }] }), XDP_DROP, 'options_dropped_ipv6'],
    ['OPTIONS behind a destination-options header of 24 bytes is dropped', () => f6(OPTIONS, { ext: [{ type: IPPROTO_DSTOPTS, len: 2 }] }), XDP_DROP, 'options_dropped_ipv6'],
    ['malformed REGISTER behind hop-by-hop, routing and destination options is dropped', () => f6(without('CSeq'), { ext: [{ type: IPPROTO_HOPOPTS }, { type: IPPROTO_ROUTING, len: 2 }, { type: IPPROTO_DSTOPTS }] }), XDP_DROP, 'malformed_register_ipv6'],
    ['valid REGISTER behind hop-by-hop and destination options passes', () => f6(REGISTER, { ext: [{ type: IPPROTO_HOPOPTS }, { type: IPPROTO_DSTOPTS }] }), XDP_PASS, 'passed_ipv6'],
    ['a blocked source behind extension headers is dropped', () => f6(REGISTER, { src: BLOCKED, ext: [{ type: IPPROTO_HOPOPTS }, { type: IPPROTO_DSTOPTS }] }), XDP_DROP, 'blocked_exact_ipv6'],
    ['OPTIONS behind six extension headers and an atomic fragment header is dropped', () => f6(OPTIONS, { ext: [{ type: IPPROTO_HOPOPTS }, { type: IPPROTO_DSTOPTS }, { type: IPPROTO_ROUTING }, { type: IPPROTO_DSTOPTS }, { type: IPPROTO_DSTOPTS }], fragment: { offset: 0, more: false } }), XDP_DROP, 'options_dropped_ipv6'],
    // Long chains: the walk follows every header a frame can hold (README: IPv6), so none hides a datagram.
    ...[7, 8, 20, 100, 300].map((n): [string, () => Buffer, number, string] => [`OPTIONS behind ${n} destination-options headers is dropped (stealth)`, () => f6(OPTIONS, { ext: dstopts(n) }), XDP_DROP, 'options_dropped_ipv6']),
    ['OPTIONS behind 20 headers of mixed kinds, a first fragment among them, is dropped', () => f6(OPTIONS, { ext: [{ type: IPPROTO_HOPOPTS, len: 1 }, ...dstopts(9), { type: IPPROTO_ROUTING, len: 2 }, ...dstopts(9, 3)], fragment: { offset: 0, more: true } }), XDP_DROP, 'options_dropped_ipv6'],
    ['OPTIONS behind 20 headers after a leading CRLF, in lower case, is dropped', () => f6(`\r\n${OPTIONS.replace('OPTIONS', 'options')}`, { ext: dstopts(20) }), XDP_DROP, 'options_dropped_ipv6'],
    ['OPTIONS from options_allow6 behind 100 headers passes', () => f6(OPTIONS, { src: OPTIONS_PEER, ext: dstopts(100) }), XDP_PASS, 'passed_ipv6'],
    ['a valid INVITE behind 100 headers passes', () => f6(sipRequest({ method: 'INVITE' }), { ext: dstopts(100) }), XDP_PASS, 'passed_ipv6'],
    ['a valid REGISTER behind 8 headers passes', () => f6(REGISTER, { ext: dstopts(8) }), XDP_PASS, 'passed_ipv6'],
    ['a valid 500-byte REGISTER behind 100 headers passes', () => f6(registerOfSize(500), { ext: dstopts(100) }), XDP_PASS, 'passed_ipv6'],
    ['a REGISTER without Call-ID behind 20 headers is dropped', () => f6(without('Call-ID'), { ext: dstopts(20) }), XDP_DROP, 'malformed_register_ipv6'],
    ['a blocked source behind 7 headers is dropped', () => f6(OPTIONS, { src: BLOCKED, ext: dstopts(7) }), XDP_DROP, 'blocked_exact_ipv6'],
    ['a blocked prefix behind 100 headers to a non-SIP port is dropped', () => f6('x', { src: IN_BLOCKED_PREFIX, dport: 53, ext: dstopts(100) }), XDP_DROP, 'blocked_prefix_ipv6'],
    ['an allowlisted source behind 100 headers passes', () => f6(OPTIONS, { src: ALLOWED_AND_BLOCKED, ext: dstopts(100) }), XDP_PASS, 'allowlisted_ipv6'],
    ['OPTIONS behind 100 headers to a non-SIP port passes', () => f6(OPTIONS, { dport: 5070, ext: dstopts(100) }), XDP_PASS, 'passed_ipv6'],
    ['a chain of 100 headers cut short by the frame passes unjudged and is counted', () => truncated(f6(OPTIONS, { ext: dstopts(100) }), 14 + 40 + 8 * 60 + 4), XDP_PASS, 'unparsed_headers_ipv6'],
    ['a blocked source whose chain of 100 is cut short is dropped', () => truncated(f6(OPTIONS, { src: BLOCKED, ext: dstopts(100) }), 14 + 40 + 8 * 60 + 4), XDP_DROP, 'blocked_exact_ipv6'],
    ['a non-first fragment behind 50 headers from a blocked source is dropped', () => f6('tail', { src: BLOCKED, udp: false, ext: dstopts(50), fragment: { offset: 185, more: false } }), XDP_DROP, 'blocked_exact_ipv6'],
    ['a non-first fragment whose data reads as extension headers is not walked', () => f6(Buffer.from(f6(OPTIONS, { ext: dstopts(3) }).subarray(14 + 40)), { udp: false, protocol: IPPROTO_DSTOPTS, fragment: { offset: 185, more: false } }), XDP_PASS, 'passed_ipv6'],
    // Extension headers the walk does not follow (AH, Mobility, HIP, Shim6, experimental): what follows them is not judged.
    ...[51, 135, 139, 140, 253, 254].map((t): [string, () => Buffer, number, string] => [`OPTIONS behind next header ${t} after 8 headers passes unjudged and is counted`, () => f6(OPTIONS, { ext: [...dstopts(8), { type: t }] }), XDP_PASS, 'unparsed_headers_ipv6']),
    ['a blocked source behind next header 253 is dropped', () => f6(OPTIONS, { src: BLOCKED, ext: [{ type: 253 }] }), XDP_DROP, 'blocked_exact_ipv6'],
    ['ESP (50) behind 8 headers is an upper layer: passed', () => f6('\0\0\0\x01\0\0\0\x01', { udp: false, protocol: 50, ext: dstopts(8) }), XDP_PASS, 'passed_ipv6'],
    ['an extension header cut short by the frame passes unjudged and is counted', () => truncated(f6(OPTIONS, { ext: [{ type: IPPROTO_DSTOPTS, len: 4 }] }), 14 + 40 + 4), XDP_PASS, 'unparsed_headers_ipv6'],
    ['an extension header whose length runs past the frame passes unjudged and is counted', () => truncated(f6(OPTIONS, { ext: [{ type: IPPROTO_HOPOPTS }, { type: IPPROTO_DSTOPTS, len: 200 }] }), 14 + 40 + 8 + 64), XDP_PASS, 'unparsed_headers_ipv6'],
    // Fragments.
    ['first fragment of an OPTIONS is dropped', () => f6(OPTIONS, { fragment: { offset: 0, more: true } }), XDP_DROP, 'options_dropped_ipv6'],
    ['first fragment of an OPTIONS behind hop-by-hop is dropped', () => f6(OPTIONS, { ext: [{ type: IPPROTO_HOPOPTS }], fragment: { offset: 0, more: true } }), XDP_DROP, 'options_dropped_ipv6'],
    ['first fragment of a REGISTER is not judged malformed', () => f6(sipRequest({ end: '' }), { fragment: { offset: 0, more: true } }), XDP_PASS, 'passed_ipv6'],
    ['a tiny first fragment of only "OPTIONS " is dropped as tiny', () => f6('OPTIONS ', { fragment: { offset: 0, more: true } }), XDP_DROP, 'tiny_fragment_ipv6'],
    ['a tiny first fragment to a non-SIP port passes', () => f6('OPTIONS ', { fragment: { offset: 0, more: true }, dport: 53 }), XDP_PASS, 'passed_ipv6'],
    ['an atomic fragment (offset 0, no M) of a malformed REGISTER is judged whole', () => f6(without('To'), { fragment: { offset: 0, more: false } }), XDP_DROP, 'malformed_register_ipv6'],
    ['non-first fragment from a blocked source is dropped', () => f6('tail of a datagram', { src: BLOCKED, udp: false, fragment: { offset: 185, more: false } }), XDP_DROP, 'blocked_exact_ipv6'],
    ['non-first fragment from a blocked prefix is dropped', () => f6('tail', { src: IN_BLOCKED_PREFIX, udp: false, fragment: { offset: 185, more: true } }), XDP_DROP, 'blocked_prefix_ipv6'],
    ['non-first fragment that looks like OPTIONS is not judged as SIP', () => f6(`xxxxxxxx${OPTIONS}`, { udp: false, fragment: { offset: 185, more: false } }), XDP_PASS, 'passed_ipv6'],
    // Layer 2 and truncation.
    ['802.1Q-tagged frame from a blocked source is dropped', () => f6(REGISTER, { src: BLOCKED, vlans: [VLAN_Q] }), XDP_DROP, 'blocked_exact_ipv6'],
    ['double-tagged (802.1ad + 802.1Q) OPTIONS is dropped', () => f6(OPTIONS, { vlans: [VLAN_AD, VLAN_Q] }), XDP_DROP, 'options_dropped_ipv6'],
    ['double-tagged valid REGISTER passes', () => f6(REGISTER, { vlans: [VLAN_AD, VLAN_Q] }), XDP_PASS, 'passed_ipv6'],
    ['truncated IPv6 header passes', () => truncated(f6(REGISTER, { src: BLOCKED }), 14 + 30), XDP_PASS, 'passed_ipv6'],
    ['truncated UDP header from a clean source passes', () => truncated(f6(OPTIONS), 14 + 40 + 4), XDP_PASS, 'passed_ipv6'],
    ['UDP length beyond the frame does not drop a valid REGISTER', () => f6(REGISTER, { udpLength: 2000 }), XDP_PASS, 'passed_ipv6'],
    // Where the UDP payload ends: where the kernel ends it (README: what the checks judge), not at the frame's end.
    ['UDP length 0 (RFC 2675: to the end of the IP payload) with OPTIONS is dropped', () => f6(OPTIONS, { udpLength: 0 }), XDP_DROP, 'options_dropped_ipv6'],
    ['UDP length 0 with OPTIONS after a leading CRLF is dropped', () => f6(`\r\n${OPTIONS}`, { udpLength: 0 }), XDP_DROP, 'options_dropped_ipv6'],
    ['UDP length 0 with lower-case options after a CRLF is dropped', () => f6(`\r\n${OPTIONS.replace('OPTIONS', 'options')}`, { udpLength: 0 }), XDP_DROP, 'options_dropped_ipv6'],
    ['UDP length 0 with OPTIONS from options_allow6 passes', () => f6(`\r\n${OPTIONS}`, { src: OPTIONS_PEER, udpLength: 0 }), XDP_PASS, 'passed_ipv6'],
    ['UDP length 0 with a REGISTER without CSeq is dropped', () => f6(without('CSeq'), { udpLength: 0 }), XDP_DROP, 'malformed_register_ipv6'],
    ['UDP length 0 with a bare REGISTER after a CRLF is dropped', () => f6(`\r\n${BARE_REGISTER}`, { udpLength: 0 }), XDP_DROP, 'malformed_register_ipv6'],
    ['UDP length 0 with a valid REGISTER passes', () => f6(REGISTER, { udpLength: 0 }), XDP_PASS, 'passed_ipv6'],
    ['UDP length 0 with a valid 500-byte REGISTER passes', () => f6(registerOfSize(500), { udpLength: 0 }), XDP_PASS, 'passed_ipv6'],
    ['UDP length 0 with a valid INVITE passes', () => f6(sipRequest({ method: 'INVITE' }), { udpLength: 0 }), XDP_PASS, 'passed_ipv6'],
    ['UDP length 0 with OPTIONS behind hop-by-hop and destination options is dropped', () => f6(`\r\n${OPTIONS}`, { udpLength: 0, ext: [{ type: IPPROTO_HOPOPTS }, { type: IPPROTO_DSTOPTS, len: 2 }] }), XDP_DROP, 'options_dropped_ipv6'],
    ['UDP length 0 with OPTIONS behind 100 headers is dropped', () => f6(OPTIONS, { udpLength: 0, ext: dstopts(100) }), XDP_DROP, 'options_dropped_ipv6'],
    ['UDP length 0 with a malformed REGISTER behind 20 headers is dropped', () => f6(without('Via'), { udpLength: 0, ext: dstopts(20) }), XDP_DROP, 'malformed_register_ipv6'],
    ['UDP length 0 with a valid REGISTER behind hop-by-hop passes', () => f6(REGISTER, { udpLength: 0, ext: [{ type: IPPROTO_HOPOPTS }] }), XDP_PASS, 'passed_ipv6'],
    ['UDP length 0 in a first fragment with OPTIONS is dropped', () => f6(`\r\n${OPTIONS}`, { udpLength: 0, fragment: { offset: 0, more: true } }), XDP_DROP, 'options_dropped_ipv6'],
    ['UDP length 0 in a tiny first fragment is dropped as tiny', () => f6('OPTIONS ', { udpLength: 0, fragment: { offset: 0, more: true } }), XDP_DROP, 'tiny_fragment_ipv6'],
    ['UDP length 0 in an atomic fragment with a malformed REGISTER is dropped', () => f6(without('From'), { udpLength: 0, fragment: { offset: 0, more: false } }), XDP_DROP, 'malformed_register_ipv6'],
    // Trailing bytes past payload_len are not delivered: the checks do not read them.
    ['UDP length 0: a valid REGISTER followed by trailing bytes past payload_len passes', () => trailing(f6(REGISTER, { udpLength: 0 }), 'X'.repeat(40)), XDP_PASS, 'passed_ipv6'],
    ['UDP length 0: a REGISTER whose end of headers lies only in trailing bytes is dropped', () => trailing(f6(sipRequest({ end: '' }), { udpLength: 0 }), '\r\nCSeq: 1 REGISTER\r\n\r\n'), XDP_DROP, 'malformed_register_ipv6'],
    ['a REGISTER whose end of headers lies only in trailing bytes past payload_len is dropped', () => trailing(f6(sipRequest({ end: '' })), '\r\n\r\n'), XDP_DROP, 'malformed_register_ipv6'],
    ['a keepalive followed by OPTIONS in trailing bytes past payload_len passes', () => trailing(f6('\r\n\r\n', { udpLength: 0 }), OPTIONS), XDP_PASS, 'passed_ipv6'],
    ['UDP length 0 and payload_len 0 behind hop-by-hop (not trimmed: to the frame\'s end) with OPTIONS is dropped', () => f6(`\r\n${OPTIONS}`, { udpLength: 0, payloadLength: 0, ext: [{ type: IPPROTO_HOPOPTS }] }), XDP_DROP, 'options_dropped_ipv6'],
    // Datagrams the kernel drops pass (nothing to protect): they must not crash or drop what is fine.
    ...[1, 7].map((n): [string, () => Buffer, number, string] => [`UDP length ${n} (the kernel drops it) passes`, () => f6(OPTIONS, { udpLength: n }), XDP_PASS, 'passed_ipv6']),
    ['UDP length past payload_len (the kernel drops it) passes', () => f6(without('CSeq'), { payloadLength: 8 + 20 }), XDP_PASS, 'passed_ipv6'],
    ['payload_len past the frame (the kernel drops it) passes', () => f6(without('CSeq'), { udpLength: 0, payloadLength: 4000 }), XDP_PASS, 'passed_ipv6'],
    ['payload_len 0 without hop-by-hop (the kernel drops it) passes', () => f6(OPTIONS, { udpLength: 0, payloadLength: 0 }), XDP_PASS, 'passed_ipv6'],
    ['an ARP frame passes and is counted as not IP', () => arpFrame(), XDP_PASS, 'not_ip'],
    ['ICMPv6 (neighbour discovery) passes to the kernel', () => f6('\x87\0\0\0', { protocol: 58, udp: false }), XDP_PASS, 'passed_ipv6'],
    ['ICMPv6 from a blocked source is dropped (scope all)', () => f6('\x87\0\0\0', { src: BLOCKED, protocol: 58, udp: false }), XDP_DROP, 'blocked_exact_ipv6'],
  ];

  it.each(cases)('%s', async (_name, frame, verdict, counter) => {
    const r = await verdictOf(frame());
    expect(r.verdict).toBe(verdict);
    expect(r.counted).toEqual({ [counter]: 1 });
  });

  it('judges the same payloads over IPv6 as over IPv4: real phones\' REGISTERs pass', async () => {
    const r = await lab.verdictsOf(PHONE_REGISTERS.flatMap((p) => [udpFrame(p.message, { src: CLEAN4 }), f6(p.message)]));
    expect(r.verdicts.every((v) => v === XDP_PASS)).toBe(true);
    expect(r.counted).toEqual({ passed: PHONE_REGISTERS.length, passed_ipv6: PHONE_REGISTERS.length });
  });

  it.each(RFC5118.map((m) => [`${m.section} ${m.name}`, m] as const))('RFC 5118 %s keeps its verdict over IPv4 and IPv6', async (_n, m) => {
    const want = m.verdict === 'DROP' ? XDP_DROP : XDP_PASS;
    const r = await lab.verdictsOf([udpFrame(m.message, { src: CLEAN4 }), f6(m.message)]);
    expect(r.verdicts).toEqual([want, want]);
    expect(r.counted).toEqual(m.verdict === 'DROP' ? { options_dropped: 1, options_dropped_ipv6: 1 } : { passed: 1, passed_ipv6: 1 });
  });

  it('passes the RFC 5118 OPTIONS from options_allow6', async () => {
    const options = RFC5118.filter((m) => m.verdict === 'DROP');
    const r = await lab.verdictsOf(options.map((m) => f6(m.message, { src: OPTIONS_PEER })));
    expect(r.counted).toEqual({ passed_ipv6: options.length });
  });

  describeWith('the RFC 4475 torture corpus over IPv6', corpusMissing, () => {
    it('gives each message the verdict cases.json gives it over IPv4', async () => {
      const cases = JSON.parse(readFileSync(join(CORPUS, 'cases.json'), 'utf8')) as Array<{ name: string; expected: string[]; files: string[] }>;
      // The corpus's options_allow source (198.18.0.77) becomes OPTIONS_PEER, any other CLEAN.
      const frames: Buffer[] = [];
      const want: number[] = [];
      for (const c of cases) {
        c.files.forEach((f, i) => {
          const v4 = readFileSync(join(CORPUS, 'frames', f));
          const src = v4.subarray(26, 30).join('.');
          frames.push(udp6Frame(udpPayloadOf(v4), { src: src === '198.18.0.77' ? OPTIONS_PEER : CLEAN, dport: v4.readUInt16BE(14 + (v4[14]! & 0x0f) * 4 + 2) }));
          want.push(c.expected[i] === 'DROP' ? XDP_DROP : XDP_PASS);
        });
      }
      const r = await lab.verdictsOf(frames);
      expect(r.verdicts).toEqual(want);
      expect(frames.length).toBeGreaterThanOrEqual(71);
    });
  });

  describe('with scope sip', () => {
    beforeAll(() => lab.loadUnattached(['--scope', 'sip', '--ports', '5060,5080']));
    afterAll(() => lab.loadUnattached());

    it('passes a blocked source talking to a non-SIP port', async () => {
      expect(await verdictOf(f6('dns?', { src: BLOCKED, dport: 53 }))).toEqual({ verdict: XDP_PASS, counted: { passed_ipv6: 1 } });
    });
    it('drops a blocked source talking to a configured SIP port, also behind extension headers', async () => {
      const r = await lab.verdictsOf([f6(REGISTER, { src: BLOCKED, dport: 5080 }), f6(REGISTER, { src: BLOCKED, ext: [{ type: IPPROTO_DSTOPTS }] })]);
      expect(r.verdicts).toEqual([XDP_DROP, XDP_DROP]);
      expect(r.counted).toEqual({ blocked_exact_ipv6: 2 });
    });
    it('drops a non-first fragment of a blocked source (no port to see)', async () => {
      expect(await verdictOf(f6('tail', { src: BLOCKED, udp: false, fragment: { offset: 185, more: false } }))).toEqual({ verdict: XDP_DROP, counted: { blocked_exact_ipv6: 1 } });
    });
    it('sees the port behind a long chain: a blocked source to a SIP port is dropped, to another port passed', async () => {
      const r = await lab.verdictsOf([f6(REGISTER, { src: BLOCKED, dport: 5080, ext: dstopts(100) }), f6('dns?', { src: BLOCKED, dport: 53, ext: dstopts(100) })]);
      expect(r.verdicts).toEqual([XDP_DROP, XDP_PASS]);
      expect(r.counted).toEqual({ blocked_exact_ipv6: 1, passed_ipv6: 1 });
    });
    it('drops a blocked source whose chain is cut short or ends in a header not walked (no port to see, as for a non-first fragment)', async () => {
      const r = await lab.verdictsOf([truncated(f6(REGISTER, { src: BLOCKED, dport: 53, ext: dstopts(20) }), 14 + 40 + 8 * 10), f6(REGISTER, { src: BLOCKED, dport: 53, ext: [...dstopts(7), { type: 253 }] })]);
      expect(r.verdicts).toEqual([XDP_DROP, XDP_DROP]);
      expect(r.counted).toEqual({ blocked_exact_ipv6: 2 });
    });
    it('still judges OPTIONS behind 20 headers to a configured port', async () => {
      expect(await verdictOf(f6(OPTIONS, { dport: 5080, ext: dstopts(20) }))).toEqual({ verdict: XDP_DROP, counted: { options_dropped_ipv6: 1 } });
    });
    it('kept the IPv6 entries across the reload', async () => {
      expect(await verdictOf(f6(REGISTER, { src: IN_BLOCKED_PREFIX }))).toEqual({ verdict: XDP_DROP, counted: { blocked_prefix_ipv6: 1 } });
    });
  });

  describe('in shadow mode', () => {
    beforeAll(() => lab.loadUnattached(['--shadow']));
    afterAll(() => lab.loadUnattached());

    it('counts every IPv6 would-drop and passes it', async () => {
      const r = await lab.verdictsOf([f6(REGISTER, { src: BLOCKED }), f6(OPTIONS), f6(without('CSeq')), f6('OPTIONS ', { fragment: { offset: 0, more: true } }), f6(OPTIONS, { ext: dstopts(100) })]);
      expect(r.verdicts).toEqual([XDP_PASS, XDP_PASS, XDP_PASS, XDP_PASS, XDP_PASS]);
      expect(r.counted).toEqual({ shadow_would_drop_ipv6: 5 });
    });
  });
});
