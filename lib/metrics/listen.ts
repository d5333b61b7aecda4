/** The metrics listen address. Pure. */
import { isIPv4, isIPv6 } from 'node:net';
import { UsageError } from '../errors.js';
import { quoted } from '../quote.js';

export interface ListenAddress {
  /** An IPv4 literal, an IPv6 literal (no brackets; a link-local one with its %zone), or a hostname. */
  host: string;
  port: number;
}

/** RFC 1123 section 2.1 host name: dot-separated labels of letters, digits and inner hyphens, 63 each, 253 in all. */
const HOSTNAME = /^(?=.{1,253}$)(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

/**
 * Parse `HOST:PORT` (`127.0.0.1:9864`, `[::1]:9864`, `[fe80::1%eth0]:9864`,
 * `localhost:9864`). The port is 1-65535; the host is required, so an
 * exporter never listens on every interface by accident. The host must be an
 * IP literal (IPv6 in brackets, RFC 3986 section 3.2.2) or a host name
 * (RFC 1123); all digits and dots must be a valid IPv4 address; an IPv6
 * link-local address needs its zone (`%iface`), without which no socket can
 * bind it.
 * @throws UsageError naming the bad value.
 */
export function parseListen(text: string): ListenAddress {
  const bad = (why: string): UsageError => new UsageError(`bad metrics listen address ${quoted(text)}: ${why}; HOST:PORT, e.g. 127.0.0.1:9864 or [::1]:9864`);
  const m = /^(?:\[([^\]]*)\]|([^:[\]]*)):(\d{1,5})$/.exec(text.trim());
  if (!m) throw bad('not HOST:PORT (an IPv6 address goes in brackets)');
  const port = Number(m[3]);
  if (!(port >= 1 && port <= 65535)) throw bad(`port ${m[3]} is not 1-65535`);
  if (m[1] !== undefined) {
    const [addr, zone] = m[1].split('%', 2) as [string, string | undefined];
    if (!isIPv6(addr) || (zone !== undefined && !/^[A-Za-z0-9_.-]{1,15}$/.test(zone))) throw bad(`${quoted(m[1])} is not an IPv6 address`);
    if (zone === undefined && /^fe[89ab]/i.test(addr)) throw bad(`${quoted(addr)} is link-local: give its interface, e.g. [${addr}%eth0]`);
    return { host: m[1], port };
  }
  const host = m[2]!;
  if (!host) throw bad('the host is missing');
  if (/^[\d.]+$/.test(host) ? !isIPv4(host) : !HOSTNAME.test(host)) throw bad(`${quoted(host)} is neither an IPv4 address nor a host name`);
  return { host, port };
}

/** The address as an operator writes it back: `[v6]:port` for IPv6, `host:port` else. */
export function formatListen(a: ListenAddress): string {
  return a.host.includes(':') ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`;
}
