/**
 * The shipped SIP-server configs publish bodies the consumer accepts: each
 * config's body template is rendered as the server would, then parsed.
 */
import { describe, expect, it } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseMessage } from '../../lib/messages.js';

const ROOT = join(import.meta.dirname, '../..');

/** Render `$var(body) = 'a' + $si + 'b' ...;` with the given variable values. */
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

describe('contrib configs', () => {
  it('Kamailio: the rabbitmq_publish body of route[VOS_BLOCK] is a block with TTL, reason and source', () => {
    const cfg = readFileSync(join(ROOT, 'contrib/kamailio/kamailio.cfg'), 'utf8');
    const ttl = /#!define VOS_BLOCK_TTL (\d+)/.exec(cfg)![1]!;
    const body = renderBody(cfg, { $si: '198.51.100.7', '$var(why)': 'pike', VOS_BLOCK_TTL: ttl });
    expect(parseMessage(Buffer.from(body))).toEqual({ ok: true, commands: [{ action: 'block', target: '198.51.100.7', ttlS: 3600, reason: 'pike', source: 'kamailio' }] });
    expect(cfg).toMatch(/rabbitmq_publish\(VOS_EXCHANGE, VOS_ROUTING_KEY, "application\/json", "\$var\(body\)"\)/);
  });

  it('OpenSIPS: the rabbitmq_publish body (path 2) and the E_PIKE_BLOCKED notification (path 1)', () => {
    const cfg = readFileSync(join(ROOT, 'contrib/opensips/opensips.cfg'), 'utf8');
    const body = renderBody(cfg, { $si: '198.51.100.8', '$var(why)': 'scanner User-Agent' });
    expect(parseMessage(Buffer.from(body))).toEqual({ ok: true, commands: [{ action: 'block', target: '198.51.100.8', ttlS: 3600, reason: 'scanner User-Agent', source: 'opensips' }] });
    expect(cfg).toMatch(/subscribe_event\("E_PIKE_BLOCKED", "rabbitmq:[^"]+\/persistent\?blocklist"\)/);
    // event_rabbitmq sends the event as a JSON-RPC 2.0 notification, params by name (or, for unnamed ones, in order)
    for (const n of [
      '{"jsonrpc":"2.0","method":"E_PIKE_BLOCKED","params":{"ip":"198.51.100.9"}}',
      '{"jsonrpc": "2.0", "method": "E_PIKE_BLOCKED", "params": ["198.51.100.9"]}',
    ]) {
      expect(parseMessage(Buffer.from(n))).toEqual({ ok: true, commands: [{ action: 'block', target: '198.51.100.9' }] });
    }
  });
});
