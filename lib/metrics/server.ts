/** The HTTP side: /metrics in the Prometheus text format, nothing else. */
import { createServer, type Server } from 'node:http';
import type { Registry } from 'prom-client';
import { EnvError } from '../errors.js';
import type { Logger } from '../log.js';
import { formatListen, type ListenAddress } from './listen.js';

/**
 * Serve `registry` on GET /metrics at `addr`. `beforeScrape` brings the
 * values current (it reads the maps). Requests arriving while a collect runs
 * share it: a hundred clients at once cost one read of the maps, and a client
 * that gives up leaves nothing queued behind it. HEAD answers the headers
 * without collecting.
 * @throws EnvError when the address cannot be bound (in use, not local).
 */
export async function serveMetrics(registry: Registry, addr: ListenAddress, log: Logger, beforeScrape: () => Promise<void>): Promise<Server> {
  let inFlight: Promise<string> | undefined;
  const scrape = (): Promise<string> => {
    inFlight ??= (async () => {
      try {
        await beforeScrape();
        return await registry.metrics();
      } finally {
        inFlight = undefined;
      }
    })();
    return inFlight;
  };
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET' }).end();
      return;
    }
    if (path === '/') {
      res.writeHead(200, { 'content-type': 'text/html' }).end('<html><body><a href="/metrics">metrics</a></body></html>\n');
      return;
    }
    if (path !== '/metrics') {
      res.writeHead(404).end('not found\n');
      return;
    }
    if (req.method === 'HEAD') {
      res.writeHead(200, { 'content-type': registry.contentType }).end();
      return;
    }
    scrape().then(
      (body) => res.writeHead(200, { 'content-type': registry.contentType }).end(body),
      (err: Error) => {
        log.error('scrape failed', { action: 'metrics', error: err.message });
        res.writeHead(500, { 'content-type': 'text/plain' }).end(`scrape failed: ${err.message}\n`);
      },
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => reject(new EnvError(`cannot listen on ${formatListen(addr)} for metrics: ${err.code ?? err.message}${err.code === 'EADDRNOTAVAIL' ? ' (not an address of this host)' : ''}`)));
    server.listen(addr.port, addr.host, () => resolve());
  });
  log.info('serving metrics', { action: 'metrics', listen: formatListen(addr), path: '/metrics' });
  return server;
}
