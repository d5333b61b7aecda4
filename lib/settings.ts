/** Flags beat environment beat config file beat defaults. Pure: everything comes in as arguments. */
import { UsageError } from './errors.js';
import { quoted } from './quote.js';

export interface Settings {
  pinDir: string;
  stateDir: string;
  minPrefix: number;
  /** Shortest IPv6 prefix that may be blocked (0-128; default 32). */
  minPrefix6: number;
  logLevel: string;
  logFormat: 'json' | 'text' | undefined;
  amqpUrl: string;
  amqpCaFile: string | undefined;
  /** A file holding the broker password, so it is on no command line. */
  amqpPasswordFile: string | undefined;
  /** HOST:PORT of the Prometheus /metrics endpoint (vosctl exporter, consume --metrics-listen). */
  metricsListen: string;
  /** The cluster's own addresses, comma-separated: vosctl consume never blocks them. */
  neverBlock: string | undefined;
}

export type FileConfig = Partial<Record<keyof Settings, unknown>>;
export type Flags = Partial<Record<keyof Settings, unknown>>;

const ENV: Record<keyof Settings, string> = {
  pinDir: 'VOS_PIN_DIR',
  stateDir: 'VOS_STATE_DIR',
  minPrefix: 'VOS_MIN_PREFIX',
  minPrefix6: 'VOS_MIN_PREFIX6',
  logLevel: 'VOS_LOG_LEVEL',
  logFormat: 'VOS_LOG_FORMAT',
  amqpUrl: 'VOS_AMQP_URL',
  amqpCaFile: 'VOS_AMQP_CA_FILE',
  amqpPasswordFile: 'VOS_AMQP_PASSWORD_FILE',
  metricsListen: 'VOS_METRICS_LISTEN',
  neverBlock: 'VOS_NEVER_BLOCK',
};

export const DEFAULTS: Settings = {
  pinDir: '/sys/fs/bpf/vos_fastpath',
  stateDir: '/var/lib/vos-fastpath',
  minPrefix: 8,
  minPrefix6: 32,
  logLevel: 'info',
  logFormat: undefined,
  amqpUrl: 'amqp://guest:guest@127.0.0.1:5672',
  amqpCaFile: undefined,
  amqpPasswordFile: undefined,
  metricsListen: '127.0.0.1:9864',
  neverBlock: undefined,
};

export function resolveSettings(flags: Flags, env: NodeJS.ProcessEnv, file: FileConfig): Settings {
  const pick = (k: keyof Settings): unknown => flags[k] ?? env[ENV[k]] ?? file[k] ?? DEFAULTS[k];
  const minPrefix = Number(pick('minPrefix'));
  if (!Number.isInteger(minPrefix) || minPrefix < 0 || minPrefix > 32) throw new UsageError(`bad minimum prefix ${quoted(String(pick('minPrefix')))}: 0 to 32`);
  const minPrefix6 = Number(pick('minPrefix6'));
  if (!Number.isInteger(minPrefix6) || minPrefix6 < 0 || minPrefix6 > 128) throw new UsageError(`bad minimum IPv6 prefix ${quoted(String(pick('minPrefix6')))}: 0 to 128`);
  const logFormat = pick('logFormat');
  if (logFormat !== undefined && logFormat !== 'json' && logFormat !== 'text') throw new UsageError(`bad log format ${quoted(String(logFormat))}: json or text`);
  const level = String(pick('logLevel'));
  if (!['error', 'warn', 'info', 'http', 'verbose', 'debug', 'silly'].includes(level)) throw new UsageError(`bad log level ${quoted(level)}`);
  const ca = pick('amqpCaFile');
  const pw = pick('amqpPasswordFile');
  const nb = pick('neverBlock');
  return {
    pinDir: String(pick('pinDir')),
    stateDir: String(pick('stateDir')),
    minPrefix,
    minPrefix6,
    logLevel: level,
    logFormat: logFormat as Settings['logFormat'],
    amqpUrl: String(pick('amqpUrl')),
    amqpCaFile: ca === undefined ? undefined : String(ca),
    amqpPasswordFile: pw === undefined ? undefined : String(pw),
    metricsListen: String(pick('metricsListen')),
    // a config file may give a JSON list
    neverBlock: nb === undefined ? undefined : Array.isArray(nb) ? nb.map(String).join(',') : String(nb),
  };
}

/** Parse a config file's text (JSON object with the Settings keys). */
export function parseConfigFile(text: string, path: string): FileConfig {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new UsageError(`config file ${path} is not valid JSON: ${(err as Error).message}`);
  }
  if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) throw new UsageError(`config file ${path} must hold a JSON object`);
  const known = new Set(Object.keys(DEFAULTS));
  for (const k of Object.keys(parsed)) if (!known.has(k)) throw new UsageError(`config file ${path}: unknown key ${quoted(k)} (known: ${[...known].join(', ')})`);
  return parsed as FileConfig;
}
