/** Typed errors carry their exit code; lib/cli.ts turns them into message + exit status in one place. */

export class VosError extends Error {
  readonly exitCode: number = 1;
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}

/** Bad flags or a bad value from the operator: exit 2. */
export class UsageError extends VosError {
  override readonly exitCode = 2;
}

/** One or more inputs were refused (bad address, bad line); the good ones were applied: exit 2. */
export class BadInputError extends VosError {
  override readonly exitCode = 2;
}

/** The host is not ready: no maps pinned, no bpftool, not root: exit 3. */
export class EnvError extends VosError {
  override readonly exitCode = 3;
}

/** Something failed while doing the work (bpftool refused, broker gone): exit 1. */
export class RuntimeError extends VosError {
  override readonly exitCode = 1;
}

/** The attach flag that sizes a map: blocked_prefixes6 -> --prefix-capacity6. */
function capacityFlag(map: string): string {
  const name = map.slice(map.lastIndexOf('/') + 1);
  return `--${name.includes('prefixes') ? 'prefix' : 'block'}-capacity${name.endsWith('6') ? '6' : ''}`;
}

/** A map has no room left; carries the numbers an operator needs. */
export class MapFullError extends RuntimeError {
  /** The targets of this request that did reach the map before it filled (set by the blocklist layer). */
  appliedTargets: string[] = [];

  constructor(
    readonly map: string,
    readonly capacity: number,
    readonly applied: number,
    readonly wanted: number,
    message = `${map} is full: ${capacity} of ${capacity} entries in use; applied ${applied} of ${wanted}. Raise the capacity (detach --purge, attach ${capacityFlag(map)} N) or remove entries`,
  ) {
    super(message);
  }
}

/** What to add to a "permission denied": who may operate vos-fastpath. */
export const NEEDS_ROOT = 'vos-fastpath needs root (or the capabilities CAP_BPF and CAP_NET_ADMIN, and write access to the pin and state folders)';
