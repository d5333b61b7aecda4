/**
 * The real loop, with software nobody here wrote: Kamailio (pike and the
 * scanner check of contrib/kamailio/kamailio.cfg) decides a source is bad and
 * publishes to RabbitMQ; vosctl consume puts it in the map; XDP drops it.
 * sipp floods and sipvicious scans from the attacker's namespace while a
 * customer registers and calls with sipp.
 */
import { afterAll, beforeAll, expect, it } from '@jest/globals';
import { execa } from 'execa';
import { join } from 'node:path';
import { ROOT } from '../helpers/lab.js';
import { brokerMissing } from '../helpers/broker.js';
import { describeWith, kernelMissing, sipPeersMissing } from '../helpers/env.js';
import { LOOP_HEARTBEAT_S, LoopLab, labScenario, registerScenario } from '../helpers/loop.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const BLOCKED_EXACT = 'blocked_exact';
const OPTIONS_DROPPED = 'options_dropped';

describeWith('the real loop: Kamailio -> RabbitMQ -> vosctl consume -> XDP', kernelMissing() ?? brokerMissing() ?? sipPeersMissing(), () => {
  let loop: LoopLab;
  beforeAll(async () => {
    loop = new LoopLab();
    await loop.start({ stealth: true });
  }, 60_000);
  afterAll(() => loop?.stop(), 30_000);

  it('blocks a flooding attacker at the NIC while the customer registers and calls throughout', async () => {
    const { attacker, customer } = loop;
    const kamailioHost = customer.hostIp;
    // Idle first, longer than any heartbeat in play (the broker drops a connection after two missed
    // ones): the connections of Kamailio and of the consumer must still carry the block afterwards.
    await sleep(LOOP_HEARTBEAT_S * 3 * 1000 + 1000);

    // The customer: a UAS for its calls, registrations every 200 ms, then calls through Kamailio.
    const uas = loop.sipp(customer.ns, ['-sf', labScenario('uas'), '-i', customer.peerIp, '-p', '5062']);
    const register = loop.sipp(customer.ns, ['-sf', registerScenario(), `${kamailioHost}:5060`, '-i', customer.peerIp, '-p', '5061', '-s', 'service', '-key', 'contact_port', '5062', '-r', '5', '-m', '60', '-timeout', '40']);
    await sleep(500);
    const calls = loop.sipp(customer.ns, ['-sf', labScenario('uac'), `${kamailioHost}:5060`, '-i', customer.peerIp, '-p', '5063', '-s', 'service', '-r', '4', '-m', '40', '-d', '200', '-timeout', '40']);

    // The attacker floods INVITEs at 300/s.
    const blockedBefore = await loop.counter(BLOCKED_EXACT);
    const floodStart = performance.now();
    const flood = loop.sipp(attacker.ns, ['-sn', 'uac', `${attacker.hostIp}:5060`, '-i', attacker.peerIp, '-p', '5080', '-s', 'nobody', '-r', '300', '-m', '4500', '-timeout', '20']);

    // Kamailio's pike publishes a block; the entry lands; the next packet dies at the NIC.
    const published = await loop.waitForKamailio(new RegExp(`published block for ${attacker.peerIp.replace(/\./g, '\\.')} \\(pike\\)`));
    let firstDrop = 0;
    while (!firstDrop) {
      if ((await loop.counter(BLOCKED_EXACT)) > blockedBefore) firstDrop = performance.now();
      else if (performance.now() - published.at > 10_000) throw new Error('no attacker packet was dropped within 10 s of the publish');
    }
    const latencyMs = firstDrop - published.at;
    const seenBefore = loop.seenFrom(attacker.peerIp);
    const secondsBefore = (published.at - floodStart) / 1000;

    // From a moment after the drop (packets already in the socket queue may still be read), Kamailio sees nothing more.
    await sleep(200);
    const quietFrom = performance.now();
    const droppedAtQuiet = await loop.counter(BLOCKED_EXACT);
    await sleep(2000);
    const dropped = (await loop.counter(BLOCKED_EXACT)) - droppedAtQuiet;
    const dropRate = dropped / ((performance.now() - quietFrom) / 1000);
    expect(loop.seenFrom(attacker.peerIp, quietFrom)).toBe(0);
    expect(dropped).toBeGreaterThan(100); // the flood went on, and died at the NIC

    flood.kill('SIGTERM');
    const [reg, call] = await Promise.all([register, calls]);
    uas.kill('SIGTERM');
    // Every registration and every call of the customer succeeded (sipp exits 0 only then).
    expect({ register: reg.exitCode, calls: call.exitCode, stderr: `${String(reg.stderr)}${String(call.stderr)}`.slice(0, 300) }).toMatchObject({ register: 0, calls: 0 });
    expect(loop.seenFrom(customer.peerIp)).toBeGreaterThanOrEqual(100);
    const list = JSON.parse(await loop.mustVosctl('list', '--json')) as Array<{ ip: string; source: string; reason: string }>;
    expect(list).toContainEqual(expect.objectContaining({ ip: attacker.peerIp, source: 'kamailio', reason: 'pike' }));
    expect(list.map((e) => e.ip)).not.toContain(customer.peerIp);
    // No connection was lost to the idle period.
    expect(loop.consumer.logs.filter((l) => /reconnecting|refuses/.test(String(l.message)))).toEqual([]);
    expect(loop.kamailioLog()).not.toMatch(/could not publish|FAIL: rabbitmq_reconnect/);

    // A forged ACK with a To-tag addressed to Kamailio itself matches no transaction: not relayed (once it
    // was relayed back to Kamailio until pike blocked, and published, the server's own address).
    const callId = `forged-ack-${process.pid}`;
    const forged = [`ACK sip:service@${kamailioHost}:5060 SIP/2.0`, `Via: SIP/2.0/UDP ${customer.peerIp}:5070;branch=z9hG4bK-${callId}`, `From: <sip:x@${customer.peerIp}>;tag=f1`, `To: <sip:service@${kamailioHost}>;tag=forged`, `Call-ID: ${callId}`, 'CSeq: 1 ACK', 'Max-Forwards: 70', 'Content-Length: 0', '', ''].join('\r\n');
    await execa('ip', ['netns', 'exec', customer.ns, process.execPath, join(ROOT, 'scripts/lab/sip-send.mjs'), kamailioHost, '5060'], { input: JSON.stringify([forged]) });
    // The shipped log_prefix shows the Call-ID hex-encoded (no attacker text in the prefix fail2ban reads).
    const logged = Buffer.from(callId).toString('hex');
    await loop.waitForKamailio(new RegExp(`${logged}.*vos-trace: ACK`));
    await sleep(1000);
    expect(loop.kamailioLog().split('\n').filter((l) => l.includes(logged) && l.includes('vos-trace'))).toHaveLength(1);
    expect(loop.kamailioLog()).not.toContain(`published block for ${kamailioHost}`);
    // A forged in-dialog request whose only Route and Request-URI are Kamailio itself: answered, not relayed
    // back to Kamailio once per hop of its Max-Forwards.
    const selfId = `forged-route-${process.pid}`;
    const selfRoute = [`BYE sip:service@${kamailioHost}:5060 SIP/2.0`, `Via: SIP/2.0/UDP ${customer.peerIp}:5070;branch=z9hG4bK-${selfId}`, `Route: <sip:${kamailioHost};lr>`, `From: <sip:x@${customer.peerIp}>;tag=f2`, `To: <sip:service@${kamailioHost}>;tag=forged`, `Call-ID: ${selfId}`, 'CSeq: 2 BYE', 'Max-Forwards: 70', 'Content-Length: 0', '', ''].join('\r\n');
    await execa('ip', ['netns', 'exec', customer.ns, process.execPath, join(ROOT, 'scripts/lab/sip-send.mjs'), kamailioHost, '5060'], { input: JSON.stringify([selfRoute]) });
    const selfLogged = Buffer.from(selfId).toString('hex');
    await loop.waitForKamailio(new RegExp(`${selfLogged}.*vos-trace: BYE`));
    await sleep(1000);
    expect(loop.kamailioLog().split('\n').filter((l) => l.includes(selfLogged) && l.includes('vos-trace'))).toHaveLength(1);

    const counters = JSON.parse(await loop.mustVosctl('stats', '--json')) as Record<string, { packets: number }>;
    process.stdout.write(
      [
        '',
        'the real loop (Kamailio pike -> RabbitMQ -> vosctl consume -> XDP):',
        `  publish -> first drop at the NIC   ${latencyMs.toFixed(1)} ms   (goal <= 100 ms; fail2ban polls logs: seconds)`,
        `  attacker requests Kamailio saw      ${seenBefore} in ${secondsBefore.toFixed(2)} s before the block, 0 after`,
        `  attacker packets dropped by XDP     ${Math.round(dropRate)} per second that Kamailio no longer sees`,
        `  XDP counters                        ${Object.entries(counters).map(([k, v]) => `${k} ${v.packets}`).join(', ')}`,
        '',
      ].join('\n'),
    );
    expect(latencyMs).toBeGreaterThan(0);
  }, 90_000);

  it('stealth: svmap finds no SIP server; without stealth it finds Kamailio, whose scanner check then blocks it', async () => {
    const target = loop.attacker.hostIp;
    const optionsBefore = await loop.counter(OPTIONS_DROPPED);
    const hidden = await loop.svmap(target);
    expect({ found: hidden.found, output: hidden.output.slice(0, 400) }).toMatchObject({ found: [] });
    expect(await loop.counter(OPTIONS_DROPPED)).toBeGreaterThan(optionsBefore);
    expect(loop.seenFrom(loop.scannerIp)).toBe(0);

    await loop.attach(false); // reload without stealth: the maps, and the attacker's block, stay
    const seen = await loop.svmap(target);
    expect({ found: seen.found, output: seen.output.slice(0, 400) }).toMatchObject({ found: [target] });
    expect(seen.output).toMatch(/kamailio/i);
    await loop.waitForKamailio(new RegExp(`published block for ${loop.scannerIp.replace(/\./g, '\\.')} \\(scanner User-Agent\\)`));
    const list = async () => (JSON.parse(await loop.mustVosctl('list', '--json')) as Array<{ ip: string; reason: string }>).map((e) => e.ip);
    for (let i = 0; i < 100 && !(await list()).includes(loop.scannerIp); i++) await sleep(50);
    expect(await list()).toEqual(expect.arrayContaining([loop.attacker.peerIp, loop.scannerIp]));
    await loop.attach(true);
  }, 120_000);
});
