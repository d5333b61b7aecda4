import { afterEach, describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { appendFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { StateStore, type Entry } from '../../lib/state.js';

const e = (ip: string, expires = 0): Entry => ({ ip, source: 'feed', reason: 'r', added: 1_800_000_000, expires });
let dir: string;
afterEach(() => rmSync(dir, { recursive: true, force: true }));
const fresh = () => (dir = mkdtempSync(join(tmpdir(), 'vfp-state-')));

describe('StateStore', () => {
  it('persists puts and deletes across instances', async () => {
    const a = new StateStore(fresh());
    await a.withLock(() => a.commit([e('1.1.1.1'), e('2.2.2.2', 5)], []));
    await a.withLock(() => a.commit([], ['1.1.1.1']));
    const b = new StateStore(dir);
    expect([...b.load().values()]).toEqual([e('2.2.2.2', 5)]);
  });

  it('journals a bulk of alike entries compactly and reads back every one, exactly', async () => {
    const a = new StateStore(fresh());
    const bulk = Array.from({ length: 25_000 }, (_, i) => e(`10.${i >> 16}.${(i >> 8) & 255}.${i & 255}`, 1_900_000_000));
    const odd = { ip: '9.9.9.9', source: 'manual', reason: 'by "hand"', added: 1_800_000_001, expires: 0 };
    await a.withLock(() => a.commit([...bulk.slice(0, 12_000), odd, ...bulk.slice(12_000)], []));
    const journal = readFileSync(join(dir, 'journal.jsonl'), 'utf8').trim().split('\n');
    // 12,000 alike: a full line of 10,000 and one of 2,000; the odd one alone; 13,000 alike: 10,000 + 3,000
    expect(journal.map((l) => (JSON.parse(l) as { op: string; ips?: string[] }).ips?.length ?? (JSON.parse(l) as { op: string }).op)).toEqual([10_000, 2_000, 'put', 10_000, 3_000]);
    const b = new StateStore(dir);
    const loaded = b.load();
    expect(loaded.size).toBe(25_001);
    expect(loaded.get('9.9.9.9')).toEqual(odd);
    expect(loaded.get('10.0.48.255')).toEqual(e('10.0.48.255', 1_900_000_000));
    // and the writer's own view, kept without re-reading, agrees
    expect(new Map(a.load())).toEqual(new Map(loaded));
  });

  it('sees what another writer appended (refresh reads only the new tail)', async () => {
    const a = new StateStore(fresh());
    const b = new StateStore(dir);
    expect(b.load().size).toBe(0);
    await a.withLock(() => a.commit([e('3.3.3.3')], []));
    expect([...b.load().keys()]).toEqual(['3.3.3.3']);
  });

  it("a writer's own commits and other writers' later ones are read back in the order they were made", async () => {
    const a = new StateStore(fresh());
    const b = new StateStore(dir);
    await a.withLock(() => a.commit([e('5.5.5.5', 1), e('6.6.6.6'), e('8.8.8.8')], []));
    await b.withLock(() => b.commit([e('5.5.5.5', 2)], ['6.6.6.6']));
    await a.withLock(() => a.commit([], ['8.8.8.8']));
    await a.withLock(() => a.commit([e('7.7.7.7')], []));
    await a.withLock(() => a.commit([e('8.8.8.8', 3)], []));
    const truth = new Map(new StateStore(dir).load());
    expect([...truth.keys()].sort()).toEqual(['5.5.5.5', '7.7.7.7', '8.8.8.8']);
    expect(truth.get('5.5.5.5')?.expires).toBe(2);
    expect(new Map(a.load())).toEqual(truth);
    expect(new Map(b.load())).toEqual(truth);
  });

  it('a reader that had read the old journal sees the truth after another writer compacts', async () => {
    const dir = fresh();
    const a = new StateStore(dir);
    const b = new StateStore(dir);
    await a.withLock(() => a.commit([e('1.1.1.1'), e('2.2.2.2')], []));
    expect(b.load().size).toBe(2);
    await a.withLock(() => a.commit([e('3.3.3.3')], ['1.1.1.1']));
    await a.withLock(() => a.compact());
    await a.withLock(() => a.commit([e('4.4.4.4')], []));
    expect([...b.load().keys()].sort()).toEqual(['2.2.2.2', '3.3.3.3', '4.4.4.4']);
    await b.withLock(() => b.commit([], ['2.2.2.2']));
    expect([...a.load().keys()].sort()).toEqual(['3.3.3.3', '4.4.4.4']);
    expect([...new StateStore(dir).load().keys()].sort()).toEqual(['3.3.3.3', '4.4.4.4']);
  });

  it('compacts into a snapshot by rename and keeps every entry', async () => {
    const a = new StateStore(fresh());
    await a.withLock(() => a.commit(Array.from({ length: 50 }, (_, i) => e(`10.0.0.${i}`)), []));
    await a.withLock(() => a.compact());
    // the journal is folded in: emptied (a crash before that replays it harmlessly)
    expect(readdirSync(dir).filter((f) => f !== 'journal.jsonl')).toEqual(['blocklist.jsonl']);
    expect(existsSync(join(dir, 'journal.jsonl')) ? statSync(join(dir, 'journal.jsonl')).size : 0).toBe(0);
    expect(new StateStore(dir).load().size).toBe(50);
  });

  it('lookup finds just the asked entries, from snapshot and journal in order, as a full load would', async () => {
    const w = new StateStore(fresh());
    await w.withLock(() => w.commit([e('1.2.3.4', 1), e('1.2.3.40'), { ...e('9.9.9.9'), reason: 'like "1.2.3.5"' }], []));
    await w.withLock(() => w.compact());
    await w.withLock(() => w.commit(Array.from({ length: 300 }, (_, i) => e(`10.1.${i >> 8}.${i & 255}`, 7)), []));
    await w.withLock(() => w.commit([e('1.2.3.4', 2)], ['1.2.3.40']));
    await w.withLock(() => w.commit([], ['10.1.0.5']));
    appendFileSync(join(dir, 'journal.jsonl'), '{"op":"del","ip":"1.2.3.4"'); // torn: never happened
    const asked = ['1.2.3.4', '1.2.3.40', '1.2.3.5', '10.1.0.5', '10.1.0.6', '198.51.100.0/24'];
    const found = new StateStore(dir).lookup(asked);
    expect([...found.keys()].sort()).toEqual(['1.2.3.4', '10.1.0.6']);
    expect(found.get('1.2.3.4')?.expires).toBe(2);
    const full = new StateStore(dir).load();
    expect(new Map([...found])).toEqual(new Map(asked.filter((ip) => full.has(ip)).map((ip) => [ip, full.get(ip)!])));
  });

  it('agrees with a full load for any history of commits and compactions', async () => {
    const ips = ['203.0.113.1', '203.0.113.10', '203.0.113.100', '198.51.100.0/24', '198.51.100.7'];
    const step = fc.record({ puts: fc.subarray(ips), dels: fc.subarray(ips), expires: fc.nat(9), compact: fc.boolean(), loaded: fc.boolean() });
    await fc.assert(
      fc.asyncProperty(fc.array(step, { maxLength: 8 }), fc.subarray(ips), async (steps, asked) => {
        const d = mkdtempSync(join(tmpdir(), 'vfp-state-'));
        try {
          for (const st of steps) {
            const w = new StateStore(d);
            if (st.loaded) w.load();
            await w.withLock(() => {
              w.commit(st.puts.map((ip) => e(ip, st.expires)), st.dels);
              if (st.compact) w.compact();
            });
          }
          const full = new StateStore(d).load();
          const expected = new Map(asked.filter((ip) => full.has(ip)).map((ip) => [ip, full.get(ip)!]));
          expect(new Map(new StateStore(d).lookup(asked))).toEqual(expected);
        } finally {
          rmSync(d, { recursive: true, force: true });
        }
      }),
      { numRuns: 60 },
    );
  });

  it('a writer that never loaded the view appends and folds the journal once it outgrows the snapshot', async () => {
    const w = new StateStore(fresh());
    await w.withLock(() => w.commit(Array.from({ length: 20_000 }, (_, i) => e(`10.2.${i >> 8}.${i & 255}`)), []));
    expect(existsSync(join(dir, 'blocklist.jsonl'))).toBe(false); // one "puts" line per 10,000: still under 1 MiB
    for (let i = 0; i < 40; i++) {
      const one = new StateStore(dir);
      await one.withLock(() => one.commit(Array.from({ length: 1_000 }, (_, j) => ({ ...e(`10.3.${(i * 1000 + j) >> 8}.${(i * 1000 + j) & 255}`), reason: `r${j}` })), []));
    }
    expect(existsSync(join(dir, 'blocklist.jsonl'))).toBe(true);
    expect(statSync(join(dir, 'journal.jsonl')).size).toBeLessThan(statSync(join(dir, 'blocklist.jsonl')).size);
    expect(new StateStore(dir).load().size).toBe(60_000);
  });

  it('ignores a torn last journal line (a crash mid-write)', async () => {
    const a = new StateStore(fresh());
    await a.withLock(() => a.commit([e('4.4.4.4')], []));
    appendFileSync(join(dir, 'journal.jsonl'), '{"op":"put","e":["5.5.5.5","feed"');
    expect([...new StateStore(dir).load().keys()]).toEqual(['4.4.4.4']);
  });

  it('takes over a lock left without a pid (a writer killed between creating and naming it)', async () => {
    const a = new StateStore(fresh());
    const { mkdirSync, utimesSync } = await import('node:fs');
    mkdirSync(join(dir, 'lock'));
    const old = new Date(Date.now() - 10_000);
    utimesSync(join(dir, 'lock'), old, old);
    await a.withLock(() => a.commit([e('8.8.8.8')], []));
    expect(new StateStore(dir).load().size).toBe(1);
    expect(readdirSync(dir).sort()).toEqual(['journal.jsonl']);
  });

  it('serializes writers in one process, leaving no temporary folders', async () => {
    const a = new StateStore(fresh());
    const b = new StateStore(dir);
    const order: string[] = [];
    const slow = (who: string) => async () => {
      order.push(`${who} in`);
      await new Promise((r) => setTimeout(r, 30));
      order.push(`${who} out`);
    };
    await Promise.all([a.withLock(slow('a')), b.withLock(slow('b'))]);
    expect(order).toEqual(['a in', 'a out', 'b in', 'b out']);
    expect(readdirSync(dir)).toEqual([]);
  });

  it('takes over a lock left by a dead process', async () => {
    const a = new StateStore(fresh());
    await a.withLock(() => a.commit([e('6.6.6.6')], []));
    const { mkdirSync, writeFileSync } = await import('node:fs');
    mkdirSync(join(dir, 'lock'));
    writeFileSync(join(dir, 'lock', 'pid'), '999999999');
    await a.withLock(() => a.commit([e('7.7.7.7')], []));
    expect(new StateStore(dir).load().size).toBe(2);
  });
});
