/**
 * The SIP messages of RFC 5118 (SIP torture test messages for IPv6), section
 * 4, written out from the RFC: start lines and headers as the RFC prints
 * them; the SDP bodies of 4.6, 4.8 and 4.9 shortened to their IPv6 lines
 * with Content-Length recounted (the checks never read a body of an INVITE).
 * `verdict`: what the XDP program does with each from a source not in
 * options_allow, over IPv4 and IPv6 alike: OPTIONS dropped (stealth), every
 * other request passed (the REGISTERs are well formed; the program does not
 * judge what the Request-URI's host holds, so 4.2's unbracketed address
 * passes as its server would have to refuse it, not the NIC).
 */
export interface TortureMessage {
  section: string;
  name: string;
  message: string;
  verdict: 'PASS' | 'DROP';
}

const msg = (lines: string[], body = ''): string => {
  const head = lines.map((l) => l.replace('@@LEN@@', String(Buffer.byteLength(body)))).join('\r\n');
  return `${head}\r\n\r\n${body}`;
};
const sdp = (lines: string[]) => lines.map((l) => `${l}\r\n`).join('');

const VIA = 'Via: SIP/2.0/UDP [2001:db8::9:1];branch=z9hG4bKas3-111';
const CALL = 'Call-ID: SSG9559905523997077@hlau_4100';

export const RFC5118: TortureMessage[] = [
  { section: '4.1', name: 'ipv6-good', verdict: 'PASS', message: msg(['REGISTER sip:[2001:db8::10] SIP/2.0', 'To: sip:user@example.com', 'From: sip:user@example.com;tag=81x2', VIA, CALL, 'Max-Forwards: 70', 'Contact: "Caller" <sip:caller@[2001:db8::1]>', 'CSeq: 98176 REGISTER', 'Content-Length: 0']) },
  { section: '4.2', name: 'ipv6-bad', verdict: 'PASS', message: msg(['REGISTER sip:2001:db8::10 SIP/2.0', 'To: sip:user@example.com', 'From: sip:user@example.com;tag=81x2', VIA, CALL, 'Max-Forwards: 70', 'Contact: "Caller" <sip:caller@[2001:db8::1]>', 'CSeq: 98176 REGISTER', 'Content-Length: 0']) },
  { section: '4.3', name: 'port-ambiguous', verdict: 'PASS', message: msg(['REGISTER sip:[2001:db8::10:5070] SIP/2.0', 'To: sip:user@example.com', 'From: sip:user@example.com;tag=81x2', VIA, CALL, 'Contact: "Caller" <sip:caller@[2001:db8::1]>', 'Max-Forwards: 70', 'CSeq: 98176 REGISTER', 'Content-Length: 0']) },
  { section: '4.4', name: 'port-unambiguous', verdict: 'PASS', message: msg(['REGISTER sip:[2001:db8::10]:5070 SIP/2.0', 'To: sip:user@example.com', 'From: sip:user@example.com;tag=81x2', VIA, CALL, 'Contact: "Caller" <sip:caller@[2001:db8::1]>', 'Max-Forwards: 70', 'CSeq: 98176 REGISTER', 'Content-Length: 0']) },
  { section: '4.5', name: 'via-received-param-with-delim', verdict: 'PASS', message: msg(['BYE sip:[2001:db8::10] SIP/2.0', 'To: sip:user@example.com;tag=bd76ya', 'From: sip:user@example.com;tag=81x2', 'Via: SIP/2.0/UDP [2001:db8::9:1];received=[2001:db8::9:255];branch=z9hG4bKas3-111', CALL, 'Max-Forwards: 70', 'CSeq: 321 BYE', 'Content-Length: 0']) },
  { section: '4.5', name: 'via-received-param-no-delim', verdict: 'DROP', message: msg(['OPTIONS sip:[2001:db8::10] SIP/2.0', 'To: sip:user@example.com', 'From: sip:user@example.com;tag=81x2', 'Via: SIP/2.0/UDP [2001:db8::9:1];received=2001:db8::9:255;branch=z9hG4bKas3', 'Call-ID: SSG95523997077@hlau_4100', 'Max-Forwards: 70', 'Contact: "Caller" <sip:caller@[2001:db8::9:1]>', 'CSeq: 921 OPTIONS', 'Content-Length: 0']) },
  { section: '4.6', name: 'ipv6-in-sdp', verdict: 'PASS', message: msg(['INVITE sip:user@[2001:db8::10] SIP/2.0', 'To: sip:user@[2001:db8::10]', 'From: sip:user@example.com;tag=81x2', 'Via: SIP/2.0/UDP [2001:db8::20];branch=z9hG4bKas3-111', CALL, 'Contact: "Caller" <sip:caller@[2001:db8::20]>', 'CSeq: 8612 INVITE', 'Max-Forwards: 70', 'Content-Type: application/sdp', 'Content-Length: @@LEN@@'],
    sdp(['v=0', 'o=assistant 971731711378798081 0 IN IP6 2001:db8::20', 's=Live video feed for today\'s meeting', 'c=IN IP6 2001:db8::20', 't=3338481189 3370017201', 'm=audio 6000 RTP/AVP 2', 'a=rtpmap:2 G726-32/8000'])) },
  { section: '4.7', name: 'mult-ip-in-header', verdict: 'PASS', message: msg(['BYE sip:user@host.example.net SIP/2.0', 'Via: SIP/2.0/UDP [2001:db8::9:1]:6050;branch=z9hG4bKas3-111', 'Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKjhja8781hjuaij65144', 'Via: SIP/2.0/TCP [2001:db8::9:255];branch=z9hG4bK451jj;received=192.0.2.200', 'Call-ID: 997077@lau_4100', 'Max-Forwards: 70', 'CSeq: 89187 BYE', 'To: sip:user@example.net;tag=9817--94', 'From: sip:user@example.com;tag=81x2', 'Content-Length: 0']) },
  { section: '4.8', name: 'mult-ip-in-sdp', verdict: 'PASS', message: msg(['INVITE sip:user@[2001:db8::10] SIP/2.0', 'To: sip:user@[2001:db8::10]', 'From: sip:user@example.com;tag=81x2', VIA, CALL, 'Contact: "Caller" <sip:caller@[2001:db8::9:1]>', 'Max-Forwards: 70', 'CSeq: 8912 INVITE', 'Content-Type: application/sdp', 'Content-Length: @@LEN@@'],
    sdp(['v=0', 'o=bob 280744730 28977631 IN IP4 host.example.com', 's=', 't=0 0', 'm=audio 22334 RTP/AVP 0', 'c=IN IP4 192.0.2.1', 'm=video 6024 RTP/AVP 107', 'c=IN IP6 2001:db8::1', 'a=rtpmap:107 H263-1998/90000'])) },
  { section: '4.9', name: 'ipv4-mapped-ipv6', verdict: 'PASS', message: msg(['INVITE sip:user@example.com SIP/2.0', 'To: sip:user@example.com', 'From: sip:user@east.example.com;tag=81x2', 'Via: SIP/2.0/UDP [::ffff:192.0.2.10]:19823;branch=z9hG4bKbh19', 'Via: SIP/2.0/UDP [::ffff:192.0.2.2];branch=z9hG4bKas3-111', CALL, 'Contact: "T. desk phone" <sip:ted@[::ffff:192.0.2.2]>', 'CSeq: 612 INVITE', 'Max-Forwards: 70', 'Content-Type: application/sdp', 'Content-Length: @@LEN@@'],
    sdp(['v=0', 'o=assistant 971731711378798081 0 IN IP6 ::ffff:192.0.2.2', 's=Call me soon, please!', 'c=IN IP6 ::ffff:192.0.2.2', 't=3338481189 3370017201', 'm=audio 6000 RTP/AVP 2', 'a=rtpmap:2 G726-32/8000'])) },
  { section: '4.10', name: 'ipv6-bug-abnf-3-colons', verdict: 'DROP', message: msg(['OPTIONS sip:user@[2001:db8:::192.0.2.1] SIP/2.0', 'To: sip:user@[2001:db8:::192.0.2.1]', 'From: sip:user@example.com;tag=810x2', 'Via: SIP/2.0/UDP lab1.east.example.com;branch=z9hG4bKas3-111', 'Call-ID: G9559905523997077@hlau_4100', 'CSeq: 689 OPTIONS', 'Max-Forwards: 70', 'Content-Length: 0']) },
  { section: '4.10', name: 'ipv6-correct-abnf-2-colons', verdict: 'DROP', message: msg(['OPTIONS sip:user@[2001:db8::192.0.2.1] SIP/2.0', 'To: sip:user@[2001:db8::192.0.2.1]', 'From: sip:user@example.com;tag=810x2', 'Via: SIP/2.0/UDP lab1.east.example.com;branch=z9hG4bKas3-111', 'Call-ID: G9559905523997077@hlau_4100', 'CSeq: 689 OPTIONS', 'Max-Forwards: 70', 'Content-Length: 0']) },
];
