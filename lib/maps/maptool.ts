/** Runs build/vfp-maptool (bulk map access through libbpf) with argument arrays. */
import { execa } from 'execa';
import { existsSync } from 'node:fs';
import { EnvError, MapFullError, RuntimeError } from '../errors.js';
import { MAPTOOL } from '../paths.js';

export interface MapInfo {
  id: number;
  type: number;
  key_size: number;
  value_size: number;
  max_entries: number;
  name: string;
}

function requireTool(): void {
  if (!existsSync(MAPTOOL)) throw new EnvError(`${MAPTOOL} is missing; run scripts/setup.sh (or make -C xdp)`);
}

async function run(cmd: string, pin: string, input?: Buffer): Promise<{ stdout: string; raw?: Buffer }> {
  requireTool();
  const r = await execa(MAPTOOL, [cmd, pin], { input, reject: false, stripFinalNewline: true });
  if (r.exitCode === 3) throw new EnvError(`no map at ${pin}: ${r.stderr.trim()}; attach first (vosctl attach <iface>) or check --pin-dir`);
  if (r.exitCode !== 0 && r.exitCode !== 4) throw new RuntimeError(`vfp-maptool ${cmd} ${pin} failed: ${r.stderr.trim()}`);
  return { stdout: r.stdout };
}

export async function mapInfo(pin: string): Promise<MapInfo> {
  return JSON.parse((await run('info', pin)).stdout) as MapInfo;
}

/** Write key||value records; throws MapFullError (with what fit) when the map runs out of room. */
export async function updateRecords(pin: string, records: Buffer, count: number): Promise<number> {
  if (!count) return 0;
  requireTool();
  const r = await execa(MAPTOOL, ['update', pin], { input: records, reject: false });
  const applied = Number(/applied (\d+)/.exec(r.stdout)?.[1] ?? 0);
  if (r.exitCode === 4) {
    const info = await mapInfo(pin);
    throw new MapFullError(info.name, info.max_entries, applied, count);
  }
  if (r.exitCode === 3) throw new EnvError(`no map at ${pin}; attach first (vosctl attach <iface>) or check --pin-dir`);
  if (r.exitCode !== 0) throw new RuntimeError(`vfp-maptool update ${pin} failed after ${applied} of ${count}: ${r.stderr.trim()}`);
  return applied;
}

export async function deleteKeys(pin: string, keys: Buffer): Promise<{ deleted: number; absent: number }> {
  if (!keys.length) return { deleted: 0, absent: 0 };
  const { stdout } = await run('delete', pin, keys);
  const m = /deleted (\d+) absent (\d+)/.exec(stdout);
  return { deleted: Number(m?.[1] ?? 0), absent: Number(m?.[2] ?? 0) };
}

export async function dumpRecords(pin: string): Promise<Buffer> {
  requireTool();
  const r = await execa(MAPTOOL, ['dump', pin], { encoding: 'buffer', reject: false });
  if (r.exitCode === 3) throw new EnvError(`no map at ${pin}; attach first (vosctl attach <iface>) or check --pin-dir`);
  if (r.exitCode !== 0) throw new RuntimeError(`vfp-maptool dump ${pin} failed: ${Buffer.from(r.stderr).toString().trim()}`);
  return Buffer.from(r.stdout);
}
