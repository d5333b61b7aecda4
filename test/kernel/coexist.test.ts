/**
 * Sharing the NIC: xdp-filter (xdp-tools, through libxdp) dropping a UDP port
 * and vos-fastpath blocking a source on the host end of one veth pair, with
 * real datagrams from the namespace. Where the kernel runs libxdp's
 * dispatcher, both work together, a packet redirected to AF_XDP reaches its
 * socket through it, and `vosctl detach` leaves xdp-filter attached and
 * dropping. Where it refuses freplace programs (this CI machine's locked-down
 * kernel does), an interface runs one program: vosctl attach and doctor must
 * then name xdp-filter and leave it in place, never replace it.
 */
import { afterAll, beforeAll, expect, it } from '@jest/globals';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import dgram from 'node:dgram';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { join } from 'node:path';
import { execa } from 'execa';
import { describeKernel } from '../helpers/env.js';
import { Lab, ROOT, type Veth } from '../helpers/lab.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const XDP_TOOL = join(ROOT, 'build/vfp-xdp');
// A port of this run's own: xdp-filter's port list is global to the host.
const FILTERED_PORT = 30000 + (process.pid % 20000);
// Which behaviour this kernel has decides which tests are defined, so their titles say what was verified.
const dispatcher = existsSync(XDP_TOOL) && process.getuid?.() === 0 && execFileSync(XDP_TOOL, ['probe']).toString().includes('dispatcher yes');
const withDispatcher = dispatcher ? it : it.skip;
const withoutDispatcher = dispatcher ? it.skip : it;

interface Listed {
  iface: string;
  libxdp: boolean;
  programs: Array<{ id: number; name: string; priority: number }>;
}

describeKernel('sharing the NIC with xdp-filter (libxdp)', () => {
  let lab: Lab;
  let v: Veth;
  let blockedIp: string;
  const got: Record<string, number> = {};

  const vosctl = async (...args: string[]) => {
    const r = await execa(join(ROOT, 'bin/vosctl'), args, {
      env: { VOS_PIN_DIR: lab.pinDir, VOS_STATE_DIR: join(lab.tmp, 'state'), VOS_LOG_FORMAT: 'json' },
      reject: false,
    });
    return { code: r.exitCode, out: r.stdout, err: r.stderr };
  };
  const programs = async (): Promise<string[]> => {
    const listed = JSON.parse((await execa(XDP_TOOL, ['list', v.host])).stdout) as Listed[];
    return (listed[0]?.programs ?? []).map((p) => p.name);
  };
  /** `count` datagrams from `from` in the namespace to the host's `port`; how many arrived. */
  const arrivals = async (from: string, port: number, count = 5): Promise<number> => {
    const key = `${port}`;
    const before = got[key] ?? 0;
    await execa('ip', ['netns', 'exec', v.ns, process.execPath, join(ROOT, 'scripts/lab/sip-send.mjs'), v.hostIp, String(port), '--from', from, '--count', String(count), '--method', 'INVITE']);
    await sleep(150);
    return (got[key] ?? 0) - before;
  };

  beforeAll(async () => {
    lab = new Lab();
    v = await lab.veth();
    blockedIp = v.peerIp.replace(/\.2$/, '.3');
    await execa('ip', ['-n', v.ns, 'addr', 'add', `${blockedIp}/24`, 'dev', v.peer]);
    for (const port of [5060, FILTERED_PORT]) {
      const sock = dgram.createSocket('udp4');
      sock.on('message', () => (got[`${port}`] = (got[`${port}`] ?? 0) + 1));
      sock.bind(port, v.hostIp);
      await once(sock, 'listening');
      lab.defer(`udp socket ${port}`, async () => sock.close());
    }
    await execa('xdp-filter', ['load', '--mode', 'native', '--features', 'ipv4,udp', v.host]);
    lab.defer(`xdp-filter on ${v.host}`, () => execa('xdp-filter', ['unload', v.host], { reject: false }));
    await execa('xdp-filter', ['port', '--proto', 'udp', String(FILTERED_PORT)]);
    lab.defer(`xdp-filter port ${FILTERED_PORT}`, () => execa('xdp-filter', ['port', '--remove', '--proto', 'udp', String(FILTERED_PORT)], { reject: false }));
    lab.defer(`vos-fastpath on ${v.host}`, () => lab.script('unload.sh', [v.host]));
    await arrivals(v.peerIp, 5060, 1); // prime ARP
  });
  afterAll(() => lab.cleanup());

  it('xdp-filter alone drops its port and passes SIP', async () => {
    expect(await programs()).toEqual([expect.stringMatching(/^xdpfilt/)]);
    expect(await arrivals(v.peerIp, FILTERED_PORT)).toBe(0);
    expect(await arrivals(v.peerIp, 5060)).toBe(5);
  });

  withDispatcher('vosctl attach joins the dispatcher before xdp-filter; each drops what it should', async () => {
    expect(await vosctl('attach', v.host, '--mode', 'native')).toMatchObject({ code: 0 });
    const listed = JSON.parse((await execa(XDP_TOOL, ['list', v.host])).stdout) as Listed[];
    expect(listed[0]!.libxdp).toBe(true);
    // Lower priority runs first: the blocklist (5) before xdp-filter (10).
    expect(listed[0]!.programs.map((p) => p.name)).toEqual(['vfp_xdp', expect.stringMatching(/^xdpfilt/)]);
    expect((await vosctl('block', blockedIp)).code).toBe(0);
    const before = JSON.parse((await vosctl('stats', '--json')).out);
    expect(await arrivals(blockedIp, 5060)).toBe(0); // vos-fastpath
    expect(await arrivals(v.peerIp, FILTERED_PORT)).toBe(0); // xdp-filter, after vos-fastpath passed it on
    expect(await arrivals(v.peerIp, 5060)).toBe(5); // both pass
    const after = JSON.parse((await vosctl('stats', '--json')).out);
    expect(after.blocked_exact.packets - before.blocked_exact.packets).toBe(5);
    expect(after.passed.packets - before.passed.packets).toBe(10);
  });

  withDispatcher('a packet redirected to AF_XDP reaches its socket through the dispatcher', async () => {
    const xsk = lab.spawn(`${ROOT}/build/xsk_recv`, [v.host, '0', `${lab.pinDir}/xsks_map`, '5000', '1'], { buffer: false });
    const seen: string[] = [];
    createInterface({ input: xsk.stdout! }).on('line', (l) => seen.push(l));
    for (let i = 0; i < 50 && !seen.includes('ready'); i++) await sleep(50);
    expect(seen).toContain('ready');
    const udpBefore = got['5060'] ?? 0;
    await execa('ip', ['netns', 'exec', v.ns, process.execPath, join(ROOT, 'scripts/lab/sip-send.mjs'), v.hostIp, '5060', '--from', v.peerIp, '--method', 'INVITE']);
    expect((await xsk).exitCode).toBe(0);
    expect(seen.some((l) => /^frame \d+ 5060 INVITE/.test(l))).toBe(true);
    expect(got['5060'] ?? 0).toBe(udpBefore);
  });

  withoutDispatcher('kernel without freplace: vosctl attach and doctor name xdp-filter and leave it attached and dropping', async () => {
    const r = await vosctl('attach', v.host, '--mode', 'native');
    expect(r.code).toBe(3);
    expect(r.err).toMatch(/xdpfilt\w*\), attached without libxdp's dispatcher; it is not replaced/);
    expect(r.err).toMatch(/refuses freplace/);
    // Its owner's command, not ip link's (which would not fit a generic-mode program either).
    expect(r.err).toContain(`detach that one (xdp-filter unload ${v.host})`);
    expect(await programs()).toEqual([expect.stringMatching(/^xdpfilt/)]);
    expect(await arrivals(v.peerIp, FILTERED_PORT)).toBe(0);
    const d = await vosctl('doctor', v.host, '--json');
    expect(d.code).toBe(3);
    const xdp = (JSON.parse(d.out) as { checks: Array<{ name: string; status: string; detail: string }> }).checks.find((c) => c.name === 'xdp');
    expect(xdp).toMatchObject({ status: 'fail', detail: expect.stringMatching(/xdpfilt.*will not replace it/), fix: expect.stringContaining(`xdp-filter unload ${v.host}`) });
  });

  it('vosctl detach removes only vos-fastpath: xdp-filter stays attached and dropping', async () => {
    const r = await vosctl('detach', v.host);
    expect(r.code).toBe(0);
    expect(await programs()).toEqual([expect.stringMatching(/^xdpfilt/)]);
    expect(await arrivals(v.peerIp, FILTERED_PORT)).toBe(0);
    expect(await arrivals(blockedIp, 5060)).toBe(5);
  });
});
