/**
 * Whether this machine can run the kernel and broker tests. On a laptop a test
 * that cannot run is skipped with its reason; under CI=true nothing is skipped:
 * a missing capability fails the run instead.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { describe, it } from '@jest/globals';

function has(cmd: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

export function kernelMissing(): string | null {
  if (process.getuid?.() !== 0) return 'needs root (BPF, XDP and network namespaces)';
  if (!existsSync('/sys/fs/bpf')) return 'no bpffs at /sys/fs/bpf';
  if (!has('bpftool')) return 'bpftool is not installed (scripts/setup.sh installs it)';
  if (!has('ip')) return 'iproute2 is not installed';
  if (!existsSync('build/vos_fastpath.bpf.o')) return 'build/vos_fastpath.bpf.o is missing (run scripts/setup.sh)';
  return null;
}

type Body = () => void;

function gated(name: string, reason: string | null, body: Body): void {
  if (reason && process.env.CI === 'true') {
    describe(name, () => {
      it('can run here', () => {
        throw new Error(`CI=true but this suite cannot run: ${reason}`);
      });
    });
  } else if (reason) {
    describe.skip(`${name} [skipped: ${reason}]`, body);
  } else {
    describe(name, body);
  }
}

/** describe() for suites that need root, bpffs, bpftool and the built program. */
export function describeKernel(name: string, body: Body): void {
  gated(name, kernelMissing(), body);
}

export function describeWith(name: string, reason: string | null, body: Body): void {
  gated(name, reason, body);
}

/** Why the SIP peers of the end-to-end tests are missing, or null. */
export function sipPeersMissing(): string | null {
  for (const tool of ['kamailio', 'sipp', 'svmap', 'amqp-delete-queue']) if (!has(tool)) return `${tool} is not installed (scripts/setup.sh installs it)`;
  return null;
}
