/**
 * The blocklist's truth on disk, so a reboot (bpffs is memory) loses nothing.
 *
 * Layout in the state folder:
 *   blocklist.jsonl  snapshot, one entry per line, replaced by temp file + fsync + rename
 *   journal.jsonl    changes since the snapshot (put, puts for a bulk of alike entries, del), fsynced per change set
 *   lock/            held by a writer (mkdir is atomic); holds the writer's pid
 *
 * Appending keeps a single `vosctl block` and every consume batch cheap even
 * with a million entries; the journal is folded into the snapshot once it
 * grows. A torn last journal line (a crash mid-write) is ignored on read.
 */
import { closeSync, existsSync, fstatSync, type Stats, fsyncSync, ftruncateSync, mkdirSync, openSync, readFileSync, readSync, renameSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { EnvError, RuntimeError } from './errors.js';

export interface Entry {
  /** Canonical target: "a.b.c.d" or "a.b.c.d/n". */
  ip: string;
  source: string;
  reason: string | null;
  /** Unix seconds. */
  added: number;
  /** Unix seconds; 0 = never. */
  expires: number;
}

/**
 * Journal lines. "puts" carries many addresses that share source, reason and
 * times (a bulk load): one short string per address instead of a whole entry.
 */
type Op =
  | { op: 'put'; e: Entry }
  | { op: 'puts'; s: string; r: string | null; a: number; x: number; ips: string[] }
  | { op: 'del'; ip: string };

const SNAPSHOT = 'blocklist.jsonl';
const JOURNAL = 'journal.jsonl';
const LOCK = 'lock';
const LOCK_WAIT_MS = 10_000;

/** Characters that need no JSON escaping: addresses and source names are made of these. */
const PLAIN = /^[\w.:/-]*$/;

function encodeEntry(e: Entry): string {
  // Built by hand: bulk loads write a million of these, and JSON.stringify of an array is the slow part.
  const source = PLAIN.test(e.source) ? `"${e.source}"` : JSON.stringify(e.source);
  const ip = PLAIN.test(e.ip) ? `"${e.ip}"` : JSON.stringify(e.ip);
  return `[${ip},${source},${e.reason === null ? 'null' : JSON.stringify(e.reason)},${e.added},${e.expires}]`;
}

function decodeEntry(a: unknown): Entry | null {
  if (!Array.isArray(a) || typeof a[0] !== 'string' || typeof a[1] !== 'string') return null;
  return { ip: a[0], source: a[1], reason: typeof a[2] === 'string' ? a[2] : null, added: Number(a[3]) || 0, expires: Number(a[4]) || 0 };
}

const PUTS_PER_LINE = 10_000;
/** Up to this many targets, lookup searches the files for them; beyond, one full load costs less. */
const LOOKUP_SEARCH_MAX = 16;

/** Journal lines for puts: runs of entries alike but for the address become "puts" lines. */
function* journalPuts(puts: readonly Entry[]): Generator<string> {
  for (let i = 0; i < puts.length; ) {
    const e = puts[i]!;
    let j = i + 1;
    while (j < puts.length && j - i < PUTS_PER_LINE) {
      const f = puts[j]!;
      if (f.source !== e.source || f.reason !== e.reason || f.added !== e.added || f.expires !== e.expires) break;
      j++;
    }
    if (j - i === 1) yield `{"op":"put","e":${encodeEntry(e)}}`;
    else {
      const ips = puts.slice(i, j).map((x) => (PLAIN.test(x.ip) ? `"${x.ip}"` : JSON.stringify(x.ip)));
      yield `{"op":"puts","s":${JSON.stringify(e.source)},"r":${JSON.stringify(e.reason)},"a":${e.added},"x":${e.expires},"ips":[${ips.join(',')}]}`;
    }
    i = j;
  }
}

/**
 * Apply one journal line to `into` (only the addresses in `only`, if given).
 * Returns how many records the line holds (a "puts" counts one per address),
 * or 0 for a line that is not JSON.
 */
function applyJournalLine(line: string, into: Map<string, Entry>, only?: ReadonlySet<string>): number {
  let op: Op;
  try {
    op = JSON.parse(line) as Op;
  } catch {
    return 0;
  }
  if (op.op === 'puts' && Array.isArray(op.ips)) {
    for (const ip of op.ips) {
      if (typeof ip === 'string' && (!only || only.has(ip))) into.set(ip, { ip, source: String(op.s), reason: typeof op.r === 'string' ? op.r : null, added: Number(op.a) || 0, expires: Number(op.x) || 0 });
    }
    return op.ips.length;
  }
  if (op.op === 'put') {
    const e = decodeEntry(op.e);
    if (e && (!only || only.has(e.ip))) into.set(e.ip, e);
  } else if (op.op === 'del' && (!only || only.has(op.ip))) into.delete(op.ip);
  return 1;
}

/**
 * The lines of a file's bytes that contain any of `needles`, in file order.
 * Searched as bytes: decoding a 40 MB snapshot to find one line costs more
 * than the search. A last line without its newline (torn) is left out.
 */
function linesContaining(bytes: Buffer, needles: Iterable<string>): string[] {
  const starts = new Set<number>();
  for (const needle of needles) {
    const n = Buffer.from(needle);
    for (let at = bytes.indexOf(n); at >= 0; at = bytes.indexOf(n, at + n.length)) starts.add(at === 0 ? 0 : bytes.lastIndexOf(10, at - 1) + 1);
  }
  const lines: string[] = [];
  for (const start of [...starts].sort((a, b) => a - b)) {
    const end = bytes.indexOf(10, start);
    if (end >= 0) lines.push(bytes.toString('utf8', start, end));
  }
  return lines;
}

/** Makes each lock attempt's temporary folder unique within this process too. */
let lockAttempts = 0;

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export class StateStore {
  private entries = new Map<string, Entry>();
  private journalOffset = 0;
  private journalIno = -1;
  private snapshotIno = -1;
  private journalLines = 0;
  /** Whether `entries` is the full view (refresh has run); until then, small operations read only their own entries (lookup). */
  private loaded = false;
  /**
   * Our own committed change sets, on disk but not yet in `entries`: folded in
   * at the next refresh. A one-shot bulk load exits first, and skips the
   * million Map updates (~0.4 s).
   */
  private unfolded: Array<{ puts: readonly Entry[]; dels: readonly string[] }> = [];

  constructor(readonly dir: string) {}

  private path(name: string): string {
    return join(this.dir, name);
  }

  private ensureDir(): void {
    try {
      mkdirSync(this.dir, { recursive: true, mode: 0o750 });
    } catch (err) {
      throw new EnvError(`cannot create the state folder ${this.dir}: ${(err as Error).message}`);
    }
  }

  /** Run fn holding the writer lock; a lock left by a dead process is taken over. */
  async withLock<T>(fn: () => Promise<T> | T): Promise<T> {
    this.ensureDir();
    const lock = this.path(LOCK);
    // The lock appears with its holder's pid already inside (a directory renamed into
    // place), so a writer killed at any moment leaves a lock that names a dead pid.
    const mine = this.path(`${LOCK}.${process.pid}.${++lockAttempts}.tmp`);
    const deadline = Date.now() + LOCK_WAIT_MS;
    for (;;) {
      try {
        mkdirSync(mine, { recursive: true });
        writeFileSync(join(mine, 'pid'), String(process.pid));
        renameSync(mine, lock);
        break;
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code !== 'ENOTEMPTY' && code !== 'EEXIST') {
          rmSync(mine, { recursive: true, force: true });
          throw new EnvError(`cannot lock ${this.dir}: ${(err as Error).message}`);
        }
        let holder = 0;
        try {
          holder = Number(readFileSync(join(lock, 'pid'), 'latin1'));
        } catch {
          /* removed right now, or left without a pid by an older version */
        }
        const stale = holder ? !pidAlive(holder) : this.ageMs(lock) > 2_000;
        if (stale) rmSync(lock, { recursive: true, force: true });
        else if (Date.now() > deadline) {
          rmSync(mine, { recursive: true, force: true });
          throw new RuntimeError(`the state folder ${this.dir} is locked by pid ${holder || 'unknown'} for over ${LOCK_WAIT_MS / 1000}s`);
        } else await new Promise((r) => setTimeout(r, 20));
      }
    }
    try {
      return await fn();
    } finally {
      rmSync(lock, { recursive: true, force: true });
    }
  }

  private ageMs(path: string): number {
    try {
      return Date.now() - statSync(path).mtimeMs;
    } catch {
      return 0;
    }
  }

  private ino(name: string): number {
    try {
      return statSync(this.path(name)).ino;
    } catch {
      return -1;
    }
  }

  /** The bytes of a file from an offset on: a refresh reads only what was appended since the last. */
  private readFrom(name: string, offset: number): Buffer {
    let fd: number;
    try {
      fd = openSync(this.path(name), 'r');
    } catch {
      return Buffer.alloc(0);
    }
    try {
      const size = fstatSync(fd).size;
      if (size <= offset) return Buffer.alloc(0);
      const buf = Buffer.alloc(size - offset);
      let got = 0;
      while (got < buf.length) {
        const n = readSync(fd, buf, got, buf.length - got, offset + got);
        if (n === 0) break;
        got += n;
      }
      return buf.subarray(0, got);
    } finally {
      closeSync(fd);
    }
  }

  /** Bring the in-memory view up to date with the files: only the new journal tail when nothing was compacted. */
  refresh(): Map<string, Entry> {
    this.loaded = true;
    const snapIno = this.ino(SNAPSHOT);
    const jIno = this.ino(JOURNAL);
    if (snapIno !== this.snapshotIno || jIno !== this.journalIno) {
      this.unfolded = []; // the files hold them: read below
      this.entries = new Map();
      this.journalOffset = 0;
      this.journalLines = 0;
      this.snapshotIno = snapIno;
      this.journalIno = jIno;
      if (snapIno >= 0) {
        for (const line of readFileSync(this.path(SNAPSHOT), 'utf8').split('\n')) {
          if (!line) continue;
          const e = decodeEntry(JSON.parse(line));
          if (e) this.entries.set(e.ip, e);
        }
      }
    }
    this.fold();
    if (jIno >= 0) {
      const buf = this.readFrom(JOURNAL, this.journalOffset);
      if (buf.length) {
        const tail = buf.toString('utf8');
        const complete = tail.lastIndexOf('\n') + 1; // a torn last line waits (or is dropped at compaction)
        for (const line of tail.slice(0, complete).split('\n')) {
          if (line) this.journalLines += Math.max(1, applyJournalLine(line, this.entries));
        }
        this.journalOffset += Buffer.byteLength(tail.slice(0, complete));
      }
    }
    return this.entries;
  }

  /**
   * The entries of (at least) these targets. Once the full view is loaded (a
   * long-lived consumer, a bulk operation), or for many targets, it is the
   * full view, kept current; for a few targets before that, the files are
   * searched for the targets' texts and only the lines that name them are
   * parsed, so a `vosctl block` on a host holding a million-entry feed reads
   * text instead of building a million entries.
   */
  lookup(ips: readonly string[]): ReadonlyMap<string, Entry> {
    if (this.loaded || ips.length > LOOKUP_SEARCH_MAX) return this.refresh();
    const only = new Set(ips);
    const found = new Map<string, Entry>();
    const quoted = [...only].map((ip) => JSON.stringify(ip));
    for (const line of linesContaining(this.readFrom(SNAPSHOT, 0), quoted.map((q) => `[${q},`))) {
      const e = decodeEntry(JSON.parse(line));
      if (e && only.has(e.ip)) found.set(e.ip, e);
    }
    for (const line of linesContaining(this.readFrom(JOURNAL, 0), quoted)) applyJournalLine(line, found, only);
    return found;
  }

  /** Fold our own unfolded commits into `entries`, in commit order, before anything later is read. */
  private fold(): void {
    for (const { puts, dels } of this.unfolded) {
      for (const e of puts) this.entries.set(e.ip, e);
      for (const ip of dels) this.entries.delete(ip);
    }
    this.unfolded = [];
  }

  /** The current entries (a live view: do not mutate). */
  load(): ReadonlyMap<string, Entry> {
    return this.refresh();
  }

  /**
   * The journal text of a change set, in chunks of lines. Apart from commit so a
   * caller can build it while the kernel is busy with the map write.
   */
  journalChunks(puts: readonly Entry[], dels: readonly string[]): string[] {
    const chunks: string[] = [];
    let chunk: string[] = [];
    const flush = (): void => {
      if (chunk.length) chunks.push(chunk.join('\n') + '\n');
      chunk = [];
    };
    for (const line of journalPuts(puts)) {
      chunk.push(line);
      if (chunk.length === 1_000) flush();
    }
    for (const ip of dels) {
      chunk.push(JSON.stringify({ op: 'del', ip }));
      if (chunk.length === 10_000) flush();
    }
    flush();
    return chunks;
  }

  /** Record puts and deletes durably (chunks: their journalChunks, if already built). Call inside withLock. */
  commit(puts: readonly Entry[], dels: readonly string[], chunks?: readonly string[]): void {
    if (!puts.length && !dels.length) return;
    this.ensureDir();
    const text = chunks ?? this.journalChunks(puts, dels);
    if (!this.loaded) {
      this.append(text);
      // No view to count entries in: fold once the journal outgrows the snapshot (in bytes).
      if (this.size(JOURNAL) > Math.max(1 << 20, this.size(SNAPSHOT))) this.compact();
      return;
    }
    this.refresh();
    // Nobody appended since our refresh (we hold the lock): our own lines need no re-reading.
    const { ours, written, ino } = this.append(text, (st) => st.size === this.journalOffset && (st.ino === this.journalIno || (this.journalIno === -1 && this.journalOffset === 0)));
    if (ours) {
      this.journalIno = ino;
      this.unfolded.push({ puts, dels });
      this.journalOffset += written;
      this.journalLines += puts.length + dels.length;
    } else this.refresh(); // someone else appended too: read it all back in order
    // Entries after folding, at most (a put may replace an entry): enough to decide compaction.
    const size = this.entries.size + this.unfolded.reduce((n, c) => n + c.puts.length, 0);
    if (this.journalLines > Math.max(10_000, size)) this.compact();
  }

  /** Append lines to the journal, durably; `ours` is what isOurs said of the file just before. */
  private append(text: readonly string[], isOurs: (st: Stats) => boolean = () => false): { ours: boolean; written: number; ino: number } {
    const fd = openSync(this.path(JOURNAL), 'a', 0o640);
    let written = 0;
    try {
      const st = fstatSync(fd);
      const ours = isOurs(st);
      for (const c of text) written += writeSync(fd, c);
      fsyncSync(fd);
      return { ours, written, ino: st.ino };
    } finally {
      closeSync(fd);
    }
  }

  private size(name: string): number {
    try {
      return statSync(this.path(name)).size;
    } catch {
      return 0;
    }
  }

  /** Fold the journal into a new snapshot: temp file, fsync, rename, then drop the journal. Call inside withLock. */
  compact(): void {
    this.ensureDir();
    const entries = this.refresh();
    const tmp = this.path(`${SNAPSHOT}.tmp`);
    const fd = openSync(tmp, 'w', 0o640);
    try {
      let chunk: string[] = [];
      for (const e of entries.values()) {
        chunk.push(encodeEntry(e));
        if (chunk.length === 10_000) {
          writeSync(fd, chunk.join('\n') + '\n');
          chunk = [];
        }
      }
      if (chunk.length) writeSync(fd, chunk.join('\n') + '\n');
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, this.path(SNAPSHOT));
    const dfd = openSync(this.dir, 'r');
    fsyncSync(dfd);
    closeSync(dfd);
    // Emptied, not removed: a crash before this line replays the journal onto
    // the new snapshot, which changes nothing. Our in-memory view is already
    // the snapshot's content, so nothing is read back.
    if (existsSync(this.path(JOURNAL))) {
      const jfd = openSync(this.path(JOURNAL), 'r+');
      ftruncateSync(jfd, 0);
      fsyncSync(jfd);
      closeSync(jfd);
    }
    this.snapshotIno = this.ino(SNAPSHOT);
    this.journalIno = this.ino(JOURNAL);
    this.journalOffset = 0;
    this.journalLines = 0;
  }
}
