/**
 * Start-up for bin/vosctl: run the esbuild bundle of lib/ (dist/vosctl.cjs)
 * through V8's code cache.
 *
 * Node 20 keeps no compiled code between runs, and compiling the 1.3 MB
 * bundle (yargs, winston, execa) was about a quarter of a `vosctl block`.
 * There is one cache file per command, written after that command's first
 * successful run, so it holds the functions that command needed. A missing
 * or rejected cache costs time, never correctness: V8 then compiles as usual.
 *
 * Node 20 runs no dynamic `import()` from a vm.Script given cachedData
 * (ERR_VM_DYNAMIC_IMPORT_CALLBACK_MISSING on every run after the first), so
 * the bundle must hold none: scripts/bundle.sh refuses a bundle that does.
 */
import { mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import vm from 'node:vm';

type Bundle = { main(argv: string[]): Promise<number> };

/**
 * The bundle's first line, written by scripts/bundle.sh: `// vfp-commands: attach detach ...`,
 * the command names, so the cache is picked without loading yargs.
 */
export function bundleCommands(source: string): Set<string> {
  const m = /^\/\/ vfp-commands:([ a-z-]*)\n/.exec(source);
  return new Set(m ? m[1]!.trim().split(/ +/) : []);
}

/**
 * The cache's name: the first argument that is one of the bundle's commands
 * (an option's value such as `--log-format text` is never taken for one);
 * 'none' when no command is named (--help, --version, a typo).
 */
export function cacheName(argv: string[], commands: Set<string>): string {
  return argv.find((a) => commands.has(a)) ?? 'none';
}

/**
 * The cache's key. V8 checks a cache against the source's length, not its
 * content, so the key also carries the bundle's mtime and V8's version.
 */
export function cacheKey(size: number, mtimeMs: number, v8Version: string, arch: string): string {
  return `${size}-${Math.trunc(mtimeMs)}-${v8Version}-${arch}`.replace(/[^\w.-]/g, '_');
}

export async function runBundle(bundle: string, argv: string[]): Promise<number> {
  const source = readFileSync(bundle, 'utf8');
  const st = statSync(bundle);
  const cacheFile = join(dirname(bundle), '.v8cache', `${cacheName(argv, bundleCommands(source))}-${cacheKey(st.size, st.mtimeMs, process.versions.v8, process.arch)}.bin`);
  let cachedData: Buffer | undefined;
  try {
    cachedData = readFileSync(cacheFile);
  } catch {
    // First run of this command since the bundle was built.
  }
  const wrapper = `(function (exports, require, module, __filename, __dirname) {${source}\n})`;
  const script = new vm.Script(wrapper, {
    filename: bundle,
    cachedData,
    importModuleDynamically: vm.constants.USE_MAIN_CONTEXT_DEFAULT_LOADER,
  });
  const mod = { exports: {} as Bundle };
  (script.runInThisContext() as (...a: unknown[]) => void)(mod.exports, createRequire(bundle), mod, bundle, dirname(bundle));
  const code = await mod.exports.main(argv);
  if (code === 0 && (!cachedData || script.cachedDataRejected)) saveCache(cacheFile, script.createCachedData());
  return code;
}

/** Temp file and rename, so a concurrent run never reads half a cache; a read-only dist/ just goes without. */
function saveCache(file: string, data: Buffer): void {
  const tmp = `${file}.${process.pid}.tmp`;
  try {
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(tmp, data);
    renameSync(tmp, file);
  } catch {
    rmSync(tmp, { force: true });
  }
}
