/** Where the project's own scripts and helpers are, from source or from dist/. */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';

function findRoot(from: string): string {
  for (let dir = from; dir !== dirname(dir); dir = dirname(dir)) if (existsSync(join(dir, 'scripts/load.sh'))) return dir;
  throw new Error(`vos-fastpath: no checkout (scripts/load.sh) above ${from}`);
}

export const ROOT = findRoot(import.meta.dirname);
export const SCRIPTS = join(ROOT, 'scripts');
export const MAPTOOL = process.env.VOS_MAPTOOL ?? join(ROOT, 'build/vfp-maptool');
export const XDP_TOOL = process.env.VOS_XDP_TOOL ?? join(ROOT, 'build/vfp-xdp');
export const XDP_OBJECT = process.env.VOS_XDP_OBJ ?? join(ROOT, 'build/vos_fastpath.bpf.o');

/**
 * better-sqlite3's compiled addon as the package ships it in build/ (copied
 * there by scripts/bundle.sh): built for one Node ABI and architecture, named
 * after them, e.g. better_sqlite3-node115-linux-x64.node.
 */
export const SQLITE_ADDON = join(ROOT, 'build', `better_sqlite3-node${process.versions.modules}-${process.platform}-${process.arch}.node`);

/** The element-count iterator vfp-maptool loads from beside itself (xdp/map_count.bpf.c). */
export const MAP_COUNT_OBJECT = join(dirname(MAPTOOL), 'map_count.bpf.o');
