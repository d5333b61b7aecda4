/**
 * The blocklist's truth on disk, so a reboot (bpffs is memory) loses nothing:
 * one SQLite database, `state.sqlite3` in the state folder, through
 * better-sqlite3. The schema is scripts/state.sql, shared with the scripts,
 * which write through the sqlite3 shell.
 *
 * - WAL mode with synchronous=FULL: a transaction that returned is on disk
 *   (the WAL is fsynced at every commit); a writer killed at any instant
 *   leaves the last committed state.
 * - Writers serialize on SQLite's write lock (BEGIN IMMEDIATE), waiting up to
 *   VOS_STATE_TIMEOUT seconds (default 60) for it; readers never wait.
 * - Every SQLite error is reported with the database's path and SQLite's own
 *   words (StateError; StateCorruptError when the file is not a sound database).
 * - A state folder of the old format (blocklist.jsonl + journal.jsonl) is
 *   migrated on first open: see migrateLegacy.
 */
import Database from 'better-sqlite3';
import { accessSync, constants as fsc, lstatSync, statSync, linkSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, renameSync, rmSync, statfsSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { createRequire } from 'node:module';
import { basename, dirname, join } from 'node:path';
import { clearFailure, failAtEnd } from './closers.js';
import { EnvError, NEEDS_ROOT, RuntimeError, UsageError } from './errors.js';
import { ROOT, SCRIPTS, SQLITE_ADDON } from './paths.js';
import { readLegacy } from './state-legacy.js';
import { quoted } from './quote.js';
import { checkStateRow, describeRowProblem, type RowProblem, type StateRow } from './state-row.js';

export interface Entry {
  /** Canonical target: "a.b.c.d" or "a.b.c.d/n" (IPv6: RFC 5952 text). */
  ip: string;
  source: string;
  reason: string | null;
  /** Unix seconds. */
  added: number;
  /** Unix seconds; 0 = never. */
  expires: number;
}

export const STATE_FILE = 'state.sqlite3';
const SCHEMA_VERSION = 1;
/**
 * The database header's application_id (PRAGMA application_id): 'VOSF',
 * 0x564f5346 = 1448039238, set by scripts/state.sql on create and stamped on
 * an older state database when it is opened for writing. A SQLite file with
 * another non-zero id belongs to another program and is refused.
 */
export const APPLICATION_ID = 0x564f5346;
const DEFAULT_TIMEOUT_S = 60;
/** Targets per statement for bulk reads and writes (json_each over one JSON array). */
const CHUNK = 10_000;
/** Rows per INSERT of bound values in a bulk write (SQLite allows 32,766 bound values). */
const ROWS = 1000;

/** The state database failed: the message names the file and gives SQLite's words and code. Exit 1. */
export class StateError extends RuntimeError {
  constructor(
    readonly path: string,
    readonly sqliteCode: string,
    detail: string,
  ) {
    super(detail);
  }
}

/**
 * A SQLite file that is not a vos-fastpath state database (another program's
 * tables, or a lookalike lacking the state's columns, unique index or header
 * marks): refused at open; `reconcile --from map` sets it aside.
 */
export class StateNotOursError extends StateError {}

/** The way out of a file that is not a state database. */
export const NOT_OURS_HINT = 'move it aside (or point VOS_STATE_DIR elsewhere), or let vosctl reconcile --from map set it aside and rebuild the state from the pinned maps';

let shapeText: string | undefined;
/** scripts/state-shape.sql, read once. */
function shapeSql(): string {
  return (shapeText ??= readFileSync(join(SCRIPTS, 'state-shape.sql'), 'utf8').replace(/^--.*$/gm, '').trim().replace(/;$/, ''));
}

/** The database file is not a sound SQLite database. */
export class StateCorruptError extends StateError {}

const CORRUPT = new Set(['SQLITE_CORRUPT', 'SQLITE_NOTADB', 'SQLITE_CORRUPT_INDEX', 'SQLITE_CORRUPT_SEQUENCE', 'SQLITE_CORRUPT_VTAB']);

/**
 * Beside the database, written when damage is found in it (PRAGMA
 * quick_check in gc and status, or SQLITE_CORRUPT/NOTADB from any command):
 * JSON {ino, found, words}. Every later command that opens that same file
 * (same inode) reports it and exits 1 once its work is done, until a check
 * passes again or reconcile sets the file aside. One stat per command.
 */
export const DAMAGE_MARK = `${STATE_FILE}.damage-found`;

/** Record damage found in the main database at path (not a migration's or a private copy); best effort. */
function recordDamage(path: string, words: string): void {
  if (basename(path) !== STATE_FILE) return;
  const st = statSafe(path);
  if (!st?.isFile()) return;
  try {
    writeFileSync(join(dirname(path), DAMAGE_MARK), `${JSON.stringify({ ino: st.ino, found: new Date().toISOString(), words })}\n`);
  } catch {
    // A full or read-only folder: the error itself still says it.
  }
}

/** How to rebuild the state when its file is lost: the maps still hold what is enforced. */
export const RECOVER_HINT = 'to rebuild it: vosctl reconcile --from map (it sets the damaged file aside, salvages the rows still readable in it and merges them with what the pinned maps hold)';

/** Wrap a better-sqlite3 error (or an fs error around the file) as a StateError naming the file. */
export function stateError(path: string, err: unknown, doing: string): StateError {
  if (err instanceof StateError) return err;
  const code = String((err as { code?: unknown }).code ?? 'EUNKNOWN');
  const words = (err as Error).message ?? String(err);
  if (CORRUPT.has(code) || /malformed|not a database/i.test(words)) {
    recordDamage(path, `${words} (${code}) while ${doing}`);
    return new StateCorruptError(path, code, `the state database ${path} is unreadable while ${doing}: ${words} (${code}); ${RECOVER_HINT}`);
  }
  if (code === 'SQLITE_BUSY' || code.startsWith('SQLITE_BUSY')) {
    return new StateError(path, code, `the state database ${path} stayed locked by another writer while ${doing}, past the wait of ${timeoutS()} s (VOS_STATE_TIMEOUT): ${words} (${code}); nothing was changed`);
  }
  const access = isAccessFailure(code) ? `; ${accessCause(path)}` : '';
  return new StateError(path, code, `the state database ${path} failed while ${doing}: ${words} (${code})${access}`);
}

/** SQLite codes that say the file or its folder cannot be written or opened (not that the database is bad). */
function isAccessFailure(code: string): boolean {
  return /^SQLITE_(READONLY|CANTOPEN|PERM|IOERR_SHM|IOERR_WRITE|IOERR_LOCK|FULL|IOERR_TRUNCATE|IOERR_FSYNC)/.test(code);
}

/**
 * Why the state folder of `path` cannot be written, found by asking the file
 * system (SQLite's code alone does not tell): a directory in the file's
 * place, a read-only file system, no write permission (root needed only when
 * not root), or a full file system (SQLite needs room for its -wal and the
 * 32 KiB -shm even to read).
 */
export function accessCause(path: string): string {
  const dir = dirname(path);
  try {
    if (statSafe(path)?.isDirectory()) return `${path} is a directory, not a database file`;
    accessSync(dir, fsc.W_OK);
    if (existsSync(path)) accessSync(path, fsc.W_OK | fsc.R_OK);
  } catch (err) {
    const c = (err as NodeJS.ErrnoException).code;
    if (c === 'EROFS') return `the file system of ${dir} is read-only`;
    if (c === 'EACCES' || c === 'EPERM') return process.getuid?.() === 0 ? `no write permission on ${dir} or ${path} (even for root: check the mount and attributes)` : `no write permission on ${dir} or ${path}; ${NEEDS_ROOT}`;
    if (c === 'ENOENT') return `${dir} does not exist`;
  }
  try {
    const fs = statfsSync(dir);
    if (fs.bavail * fs.bsize < 256 * 1024) return `the file system of ${dir} is full (${Math.floor((fs.bavail * fs.bsize) / 1024)} KiB free; SQLite needs room for its -wal and -shm files even to read)`;
  } catch {
    /* no answer: say nothing */
  }
  return process.getuid?.() === 0 ? `check the permissions, mount and free space of ${dir}` : NEEDS_ROOT;
}

function statSafe(path: string) {
  try {
    return lstatSync(path);
  } catch {
    return undefined;
  }
}

/**
 * better-sqlite3's compiled addon, by path (its own lookup, the `bindings`
 * package, is not in the bundle): one built here in node_modules (the
 * checkout, or the command below run in the package) first, else the one the
 * package ships for this Node ABI and architecture. EnvError (exit 3) naming
 * what to run when neither is there.
 */
export function sqliteAddon(): string {
  try {
    const built = join(dirname(createRequire(import.meta.url).resolve('better-sqlite3/package.json')), 'build/Release/better_sqlite3.node');
    if (existsSync(built)) return built;
  } catch {
    // Not installed in node_modules: the package's prebuilt one.
  }
  if (existsSync(SQLITE_ADDON)) return SQLITE_ADDON;
  throw new EnvError(`the SQLite addon for this Node (${process.version}, ABI ${process.versions.modules}, ${process.arch}) is not in ${dirname(SQLITE_ADDON)}: ${sqliteBuildAdvice()}`);
}

/**
 * mkdir -p, one level at a time: Node's recursive mkdir reports ENOENT where
 * the real cause is EROFS or EACCES. StateError (exit 1) naming the folder
 * and the errno; the root hint for a permission error.
 */
function makeDir(dir: string): void {
  const missing: string[] = [];
  for (let d = dir; !existsSync(d) && d !== dirname(d); d = dirname(d)) missing.unshift(d);
  for (const d of missing) {
    try {
      mkdirSync(d, { mode: 0o750 });
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? 'EUNKNOWN';
      if (code === 'EEXIST') continue;
      const words: Record<string, string> = { EROFS: 'the file system is read-only', EACCES: `permission denied; ${NEEDS_ROOT}`, ENOSPC: 'the file system is full' };
      throw new StateError(dir, code, `cannot create the state folder ${dir} (at ${d}): ${words[code] ?? (err as Error).message} (${code})`);
    }
  }
}

let loaded: object | undefined;

/** The addon, loaded once; EnvError (exit 3) with dlopen's words and the build command when it does not load (another libc, Node ABI). */
export function loadSqliteAddon(): object {
  if (loaded) return loaded;
  const addon = sqliteAddon();
  try {
    loaded = createRequire(import.meta.url)(addon) as object;
    return loaded;
  } catch (err) {
    throw new EnvError(`the SQLite addon ${addon} does not load here: ${(err as Error).message.split('\n')[0]}; ${sqliteBuildAdvice()}`);
  }
}

/** The command that builds better-sqlite3's addon beside this vosctl (needs a compiler). */
export function sqliteBuildAdvice(): string {
  let version = '12';
  try {
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { devDependencies?: Record<string, string> };
    version = pkg.devDependencies?.['better-sqlite3']?.replace(/^[^\d]*/, '') ?? version;
  } catch {
    // The major version is enough for npm.
  }
  return `build it here: apt-get install g++ make python3 && npm install --prefix ${ROOT} --no-save --no-package-lock better-sqlite3@${version}`;
}

/**
 * VOS_STATE_TIMEOUT: whole seconds a writer waits for the write lock, 0 = do
 * not wait; unset or empty = 60. The scripts read it by the same rule
 * (lib.sh). Anything else: UsageError (exit 2) naming the value.
 */
export function timeoutS(): number {
  const raw = process.env.VOS_STATE_TIMEOUT;
  if (raw === undefined || raw === '') return DEFAULT_TIMEOUT_S;
  if (!/^\d{1,6}$/.test(raw)) throw new UsageError(`bad VOS_STATE_TIMEOUT ${quoted(raw)}: whole seconds to wait for the state's write lock, 0 or more (0: do not wait; unset: ${DEFAULT_TIMEOUT_S})`);
  return Number(raw);
}

/** What lookup found; `complete` when it is the whole table (it scanned instead of searching). */
export type Lookup = Map<string, Entry> & { complete?: boolean };

const COLS = 'target, source, reason, added, expires';
/** What every read selects: the row as checkStateRow takes it. */
const READ = 'rowid, target, source, reason, added, expires, family, prefixlen';
/** Skipped rows named one by one on stderr, up to this many per command; the rest are counted. */
const NAMED_ROWS = 20;

export class StateStore {
  private conn?: Database.Database;
  private stmts = new Map<string, Database.Statement>();
  private inTx = false;
  readonly path: string;

  /** file: the database's name in dir (a migration builds a temporary one beside it). */
  constructor(
    readonly dir: string,
    file = STATE_FILE,
  ) {
    this.path = join(dir, file);
  }

  /** The open database; created (or migrated from the old format) on first use. */
  get db(): Database.Database {
    if (this.conn) return this.conn;
    makeDir(this.dir);
    const main = this.path === join(this.dir, STATE_FILE);
    if (main) removeAbandonedMigrations(this.dir);
    if (main && !existsSync(this.path) && legacyFiles(this.dir).length) {
      try {
        migrateLegacy(this.dir);
      } catch (err) {
        // Another command migrated the folder meanwhile (it moved the old files while this one read them): use its database.
        if (!existsSync(this.path)) throw err;
      }
    }
    if (main) checkPlace(this.dir, this.path);
    checkLinkTarget(this.path);
    const st = main ? statSafe(this.path) : undefined;
    if (st?.isFile() && st.size === 0) {
      // SQLite takes a 0-byte file for a new database: say it, since a state that was written cannot be 0 bytes.
      const used = existsSync(join(this.dir, LEGACY_ASIDE)) || readdirSync(this.dir).some((f) => f.startsWith(`${STATE_FILE}.damaged-`) || f === `${STATE_FILE}-wal`);
      process.stderr.write(`vosctl: the state database ${this.path} is empty (0 bytes)${used ? ', although this folder has held a state (see pre-sqlite/, *.damaged-*, or the -wal)' : ''}: starting from an empty state; if it was truncated, the maps may still hold the blocklist: vosctl reconcile --from map\n`);
    }
    try {
      this.conn = this.openAt(this.path);
    } catch (err) {
      if (!(err instanceof StateError) || !isAccessFailure(err.sqliteCode) || !statSafe(this.path)?.isFile()) throw err;
      // Full disk or read-only folder: SQLite cannot create the -shm it needs even to read a WAL database. Read a private copy.
      this.conn = this.openCopy(err);
      return this.conn;
    }
    if (main) {
      setLegacyAside(this.dir);
      this.noteDamage();
    }
    return this.conn;
  }

  /** A damage mark (DAMAGE_MARK) about this very file makes the command fail at its end; one about a file since replaced is dropped. */
  private noteDamage(): void {
    const mark = join(this.dir, DAMAGE_MARK);
    let text: string;
    try {
      text = readFileSync(mark, 'utf8');
    } catch {
      return; // none: the common case
    }
    let m: { ino?: number; found?: string; words?: string } = {};
    try {
      m = JSON.parse(text) as typeof m;
    } catch {
      /* a mark cut short still means damage was found */
    }
    const st = statSafe(this.path);
    if (m.ino !== undefined && st && st.ino !== m.ino) {
      rmSync(mark, { force: true });
      return;
    }
    failAtEnd(this.path, new StateCorruptError(this.path, 'SQLITE_CORRUPT', `the state database ${this.path} was found damaged${m.found ? ` at ${m.found}` : ''} (${m.words ?? 'see ' + mark}); what this command did was done, but a damaged file can lose entries at the next restore; ${RECOVER_HINT}`));
  }

  /**
   * Set when the database could only be opened for reading (a private copy,
   * see openCopy): the error that stopped opening it in place, which every
   * write throws.
   */
  readOnlyCause?: StateError;

  /**
   * Open a copy of the database (and its -wal, which holds the last
   * committed transactions) in a private folder under the system's temporary
   * folder, read-only, removed when closed: what the state holds, readable
   * when its own folder is full or read-only. Says so on stderr.
   */
  private openCopy(cause: StateError): Database.Database {
    const tmp = mkdtempSync(join(tmpdir(), 'vos-state-ro-'));
    this.copyDir = tmp;
    const copy = join(tmp, STATE_FILE);
    try {
      copyFileSync(this.path, copy);
      if (existsSync(`${this.path}-wal`)) copyFileSync(`${this.path}-wal`, `${copy}-wal`);
      const db = new Database(copy, { nativeBinding: loadSqliteAddon() as never });
      this.checkSchema(db, this.path);
      db.pragma('query_only = true');
      this.readOnlyCause = cause;
      process.on('exit', () => rmSync(tmp, { recursive: true, force: true }));
      process.stderr.write(`vosctl: ${cause.message}; reading a copy of it instead (nothing can be written to the state until that is fixed)\n`);
      return db;
    } catch (err) {
      rmSync(tmp, { recursive: true, force: true });
      this.copyDir = undefined;
      if (err instanceof StateError) throw err;
      throw new StateError(this.path, cause.sqliteCode, `${cause.message}; reading a copy of it in ${tmp} failed too: ${(err as Error).message}`);
    }
  }

  private copyDir?: string;

  /** Open the database; the reason it is read-only (a copy, see openCopy) or undefined when it can be written. */
  openedReadOnly(): StateError | undefined {
    this.run('reading it', () => this.db);
    return this.readOnlyCause;
  }

  /** A write on a store opened read-only throws why it is read-only. */
  private assertWritable(): void {
    if (this.readOnlyCause) throw this.readOnlyCause;
  }

  private openAt(path: string): Database.Database {
    let db: Database.Database | undefined;
    const addon = loadSqliteAddon();
    const timeoutMs = timeoutS() * 1000;
    try {
      db = new Database(path, { timeout: timeoutMs, nativeBinding: addon as never });
      db.pragma('synchronous = FULL');
      // Keeps the WAL from staying at the size of the largest load once it was checkpointed.
      db.pragma('journal_size_limit = 67108864');
      // A bulk load's I/O, counted with strace on a 1,000,000-row load (a 65 MB file): each statement's
      // journal (the pages it changes, so a failing statement can be undone) spilled past SQLite's 64 KiB
      // into a temporary file, 187 MB of writes; in memory it is freed at each statement's end. And with
      // SQLite's 2 MiB page cache, dirty pages spilled into the WAL twice over before the commit: 64 MiB
      // (taken only as pages are used) keeps such a load's pages until its commit writes each once.
      db.pragma('temp_store = MEMORY');
      db.pragma('cache_size = -65536');
      this.checkSchema(db, path);
      if ((db.pragma('user_version', { simple: true }) as number) < SCHEMA_VERSION) db.exec(readFileSync(join(SCRIPTS, 'state.sql'), 'utf8'));
      else if (db.pragma('journal_mode', { simple: true }) !== 'wal') db.pragma('journal_mode = WAL');
      // A state database made before the id was set (checkSchema found it ours): stamp it, once.
      if (db.pragma('application_id', { simple: true }) === 0) db.pragma(`application_id = ${APPLICATION_ID}`);
      return db;
    } catch (err) {
      db?.close();
      throw stateError(path, err, 'opening it');
    }
  }

  /**
   * Refuse a database that is not ours or is newer than this code: a schema
   * written by a newer vos-fastpath (user_version above SCHEMA_VERSION), or a
   * file of another program (tables that are not the state's). StateError.
   */
  private checkSchema(db: Database.Database, path: string): void {
    const app = db.pragma('application_id', { simple: true }) as number;
    if (app !== 0 && app !== APPLICATION_ID) throw new StateError(path, 'FOREIGN', `${path} is not a vos-fastpath database: its SQLite application_id is ${app} (0x${(app >>> 0).toString(16).padStart(8, '0')}), vos-fastpath's is ${APPLICATION_ID} (0x${APPLICATION_ID.toString(16)}); another program's file: move it aside or point VOS_STATE_DIR elsewhere`);
    const version = db.pragma('user_version', { simple: true }) as number;
    if (version > SCHEMA_VERSION) throw new StateError(path, 'SCHEMA', `the state database ${path} was written by a newer vos-fastpath (schema ${version} > ${SCHEMA_VERSION}); use that version, or move the file aside`);
    const ours = new Set(['entries', 'sources', 'consumer_offsets']);
    const tables = db.prepare("SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%'").pluck().all() as string[];
    // The shape check shared with the scripts (scripts/state-shape.sql): what it lacks to be a state database.
    const lacks = db.prepare(shapeSql()).pluck().get() as string;
    const foreign = tables.filter((t) => !ours.has(t));
    if (foreign.length || lacks) {
      throw new StateNotOursError(path, 'NOT_OURS', `${path} is not a vos-fastpath database (tables: ${tables.join(', ')})${lacks ? `: it lacks ${lacks}` : ''}; ${NOT_OURS_HINT}`);
    }
  }

  /** Rows skipped by use(), by rowid (each named once per command). */
  private badRows = new Map<number, RowProblem>();

  /**
   * The entry of a row read from the database, or undefined when it fails
   * checkStateRow: then it is named on stderr (rowid, column, value, why,
   * how to remove it) and the command exits 1 at its end, after doing its
   * work with every sound row.
   */
  private use(r: StateRow): Entry | undefined {
    const problem = checkStateRow(r, Math.floor(Date.now() / 1000));
    if (!problem) return { ip: r[1] as string, source: r[2] as string, reason: r[3] as string | null, added: r[4] as number, expires: r[5] as number };
    if (this.badRows.has(problem.rowid)) return undefined;
    this.badRows.set(problem.rowid, problem);
    const n = this.badRows.size;
    if (n <= NAMED_ROWS) process.stderr.write(`vosctl: ${describeRowProblem(problem, this.path)}\n`);
    failAtEnd(`${this.path}#rows`, new StateError(this.path, 'BAD_ROWS', `${n} row${n === 1 ? '' : 's'} of the state database ${this.path} ${n === 1 ? 'was' : 'were'} skipped as not valid${n > NAMED_ROWS ? ` (the first ${NAMED_ROWS} named above)` : ' (named above)'}; every other row was used. Remove ${n === 1 ? 'it' : 'them'} with vosctl unblock <target> or sqlite3 ${this.path} "DELETE FROM entries WHERE rowid = <rowid>", or rebuild the state from the maps: vosctl reconcile --from map`));
    return undefined;
  }

  /** Rows skipped so far by this store's reads (see use). */
  skippedRows(): RowProblem[] {
    return [...this.badRows.values()];
  }

  private stmt(sql: string): Database.Statement {
    let s = this.stmts.get(sql);
    if (!s) {
      s = this.db.prepare(sql);
      this.stmts.set(sql, s);
    }
    return s;
  }

  /** Run a database call, turning SQLite's errors into StateErrors that name the file. */
  private run<T>(doing: string, fn: () => T): T {
    try {
      return fn();
    } catch (err) {
      // An environment error (the SQLite addon missing) is no fault of the database: as it is, exit 3.
      if (err instanceof EnvError || err instanceof UsageError) throw err;
      throw stateError(this.path, err, doing);
    }
  }

  /** Open the database now (migrating if needed), so a long-lived caller learns of a bad file at start. */
  load(): void {
    this.run('reading it', () => this.db);
  }

  close(): void {
    this.conn?.close();
    this.conn = undefined;
    this.stmts.clear();
    if (this.copyDir) rmSync(this.copyDir, { recursive: true, force: true });
    this.copyDir = undefined;
    this.readOnlyCause = undefined;
  }

  /**
   * Run fn inside one write transaction: BEGIN IMMEDIATE (waiting for other
   * writers up to VOS_STATE_TIMEOUT), then COMMIT when fn resolves (the
   * change is on disk when this returns) or ROLLBACK when it throws. A
   * nested call joins the outer transaction.
   */
  async transaction<T>(fn: () => Promise<T> | T): Promise<T> {
    if (this.inTx) return fn();
    this.run('waiting for the write lock', () => this.db);
    this.assertWritable();
    this.run('waiting for the write lock', () => this.db.exec('BEGIN IMMEDIATE'));
    this.inTx = true;
    try {
      const out = await fn();
      this.run('committing', () => this.db.exec('COMMIT'));
      return out;
    } catch (err) {
      try {
        if (this.conn?.inTransaction) this.conn.exec('ROLLBACK');
      } catch {
        /* SQLite rolled back already (a failed COMMIT can) */
      }
      throw err;
    } finally {
      this.inTx = false;
    }
  }

  /** Mark a point inside transaction() that rollbackTo(name) returns to. */
  savepoint(name: string): void {
    this.run('writing it', () => this.db.exec(`SAVEPOINT ${name}`));
  }

  rollbackTo(name: string): void {
    this.run('writing it', () => this.db.exec(`ROLLBACK TO ${name}`));
  }

  /** Old name of transaction(), kept for callers written against the file store. */
  withLock<T>(fn: () => Promise<T> | T): Promise<T> {
    return this.transaction(fn);
  }

  /**
   * SQLite's PRAGMA quick_check over the whole file (about 0.4 s at 1,000,000
   * entries, so for attach and status, not for every write):
   * StateCorruptError with its first findings when it is not "ok". Damage a
   * command never reads (the middle of the file) is found here.
   */
  check(): void {
    // One line per finding, on one line in the message (a row can hold several lines).
    const found = this.run('checking it', () => this.db.pragma('quick_check(5)', { simple: false }) as Array<{ quick_check: string }>).flatMap((r) => r.quick_check.split('\n').filter(Boolean));
    if (found.length === 1 && found[0] === 'ok') {
      // Sound again (restored from a backup in place, say): no longer reported.
      rmSync(join(this.dir, DAMAGE_MARK), { force: true });
      clearFailure(this.path);
      return;
    }
    recordDamage(this.path, `PRAGMA quick_check: ${found.join('; ')}`);
    clearFailure(this.path); // thrown now, not again at the end
    throw new StateCorruptError(this.path, 'SQLITE_CORRUPT', `the state database ${this.path} is damaged (PRAGMA quick_check: ${found.join('; ')}); ${RECOVER_HINT}`);
  }

  /** Whether the state holds no entry at all (cheap). */
  isEmpty(): boolean {
    return this.run('reading it', () => this.stmt('SELECT 1 FROM entries LIMIT 1').pluck().get() === undefined);
  }

  /**
   * The entries of (at least) these targets that exist: one statement per
   * 10,000 targets, or, when they are many beside the table (a feed
   * reloaded), one scan of the whole table, which costs less.
   */
  lookup(ips: readonly string[]): Lookup {
    const out: Lookup = new Map<string, Entry>();
    if (!ips.length || this.isEmpty()) return out;
    return this.run('reading it', () => {
      if (ips.length > CHUNK && ips.length * 4 > (this.stmt('SELECT count(*) FROM entries').pluck().get() as number)) return Object.assign(this.all(), { complete: true });
      if (ips.length === 1) {
        const r = this.stmt(`SELECT ${READ} FROM entries WHERE target = ?`).raw().get(ips[0]) as StateRow | undefined;
        const e = r && this.use(r);
        if (e) out.set(e.ip, e);
        return out;
      }
      const s = this.stmt(`SELECT ${READ} FROM entries WHERE target IN (SELECT value FROM json_each(?))`).raw();
      for (let i = 0; i < ips.length; i += CHUNK)
        for (const r of s.iterate(JSON.stringify(ips.slice(i, i + CHUNK))) as IterableIterator<StateRow>) {
          const e = this.use(r);
          if (e) out.set(e.ip, e);
        }
      return out;
    });
  }

  /** Every entry, streamed in target order (a million rows never sit in memory at once). */
  *iterate(source?: string): Generator<Entry> {
    const s = source === undefined ? this.stmt(`SELECT ${READ} FROM entries`) : this.stmt(`SELECT ${READ} FROM entries WHERE source = ?`);
    // A fresh statement per iteration: two iterations may be open at once.
    const it = this.run('reading it', () => (source === undefined ? s.raw().iterate() : s.raw().iterate(source))) as IterableIterator<StateRow>;
    for (;;) {
      const next = this.run('reading it', () => it.next());
      if (next.done) return;
      const e = this.use(next.value);
      if (e) yield e;
    }
  }

  /** All entries as a map by target (for the commands that compare with the maps; one native call, faster than iterate). */
  all(): Map<string, Entry> {
    const out = new Map<string, Entry>();
    for (const r of this.run('reading it', () => this.stmt(`SELECT ${READ} FROM entries`).raw().all() as StateRow[])) {
      const e = this.use(r);
      if (e) out.set(e.ip, e);
    }
    return out;
  }

  /** The entries of one source, as {ip, source} only (index on source; one native call). */
  targetsOf(source: string): Array<{ ip: string; source: string }> {
    return [...this.iterate(source)].map((e) => ({ ip: e.ip, source }));
  }

  /** Entries per source: what `SELECT source, count(*) FROM entries GROUP BY source` says (index only). */
  countBySource(): Map<string, number> {
    return this.run('reading it', () => new Map(this.stmt('SELECT source, count(*) FROM entries GROUP BY source').raw().all() as Array<[string, number]>));
  }

  /** Targets whose expiry (Unix seconds) is at or before nowS (index on expires). */
  expired(nowS: number): string[] {
    const rows = this.run('reading it', () => this.stmt(`SELECT ${READ} FROM entries WHERE expires > 0 AND expires <= ?`).raw().all(nowS) as StateRow[]);
    return rows.flatMap((r) => this.use(r)?.ip ?? []);
  }

  /** Live entries (unexpired at nowS) with exact addresses and with prefixes, for sizing the maps. */
  liveCounts(nowS: number): { exact: number; prefixes: number } {
    return this.run('reading it', () => {
      const r = this.stmt('SELECT count(*) FILTER (WHERE prefixlen IN (32, 128)), count(*) FILTER (WHERE prefixlen NOT IN (32, 128)) FROM entries WHERE expires = 0 OR expires > ?').raw().get(nowS) as [number, number];
      return { exact: r[0], prefixes: r[1] };
    });
  }

  /**
   * Record puts (insert or overwrite) and deletes. Inside transaction() they
   * commit with it; outside, they are one transaction of their own. Runs of
   * entries alike but for the address (a bulk load) go as one statement per
   * 10,000.
   */
  commit(puts: readonly Entry[], dels: readonly string[]): void {
    if (!puts.length && !dels.length) return;
    this.run('writing it', () => this.db);
    this.assertWritable();
    const work = () =>
      this.run('writing it', () => {
        if (puts.length) {
          const now = Math.floor(Date.now() / 1000);
          const src = this.stmt('INSERT OR IGNORE INTO sources (name, first_seen) VALUES (?, ?)');
          for (const s of new Set(puts.map((p) => p.source))) src.run(s, now);
        }
        const upsert = `ON CONFLICT (target) DO UPDATE SET source = excluded.source, reason = excluded.reason, added = excluded.added, expires = excluded.expires`;
        // Full blocks of ROWS targets as bound values (a quarter less work for SQLite than parsing JSON), the rest through json_each.
        // Prepared only for a bulk write: a single block should not pay for compiling it.
        const block = () => this.stmt(`INSERT INTO entries (${COLS}) SELECT column1, ?, ?, ?, ? FROM (VALUES ${'(?),'.repeat(ROWS - 1)}(?)) WHERE true ${upsert}`);
        const rest = this.stmt(`INSERT INTO entries (${COLS}) SELECT value, ?, ?, ?, ? FROM json_each(?) WHERE true ${upsert}`);
        for (let i = 0; i < puts.length; ) {
          const e = puts[i]!;
          let j = i + 1;
          while (j < puts.length && j - i < CHUNK) {
            const f = puts[j]!;
            if (f.source !== e.source || f.reason !== e.reason || f.added !== e.added || f.expires !== e.expires) break;
            j++;
          }
          let k = i;
          for (; k + ROWS <= j; k += ROWS) {
            const args: unknown[] = [e.source, e.reason, e.added, e.expires];
            for (let m = k; m < k + ROWS; m++) args.push(puts[m]!.ip);
            block().run(args);
          }
          if (k < j) {
            const ips = new Array<string>(j - k);
            for (let m = k; m < j; m++) ips[m - k] = puts[m]!.ip;
            rest.run(e.source, e.reason, e.added, e.expires, JSON.stringify(ips));
          }
          i = j;
        }
        const del = this.stmt('DELETE FROM entries WHERE target IN (SELECT value FROM json_each(?))');
        for (let i = 0; i < dels.length; i += CHUNK) del.run(JSON.stringify(dels.slice(i, i + CHUNK)));
      });
    if (this.inTx) work();
    else this.run('writing it', () => this.db.transaction(work)());
  }

  /**
   * A consumer's recorded position (e.g. a stream offset), or undefined. As
   * stored, integers exact (bigint, better-sqlite3 safeIntegers: a Number would
   * round 9007199254740993 to ...992): a bigint normally, but whatever a hand
   * edit put there, text, real, blob (Buffer) (check it before use).
   */
  consumerOffset(consumer: string): unknown {
    return this.run('reading it', () => this.stmt('SELECT position FROM consumer_offsets WHERE consumer = ? /* exact */').safeIntegers(true).pluck().get(consumer));
  }

  /** Record a consumer's position; call inside transaction() so it commits with the entries it covers. */
  setConsumerOffset(consumer: string, position: number): void {
    this.run('writing it', () => this.stmt('INSERT INTO consumer_offsets (consumer, position, updated) VALUES (?, ?, ?) ON CONFLICT (consumer) DO UPDATE SET position = excluded.position, updated = excluded.updated').run(consumer, position, Math.floor(Date.now() / 1000)));
  }

  /**
   * Set a damaged database aside (renamed with a timestamp, with its -wal and
   * -shm) so a fresh one can be built; returns the new name.
   */
  setAside(label = 'damaged'): string {
    this.close();
    const aside = `${this.path}.${label}-${new Date().toISOString().replace(/[:.]/g, '')}`;
    for (const suffix of ['', '-wal', '-shm']) if (existsSync(this.path + suffix)) renameSync(this.path + suffix, aside + suffix);
    rmSync(join(this.dir, DAMAGE_MARK), { force: true });
    clearFailure(this.path);
    return aside;
  }
}

// ---- per-process locks (one consumer per stream and state folder) ----

/** The lock is held by another live process; names what and who. Exit 1. */
export class LockHeldError extends RuntimeError {}

/** A lock this process holds until release() or its exit (even SIGKILL: the kernel drops it). */
export interface HeldLock {
  readonly path: string;
  release(): void;
}

/**
 * Hold the lock `name` of the state folder `dir` while this process lives:
 * a SQLite database of its own in `<dir>/locks/`, opened in exclusive locking
 * mode and written once, so SQLite keeps its (POSIX, fcntl) write lock until
 * the connection closes. The kernel drops such a lock when its process ends,
 * however it ends: no pid file to go stale, no liveness guess. A second
 * holder gets SQLITE_BUSY at once and throws LockHeldError naming `what`,
 * the folder, and the holder's pid and command line (from /proc/locks).
 */
export function holdLock(dir: string, name: string, what: string): HeldLock {
  const folder = join(dir, 'locks');
  makeDir(folder);
  const safe = name.replace(/[^A-Za-z0-9._-]/g, '_').slice(0, 80);
  const path = join(folder, `${safe}-${createHash('sha256').update(name).digest('hex').slice(0, 8)}.lock`);
  let db: Database.Database | undefined;
  try {
    db = new Database(path, { timeout: 0, nativeBinding: loadSqliteAddon() as never });
    db.pragma('locking_mode = EXCLUSIVE');
    db.exec('BEGIN EXCLUSIVE');
    db.exec('CREATE TABLE IF NOT EXISTS holder (pid INTEGER NOT NULL, started INTEGER NOT NULL)');
    db.exec('DELETE FROM holder');
    db.prepare('INSERT INTO holder VALUES (?, ?)').run(process.pid, Math.floor(Date.now() / 1000));
    db.exec('COMMIT');
  } catch (err) {
    db?.close();
    const code = (err as { code?: string }).code ?? '';
    if (code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED')) {
      const holder = lockHolder(path);
      throw new LockHeldError(`${what} already runs on the state folder ${dir}${holder ? `: pid ${holder.pid} (${holder.cmd})` : ''} holds ${path}; one at a time: stop that one first, or give this one a state folder of its own (VOS_STATE_DIR)`);
    }
    throw stateError(path, err, 'taking its lock');
  }
  const held = db;
  return {
    path,
    release: () => {
      if (held.open) held.close();
    },
  };
}

/** The process holding a POSIX lock on `path` (Linux /proc/locks), or undefined. */
function lockHolder(path: string): { pid: number; cmd: string } | undefined {
  try {
    const ino = statSync(path).ino;
    const line = readFileSync('/proc/locks', 'utf8')
      .split('\n')
      .find((l) => / (POSIX|OFDLCK) /.test(l) && new RegExp(`:${ino} `).test(l));
    const pid = Number(line?.trim().split(/\s+/)[4]);
    if (!Number.isInteger(pid) || pid <= 0) return undefined;
    let cmd = '?';
    try {
      cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean).join(' ').slice(0, 300);
    } catch {
      /* gone meanwhile */
    }
    return { pid, cmd };
  } catch {
    return undefined;
  }
}

// ---- migration from the file store (blocklist.jsonl + journal.jsonl) ----

const LEGACY = ['blocklist.jsonl', 'journal.jsonl'];
const LEGACY_ASIDE = 'pre-sqlite';

function legacyFiles(dir: string): string[] {
  return LEGACY.filter((f) => existsSync(join(dir, f)));
}

/**
 * Build state.sqlite3 from the old files: into a temporary database, read
 * back and compared entry by entry with what the old files hold, and only
 * then renamed into place. The old files are moved into pre-sqlite/ once the
 * new database is in place (setLegacyAside), never deleted. A crash at any
 * point leaves either no state.sqlite3 (the migration runs again) or a
 * verified one.
 */
export function migrateLegacy(dir: string): { entries: number; badLines: string[] } {
  const { entries, badLines } = readLegacy(dir);
  const final = join(dir, STATE_FILE);
  // Each process builds its own copy: commands started together on an old folder race here, and one copy wins (link below).
  const name = `${STATE_FILE}.migrating-${process.pid}`;
  const tmp = join(dir, name);
  for (const s of ['', '-wal', '-shm', '-journal']) rmSync(tmp + s, { force: true });
  const store = new StateStore(dir, name);
  try {
    const db = store.db;
    store.commit([...entries.values()], []);
    let same = 0;
    for (const e of store.iterate()) {
      const o = entries.get(e.ip);
      if (!o || o.source !== e.source || o.reason !== e.reason || o.added !== e.added || o.expires !== e.expires) throw new Error(`entry ${e.ip} differs after migration`);
      same++;
    }
    if (same !== entries.size) throw new Error(`${entries.size} entries in the old files, ${same} in the new database`);
    db.pragma('wal_checkpoint(TRUNCATE)');
  } catch (err) {
    store.close();
    throw new StateError(final, 'MIGRATION', `migrating the state folder ${dir} to ${final} failed, the old files are untouched: ${(err as Error).message}`);
  }
  store.close();
  for (const s of ['-wal', '-shm']) rmSync(tmp + s, { force: true });
  // link, unlike rename, fails when the name exists: the first verified copy stays in place, the others are dropped.
  try {
    linkSync(tmp, final);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    rmSync(tmp, { force: true });
    return { entries: entries.size, badLines };
  }
  rmSync(tmp, { force: true });
  process.stderr.write(`vosctl: migrated ${entries.size} entries from ${LEGACY.join(' + ')} to ${final}${badLines.length ? `; unreadable lines skipped: ${badLines.join(', ')}` : ''}; the old files are kept in ${join(dir, LEGACY_ASIDE)}/\n`);
  return { entries: entries.size, badLines };
}

const MIGRATING = /^state\.sqlite3\.migrating-(\d+)(?:-wal|-shm|-journal)?$/;

/**
 * Remove the temporary databases (state.sqlite3.migrating-<pid>, with their
 * -wal, -shm, -journal) of migrations whose process is gone (killed
 * mid-way), saying on stderr what was removed. A migration still running is
 * left alone: its pid is alive, is a vosctl (node) process, and started
 * before its file was last written. A live pid that started after that is
 * another process that got the number again (pid reuse), and a live process
 * that is not vosctl (pid 1, say) never ran a migration: the file is
 * abandoned in both cases. A name that is not a regular file (a directory, a
 * link) is never removed: named once as a warning. Never throws: a leftover
 * that cannot be removed is a warning, not a reason to fail the command.
 */
export function removeAbandonedMigrations(dir: string): string[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  // By the pid as written (a 20-digit name is not a number to round).
  const byPid = new Map<string, string[]>();
  for (const f of names) {
    const m = MIGRATING.exec(f);
    if (!m) continue;
    const st = statSafe(join(dir, f));
    if (!st?.isFile()) {
      if (st) process.stderr.write(`vosctl: warning: ${join(dir, f)} is ${st.isDirectory() ? 'a directory' : st.isSymbolicLink() ? 'a symbolic link' : 'not a regular file'}, not a migration's database: left alone; remove it by hand\n`);
      continue;
    }
    byPid.set(m[1]!, [...(byPid.get(m[1]!) ?? []), f]);
  }
  const removed: string[] = [];
  for (const [pid, files] of byPid) {
    const written = Math.max(...files.map((f) => statSafe(join(dir, f))?.mtimeMs ?? 0));
    if (migrationRunning(pid, written)) continue;
    const gone: string[] = [];
    for (const f of files) {
      try {
        rmSync(join(dir, f), { force: true });
        gone.push(f);
      } catch (err) {
        process.stderr.write(`vosctl: warning: could not remove ${join(dir, f)}, left by a migration that process ${pid} did not finish: ${(err as Error).message}\n`);
      }
    }
    if (!gone.length) continue;
    removed.push(...gone);
    process.stderr.write(`vosctl: removed ${gone.join(', ')} from ${dir}: left by a migration that process ${pid} did not finish (that process is gone)\n`);
  }
  return removed;
}

/**
 * Whether process `pid` (its text from the file name) may be the vosctl
 * that last wrote a file at writtenMs (Unix ms): it exists, its command line
 * (/proc/<pid>/cmdline) is node or vosctl, and it started before then (its
 * start from /proc/<pid>/stat, in clock ticks of 1/100 s since the boot time
 * in /proc/stat; 1 s of slack for their rounding).
 */
function migrationRunning(pidText: string, writtenMs: number): boolean {
  if (pidText === String(process.pid)) return true;
  // Linux pids are at most 2^22 (pid_max): a longer number is no process.
  if (pidText.length > 7 || pidText === '1') return false;
  const pid = Number(pidText);
  let stat: string;
  let cmd: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
  } catch {
    return false; // no such process
  }
  const argv = cmd.split('\0').filter(Boolean);
  if (!argv.some((a) => /^(node|vosctl)$/.test(basename(a)) || a.includes('vosctl'))) return false;
  try {
    // Field 22, starttime: the fields after the command name, which ends at the last ')'.
    const startTicks = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]);
    const bootS = Number(/^btime (\d+)$/m.exec(readFileSync('/proc/stat', 'utf8'))?.[1]);
    if (!Number.isFinite(startTicks) || !Number.isFinite(bootS)) return true;
    return (bootS + startTicks / 100) * 1000 <= writtenMs + 1000;
  } catch {
    return true; // cannot tell: keep the file
  }
}

/** Once state.sqlite3 exists, the old files (if any) move to pre-sqlite/: kept for the operator, never read again. */
function setLegacyAside(dir: string): void {
  const present = legacyFiles(dir);
  if (!present.length) return;
  const aside = join(dir, LEGACY_ASIDE);
  mkdirSync(aside, { recursive: true });
  for (const f of present) {
    try {
      renameSync(join(dir, f), join(aside, f));
    } catch (err) {
      // Another command set it aside first.
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }
  rmSync(join(dir, 'lock'), { recursive: true, force: true });
}

/**
 * The entries still readable in a damaged database (one set aside): a scan of
 * `entries` by rowid that, where a page fails to read, skips ahead (1, 2, 4
 * ... rowids) past the damage and goes on. Every row read passes
 * checkStateRow (a damaged page can yield garbage that SQLite reads without
 * error): those that fail are left out and returned in `invalid`. Returns the
 * sound rows, how many read errors were skipped, and the invalid rows; [] when
 * not even the schema can be read.
 */
export function salvage(path: string): { entries: Entry[]; skipped: number; invalid: RowProblem[] } {
  const entries: Entry[] = [];
  const invalid: RowProblem[] = [];
  let skipped = 0;
  let db: Database.Database | undefined;
  const nowS = Math.floor(Date.now() / 1000);
  try {
    db = new Database(path, { readonly: true, nativeBinding: loadSqliteAddon() as never });
    const scan = db.prepare(`SELECT ${READ} FROM entries WHERE rowid > ? ORDER BY rowid`).raw();
    let after = -1;
    let step = 1;
    for (let tries = 0; tries < 100_000 && after < 2 ** 40; tries++) {
      const from = after;
      try {
        for (const r of scan.iterate(after) as IterableIterator<StateRow>) {
          const problem = checkStateRow(r, nowS);
          if (problem) invalid.push(problem);
          else entries.push({ ip: r[1] as string, source: r[2] as string, reason: r[3] as string | null, added: r[4] as number, expires: r[5] as number });
          after = r[0];
          step = 1;
        }
        break;
      } catch {
        // Past the damage: rowids after the last good one, further each time in a row this fails.
        skipped++;
        if (after === from) step *= 2;
        after += step;
      }
    }
  } catch {
    /* nothing readable */
  } finally {
    db?.close();
  }
  return { entries, skipped, invalid };
}

/**
 * A state.sqlite3 that is a symbolic link to nothing (a mount not up yet at
 * boot, say) is refused: SQLite would create an empty database at the
 * link's target and the blocklist would look empty. StateError naming the
 * link and its target; nothing is created.
 */
function checkLinkTarget(path: string): void {
  if (!statSafe(path)?.isSymbolicLink()) return;
  try {
    statSync(path);
    return;
  } catch (err) {
    let to = '?';
    try {
      to = readlinkSync(path);
    } catch {
      /* keep ? */
    }
    throw new StateError(path, 'DANGLING', `the state database ${path} is a symbolic link to ${to}, which does not exist (${(err as NodeJS.ErrnoException).code ?? 'unreachable'}: a file system not mounted yet?); refusing to create an empty state there. Mount what holds ${to} and run the command again (attach: vosctl reconcile --from state to restore the blocklist afterwards), or replace the link with the file itself`);
  }
}

/**
 * Where the state lives must be trusted: a state folder others can write lets
 * them put a symbolic link (or their own file) where root then writes.
 * StateError for a state.sqlite3 that is a symbolic link in such a folder or
 * owned by another user; a warning on stderr for such a folder alone.
 */
function checkPlace(dir: string, path: string): void {
  const d = statSafe(dir);
  const f = statSafe(path);
  const uid = process.getuid?.() ?? 0;
  const open = d !== undefined && ((d.mode & 0o002) !== 0 || (d.mode & 0o020) !== 0);
  if (f?.isSymbolicLink() && (open || f.uid !== uid)) {
    let to = '?';
    try {
      to = readlinkSync(path);
    } catch {
      /* keep ? */
    }
    throw new StateError(path, 'UNSAFE', `${path} is a symbolic link (to ${to}) in ${dir}, a folder others can write (mode ${(d!.mode & 0o7777).toString(8)}, owner uid ${d!.uid}): refusing to follow it; replace it with the file itself and make ${dir} writable by its owner only (chmod 755)`);
  }
  if (f && !f.isSymbolicLink() && f.uid !== uid && open) {
    throw new StateError(path, 'UNSAFE', `${path} belongs to uid ${f.uid}, not to the user running vosctl (uid ${uid}), in a folder others can write: refusing to use it; check who put it there`);
  }
  if (open) {
    process.stderr.write(`vosctl: warning: the state folder ${dir} is writable by others (mode ${(d!.mode & 0o7777).toString(8)}): anyone could replace the blocklist's state; chmod 755 ${dir}\n`);
  }
}
