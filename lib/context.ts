/** What every command gets: resolved settings, a logger, the state store, and paths. */
import { existsSync, readFileSync } from 'node:fs';
import { networkInterfaces } from 'node:os';
import { join } from 'node:path';
import { parseTarget6, type BlockPolicy, type Cidr, type Cidr6 } from './address.js';
import { closeAtEnd } from './closers.js';
import { EnvError, UsageError } from './errors.js';
import { createLogger, type Logger } from './log.js';
import { LPM_KEY, LPM_KEY6, MARK_VALUE, MAP, records } from './maps/layout.js';
import { MapServer } from './maps/maptool.js';
import { parseConfigFile, resolveSettings, type FileConfig, type Flags, type Settings } from './settings.js';
import { StateStore } from './state.js';

export const DEFAULT_CONFIG_FILE = '/etc/vos-fastpath/config.json';

/**
 * The config file's text. UsageError (exit 2) when it is empty-named,
 * missing or not a file; EnvError (exit 3) when it cannot be read (it holds
 * the broker URL and is often root-only); both name the path and the reason.
 */
export function readConfigFile(file: string, from: string): string {
  if (file === '') throw new UsageError(`${from} is empty: give the config file's path`);
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new UsageError(`config file ${file} (${from}) does not exist`);
    if (code === 'EISDIR') throw new UsageError(`config file ${file} (${from}) is a folder, not a file`);
    if (code === 'EACCES' || code === 'EPERM') throw new EnvError(`config file ${file} (${from}) is not readable by this user (${code}): it usually is root-only (it holds the broker URL); run as root`);
    throw new EnvError(`config file ${file} (${from}) cannot be read: ${(err as Error).message}`);
  }
}

export interface GlobalArgs {
  pinDir?: string;
  stateDir?: string;
  config?: string;
  logLevel?: string;
  logFormat?: string;
  minPrefix?: number;
  minPrefix6?: number;
  url?: string;
  caFile?: string;
  passwordFile?: string;
  neverBlock?: string | string[];
}

export class Context {
  private logger?: Logger;
  private stateStore?: StateStore;
  /** How maps are read and written: one `vfp-maptool serve` for the whole command, ended by main() (closers.ts). */
  maps = new MapServer();
  /** Source name -> id, valid while source_names is the map with this id; set by long-lived commands. */
  sourceIdCache?: { mapId: number; ids: Map<string, number> };

  constructor(readonly settings: Settings) {}

  static fromArgs(args: GlobalArgs, env: NodeJS.ProcessEnv = process.env): Context {
    const file = args.config ?? env.VOS_CONFIG ?? (existsSync(DEFAULT_CONFIG_FILE) ? DEFAULT_CONFIG_FILE : undefined);
    let fileConfig: FileConfig = {};
    if (file !== undefined) fileConfig = parseConfigFile(readConfigFile(file, args.config !== undefined ? '--config' : env.VOS_CONFIG !== undefined ? 'VOS_CONFIG' : 'the default config'), file);
    const flags: Flags = { pinDir: args.pinDir, stateDir: args.stateDir, logLevel: args.logLevel, logFormat: args.logFormat, minPrefix: args.minPrefix, minPrefix6: args.minPrefix6, amqpUrl: args.url, amqpCaFile: args.caFile, amqpPasswordFile: args.passwordFile, neverBlock: args.neverBlock };
    const ctx = new Context(resolveSettings(flags, env, fileConfig));
    closeAtEnd(() => ctx.maps.close());
    return ctx;
  }

  /**
   * The same settings, logger and state store, with a map server of its own:
   * the metrics read maps without queueing behind (or ahead of) the
   * consumer's writes. Its server ends with the command.
   */
  withOwnMaps(): Context {
    const other = new Context(this.settings);
    other.logger = this.log;
    other.stateStore = this.store;
    closeAtEnd(() => other.maps.close());
    return other;
  }

  get log(): Logger {
    this.logger ??= createLogger(this.settings.logLevel, this.settings.logFormat);
    return this.logger;
  }

  get store(): StateStore {
    if (!this.stateStore) {
      const store = new StateStore(this.settings.stateDir);
      closeAtEnd(async () => store.close());
      this.stateStore = store;
    }
    return this.stateStore;
  }

  pin(name: string): string {
    return join(this.settings.pinDir, name);
  }

  /** The never-block rules in force: allowlists from the pinned maps (both families), this host's addresses. */
  async policy(): Promise<BlockPolicy> {
    const allow: Cidr[] = [];
    if (existsSync(this.pin(MAP.allowIps))) {
      for (const [key] of records(await this.maps.dump(this.pin(MAP.allowIps)), LPM_KEY, MARK_VALUE)) {
        allow.push({ prefixlen: key.readUInt32LE(0), addr: key.readUInt32BE(4) });
      }
    }
    const allow6: Cidr6[] = [];
    if (existsSync(this.pin(MAP.allowIps6))) {
      for (const [key] of records(await this.maps.dump(this.pin(MAP.allowIps6)), LPM_KEY6, MARK_VALUE)) {
        allow6.push({ prefixlen: key.readUInt32LE(0), bytes: Uint8Array.from(key.subarray(4)) });
      }
    }
    const own: number[] = [];
    const own6: Uint8Array[] = [];
    for (const list of Object.values(networkInterfaces())) {
      for (const a of list ?? []) {
        if (a.family === 'IPv4') own.push(a.address.split('.').reduce((n, o) => n * 256 + Number(o), 0) >>> 0);
        else if (a.family === 'IPv6') {
          const t = parseTarget6(a.address.replace(/%.*$/, ''));
          if (t.ok && t.target.family === 6) own6.push(t.target.bytes!);
        }
      }
    }
    return { minPrefix: this.settings.minPrefix, allow, own, minPrefix6: this.settings.minPrefix6, allow6, own6 };
  }
}
