/**
 * The SIP checks judge a request as Kamailio and OpenSIPS parse it: preamble
 * bytes before the start line, methods and SIP-Version in any case, HCOLON
 * runs of any length, tiny first fragments; real phones' REGISTERs and the
 * RFC 4475 torture corpus keep passing. The real program through
 * BPF_PROG_TEST_RUN; every case asserts which counter moved. Classes with
 * many members (every case mix, every run length) run as one batch whose
 * counter totals are asserted.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { execa } from 'execa';
import dgram from 'node:dgram';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describeKernel, describeWith, sipPeersMissing } from '../helpers/env.js';
import { endForking, Lab, ROOT, XDP_DROP, XDP_PASS } from '../helpers/lab.js';
import { DEFAULT_HEADERS, sipRequest, udpFrame, type FrameOptions } from '../helpers/packets.js';
import { PHONE_REGISTERS } from '../helpers/phones.js';

const CLEAN = '198.51.100.7';
const BLOCKED = '203.0.113.9';
const OPTIONS_PEER = '198.18.0.77'; // also the corpus's options_allow source

const OPTIONS = sipRequest({ method: 'OPTIONS', uri: 'sip:a' });
const REGISTER = sipRequest({ uri: 'sip:a' });
const BARE_REGISTER = 'REGISTER sip:a SIP/2.0\r\n\r\n'; // no headers: malformed
/** Every byte Kamailio skips before a start line (CR LF also OpenSIPS), RFC 3261 7.5. */
const PREAMBLE_BYTES: Array<[string, string]> = [['CR', '\r'], ['LF', '\n'], ['NUL', '\0'], ['HTAB', '\t'], ['SP', ' ']];

/** Every upper/lower case mix of word. */
function caseMixes(word: string): string[] {
  return Array.from({ length: 2 ** word.length }, (_, m) => [...word].map((c, i) => ((m >> i) & 1 ? c.toLowerCase() : c.toUpperCase())).join(''));
}
const withMethod = (msg: string, method: string) => msg.replace(/^[A-Z]+/, method);
const withHeader = (msg: string, from: RegExp, to: string) => msg.replace(from, to);
/** SP/HTAB runs of length n in a few patterns. */
const blankRun = (n: number) => Array.from({ length: n }, (_, i) => (i % 3 === 1 ? '\t' : ' ')).join('');
const frame = (payload: string, o: FrameOptions = {}) => udpFrame(payload, { src: CLEAN, ...o });
/** Every line of msg ended by a bare LF. */
const allLf = (msg: string) => msg.replace(/\r\n/g, '\n');
/** The default headers without the one whose name starts with name. */
const without = (name: string) => DEFAULT_HEADERS.filter((h) => !h.startsWith(name));
/** Headers the servers never see: after the end of headers, in the body. */
const SMUGGLED = 'Via: SIP/2.0/UDP 192.0.2.9;branch=z9hG4bKs\r\nCall-ID: smuggled@x\r\n\r\n';

/** Where the RFC 4475 corpus lives: ../shared/sip-corpus beside the checkout (VOS_SIP_CORPUS overrides). */
const CORPUS = process.env.VOS_SIP_CORPUS ?? resolve(ROOT, '..', 'shared', 'sip-corpus');
const corpusMissing = existsSync(join(CORPUS, 'cases.json')) ? null : `no RFC 4475 corpus at ${CORPUS} (a checkout has it at ../shared/sip-corpus)`;

describeKernel('SIP checks parse as the servers do', () => {
  const lab = new Lab();

  beforeAll(async () => {
    await lab.loadUnattached();
    await lab.mustScript('block_ip.sh', [BLOCKED]);
    await lab.mustScript('options_allow_ip.sh', [OPTIONS_PEER]);
  });
  afterAll(() => lab.cleanup());

  const verdictOf = (f: Buffer) => lab.verdictOf(f);
  const batch = (frames: Buffer[]) => lab.verdictsOf(frames);

  const tinyPad = (payload: string) => {
    // A tiny first fragment as a NIC hands it over: padded with zeros to the 60-byte Ethernet minimum.
    const f = frame(payload, { moreFragments: true });
    return Buffer.concat([f, Buffer.alloc(Math.max(0, 60 - f.length))]);
  };

  const cases: Array<[string, () => Buffer, number, string]> = [
    // The failing inputs.
    ['OPTIONS after a CRLF is dropped', () => frame(`\r\n${OPTIONS}`), XDP_DROP, 'options_dropped'],
    ['lower-case options is dropped', () => frame(withMethod(OPTIONS, 'options')), XDP_DROP, 'options_dropped'],
    ['a first fragment of only "OPTIONS " is dropped as tiny', () => frame('OPTIONS ', { moreFragments: true }), XDP_DROP, 'tiny_fragment'],
    ['REGISTER with 8 SP before the colon of Via passes', () => frame(withHeader(REGISTER, /^Via:/m, 'Via        :')), XDP_PASS, 'passed'],
    ['REGISTER with sip/2.0 passes', () => frame(REGISTER.replace('SIP/2.0\r\n', 'sip/2.0\r\n')), XDP_PASS, 'passed'],
    ['REGISTER without headers after a CRLF is dropped', () => frame(`\r\n${BARE_REGISTER}`), XDP_DROP, 'malformed_register'],
    // Preamble: each byte, for OPTIONS, a malformed REGISTER and a valid one.
    ...PREAMBLE_BYTES.flatMap(([name, b]): Array<[string, () => Buffer, number, string]> => [
      [`OPTIONS after ${name} is dropped`, () => frame(`${b}${OPTIONS}`), XDP_DROP, 'options_dropped'],
      [`malformed REGISTER after ${name}${name} is dropped`, () => frame(`${b}${b}${BARE_REGISTER}`), XDP_DROP, 'malformed_register'],
      [`valid REGISTER after ${name} passes`, () => frame(`${b}${REGISTER}`), XDP_PASS, 'passed'],
    ]),
    ['OPTIONS after a mixed CR LF SP HTAB NUL preamble is dropped', () => frame(`\r\n \t\0\r\n\0 \r\n${OPTIONS}`), XDP_DROP, 'options_dropped'],
    ['OPTIONS after 1,400 bytes of CRLF is dropped', () => frame(`${'\r\n'.repeat(700)}${OPTIONS}`), XDP_DROP, 'options_dropped'],
    ['OPTIONS after another control byte (0x01) passes: no server reads it as OPTIONS', () => frame(`\x01${OPTIONS}`), XDP_PASS, 'passed'],
    ['OPTIONS from options_allow after a CRLF passes', () => frame(`\r\n${OPTIONS}`, { src: OPTIONS_PEER }), XDP_PASS, 'passed'],
    ['lower-case options to a non-SIP port passes', () => frame(withMethod(OPTIONS, 'options'), { dport: 5070 }), XDP_PASS, 'passed'],
    // The separator after the method: both servers want exactly one SP there.
    ['OPTIONS followed by HTAB passes: neither server takes it as a request', () => frame(OPTIONS.replace('OPTIONS ', 'OPTIONS\t')), XDP_PASS, 'passed'],
    ['OPTIONS followed by two SP is dropped', () => frame(OPTIONS.replace('OPTIONS ', 'OPTIONS  ')), XDP_DROP, 'options_dropped'],
    ['OPTIONSX is another method and passes', () => frame(OPTIONS.replace('OPTIONS ', 'OPTIONSX ')), XDP_PASS, 'passed'],
    ['a REGISTER followed by HTAB is not judged (no server takes it as a request)', () => frame('REGISTER\tsip:a SIP/2.0\r\n\r\n'), XDP_PASS, 'passed'],
    ['REGISTER with two SP after the method is dropped', () => frame(REGISTER.replace('REGISTER ', 'REGISTER  ')), XDP_DROP, 'malformed_register'],
    // Keepalives: all preamble, nothing to judge.
    ...['\r\n\r\n', '\r\n', '\0\0\0\0', ' ', '\t', '\r\n'.repeat(600)].map((k, i): [string, () => Buffer, number, string] => [`keepalive ${i + 1} (${k.length} preamble bytes) passes`, () => frame(k), XDP_PASS, 'passed']),
    // Fragments.
    ['a first fragment with no payload is dropped as tiny', () => frame('', { moreFragments: true }), XDP_DROP, 'tiny_fragment'],
    ['a first fragment of 8 bytes "INVITE s" is dropped as tiny', () => frame('INVITE s', { moreFragments: true }), XDP_DROP, 'tiny_fragment'],
    ['a first fragment of 16 bytes "OPTIONS sip:a SI" is judged: OPTIONS dropped', () => frame('OPTIONS sip:a SI', { moreFragments: true }), XDP_DROP, 'options_dropped'],
    ['a first fragment of 16 bytes "options sip:a SI" is judged: OPTIONS dropped', () => frame('options sip:a SI', { moreFragments: true }), XDP_DROP, 'options_dropped'],
    ['a first fragment of 16 bytes "INVITE sip:a SIP" passes', () => frame('INVITE sip:a SIP', { moreFragments: true }), XDP_PASS, 'passed'],
    ['a first fragment of 16 bytes whose method is cut by the fragment end (CRLF x7 + "OP") is dropped as tiny', () => frame(`${'\r\n'.repeat(7)}OP`, { moreFragments: true }), XDP_DROP, 'tiny_fragment'],
    ['a 1,400-byte first fragment of CRLFs is dropped as tiny', () => frame('\r\n'.repeat(700), { moreFragments: true }), XDP_DROP, 'tiny_fragment'],
    ['a tiny first fragment padded to 60 bytes by Ethernet is dropped as tiny', () => tinyPad('OPTIONS '), XDP_DROP, 'tiny_fragment'],
    ['a large first fragment of an INVITE passes (unchanged)', () => frame(sipRequest({ method: 'INVITE', body: 'v=0\r\n'.repeat(280) }), { moreFragments: true }), XDP_PASS, 'passed'],
    ['a large first fragment of an OPTIONS is dropped (unchanged)', () => frame(sipRequest({ method: 'OPTIONS', body: 'x'.repeat(1400) }), { moreFragments: true }), XDP_DROP, 'options_dropped'],
    ['a tiny first fragment from options_allow is still dropped as tiny', () => frame('OPTIONS ', { moreFragments: true, src: OPTIONS_PEER }), XDP_DROP, 'tiny_fragment'],
    ['a tiny first fragment to a non-SIP port passes', () => frame('OPTIONS ', { moreFragments: true, dport: 53 }), XDP_PASS, 'passed'],
    ['a tiny first fragment from a blocked source counts as blocked', () => frame('OPTIONS ', { moreFragments: true, src: BLOCKED }), XDP_DROP, 'blocked_exact'],
    ['the non-first fragment after a tiny one is not judged', () => frame('sip:a SIP/2.0\r\n\r\n', { udp: false, fragOffset: 2 }), XDP_PASS, 'passed'],
    // SIP-Version and HCOLON edges.
    ['REGISTER with SIP/2.1 is dropped', () => frame(REGISTER.replace('SIP/2.0\r\n', 'SIP/2.1\r\n')), XDP_DROP, 'malformed_register'],
    ['REGISTER with a 40-blank HCOLON reaching the end of the message is dropped', () => frame(`REGISTER sip:a SIP/2.0\r\n${DEFAULT_HEADERS.filter((h) => !h.startsWith('CSeq')).join('\r\n')}\r\nCSeq${blankRun(40)}`), XDP_DROP, 'malformed_register'],
    // Line ends (Kamailio and OpenSIPS get_hdr_field): a line ends at LF, CR before it or not; the headers end at the first line starting with CR or LF.
    ['REGISTER with every line ending in a bare LF passes', () => frame(allLf(REGISTER)), XDP_PASS, 'passed'],
    ['REGISTER whose headers end with CRLF then a bare LF passes', () => frame(sipRequest({ uri: 'sip:a', end: '\n' })), XDP_PASS, 'passed'],
    ['REGISTER whose request line alone ends in a bare LF passes', () => frame(REGISTER.replace('SIP/2.0\r\n', 'SIP/2.0\n')), XDP_PASS, 'passed'],
    ['REGISTER whose headers end with a line of a bare CR passes', () => frame(sipRequest({ uri: 'sip:a', end: '\r' })), XDP_PASS, 'passed'],
    ['REGISTER with a bare-LF request line and no headers is dropped', () => frame('REGISTER sip:a SIP/2.0\n\n'), XDP_DROP, 'malformed_register'],
    ...([['Call-ID', 'Call-ID'], ['Via', 'Via']] as const).flatMap(([name, prefix]): Array<[string, () => Buffer, number, string]> => [
      [`REGISTER without ${name}, headers ended by a bare LF, ${name} in the body is dropped`, () => frame(sipRequest({ uri: 'sip:a', headers: without(prefix), end: '\n', body: SMUGGLED })), XDP_DROP, 'malformed_register'],
      [`REGISTER without ${name}, all lines bare LF, ${name} in the body is dropped`, () => frame(allLf(sipRequest({ uri: 'sip:a', headers: without(prefix), body: SMUGGLED }))), XDP_DROP, 'malformed_register'],
      [`REGISTER without ${name}, headers ended by a bare CR line, ${name} in the body is dropped`, () => frame(sipRequest({ uri: 'sip:a', headers: without(prefix), end: '\r', body: SMUGGLED })), XDP_DROP, 'malformed_register'],
      [`REGISTER without ${name}, ${name} after the CRLF empty line is dropped`, () => frame(sipRequest({ uri: 'sip:a', headers: without(prefix), body: SMUGGLED })), XDP_DROP, 'malformed_register'],
    ]),
    ['REGISTER with all lines bare LF and no end of headers is dropped', () => frame(allLf(sipRequest({ uri: 'sip:a', end: '' }))), XDP_DROP, 'malformed_register'],
    // The walk's real bound (README): 250 short header lines are judged, 400 pass unjudged.
    ['REGISTER with 250 short header lines and no CSeq is judged and dropped', () => frame(sipRequest({ headers: [...DEFAULT_HEADERS.filter((h) => !h.startsWith('CSeq')), ...Array.from({ length: 243 }, (_, i) => `X-${i}: ${i}`)] })), XDP_DROP, 'malformed_register'],
    ['REGISTER with 400 header lines passes unjudged (past the walk)', () => frame(sipRequest({ headers: [...DEFAULT_HEADERS.filter((h) => !h.startsWith('CSeq')), ...Array.from({ length: 393 }, () => 'a:b')] })), XDP_PASS, 'passed'],
  ];

  it.each(cases)('%s', async (_name, f, verdict, counter) => {
    const r = await verdictOf(f());
    expect(r.verdict).toBe(verdict);
    expect(r.counted).toEqual({ [counter]: 1 });
  });

  it('drops OPTIONS in each of its 128 case mixes', async () => {
    const r = await batch(caseMixes('OPTIONS').map((m) => frame(withMethod(OPTIONS, m))));
    expect(r.verdicts.every((v) => v === XDP_DROP)).toBe(true);
    expect(r.counted).toEqual({ options_dropped: 128 });
  });

  it('judges REGISTER in each of its 256 case mixes: valid pass, malformed drop', async () => {
    const mixes = caseMixes('REGISTER');
    const valid = await batch(mixes.map((m) => frame(withMethod(REGISTER, m))));
    expect(valid.verdicts.every((v) => v === XDP_PASS)).toBe(true);
    expect(valid.counted).toEqual({ passed: 256 });
    const malformed = await batch(mixes.map((m) => frame(withMethod(BARE_REGISTER, m))));
    expect(malformed.verdicts.every((v) => v === XDP_DROP)).toBe(true);
    expect(malformed.counted).toEqual({ malformed_register: 256 });
  });

  it('accepts SIP-Version in each case mix of "SIP"', async () => {
    const r = await batch(caseMixes('SIP').map((m) => frame(REGISTER.replace('SIP/2.0\r\n', `${m}/2.0\r\n`))));
    expect(r.verdicts.every((v) => v === XDP_PASS)).toBe(true);
    expect(r.counted).toEqual({ passed: 8 });
  });

  it('drops OPTIONS after preambles of 1 to 40 bytes (each word boundary)', async () => {
    const r = await batch(Array.from({ length: 40 }, (_, i) => frame(`${'\r\n\0 \t'.repeat(8).slice(0, i + 1)}${OPTIONS}`)));
    expect(r.verdicts.every((v) => v === XDP_DROP)).toBe(true);
    expect(r.counted).toEqual({ options_dropped: 40 });
  });

  const NAMES: Array<[string, RegExp]> = [
    ['Via', /^Via:/m], ['From', /^From:/m], ['To', /^To:/m], ['Call-ID', /^Call-ID:/m], ['CSeq', /^CSeq:/m],
  ];
  const COMPACT: Record<string, string> = { Via: 'v', From: 'f', To: 't', 'Call-ID': 'i' };

  it('counts a required header whatever run of 1 to 40 SP/HTAB precedes its colon (full and compact names)', async () => {
    const frames: Buffer[] = [];
    for (const [name, re] of NAMES) {
      for (let n = 1; n <= 40; n++) {
        frames.push(frame(withHeader(REGISTER, re, `${name}${blankRun(n)}:`)));
        if (COMPACT[name]) frames.push(frame(withHeader(REGISTER, re, `${COMPACT[name]}${blankRun(n)}:`)));
      }
    }
    const r = await batch(frames);
    expect(r.verdicts.every((v) => v === XDP_PASS)).toBe(true);
    expect(r.counted).toEqual({ passed: frames.length });
  });

  it('does not count a header whose run of 1 to 40 blanks ends in anything but a colon', async () => {
    const r = await batch(Array.from({ length: 40 }, (_, i) => frame(withHeader(REGISTER, /^CSeq:/m, `CSeq${blankRun(i + 1)}x:`))));
    expect(r.verdicts.every((v) => v === XDP_DROP)).toBe(true);
    expect(r.counted).toEqual({ malformed_register: 40 });
  });

  it.each(PHONE_REGISTERS.map((p) => [p.name, p.message] as const))('passes a real phone REGISTER: %s', async (_name, message) => {
    expect(await verdictOf(frame(message))).toEqual({ verdict: XDP_PASS, counted: { passed: 1 } });
  });

  describeWith('agreement with a real Kamailio on loopback', sipPeersMissing(), () => {
    const port = 20000 + (process.pid % 20000);
    const request = (startLine: string, method: string, i: number) =>
      `${startLine}\r\nVia: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bK${i};rport\r\nVia        : SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKx\r\nFrom: <sip:x@example.com>;tag=${i}\r\nTo: <sip:a@example.com>\r\nCall-ID: ${i}@lab\r\nCSeq: 1 ${method}\r\nContent-Length: 0\r\n\r\n`;

    /** Kamailio's status line for payload, or null when it does not answer. */
    async function kamailioAnswer(payload: string): Promise<string | null> {
      const sock = dgram.createSocket('udp4');
      try {
        await new Promise<void>((r) => sock.bind(0, '127.0.0.1', r));
        const got = new Promise<string | null>((r) => {
          const t = setTimeout(() => r(null), 1000);
          sock.once('message', (m) => (clearTimeout(t), r(m.toString('latin1').split('\r\n')[0]!)));
        });
        sock.send(Buffer.from(payload, 'latin1'), port, '127.0.0.1');
        return await got;
      } finally {
        sock.close();
      }
    }

    beforeAll(async () => {
      const dir = join(lab.tmp, 'kamailio');
      mkdirSync(dir);
      writeFileSync(join(dir, 'k.cfg'), [
        '#!KAMAILIO', 'debug=0', 'log_stderror=yes', 'children=1', 'disable_tcp=yes', `listen=udp:127.0.0.1:${port}`,
        'mpath="/usr/lib/x86_64-linux-gnu/kamailio/modules/"', 'loadmodule "sl.so"', 'loadmodule "textops.so"', 'loadmodule "pv.so"',
        'request_route {', '  if (is_method("OPTIONS")) { sl_send_reply("200", "OPTIONS"); exit; }',
        '  if (is_method("REGISTER")) { sl_send_reply("200", "REGISTER"); exit; }', '  sl_send_reply("404", "other");', '}', '',
      ].join('\n'));
      const proc = execa('kamailio', ['-f', join(dir, 'k.cfg'), '-DD', '-E', '-n', '1', '-P', join(dir, 'pid'), '-Y', dir], { reject: false, buffer: false, stdout: 'ignore', stderr: 'ignore' });
      lab.defer(`kamailio (${proc.pid})`, () => endForking(proc));
      for (let i = 0; i < 50 && !(await kamailioAnswer(request('OPTIONS sip:a@127.0.0.1 SIP/2.0', 'OPTIONS', 0))); i++) if (proc.exitCode !== null) break;
    });

    // What a scanner tries; Kamailio answers each as OPTIONS: the program must drop each.
    const disguisedOptions = [
      'OPTIONS', '\r\nOPTIONS', '\r\n\r\nOPTIONS', '\nOPTIONS', '\0OPTIONS', ' OPTIONS', '\tOPTIONS', '\r\n \t\0OPTIONS',
      'options', 'Options', 'oPTIONS', ' \toptions',
    ];
    it.each(disguisedOptions.map((m) => [JSON.stringify(m), m] as const))('Kamailio answers OPTIONS start %s, and the program drops it', async (_n, m) => {
      const payload = request(`${m} sip:a@127.0.0.1 SIP/2.0`, 'OPTIONS', 1);
      expect(await kamailioAnswer(payload)).toBe('SIP/2.0 200 OPTIONS');
      expect(await verdictOf(frame(payload))).toEqual({ verdict: XDP_DROP, counted: { options_dropped: 1 } });
    });

    // Not OPTIONS to Kamailio (no answer, or another method): nothing to hide, the program passes them.
    it.each([['OPTIONS\t', null], ['\x01OPTIONS ', 'SIP/2.0 404 other']] as const)('Kamailio does not take start %j as OPTIONS, and the program passes it', async (m, answer) => {
      const payload = request(`${m}sip:a@127.0.0.1 SIP/2.0`, 'OPTIONS', 2);
      expect(await kamailioAnswer(payload)).toBe(answer);
      expect(await verdictOf(frame(payload))).toEqual({ verdict: XDP_PASS, counted: { passed: 1 } });
    });

    // Valid REGISTERs in the forms Kamailio accepts: the program passes each.
    const registers = ['REGISTER sip:a@127.0.0.1 SIP/2.0', 'register sip:a@127.0.0.1 SIP/2.0', 'Register sip:a@127.0.0.1 sip/2.0', '\r\nREGISTER sip:a@127.0.0.1 Sip/2.0'];
    it.each(registers.map((m) => [JSON.stringify(m), m] as const))('Kamailio accepts REGISTER %s (Via with 8 SP before its colon), and the program passes it', async (_n, line) => {
      const payload = request(line, 'REGISTER', 3);
      expect(await kamailioAnswer(payload)).toMatch(/^SIP\/2\.0 200 REGISTER$/i); // Kamailio echoes the version as sent
      expect(await verdictOf(frame(payload))).toEqual({ verdict: XDP_PASS, counted: { passed: 1 } });
    });

    // Line ends Kamailio accepts: every line a bare LF, headers ended by CRLF then LF, a bare-LF request line.
    const lineEnds: Array<[string, (p: string) => string]> = [
      ['every line a bare LF', allLf],
      ['headers ended by CRLF LF', (p) => p.replace(/\r\n\r\n$/, '\r\n\n')],
      ['the request line ended by a bare LF', (p) => p.replace('SIP/2.0\r\n', 'SIP/2.0\n')],
    ];
    it.each(lineEnds)('Kamailio accepts a REGISTER with %s, and the program passes it', async (_n, change) => {
      const payload = change(request('REGISTER sip:a@127.0.0.1 SIP/2.0', 'REGISTER', 4));
      expect(await kamailioAnswer(payload)).toBe('SIP/2.0 200 REGISTER');
      expect(await verdictOf(frame(payload))).toEqual({ verdict: XDP_PASS, counted: { passed: 1 } });
    });
  });

  describeWith('the RFC 4475 torture corpus (../shared/sip-corpus)', corpusMissing, () => {
    it('keeps every verdict of cases.json', async () => {
      const r = await execa('python3', [join(CORPUS, 'run_corpus.py'), `${lab.pinDir}/prog`, CORPUS], { reject: false });
      const last = r.stdout.trim().split('\n').at(-1) ?? '';
      const m = /^(\d+)\/(\d+) right$/.exec(last);
      expect({ exit: r.exitCode, wrong: r.stdout.split('\n').filter((l) => l.startsWith('wrong')) }).toEqual({ exit: 0, wrong: [] });
      expect(m && Number(m[2]) >= 71 && m[1] === m[2]).toBe(true);
    });
  });

  // The last two reload the program with other settings: nothing after them needs the default back.
  describe('with stealth off', () => {
    beforeAll(() => lab.loadUnattached(['--no-stealth']));

    it('passes disguised OPTIONS and tiny first fragments', async () => {
      const r = await batch([frame(`\r\n${OPTIONS}`), frame(withMethod(OPTIONS, 'oPtIoNs')), frame('OPTIONS ', { moreFragments: true })]);
      expect(r.verdicts).toEqual([XDP_PASS, XDP_PASS, XDP_PASS]);
      expect(r.counted).toEqual({ passed: 3 });
    });
    it('still drops a malformed REGISTER after a preamble', async () => {
      expect(await verdictOf(frame(`\r\n${BARE_REGISTER}`))).toEqual({ verdict: XDP_DROP, counted: { malformed_register: 1 } });
    });
  });

  describe('in shadow mode', () => {
    beforeAll(() => lab.loadUnattached(['--shadow']));

    it('counts a tiny first fragment as a would-drop and passes it', async () => {
      expect(await verdictOf(frame('', { moreFragments: true }))).toEqual({ verdict: XDP_PASS, counted: { shadow_would_drop: 1 } });
    });
  });
});

