/**
 * SIP threat feeds through contrib/cron/feed-import.sh, served by a local HTTP
 * server on loopback with canned answers in APIBAN's and VoIPBL's real formats
 * (nothing reaches the internet).
 */
import { afterAll, beforeAll, expect, it } from '@jest/globals';
import { execa } from 'execa';
import { createServer, type Server } from 'node:http';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describeKernel } from '../helpers/env.js';
import { Lab, ROOT } from '../helpers/lab.js';

/** Ordinary unicast addresses standing in for a feed's offenders (no traffic goes to them). */
const offenders = (third: number, n: number) => Array.from({ length: n }, (_, i) => `45.134.${third}.${i + 1}`);

describeKernel('SIP threat feeds (APIBAN, VoIPBL) through feed-import.sh', () => {
  let lab: Lab;
  let server: Server;
  let base: string;
  /** APIBAN pages by the ID asked for: what the server answers. */
  let apiban: Record<string, { ipaddress: string[]; ID: string }> = {};
  const requests: Array<{ auth?: string; body: string }> = [];
  let voipbl = '';
  const env = () => ({ VOS_PIN_DIR: lab.pinDir, VOS_STATE_DIR: join(lab.tmp, 'state'), VOS_LOG_FORMAT: 'json', APIBAN_KEY: 'test-key-1', APIBAN_PAGE_DELAY: '0' });
  const importFeed = (...args: string[]) => execa(join(ROOT, 'contrib/cron/feed-import.sh'), args, { env: env(), reject: false });
  const entries = async (source: string) => {
    const r = await execa(join(ROOT, 'bin/vosctl'), ['list', '--json', '--source', source], { env: env() });
    return (JSON.parse(r.stdout) as Array<{ ip: string }>).map((e) => e.ip).sort();
  };
  const sorted = (a: string[]) => [...a].sort();

  beforeAll(async () => {
    lab = new Lab();
    await lab.loadUnattached();
    server = createServer((req, res) => {
      let body = '';
      req.on('data', (c) => (body += c));
      req.on('end', () => {
        if (req.url === '/voipbl/update/') {
          res.writeHead(200, { 'content-type': 'text/plain' }).end(voipbl);
          return;
        }
        requests.push({ auth: req.headers.authorization, body });
        const id = (JSON.parse(body) as { id: string }).id;
        const page = apiban[id];
        // APIBAN answers the end of the list with a 400 and this body.
        if (!page) res.writeHead(400, { 'content-type': 'application/json' }).end('{"ipaddress":["no new bans"],"ID":"none"}');
        else res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(page, null, 2));
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  });
  afterAll(async () => {
    await new Promise((r) => server.close(r));
    await lab.cleanup();
  });

  it('APIBAN: two pages land, special-purpose ones are skipped and reported, the last ID is kept; the next run fetches only what is new', async () => {
    const page1 = offenders(1, 250);
    const page2 = offenders(2, 40);
    apiban = {
      '100': { ipaddress: [...page1.slice(0, 248), '10.1.2.3', '100.64.7.7'], ID: '1700000100' },
      '1700000100': { ipaddress: [...page2, '198.18.0.9', '203.0.113.5', '2001:db8::5', ...page1.slice(248)], ID: '1700000200' },
    };
    const r = await importFeed('apiban', 'apiban', '--url', `${base}/api/get`, '--ttl', '7d');
    expect(r.stderr).toMatch(/'10\.1\.2\.3' is private-use/);
    expect(r.stderr).toMatch(/'100\.64\.7\.7' is shared address space/);
    expect(r.stderr).toMatch(/'198\.18\.0\.9' is benchmarking/);
    expect(r.stderr).toMatch(/'2001:db8::5' is documentation \(RFC 3849\)/);
    expect(r.stdout).toContain('290 entries (290 new, 0 extended, 0 unchanged), 0 removed, 5 skipped, 0 bad lines');
    expect(r.exitCode).toBe(0);
    expect(await entries('apiban')).toEqual(sorted([...page1, ...page2]));
    expect(requests.map((q) => [q.auth, JSON.parse(q.body).id])).toEqual([
      ['Bearer test-key-1', '100'],
      ['Bearer test-key-1', '1700000100'],
      ['Bearer test-key-1', '1700000200'],
    ]);
    expect(readFileSync(join(lab.tmp, 'state/feeds/apiban-apiban.id'), 'utf8').trim()).toBe('1700000200');

    // Incremental: only pages after the kept ID are asked for; the set grows.
    requests.length = 0;
    apiban['1700000200'] = { ipaddress: ['45.134.3.1', '45.134.3.2'], ID: '1700000300' };
    const r2 = await importFeed('apiban', 'apiban', '--url', `${base}/api/get`, '--ttl', '7d');
    expect(r2.exitCode).toBe(0);
    expect(requests.map((q) => JSON.parse(q.body).id)).toEqual(['1700000200', '1700000300']);
    expect(await entries('apiban')).toHaveLength(292);

    // A full fetch with churn replaces the set: delisted addresses leave; one that shrinks the set by more than half needs --force.
    apiban = { '100': { ipaddress: ['45.134.9.1', ...page2.slice(0, 3)], ID: '1800000000' } };
    expect(await importFeed('apiban', 'apiban', '--url', `${base}/api/get`, '--full')).toMatchObject({ exitCode: 1, stderr: expect.stringContaining("would remove 289 of the 292 entries of source 'apiban'") });
    expect(await entries('apiban')).toHaveLength(292);
    expect((await importFeed('apiban', 'apiban', '--url', `${base}/api/get`, '--full', '--force')).exitCode).toBe(0);
    expect(await entries('apiban')).toEqual(sorted(['45.134.9.1', ...page2.slice(0, 3)]));

    // An outage (nothing listens) or a refused key changes nothing.
    expect(await importFeed('apiban', 'apiban', '--url', 'http://127.0.0.1:9/api/get', '--full')).toMatchObject({ exitCode: 1, stderr: expect.stringContaining("left as it was") });
    expect(await entries('apiban')).toHaveLength(4);
  });

  it('VoIPBL: the full list replaces the source each time; 10.x and 0.1.0.1 are skipped, not fatal; a non-address fails the run', async () => {
    voipbl = `# VoIPBL\n${offenders(4, 5).map((ip) => `${ip}/32`).join('\n')}\n45.134.5.0/24\n10.20.30.40/32\n0.1.0.1/32\n`;
    const r = await importFeed(`${base}/voipbl/update/`, 'voipbl', '--format', 'voipbl', '--ttl', '1d');
    expect(r.exitCode).toBe(0);
    expect(r.stderr).toContain("line 8: skipped: '10.20.30.40' is private-use");
    expect(r.stderr).toContain("line 9: skipped: '0.1.0.1' is \"this network\"");
    expect(await entries('voipbl')).toEqual(sorted([...offenders(4, 5), '45.134.5.0/24']));
    voipbl = `45.134.4.1/32\n45.134.6.0/23\nnot-an-address\n`;
    const churn = await importFeed(`${base}/voipbl/update/`, 'voipbl', '--format', 'voipbl', '--max-shrink', '0.9');
    expect(churn).toMatchObject({ exitCode: 2, stderr: expect.stringContaining("line 3: 'not-an-address' is not an IPv4 address") });
    expect(await entries('voipbl')).toEqual(['45.134.4.1', '45.134.6.0/23']);
  });

  it('VoIPBL: an error page served with HTTP 200 or a list cut to one line changes nothing (exit 1); --force applies a real shrink', async () => {
    const source = `vbl${lab.id}`;
    voipbl = offenders(7, 40).join('\n') + '\n';
    expect((await importFeed(`${base}/voipbl/update/`, source, '--format', 'voipbl')).exitCode).toBe(0);
    voipbl = '<!DOCTYPE html>\n<html><head><title>503 Service Unavailable</title></head>\n<body><h1>Service Unavailable</h1>\n<p>Try again later.</p></body>\n</html>\n';
    const html = await importFeed(`${base}/voipbl/update/`, source, '--format', 'voipbl');
    expect(html).toMatchObject({ exitCode: 1, stderr: expect.stringContaining(`not a list; nothing applied, source '${source}' left as it was`) });
    // Mostly bad with a line that parses is still not a list.
    voipbl = `${voipbl}45.134.7.1\n`;
    expect((await importFeed(`${base}/voipbl/update/`, source, '--format', 'voipbl')).exitCode).toBe(1);
    voipbl = '45.134.7.1\n';
    const cut = await importFeed(`${base}/voipbl/update/`, source, '--format', 'voipbl');
    expect(cut).toMatchObject({ exitCode: 1, stderr: expect.stringContaining(`would remove 39 of the 40 entries of source '${source}' (more than --max-shrink 0.5)`) });
    expect(await entries(source)).toHaveLength(40);
    // Plain load-file --replace: every line bad (or only special-purpose ones) refuses too.
    const vosctl = (...args: string[]) => execa(join(ROOT, 'bin/vosctl'), args, { env: env(), reject: false, input: '<html>\n<body>oops</body>\n' });
    expect(await vosctl('load-file', '-', '--replace', '--source', source)).toMatchObject({ exitCode: 1, stderr: expect.stringContaining('not a list') });
    expect(await entries(source)).toHaveLength(40);
    expect((await importFeed(`${base}/voipbl/update/`, source, '--format', 'voipbl', '--force')).exitCode).toBe(0);
    expect(await entries(source)).toEqual(['45.134.7.1']);
  });
});
