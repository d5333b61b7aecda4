/**
 * scripts/cluster_sync_blocklist.sh against two real sshd instances, each in
 * its own namespace acting as a node with its own pin folder and state.
 */
import { afterAll, beforeAll, expect, it } from '@jest/globals';
import { execa } from 'execa';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describeWith, kernelMissing } from '../helpers/env.js';
import { Lab, ROOT, type Veth } from '../helpers/lab.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface SshNode {
  veth: Veth;
  pinDir: string;
  stateDir: string;
}

function sshdMissing(): string | null {
  return existsSync('/usr/sbin/sshd') ? null : 'sshd is not installed (scripts/setup.sh installs openssh-server)';
}

describeWith('cluster_sync_blocklist.sh over SSH to two nodes', kernelMissing() ?? sshdMissing(), () => {
  let lab: Lab;
  const nodes: SshNode[] = [];
  let sshOpts: string;

  const nodeEnv = (n: SshNode) => ({ VOS_PIN_DIR: n.pinDir, VOS_STATE_DIR: n.stateDir, VOS_LOG_FORMAT: 'json' });
  const vosctl = async (n: SshNode, ...args: string[]) => {
    const r = await execa(join(ROOT, 'bin/vosctl'), args, { env: nodeEnv(n), reject: false });
    if (r.exitCode !== 0) throw new Error(`vosctl ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };
  const list = async (n: SshNode) => (JSON.parse(await vosctl(n, 'list', '--json')) as Array<{ ip: string; source: string }>).map((e) => `${e.ip} ${e.source}`).sort();
  const sync = (args: string[], env: Record<string, string> = {}) =>
    execa(join(ROOT, 'scripts/cluster_sync_blocklist.sh'), args, { reject: false, env: { VOS_SSH_OPTS: sshOpts, VOS_REMOTE_VOSCTL: join(ROOT, 'bin/vosctl'), ...env } });

  beforeAll(async () => {
    lab = new Lab();
    const keys = join(lab.tmp, 'ssh');
    mkdirSync(keys, { mode: 0o700 });
    await execa('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(keys, 'host')]);
    await execa('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(keys, 'client')]);
    await execa('cp', [join(keys, 'client.pub'), join(keys, 'authorized_keys')]);
    mkdirSync('/run/sshd', { recursive: true }); // sshd's privilege separation folder
    for (const name of ['n1', 'n2']) {
      const veth = await lab.veth();
      const n: SshNode = { veth, pinDir: `${lab.pinDir}_${name}`, stateDir: join(lab.tmp, `state-${name}`) };
      lab.defer(`pin folder ${n.pinDir}`, async () => rmSync(n.pinDir, { recursive: true, force: true }));
      await execa(join(ROOT, 'scripts/load.sh'), ['--no-attach'], { env: { VOS_PIN_DIR: n.pinDir } });
      const config = join(lab.tmp, `sshd_${name}.conf`);
      writeFileSync(
        config,
        [
          `ListenAddress ${veth.peerIp}`,
          'Port 22',
          `HostKey ${join(keys, 'host')}`,
          `AuthorizedKeysFile ${join(keys, 'authorized_keys')}`,
          `PidFile ${join(lab.tmp, `sshd_${name}.pid`)}`,
          'PermitRootLogin prohibit-password',
          'PasswordAuthentication no',
          'KbdInteractiveAuthentication no',
          'UsePAM no',
          'StrictModes no',
          // this node's own pin folder and state: what a real node has by default
          `SetEnv VOS_PIN_DIR=${n.pinDir} VOS_STATE_DIR=${n.stateDir} VOS_LOG_FORMAT=json`,
          '',
        ].join('\n'),
      );
      // nsenter switches the network namespace only: ip netns exec would remount /sys and hide bpffs from the node.
      lab.spawn('nsenter', [`--net=/run/netns/${veth.ns}`, '/usr/sbin/sshd', '-D', '-e', '-f', config]);
      nodes.push(n);
    }
    sshOpts = `-i ${join(keys, 'client')} -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR`;
    for (const n of nodes) {
      for (let i = 0; i < 50; i++) {
        const r = await execa('ssh', [...sshOpts.split(' '), '-o', 'BatchMode=yes', `root@${n.veth.peerIp}`, 'true'], { reject: false });
        if (r.exitCode === 0) break;
        await sleep(100);
      }
    }
  }, 60_000);
  afterAll(() => lab?.cleanup());

  it('applies the list on every node as the whole set of its source, keeping other sources', async () => {
    await vosctl(nodes[0]!, 'block', '198.51.100.200'); // manual on node 1: must stay
    const file = join(lab.tmp, 'feed.txt');
    writeFileSync(file, '# threat feed\n203.0.113.1\n203.0.113.2\n198.18.0.0/15\n');
    const hosts = nodes.map((n) => `root@${n.veth.peerIp}`);
    const r1 = await sync([file, '--source', 'threatfeed', ...hosts]);
    expect(r1.exitCode).toBe(0);
    for (const h of hosts) expect(r1.stdout).toContain(`${h}: ok:`);
    expect(r1.stdout).toContain("3 entries of source 'threatfeed' to 2 hosts: 2 ok, 0 failed");
    const want = ['198.18.0.0/15 threatfeed', '203.0.113.1 threatfeed', '203.0.113.2 threatfeed'];
    expect(await list(nodes[1]!)).toEqual(want);
    expect(await list(nodes[0]!)).toEqual([...want, '198.51.100.200 manual'].sort());

    // The next feed drops one address and adds one: replaced on both, hosts from the environment.
    writeFileSync(file, '203.0.113.2\n203.0.113.3\n198.18.0.0/15\n');
    const r2 = await sync([file, '--source', 'threatfeed'], { VOS_CLUSTER_HOSTS: hosts.join(',') });
    expect(r2.exitCode).toBe(0);
    const next = ['198.18.0.0/15 threatfeed', '203.0.113.2 threatfeed', '203.0.113.3 threatfeed'];
    expect(await list(nodes[1]!)).toEqual(next);
    expect(await list(nodes[0]!)).toEqual([...next, '198.51.100.200 manual'].sort());
  });

  it('reports each host, exits non-zero when one fails, and still applies the others', async () => {
    const file = join(lab.tmp, 'feed2.txt');
    writeFileSync(file, '203.0.113.9\nnot-an-address\n');
    const dead = `root@${nodes[0]!.veth.hostIp.replace(/\.1$/, '.99')}`; // nothing listens there
    const r = await sync([file, '--source', 'feed2', `root@${nodes[0]!.veth.peerIp}`, dead], { VOS_SSH_OPTS: `${sshOpts} -o ConnectTimeout=2` });
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toContain("line 2: 'not-an-address' is not an IPv4 address");
    expect(r.stdout).toContain(`root@${nodes[0]!.veth.peerIp}: ok:`);
    expect(r.stdout).toMatch(new RegExp(`${dead.replace(/\./g, '\\.')}: FAILED \\(exit 255\\)`));
    expect(r.stdout).toContain('1 ok, 1 failed, bad lines skipped');
    expect(await list(nodes[0]!)).toContain('203.0.113.9 feed2');
  });

  it('refuses bad usage before contacting anyone', async () => {
    expect(await sync(['/nonexistent', 'root@192.0.2.1'])).toMatchObject({ exitCode: 2, stderr: expect.stringContaining("cannot read '/nonexistent'") });
    expect(await sync(['-', '--source', 'manual', 'h'])).toMatchObject({ exitCode: 2, stderr: expect.stringContaining("bad --source 'manual'") });
    expect(await sync(['-', 'bad;host'])).toMatchObject({ exitCode: 2, stderr: expect.stringContaining("bad host 'bad;host'") });
    expect(await sync(['-'], { VOS_CLUSTER_HOSTS: '' })).toMatchObject({ exitCode: 2, stderr: expect.stringContaining('no hosts') });
  });
});
