/**
 * Logs go to stderr (stdout is for data such as --json output), as JSON with
 * stable field names (action, ip, source, ttl_s, queue, msg_id) when stderr is
 * not a terminal, as readable lines when it is.
 */
import winston from 'winston';

export type LogFormat = 'json' | 'text';
export type Logger = winston.Logger;

export function createLogger(level: string, format: LogFormat | undefined): Logger {
  const fmt = format ?? (process.stderr.isTTY ? 'text' : 'json');
  const levels = Object.keys(winston.config.npm.levels);
  return winston.createLogger({
    level,
    format:
      fmt === 'json'
        ? winston.format.combine(winston.format.timestamp(), winston.format.json())
        : winston.format.combine(
            winston.format.timestamp({ format: 'HH:mm:ss' }),
            winston.format.printf(({ timestamp, level: lvl, message, ...rest }) => {
              const fields = Object.entries(rest).filter(([, v]) => v !== undefined).map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`);
              return `${timestamp} ${lvl} ${message}${fields.length ? ' ' + fields.join(' ') : ''}`;
            }),
          ),
    transports: [new winston.transports.Console({ stderrLevels: levels })],
  });
}
