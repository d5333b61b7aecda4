import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { backoffMs, planMessage, planRuns } from '../../lib/consume/plan.js';
import { brokerAccess, fanoutQueueName, redactUrl, splitUrls } from '../../lib/consume/broker.js';
import { classifyBrokerError, nextNodeFault, permanentPublishError, reconnectMessage, refusedEverywhere, type Fault, type NodeFault } from '../../lib/consume/faults.js';
import { parseNeverBlock } from '../../lib/commands/consume.js';
import { passwordFromFile, readPasswordFile } from '../../lib/consume/broker.js';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkBlockTarget } from '../../lib/address.js';
import { parseMessage, type ParsedMessage } from '../../lib/messages.js';

const parse = (s: string, max?: number): ParsedMessage => parseMessage(Buffer.from(s), max);
const targets = (s: string) => {
  const r = parse(s);
  if (!r.ok) throw new Error(r.reason);
  return r.commands.map((c) => `${c.action} ${c.target}`);
};
const reason = (s: string | Buffer) => {
  const r = typeof s === 'string' ? parse(s) : parseMessage(s);
  if (r.ok) throw new Error(`accepted ${JSON.stringify(r.commands)}`);
  return r.reason;
};

describe('parseMessage', () => {
  it('reads our JSON shapes', () => {
    expect(targets('{"action":"block","ip":"1.2.3.4"}')).toEqual(['block 1.2.3.4']);
    expect(targets('{"action":"unblock","ip":"1.2.3.4"}')).toEqual(['unblock 1.2.3.4']);
    expect(targets('{"ip":"1.2.3.0/24"}')).toEqual(['block 1.2.3.0/24']);
    expect(targets('{"ips":["1.2.3.4","5.6.7.8"]}')).toEqual(['block 1.2.3.4', 'block 5.6.7.8']);
    expect(targets('["1.2.3.4","5.6.7.8"]')).toEqual(['block 1.2.3.4', 'block 5.6.7.8']);
    expect(targets('[{"action":"unblock","ip":"1.2.3.4"},"5.6.7.8"]')).toEqual(['unblock 1.2.3.4', 'block 5.6.7.8']);
    expect(targets('"1.2.3.4"')).toEqual(['block 1.2.3.4']);
  });

  it('keeps ttl, reason and source', () => {
    const r = parse('{"ip":"1.2.3.4","ttl":"30m","reason":"flood","source":"kamailio","host":"ignored"}');
    expect(r).toEqual({ ok: true, commands: [{ action: 'block', target: '1.2.3.4', ttlS: 1800, reason: 'flood', source: 'kamailio' }] });
    expect(parse('{"ip":"1.2.3.4","ttl":90}')).toMatchObject({ commands: [{ ttlS: 90 }] });
    expect(parse('{"ip":"1.2.3.4","ttl":0}')).toMatchObject({ commands: [{ ttlS: 0 }] });
    expect(parse('{"ip":"1.2.3.4"}')).toEqual({ ok: true, commands: [{ action: 'block', target: '1.2.3.4' }] });
  });

  it('reads OpenSIPS event_rabbitmq JSON-RPC notifications, params by name or in order', () => {
    expect(targets('{"jsonrpc":"2.0","method":"E_PIKE_BLOCKED","params":{"ip":"192.168.2.11"}}')).toEqual(['block 192.168.2.11']);
    expect(targets('{"jsonrpc":"2.0","method":"E_PIKE_BLOCKED","params":["192.168.2.11"],"id":null}')).toEqual(['block 192.168.2.11']);
    expect(targets('{"jsonrpc":"2.0","method":"unblock","params":{"ip":"192.168.2.11"}}')).toEqual(['unblock 192.168.2.11']);
    expect(reason('{"jsonrpc":"2.0","method":"E_UL_AOR_INSERT","params":{"aor":"x"}}')).toMatch(/unknown JSON-RPC method 'E_UL_AOR_INSERT'/);
    expect(reason('{"jsonrpc":"2.0","method":"E_PIKE_BLOCKED"}')).toMatch(/without params/);
    expect(reason('{"jsonrpc":"2.0","method":"E_PIKE_BLOCKED","params":[7]}')).toMatch(/params\[0\] must be the address/);
  });

  it('reads plain text, one address per line', () => {
    expect(targets('1.2.3.4')).toEqual(['block 1.2.3.4']);
    expect(targets('1.2.3.4\r\n# a comment\n\n5.6.7.8 # trailing\n')).toEqual(['block 1.2.3.4', 'block 5.6.7.8']);
  });

  it('refuses what it cannot read, saying why', () => {
    expect(reason('{"ip":')).toMatch(/not valid JSON/);
    expect(reason('')).toMatch(/empty message/);
    expect(reason('{"action":"ban","ip":"1.2.3.4"}')).toMatch(/unknown action "ban"/);
    expect(reason('{"ip":"1.2.3.4","ips":["5.6.7.8"]}')).toMatch(/both "ip" and "ips"/);
    expect(reason('{"ip":7}')).toMatch(/"ip" must be a string/);
    expect(reason('{"ips":[]}')).toMatch(/"ips" is empty/);
    expect(reason('{"ips":["1.2.3.4",5]}')).toMatch(/holds 5/);
    expect(reason('{"name":"x"}')).toMatch(/no "ip" or "ips"/);
    expect(reason('{"ip":"1.2.3.4","ttl":"soon"}')).toMatch(/bad ttl "soon"/);
    expect(reason('{"ip":"1.2.3.4","ttl":-5}')).toMatch(/bad ttl -5/);
    expect(reason('{"ip":"1.2.3.4","reason":5}')).toMatch(/bad reason 5/);
    expect(reason('{"ip":null}')).toMatch(/"ip" must be a string, got null/);
    expect(reason('[]')).toMatch(/empty array/);
    expect(reason(Buffer.from([0xc3, 0x28]))).toMatch(/not UTF-8/);
    expect(parse(`{"ips":${JSON.stringify(Array(10_001).fill('1.2.3.4'))}}`, 1 << 20)).toMatchObject({ ok: false, reason: expect.stringMatching(/over 10000: use vosctl load-file/) });
  });

  it('refuses a body over the limit before reading it', () => {
    const r = parse('{"ip":"1.2.3.4"}', 10);
    expect(r).toEqual({ ok: false, reason: 'body of 16 bytes is over the 10-byte limit' });
  });

  it('never throws, whatever the bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        const r = parseMessage(bytes);
        expect(typeof r.ok).toBe('boolean');
      }),
    );
    fc.assert(
      fc.property(fc.json(), (text) => {
        const r = parse(text);
        expect(typeof r.ok).toBe('boolean');
      }),
    );
  });
});

describe('planMessage and planRuns', () => {
  const policy = { minPrefix: 8, allow: [{ addr: 0xc0000200, prefixlen: 24 }], own: [0x0a000001] };
  const d = { ttlS: 3600, source: 'amqp', maxBytes: 65536 };
  const plan = (s: string) => planMessage(Buffer.from(s), policy, d);

  it('applies defaults and validates every target', () => {
    expect(plan('{"ip":"198.51.100.1"}')).toEqual({ commands: [{ action: 'block', target: { text: '198.51.100.1', addr: 0xc6336401, prefixlen: 32 }, ttlS: 3600, source: 'amqp', reason: null }] });
  });

  it('keeps the good targets of a message and gives the refused ones as its dead-letter reason', () => {
    const p = plan('{"ips":["198.51.100.1","192.0.2.9","10.0.0.1","127.0.0.1","1.0.0.0/4"]}');
    expect(p.commands.map((c) => c.target.text)).toEqual(['198.51.100.1']);
    expect(p.deadReason).toMatch(/^refused 4 of 5: /);
    expect(p.deadReason).toMatch(/covered by the allowlist entry 192\.0\.2\.0\/24/);
    expect(p.deadReason).toMatch(/covers this host's address 10\.0\.0\.1/);
    expect(p.deadReason).toMatch(/loopback/);
    expect(p.deadReason).toMatch(/host bits set/);
  });

  it('carries IPv6 in every message format, in RFC 5952 text; refuses the IPv6 forms no block may take, by name', () => {
    const texts = (s: string) => plan(s).commands.map((c) => `${c.action} ${c.target.text}`);
    expect(texts('{"action":"block","ip":"2001:DB8::1","ttl":"30m","source":"kamailio"}')).toEqual(['block 2001:db8::1']);
    expect(texts('{"ips":["2001:db8::2","2001:db8:bad::/48"]}')).toEqual(['block 2001:db8::2', 'block 2001:db8:bad::/48']);
    expect(texts('["2001:db8::3"]')).toEqual(['block 2001:db8::3']);
    expect(texts('"2001:db8::4"')).toEqual(['block 2001:db8::4']);
    expect(texts('2001:db8::5\n# a comment\n198.51.100.5\n')).toEqual(['block 2001:db8::5', 'block 198.51.100.5']);
    expect(texts('{"jsonrpc":"2.0","method":"E_PIKE_BLOCKED","params":{"ip":"2001:db8::6"}}')).toEqual(['block 2001:db8::6']);
    expect(texts('{"action":"unblock","ip":"2001:db8:0:0::7"}')).toEqual(['unblock 2001:db8::7']);
    expect(texts('{"ip":"::ffff:198.51.100.8"}')).toEqual(['block 198.51.100.8']);
    const p = plan('{"ips":["fe80::1%eth0","[2001:db8::1]:5060","ff02::1","::1","2001:db8::1/64"]}');
    expect(p.commands).toEqual([]);
    expect(p.deadReason).toMatch(/^refused 5 of 5: /);
    for (const v of ['fe80::1%eth0', '[2001:db8::1]:5060', 'ff02::1', '::1', '2001:db8::1/64']) expect(p.deadReason).toContain(`'${v}'`);
  });

  it('lets an allowlisted address be unblocked (lifting a block is always allowed)', () => {
    expect(plan('{"action":"unblock","ip":"192.0.2.9"}')).toMatchObject({ commands: [{ action: 'unblock' }] });
    expect(plan('{"action":"unblock","ip":"192.0.2.9"}').deadReason).toBeUndefined();
  });

  it('merges consecutive commands of one action and keeps the order between actions', () => {
    const runs = planRuns(['198.51.100.1', '198.51.100.2', '{"action":"unblock","ip":"198.51.100.1"}', '198.51.100.3'].map(plan));
    expect(runs.map((r) => (r.action === 'block' ? `block ${r.reqs.map((q) => q.target.text).join(',')}` : `unblock ${r.targets.map((t) => t.text).join(',')}`))).toEqual([
      'block 198.51.100.1,198.51.100.2',
      'unblock 198.51.100.1',
      'block 198.51.100.3',
    ]);
  });
});

describe('time: ts, expires and the AMQP timestamp', () => {
  const policy = { minPrefix: 8, allow: [], own: [] };
  const d = { ttlS: 3600, source: 'amqp', maxBytes: 65536 };
  const now = 1_764_410_000;
  const plan = (s: string, publishedS?: number) => planMessage(Buffer.from(s), policy, d, { nowS: now, publishedS });

  it('runs the ttl from ts, from the AMQP timestamp without ts, and from now without either', () => {
    expect(plan(`{"action":"block","ip":"198.51.100.1","ttl":3600,"ts":${now - 600}}`).commands[0]!.ttlS).toBe(3000);
    expect(plan('{"ip":"198.51.100.1","ttl":"1h"}', now - 100).commands[0]!.ttlS).toBe(3500);
    expect(plan(`{"ip":"198.51.100.1","ttl":"1h","ts":"${now - 10}"}`, now - 100).commands[0]!.ttlS).toBe(3590); // ts wins
    expect(plan('{"ip":"198.51.100.1"}').commands[0]!.ttlS).toBe(3600);
    expect(plan(`{"ip":"198.51.100.1","ts":${now + 500}}`).commands[0]!.ttlS).toBe(3600); // a clock ahead never lengthens it
  });

  it('takes an absolute expires over ts + ttl, and keeps ttl 0 (never) from a decision time', () => {
    expect(plan(`{"ip":"198.51.100.1","ttl":60,"ts":${now},"expires":${now + 90}}`).commands[0]!.ttlS).toBe(90);
    expect(plan(`{"ip":"198.51.100.1","ttl":0,"ts":${now - 1e6}}`).commands[0]!.ttlS).toBe(0);
  });

  it('caps an absolute expires at the 10-year TTL limit, like every other TTL', () => {
    expect(plan(`{"ip":"198.51.100.1","expires":${now + 50 * 365 * 86400}}`).commands[0]!.ttlS).toBe(10 * 365 * 86400);
  });

  it('leaves out blocks whose expiry has passed, counting them, and still applies unblocks', () => {
    expect(plan(`{"ip":"198.51.100.1","ttl":60,"ts":${now - 60}}`)).toEqual({ commands: [], expired: 1 });
    expect(plan(`{"ip":"198.51.100.1","expires":${now}}`)).toEqual({ commands: [], expired: 1 });
    expect(plan('{"ip":"198.51.100.1","ttl":60}', now - 3600)).toEqual({ commands: [], expired: 1 });
    expect(plan(`{"action":"unblock","ip":"198.51.100.1","ts":${now - 1e6}}`).commands).toHaveLength(1);
    // The JSON-RPC path carries them too (params by name).
    expect(plan(`{"jsonrpc":"2.0","method":"E_PIKE_BLOCKED","params":{"ip":"198.51.100.1","ttl":60,"ts":${now - 61}}}`)).toMatchObject({ expired: 1 });
  });

  it('refuses a ts or expires that is not Unix seconds, naming it', () => {
    expect(parseMessage(Buffer.from(`{"ip":"198.51.100.1","ts":${now * 1000}}`))).toEqual({ ok: false, reason: `bad ts ${now * 1000} (a number): Unix seconds (not milliseconds)` });
    expect(parseMessage(Buffer.from('{"ip":"198.51.100.1","expires":"tomorrow"}'))).toEqual({ ok: false, reason: 'bad expires "tomorrow" (a string): Unix seconds (not milliseconds)' });
    expect(parseMessage(Buffer.from('{"ip":"198.51.100.1","ts":-5}'))).toMatchObject({ ok: false });
  });

  it('marks how far each run covers the batch, for the stream offset recorded with it', () => {
    const runs = planRuns(['198.51.100.1', '198.51.100.2', `{"ip":"198.51.100.4","ttl":1,"ts":${now - 5}}`, '{"action":"unblock","ip":"198.51.100.1"}', 'garbage!'].map((s) => plan(s)));
    expect(runs.map((r) => [r.action, r.through])).toEqual([
      ['block', 2],
      ['unblock', 4],
    ]);
  });
});

describe('backoff and broker helpers', () => {
  it('backs off exponentially with full jitter, within [base, cap]', () => {
    expect(backoffMs(0, 250, 30_000, () => 1)).toBe(250);
    expect(backoffMs(3, 250, 30_000, () => 1)).toBe(2000);
    expect(backoffMs(20, 250, 30_000, () => 1)).toBe(30_000);
    expect(backoffMs(20, 250, 30_000, () => 0)).toBe(250);
    fc.assert(fc.property(fc.nat(100), fc.double({ min: 0, max: 1, noNaN: true }), (n, r) => {
      const ms = backoffMs(n, 250, 30_000, () => r);
      return ms >= 250 && ms <= 30_000;
    }));
  });

  it('hides passwords in URLs it logs, and passes a password file byte for byte, never through a URL', () => {
    expect(redactUrl('amqp://vos:s3cret@broker:5672/%2f')).toBe('amqp://vos:***@broker:5672/%2f');
    expect(redactUrl('amqps://broker')).toBe('amqps://broker');
    for (const pw of ['p@ss', 'p%41ss', '%zz%', 'pässwörd €', 'trailing  ', ' lead', 'a:b/c?d#e']) {
      const a = brokerAccess('amqps://vos@broker:5671', pw);
      expect({ user: a.username, password: a.password, display: a.display }).toEqual({ user: 'vos', password: pw, display: 'amqps://vos:***@broker:5671' });
    }
    expect(brokerAccess('amqp://vos:given@broker', 'file').password).toBe('given');
    expect(brokerAccess('amqp://v%40s:p%25w@broker/%2F', undefined)).toMatchObject({ username: 'v@s', password: 'p%w', endpoint: { protocol: 'amqp', host: 'broker', port: 5672, vhost: '/' }, heartbeatS: 15 });
    expect(brokerAccess('amqp://broker/', undefined)).toMatchObject({ username: 'guest', password: 'guest', endpoint: { vhost: '/' } });
    expect(brokerAccess('amqps://[2001:db8::1]:5671/sip?heartbeat=5', undefined)).toMatchObject({ endpoint: { protocol: 'amqps', host: '2001:db8::1', port: 5671, vhost: 'sip' }, heartbeatS: 5 });
    expect(() => brokerAccess('amqp://broker?heartbeat=soon', undefined)).toThrow(/bad heartbeat 'soon'/);
    expect(passwordFromFile('pa ss  \n')).toBe('pa ss  ');
    expect(passwordFromFile('pass\r\n')).toBe('pass');
    expect(passwordFromFile('pass\n\n')).toBe('pass\n');
    expect(passwordFromFile('no newline ')).toBe('no newline ');
    const dir = mkdtempSync(join(tmpdir(), 'vfp-pw-'));
    try {
      for (const empty of ['', '\n', '\r\n']) {
        writeFileSync(join(dir, 'pw'), empty);
        expect(() => readPasswordFile(join(dir, 'pw'))).toThrow(new RegExp(`password file ${join(dir, 'pw')} is empty`));
      }
      writeFileSync(join(dir, 'pw'), ' \n');
      expect(readPasswordFile(join(dir, 'pw'))).toBe(' ');
      expect(() => readPasswordFile(join(dir, 'none'))).toThrow(/cannot read the password file/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('names permanent broker errors by the broker\'s reason, and hints at a TLS mismatch', () => {
    const at = { protocol: 'amqp' as const, host: 'b', port: 5672, vhost: 'sip' };
    const login = new Error('Handshake terminated by server: 403 (ACCESS-REFUSED) with message "ACCESS_REFUSED - Login was refused using authentication mechanism PLAIN. For details see the broker logfile."');
    expect(classifyBrokerError(login, at)).toMatchObject({ kind: 'permanent', message: 'ACCESS_REFUSED - Login was refused using authentication mechanism PLAIN. For details see the broker logfile.' });
    const open = new Error('Expected ConnectionOpenOk; got <ConnectionClose channel:0>');
    expect(classifyBrokerError(open, at, 'NOT_ALLOWED - vhost sip not found')).toMatchObject({ kind: 'permanent', message: 'NOT_ALLOWED - vhost sip not found' });
    expect(classifyBrokerError(open, at).message).toMatch(/refused to open virtual host 'sip'/);
    const perm = new Error('Operation failed: QueueDeclare; 403 (ACCESS-REFUSED) with message "ACCESS_REFUSED - access to queue \'q\' in vhost \'/\' refused for user \'u\'"');
    expect(classifyBrokerError(perm, at).kind).toBe('permanent');
    const timeout = new Error('Channel closed by server: 406 (PRECONDITION-FAILED) with message "PRECONDITION_FAILED - delivery acknowledgement on channel 1 timed out. Timeout value used: 1800000 ms."');
    expect(classifyBrokerError(timeout, at)).toMatchObject({ kind: 'ack-timeout', message: expect.stringContaining('consumer_timeout') });
    const tls = Object.assign(new Error('write EPROTO 40B7:error:0A00010B:SSL routines:ssl3_get_record:wrong version number'), { code: 'EPROTO' });
    // A scheme/port mismatch is configuration, not an outage: permanent, both ways.
    expect(classifyBrokerError(tls, { ...at, protocol: 'amqps', port: 5672 })).toMatchObject({ kind: 'permanent', message: expect.stringContaining('is b:5672 a TLS port?') });
    expect(classifyBrokerError(new Error('Socket closed abruptly during opening handshake'), { ...at, port: 5671 })).toMatchObject({ kind: 'permanent', message: expect.stringContaining('use amqps://') });
    // A forced close names the broker's reason, and is not "unreachable".
    const forced = new Error('Connection closed: 320 (CONNECTION-FORCED) with message "CONNECTION_FORCED - atk"');
    expect(classifyBrokerError(forced, at)).toEqual({ kind: 'forced', message: 'CONNECTION_FORCED - atk' });
    expect(reconnectMessage('forced')).toBe('the broker closed the connection; reconnecting');
    expect(classifyBrokerError(new Error('consumer cancelled by the broker (queue deleted?)'), at).kind).toBe('cancelled');
    // Dead-letter publish errors another attempt cannot fix.
    expect(permanentPublishError(new Error('Channel closed by server: 403 (ACCESS-REFUSED) with message "ACCESS_REFUSED - access to exchange \'amq.default\' in vhost \'/\' refused for user \'nowrite\'"'))).toBe("ACCESS_REFUSED - access to exchange 'amq.default' in vhost '/' refused for user 'nowrite'");
    expect(permanentPublishError(new Error('Channel closed by server: 404 (NOT-FOUND) with message "NOT_FOUND - no exchange \'x\' in vhost \'/\'"'))).toMatch(/^NOT_FOUND/);
    expect(permanentPublishError(new Error('channel closed'))).toBeUndefined();
    expect(classifyBrokerError(new Error('connect ECONNREFUSED 127.0.0.1:5672'), at)).toEqual({ kind: 'transient', message: 'connect ECONNREFUSED 127.0.0.1:5672' });
  });

  it('never blocks the cluster\'s own addresses, nor a prefix that covers one', () => {
    const peers = parseNeverBlock(['192.0.2.10,192.0.2.11', '198.51.100.0/29']);
    const policy = { minPrefix: 8, allow: [], own: [], peers };
    expect(checkBlockTarget('192.0.2.10', policy)).toMatchObject({ ok: false, reason: expect.stringContaining("cluster's own address 192.0.2.10") });
    expect(checkBlockTarget('192.0.2.0/24', policy)).toMatchObject({ ok: false });
    expect(checkBlockTarget('198.51.100.3', policy)).toMatchObject({ ok: false });
    expect(checkBlockTarget('192.0.2.12', policy)).toMatchObject({ ok: true });
    expect(() => parseNeverBlock(['192.0.2.300'])).toThrow(/bad --never-block address: '192\.0\.2\.300'/);
  });

  it('reads the broker nodes of a cluster from repeated --url values and comma lists', () => {
    expect(splitUrls(['amqp://mq1, amqp://mq2', 'amqp://mq3'])).toEqual(['amqp://mq1', 'amqp://mq2', 'amqp://mq3']);
    expect(() => splitUrls([' , '])).toThrow(/no broker URL/);
  });

  it('names the per-node fanout queue from the host name', () => {
    expect(fanoutQueueName('vos-blocklist', 'sbc-1.example.net')).toBe('vos-blocklist.sbc-1.example.net');
    expect(fanoutQueueName('vos-blocklist', 'odd host')).toBe('vos-blocklist.odd_host');
  });
});

describe('giving up on broker nodes that refuse', () => {
  const names = ['amqp://u:***@mq1:5672', 'amqp://u:***@mq2:5672'];
  const refused = { kind: 'permanent', message: 'ACCESS_REFUSED - Login was refused', fix: 'fix the credentials, vhost or permissions' } as const;
  const down = { kind: 'transient', message: 'connect ECONNREFUSED 10.0.0.1:5672' } as const;
  /** Faults in turn, node 0, 1, 0, 1...: the answer after each. */
  const run = (faults: readonly Fault[], n = 2): (string | undefined)[] => {
    const recs: (NodeFault | undefined)[] = [];
    return faults.map((f, i) => {
      recs[i % n] = nextNodeFault(recs[i % n], f);
      return refusedEverywhere(recs, names.slice(0, n), 3);
    });
  };
  it('a dead node between the refusals does not reset them: gives up on the third, naming both', () => {
    const out = run([down, refused, down, refused, down, refused]);
    expect(out.slice(0, 5)).toEqual([undefined, undefined, undefined, undefined, undefined]);
    expect(out[5]).toBe('every broker node that answers refuses: amqp://u:***@mq2:5672: ACCESS_REFUSED - Login was refused (3 attempts); unreachable: amqp://u:***@mq1:5672 (connect ECONNREFUSED 10.0.0.1:5672); fix the credentials, vhost or permissions');
  });
  it('every permanent kind counts, each with its own fix', () => {
    const vhost = classifyBrokerError(new Error('Handshake terminated by server: 530 (NOT-ALLOWED) with message "NOT_ALLOWED - vhost x not found"'), { protocol: 'amqp', host: 'mq1', port: 5672, vhost: 'x' });
    const inequivalent = classifyBrokerError(new Error('Channel closed by server: 406 (PRECONDITION-FAILED) with message "PRECONDITION_FAILED - inequivalent arg \'x-max-age\'"'), { protocol: 'amqp', host: 'mq2', port: 5672, vhost: '/' });
    expect([vhost.kind, inequivalent.kind]).toEqual(['permanent', 'permanent']);
    const out = run([vhost, inequivalent, vhost, inequivalent, vhost, inequivalent]);
    expect(out[4]).toBeUndefined();
    expect(out[5]).toMatch(/^every broker node that answers refuses: amqp:\/\/u:\*\*\*@mq1:5672: NOT_ALLOWED - vhost x not found \(3 attempts\); amqp:\/\/u:\*\*\*@mq2:5672: PRECONDITION_FAILED .* \(3 attempts\); fix the credentials, vhost or permissions; make the options match/);
  });
  it('keeps trying while every node is down, or a node answers with a passing fault', () => {
    expect(run([down, down, down, down, down, down, down, down]).every((x) => x === undefined)).toBe(true);
    const forced = { kind: 'forced', message: 'CONNECTION_FORCED' } as const;
    expect(run([refused, forced, refused, forced, refused, forced, refused]).every((x) => x === undefined)).toBe(true);
  });
  it('one node: the third refusal gives up, as before', () => {
    expect(run([refused, refused, refused], 1)).toEqual([undefined, undefined, 'the broker at amqp://u:***@mq1:5672 refuses: ACCESS_REFUSED - Login was refused (3 attempts); fix the credentials, vhost or permissions']);
  });
});

describe('refusals name the value as the body has it, with its type', () => {
  const reason = (body: string): string => {
    const r = parseMessage(Buffer.from(body));
    if (r.ok) throw new Error(`accepted: ${body}`);
    return r.reason;
  };
  it('a number beyond a double (JSON.parse makes it Infinity) is named by its text, wherever it is', () => {
    expect(reason('{"ip":"198.51.100.1","ts":1e400}')).toBe('bad ts 1e400 (a number beyond the range of a double): Unix seconds (not milliseconds)');
    expect(reason('{"ip":"198.51.100.1","expires":-2E+308}')).toBe('bad expires -2E+308 (a number beyond the range of a double): Unix seconds (not milliseconds)');
    expect(reason('{"ip":"198.51.100.1","ttl":1e999}')).toMatch(/^bad ttl 1e999 \(a number beyond the range of a double\): /);
    expect(reason('{"ip":1e400}')).toBe('"ip" must be a string, got 1e400 (a number beyond the range of a double)');
    expect(reason('{"ips":["198.51.100.1",9e9999]}')).toBe('"ips" holds 9e9999 (a number beyond the range of a double), not an address string');
    // A string that looks like one is skipped when the literals are matched to the values.
    expect(reason('{"reason":"x 5e500","ip":"198.51.100.1","ts":7e700}')).toBe('bad ts 7e700 (a number beyond the range of a double): Unix seconds (not milliseconds)');
    expect(reason(`{"ip":"198.51.100.1","ts":${'9'.repeat(400)}}`)).toBe(`bad ts ${'9'.repeat(400)} (a number beyond the range of a double): Unix seconds (not milliseconds)`);
  });
  it('every other refusal says the JSON type of what it got', () => {
    expect(reason('{"ip":"198.51.100.1","ts":"1764410000x"}')).toBe('bad ts "1764410000x" (a string): Unix seconds (not milliseconds)');
    expect(reason('{"ip":"198.51.100.1","ts":true}')).toBe('bad ts true (a boolean): Unix seconds (not milliseconds)');
    expect(reason('{"ip":"198.51.100.1","source":["a"]}')).toBe('bad source ["a"] (an array): must be a string');
    expect(reason('{"action":7,"ip":"198.51.100.1"}')).toBe('unknown action 7 (a number) (block or unblock)');
    expect(reason('[{"ip":"198.51.100.1"},false]')).toBe('entry 1: not an address or object: false (a boolean)');
  });
});
