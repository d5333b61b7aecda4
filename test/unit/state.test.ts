import { afterEach, describe, expect, it } from '@jest/globals';
import { appendFileSync, existsSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
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

  it('sees what another writer appended (refresh reads only the new tail)', async () => {
    const a = new StateStore(fresh());
    const b = new StateStore(dir);
    expect(b.load().size).toBe(0);
    await a.withLock(() => a.commit([e('3.3.3.3')], []));
    expect([...b.load().keys()]).toEqual(['3.3.3.3']);
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

  it('ignores a torn last journal line (a crash mid-write)', async () => {
    const a = new StateStore(fresh());
    await a.withLock(() => a.commit([e('4.4.4.4')], []));
    appendFileSync(join(dir, 'journal.jsonl'), '{"op":"put","e":["5.5.5.5","feed"');
    expect([...new StateStore(dir).load().keys()]).toEqual(['4.4.4.4']);
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
