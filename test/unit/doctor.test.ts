import { describe, expect, it } from '@jest/globals';
import { capabilities, detachCommand, judgeDriver, judgeKernel, judgePrivileges, judgeXdp, kernelVersion, renderText, report } from '../../lib/doctor/judge.js';

describe('doctor judgements', () => {
  it('reads kernel releases and refuses kernels before 5.10', () => {
    expect(kernelVersion('6.18.44-fc-v595')).toEqual([6, 18]);
    expect(kernelVersion('garbage')).toBeNull();
    expect(judgeKernel('5.4.0-150-generic').status).toBe('fail');
    expect(judgeKernel('5.10.0').status).toBe('ok');
    expect(judgeKernel('x').status).toBe('warn');
  });

  it('names the capabilities of a CapEff mask', () => {
    expect(capabilities('000001fffeffffff')).toEqual(['CAP_NET_ADMIN', 'CAP_SYS_ADMIN', 'CAP_BPF']);
    expect(capabilities((1n << 39n).toString(16))).toEqual(['CAP_BPF']);
    expect(capabilities('0')).toEqual([]);
    expect(judgePrivileges(65534, []).status).toBe('fail');
  });

  it('joins a dispatcher, reloads itself, and refuses to replace a program attached without libxdp', () => {
    expect(judgeXdp('eth0', undefined, true).status).toBe('ok');
    expect(judgeXdp('eth0', { iface: 'eth0', mode: 'native', libxdp: true, programs: [{ id: 7, name: 'xdpfilt_alw_all', priority: 10 }] }, true).status).toBe('ok');
    expect(judgeXdp('eth0', { iface: 'eth0', mode: 'native', libxdp: false, programs: [{ id: 8, name: 'vfp_xdp', priority: 5 }] }, false).status).toBe('ok');
    const other = judgeXdp('eth0', { iface: 'eth0', mode: 'native', libxdp: false, programs: [{ id: 9, name: 'ddos', priority: 50 }] }, true);
    expect(other).toMatchObject({ status: 'fail', detail: expect.stringMatching(/ddos \(id 9\) attached without libxdp/), fix: expect.stringMatching(/xdp-loader load eth0/) });
    expect(judgeXdp('eth0', { iface: 'eth0', mode: 'native', libxdp: false, programs: [{ id: 9, name: 'ddos', priority: 50 }] }, false).fix).toMatch(/refuses freplace/);
  });

  it('is ready only without a failed check, and says which failed', () => {
    const r = report([{ name: 'bpffs', status: 'fail', detail: 'x', fix: 'mount' }, { name: 'btf', status: 'warn', detail: 'y' }]);
    expect(r.ok).toBe(false);
    expect(renderText(r)).toMatch(/FAIL  bpffs .*\n.*fix: mount\nwarn  btf .*\nnot ready: bpffs\n$/);
    expect(report([{ name: 'btf', status: 'warn', detail: 'y' }]).ok).toBe(true);
  });
});

describe('advice for another program on the interface', () => {
  it('names the owner\'s command, else ip link\'s flag for the mode it runs in', () => {
    expect(detachCommand('eth0', 'skb', 'ddos')).toBe('ip link set dev eth0 xdpgeneric off');
    expect(detachCommand('eth0', 'native', 'ddos')).toBe('ip link set dev eth0 xdpdrv off');
    expect(detachCommand('eth0', 'offload', 'ddos')).toBe('ip link set dev eth0 xdpoffload off');
    expect(detachCommand('eth0', 'skb', 'xdpfilt_dny_udp')).toBe('xdp-filter unload eth0');
    expect(detachCommand('eth0', 'native', 'xdp_dispatcher')).toBe('xdp-loader unload eth0 --all');
    expect(judgeXdp('eth0', { iface: 'eth0', mode: 'skb', libxdp: false, programs: [{ id: 9, name: 'ddos', priority: 50 }] }, false).fix).toContain('ip link set dev eth0 xdpgeneric off');
  });
});

describe('the driver judged for the attach mode', () => {
  it('a kind without native XDP fails native and passes skb; an unknown driver warns', () => {
    expect(judgeDriver('br0', 'bridge', 'native').status).toBe('fail');
    expect(judgeDriver('br0', 'bridge', 'skb').status).toBe('ok');
    expect(judgeDriver('eth0', 'r8169', 'native').status).toBe('warn');
    expect(judgeDriver('eth0', 'mlx5_core', 'native').status).toBe('ok');
  });
});
