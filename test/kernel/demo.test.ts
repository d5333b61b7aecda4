/** `npm run demo` runs scripts/demo.sh: it tells the whole story and leaves nothing behind. */
import { expect, it } from '@jest/globals';
import { execa } from 'execa';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { brokerMissing } from '../helpers/broker.js';
import { describeWith, kernelMissing, sipPeersMissing } from '../helpers/env.js';
import { ROOT } from '../helpers/lab.js';

describeWith('the demo', kernelMissing() ?? brokerMissing() ?? sipPeersMissing(), () => {
  it('narrates attacker seen, block published, entry landed, packets dropped, counters, customer unharmed; then cleans up', async () => {
    const r = await execa('bash', [join(ROOT, 'scripts/demo.sh')], { reject: false, timeout: 90_000 });
    const out = r.stdout;
    expect({ code: r.exitCode, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
    const pid = /namespace vfp-demo(\d+)/.exec(out)?.[1];
    expect(out).toMatch(/Kamailio saw \d+ requests from the attacker; its pike decided:\n  vos-fastpath: published block for 10\.201\.\d+\.66 \(pike\)/);
    expect(out).toMatch(/vosctl consume: blocked 10\.201\.\d+\.66 ttl 3600s from kamailio, reason pike/);
    expect(out).toMatch(/in the last 2 s: Kamailio saw 0 requests from the attacker; XDP dropped [1-9]\d*/);
    expect(out).toMatch(/blocked_exact\s+[1-9]/);
    expect(out).toContain('all 40 registrations answered 200 OK');
    // nothing left: namespace, pins, processes
    expect((await execa('ip', ['netns', 'list'])).stdout).not.toContain(`vfp-demo${pid}`);
    expect(readdirSync('/sys/fs/bpf')).not.toContain(`vfp_demo_${pid}`);
    expect((await execa('pgrep', ['-f', `vfp_demo_${pid}`], { reject: false })).stdout).toBe('');
  }, 120_000);
});
