/**
 * The RabbitMQ side of consume: connecting (amqp or amqps with a CA file),
 * and declaring the queue, dead-letter queue and bindings idempotently.
 */
import { connect, type ChannelModel } from 'amqplib';
import { readFileSync } from 'node:fs';
import { connect as netConnect, isIP } from 'node:net';
import { hostname } from 'node:os';
import { connect as tlsConnect } from 'node:tls';
import { UsageError } from '../errors.js';
import type { Endpoint } from './faults.js';
import { quoted } from '../quote.js';

export interface Topology {
  queue: string;
  deadLetter: string;
  /** Bind the queue to this exchange with routingKey (declared as direct if missing). */
  exchange?: string;
  routingKey?: string;
  /** Cluster mode: bind the queue to this fanout exchange (declared if missing). */
  fanout?: string;
  /** Stream mode: `queue` is a RabbitMQ stream, declared with this retention if missing. */
  stream?: StreamRetention;
}

/** A stream's retention (RabbitMQ stream arguments x-max-age and x-max-length-bytes). */
export interface StreamRetention {
  /** x-max-age: a number and one of Y, M, D, h, m, s ("7D"). */
  maxAge: string;
  /** x-max-length-bytes: the stream's total size bound, bytes. */
  maxBytes: number;
}

/** --url values (repeatable, each a comma-separated list, as VOS_AMQP_URL may be too) to one URL per broker node. */
export function splitUrls(values: readonly string[]): string[] {
  const urls = values.flatMap((v) => v.split(',')).map((u) => u.trim()).filter(Boolean);
  if (!urls.length) throw new UsageError('no broker URL: give --url amqp://host[:port][/vhost] (or VOS_AMQP_URL)');
  return urls;
}

/** The URL with its password replaced, for logs and messages. */
export function redactUrl(url: string): string {
  return url.replace(/^(amqps?:\/\/[^:@/]*:)[^@/]*@/, '$1***@');
}

export function checkUrl(url: string): void {
  if (!/^amqps?:\/\/[^\s]+$/.test(url)) throw new UsageError(`bad AMQP URL ${quoted(redactUrl(url))}: use amqp://host[:port][/vhost] or amqps://...`);
}

/** The per-node queue of a fanout exchange: one durable queue per host, so every node gets every message. */
export function fanoutQueueName(exchange: string, host: string = hostname()): string {
  return `${exchange}.${host.replace(/[^A-Za-z0-9._-]/g, '_')}`;
}

/** Where and as whom to connect; the password travels in this object, never spliced into a URL. */
/**
 * The password file's content as the broker must see it: only the final
 * newline (LF or CRLF) is dropped; spaces, '%' and non-ASCII are kept.
 */
export function passwordFromFile(text: string): string {
  return text.replace(/\r?\n$/, '');
}

/**
 * Read a password file (consume and doctor alike). UsageError (exit 2)
 * naming the file when it cannot be read or holds no password: an empty
 * one would be sent as an empty password and refused by the broker.
 */
export function readPasswordFile(path: string): string {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new UsageError(`cannot read the password file ${path}: ${(err as Error).message}`);
  }
  const password = passwordFromFile(text);
  if (password === '') throw new UsageError(`the password file ${path} is empty: write the broker password in it (a final newline is dropped)`);
  return password;
}

export interface BrokerAccess {
  endpoint: Endpoint;
  username: string;
  password: string;
  /** Seconds; the URL's ?heartbeat= or 15 (a dead broker or cut network is noticed within ~30 s). */
  heartbeatS: number;
  /** Other tuning from the URL's query (frameMax, channelMax, locale), passed on as amqplib reads them. */
  tuning: Record<string, string>;
  caFile?: string;
  /** The URL for logs: the password, if any, shown as ***. */
  display: string;
}

const decode = (s: string): string => {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
};

/**
 * From a URL (amqp[s]://[user[:pass]@]host[:port][/vhost][?heartbeat=N]) and
 * an optional password read from a file, to connection options. The file's
 * password is used byte for byte (any '%', non-ASCII or trailing space), as
 * the broker compares it; it wins over none in the URL, not over one in it.
 * Vhost and user in the URL are percent-decoded (RabbitMQ URI spec); an
 * empty path is the vhost '/'.
 */
export function brokerAccess(url: string, passwordFromFile?: string, caFile?: string): BrokerAccess {
  checkUrl(url);
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new UsageError(`bad AMQP URL ${quoted(redactUrl(url))}`);
  }
  const protocol = u.protocol === 'amqps:' ? 'amqps' : 'amqp';
  const host = u.hostname.replace(/^\[|\]$/g, '');
  if (!host) throw new UsageError(`bad AMQP URL ${quoted(redactUrl(url))}: no host`);
  const port = u.port ? Number(u.port) : protocol === 'amqps' ? 5671 : 5672;
  const vhost = u.pathname.length > 1 ? decode(u.pathname.slice(1)) : '/';
  const inUrl = u.username !== '' || u.password !== '';
  const username = inUrl ? decode(u.username) : 'guest';
  const password = u.password !== '' ? decode(u.password) : (passwordFromFile ?? (inUrl ? '' : 'guest'));
  const tuning: Record<string, string> = {};
  for (const [k, v] of u.searchParams) if (['frameMax', 'channelMax', 'locale'].includes(k)) tuning[k] = v;
  const hb = u.searchParams.get('heartbeat');
  const heartbeatS = hb === null ? 15 : Number(hb);
  if (!Number.isInteger(heartbeatS) || heartbeatS < 0) throw new UsageError(`bad heartbeat ${quoted(hb)} in the AMQP URL: whole seconds, 0 = none`);
  let display = redactUrl(url);
  if (passwordFromFile !== undefined && u.password === '') display = display.replace(/^(amqps?:\/\/)([^@/]*)@/, (_m, p: string, user: string) => `${p}${user}:***@`);
  return { endpoint: { protocol, host, port, vhost }, username, password, heartbeatS, tuning, caFile, display };
}

function socketOptions(a: BrokerAccess): Record<string, unknown> {
  const o: Record<string, unknown> = { timeout: 10_000 };
  if (a.caFile) o.ca = [readFileSync(a.caFile)];
  return o;
}

export async function connectBroker(a: BrokerAccess, name: string): Promise<ChannelModel> {
  const { protocol, host, port, vhost } = a.endpoint;
  const num = (k: string): number | undefined => (a.tuning[k] === undefined ? undefined : Number(a.tuning[k]));
  const o = { ...socketOptions(a), clientProperties: { connection_name: name } };
  // amqplib unescapes the vhost of an options object once more (connect.js openFrames): hand it escaped.
  return connect({ protocol, hostname: host, port, username: a.username, password: a.password, vhost: encodeURIComponent(vhost), heartbeat: a.heartbeatS, frameMax: num('frameMax'), channelMax: num('channelMax'), locale: a.tuning.locale }, o);
}

/**
 * The broker's reason for refusing connection.open (for example
 * "NOT_ALLOWED - vhost x not found"), which amqplib drops. A minimal AMQP
 * 0-9-1 handshake (spec 2.2.4: start, start-ok PLAIN, tune, tune-ok, open)
 * that reads the connection.close reply text. Undefined when the broker
 * opens the vhost, or on any other outcome; never throws.
 */
export async function openRefusal(a: BrokerAccess): Promise<string | undefined> {
  const { protocol, host, port, vhost } = a.endpoint;
  const shortstr = (s: string): Buffer => {
    const b = Buffer.from(s, 'utf8');
    return Buffer.concat([Buffer.from([b.length]), b]);
  };
  const method = (cls: number, id: number, args: Buffer): Buffer => {
    const payload = Buffer.concat([Buffer.from([cls >> 8, cls & 255, id >> 8, id & 255]), args]);
    const head = Buffer.alloc(7);
    head.writeUInt8(1, 0);
    head.writeUInt32BE(payload.length, 3);
    return Buffer.concat([head, payload, Buffer.from([0xce])]);
  };
  return new Promise((resolve) => {
    const sock = protocol === 'amqps' ? tlsConnect({ host, port, ca: a.caFile ? [readFileSync(a.caFile)] : undefined, servername: isIP(host) ? undefined : host }) : netConnect({ host, port });
    let buf = Buffer.alloc(0);
    const done = (v: string | undefined): void => {
      clearTimeout(timer);
      sock.destroy();
      resolve(v);
    };
    const timer = setTimeout(() => done(undefined), 5000);
    sock.on('error', () => done(undefined));
    sock.on('close', () => done(undefined));
    sock.once(protocol === 'amqps' ? 'secureConnect' : 'connect', () => sock.write(Buffer.from([65, 77, 81, 80, 0, 0, 9, 1])));
    sock.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      while (buf.length >= 8 && buf.length >= 8 + buf.readUInt32BE(3)) {
        const size = buf.readUInt32BE(3);
        const p = buf.subarray(7, 7 + size);
        buf = buf.subarray(8 + size);
        if (p.length < 4) continue; // a heartbeat or content frame: not part of the handshake
        const key = `${p.readUInt16BE(0)}.${p.readUInt16BE(2)}`;
        if (key === '10.10') {
          const response = Buffer.concat([Buffer.from([0]), Buffer.from(a.username, 'utf8'), Buffer.from([0]), Buffer.from(a.password, 'utf8')]);
          const len = Buffer.alloc(4);
          len.writeUInt32BE(response.length);
          sock.write(method(10, 11, Buffer.concat([Buffer.alloc(4), shortstr('PLAIN'), len, response, shortstr('en_US')])));
        } else if (key === '10.30') {
          const tune = Buffer.alloc(8);
          tune.writeUInt16BE(p.readUInt16BE(4), 0);
          tune.writeUInt32BE(p.readUInt32BE(6) || 131072, 2);
          sock.write(method(10, 31, tune));
          sock.write(method(10, 40, Buffer.concat([shortstr(vhost), shortstr(''), Buffer.from([0])])));
        } else if (key === '10.50') {
          done(p.subarray(7, 7 + p.readUInt8(6)).toString('utf8'));
        } else done(undefined);
      }
    });
  });
}

/**
 * Declare what the consumer needs. An existing queue is used as it is (its
 * arguments are respected, never re-declared with ours); a missing one is
 * created durable. Passive checks close their channel on a miss, so each
 * gets a channel of its own.
 */
export async function declareTopology(conn: ChannelModel, t: Topology): Promise<{ created: string[]; unavailable: string[]; retention?: string }> {
  const created: string[] = [];
  const unavailable: string[] = [];
  let retention: string | undefined;
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
      if (await exists((c) => c.checkQueue(q))) {
        if (q === t.queue) {
          const type = await queueType(conn, q);
          if (!t.stream && type === 'stream') throw new StreamQueueError(q);
          if (t.stream && type !== undefined && type !== 'stream') throw new NotAStreamError(q, type);
          if (t.stream && type === 'stream') retention = await retentionDiffers(conn, q, t.stream);
        }
        continue;
      }
      if (q === t.queue && t.stream) {
        await ch.assertQueue(q, { durable: true, arguments: streamArguments(t.stream) });
        created.push(`stream ${q} (x-max-age ${t.stream.maxAge}, x-max-length-bytes ${t.stream.maxBytes})`);
        continue;
      }
      if (q === t.deadLetter) {
        // Its own channel, and never fatal: a dead-letter queue unreachable now (its home node down in a
        // cluster) must not stop enforcement; DeadLetterPublisher declares it again when it publishes.
        // Beside a stream it is a quorum queue, replicated across the cluster like the stream.
        const own = await conn.createChannel();
        own.on('error', () => undefined);
        try {
          await own.assertQueue(q, { durable: true, ...(t.stream ? { arguments: { 'x-queue-type': 'quorum' } } : {}) });
          await own.close().catch(() => undefined);
          created.push(`${t.stream ? 'quorum ' : ''}queue ${q}`);
        } catch (err) {
          unavailable.push(`dead-letter queue ${q}: ${(err as Error).message}`);
        }
        continue;
      }
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
  return { created, unavailable, retention };
}

/** A stream's declare arguments for this retention (RabbitMQ stream arguments). */
function streamArguments(r: StreamRetention): Record<string, unknown> {
  return { 'x-queue-type': 'stream', 'x-max-age': r.maxAge, 'x-max-length-bytes': r.maxBytes };
}

/**
 * Whether an existing stream was declared with another retention than ours:
 * each differing argument with the broker's value and ours ("x-max-age '1h'
 * (asked '7D')"), or undefined when they are the same. The broker names one
 * per answer (406 PRECONDITION_FAILED "inequivalent arg 'x-max-age' ...
 * received '7D' but current is '1h'"): declared again with its value in
 * place of ours until it agrees, each try on a channel of its own (a 406
 * closes it). The stream itself is never changed: queue arguments are fixed
 * at declare time (policies change retention later).
 */
async function retentionDiffers(conn: ChannelModel, stream: string, r: StreamRetention): Promise<string | undefined> {
  const args = streamArguments(r);
  const found: string[] = [];
  for (let i = 0; i < 4; i++) {
    const ch = await conn.createChannel();
    ch.on('error', () => undefined);
    try {
      await ch.assertQueue(stream, { durable: true, arguments: args });
      await ch.close().catch(() => undefined);
      break;
    } catch (err) {
      const text = /with message "([^"]*)"/.exec((err as Error).message)?.[1] ?? (err as Error).message;
      const m = /inequivalent arg '([^']+)'.* but current is (?:none|(?:the value )?'([^']*)')/.exec(text);
      if (!m) {
        if (/PRECONDITION[_-]FAILED/.test(text)) found.push(text);
        break;
      }
      const [, arg, current] = m as unknown as [string, string, string | undefined];
      found.push(`${arg} ${current === undefined ? 'not set' : quoted(current)} (asked ${args[arg] === undefined ? 'none' : quoted(String(args[arg]))})`);
      if (current === undefined) delete args[arg];
      else args[arg] = /^\d+$/.test(current) ? Number(current) : current;
    }
  }
  return found.length ? found.join(', ') : undefined;
}

/**
 * Follow a stream's end: a consumer at x-stream-offset 'last' (the stream's
 * last chunk, then whatever comes), on a channel of its own. `onTail` gets
 * the highest offset seen once deliveries paused for quietMs (the last chunk
 * arrives in one go); nothing is called while the stream is empty, until its
 * first message. stop() cancels it. Deliveries are acked (a stream keeps them).
 */
export async function followStreamTail(conn: ChannelModel, stream: string, onTail: (offset: number) => void, quietMs = 500): Promise<{ stop: () => void }> {
  const ch = await conn.createChannel();
  ch.on('error', () => undefined);
  let high = -1;
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  const stop = (): void => {
    if (stopped) return;
    stopped = true;
    clearTimeout(timer);
    void ch.close().catch(() => undefined);
  };
  await ch.prefetch(1000);
  await ch.consume(
    stream,
    (msg) => {
      if (!msg || stopped) return;
      ch.ack(msg);
      const off = msg.properties.headers?.['x-stream-offset'];
      if (typeof off === 'number' && off > high) high = off;
      clearTimeout(timer);
      timer = setTimeout(() => {
        if (stopped) return;
        stop();
        onTail(high);
      }, quietMs);
    },
    { noAck: false, arguments: { 'x-stream-offset': 'last' } },
  );
  return { stop };
}

/** A stream keeps no per-consumer position over AMQP 0-9-1: a consumer that restarts skips what came meanwhile. */
export class StreamQueueError extends UsageError {
  constructor(readonly queue: string) {
    super(`queue ${quoted(queue)} is a stream (x-queue-type stream): consume it with --stream ${queue}, which keeps its offset in the state (--queue would skip what was published while it was down)`);
  }
}

/** --stream given the name of a classic or quorum queue. */
export class NotAStreamError extends UsageError {
  constructor(readonly queue: string, type = 'not a stream') {
    super(`${quoted(queue)} is not a stream (a ${type} queue): consume it with --queue, or give --stream a stream's name`);
  }
}

/**
 * The type of an existing queue ('stream', 'classic', 'quorum'), as the
 * broker tells it: a basic.consume with the x-stream-offset argument, on a
 * channel of its own, succeeds on a stream only and is refused on any other
 * queue naming its type ("invalid arg 'x-stream-offset' ... of queue type
 * rabbit_classic_queue"; RabbitMQ 3.9+). The probe consumer is cancelled at
 * once; what it was sent goes back with its channel (a stream keeps it
 * anyway). Undefined when the answer names no type.
 */
export async function queueType(conn: ChannelModel, queue: string): Promise<string | undefined> {
  const ch = await conn.createChannel();
  ch.on('error', () => undefined);
  try {
    await ch.prefetch(1);
    const { consumerTag } = await ch.consume(queue, () => undefined, { noAck: false, arguments: { 'x-stream-offset': 'next' } });
    await ch.cancel(consumerTag).catch(() => undefined);
    await ch.close().catch(() => undefined);
    return 'stream';
  } catch (err) {
    return /of queue type rabbit_(\w+)_queue/.exec((err as Error).message)?.[1];
  }
}

/** A delivery from a stream carries its offset in the x-stream-offset header. */
export function isStreamDelivery(headers: Record<string, unknown> | undefined): boolean {
  return headers?.['x-stream-offset'] !== undefined;
}
