/** The metrics listen address. Pure. */
import { UsageError } from '../errors.js';

export interface ListenAddress {
  host: string;
  port: number;
}

/**
 * Parse `HOST:PORT` (`127.0.0.1:9864`, `[::1]:9864`, `0.0.0.0:9864`). The
 * port is 1-65535; the host is required, so an exporter never listens on
 * every interface by accident.
 * @throws UsageError naming the bad value.
 */
export function parseListen(text: string): ListenAddress {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9.-]+)):(\d{1,5})$/.exec(text.trim());
  const port = m ? Number(m[3]) : NaN;
  if (!m || !(port >= 1 && port <= 65535)) throw new UsageError(`bad metrics listen address '${text}': HOST:PORT, e.g. 127.0.0.1:9864 or [::1]:9864`);
  return { host: m[1] ?? m[2]!, port };
}
