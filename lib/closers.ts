/**
 * What a command leaves running (each Context's map server process), ended by
 * main() once the command is done, whether it succeeded or threw. Its own
 * module so that main() need not load the Context (winston, execa) to ask.
 */
const closers = new Set<() => Promise<void>>();

export function closeAtEnd(close: () => Promise<void>): void {
  closers.add(close);
}

export async function closeAll(): Promise<void> {
  const all = [...closers];
  closers.clear();
  await Promise.all(all.map((close) => close()));
}

/**
 * Failures found along the way that do not stop a command but must not let
 * it exit 0 (a damaged state file its writes did not touch): main() prints
 * each once the command is done and exits with the first one's code.
 */
const lateFailures = new Map<string, { message: string; exitCode: number }>();

export function failAtEnd(key: string, err: { message: string; exitCode: number }): void {
  lateFailures.set(key, err);
}

/** Forget a late failure (the condition was dealt with: a damaged file set aside). */
export function clearFailure(key: string): void {
  lateFailures.delete(key);
}

export function takeLateFailures(): Array<{ message: string; exitCode: number }> {
  const all = [...lateFailures.values()];
  lateFailures.clear();
  return all;
}
