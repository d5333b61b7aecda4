/** The SQLite state store: persistence, transactions, migration of the old files, errors that name the file. */
import { afterEach, describe, expect, it } from '@jest/globals';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { StateCorruptError, StateError, StateStore, type Entry } from '../../lib/state.js';

const e = (ip: string, expires = 0, source = 'feed'): Entry => ({ ip, source, reason: 'r', added: 1_800_000_000, expires });
let dir: string;
const stores: StateStore[] = [];
afterEach(() => {
  for (const s of stores.splice(0)) s.close();
  rmSync(dir, { recursive: true, force: true });
});
const fresh = () => (dir = mkdtempSync(join(tmpdir(), 'vfp-state-')));
const open = (d = dir) => {
  const s = new StateStore(d);
  stores.push(s);
  return s;
};
const sorted = (s: StateStore) => [...s.iterate()].sort((a, b) => a.ip.localeCompare(b.ip));

describe('StateStore on SQLite', () => {
  it('persists puts and deletes, and another connection reads them', async () => {
    const a = open(fresh());
    await a.transaction(() => a.commit([e('1.1.1.1'), e('2.2.2.2', 5), { ...e('9.9.9.9'), reason: 'it\'s "quoted"' }], []));
    await a.transaction(() => a.commit([], ['1.1.1.1']));
    expect(sorted(open())).toEqual([e('2.2.2.2', 5), { ...e('9.9.9.9'), reason: 'it\'s "quoted"' }]);
  });

  it('is WAL with synchronous FULL, readable with the sqlite3 shell', async () => {
    const a = open(fresh());
    a.commit([e('10.0.0.0/8'), e('2001:db8::1')], []);
    expect(a.db.pragma('journal_mode', { simple: true })).toBe('wal');
    expect(a.db.pragma('synchronous', { simple: true })).toBe(2);
    const out = execFileSync('sqlite3', [a.path, 'SELECT target, family, prefixlen FROM entries ORDER BY target']).toString();
    expect(out.trim().split('\n')).toEqual(['10.0.0.0/8|4|8', '2001:db8::1|6|128']);
  });

  it('a transaction that throws leaves nothing behind', async () => {
    const a = open(fresh());
    await expect(
      a.transaction(async () => {
        a.commit([e('3.3.3.3')], []);
        throw new Error('map write failed');
      }),
    ).rejects.toThrow('map write failed');
    expect(a.lookup(['3.3.3.3']).size).toBe(0);
    // and the next transaction works
    await a.transaction(() => a.commit([e('4.4.4.4')], []));
    expect([...a.lookup(['4.4.4.4', '3.3.3.3']).keys()]).toEqual(['4.4.4.4']);
  });

  it('a bulk of 25,000 with one odd entry in the middle reads back exactly', async () => {
    const a = open(fresh());
    const bulk = Array.from({ length: 25_000 }, (_, i) => e(`10.${i >> 16}.${(i >> 8) & 255}.${i & 255}`, 1_900_000_000));
    const odd = { ip: '9.9.9.9', source: 'manual', reason: null, added: 1_800_000_001, expires: 0 };
    await a.transaction(() => a.commit([...bulk.slice(0, 12_000), odd, ...bulk.slice(12_000)], []));
    const all = open().all();
    expect(all.size).toBe(25_001);
    expect(all.get('9.9.9.9')).toEqual(odd);
    expect(all.get('10.0.48.255')).toEqual(e('10.0.48.255', 1_900_000_000));
    // Many targets: found (by one scan of the table); a few: just those.
    const many = a.lookup(bulk.slice(100, 20_100).map((x) => x.ip));
    expect(bulk.slice(100, 20_100).every((x) => many.get(x.ip)?.expires === 1_900_000_000)).toBe(true);
    expect([...a.lookup(['9.9.9.9', '10.0.0.1', '8.8.8.8']).keys()].sort()).toEqual(['10.0.0.1', '9.9.9.9']);
  });

  it('counts by source, finds the expired by the index, keeps consumer offsets', async () => {
    const a = open(fresh());
    await a.transaction(() => {
      a.commit([e('1.0.0.1', 100, 'a'), e('1.0.0.2', 0, 'a'), e('1.0.0.3', 300, 'b'), e('1.0.0.0/24', 0, 'b')], []);
      a.setConsumerOffset('stream.blocklist', 4711);
    });
    expect(Object.fromEntries(a.countBySource())).toEqual({ a: 2, b: 2 });
    expect(a.expired(200)).toEqual(['1.0.0.1']);
    expect(a.liveCounts(200)).toEqual({ exact: 2, prefixes: 1 });
    expect(open().consumerOffset('stream.blocklist')).toBe(4711n);
    const plan = a.db.prepare('EXPLAIN QUERY PLAN SELECT source, count(*) FROM entries GROUP BY source').all() as Array<{ detail: string }>;
    expect(plan.map((p) => p.detail).join(' ')).toMatch(/COVERING INDEX entries_by_source/);
  });

  it('a writer waits for another (bounded) and names the file past the bound', async () => {
    const a = open(fresh());
    a.load();
    const holder = open();
    holder.db.exec('BEGIN IMMEDIATE');
    process.env.VOS_STATE_TIMEOUT = '0'; // whole seconds (0: do not wait), the one rule vosctl and the scripts share
    try {
      const late = new StateStore(dir);
      stores.push(late);
      const err = await late.transaction(() => undefined).catch((x: unknown) => x);
      expect(err).toBeInstanceOf(StateError);
      expect((err as Error).message).toContain(join(dir, 'state.sqlite3'));
      expect((err as Error).message).toMatch(/locked.*nothing was changed/);
    } finally {
      delete process.env.VOS_STATE_TIMEOUT;
      holder.db.exec('ROLLBACK');
    }
  });

  it('a file that is not a database is reported with its path and SQLite\'s words', () => {
    fresh();
    writeFileSync(join(dir, 'state.sqlite3'), 'this is not SQLite'.repeat(400));
    const err = (() => {
      try {
        open().all();
      } catch (x) {
        return x;
      }
    })();
    expect(err).toBeInstanceOf(StateCorruptError);
    expect((err as Error).message).toContain(join(dir, 'state.sqlite3'));
    expect((err as Error).message).toContain('file is not a database');
    expect((err as Error).message).toContain('reconcile --from map');
    // setAside keeps the damaged file and lets a new one be made
    const aside = open().setAside();
    expect(existsSync(aside)).toBe(true);
    expect(open().isEmpty()).toBe(true);
  });
});

describe('migration from the old files', () => {
  it('migrates every readable entry once, names the unreadable lines, and keeps the old files aside', () => {
    fresh();
    const line = (x: Entry) => JSON.stringify([x.ip, x.source, x.reason, x.added, x.expires]);
    writeFileSync(join(dir, 'blocklist.jsonl'), [line(e('1.1.1.1')), line(e('2.2.2.2', 7)), '["3.3.3.3","feed",nu'].join('\n') + '\n');
    writeFileSync(
      join(dir, 'journal.jsonl'),
      [
        JSON.stringify({ op: 'puts', s: 'bulk', r: null, a: 5, x: 0, ips: ['5.5.5.1', '5.5.5.2'] }),
        'null',
        JSON.stringify({ op: 'del', ip: '1.1.1.1' }),
        JSON.stringify({ op: 'put', e: [...JSON.parse(line(e('6.6.6.6'))) as unknown[]] }),
        '{"op":"put","e":["7.7.7.7"', // torn last line
      ].join('\n'),
    );
    const s = open();
    expect(sorted(s).map((x) => x.ip)).toEqual(['2.2.2.2', '5.5.5.1', '5.5.5.2', '6.6.6.6']);
    expect(s.lookup(['5.5.5.2']).get('5.5.5.2')).toEqual({ ip: '5.5.5.2', source: 'bulk', reason: null, added: 5, expires: 0 });
    expect(readdirSync(dir).sort()).toEqual(expect.arrayContaining(['pre-sqlite', 'state.sqlite3']));
    expect(readdirSync(dir)).not.toContain('blocklist.jsonl');
    expect(readdirSync(join(dir, 'pre-sqlite')).sort()).toEqual(['blocklist.jsonl', 'journal.jsonl']);
    expect(readdirSync(dir).filter((f) => f.includes('migrating'))).toEqual([]);
    // a second open does not migrate again
    expect(sorted(open()).length).toBe(4);
  });
});
