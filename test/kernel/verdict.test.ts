/**
 * Verdicts of the real program on crafted frames, through BPF_PROG_TEST_RUN
 * (bpftool prog run), one case per rule and per edge. Each case also checks
 * that exactly one counter moved, by exactly one packet.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { execa } from 'execa';
import { describeKernel } from '../helpers/env.js';
import { countersDelta, Lab, XDP_DROP, XDP_PASS } from '../helpers/lab.js';
import { arpFrame, DEFAULT_HEADERS, registerOfSize, sipRequest, trailing, truncated, udpFrame } from '../helpers/packets.js';

const BLOCKED = '203.0.113.9';
const IN_BLOCKED_PREFIX = '198.18.4.4';
const ALLOWED_AND_BLOCKED = '203.0.113.10';
const OPTIONS_PEER = '192.0.2.77';
const CLEAN = '198.51.100.7';
const EXPIRED = '203.0.113.11';

const OPTIONS = sipRequest({ method: 'OPTIONS', uri: 'sip:100@192.0.2.1' });
const REGISTER = sipRequest();
const VLAN_Q = 0x8100;
const VLAN_AD = 0x88a8;

function withHeaders(replace: (h: string[]) => string[]): string {
  return sipRequest({ headers: replace([...DEFAULT_HEADERS]) });
}
const without = (prefix: string) => withHeaders((h) => h.filter((x) => !x.startsWith(prefix)));
/** The frame with its UDP length (of an untagged IPv4 frame without options) raised by n: past tot_len. */
function stretchedUdp(frame: Buffer, n: number): Buffer {
  const out = Buffer.from(frame);
  out.writeUInt16BE(out.readUInt16BE(14 + 20 + 4) + n, 14 + 20 + 4);
  return out;
}
const manyHeaders = (n: number) => Array.from({ length: n }, (_, i) => `X-H${i}: ${i}`);

describeKernel('XDP verdicts (bpftool prog run)', () => {
  const lab = new Lab();

  beforeAll(async () => {
    await lab.loadUnattached();
    await lab.mustScript('block_ip.sh', [BLOCKED]);
    await lab.mustScript('block_ip.sh', [ALLOWED_AND_BLOCKED]);
    await lab.mustScript('block_ip.sh', ['198.18.0.0/15', '--ttl', '1h']);
    // An entry whose expiry (CLOCK_BOOTTIME ns = 1) is long past.
    await execa('bpftool', ['map', 'update', 'pinned', `${lab.pinDir}/blocked_ips`, 'key', ...'203 0 113 11'.split(' '),
      'value', 'hex', '01', '00', '00', '00', '00', '00', '00', '00', '00', '00', '00', '00', '01', '00', '00', '00']);
    await lab.mustScript('allow_ip.sh', [`${ALLOWED_AND_BLOCKED}`]);
    await lab.mustScript('options_allow_ip.sh', [`${OPTIONS_PEER}/32`]);
  });
  afterAll(() => lab.cleanup());

  const verdictOf = (frame: Buffer) => lab.verdictOf(frame);

  const cases: Array<[string, () => Buffer, number, string]> = [
    ['clean INVITE passes', () => udpFrame(sipRequest({ method: 'INVITE' }), { src: CLEAN }), XDP_PASS, 'passed'],
    ['exact blocklist entry drops', () => udpFrame(REGISTER, { src: BLOCKED }), XDP_DROP, 'blocked_exact'],
    ['blocklist drops all traffic from the source (scope all)', () => udpFrame('x', { src: BLOCKED, dport: 53 }), XDP_DROP, 'blocked_exact'],
    ['expired entry no longer drops', () => udpFrame(REGISTER, { src: EXPIRED }), XDP_PASS, 'passed'],
    ['CIDR entry drops an address inside it', () => udpFrame(REGISTER, { src: IN_BLOCKED_PREFIX }), XDP_DROP, 'blocked_prefix'],
    ['allowlist beats the blocklist', () => udpFrame(OPTIONS, { src: ALLOWED_AND_BLOCKED }), XDP_PASS, 'allowlisted'],
    ['OPTIONS from an unknown source is dropped (stealth)', () => udpFrame(OPTIONS, { src: CLEAN }), XDP_DROP, 'options_dropped'],
    ['OPTIONS from options_allow passes', () => udpFrame(OPTIONS, { src: OPTIONS_PEER }), XDP_PASS, 'passed'],
    ['OPTIONS to a non-SIP port passes', () => udpFrame(OPTIONS, { src: CLEAN, dport: 5070 }), XDP_PASS, 'passed'],
    ['valid REGISTER passes', () => udpFrame(REGISTER, { src: CLEAN }), XDP_PASS, 'passed'],
    ['valid REGISTER with compact headers passes', () => udpFrame(sipRequest({ headers: ['v: SIP/2.0/UDP h;branch=z9hG4bK1', 'f: <sip:a@b>;tag=1', 't: <sip:a@b>', 'i: abc', 'CSeq: 1 REGISTER'] }), { src: CLEAN }), XDP_PASS, 'passed'],
    ['valid REGISTER with odd spacing and case passes', () => udpFrame(sipRequest({ headers: ['VIA  : SIP/2.0/UDP h;branch=z9hG4bK1', 'from\t: <sip:a@b>;tag=1', 'TO:<sip:a@b>', 'call-ID :abc', 'cseq \t: 1 REGISTER'] }), { src: CLEAN }), XDP_PASS, 'passed'],
    ['valid REGISTER with a 600-byte Request-URI passes', () => udpFrame(sipRequest({ uri: `sip:${'u'.repeat(590)}@example.com` }), { src: CLEAN }), XDP_PASS, 'passed'],
    ['valid REGISTER with a 1,000-byte Request-URI passes', () => udpFrame(sipRequest({ uri: `sips:${'u'.repeat(990)}@example.com` }), { src: CLEAN }), XDP_PASS, 'passed'],
    ['valid 500-byte REGISTER passes', () => udpFrame(registerOfSize(500), { src: CLEAN }), XDP_PASS, 'passed'],
    ['REGISTER without SIP/2.0 is dropped', () => udpFrame(sipRequest({ requestLine: 'REGISTER sip:example.com' }), { src: CLEAN }), XDP_DROP, 'malformed_register'],
    ['REGISTER with SIP/1.0 is dropped', () => udpFrame(sipRequest({ requestLine: 'REGISTER sip:example.com SIP/1.0' }), { src: CLEAN }), XDP_DROP, 'malformed_register'],
    ['REGISTER with a non-SIP URI scheme is dropped', () => udpFrame(sipRequest({ requestLine: 'REGISTER http://example.com SIP/2.0' }), { src: CLEAN }), XDP_DROP, 'malformed_register'],
    ['REGISTER with a space inside the URI is dropped', () => udpFrame(sipRequest({ requestLine: 'REGISTER sip:exa mple.com SIP/2.0' }), { src: CLEAN }), XDP_DROP, 'malformed_register'],
    // Kamailio and OpenSIPS end a line at LF, CR before it or not (sip-parse.test.ts checks Kamailio's answer).
    ['REGISTER whose request line ends in a bare LF passes', () => udpFrame(`REGISTER sip:example.com SIP/2.0\n${DEFAULT_HEADERS.join('\r\n')}\r\n\r\n`, { src: CLEAN }), XDP_PASS, 'passed'],
    ['REGISTER without Via is dropped', () => udpFrame(without('Via'), { src: CLEAN }), XDP_DROP, 'malformed_register'],
    ['REGISTER without From is dropped', () => udpFrame(without('From'), { src: CLEAN }), XDP_DROP, 'malformed_register'],
    ['REGISTER without To is dropped', () => udpFrame(without('To'), { src: CLEAN }), XDP_DROP, 'malformed_register'],
    ['REGISTER without Call-ID is dropped', () => udpFrame(without('Call-ID'), { src: CLEAN }), XDP_DROP, 'malformed_register'],
    ['REGISTER without CSeq is dropped', () => udpFrame(without('CSeq'), { src: CLEAN }), XDP_DROP, 'malformed_register'],
    ['REGISTER whose To is only in the body is dropped', () => udpFrame(sipRequest({ headers: DEFAULT_HEADERS.filter((h) => !h.startsWith('To')), body: 'To: <sip:x@y>\r\n' }), { src: CLEAN }), XDP_DROP, 'malformed_register'],
    ['REGISTER without an end of headers (CRLFCRLF) is dropped', () => udpFrame(sipRequest({ end: '' }), { src: CLEAN }), XDP_DROP, 'malformed_register'],
    ['a header name that only starts like To (Timestamp) does not count as To', () => udpFrame(withHeaders((h) => h.map((x) => (x.startsWith('To:') ? 'Timestamp: 54' : x))), { src: CLEAN }), XDP_DROP, 'malformed_register'],
    ['a header name followed by anything but blanks before the colon (Via !:) does not count', () => udpFrame(withHeaders((h) => h.map((x) => x.replace(/^Via:/, 'Via !:'))), { src: CLEAN }), XDP_DROP, 'malformed_register'],
    ['a header name followed by 7 blanks before the colon counts', () => udpFrame(withHeaders((h) => h.map((x) => x.replace(/^CSeq:/, 'CSeq \t \t \t :'))), { src: CLEAN }), XDP_PASS, 'passed'],
    ['a header name followed by 8 blanks before the colon counts (RFC 3261 25.1 HCOLON)', () => udpFrame(withHeaders((h) => h.map((x) => x.replace(/^CSeq:/, 'CSeq        :'))), { src: CLEAN }), XDP_PASS, 'passed'],
    ['Call-ID with a CR where its dash should be does not count', () => udpFrame(withHeaders((h) => h.map((x) => x.replace(/^Call-ID:/, 'Call\rID:'))), { src: CLEAN }), XDP_DROP, 'malformed_register'],
    ['valid REGISTER with 128 header lines passes', () => udpFrame(withHeaders((h) => [...h.slice(0, -1), ...manyHeaders(128 - h.length), h.at(-1)!]), { src: CLEAN }), XDP_PASS, 'passed'],
    ['REGISTER with 128 header lines is still judged: CSeq missing is dropped', () => udpFrame(withHeaders((h) => [...h.filter((x) => !x.startsWith('CSeq')), ...manyHeaders(128 - h.length + 1)]), { src: CLEAN }), XDP_DROP, 'malformed_register'],
    ['valid 3,000-byte REGISTER passes', () => udpFrame(registerOfSize(3000), { src: CLEAN }), XDP_PASS, 'passed'],
    ['3,000-byte REGISTER whose CSeq comes last and is misspelt is dropped', () => udpFrame(withHeaders((h) => [...h.filter((x) => !x.startsWith('CSeq')), `X-Pad: ${'a'.repeat(2700)}`, 'CSeg: 1 REGISTER']), { src: CLEAN }), XDP_DROP, 'malformed_register'],
    ['REGISTER to a non-SIP port is not judged', () => udpFrame(without('Via'), { src: CLEAN, dport: 5070 }), XDP_PASS, 'passed'],
    ['INVITE with a long Request-URI passes', () => udpFrame(sipRequest({ method: 'INVITE', uri: `sip:${'9'.repeat(1200)}@example.com` }), { src: CLEAN }), XDP_PASS, 'passed'],
    ['SIP response passes', () => udpFrame('SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h\r\n\r\n', { src: CLEAN }), XDP_PASS, 'passed'],
    ['keepalive CRLFCRLF passes', () => udpFrame('\r\n\r\n', { src: CLEAN }), XDP_PASS, 'passed'],
    ['802.1Q-tagged frame from a blocked source is dropped', () => udpFrame(REGISTER, { src: BLOCKED, vlans: [VLAN_Q] }), XDP_DROP, 'blocked_exact'],
    ['double-tagged (802.1ad + 802.1Q) OPTIONS is dropped', () => udpFrame(OPTIONS, { src: CLEAN, vlans: [VLAN_AD, VLAN_Q] }), XDP_DROP, 'options_dropped'],
    ['double-tagged valid REGISTER passes', () => udpFrame(REGISTER, { src: CLEAN, vlans: [VLAN_AD, VLAN_Q] }), XDP_PASS, 'passed'],
    ['non-first fragment from a blocked source is dropped', () => udpFrame('tail of a datagram', { src: BLOCKED, udp: false, fragOffset: 185 }), XDP_DROP, 'blocked_exact'],
    ['non-first fragment that looks like OPTIONS is not judged as SIP', () => udpFrame(`xxxxxxxx${OPTIONS}`, { src: CLEAN, udp: false, fragOffset: 185 }), XDP_PASS, 'passed'],
    ['first fragment of an OPTIONS is dropped (stealth needs only the method)', () => udpFrame(OPTIONS, { src: CLEAN, moreFragments: true }), XDP_DROP, 'options_dropped'],
    ['first fragment of a REGISTER is not judged malformed', () => udpFrame(sipRequest({ end: '' }), { src: CLEAN, moreFragments: true }), XDP_PASS, 'passed'],
    ['truncated IPv4 header passes', () => truncated(udpFrame(REGISTER, { src: BLOCKED }), 14 + 12), XDP_PASS, 'passed'],
    ['truncated UDP header from a clean source passes', () => truncated(udpFrame(OPTIONS, { src: CLEAN }), 14 + 20 + 4), XDP_PASS, 'passed'],
    ['UDP length beyond the frame does not drop a valid REGISTER', () => udpFrame(REGISTER, { src: CLEAN, udpLength: 2000 }), XDP_PASS, 'passed'],
    // Where the UDP payload ends: at the UDP length, as the kernel ends it (README: what the checks judge).
    ['UDP length 0 (the kernel drops it over IPv4) with OPTIONS passes', () => udpFrame(`\r\n${OPTIONS}`, { src: CLEAN, udpLength: 0 }), XDP_PASS, 'passed'],
    ['UDP length 0 with OPTIONS at the start passes (the kernel drops it)', () => udpFrame(OPTIONS, { src: CLEAN, udpLength: 0 }), XDP_PASS, 'passed'],
    ['UDP length 0 with a malformed REGISTER passes (the kernel drops it)', () => udpFrame(without('CSeq'), { src: CLEAN, udpLength: 0 }), XDP_PASS, 'passed'],
    ['UDP length 7 (the kernel drops it) passes', () => udpFrame(OPTIONS, { src: CLEAN, udpLength: 7 }), XDP_PASS, 'passed'],
    ['a REGISTER cut short by its UDP length (the kernel delivers only that much) is dropped', () => udpFrame(REGISTER, { src: CLEAN, udpLength: 8 + REGISTER.indexOf('CSeq') }), XDP_DROP, 'malformed_register'],
    ['a valid REGISTER followed by trailing bytes past tot_len passes', () => trailing(udpFrame(REGISTER, { src: CLEAN }), 'X'.repeat(40)), XDP_PASS, 'passed'],
    ['a REGISTER whose end of headers lies only in trailing bytes past tot_len is dropped', () => trailing(udpFrame(sipRequest({ end: '' }), { src: CLEAN }), '\r\n'), XDP_DROP, 'malformed_register'],
    ['a UDP length reaching into trailing bytes past tot_len (the kernel drops it) passes', () => stretchedUdp(trailing(udpFrame(sipRequest({ end: '' }), { src: CLEAN }), '\r\n'), 2), XDP_PASS, 'passed'],
    ['a keepalive followed by OPTIONS in trailing bytes past tot_len passes', () => trailing(udpFrame('\r\n\r\n', { src: CLEAN }), OPTIONS), XDP_PASS, 'passed'],
    ['IPv4 EtherType with no IP header passes', () => truncated(udpFrame('x'), 14), XDP_PASS, 'passed'],
    ['a frame that is neither IPv4 nor IPv6 (ARP) passes and is counted as not IP', () => arpFrame(), XDP_PASS, 'not_ip'],
  ];

  it.each(cases)('%s', async (_name, frame, verdict, counter) => {
    const r = await verdictOf(frame());
    expect(r.verdict).toBe(verdict);
    expect(r.counted).toEqual({ [counter]: 1 });
  });

  it('counts repeated runs once per packet', async () => {
    const before = await lab.counters();
    await lab.run(udpFrame(REGISTER, { src: BLOCKED }), 50);
    expect(countersDelta(before, await lab.counters())).toEqual({ blocked_exact: 50 });
  });

  describe('with stealth and the REGISTER check switched off', () => {
    beforeAll(() => lab.loadUnattached(['--no-stealth', '--no-malformed']));
    afterAll(() => lab.loadUnattached());

    it('passes OPTIONS from an unknown source', async () => {
      expect(await verdictOf(udpFrame(OPTIONS, { src: CLEAN }))).toEqual({ verdict: XDP_PASS, counted: { passed: 1 } });
    });
    it('passes a malformed REGISTER', async () => {
      expect(await verdictOf(udpFrame(without('CSeq'), { src: CLEAN }))).toEqual({ verdict: XDP_PASS, counted: { passed: 1 } });
    });
    it('still drops blocked sources, and kept the blocklist across the reload', async () => {
      expect(await verdictOf(udpFrame(REGISTER, { src: BLOCKED }))).toEqual({ verdict: XDP_DROP, counted: { blocked_exact: 1 } });
    });
  });

  describe('with scope sip and extra SIP ports', () => {
    beforeAll(() => lab.loadUnattached(['--scope', 'sip', '--ports', '5060,5080']));
    afterAll(() => lab.loadUnattached());

    it('passes a blocked source talking to a non-SIP port', async () => {
      expect(await verdictOf(udpFrame('dns?', { src: BLOCKED, dport: 53 }))).toEqual({ verdict: XDP_PASS, counted: { passed: 1 } });
    });
    it('drops a blocked source talking to a configured SIP port', async () => {
      expect(await verdictOf(udpFrame(REGISTER, { src: BLOCKED, dport: 5080 }))).toEqual({ verdict: XDP_DROP, counted: { blocked_exact: 1 } });
    });
    it('applies stealth on every configured SIP port', async () => {
      expect(await verdictOf(udpFrame(OPTIONS, { src: CLEAN, dport: 5080 }))).toEqual({ verdict: XDP_DROP, counted: { options_dropped: 1 } });
    });
  });

  describe('in shadow mode', () => {
    beforeAll(() => lab.loadUnattached(['--shadow']));
    afterAll(() => lab.loadUnattached());

    it.each([
      ['a blocked source', () => udpFrame(REGISTER, { src: BLOCKED })],
      ['an OPTIONS scan', () => udpFrame(OPTIONS, { src: CLEAN })],
      ['a malformed REGISTER', () => udpFrame(without('Via'), { src: CLEAN })],
    ])('passes %s and counts it as a would-drop', async (_n, frame) => {
      expect(await verdictOf(frame())).toEqual({ verdict: XDP_PASS, counted: { shadow_would_drop: 1 } });
    });
  });
});
