/**
 * The production install names only what the runtime uses: none of the test
 * peers and build tools scripts/setup.sh installs for developers and CI.
 */
import { describe, expect, it } from '@jest/globals';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

const TEST_PEERS = [
  'kamailio', 'kamailio-rabbitmq-modules', 'sip-tester', 'sipp', 'sipvicious', 'openssh-server', 'rabbitmq-server', 'amqp-tools',
  'shellcheck', 'hyperfine', 'prometheus', 'crowdsec', 'crowdsec-custom-bouncer', 'fail2ban', 'clang', 'llvm', 'gcc', 'make',
  'libbpf-dev', 'libxdp-dev', 'libc6-dev', 'linux-libc-dev', 'python3', 'ipset', 'curl', 'openssl',
];

describe('production packages', () => {
  const listed = execFileSync('bash', ['scripts/install.sh', '--print-packages']).toString().trim().split('\n');

  it('scripts/install.sh names the runtime and no test peer or build tool', () => {
    expect(listed).toEqual(expect.arrayContaining(['bpftool', 'libbpf1', 'libxdp1', 'iproute2', 'jq', 'sqlite3', 'nodejs']));
    expect(listed.filter((p) => TEST_PEERS.includes(p))).toEqual([]);
  });

  it('the README gives the same list', () => {
    const readme = readFileSync('README.md', 'utf8');
    expect(readme).toContain(`apt-get install --no-install-recommends ${listed.join(' ')}`);
  });
});
