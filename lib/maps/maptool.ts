/**
 * Bulk map access through build/vfp-maptool (libbpf): one `vfp-maptool serve`
 * process per command, started on first use, so a `vosctl block` (allowlist,
 * source names, then the write) and every consume batch cost no process each.
 */
import { execa, type ResultPromise } from 'execa';
import { accessSync, constants, existsSync } from 'node:fs';
import { basename } from 'node:path';
import { EnvError, MapFullError, NEEDS_ROOT, RuntimeError } from '../errors.js';
import { MAPTOOL } from '../paths.js';

export interface MapInfo {
  id: number;
  type: number;
  key_size: number;
  value_size: number;
  max_entries: number;
  name: string;
}

/** The helper is there and executable; otherwise its start would fail as a request cut short, naming no cause. */
function requireTool(): void {
  if (!existsSync(MAPTOOL)) throw new EnvError(`${MAPTOOL} is missing; run scripts/setup.sh (or make -C xdp)`);
  try {
    accessSync(MAPTOOL, constants.X_OK);
  } catch (err) {
    throw new EnvError(`${MAPTOOL} is not executable by this user (${(err as NodeJS.ErrnoException).code}): chmod 755 ${MAPTOOL}, or reinstall the package`);
  }
}

function noMap(pin: string, why = ''): EnvError {
  if (/permission denied|operation not permitted/i.test(why)) {
    return new EnvError(`cannot open the map ${pin}: ${why}; ${NEEDS_ROOT}`);
  }
  // Without root the pins may be there but out of sight: name that cause too.
  const uid = process.getuid?.() ?? 0;
  const rootNote = uid !== 0 ? `; note: this runs as uid ${uid}, and ${NEEDS_ROOT}` : '';
  return new EnvError(`no map at ${pin}${why ? `: ${why}` : ''}; attach first (vosctl attach <iface>) or check --pin-dir${rootNote}`);
}

/**
 * One `vfp-maptool serve` process, requests in order. It opens the pin for
 * every request, so a map removed and created again is found anew. If the
 * process dies, the next request starts another.
 */
const SERVE_OPTIONS = { encoding: 'buffer', reject: false, stdin: 'pipe', stdout: 'pipe', buffer: false } as const;

export class MapServer {
  private child?: ResultPromise<typeof SERVE_OPTIONS>;
  /** What the child wrote and no request took yet, as received: joined only when a request needs it (a dump is 24 MB in 64 KiB pieces). */
  private parts: Buffer[] = [];
  private have = 0;
  private waiting?: () => void;
  private queue: Promise<unknown> = Promise.resolve();

  private start(): NonNullable<MapServer['child']> {
    requireTool();
    const child = execa(MAPTOOL, ['serve'], SERVE_OPTIONS);
    child.stdout.on('data', (d: Buffer) => {
      this.parts.push(d);
      this.have += d.length;
      this.waiting?.();
    });
    void child.then(() => {
      if (this.child === child) this.child = undefined;
      this.waiting?.();
    });
    this.child = child;
    this.parts = [];
    this.have = 0;
    return child;
  }

  private async take(n: number | 'line', alive: () => boolean): Promise<Buffer> {
    for (;;) {
      const whole = n === 'line' || this.have >= n ? this.joined() : undefined;
      const end = !whole ? -1 : n === 'line' ? whole.indexOf(10) : n;
      if (whole && end >= 0) {
        const out = whole.subarray(0, end);
        const rest = whole.subarray(n === 'line' ? end + 1 : end);
        this.parts = rest.length ? [rest] : [];
        this.have = rest.length;
        return out;
      }
      if (!alive()) throw new RuntimeError('vfp-maptool serve exited in the middle of a request');
      await new Promise<void>((r) => (this.waiting = r));
      this.waiting = undefined;
    }
  }

  private joined(): Buffer {
    if (this.parts.length > 1) this.parts = [Buffer.concat(this.parts, this.have)];
    return this.parts[0] ?? Buffer.alloc(0);
  }

  /**
   * Send one request, get its answer line (and payload for dump). Requests
   * never interleave. onSent is called once the whole request is in the
   * pipe: the helper reads a payload whole before it works on it, so from
   * then on it needs nothing of this thread until it answers.
   */
  private request(op: string, pin: string, payload: Buffer = Buffer.alloc(0), onSent?: () => void): Promise<{ line: string; data?: Buffer }> {
    const run = async (): Promise<{ line: string; data?: Buffer }> => {
      const child = this.child ?? this.start();
      const alive = (): boolean => this.child === child;
      child.stdin.write(Buffer.concat([Buffer.from(`${op} ${payload.length} ${pin}\n`), payload]), () => onSent?.());
      const line = (await this.take('line', alive)).toString();
      if ((op === 'dump' || op === 'lookup') && line.startsWith('ok ')) return { line, data: Buffer.from(await this.take(Number(line.slice(3)), alive)) };
      return { line };
    };
    const result = this.queue.then(run, run);
    this.queue = result.catch(() => undefined);
    return result;
  }

  private check(pin: string, line: string): string {
    if (line.startsWith('ok')) return line.slice(3);
    if (line.startsWith('nomap ')) throw noMap(pin, line.slice(6));
    throw new RuntimeError(`vfp-maptool on ${pin}: ${line.replace(/^err /, '')}`);
  }

  async info(pin: string): Promise<MapInfo> {
    return JSON.parse(this.check(pin, (await this.request('info', pin)).line)) as MapInfo;
  }

  /**
   * Write key||value records; throws MapFullError (with what fit) when the
   * map runs out of room. onSent: called once the records are all in the
   * helper's pipe, so a caller can do synchronous work while the kernel takes
   * them (work done before that would stall the pipe: it is drained by this
   * thread's event loop).
   */
  async update(pin: string, records: Buffer, count: number, onSent?: () => void): Promise<number> {
    if (!count) return 0;
    const { line } = await this.request('update', pin, records, onSent);
    const full = /^full applied (\d+) max (\d+)/.exec(line);
    if (full) {
      const info = await this.info(pin);
      // The pin's name, not info.name: the kernel cuts names to 15 characters (blocked_prefixe).
      throw new MapFullError(basename(pin), info.max_entries, Number(full[1]), count);
    }
    return Number(/applied (\d+)/.exec(this.check(pin, line))?.[1] ?? 0);
  }

  /** Delete keys; absent keys are counted, not errors. */
  async delete(pin: string, keys: Buffer): Promise<{ deleted: number; absent: number }> {
    if (!keys.length) return { deleted: 0, absent: 0 };
    const m = /deleted (\d+) absent (\d+)/.exec(this.check(pin, (await this.request('delete', pin, keys)).line));
    return { deleted: Number(m?.[1] ?? 0), absent: Number(m?.[2] ?? 0) };
  }

  async dump(pin: string): Promise<Buffer> {
    const r = await this.request('dump', pin);
    this.check(pin, r.line);
    return r.data ?? Buffer.alloc(0);
  }

  /**
   * Number of entries. A hash map's comes from the kernel's own element count
   * (xdp/map_count.bpf.c, Linux >= 6.6), O(1) whatever its size; other maps
   * (and hash maps on older kernels) are walked with batch lookups inside
   * vfp-maptool, only the number crossing the pipe. Takes no lock the XDP
   * program waits on.
   */
  async count(pin: string): Promise<number> {
    return Number(/^count (\d+)/.exec(this.check(pin, (await this.request('count', pin)).line))?.[1] ?? NaN);
  }

  /** For each key, whether the map holds it (one request, however many keys). */
  async lookup(pin: string, keys: Buffer): Promise<boolean[]> {
    const r = await this.request('lookup', pin, keys);
    this.check(pin, r.line);
    return [...(r.data ?? Buffer.alloc(0))].map((b) => b === 1);
  }

  /** End the server process (it exits when its stdin closes). */
  async close(): Promise<void> {
    const child = this.child;
    this.child = undefined;
    if (!child) return;
    child.stdin.end();
    await child;
  }
}
