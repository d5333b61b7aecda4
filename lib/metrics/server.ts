/** The HTTP side: /metrics in the Prometheus text format, nothing else. */
import { createServer, type Server } from 'node:http';
import type { Registry } from 'prom-client';
import { EnvError } from '../errors.js';
import type { Logger } from '../log.js';
import type { ListenAddress } from './listen.js';

/**
 * Serve `registry` on GET /metrics at `addr`. `beforeScrape` brings the
 * values current (it reads the maps); scrapes run one at a time, so two
 * Prometheus servers scraping at once cost two reads, never interleaved.
 * @throws EnvError when the address cannot be bound (in use, not local).
 */
export async function serveMetrics(registry: Registry, addr: ListenAddress, log: Logger, beforeScrape: () => Promise<void>): Promise<Server> {
  let chain: Promise<unknown> = Promise.resolve();
  const scrape = (): Promise<string> => {
    const run = async (): Promise<string> => {
      await beforeScrape();
      return registry.metrics();
    };
    const p = chain.then(run, run);
    chain = p.catch(() => undefined);
    return p;
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
    scrape().then(
      (body) => res.writeHead(200, { 'content-type': registry.contentType }).end(body),
      (err: Error) => {
        log.error('scrape failed', { action: 'metrics', error: err.message });
        res.writeHead(500, { 'content-type': 'text/plain' }).end(`scrape failed: ${err.message}\n`);
      },
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => reject(new EnvError(`cannot listen on ${addr.host}:${addr.port} for metrics: ${err.code ?? err.message}`)));
    server.listen(addr.port, addr.host, () => resolve());
  });
  log.info('serving metrics', { action: 'metrics', listen: `${addr.host}:${addr.port}`, path: '/metrics' });
  return server;
}
