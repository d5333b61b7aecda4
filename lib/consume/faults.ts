/**
 * What a broker error means for the consumer. Pure: the consumer and the
 * dead-letter publisher decide retry, give up or warn from this.
 *
 * Reply codes and texts are RabbitMQ's (AMQP 0-9-1 reply codes, spec 1.2
 * section "Constants"; RabbitMQ's texts such as "NOT_ALLOWED - vhost x not
 * found").
 */

export type FaultKind =
  /** Retrying cannot help until an operator acts: bad credentials, no permission, no such vhost, a stream queue. */
  | 'permanent'
  /** The broker closed the channel because a delivery stayed unacked past consumer_timeout. */
  | 'ack-timeout'
  /** The broker closed the connection on purpose (CONNECTION_FORCED: an operator, a deleted user, a node shutting down): reconnect, the next attempt says whether it is refused. */
  | 'forced'
  /** The broker cancelled the consumer (basic.cancel: the queue was deleted): declare the queue again. */
  | 'cancelled'
  /** Network, restart, broker going away: retry with backoff. */
  | 'transient';

export interface Fault {
  kind: FaultKind;
  /** The broker's own words where it gave any, else the client's, plus a hint where one helps. */
  message: string;
  /** For a permanent fault: what the operator must fix. */
  fix?: string;
}

/** The log line of a reconnect after a fault of this kind (grep-able, stable). */
export function reconnectMessage(kind: FaultKind): string {
  return {
    permanent: 'the broker refuses; retrying',
    'ack-timeout': 'acknowledgement timeout: the broker closed the channel; reconnecting',
    forced: 'the broker closed the connection; reconnecting',
    cancelled: 'consumer cancelled by the broker; declaring the queue again',
    transient: 'broker unreachable; reconnecting',
  }[kind];
}

/**
 * Errors on the dead-letter channel or connection that another publish
 * cannot fix: no write permission on the default exchange (ACCESS_REFUSED),
 * a missing exchange (NOT_FOUND), a refused vhost (NOT_ALLOWED). The
 * broker's words, or undefined for a transient one.
 */
export function permanentPublishError(err: Error): string | undefined {
  if (!/ACCESS[_-]REFUSED|NOT[_-]FOUND|NOT[_-]ALLOWED|Expected ConnectionOpenOk/.test(err.message)) return undefined;
  return /with message "([^"]*)"/.exec(err.message)?.[1] ?? err.message;
}

export interface Endpoint {
  protocol: 'amqp' | 'amqps';
  host: string;
  port: number;
  vhost: string;
}

const TLS_ON_PLAIN = /wrong version number|packet length too long|unknown protocol|ERR_SSL|EPROTO|tlsv1 alert|before secure TLS connection/i;

/**
 * Classify an error from connecting, declaring or consuming.
 * `openRefusal` is the broker's reply text when it refused connection.open
 * (amqplib reports only "Expected ConnectionOpenOk; got <ConnectionClose>").
 */
export function classifyBrokerError(err: Error, at: Endpoint, openRefusal?: string): Fault {
  const msg = err.message;
  if (/Expected ConnectionOpenOk; got <ConnectionClose/.test(msg)) {
    return { kind: 'permanent', message: openRefusal ?? `the broker refused to open virtual host '${at.vhost}' (it does not exist, or this user has no access to it)`, fix: 'fix the credentials, vhost or permissions' };
  }
  const text = /with message "([^"]*)"/.exec(msg)?.[1];
  if (/ACCESS[_-]REFUSED|NOT[_-]ALLOWED/.test(msg)) return { kind: 'permanent', message: text ?? msg, fix: 'fix the credentials, vhost or permissions' };
  if (/CONNECTION[_-]FORCED/.test(msg)) return { kind: 'forced', message: text ?? msg };
  if (/541 \(INTERNAL|INTERNAL[_-]ERROR/.test(msg)) {
    // RabbitMQ answers arguments it cannot use (a malformed x-stream-offset) with 541 on the whole connection.
    return { kind: 'permanent', message: `the broker failed on our request: ${text ?? msg} (541 INTERNAL_ERROR; the broker's log says why)`, fix: 'see the broker log for the request it failed on' };
  }
  if (/consumer cancelled by the broker/.test(msg)) return { kind: 'cancelled', message: msg };
  if (/delivery acknowledgement on channel \d+ timed out/.test(msg)) {
    return { kind: 'ack-timeout', message: `the broker closed the channel: a delivery stayed unacknowledged past its consumer_timeout (${text ?? msg}); what was unacked went back to the queue` };
  }
  if (/PRECONDITION[_-]FAILED/.test(msg) && /inequivalent arg|invalid arg/.test(msg)) {
    // A declare or consume the broker finds inconsistent with what exists (inequivalent arguments): the same next time.
    return { kind: 'permanent', message: `${text ?? msg} (406 PRECONDITION_FAILED)`, fix: 'make the options match the existing queue or stream, or delete it so it is declared again' };
  }
  if (at.protocol === 'amqps' && TLS_ON_PLAIN.test(`${msg} ${(err as NodeJS.ErrnoException).code ?? ''}`)) {
    // A scheme/port mismatch is configuration: retrying the same port cannot help.
    return { kind: 'permanent', message: `${msg} (is ${at.host}:${at.port} a TLS port? amqps:// needs the broker's TLS listener, 5671 by default; use amqp:// for a plain one)`, fix: 'fix the URL: its scheme does not match the port' };
  }
  if (at.protocol === 'amqp' && /Socket closed abruptly during opening handshake/.test(msg)) {
    return { kind: 'permanent', message: `${msg} (if ${at.host}:${at.port} is a TLS listener, use amqps://)`, fix: 'fix the URL: its scheme does not match the port' };
  }
  return { kind: 'transient', message: text ?? msg };
}

/** The last fault of one broker node since the consumer was last connected, and how many times that node refused us for good. */
export interface NodeFault {
  kind: FaultKind;
  message: string;
  fix?: string;
  refusals: number;
}

/** A node's record after one more fault: permanent refusals are counted per node, whatever other nodes answered in between. */
export function nextNodeFault(prev: NodeFault | undefined, fault: Fault): NodeFault {
  return { kind: fault.kind, message: fault.message, fix: fault.fix, refusals: (prev?.refusals ?? 0) + (fault.kind === 'permanent' ? 1 : 0) };
}

/**
 * Whether to give up connecting: every node of the list has been tried
 * since the last connection, each one that answered refused us for good
 * `attempts` times (credentials, vhost, permission, a request it always
 * fails: the permanent kinds of classifyBrokerError), the others were
 * unreachable (transient), and at least one refused. Then the error text
 * names the refusing nodes with their words and the unreachable ones;
 * else undefined (keep retrying: some node may still take us).
 *
 * @param nodes  per node (index as in names), the record since the last connection
 * @param names  the nodes' URLs with passwords redacted
 */
export function refusedEverywhere(nodes: readonly (NodeFault | undefined)[], names: readonly string[], attempts: number): string | undefined {
  const recs = names.map((_, i) => nodes[i]);
  if (recs.some((r) => r === undefined || (r.kind !== 'transient' && !(r.kind === 'permanent' && r.refusals >= attempts)))) return undefined;
  const refused = names.flatMap((n, i) => (recs[i]!.kind === 'permanent' ? [{ n, r: recs[i]! }] : []));
  if (!refused.length) return undefined;
  const fixes = [...new Set(refused.map(({ r }) => r.fix ?? 'fix the credentials, vhost or permissions'))].join('; ');
  if (names.length === 1) return `the broker at ${names[0]!} refuses: ${refused[0]!.r.message} (${refused[0]!.r.refusals} attempts); ${fixes}`;
  const unreachable = names.flatMap((n, i) => (recs[i]!.kind === 'transient' ? [`${n} (${recs[i]!.message})`] : []));
  return `every broker node that answers refuses: ${refused.map(({ n, r }) => `${n}: ${r.message} (${r.refusals} attempts)`).join('; ')}${unreachable.length ? `; unreachable: ${unreachable.join(', ')}` : ''}; ${fixes}`;
}
