/**
 * What `vosctl install-units` writes, computed without touching the disk: the
 * systemd units and the config example of contrib/, pointed at the installed
 * package instead of the /opt/vos-fastpath they name in the checkout.
 */
import { join } from 'node:path';

export interface InstallFile {
  /** Absolute path under the target root. */
  path: string;
  content: string;
  mode: number;
  /** Keep an existing file (operator's configuration): written only when missing. */
  keepExisting?: boolean;
}

/** The folder contrib/systemd/ files name; the package's root replaces it. */
export const CHECKOUT_PREFIX = '/opt/vos-fastpath';

/**
 * @param root  where / is (an image being built, a test's temp folder); '/' on a host
 * @param pkg   the installed package's folder (holding bin/vosctl)
 * @param contrib  name -> text of each contrib/systemd/ file
 * @param completion  the bash and zsh completion scripts
 */
export function installPlan(root: string, pkg: string, contrib: Record<string, string>, completion: { bash: string; zsh: string }): InstallFile[] {
  const out: InstallFile[] = [];
  for (const [name, text] of Object.entries(contrib).sort()) {
    const content = text.replaceAll(CHECKOUT_PREFIX, pkg);
    if (/\.(service|timer)$/.test(name)) out.push({ path: join(root, 'etc/systemd/system', name), content, mode: 0o644 });
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
