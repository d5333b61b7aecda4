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
