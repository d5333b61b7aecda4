/**
 * The RabbitMQ side of consume: connecting (amqp or amqps with a CA file),
 * and declaring the queue, dead-letter queue and bindings idempotently.
 */
import { connect, type ChannelModel } from 'amqplib';
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { UsageError } from '../errors.js';

export interface Topology {
  queue: string;
  deadLetter: string;
  /** Bind the queue to this exchange with routingKey (declared as direct if missing). */
  exchange?: string;
  routingKey?: string;
  /** Cluster mode: bind the queue to this fanout exchange (declared if missing). */
  fanout?: string;
}

/** The URL with its password replaced, for logs and messages. */
export function redactUrl(url: string): string {
  return url.replace(/^(amqps?:\/\/[^:@/]*:)[^@/]*@/, '$1***@');
}

/** Put a password (from a file or the environment) into a URL that has a user but none. */
export function withPassword(url: string, password: string | undefined): string {
  if (!password) return url;
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new UsageError(`bad AMQP URL '${redactUrl(url)}'`);
  }
  if (u.password) return url;
  u.username ||= 'guest';
  u.password = password;
  return u.toString();
}

export function checkUrl(url: string): void {
  if (!/^amqps?:\/\/[^\s]+$/.test(url)) throw new UsageError(`bad AMQP URL '${redactUrl(url)}': use amqp://host[:port][/vhost] or amqps://...`);
}

/** The per-node queue of a fanout exchange: one durable queue per host, so every node gets every message. */
export function fanoutQueueName(exchange: string, host: string = hostname()): string {
  return `${exchange}.${host.replace(/[^A-Za-z0-9._-]/g, '_')}`;
}

export async function connectBroker(url: string, caFile: string | undefined): Promise<ChannelModel> {
  const socketOptions: Record<string, unknown> = { timeout: 10_000 };
  if (caFile) socketOptions.ca = [readFileSync(caFile)];
  // heartbeat: a dead broker or a cut network is noticed within ~30 s even when no message flows.
  const sep = url.includes('?') ? '&' : '?';
  return connect(/[?&]heartbeat=/.test(url) ? url : `${url}${sep}heartbeat=15`, socketOptions);
}

/**
 * Declare what the consumer needs. An existing queue is used as it is (its
 * arguments are respected, never re-declared with ours); a missing one is
 * created durable. Passive checks close their channel on a miss, so each
 * gets a channel of its own.
 */
export async function declareTopology(conn: ChannelModel, t: Topology): Promise<{ created: string[] }> {
  const created: string[] = [];
  const exists = async (check: (ch: Awaited<ReturnType<ChannelModel['createChannel']>>) => Promise<unknown>): Promise<boolean> => {
    const ch = await conn.createChannel();
    ch.on('error', () => undefined); // a 404 from a passive check is the answer, not a failure
    try {
      await check(ch);
      await ch.close();
      return true;
    } catch {
      return false;
    }
  };
  const ch = await conn.createChannel();
  try {
    for (const q of [t.queue, t.deadLetter]) {
      if (await exists((c) => c.checkQueue(q))) continue;
      await ch.assertQueue(q, { durable: true });
      created.push(`queue ${q}`);
    }
    for (const [ex, type, key] of [
      [t.exchange, 'direct', t.routingKey ?? t.queue],
      [t.fanout, 'fanout', ''],
    ] as const) {
      if (!ex) continue;
      if (!(await exists((c) => c.checkExchange(ex)))) {
        await ch.assertExchange(ex, type, { durable: true });
        created.push(`${type} exchange ${ex}`);
      }
      await ch.bindQueue(t.queue, ex, key);
    }
  } finally {
    await ch.close().catch(() => undefined);
  }
  return { created };
}
