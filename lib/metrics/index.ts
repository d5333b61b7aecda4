/** One metrics endpoint: a prom-client registry, the host metrics, the HTTP server. */
import { Registry } from 'prom-client';
import type { Context } from '../context.js';
import { HostMetrics } from './host.js';
import { parseListen } from './listen.js';
import { serveMetrics } from './server.js';

export interface MetricsOptions {
  /** HOST:PORT. */
  listen: string;
  ifaces: readonly string[];
  driftIntervalS: number;
}

export interface MetricsEndpoint {
  registry: Registry;
  /** Stop serving and the drift checks. */
  close(): Promise<void>;
}

/**
 * Serve /metrics for this host's pinned maps at `o.listen`.
 * @throws UsageError for a bad address, EnvError when it cannot be bound.
 */
export async function startMetrics(ctx: Context, o: MetricsOptions): Promise<MetricsEndpoint> {
  const addr = parseListen(o.listen);
  const registry = new Registry();
  // No prom-client default metrics: their nodejs_*_total gauges fail `promtool check metrics`.
  const host = new HostMetrics(ctx.withOwnMaps(), registry, { ifaces: o.ifaces, driftIntervalS: o.driftIntervalS });
  const server = await serveMetrics(registry, addr, ctx.log, () => host.collect());
  host.start();
  return {
    registry,
    close: async () => {
      await host.stop();
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
