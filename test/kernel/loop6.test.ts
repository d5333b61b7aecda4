/**
 * The real loop over IPv6: Kamailio listening on IPv6 addresses, its pike
 * publishing the attacker's IPv6 address ($si) to RabbitMQ, vosctl consume
 * applying it, the attacker's packets dying at the NIC, the IPv6 customer
 * unharmed.
 */
import { afterAll, beforeAll, expect, it } from '@jest/globals';
import { brokerMissing } from '../helpers/broker.js';
import { describeWith, kernelMissing, sipPeersMissing } from '../helpers/env.js';
import { ROOT, sendUdpFrom } from '../helpers/lab.js';
import { LoopLab } from '../helpers/loop.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A well-formed REGISTER from `from` (IPv6) to Kamailio at `to`. */
function register(from: string, to: string, i: number): string {
  return `REGISTER sip:[${to}] SIP/2.0\r\nVia: SIP/2.0/UDP [${from}]:5061;branch=z9hG4bK6r${i};rport\r\nMax-Forwards: 70\r\nFrom: <sip:alice@[${to}]>;tag=r${i}\r\nTo: <sip:alice@[${to}]>\r\nCall-ID: reg6-${i}@lab\r\nCSeq: ${i + 1} REGISTER\r\nContact: <sip:alice@[${from}]:5061>\r\nExpires: 60\r\nContent-Length: 0\r\n\r\n`;
}

describeWith('the real loop over IPv6: Kamailio -> RabbitMQ -> vosctl consume -> XDP', kernelMissing() ?? brokerMissing() ?? sipPeersMissing(), () => {
  let loop: LoopLab;
  beforeAll(async () => {
    loop = new LoopLab();
    await loop.start({ stealth: true, ipv6: true });
  }, 60_000);
  afterAll(() => loop?.stop(), 30_000);

  it('pike publishes the flooding IPv6 source, consume blocks it, its packets die at the NIC; the IPv6 customer is unharmed', async () => {
    const { attacker, customer } = loop;
    const customerSends = (n: number, from: number) => sendUdpFrom(customer.ns, customer.hostIp6, 5060, Array.from({ length: n }, (_, i) => register(customer.peerIp6, customer.hostIp6, from + i)), 5061);
    await customerSends(5, 0);

    // The attacker floods INVITEs over IPv6, far above pike's density.
    const blockedBefore = await loop.counter('blocked_exact_ipv6');
    const flood = loop.lab.spawn('ip', ['netns', 'exec', attacker.ns, process.execPath, `${ROOT}/scripts/lab/sip-send.mjs`, attacker.hostIp6, '5060', '--method', 'INVITE', '--count', '3000', '--gap', '2']);
    const published = await loop.waitForKamailio(/published block for \S*:\S* \(pike\)/, 20_000);
    expect(published.text).toContain(`published block for ${attacker.peerIp6} (pike)`);
    for (let t = 0; (await loop.counter('blocked_exact_ipv6')) <= blockedBefore; t++) {
      if (t > 100) throw new Error('no IPv6 attacker packet was dropped within 10 s of the publish');
      await sleep(100);
    }
    await sleep(300);
    const quietFrom = performance.now();
    const droppedAtQuiet = await loop.counter('blocked_exact_ipv6');
    await sleep(1500);
    expect(loop.seenFrom(attacker.peerIp6, quietFrom)).toBe(0);
    expect((await loop.counter('blocked_exact_ipv6')) - droppedAtQuiet).toBeGreaterThan(50);
    flood.kill('SIGTERM');

    // The customer keeps registering over IPv6 and Kamailio sees every request.
    const seen = loop.seenFrom(customer.peerIp6);
    await customerSends(5, 100);
    await sleep(500);
    expect(loop.seenFrom(customer.peerIp6)).toBe(seen + 5);

    const list = JSON.parse(await loop.mustVosctl('list', '--json', '--family', '6')) as Array<{ ip: string; source: string; reason: string }>;
    expect(list).toEqual([expect.objectContaining({ ip: attacker.peerIp6, source: 'kamailio', reason: 'pike' })]);
  }, 90_000);
});
