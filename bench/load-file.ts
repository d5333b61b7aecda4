/**
 * Bulk import speed: `vosctl load-file` of 100,000 and 1,000,000 addresses,
 * IPv4 and then IPv6, beside `ipset restore` (hash:ip, family inet and inet6) and one `bpftool batch file` process
 * (scripts/block_ips_from_file.sh) on the same list, timed in the same run;
 * and one `vosctl block` beside `node -e ''` and a bare `bpftool map update`.
 * Then the state store against the code before SQLite (the parent of the
 * commit that added scripts/state.sql, built from git into a temp folder, or
 * REFERENCE=/path/to/a/built/checkout), step by step in the same run on the
 * same lists: load-file of the largest size, `--replace` with 10 % churn, one
 * `vosctl block` beside that state, and `attach` restoring it after a
 * simulated reboot.
 *
 * Run as root: npm run bench:load   (SIZES=100000,1000000 ROUNDS=5 to vary; SIZES= for the single block only)
 */
import { execa } from 'execa';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Lab, ROOT } from '../test/helpers/lab.js';
import { addr, median, timed } from './common.js';

/** The i-th of a run of distinct public-looking IPv6 addresses, in RFC 5952 text. */
const addr6 = (i: number): string => `2a00:${((i >>> 16) & 0xffff).toString(16)}::${(i & 0xffff).toString(16)}:1`;

const SIZES = (process.env.SIZES ?? '100000,1000000').split(',').filter(Boolean).map(Number);
const ROUNDS = Number(process.env.ROUNDS ?? 7);
const VOSCTL = join(ROOT, 'bin/vosctl');

async function must(cmd: string, args: string[], env: Record<string, string> = {}, input?: string): Promise<void> {
  const r = await execa(cmd, args, { env, input, reject: false });
  if (r.exitCode !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr}`);
}

async function bulk(n: number): Promise<void> {
  const lab = new Lab();
  const set = `vfp_bench_${lab.id}`;
  try {
    const list = join(lab.tmp, 'list.txt');
    const lines = Array.from({ length: n }, (_, i) => addr(i));
    writeFileSync(list, lines.join('\n') + '\n');
    const restore = join(lab.tmp, 'ipset.txt');
    writeFileSync(restore, `create ${set} hash:ip family inet hashsize ${Math.max(1024, n / 4)} maxelem ${n * 2}\n` + lines.map((l) => `add ${set} ${l}`).join('\n') + '\n');
    const cap = String(2 ** Math.ceil(Math.log2(n * 1.2)));

    const ipsetMs = await timed(() => execa('ipset', ['restore', '-file', restore]));
    await execa('ipset', ['destroy', set]);

    await lab.loadUnattached(['--block-capacity', cap]);
    const batchMs = await timed(() => must(join(ROOT, 'scripts/block_ips_from_file.sh'), [list], lab.env()));
    await execa('rm', ['-rf', lab.pinDir]);

    await lab.loadUnattached(['--block-capacity', cap]);
    const env = lab.env({ VOS_STATE_DIR: join(lab.tmp, 'state') });
    // As a cron job finds it: load-file has run before, so its code cache exists (lib/boot.ts).
    const none = join(lab.tmp, 'none.txt');
    writeFileSync(none, '# nothing\n');
    await must(VOSCTL, ['load-file', none, '--source', 'feed'], env);
    const vosMs = await timed(() => must(VOSCTL, ['load-file', list, '--source', 'feed'], env));

    console.log(`\nload ${n.toLocaleString('en')} addresses`);
    console.log(`  ipset restore (hash:ip)            ${(ipsetMs / 1000).toFixed(2)} s   reference`);
    console.log(`  block_ips_from_file.sh             ${(batchMs / 1000).toFixed(2)} s   ${(batchMs / ipsetMs).toFixed(2)}x ipset (scripts/block_ips_from_file.sh, which also writes its state rows)`);
    console.log(`  vosctl load-file                   ${(vosMs / 1000).toFixed(2)} s   ${(vosMs / ipsetMs).toFixed(2)}x ipset (goal < 1x)`);

    // The same count of IPv6 addresses (2a00::/16 space), same run, beside ipset's inet6 set and the IPv4 figure above.
    await execa('rm', ['-rf', lab.pinDir]);
    const list6 = join(lab.tmp, 'list6.txt');
    const lines6 = Array.from({ length: n }, (_, i) => addr6(i));
    writeFileSync(list6, lines6.join('\n') + '\n');
    writeFileSync(restore, `create ${set} hash:ip family inet6 hashsize ${Math.max(1024, n / 4)} maxelem ${n * 2}\n` + lines6.map((l) => `add ${set} ${l}`).join('\n') + '\n');
    const ipset6Ms = await timed(() => execa('ipset', ['restore', '-file', restore]));
    await execa('ipset', ['destroy', set]);
    await lab.loadUnattached(['--block-capacity', cap, '--block-capacity6', cap]);
    const batch6Ms = await timed(() => must(join(ROOT, 'scripts/block_ips_from_file.sh'), [list6], lab.env({ VOS_STATE_DIR: join(lab.tmp, 'state6s') })));
    await execa('rm', ['-rf', lab.pinDir]);
    await lab.loadUnattached(['--block-capacity', cap, '--block-capacity6', cap]);
    const env6 = lab.env({ VOS_STATE_DIR: join(lab.tmp, 'state6') });
    await must(VOSCTL, ['load-file', none, '--source', 'feed'], env6);
    const vos6Ms = await timed(() => must(VOSCTL, ['load-file', list6, '--source', 'feed'], env6));
    console.log(`load ${n.toLocaleString('en')} IPv6 addresses`);
    console.log(`  ipset restore (hash:ip inet6)      ${(ipset6Ms / 1000).toFixed(2)} s   reference`);
    console.log(`  block_ips_from_file.sh             ${(batch6Ms / 1000).toFixed(2)} s   ${(batch6Ms / ipset6Ms).toFixed(2)}x ipset inet6`);
    console.log(`  vosctl load-file                   ${(vos6Ms / 1000).toFixed(2)} s   ${(vos6Ms / ipset6Ms).toFixed(2)}x ipset inet6, ${(vos6Ms / vosMs).toFixed(2)}x the IPv4 load above`);

  } finally {
    await execa('ipset', ['destroy', set], { reject: false });
    await lab.cleanup();
  }
}

async function single(): Promise<void> {
  const lab = new Lab();
  try {
    await lab.loadUnattached();
    const env = lab.env({ VOS_STATE_DIR: join(lab.tmp, 'state') });
    const node: number[] = [];
    const block: number[] = [];
    const bpftool: number[] = [];
    // As on any host where vosctl has run before: block's code cache exists (lib/boot.ts).
    await must(VOSCTL, ['block', addr(ROUNDS)], env);
    for (let i = 0; i < ROUNDS; i++) {
      node.push(await timed(() => execa(process.execPath, ['-e', ''])));
      block.push(await timed(() => must(VOSCTL, ['block', addr(i)], env)));
      bpftool.push(await timed(() => must('bpftool', ['map', 'update', 'pinned', `${lab.pinDir}/blocked_ips`, 'key', '12', '0', '0', String(i + 1), 'value', ...Array(16).fill('0')])));
    }
    console.log(`\none block, median of ${ROUNDS}`);
    console.log(`  node -e ''                         ${median(node).toFixed(0)} ms   reference`);
    console.log(`  bpftool map update                 ${median(bpftool).toFixed(0)} ms`);
    console.log(`  vosctl block                       ${median(block).toFixed(0)} ms   ${(median(block) / median(node)).toFixed(2)}x node -e '' (goal <= 2x)`);
  } finally {
    await lab.cleanup();
  }
}

/** The checkout before SQLite, built: REFERENCE, or the parent of the commit that added scripts/state.sql, from git. */
async function reference(lab: Lab): Promise<string> {
  if (process.env.REFERENCE) return process.env.REFERENCE;
  const added = (await execa('git', ['-C', ROOT, 'log', '--diff-filter=A', '--format=%H', '--', 'scripts/state.sql'])).stdout.trim().split('\n').pop()!;
  const dir = join(lab.tmp, 'before');
  await execa('mkdir', ['-p', dir]);
  await execa('sh', ['-c', `git -C "$1" archive "$2^" | tar -x -C "$3"`, 'sh', ROOT, added, dir]);
  await execa('ln', ['-s', join(ROOT, 'node_modules'), join(dir, 'node_modules')]);
  await execa('make', ['-C', join(dir, 'xdp')]);
  await execa(join(ROOT, 'node_modules/.bin/tsc'), ['-p', join(dir, 'tsconfig.json')]);
  await execa('bash', [join(dir, 'scripts/bundle.sh')]);
  console.log(`\nreference: the code before SQLite, ${added.slice(0, 12)}^, built in ${dir}`);
  return dir;
}

/** The state store, ours and before SQLite, step by step on the same lists. */
async function againstBefore(n: number): Promise<void> {
  const lab = new Lab();
  try {
    const v = await lab.veth();
    const impls = [
      { name: 'before SQLite', root: await reference(lab) },
      { name: 'ours (SQLite)', root: ROOT },
    ].map((impl, i) => ({ ...impl, pinDir: `${lab.pinDir}_${i}`, env: lab.env({ VOS_PIN_DIR: `${lab.pinDir}_${i}`, VOS_STATE_DIR: join(lab.tmp, `state${i}`) }) }));
    for (const impl of impls) lab.defer(`pins ${impl.pinDir}`, () => execa('rm', ['-rf', impl.pinDir]));
    const lines = Array.from({ length: n }, (_, i) => addr(i));
    const list = join(lab.tmp, 'list.txt');
    writeFileSync(list, lines.join('\n') + '\n');
    const churn = n / 10;
    const next = join(lab.tmp, 'next.txt');
    writeFileSync(next, [...lines.slice(churn), ...Array.from({ length: churn }, (_, i) => addr(n + i))].join('\n') + '\n');
    const none = join(lab.tmp, 'none.txt');
    writeFileSync(none, '# nothing\n');
    const cap = String(2 ** Math.ceil(Math.log2(n * 1.2 + churn)));
    const vosctl = (impl: (typeof impls)[number], args: string[]) => must(join(impl.root, 'bin/vosctl'), args, impl.env);
    const rows: Record<string, number[]> = { load: [], replace: [], block: [], node: [], attach: [] };
    for (const impl of impls) {
      await must(join(impl.root, 'scripts/load.sh'), ['--no-attach', '--block-capacity', cap], impl.env);
      await vosctl(impl, ['load-file', none, '--source', 'feed']); // code cache, as on a host where it ran before
    }
    for (const impl of impls) rows.load!.push(await timed(() => vosctl(impl, ['load-file', list, '--source', 'feed'])));
    for (const impl of impls) rows.replace!.push(await timed(() => vosctl(impl, ['load-file', next, '--source', 'feed', '--replace'])));
    const blocks: number[][] = impls.map(() => []);
    const node: number[] = [];
    for (let i = 0; i < ROUNDS; i++) {
      node.push(await timed(() => execa(process.execPath, ['-e', ''])));
      for (const [k, impl] of impls.entries()) blocks[k]!.push(await timed(() => vosctl(impl, ['block', addr(3 * n + i)])));
    }
    rows.block = blocks.map(median);
    // Reboot: bpffs emptied, then attach restores the state (each implementation in turn on the lab's veth).
    for (const impl of impls) {
      await execa('rm', ['-rf', impl.pinDir]);
      rows.attach!.push(await timed(() => vosctl(impl, ['attach', v.host, '--block-capacity', cap])));
      await must(join(impl.root, 'scripts/unload.sh'), [v.host], impl.env);
    }
    const f = (ms: number) => (ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${ms.toFixed(0)} ms`);
    const row = (label: string, ms: number[], extra = '') => console.log(`  ${label.padEnd(44)} ours ${f(ms[1]!).padStart(8)}   before SQLite ${f(ms[0]!).padStart(8)}   ${(ms[1]! / ms[0]!).toFixed(2)}x${extra}`);
    console.log(`\nstate store, ${n.toLocaleString('en')} entries, same run`);
    row(`load-file ${n.toLocaleString('en')}`, rows.load!);
    row('load-file --replace, 10 % churn', rows.replace!);
    row(`one block beside the state (median of ${ROUNDS})`, rows.block, `   node -e '' ${f(median(node))}: ours ${(rows.block[1]! / median(node)).toFixed(2)}x node (goal <= 2x)`);
    row(`attach restoring ${n.toLocaleString('en')}`, rows.attach!);
  } finally {
    await lab.cleanup();
  }
}

await single();
for (const n of SIZES) await bulk(n);
if (SIZES.length) await againstBefore(Math.max(...SIZES));
