/**
 * Bulk import speed: `vosctl load-file` of 100,000 and 1,000,000 addresses
 * beside `ipset restore` (hash:ip) and one `bpftool batch file` process
 * (scripts/block_ips_from_file.sh) on the same list, timed in the same run;
 * `--replace` with 10 % churn on 1,000,000; and one `vosctl block` beside
 * `node -e ''` and a bare `bpftool map update`.
 *
 * Run as root: npm run bench:load   (SIZES=100000,1000000 ROUNDS=5 to vary; SIZES= for the single block only)
 */
import { execa } from 'execa';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Lab, ROOT } from '../test/helpers/lab.js';
import { addr, median, timed } from './measure.js';

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
    console.log(`  one bpftool batch file process     ${(batchMs / 1000).toFixed(2)} s   ${(batchMs / ipsetMs).toFixed(2)}x ipset (floor: scripts/block_ips_from_file.sh)`);
    console.log(`  vosctl load-file                   ${(vosMs / 1000).toFixed(2)} s   ${(vosMs / ipsetMs).toFixed(2)}x ipset (goal < 1x)`);

    if (n >= 1_000_000) {
      // 10 % churn: drop the first tenth, add as many new addresses.
      const churn = n / 10;
      const next = join(lab.tmp, 'next.txt');
      writeFileSync(next, [...lines.slice(churn), ...Array.from({ length: churn }, (_, i) => addr(n + i))].join('\n') + '\n');
      const replaceMs = await timed(() => must(VOSCTL, ['load-file', next, '--source', 'feed', '--replace'], env));
      const status = JSON.parse((await execa(VOSCTL, ['status', '--json'], { env })).stdout) as { maps: Array<{ name: string; entries: number }> };
      const listed = status.maps.find((m) => m.name === 'blocked_ips')!.entries;
      console.log(`  vosctl load-file --replace, 10 % churn  ${(replaceMs / 1000).toFixed(2)} s   (${listed.toLocaleString('en')} entries after, expected ${n.toLocaleString('en')})`);
      // A block by hand on a host that holds this feed: the state is large now.
      const oneBlock: number[] = [];
      for (let i = 0; i < ROUNDS; i++) oneBlock.push(await timed(() => must(VOSCTL, ['block', addr(2 * n + i)], env)));
      console.log(`  one vosctl block beside these ${n.toLocaleString('en')} entries  ${median(oneBlock).toFixed(0)} ms   (median of ${ROUNDS})`);
    }
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

await single();
for (const n of SIZES) await bulk(n);
