/**
 * What operators deploy from contrib/: the feed import for cron (a local
 * file as the feed: nothing is fetched from the network) and the systemd units.
 */
import { afterAll, beforeAll, expect, it } from '@jest/globals';
import { execa } from 'execa';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describeKernel } from '../helpers/env.js';
import { Lab, ROOT } from '../helpers/lab.js';

describeKernel('contrib: feed import and systemd units', () => {
  let lab: Lab;
  const env = () => ({ VOS_PIN_DIR: lab.pinDir, VOS_STATE_DIR: join(lab.tmp, 'state'), VOS_LOG_FORMAT: 'json' });
  const importFeed = (...args: string[]) => execa(join(ROOT, 'contrib/cron/feed-import.sh'), args, { env: env(), reject: false });
  const feedEntries = async () => {
    const r = await execa(join(ROOT, 'bin/vosctl'), ['list', '--json', '--source', 'scanners'], { env: env() });
    return (JSON.parse(r.stdout) as Array<{ ip: string }>).map((e) => e.ip).sort();
  };

  beforeAll(async () => {
    lab = new Lab();
    await lab.loadUnattached();
  });
  afterAll(() => lab.cleanup());

  it('feed-import.sh makes a feed file the whole set of its source, and an empty or missing feed changes nothing', async () => {
    const feed = join(lab.tmp, 'scanners.txt');
    // ordinary unicast: a feed import skips documentation ranges such as 198.51.100.0/24
    writeFileSync(feed, '# scanners\n45.134.26.1\n45.134.26.2\n');
    const r1 = await importFeed(feed, 'scanners', '--ttl', '1d');
    expect(r1.exitCode).toBe(0);
    expect(await feedEntries()).toEqual(['45.134.26.1', '45.134.26.2']);
    writeFileSync(feed, '45.134.26.2\n45.134.26.3\n');
    expect((await importFeed(feed, 'scanners')).exitCode).toBe(0);
    expect(await feedEntries()).toEqual(['45.134.26.2', '45.134.26.3']);

    writeFileSync(feed, '# the feed answered with nothing\n');
    const empty = await importFeed(feed, 'scanners');
    expect(empty).toMatchObject({ exitCode: 1, stderr: expect.stringContaining("has 0 entries (fewer than 1); source 'scanners' left as it was") });
    // a feed URL that cannot be fetched (nothing listens on loopback port 9)
    const down = await importFeed('http://127.0.0.1:9/feed.txt', 'scanners');
    expect(down).toMatchObject({ exitCode: 1, stderr: expect.stringContaining("could not fetch http://127.0.0.1:9/feed.txt; source 'scanners' left as it was") });
    expect(await feedEntries()).toEqual(['45.134.26.2', '45.134.26.3']);
    expect(await importFeed(feed, 'bad name')).toMatchObject({ exitCode: 2, stderr: expect.stringContaining("bad source name 'bad name'") });
  });

  it('the systemd units pass systemd-analyze verify (pointed at this checkout)', async () => {
    const dir = join(lab.tmp, 'units');
    mkdirSync(dir);
    for (const f of readdirSync(join(ROOT, 'contrib/systemd'))) {
      if (!/\.(service|timer)$/.test(f)) continue;
      const text = readFileSync(join(ROOT, 'contrib/systemd', f), 'utf8').replaceAll('/opt/vos-fastpath', ROOT);
      writeFileSync(join(dir, f.replace('@.service', '@eth0.service')), text);
    }
    const units = readdirSync(dir).map((f) => join(dir, f));
    expect(units.map((u) => u.split('/').pop()).sort()).toEqual(['vos-fastpath-attach@eth0.service', 'vos-fastpath-consume.service', 'vos-fastpath-exporter.service', 'vos-fastpath-gc.service', 'vos-fastpath-gc.timer']);
    const r = await execa('systemd-analyze', ['verify', '--man=no', ...units], { reject: false, env: { SYSTEMD_LOG_LEVEL: 'warning' } });
    expect({ code: r.exitCode, out: `${r.stdout}${r.stderr}` }).toEqual({ code: 0, out: '' });
    const consume = readFileSync(join(ROOT, 'contrib/systemd/vos-fastpath-consume.service'), 'utf8');
    expect(consume).toMatch(/^Restart=on-failure$/m);
    expect(consume).toMatch(/^EnvironmentFile=\/etc\/vos-fastpath\/consume\.env$/m);
    expect(consume).not.toMatch(/amqps?:\/\/[^\s]*:[^\s]*@/); // no credentials in the unit
    expect(existsSync(join(ROOT, 'contrib/systemd/consume.env.example'))).toBe(true);
  });
});
