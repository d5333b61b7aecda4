/**
 * The shipped SIP-server configs publish bodies the consumer accepts: each
 * config's body template is rendered as the server would, then parsed.
 */
import { describe, expect, it } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { planMessage } from '../../lib/consume/plan.js';
import { parseMessage } from '../../lib/messages.js';

const ROOT = join(import.meta.dirname, '../..');

/** Render the first `$var(body) = 'a' + $si + 'b' ...;` of cfg with the given variable values. */
function renderBody(cfg: string, vars: Record<string, string>): string {
  const m = /\$var\(body\) = (.+);\n/.exec(cfg);
  if (!m) throw new Error('no $var(body) assignment');
  return m[1]!
    .split(' + ')
    .map((tok) => {
      const t = tok.trim();
      if (t.startsWith("'") && t.endsWith("'")) return t.slice(1, -1);
      if (!(t in vars)) throw new Error(`unknown token ${t}`);
      return vars[t]!;
    })
    .join('');
}

/** The body of route[name] (up to the closing brace at the start of a line). */
function routeBody(cfg: string, name: string): string {
  const m = new RegExp(`^route\\[${name}\\] \\{\\n([\\s\\S]*?)^\\}`, 'm').exec(cfg);
  if (!m) throw new Error(`no route[${name}]`);
  return m[1]!;
}

const configs = [
  ['OpenSIPS', 'contrib/opensips/opensips.cfg'],
  ['Kamailio', 'contrib/kamailio/kamailio.cfg'],
] as const;

describe('contrib configs keep publishing', () => {
  it('OpenSIPS 3.x loads a transport module for each socket it listens on (else: "no transport protocol loaded")', () => {
    const cfg = readFileSync(join(ROOT, 'contrib/opensips/opensips.cfg'), 'utf8');
    const loaded = [...cfg.matchAll(/^loadmodule "proto_(\w+)\.so"/gm)].map((m) => m[1]);
    expect(loaded.length).toBeGreaterThan(0);
    for (const [, proto] of cfg.matchAll(/^socket=(\w+):/gm)) expect(loaded).toContain(proto);
  });

  it('OpenSIPS asks for no heartbeats it never sends, and retries a failed publish', () => {
    const cfg = readFileSync(join(ROOT, 'contrib/opensips/opensips.cfg'), 'utf8');
    for (const [, sid] of cfg.matchAll(/modparam\("rabbitmq", "server_id", "([^"]*)"\)/g)) expect(sid).not.toMatch(/heartbeat=[1-9]/);
    expect(cfg).toMatch(/server_id", "[^"]*retries=[1-9]/);
  });

  for (const [name, file] of configs) {
    it(`${name}: a source counts as reported only after its publish succeeded, which is tried twice`, () => {
      const body = routeBody(readFileSync(join(ROOT, file), 'utf8'), 'VOS_BLOCK');
      const publishes = [...body.matchAll(/rabbitmq_publish\(/g)].map((m) => m.index!);
      const mark = body.search(/cache_store\(|\$sht\(vos_published=>\$si\) = 1/);
      expect(publishes.length).toBe(2);
      expect(mark).toBeGreaterThan(Math.max(...publishes));
      // the failure path returns before the mark
      expect(body.slice(publishes[1], mark)).toMatch(/return;/);
    });

    it(`${name}: relays an ACK only when it matches a transaction, answers 404 to an in-dialog request without a route, never reports itself or a peer`, () => {
      const cfg = readFileSync(join(ROOT, file), 'utf8');
      expect(cfg).not.toMatch(/loose_route\(\)\s*\|\|\s*is_method\("ACK"\)/);
      expect(cfg).toMatch(/is_method\("ACK"\)\) \{\s*if \(t_check_trans\(\)\)/);
      expect(cfg).toMatch(/sl_send_reply\("?404"?, "Not Here"\)/);
      expect(cfg).toMatch(/src_ip == myself \|\| \$si =~ /);
      expect(routeBody(cfg, 'VOS_BLOCK')).toMatch(/^\tif \(\$var\(vos_peer\) == 1\)/);
      expect(cfg).toMatch(/\$var\(vos_peer\) == 0 && !pike_check_req\(\)/);
    });

    it(`${name}: never relays an in-dialog request whose Route leads back to itself, and caps Max-Forwards`, () => {
      const cfg = readFileSync(join(ROOT, file), 'utf8');
      // right after loose_route(): a next hop that is this server is answered, not relayed
      const afterLooseRoute = cfg.slice(cfg.indexOf('if (loose_route()) {'), cfg.indexOf('t_relay', cfg.indexOf('if (loose_route()) {')));
      expect(afterLooseRoute).toMatch(/is_myself\("\$var\(next\)"\)|uri == myself/);
      expect(afterLooseRoute).toMatch(/exit;/);
      expect(cfg).toMatch(/modparam\("maxfwd", "max_limit", (\d|1\d|20)\)/);
    });
  }
});

describe('contrib configs', () => {
  it('Kamailio: a block replayed late (a stream, a node that joins later) ends ttl after the decision, not after the replay', () => {
    const cfg = readFileSync(join(ROOT, 'contrib/kamailio/kamailio.cfg'), 'utf8');
    const decided = 1_764_410_000;
    const body = renderBody(cfg, { $si: '198.51.100.7', '$var(why)': 'pike', VOS_BLOCK_TTL: '3600', $TS: String(decided) });
    const policy = { minPrefix: 8, allow: [], own: [] };
    const d = { ttlS: 60, source: 'amqp', maxBytes: 65536 };
    expect(planMessage(Buffer.from(body), policy, d, { nowS: decided + 1000 }).commands[0]!.ttlS).toBe(2600);
    expect(planMessage(Buffer.from(body), policy, d, { nowS: decided + 3600 })).toEqual({ commands: [], expired: 1 });
  });

  it('Kamailio: the rabbitmq_publish body of route[VOS_BLOCK] is a block with TTL, reason and source', () => {
    const cfg = readFileSync(join(ROOT, 'contrib/kamailio/kamailio.cfg'), 'utf8');
    const ttl = /#!define VOS_BLOCK_TTL (\d+)/.exec(cfg)![1]!;
    const body = renderBody(cfg, { $si: '198.51.100.7', '$var(why)': 'pike', VOS_BLOCK_TTL: ttl, $TS: '1764410000' });
    expect(parseMessage(Buffer.from(body))).toEqual({ ok: true, commands: [{ action: 'block', target: '198.51.100.7', ttlS: 3600, reason: 'pike', source: 'kamailio', ts: 1764410000 }] });
    expect(cfg).toMatch(/rabbitmq_publish\(VOS_EXCHANGE, VOS_ROUTING_KEY, "application\/json", "\$var\(body\)"\)/);
  });

  it('OpenSIPS: the rabbitmq_publish body (path 2) and the E_PIKE_BLOCKED notification (path 1)', () => {
    const cfg = readFileSync(join(ROOT, 'contrib/opensips/opensips.cfg'), 'utf8');
    const body = renderBody(cfg, { $si: '198.51.100.8', '$var(why)': 'scanner User-Agent', $Ts: '1764410000' });
    expect(parseMessage(Buffer.from(body))).toEqual({ ok: true, commands: [{ action: 'block', target: '198.51.100.8', ttlS: 3600, reason: 'scanner User-Agent', source: 'opensips', ts: 1764410000 }] });
    // pike's decisions published from event_route[E_PIKE_BLOCKED], with the time of the decision
    const event = /^event_route\[E_PIKE_BLOCKED\] \{\n([\s\S]*?)^\}/m.exec(cfg)?.[1] ?? '';
    expect(event).toMatch(/rabbitmq_publish\("vos", "blocklist", \$var\(body\), "application\/json"\)/);
    expect(cfg).toMatch(/^loadmodule "event_route\.so"$/m);
    const pike = renderBody(event, { '$param(ip)': '198.51.100.9', $Ts: '1764410000' });
    expect(parseMessage(Buffer.from(pike))).toEqual({ ok: true, commands: [{ action: 'block', target: '198.51.100.9', ttlS: 3600, reason: 'pike', source: 'opensips', ts: 1764410000 }] });
    expect(cfg).toMatch(/subscribe_event\("E_PIKE_BLOCKED", "rabbitmq:[^"]+\/persistent\?blocklist"\)/);
    // event_rabbitmq sends the event as a JSON-RPC 2.0 notification, params by name (or, for unnamed ones, in order)
    for (const n of [
      '{"jsonrpc":"2.0","method":"E_PIKE_BLOCKED","params":{"ip":"198.51.100.9"}}',
      '{"jsonrpc": "2.0", "method": "E_PIKE_BLOCKED", "params": ["198.51.100.9"]}',
    ]) {
      // recorded as OpenSIPS's pike, so `vosctl list --source opensips` tells it apart
      expect(parseMessage(Buffer.from(n))).toEqual({ ok: true, commands: [{ action: 'block', target: '198.51.100.9', source: 'opensips', reason: 'pike' }] });
    }
  });
});
