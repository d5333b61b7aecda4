/**
 * What `vosctl install-units` writes, computed without touching the disk: the
 * systemd units and the config example of contrib/, pointed at the installed
 * package instead of the /opt/vos-fastpath they name in the checkout.
 */
import { createHash } from 'node:crypto';
import { isAbsolute, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { UsageError } from '../errors.js';

export interface InstallFile {
  /** Absolute path under the target root. */
  path: string;
  content: string;
  mode: number;
  /** Keep an existing file (operator's configuration): written only when missing. */
  keepExisting?: boolean;
}

/**
 * The --root value as a folder: '' is refused (UsageError, exit 2: it would
 * mean the live system by accident); a relative one is resolved against the
 * working folder, and `note` says so.
 */
export function targetRoot(root: string, cwd: string): { root: string; note?: string } {
  if (root.trim() === '') throw new UsageError("--root '' is empty: give the folder to install below (/ for this host)");
  if (isAbsolute(root)) return { root: resolve(root) };
  const abs = resolve(cwd, root);
  return { root: abs, note: `--root ${root} is relative: installing below ${abs}` };
}

/** Where install-units records what it wrote (sha256 and path a line), so a later run can tell an admin's edit from its own file. */
export const MANIFEST = 'etc/vos-fastpath/installed-files.sha256';

export const sha256 = (text: string | Buffer): string => createHash('sha256').update(text).digest('hex');

/** The manifest's text, parsed: path -> sha256 of what install-units wrote there. */
export function parseManifest(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split('\n')) {
    const m = /^([0-9a-f]{64}) {2}(.+)$/.exec(line);
    if (m) out.set(m[2]!, m[1]!);
  }
  return out;
}

/**
 * What to do with one planned file given what is on disk: 'write' (missing,
 * ours unchanged, or --force), 'same' (already identical), 'keep' (the
 * operator's config, kept), 'changed' (edited since install-units wrote it,
 * or not written by it: refused without --force).
 */
export function decide(f: InstallFile, existing: string | undefined, recorded: string | undefined, force: boolean): 'write' | 'same' | 'keep' | 'changed' {
  if (existing === undefined) return 'write';
  if (f.keepExisting) return 'keep';
  if (existing === f.content) return 'same';
  if (force || (recorded !== undefined && sha256(existing) === recorded)) return 'write';
  return 'changed';
}

/** The folder contrib/systemd/ files name; the package's root replaces it. */
export const CHECKOUT_PREFIX = '/opt/vos-fastpath';

/**
 * One word of a unit's command line naming `path`, per systemd.syntax(7) and
 * systemd.service(5): % doubled (specifiers), $ doubled (variables), and the
 * word double-quoted with \\ and \" escaped when it holds a space or quote.
 */
export function systemdWord(path: string): string {
  const s = path.replaceAll('%', '%%').replaceAll('$', '$$$$');
  return /[\s"'\\]/.test(s) ? `"${s.replaceAll('\\', '\\\\').replaceAll('"', '\\"')}"` : s;
}

/** A word for sh: as it is when plain, else single-quoted. */
export function shellWord(s: string): string {
  return /^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replaceAll("'", "'\\''")}'`;
}

/** contrib/ examples (beside the units) that name the package's path; install-units installs them pointed at it. */
export const EXAMPLES = ['cron/vos-fastpath.cron', 'crowdsec/crowdsec-custom-bouncer.yaml', 'fail2ban/jail.d/vos-fastpath-kamailio.conf', 'fail2ban/action.d/vos-fastpath.conf'];

/** A contrib unit pointed at the package: its file:// URLs encoded, its command words escaped. */
function unitText(text: string, pkg: string): string {
  return text
    .replaceAll(`file://${CHECKOUT_PREFIX}/README.md`, pathToFileURL(join(pkg, 'README.md')).href.replaceAll('%', '%%'))
    .replace(new RegExp(`${CHECKOUT_PREFIX}(\\S*)`, 'g'), (_, rest: string) => systemdWord(pkg + rest));
}

/**
 * @param root  where / is (an image being built, a test's temp folder); '/' on a host
 * @param pkg   the installed package's folder (holding bin/vosctl)
 * @param contrib  name -> text of each contrib/systemd/ file
 * @param completion  the bash and zsh completion scripts
 */
export function installPlan(root: string, pkg: string, contrib: Record<string, string>, completion: { bash: string; zsh: string }, examples: Record<string, string> = {}): InstallFile[] {
  const out: InstallFile[] = [];
  // The other contrib examples that name the package's path, pointed at it, to copy where they go
  // (cron.d, CrowdSec, fail2ban); a cron line runs through sh, so its words are shell-quoted.
  for (const [rel, text] of Object.entries(examples).sort()) {
    const content = rel.endsWith('.cron') ? text.replace(new RegExp(`${CHECKOUT_PREFIX}(\\S*)`, 'g'), (_, rest: string) => shellWord(pkg + rest)) : text.replaceAll(CHECKOUT_PREFIX, pkg);
    out.push({ path: join(root, 'etc/vos-fastpath/examples', rel), content, mode: 0o644 });
  }
  for (const [name, text] of Object.entries(contrib).sort()) {
    const unit = /\.(service|timer)$/.test(name);
    const content = unit ? unitText(text, pkg) : text.replaceAll(CHECKOUT_PREFIX, pkg);
    if (unit) out.push({ path: join(root, 'etc/systemd/system', name), content, mode: 0o644 });
    else if (name === 'consume.env.example') {
      out.push({ path: join(root, 'etc/vos-fastpath', name), content, mode: 0o644 });
      // The live file holds the broker password: root only, and never overwritten.
      out.push({ path: join(root, 'etc/vos-fastpath/consume.env'), content, mode: 0o600, keepExisting: true });
    }
  }
  out.push({ path: join(root, 'usr/share/bash-completion/completions/vosctl'), content: completion.bash, mode: 0o644 });
  out.push({ path: join(root, 'usr/share/zsh/vendor-completions/_vosctl'), content: completion.zsh, mode: 0o644 });
  return out;
}
