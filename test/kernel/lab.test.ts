/**
 * Real packets on a real veth pair: datagrams sent from a namespace, counted
 * at a UDP socket in the root namespace, with vos-fastpath attached in native
 * XDP mode on the host end.
 */
import { afterAll, afterEach, beforeAll, expect, it } from '@jest/globals';
import dgram from 'node:dgram';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { execa } from 'execa';
import { describeKernel } from '../helpers/env.js';
import { countersDelta, Lab, ROOT, sendUdpFrom, type Counters, type Veth } from '../helpers/lab.js';
import { DEFAULT_HEADERS, IPPROTO_DSTOPTS, IPPROTO_HOPOPTS, sipRequest, udp6Frame, udpFrame, type Frame6Options } from '../helpers/packets.js';
import { waitFor } from '../helpers/wait.js';

const REGISTER = sipRequest();
const OPTIONS = sipRequest({ method: 'OPTIONS', uri: 'sip:ping@lab' });
/** OPTIONS as a scanner disguises it and Kamailio and OpenSIPS still answer it: a CRLF before the start line, the method in lower case. */
const DISGUISED_OPTIONS = [`\r\n${OPTIONS}`, OPTIONS.replace(/^OPTIONS/, 'options')];
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A UDP socket on the host end that remembers every datagram it got. */
async function listen(lab: Lab, address: string, port = 5060): Promise<{ got: string[] }> {
  const sock = dgram.createSocket('udp4');
  const state = { got: [] as string[] };
  sock.on('message', (m) => state.got.push(m.toString('latin1')));
  sock.bind(port, address);
  await once(sock, 'listening');
  lab.defer(`udp socket ${address}:${port}`, async () => sock.close());
  return state;
}

/** Send `count` datagrams and return how many the socket received. */
async function arrivals(v: Veth, rx: { got: string[] }, payload: string, count = 5): Promise<number> {
  const before = rx.got.length;
  await sendUdpFrom(v.ns, v.hostIp, 5060, Array(count).fill(payload));
  await sleep(150);
  return rx.got.length - before;
}

describeKernel('XDP on a veth pair (real packets)', () => {
  let lab: Lab;
  let v: Veth;
  let rx: { got: string[] };

  beforeAll(async () => {
    lab = new Lab();
    v = await lab.veth();
    await lab.mustScript('load.sh', [v.host, '--mode', 'native']);
    lab.defer(`xdp on ${v.host}`, () => lab.script('unload.sh', [v.host]));
    rx = await listen(lab, v.hostIp);
    // Prime ARP so the first counted datagram is not lost to neighbour resolution.
    await arrivals(v, rx, REGISTER, 1);
  });
  afterAll(() => lab.cleanup());

  it('is attached in native mode', async () => {
    const { stdout } = await execa('ip', ['-j', 'link', 'show', 'dev', v.host]);
    const link = JSON.parse(stdout)[0];
    expect(link.xdp?.mode).toBe(1); // XDP_ATTACHED_DRV
  });

  it('delivers REGISTERs from a clean source', async () => {
    expect(await arrivals(v, rx, REGISTER)).toBe(5);
  });

  it('drops everything from a blocked source, and delivers again after unblock', async () => {
    const before = await lab.counters();
    await lab.mustScript('block_ip.sh', [v.peerIp]);
    expect(await arrivals(v, rx, REGISTER)).toBe(0);
    const after = await lab.counters();
    expect(after.blocked_exact!.packets - before.blocked_exact!.packets).toBe(5);
    await lab.mustScript('unblock_ip.sh', [v.peerIp]);
    expect(await arrivals(v, rx, REGISTER)).toBe(5);
  });

  it('drops a source inside a blocked prefix', async () => {
    const net = `${v.peerIp}/31`; // .2 and .3: not the host's own .1
    await lab.mustScript('block_ip.sh', [net]);
    try {
      expect(await arrivals(v, rx, REGISTER)).toBe(0);
    } finally {
      await lab.mustScript('unblock_ip.sh', [net]);
    }
  });

  it('hides the SIP server from OPTIONS scans, unless the source may send OPTIONS', async () => {
    expect(await arrivals(v, rx, OPTIONS)).toBe(0);
    for (const disguised of DISGUISED_OPTIONS) expect(await arrivals(v, rx, disguised)).toBe(0);
    await lab.mustScript('options_allow_ip.sh', [v.peerIp]);
    expect(await arrivals(v, rx, OPTIONS)).toBe(5);
    await lab.mustScript('options_disallow_ip.sh', [v.peerIp]);
    expect(await arrivals(v, rx, OPTIONS)).toBe(0);
  });

  it('delivers OPTIONS once stealth is switched off by a reload', async () => {
    await lab.mustScript('load.sh', [v.host, '--no-stealth']);
    try {
      expect(await arrivals(v, rx, OPTIONS)).toBe(5);
      for (const disguised of DISGUISED_OPTIONS) expect(await arrivals(v, rx, disguised)).toBe(5);
    } finally {
      await lab.mustScript('load.sh', [v.host]);
    }
  });

  it('keeps every entry through a reload of the program', async () => {
    const entries = ['192.0.2.10', '192.0.2.11', '198.51.100.0/24', v.peerIp];
    for (const e of entries) await lab.mustScript('block_ip.sh', [e]);
    const dump = async (map: string) => JSON.parse((await execa('bpftool', ['-j', 'map', 'dump', 'pinned', `${lab.pinDir}/${map}`])).stdout).length;
    const before = [await dump('blocked_ips'), await dump('blocked_prefixes')];
    const oldProg = JSON.parse((await execa('bpftool', ['-j', 'prog', 'show', 'pinned', `${lab.pinDir}/prog`])).stdout).id;
    await lab.mustScript('load.sh', [v.host]);
    const newProg = JSON.parse((await execa('bpftool', ['-j', 'prog', 'show', 'pinned', `${lab.pinDir}/prog`])).stdout).id;
    expect(newProg).not.toBe(oldProg);
    expect([await dump('blocked_ips'), await dump('blocked_prefixes')]).toEqual(before);
    expect(await arrivals(v, rx, REGISTER)).toBe(0);
    for (const e of entries) await lab.mustScript('unblock_ip.sh', [e]);
    expect(await arrivals(v, rx, REGISTER)).toBe(5);
  });

  it('stops dropping when an entry expires', async () => {
    await lab.mustScript('block_ip.sh', [v.peerIp, '--ttl', '1']);
    expect(await arrivals(v, rx, REGISTER)).toBe(0);
    await sleep(1100);
    expect(await arrivals(v, rx, REGISTER)).toBe(5);
    await lab.mustScript('unblock_ip.sh', [v.peerIp]);
  });

  it('redirects SIP to a registered AF_XDP socket, which the UDP socket then does not see', async () => {
    const xsk = lab.spawn(`${ROOT}/build/xsk_recv`, [v.host, '0', `${lab.pinDir}/xsks_map`, '5000', '1'], { buffer: false });
    const lines = createInterface({ input: xsk.stdout! });
    const seen: string[] = [];
    lines.on('line', (l) => seen.push(l));
    for (let i = 0; i < 50 && !seen.includes('ready'); i++) await sleep(50);
    expect(seen).toContain('ready');
    const before = await lab.counters();
    const udpBefore = rx.got.length;
    await sendUdpFrom(v.ns, v.hostIp, 5060, ['INVITE sip:xsk@lab SIP/2.0\r\n\r\n']);
    const result = await xsk;
    expect(result.exitCode).toBe(0);
    expect(seen.some((l) => /^frame \d+ 5060 INVITE sip:xsk@lab/.test(l))).toBe(true);
    expect(rx.got.length).toBe(udpBefore);
    const after = await lab.counters();
    expect(after.redirected!.packets - before.redirected!.packets).toBe(1);
    // The socket deregistered itself on exit: traffic goes to the stack again.
    expect(await arrivals(v, rx, REGISTER)).toBe(5);
  });
});

describeKernel('unload.sh', () => {
  let lab: Lab;
  afterEach(() => lab.cleanup());

  it('detaches and keeps the maps, or removes them with --purge', async () => {
    lab = new Lab();
    const v = await lab.veth();
    await lab.mustScript('load.sh', [v.host, '--mode', 'skb']);
    await lab.mustScript('block_ip.sh', ['192.0.2.99']);
    const link = async () => JSON.parse((await execa('ip', ['-j', 'link', 'show', 'dev', v.host])).stdout)[0];
    expect((await link()).xdp?.mode).toBe(2); // XDP_ATTACHED_SKB
    await lab.mustScript('unload.sh', [v.host]);
    expect((await link()).xdp).toBeUndefined();
    const kept = await execa('bpftool', ['map', 'lookup', 'pinned', `${lab.pinDir}/blocked_ips`, 'key', '192', '0', '2', '99'], { reject: false });
    expect(kept.exitCode).toBe(0);
    await lab.mustScript('unload.sh', [v.host, '--purge']);
    const gone = await execa('ls', [lab.pinDir], { reject: false });
    expect(gone.exitCode).not.toBe(0);
  });
});

/**
 * Frames larger than the 8 KiB the SIP checks once masked offsets with (F1):
 * a preamble of 4,095 bytes plus a REGISTER of up to 4,096 reaches past it.
 * BPF_PROG_TEST_RUN hands an XDP program at most about 3,520 linear bytes, so
 * these go as real frames over a veth with MTU 9000, program attached in skb
 * mode, sent whole from the namespace through an AF_PACKET socket (the IP
 * options of one case need it). Each case asserts the counter that moved.
 */
describeKernel('XDP on a veth pair with MTU 9000 (frames past 8 KiB, skb mode)', () => {
  let lab: Lab;
  let v: Veth;
  const PREAMBLE = ' '.repeat(4095); // the longest preamble the checks skip (README)

  /** payload padded with an X-Pad header to exactly size bytes. */
  const sized = (size: number, headers: string[], end: string) => {
    const pad = size - sipRequest({ uri: 'sip:a', headers: [...headers, 'X-Pad: '], end }).length;
    return sipRequest({ uri: 'sip:a', headers: [...headers, `X-Pad: ${'a'.repeat(pad)}`], end });
  };

  /** Send one whole Ethernet frame out of the namespace's end; the counters that moved. */
  async function countedFor(frame: Buffer): Promise<Record<string, number>> {
    const before = await lab.counters();
    const send = 'import socket,sys\ns=socket.socket(socket.AF_PACKET,socket.SOCK_RAW)\ns.bind((sys.argv[1],0))\ns.send(sys.stdin.buffer.read())';
    await execa('ip', ['netns', 'exec', v.ns, 'python3', '-c', send, v.peer], { input: frame });
    return waitFor('the frame to be counted', async () => {
      const d = countersDelta(before, await lab.counters());
      return Object.keys(d).length ? d : undefined;
    }, 5000);
  }

  beforeAll(async () => {
    lab = new Lab();
    v = await lab.veth();
    await execa('ip', ['link', 'set', 'dev', v.host, 'mtu', '9000']);
    await execa('ip', ['-n', v.ns, 'link', 'set', 'dev', v.peer, 'mtu', '9000']);
    // No IPv6 neighbour discovery on the link: only the test's frames reach the counters.
    await execa('sysctl', ['-qw', `net.ipv6.conf.${v.host}.disable_ipv6=1`]);
    await execa('ip', ['netns', 'exec', v.ns, 'sysctl', '-qw', `net.ipv6.conf.${v.peer}.disable_ipv6=1`]);
    await lab.mustScript('load.sh', [v.host, '--mode', 'skb']);
    lab.defer(`xdp on ${v.host}`, () => lab.script('unload.sh', [v.host]));
  });
  afterAll(() => lab.cleanup());

  const REQUIRED = sipRequest().split('\r\n').slice(1, -2);
  const large: Array<[string, () => Buffer, string]> = [
    ['a well-formed 4,096-byte REGISTER after 4,095 preamble bytes passes', () => udpFrame(PREAMBLE + sized(4096, REQUIRED, '\r\n')), 'passed'],
    ['a 4,096-byte REGISTER without CSeq after 4,095 preamble bytes is dropped', () => udpFrame(PREAMBLE + sized(4096, REQUIRED.filter((h) => !h.startsWith('CSeq')), '\r\n')), 'malformed_register'],
    [
      'a 4,088-byte REGISTER without Call-ID or end of headers after 4,095 preamble bytes is dropped, whatever the IP options say',
      () => udpFrame(PREAMBLE + sized(4090, REQUIRED.filter((h) => !h.startsWith('Call-ID')), '').slice(0, -2), {
        ipOptions: Buffer.concat([Buffer.from('\0\ni:x\r\n\r\n', 'latin1'), Buffer.alloc(31)]), // IHL 15
      }),
      'malformed_register',
    ],
    ['OPTIONS after 4,095 preamble bytes is dropped', () => udpFrame(PREAMBLE + sipRequest({ method: 'OPTIONS', uri: 'sip:a' })), 'options_dropped'],
    ['OPTIONS after 4,096 preamble bytes passes unjudged (README)', () => udpFrame(`${PREAMBLE} ${sipRequest({ method: 'OPTIONS', uri: 'sip:a' })}`), 'passed'],
  ];
  it.each(large)('%s', async (_name, frame, counter) => {
    expect(await countedFor(frame())).toEqual({ [counter]: 1 });
  });
});

/**
 * IPv6 extension headers on a real link: Linux delivers a UDP datagram behind
 * any number of destination-options headers (RFC 8200 allows two; the kernel
 * walks them all), so a chain longer than the program's walk once carried
 * OPTIONS past stealth to a real socket. Frames are crafted with real UDP
 * checksums and sent whole from the namespace through an AF_PACKET socket to
 * a veth with MTU 9000 (a chain of 8 KiB needs it), program attached in skb
 * mode. What reaches the socket on the host end is what a SIP server gets.
 */
describeKernel('IPv6 extension headers on a real link (skb mode, MTU 9000)', () => {
  let lab: Lab;
  let v: Veth;
  let got: string[];
  const port = 20000 + (process.pid % 10000);
  const BLOCKED6 = '2001:db8:bad::9';
  const dstopts = (n: number, len = 0) => Array.from({ length: n }, () => ({ type: IPPROTO_DSTOPTS, len }));
  /** A datagram from the namespace's address to the socket, behind ext (a marker payload names it). */
  const frame = (payload: string, ext: Frame6Options['ext'], o: Frame6Options = {}) =>
    udp6Frame(payload, { src: v.peerIp6, dst: v.hostIp6, sport: 5060, dport: port, ext, udpChecksum: true, ...o });
  const options = (marker: string) => sipRequest({ method: 'OPTIONS', uri: `sip:${marker}@lab` });
  const invite = (marker: string) => sipRequest({ method: 'INVITE', uri: `sip:${marker}@lab` });
  /** 3 x 2,048 + the rest: a chain of `bytes` bytes in 4 destination-options headers. */
  const chainOf = (bytes: number) => [...dstopts(3, 255), { type: IPPROTO_DSTOPTS, len: (bytes - 3 * 2048) / 8 - 1 }];

  /** Send frames in order; wait until the last one (a marker that must arrive) is at the socket. */
  async function sendThrough(frames: Buffer[], lastMarker: string): Promise<void> {
    const send = 'import socket,sys,json\ns=socket.socket(socket.AF_PACKET,socket.SOCK_RAW)\ns.bind((sys.argv[1],0))\nfor f in json.load(sys.stdin): s.send(bytes.fromhex(f))';
    await execa('ip', ['netns', 'exec', v.ns, 'python3', '-c', send, v.peer], { input: JSON.stringify(frames.map((f) => f.toString('hex'))) });
    await waitFor(`${lastMarker} at the socket`, async () => got.some((m) => m.includes(lastMarker)), 5000);
  }
  const arrived = (marker: string) => got.some((m) => m.includes(`sip:${marker}@`));
  /** Counter changes other than passed_ipv6 (the namespace's own neighbour discovery passes too). */
  const judged = (before: Counters, after: Counters) => {
    const d = countersDelta(before, after);
    delete d.passed_ipv6;
    return d;
  };

  beforeAll(async () => {
    lab = new Lab();
    v = await lab.veth();
    await execa('ip', ['link', 'set', 'dev', v.host, 'mtu', '9000', 'address', '02:00:00:00:00:01']); // the crafted frames' destination
    await execa('ip', ['-n', v.ns, 'link', 'set', 'dev', v.peer, 'mtu', '9000']);
    const sock = dgram.createSocket('udp6');
    got = [];
    sock.on('message', (m) => got.push(m.toString('latin1')));
    sock.bind(port, v.hostIp6);
    await once(sock, 'listening');
    lab.defer(`udp socket [${v.hostIp6}]:${port}`, async () => sock.close());
  });
  afterAll(() => lab.cleanup());

  it('without the program, Linux delivers UDP behind 8, 100 and 8 KiB of destination-options headers (the gap was real), nothing behind next header 253', async () => {
    await sendThrough([
      frame(options('bare253'), [...dstopts(2), { type: 253 }]), // what the walk passes unjudged (README)
      frame(options('bare8'), dstopts(8)),
      frame(options('bare100'), dstopts(100)),
      frame(options('bare8k'), chainOf(8120)),
    ], 'sip:bare8k@');
    expect(['bare253', 'bare8', 'bare100', 'bare8k'].filter(arrived)).toEqual(['bare8', 'bare100', 'bare8k']);
  });

  it('without the program, Linux delivers UDP length 0 as the rest of the IP payload (RFC 2675), also with payload_len 0 behind hop-by-hop', async () => {
    await sendThrough([
      frame(`\r\n${options('zero')}`, [], { udpLength: 0 }),
      frame(`\r\n${options('zerohbh')}`, [{ type: IPPROTO_HOPOPTS }], { udpLength: 0, payloadLength: 0 }),
      frame(invite('zeromarker'), [], { udpLength: 0 }),
    ], 'sip:zeromarker@');
    expect(['zero', 'zerohbh', 'zeromarker'].filter(arrived)).toEqual(['zero', 'zerohbh', 'zeromarker']);
  });

  it('attached, OPTIONS behind 8 or 100 headers dies at the NIC, an INVITE behind 100 arrives', async () => {
    await lab.mustScript('load.sh', [v.host, '--mode', 'skb', '--ports', String(port)]);
    lab.defer(`xdp on ${v.host}`, () => lab.script('unload.sh', [v.host]));
    const before = await lab.counters();
    await sendThrough([frame(options('opt8'), dstopts(8)), frame(options('opt100'), dstopts(100)), frame(invite('inv100'), dstopts(100))], 'sip:inv100@');
    expect(['opt8', 'opt100', 'inv100'].filter(arrived)).toEqual(['inv100']);
    expect(judged(before, await lab.counters())).toEqual({ options_dropped_ipv6: 2 });
  });

  it('a payload past 8,176 bytes into the frame is dropped as unjudged; one just within is judged; the blocklist comes first', async () => {
    await lab.mustScript('block_ip.sh', [BLOCKED6]);
    const before = await lab.counters();
    await sendThrough([
      frame(options('within'), chainOf(8112)), // payload at frame offset 8,174: read and judged
      frame(options('past'), chainOf(8120)), // payload at 8,182: past what the checks read
      frame(invite('pastinv'), chainOf(8120)), // a well-formed INVITE there cannot be judged either
      frame(invite('blocked'), chainOf(8120), { src: BLOCKED6 }),
      frame(invite('marker'), dstopts(8)),
    ], 'sip:marker@');
    expect(['within', 'past', 'pastinv', 'blocked', 'marker'].filter(arrived)).toEqual(['marker']);
    expect(judged(before, await lab.counters())).toEqual({ options_dropped_ipv6: 1, unjudged_ipv6: 2, blocked_exact_ipv6: 1 });
  });

  it('attached, UDP length 0 carries no OPTIONS or malformed REGISTER past the checks; a valid INVITE with it arrives', async () => {
    await lab.mustScript('load.sh', [v.host, '--mode', 'skb', '--ports', String(port)]);
    const before = await lab.counters();
    const bad = sipRequest({ uri: 'sip:badreg@lab', headers: DEFAULT_HEADERS.filter((h) => !h.startsWith('CSeq')) });
    await sendThrough([
      frame(`\r\n${options('opt0')}`, [], { udpLength: 0 }),
      frame(`\r\n${options('opt0hbh')}`, [{ type: IPPROTO_HOPOPTS }], { udpLength: 0, payloadLength: 0 }),
      frame(options('opt0ext'), dstopts(8), { udpLength: 0 }),
      frame(bad, [], { udpLength: 0 }),
      frame(invite('inv0'), [], { udpLength: 0 }),
    ], 'sip:inv0@');
    expect(['opt0', 'opt0hbh', 'opt0ext', 'badreg', 'inv0'].filter(arrived)).toEqual(['inv0']);
    expect(judged(before, await lab.counters())).toEqual({ options_dropped_ipv6: 3, malformed_register_ipv6: 1 });
  });

  it('in shadow mode the unjudged datagram is counted and delivered; with both checks off it is not judged', async () => {
    await lab.mustScript('load.sh', [v.host, '--mode', 'skb', '--ports', String(port), '--shadow']);
    let before = await lab.counters();
    await sendThrough([frame(options('shadow'), chainOf(8120))], 'sip:shadow@');
    expect(judged(before, await lab.counters())).toEqual({ shadow_would_drop_ipv6: 1 });
    await lab.mustScript('load.sh', [v.host, '--mode', 'skb', '--ports', String(port), '--no-stealth', '--no-malformed']);
    before = await lab.counters();
    await sendThrough([frame(options('unchecked'), chainOf(8120))], 'sip:unchecked@');
    expect(judged(before, await lab.counters())).toEqual({});
  });
});
