/**
 * CrowdSec end to end: Debian's crowdsec (a private local API) and
 * crowdsec-custom-bouncer with the shipped YAML, feeding `vosctl crowdsec`;
 * decisions made with cscli show up in the blocklist and drop real packets.
 */
import { afterAll, beforeAll, expect, it } from '@jest/globals';
import { execa, type ResultPromise } from 'execa';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describeWith, kernelMissing } from '../helpers/env.js';
import { startLapi, type CrowdsecLapi } from '../helpers/crowdsec.js';
import { waitFor } from '../helpers/wait.js';
import { Lab, ROOT, sendUdpFrom, type Veth } from '../helpers/lab.js';
import type { ListedEntry } from '../../lib/blocklist.js';

function crowdsecMissing(): string | null {
  const k = kernelMissing();
  if (k) return k;
  for (const bin of ['/usr/bin/crowdsec', '/usr/bin/cscli', '/usr/bin/crowdsec-custom-bouncer']) {
    if (!existsSync(bin)) return `${bin} is missing (scripts/setup.sh installs crowdsec and crowdsec-custom-bouncer)`;
  }
  return null;
}

describeWith('CrowdSec through crowdsec-custom-bouncer', crowdsecMissing(), () => {
  let lab: Lab;
  let v: Veth;
  let lapi: CrowdsecLapi;
  let stateDir: string;
  let yaml: string;
  let bouncer: ResultPromise | undefined;
  const env = () => ({ VOS_PIN_DIR: lab.pinDir, VOS_STATE_DIR: stateDir, VOS_LOG_FORMAT: 'json', VOS_BOUNCER_LOG: bouncerLog() });
  const bouncerLog = () => join(lab.tmp, 'log/crowdsec-bouncer.log');
  const vosctl = (...args: string[]) => execa(join(ROOT, 'bin/vosctl'), args, { env: env(), reject: false });
  const list = async () => JSON.parse((await vosctl('list', '--json')).stdout) as ListedEntry[];
  const entry = async (ip: string) => (await list()).find((e) => e.ip === ip);

  const startBouncer = () => {
    bouncer = lab.spawn('crowdsec-custom-bouncer', ['-c', yaml], { env: env(), all: true });
  };
  const stopBouncer = async () => {
    bouncer!.kill('SIGTERM');
    await bouncer;
  };

  /** Does a datagram from the namespace reach the host socket? */
  const reaches = async (): Promise<boolean> => {
    const dgram = await import('node:dgram');
    const sock = dgram.createSocket('udp4');
    let got = 0;
    sock.on('message', () => got++);
    await new Promise<void>((r) => sock.bind(0, v.hostIp, r));
    try {
      await sendUdpFrom(v.ns, v.hostIp, sock.address().port, ['OPTIONS sip:a@b SIP/2.0\r\n\r\n']);
      await new Promise((r) => setTimeout(r, 150));
      return got > 0;
    } finally {
      sock.close();
    }
  };

  beforeAll(async () => {
    lab = new Lab();
    stateDir = join(lab.tmp, 'state');
    v = await lab.veth();
    expect((await vosctl('attach', v.host, '--mode', 'native')).exitCode).toBe(0);
    lab.defer(`xdp on ${v.host}`, () => lab.script('unload.sh', [v.host]));
    lapi = await startLapi(lab);
    const key = (await lapi.cscli('bouncers', 'add', `vfp-${lab.id}`, '-o', 'raw')).trim();
    // The shipped YAML, pointed at this checkout, this LAPI and a 1 s poll.
    yaml = join(lab.tmp, 'bouncer.yaml');
    const shipped = readFileSync(join(ROOT, 'contrib/crowdsec/crowdsec-custom-bouncer.yaml'), 'utf8');
    writeFileSync(
      yaml,
      shipped
        .replace(/^bin_path:.*$/m, `bin_path: ${join(ROOT, 'contrib/crowdsec/vos-fastpath-bouncer')}`)
        .replace(/^api_url:.*$/m, `api_url: ${lapi.url}/`)
        .replace(/^api_key:.*$/m, `api_key: ${key}`)
        .replace(/^update_frequency:.*$/m, 'update_frequency: 1s')
        .replace(/^piddir:.*$/m, `piddir: ${lab.tmp}/`)
        .replace(/^log_mode:.*$/m, 'log_mode: stdout'),
    );
    startBouncer();
  }, 60_000);
  afterAll(() => lab.cleanup(), 30_000);

  it('cscli decisions add --ip and --range land with the scenario as reason and the duration as TTL, and drop packets', async () => {
    expect(await reaches()).toBe(true);
    await lapi.cscli('decisions', 'add', '--ip', v.peerIp, '--duration', '1h', '--reason', 'sip-scan');
    await lapi.cscli('decisions', 'add', '--range', '198.51.100.0/28', '--duration', '2h', '--reason', 'range test');
    await lapi.cscli('decisions', 'add', '--ip', '203.0.113.7', '--duration', '3h', '--reason', 'stays');
    const peer = await waitFor('the --ip decision in vosctl list', () => entry(v.peerIp));
    const range = await waitFor('the --range decision in vosctl list', () => entry('198.51.100.0/28'));
    await waitFor('the third decision', () => entry('203.0.113.7'));
    expect(peer).toMatchObject({ source: 'crowdsec', reason: 'sip-scan' });
    expect(range).toMatchObject({ source: 'crowdsec', reason: 'range test' });
    const ttl = (Date.parse(peer.expires!) - Date.now()) / 1000;
    expect(ttl).toBeGreaterThan(3500);
    expect(ttl).toBeLessThanOrEqual(3600);
    expect(await reaches()).toBe(false);
  }, 60_000);

  it('cscli decisions delete lifts the block, and only CrowdSec\'s', async () => {
    expect((await vosctl('block', '192.0.2.9', '--reason', 'operator')).exitCode).toBe(0);
    await lapi.cscli('decisions', 'add', '--ip', '192.0.2.9', '--duration', '1h');
    await lapi.cscli('decisions', 'delete', '--ip', v.peerIp);
    await lapi.cscli('decisions', 'delete', '--ip', '192.0.2.9');
    await waitFor('the deleted decision to leave vosctl list', async () => !(await entry(v.peerIp)));
    expect(await reaches()).toBe(true);
    // A decision on an address the operator blocked never owned it: its deletion leaves the block.
    await new Promise((r) => setTimeout(r, 2500));
    expect(await entry('192.0.2.9')).toMatchObject({ source: 'manual', expires: null });
  }, 60_000);

  it("vosctl's notes and skips under the real bouncer land in the wrapper's log; a Range with host bits is its network", async () => {
    await lapi.cscli('decisions', 'add', '--range', '198.51.100.77/28', '--duration', '1h', '--reason', 'host bits');
    await lapi.cscli('decisions', 'add', '--ip', '192.0.2.201', '--type', 'captcha', '--duration', '1h');
    expect(await waitFor('the range as its network', () => entry('198.51.100.64/28'))).toMatchObject({ source: 'crowdsec', reason: 'host bits' });
    const log = await waitFor('the skipped captcha decision in the log', async () => {
      const text = existsSync(bouncerLog()) ? readFileSync(bouncerLog(), 'utf8') : '';
      return text.includes('type \\"captcha\\" of 192.0.2.201: only bans are enforced') && text;
    });
    expect(log).toContain('198.51.100.77/28 has host bits set: taken as its network 198.51.100.64/28');
  }, 60_000);

  it('a bouncer restart keeps what CrowdSec still wants and drops what was deleted meanwhile', async () => {
    const before = await entry('203.0.113.7');
    await stopBouncer();
    await lapi.cscli('decisions', 'delete', '--range', '198.51.100.0/28');
    await lapi.cscli('decisions', 'add', '--ip', '192.0.2.45', '--duration', '30m', '--reason', 'while down');
    expect(await entry('198.51.100.0/28')).toBeDefined();
    startBouncer();
    await waitFor('the decision added while the bouncer was down', () => entry('192.0.2.45'));
    await waitFor('the range deleted while the bouncer was down to go', async () => !(await entry('198.51.100.0/28')));
    const after = await entry('203.0.113.7');
    expect(after).toMatchObject({ source: 'crowdsec', reason: 'stays', added: before!.added });
    expect(Math.abs(Date.parse(after!.expires!) - Date.parse(before!.expires!))).toBeLessThanOrEqual(2000);
    await stopBouncer();
  }, 60_000);
});

describeWith('line feeds while the maps are missing', kernelMissing(), () => {
  let lab: Lab;
  beforeAll(() => {
    lab = new Lab();
  });
  afterAll(() => lab.cleanup(), 30_000);

  it('vosctl crowdsec and vosctl stdin hold what they read, log paused, and apply it once the maps are back (no silent hang)', async () => {
    const env = { VOS_PIN_DIR: lab.pinDir, VOS_STATE_DIR: join(lab.tmp, 'state'), VOS_LOG_FORMAT: 'json' };
    const feeds = [
      { proc: lab.spawn(join(ROOT, 'bin/vosctl'), ['crowdsec'], { env, all: true, buffer: true }), line: '{"action":"add","value":"198.51.100.120","duration":"1h","scope":"Ip","type":"ban","scenario":"startup stream"}' },
      { proc: lab.spawn(join(ROOT, 'bin/vosctl'), ['stdin', '--source', 'fail2ban-x'], { env, all: true, buffer: true }), line: '{"action":"block","ip":"198.51.100.121","ttl":600}' },
    ];
    let logs = ['', ''];
    feeds.forEach((f, i) => {
      f.proc.all!.on('data', (d: Buffer) => (logs[i] += d.toString()));
      f.proc.stdin!.write(`${f.line}\n`);
    });
    await waitFor('both feeds to log paused', async () => logs.every((l) => l.includes('paused: not ready to enforce')));
    await lab.loadUnattached();
    const list = async () => JSON.parse((await execa(join(ROOT, 'bin/vosctl'), ['list', '--json'], { env })).stdout) as ListedEntry[];
    await waitFor('both held lines in vosctl list', async () => (await list()).filter((e) => e.ip.startsWith('198.51.100.12')).length === 2, 40_000);
    for (const f of feeds) f.proc.stdin!.end();
    const done = await Promise.all(feeds.map((f) => f.proc));
    expect(done.map((d) => d.exitCode)).toEqual([0, 0]);
    logs = done.map((d) => String(d.all));
    for (const l of logs) expect(l).toContain('"message":"resumed"');
    expect(await list()).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ ip: '198.51.100.120', source: 'crowdsec', reason: 'startup stream' }),
        expect.objectContaining({ ip: '198.51.100.121', source: 'fail2ban-x' }),
      ]),
    );
  }, 60_000);
});
