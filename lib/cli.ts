/**
 * vosctl: yargs wiring and the one place where errors become a message and an
 * exit status. Command modules live in lib/commands/, one per command.
 */
import yargs, { type Argv } from 'yargs';
import { closeAll, takeLateFailures } from './closers.js';
import { commands } from './commands/index.js';
import { UsageError, VosError } from './errors.js';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from './paths.js';
import { quoted } from './quote.js';

/** The package's version, from the package.json beside the install (or checkout). */
function packageVersion(): string {
  try {
    return (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

/**
 * `completion --shell bash|zsh`: yargs' completion command picks zsh from
 * $SHELL when the Argv is made, so the option is read here, set as SHELL, and
 * taken out of the arguments yargs sees. UsageError for another shell.
 */
export function completionShell(argv: string[]): string[] {
  if (!argv.includes('completion')) return argv;
  const i = argv.findIndex((a) => a === '--shell' || a.startsWith('--shell='));
  if (i < 0) return argv;
  const eq = argv[i]!.indexOf('=');
  const shell = eq >= 0 ? argv[i]!.slice(eq + 1) : argv[i + 1];
  if (shell !== 'bash' && shell !== 'zsh') throw new UsageError(`--shell ${quoted(shell ?? '')}: give bash or zsh`);
  process.env.SHELL = `/bin/${shell}`;
  return argv.filter((_, j) => j !== i && (eq >= 0 || j !== i + 1));
}

export function buildCli(argv: string[]): Argv {
  const width = Math.min(110, process.stdout.columns || 100);
  // yargs renders the command's help after every run, to cache it; wrapping
  // that text was about 10 ms of a `vosctl block`, so wrap only help we show.
  const helpAsked = argv.length === 0 || argv.includes('--help') || argv.includes('-h');
  let y = yargs(argv)
    .scriptName('vosctl')
    .usage('$0 <command> [options]\n\nDrop bad SIP traffic at the NIC: operate the vos-fastpath XDP blocklist.')
    .option('pin-dir', { type: 'string', describe: 'bpffs folder of the pinned maps [env VOS_PIN_DIR] (default /sys/fs/bpf/vos_fastpath)', global: true })
    .option('state-dir', { type: 'string', describe: 'where the blocklist is persisted [env VOS_STATE_DIR] (default /var/lib/vos-fastpath)', global: true })
    .option('config', { type: 'string', describe: 'JSON config file of defaults [env VOS_CONFIG] (default /etc/vos-fastpath/config.json if present)', global: true })
    .option('log-level', { type: 'string', describe: 'error, warn, info, debug [env VOS_LOG_LEVEL]', global: true })
    .option('log-format', { type: 'string', choices: ['json', 'text'], describe: 'log format on stderr (default: json unless stderr is a terminal)', global: true })
    .option('min-prefix', { type: 'number', describe: 'shortest IPv4 prefix that may be blocked, also for an IPv4 prefix through NAT64 (64:ff9b::/96 + n) [env VOS_MIN_PREFIX] (default 8)', global: true })
    .option('min-prefix6', { type: 'number', describe: 'shortest IPv6 prefix that may be blocked [env VOS_MIN_PREFIX6] (default 32)', global: true })
    .strict()
    .demandCommand(1, 'Name a command; vosctl --help lists them.')
    .recommendCommands()
    // `vosctl completion` prints the bash script (zsh's when SHELL is zsh); install-units installs both.
    .completion('completion', 'Print the shell completion script: vosctl completion >> ~/.bashrc (--shell bash|zsh; default from $SHELL)')
    .help()
    .alias('h', 'help')
    .version(packageVersion())
    .wrap(helpAsked ? width : null)
    .fail((msg, err, y) => {
      if (err) throw err;
      y.wrap(width);
      y.showHelp('error');
      throw new UsageError(msg);
    });
  for (const c of commands) y = y.command(c);
  return y;
}

export async function main(argv: string[]): Promise<number> {
  // A reader that went away (vosctl list | head) is not an error.
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw err;
  });
  try {
    await buildCli(completionShell(argv)).parseAsync();
    const late = takeLateFailures();
    for (const f of late) process.stderr.write(`vosctl: ${f.message}\n`);
    return late.length ? late[0]!.exitCode : Number(process.exitCode ?? 0);
  } catch (err) {
    if (err instanceof VosError) {
      process.stderr.write(`vosctl: ${err.message}\n`);
      return err.exitCode;
    }
    process.stderr.write(`vosctl: unexpected error: ${(err as Error).stack ?? String(err)}\n`);
    return 1;
  } finally {
    await closeAll();
  }
}
