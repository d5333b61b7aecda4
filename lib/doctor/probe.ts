/**
 * vosctl doctor, the part that looks at the host: runs each probe and hands
 * the facts to lib/doctor/judge.ts. Reads only; the one write is a temporary
 * file in the state folder, removed at once.
 */
import { execa } from 'execa';
import { accessSync, closeSync, constants, existsSync, fsyncSync, openSync, readFileSync, readlinkSync, readSync, rmSync, statfsSync, writeSync } from 'node:fs';
import { release } from 'node:os';
import { basename, dirname, join } from 'node:path';
import type { Settings } from '../settings.js';
import { MAP_COUNT_OBJECT, MAPTOOL, XDP_OBJECT, XDP_TOOL } from '../paths.js';
import { loadSqliteAddon } from '../state.js';
import { capabilities, judgeDispatcher, judgeDriver, judgeKernel, judgePrivileges, judgeXdp, type Check, type XdpIface } from './judge.js';
import { quoted } from '../quote.js';

/** statfs(2) f_type of a bpf filesystem (linux/magic.h BPF_FS_MAGIC). */
const BPF_FS_MAGIC = 0xcafe4a11;

export interface DoctorOptions {
  iface?: string;
  /** The attach mode to judge the interface for (vosctl attach --mode; default native). */
  mode?: 'native' | 'skb';
  /** Check the broker: a URL was configured (flag, environment or config file). */
  brokerConfigured: boolean;
}

async function run(cmd: string, args: string[]): Promise<{ ok: boolean; out: string }> {
  const r = await execa(cmd, args, { reject: false, timeout: 10_000 });
  return { ok: r.exitCode === 0, out: `${r.stdout}\n${r.stderr}`.trim() };
}

function nearestExisting(path: string): string {
  let p = path;
  while (!existsSync(p) && p !== dirname(p)) p = dirname(p);
  return p;
}

/**
 * The pin folder as load.sh treats it: on a bpffs already: ok; below
 * /sys/fs/bpf with no bpffs mounted there: load.sh mounts one (warn: it is
 * gone after a reboot unless mounted at boot); elsewhere and not on a bpffs:
 * fail (pins cannot be made there, and detach --purge refuses it).
 */
export function checkBpffs(pinDir: string): Check {
  const at = nearestExisting(pinDir);
  let type = 0;
  try {
    type = Number(statfsSync(at).type);
  } catch (err) {
    return { name: 'bpffs', status: 'fail', detail: `cannot stat ${at}: ${(err as Error).message}`, fix: 'mount -t bpf bpf /sys/fs/bpf' };
  }
  if (type === BPF_FS_MAGIC) return { name: 'bpffs', status: 'ok', detail: `pin folder ${pinDir} is on a bpffs` };
  const boot = 'systemd mounts it at boot; elsewhere add "bpf /sys/fs/bpf bpf defaults 0 0" to /etc/fstab';
  if (pinDir.startsWith('/sys/fs/bpf/')) {
    return { name: 'bpffs', status: 'warn', detail: `no bpffs mounted on /sys/fs/bpf yet: vosctl attach (load.sh) mounts it for the pin folder ${pinDir}`, fix: `mount -t bpf bpf /sys/fs/bpf now, and at boot (${boot})` };
  }
  return {
    name: 'bpffs',
    status: 'fail',
    detail: `the pin folder ${pinDir} is not on a bpf filesystem (${at} is not), and attach mounts one only on /sys/fs/bpf: the maps cannot be pinned there`,
    fix: `use a pin folder below /sys/fs/bpf, or mount a bpffs there first (mount -t bpf bpf ${at})`,
  };
}

/** What the probe writes: a database page run and its journal, about what a first block writes. */
const PROBE_BYTES = 64 * 1024;

/**
 * The state folder takes a real write as the state does: PROBE_BYTES written
 * and fsync'ed in a temporary file (an empty file is created even on a full
 * disk), then removed. Fail names the errno (ENOSPC, EROFS, EACCES).
 */
export function checkStateDir(stateDir: string): Check {
  const at = nearestExisting(stateDir);
  const probe = join(at, `.vosctl-doctor-${process.pid}`);
  let fd: number | undefined;
  try {
    fd = openSync(probe, 'wx', 0o600);
    writeSync(fd, Buffer.alloc(PROBE_BYTES, 0x5a));
    fsyncSync(fd);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
    const why: Record<string, string> = { ENOSPC: 'the file system is full', EROFS: 'the file system is read-only', EACCES: 'permission denied', EDQUOT: 'the disk quota is exhausted' };
    return {
      name: 'state',
      status: 'fail',
      detail: `state folder ${stateDir} cannot be written (${at}: ${why[code] ? `${why[code]}, ` : ''}${code})`,
      fix: code === 'ENOSPC' || code === 'EDQUOT' ? `free space on the file system of ${at}` : `make ${at} writable for the user running vosctl, or point --state-dir / VOS_STATE_DIR at a writable folder`,
    };
  } finally {
    if (fd !== undefined) closeSync(fd);
    // Only a file it made: without search permission there is nothing to remove.
    if (fd !== undefined) rmSync(probe, { force: true });
  }
  return { name: 'state', status: 'ok', detail: at === stateDir ? `state folder ${stateDir} writable` : `state folder ${stateDir} will be created in ${at} (writable)` };
}

async function checkTools(): Promise<Check[]> {
  const out: Check[] = [];
  const bpftool = await run('bpftool', ['version']).catch(() => ({ ok: false, out: '' }));
  const libbpf = /libbpf v?([\d.]+)/.exec(bpftool.out)?.[1];
  out.push(
    bpftool.ok
      ? { name: 'bpftool', status: 'ok', detail: `${bpftool.out.split('\n')[0]}${libbpf ? `, libbpf ${libbpf}` : ''}` }
      : { name: 'bpftool', status: 'fail', detail: 'bpftool not found', fix: 'apt-get install bpftool' },
  );
  const missing: string[] = [];
  for (const [tool, pkg] of [['ip', 'iproute2'], ['jq', 'jq']] as const) {
    if (!(await run('sh', ['-c', `command -v ${tool}`])).ok) missing.push(`${tool} (apt-get install ${pkg})`);
  }
  out.push(missing.length ? { name: 'tools', status: 'fail', detail: `missing ${missing.join(', ')}`, fix: 'install the Debian packages named' } : { name: 'tools', status: 'ok', detail: 'ip, jq' });
  out.push(checkFiles());
  return out;
}

/**
 * What attach and the commands run, each as it is used: the BPF objects
 * readable ELF files, the helpers executable, the SQLite addon loadable.
 */
export function checkFiles(): Check {
  const bad: string[] = [];
  for (const f of [XDP_OBJECT, MAP_COUNT_OBJECT]) {
    try {
      const head = Buffer.alloc(4);
      const fd = openSync(f, 'r');
      readSync(fd, head, 0, 4, 0);
      closeSync(fd);
      if (!head.equals(Buffer.from([0x7f, 0x45, 0x4c, 0x46]))) bad.push(`${f} is not an ELF object`);
    } catch (err) {
      bad.push(`${f}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'missing' : (err as Error).message}`);
    }
  }
  for (const f of [XDP_TOOL, MAPTOOL]) {
    if (!existsSync(f)) bad.push(`${f}: missing`);
    else {
      try {
        accessSync(f, constants.X_OK);
      } catch {
        bad.push(`${f}: not executable (chmod 755 ${f})`);
      }
    }
  }
  try {
    loadSqliteAddon();
  } catch (err) {
    bad.push((err as Error).message);
  }
  return bad.length
    ? { name: 'files', status: 'fail', detail: bad.join('; '), fix: 'reinstall the package, or build in the checkout with make -C xdp (scripts/install.sh)' }
    : { name: 'files', status: 'ok', detail: `XDP object and helpers in ${dirname(XDP_TOOL)}` };
}

/** vfp-xdp probe: also proves libbpf and libxdp load (the helper links both). */
async function probeDispatcher(root: boolean): Promise<{ checks: Check[]; supported: boolean }> {
  if (!existsSync(XDP_TOOL)) return { checks: [], supported: false };
  const r = await run(XDP_TOOL, ['probe']).catch((err: Error) => ({ ok: false, out: err.message }));
  const lib = /error while loading shared libraries: (\S+?):/.exec(r.out)?.[1];
  if (!r.ok) {
    return {
      checks: [{ name: 'libbpf', status: 'fail', detail: lib ? `${lib} is missing` : `${XDP_TOOL} does not run: ${r.out}`, fix: 'apt-get install libbpf1 libxdp1' }],
      supported: false,
    };
  }
  const checks: Check[] = [{ name: 'libbpf', status: 'ok', detail: 'libbpf and libxdp load' }];
  const supported = /dispatcher yes/.test(r.out);
  checks.push(root ? judgeDispatcher(supported) : { name: 'dispatcher', status: 'warn', detail: 'not checked: probing program types needs root' });
  return { checks, supported };
}

function driverOf(iface: string, kind: string | undefined): string | null {
  try {
    return basename(readlinkSync(`/sys/class/net/${iface}/device/driver`));
  } catch {
    return kind ?? null; // virtual devices (veth, bond, tun) have no device link: their link kind names the driver
  }
}

async function checkIface(iface: string, root: boolean, dispatcher: boolean, mode: 'native' | 'skb'): Promise<Check[]> {
  const link = await run('ip', ['-j', '-d', 'link', 'show', 'dev', iface]);
  if (!link.ok) return [{ name: 'interface', status: 'fail', detail: `no interface ${quoted(iface)}`, fix: 'name an interface of this host (ip link)' }];
  const info = (JSON.parse(link.out.split('\n')[0]!) as Array<{ linkinfo?: { info_kind?: string } }>)[0];
  const out = [judgeDriver(iface, iface === 'lo' ? 'loopback' : driverOf(iface, info?.linkinfo?.info_kind), mode)];
  if (!root) {
    out.push({ name: 'xdp', status: 'warn', detail: `${iface}: programs not listed: needs root` });
    return out;
  }
  const r = await run(XDP_TOOL, ['list', iface]);
  if (!r.ok) return [...out, { name: 'xdp', status: 'fail', detail: `cannot list the XDP programs on ${iface}: ${r.out}` }];
  const current = (JSON.parse(r.out.split('\n')[0]!) as XdpIface[])[0];
  out.push(judgeXdp(iface, current, dispatcher));
  return out;
}

async function checkBroker(s: Settings): Promise<Check> {
  const { brokerAccess, connectBroker, openRefusal, readPasswordFile, redactUrl, splitUrls } = await import('../consume/broker.js');
  const { classifyBrokerError } = await import('../consume/faults.js');
  const url = splitUrls([s.amqpUrl])[0]!; // a cluster's list (consume --url): its first node, read as consume reads it
  const shown = redactUrl(url);
  // An unreadable or empty password file is a usage error (exit 2), as for consume.
  const password = s.amqpPasswordFile ? readPasswordFile(s.amqpPasswordFile) : undefined;
  let access;
  try {
    access = brokerAccess(url, password, s.amqpCaFile);
    const conn = await connectBroker(access, 'vosctl doctor');
    await conn.close();
    return { name: 'broker', status: 'ok', detail: `${shown} accepts the configured credentials` };
  } catch (err) {
    const e = err as Error;
    const refused = access && /Expected ConnectionOpenOk; got <ConnectionClose/.test(e.message) ? await openRefusal(access) : undefined;
    const fault: import('../consume/faults.js').Fault = access ? classifyBrokerError(e, access.endpoint, refused) : { kind: 'transient', message: e.message };
    const permanent = fault.kind === 'permanent';
    return {
      name: 'broker',
      status: 'fail',
      detail: `${shown}: ${fault.message}`,
      fix: permanent && fault.fix?.startsWith('fix the URL') ? 'check the URL\'s scheme against the port: amqps:// for the broker\'s TLS listener (5671 by default), amqp:// for a plain one' : permanent ? 'check the user and password (VOS_AMQP_URL, --password-file), the vhost and the user\'s permissions on it (rabbitmqctl list_permissions -p VHOST)' : 'check the URL, that the broker runs and that this host reaches it (amqps needs --ca-file for a private CA)',
    };
  }
}

export async function doctor(s: Settings, o: DoctorOptions): Promise<Check[]> {
  const uid = process.getuid?.() ?? -1;
  const root = uid === 0;
  const capEff = /^CapEff:\s*([0-9a-f]+)/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1] ?? '0';
  const checks: Check[] = [judgePrivileges(uid, capabilities(capEff)), judgeKernel(release())];
  checks.push(
    existsSync('/sys/kernel/btf/vmlinux')
      ? { name: 'btf', status: 'ok', detail: 'kernel BTF at /sys/kernel/btf/vmlinux' }
      : { name: 'btf', status: 'warn', detail: 'no /sys/kernel/btf/vmlinux: libxdp\'s dispatcher cannot run, so vos-fastpath attaches alone', fix: 'a kernel built with CONFIG_DEBUG_INFO_BTF=y (Debian\'s is)' },
  );
  checks.push(checkBpffs(s.pinDir));
  checks.push(...(await checkTools()));
  const d = await probeDispatcher(root);
  checks.push(...d.checks);
  if (o.iface) checks.push(...(await checkIface(o.iface, root, d.supported, o.mode ?? 'native')));
  else {
    for (const [name, what] of [['driver', "the interface's driver and native XDP"], ['xdp', 'the XDP programs already on the interface']] as const) {
      checks.push({ name, status: 'skip', detail: `not checked: ${what} (no interface named: vosctl doctor <iface>)` });
    }
  }
  checks.push(checkStateDir(s.stateDir));
  if (o.brokerConfigured) checks.push(await checkBroker(s));
  return checks;
}
