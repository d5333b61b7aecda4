/**
 * vosctl doctor, the pure part: what a fact about the host means for an
 * attach, and how the report reads. lib/doctor/probe.ts gathers the facts.
 */

/** ok: fine; warn: an attach works, with a cost or a limit worth knowing; fail: an attach would not work. */
/** skip: not checked (no interface named); it neither passes nor fails. */
export type Status = 'ok' | 'warn' | 'fail' | 'skip';

export interface Check {
  /** Stable name, for --json readers: privileges, kernel, btf, bpffs, tools, ... */
  name: string;
  status: Status;
  /** What was found. */
  detail: string;
  /** What to do about it (absent when status is ok). */
  fix?: string;
}

/** Oldest kernel the program and helpers are tested against: bpf_ktime_get_boot_ns (5.8), map batch ops (5.6), freplace by link (5.10). */
export const MIN_KERNEL: readonly [number, number] = [5, 10];

/** "6.18.44-fc-v595" -> [6, 18]; null when the release is not dotted numbers. */
export function kernelVersion(release: string): [number, number] | null {
  const m = /^(\d+)\.(\d+)/.exec(release);
  return m ? [Number(m[1]), Number(m[2])] : null;
}

export function judgeKernel(release: string): Check {
  const v = kernelVersion(release);
  if (!v) return { name: 'kernel', status: 'warn', detail: `kernel ${release}: version not recognised`, fix: `vos-fastpath needs Linux ${MIN_KERNEL.join('.')} or later` };
  const old = v[0] < MIN_KERNEL[0] || (v[0] === MIN_KERNEL[0] && v[1] < MIN_KERNEL[1]);
  return old
    ? { name: 'kernel', status: 'fail', detail: `kernel ${release} is older than ${MIN_KERNEL.join('.')}`, fix: `upgrade to Linux ${MIN_KERNEL.join('.')} or later (Debian 12 ships 6.1)` }
    : { name: 'kernel', status: 'ok', detail: `kernel ${release}` };
}

/** CAP_NET_ADMIN and CAP_BPF bit numbers (linux/capability.h). */
export const CAP_NET_ADMIN = 12;
export const CAP_SYS_ADMIN = 21;
export const CAP_BPF = 39;

/** Capability names set in a CapEff hex mask, among the ones an attach needs. */
export function capabilities(capEffHex: string): string[] {
  const mask = BigInt(`0x${capEffHex.trim() || '0'}`);
  const names: Array<[number, string]> = [
    [CAP_NET_ADMIN, 'CAP_NET_ADMIN'],
    [CAP_SYS_ADMIN, 'CAP_SYS_ADMIN'],
    [CAP_BPF, 'CAP_BPF'],
  ];
  return names.filter(([bit]) => (mask >> BigInt(bit)) & 1n).map(([, n]) => n);
}

/**
 * The scripts (load.sh, the map writers) run bpftool and ip as root; a user
 * holding CAP_BPF and CAP_NET_ADMIN can read maps, but load.sh checks for uid 0.
 */
export function judgePrivileges(uid: number, caps: string[]): Check {
  if (uid === 0) return { name: 'privileges', status: 'ok', detail: `root (${caps.join(', ') || 'no capabilities'})` };
  const have = caps.length ? `holds ${caps.join(', ')}` : 'holds neither CAP_BPF nor CAP_NET_ADMIN';
  return {
    name: 'privileges',
    status: 'fail',
    detail: `running as uid ${uid}, not root; ${have}`,
    fix: 'run vosctl attach and the scripts as root (sudo vosctl ..., or the systemd units, which run as root)',
  };
}

/**
 * Drivers with native (driver-mode) XDP in mainline Linux: the ones that
 * implement ndo_bpf/XDP_SETUP_PROG (drivers/net/, 6.x). Anything else still
 * runs generic XDP (--mode skb).
 */
export const NATIVE_XDP_DRIVERS = new Set([
  'veth', 'virtio_net', 'tun', 'bond', 'netkit', 'xen-netfront', 'hv_netvsc',
  'mlx4_core', 'mlx4_en', 'mlx5_core', 'i40e', 'ice', 'ixgbe', 'ixgbevf', 'igb', 'igc', 'idpf',
  'bnxt_en', 'nfp', 'qede', 'ena', 'gve', 'sfc', 'sfc_siena', 'thunder-nicvf', 'nicvf', 'mvneta', 'mvpp2',
  'dpaa_eth', 'fsl_dpaa2_eth', 'fsl-dpaa2-eth', 'enetc', 'fec', 'stmmac', 'stmmaceth', 'ti-cpsw', 'cpsw', 'netsec', 'lan966x-switch',
  'rvu_nicpf', 'rvu_nicvf', 'octeontx2-nicpf', 'atlantic', 'txgbe', 'ngbe', 'mtk_soc_eth', 'bcmgenet', 'tsnep', 'funeth', 'am65-cpsw-nuss',
]);

export const SKB_MODE_COST =
  'generic XDP (--mode skb) runs after the kernel has built the socket buffer, so every packet it drops has already cost that allocation and the driver path: several times the CPU of a native drop, and a flood the NIC could shed natively reaches the stack';

/**
 * Link kinds that run no native XDP (no ndo_bpf): bridge, dummy and the
 * tunnel and stacked devices. An attach in native mode fails on them.
 */
export const NO_NATIVE_XDP = new Set(['bridge', 'dummy', 'macvlan', 'macvtap', 'ipvlan', 'ipvtap', 'vlan', '8021q', 'vxlan', 'geneve', 'gre', 'gretap', 'ip6gre', 'ip6gretap', 'ipip', 'ip6tnl', 'sit', 'vti', 'vti6', 'wireguard', 'team', 'vrf', 'ifb', 'nlmon', 'loopback']);

/**
 * Whether the attach mode (vosctl attach --mode, default native) works on
 * this driver: native on a kind without native XDP is a fail (the attach
 * would fail), on a driver not known either way a warning; skb always runs.
 */
export function judgeDriver(iface: string, driver: string | null, mode: 'native' | 'skb' = 'native'): Check {
  if (mode === 'skb') return { name: 'driver', status: 'ok', detail: `${iface}: driver ${driver ?? 'unknown'}, generic XDP (--mode skb) runs on any driver; ${SKB_MODE_COST}` };
  if (driver && NATIVE_XDP_DRIVERS.has(driver)) return { name: 'driver', status: 'ok', detail: `${iface}: driver ${driver}, native XDP supported` };
  if (driver && NO_NATIVE_XDP.has(driver)) {
    return { name: 'driver', status: 'fail', detail: `${iface}: ${driver} has no native XDP, so vosctl attach --mode native fails here`, fix: `attach with --mode skb (check it: vosctl doctor ${iface} --mode skb); ${SKB_MODE_COST}` };
  }
  return {
    name: 'driver',
    status: 'warn',
    detail: `${iface}: driver ${driver ?? 'unknown'} is not known to support native XDP`,
    fix: `attach with --mode skb if native fails; ${SKB_MODE_COST}`,
  };
}

/** One interface as `vfp-xdp list` prints it. */
export interface XdpIface {
  iface: string;
  mode: string;
  libxdp: boolean;
  programs: Array<{ id: number; name: string; priority: number }>;
}

export const OUR_PROGRAM = 'vfp_xdp';

/** What runs on the interface now, and whether vos-fastpath can join it. */
export function judgeXdp(iface: string, current: XdpIface | undefined, dispatcher: boolean): Check {
  if (!current || current.programs.length === 0) return { name: 'xdp', status: 'ok', detail: `${iface}: no XDP program attached` };
  const others = current.programs.filter((p) => p.name !== OUR_PROGRAM);
  const list = current.programs.map((p) => `${p.name} (id ${p.id}${current.libxdp ? `, priority ${p.priority}` : ''})`).join(', ');
  if (others.length === 0) return { name: 'xdp', status: 'ok', detail: `${iface}: vos-fastpath already attached (${current.mode} mode): an attach reloads it` };
  if (current.libxdp) return { name: 'xdp', status: 'ok', detail: `${iface}: libxdp dispatcher (${current.mode} mode) with ${list}: vos-fastpath joins it` };
  const off = detachCommand(iface, current.mode, others[0]!.name);
  return {
    name: 'xdp',
    status: 'fail',
    detail: `${iface}: ${list} attached without libxdp's dispatcher; vos-fastpath will not replace it`,
    fix: dispatcher
      ? `detach it (${off}) and load it again with xdp-loader (xdp-loader load ${iface} <obj>), then both share ${iface}`
      : `this kernel refuses freplace programs, so ${iface} runs one XDP program: detach it (${off}) to use vos-fastpath there`,
  };
}

/**
 * The command that removes a program from an interface: its owner's own
 * (xdp-filter's programs are named xdpfilt_*), else ip link's for the mode
 * it runs in (`xdp off` leaves a generic-mode program: ip-link(8)).
 */
export function detachCommand(iface: string, mode: string, name: string): string {
  if (name.startsWith('xdpfilt_')) return `xdp-filter unload ${iface}`;
  if (name === 'xdp_dispatcher') return `xdp-loader unload ${iface} --all`;
  const flag = mode === 'skb' ? 'xdpgeneric' : mode === 'offload' ? 'xdpoffload' : mode === 'native' ? 'xdpdrv' : 'xdp';
  return `ip link set dev ${iface} ${flag} off`;
}

export function judgeDispatcher(supported: boolean): Check {
  return supported
    ? { name: 'dispatcher', status: 'ok', detail: "libxdp's multi-program dispatcher works: vos-fastpath shares interfaces with xdp-filter and other libxdp programs" }
    : {
        name: 'dispatcher',
        status: 'warn',
        detail: "this kernel refuses freplace programs (BPF_PROG_TYPE_EXT), which libxdp's dispatcher needs: vos-fastpath attaches alone, and an interface already running another XDP program is refused",
        fix: 'a kernel with BPF trampolines allowed (not locked down against them) lets programs share an interface',
      };
}

export interface Report {
  /** No check failed. */
  ok: boolean;
  /** Names of the checks not done (status skip): ok then says nothing about them. */
  unchecked: string[];
  checks: Check[];
}

export function report(checks: Check[]): Report {
  return { ok: checks.every((c) => c.status !== 'fail'), unchecked: checks.filter((c) => c.status === 'skip').map((c) => c.name), checks };
}

const MARK: Record<Status, string> = { ok: 'ok  ', warn: 'warn', fail: 'FAIL', skip: 'skip' };

export function renderText(r: Report): string {
  const lines = r.checks.map((c) => `${MARK[c.status]}  ${c.name.padEnd(11)} ${c.detail}${c.fix ? `\n      ${' '.repeat(11)} fix: ${c.fix}` : ''}`);
  const failed = r.checks.filter((c) => c.status === 'fail').map((c) => c.name);
  const unchecked = r.checks.filter((c) => c.status === 'skip').map((c) => c.name);
  if (!r.ok) lines.push(`not ready: ${failed.join(', ')}`);
  else if (unchecked.length) lines.push(`ready as far as checked; not checked: ${unchecked.join(', ')} (name the interface: vosctl doctor <iface>)`);
  else lines.push('ready: an attach would work here');
  return lines.join('\n') + '\n';
}
