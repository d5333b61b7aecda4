import { describe, expect, it } from '@jest/globals';
import { parseDecisionArgs, parseDecisionLine, parseGoDuration } from '../../lib/crowdsec.js';
import { parseMessageLine, planFeedRuns, type FeedCommand } from '../../lib/feedline.js';
import { networkOf } from '../../lib/address.js';
import { visible } from '../../lib/commands/list.js';

const o = { source: 'crowdsec' };

describe('parseGoDuration', () => {
  it.each([
    ['3h59m56.919s', 3 * 3600 + 59 * 60 + 56.919],
    ['4h', 14400],
    ['1m30s', 90],
    ['300ms', 0.3],
    ['1.5h', 5400],
    ['0', 0],
    ['0s', 0],
    ['-2.5s', -2.5],
    ['+5s', 5],
    ['1h0m0.000001s', 3600.000001],
    ['.5s', 0.5],
    ['2µs', 2e-6],
  ])('%s is %d s', (text, s) => expect(parseGoDuration(text)).toBeCloseTo(s, 6));

  it.each(['', '5', 'h', '1d', '1h 2m', '3h59m56.919', 'abc', '-', '1hh'])('refuses %j', (t) => expect(parseGoDuration(t)).toBeNull());
});

describe('CrowdSec decision lines (feed_via_stdin)', () => {
  const line = (d: Record<string, unknown>) => JSON.stringify({ duration: '3h59m56.919s', id: 1, origin: 'crowdsec', scenario: 'crowdsecurity/sip-bf', scope: 'Ip', type: 'ban', value: '198.51.100.7', action: 'add', ...d });

  it('an add becomes a block: TTL the duration rounded up, the scenario as reason', () => {
    expect(parseDecisionLine(line({}), o)).toEqual({ ok: true, cmds: [{ action: 'block', target: '198.51.100.7', ttlS: 14397, source: 'crowdsec', reason: 'crowdsecurity/sip-bf' }] });
  });

  it('a Range is a CIDR block; a del is an unblock of our source whatever its duration', () => {
    expect(parseDecisionLine(line({ scope: 'Range', value: '203.0.113.0/24' }), o)).toMatchObject({ ok: true, cmds: [{ action: 'block', target: '203.0.113.0/24' }] });
    expect(parseDecisionLine(line({ action: 'del', duration: '-3.2s' }), o)).toEqual({ ok: true, cmds: [{ action: 'unblock', target: '198.51.100.7', ttlS: 0, source: 'crowdsec', reason: null }] });
  });

  it('takes IPv6 Ip and Range decisions like IPv4 ones', () => {
    expect(parseDecisionLine(line({ value: '2001:db8::7' }), o)).toMatchObject({ ok: true, cmds: [{ action: 'block', target: '2001:db8::7' }] });
    expect(parseDecisionLine(line({ scope: 'Range', value: '2001:db8:bad::/48' }), o)).toMatchObject({ ok: true, cmds: [{ action: 'block', target: '2001:db8:bad::/48' }] });
    expect(parseDecisionLine(line({ action: 'del', value: '2001:db8::7' }), o)).toMatchObject({ ok: true, cmds: [{ action: 'unblock', target: '2001:db8::7' }] });
  });

  it('skips what the NIC cannot enforce: other scopes, captchas, expired decisions', () => {
    for (const d of [{ scope: 'Country', value: 'FR' }, { type: 'captcha' }, { duration: '-1s' }, { duration: '0s' }]) {
      expect(parseDecisionLine(line(d), o)).toHaveProperty('skip');
    }
  });

  it('refuses, naming the problem: not JSON, unknown action, no value, bad duration', () => {
    expect(parseDecisionLine('nope', o)).toMatchObject({ ok: false, reason: expect.stringContaining('not JSON') });
    expect(parseDecisionLine(line({ action: 'ban' }), o)).toMatchObject({ ok: false, reason: expect.stringContaining('"ban"') });
    expect(parseDecisionLine(line({ value: undefined }), o)).toMatchObject({ ok: false });
    expect(parseDecisionLine(line({ duration: '4 hours' }), o)).toMatchObject({ ok: false, reason: expect.stringContaining('4 hours') });
    expect(parseDecisionLine('[1]', o)).toMatchObject({ ok: false });
  });
});

describe('CrowdSec per-decision arguments', () => {
  it('add|del <value> <duration_s> <reason> [<json>]', () => {
    expect(parseDecisionArgs(['add', '192.0.2.4/32', '600', 'ssh-bf'], o)).toMatchObject({ ok: true, cmds: [{ action: 'block', target: '192.0.2.4/32', ttlS: 600, reason: 'ssh-bf' }] });
    expect(parseDecisionArgs(['del', '192.0.2.4', '0', 'x'], o)).toMatchObject({ ok: true, cmds: [{ action: 'unblock' }] });
    expect(parseDecisionArgs(['add', '192.0.2.4', '600', 'r', JSON.stringify({ value: '192.0.2.5', duration: '10s', scope: 'Ip', type: 'ban', scenario: 's' })], o)).toMatchObject({ ok: true, cmds: [{ target: '192.0.2.5', ttlS: 10, reason: 's' }] });
    expect(parseDecisionArgs(['add', '192.0.2.4', 'soon', 'r'], o)).toMatchObject({ ok: false });
    expect(parseDecisionArgs(['flush'], o)).toMatchObject({ ok: false });
  });
});

describe('planFeedRuns', () => {
  const policy = { minPrefix: 8, allow: [], own: [] };
  const c = (action: 'block' | 'unblock', target: string, source = 'crowdsec'): FeedCommand => ({ action, target, ttlS: 60, source, reason: null });

  it('keeps arrival order in runs, splits unblocks by source, refuses bad values by name', () => {
    const { runs, refused } = planFeedRuns([c('block', '192.0.2.1'), c('block', '192.0.2.2'), c('unblock', '192.0.2.1'), c('unblock', '192.0.2.3', 'other'), c('block', '10.0.0.300'), c('block', '127.0.0.1'), c('block', '192.0.2.1', 'bad name!')], policy);
    expect(runs.map((r) => (r.action === 'block' ? `block ${r.reqs.map((q) => q.target.text)}` : `unblock:${r.source} ${r.targets.map((t) => t.text)}`))).toEqual(['block 192.0.2.1,192.0.2.2', 'unblock:crowdsec 192.0.2.1', 'unblock:other 192.0.2.3']);
    expect(refused).toHaveLength(3);
    expect(refused.join('\n')).toMatch(/10\.0\.0\.300[\s\S]*loopback[\s\S]*bad name!/);
    const v6 = planFeedRuns([c('block', '2001:DB8::7'), c('block', 'fe80::1'), c('unblock', '2001:db8::7')], policy);
    expect(v6.runs.map((r) => (r.action === 'block' ? `block ${r.reqs.map((q) => q.target.text)}` : `unblock ${r.targets.map((t) => t.text)}`))).toEqual(['block 2001:db8::7', 'unblock 2001:db8::7']);
    expect(v6.refused).toEqual(["'fe80::1' is link-local (fe80::/10)"]);
  });

  it('message lines take their defaults where they carry none', () => {
    expect(parseMessageLine('{"action":"block","ip":"192.0.2.8","ttl":600,"source":"fail2ban-sip","reason":"auth"}', { ttlS: 0, source: 'stdin' })).toEqual({ ok: true, cmds: [{ action: 'block', target: '192.0.2.8', ttlS: 600, source: 'fail2ban-sip', reason: 'auth' }] });
    expect(parseMessageLine('192.0.2.8', { ttlS: 5, source: 'stdin' })).toEqual({ ok: true, cmds: [{ action: 'block', target: '192.0.2.8', ttlS: 5, source: 'stdin', reason: null }] });
    expect(parseMessageLine('{"ip":1}', { ttlS: 5, source: 'stdin' })).toMatchObject({ ok: false });
  });
});

describe('CrowdSec inputs as CrowdSec means them', () => {
  const line = (d: Record<string, unknown>) => JSON.stringify({ action: 'add', value: '198.51.100.7', duration: '1h', scope: 'Ip', type: 'ban', ...d });

  it('a Range with host bits set is its network, with a note (the operator CLI still refuses one)', () => {
    expect(parseDecisionLine(line({ scope: 'Range', value: '198.51.100.77/28' }), o)).toMatchObject({ ok: true, cmds: [{ action: 'block', target: '198.51.100.64/28' }], note: expect.stringContaining('198.51.100.77/28 has host bits set: taken as its network 198.51.100.64/28') });
    expect(parseDecisionLine(line({ action: 'del', scope: 'Range', value: '198.51.100.77/28' }), o)).toMatchObject({ ok: true, cmds: [{ action: 'unblock', target: '198.51.100.64/28' }] });
    expect(parseDecisionLine(line({ scope: 'Range', value: '198.51.100.64/28' }), o)).not.toHaveProperty('note', expect.anything());
    expect(networkOf('10.1.2.3/8')).toBe('10.0.0.0/8');
    expect(networkOf('10.0.0.0/8')).toBeNull();
    expect(networkOf('10.1.2.3/33')).toBeNull();
    expect(networkOf('10.1.2.3')).toBeNull();
  });

  it('a numeric duration is seconds; a duration of another type is named precisely', () => {
    expect(parseDecisionLine(line({ duration: 3600 }), o)).toMatchObject({ ok: true, cmds: [{ ttlS: 3600 }] });
    expect(parseDecisionLine(line({ duration: 0 }), o)).toHaveProperty('skip');
    expect(parseDecisionLine(line({ duration: true }), o)).toMatchObject({ ok: false, reason: expect.stringContaining('a Go duration like "4h" or a number of seconds') });
  });

  it('a duration above 10 years is capped with a note naming the limit', () => {
    expect(parseDecisionLine(line({ duration: '876000h' }), o)).toMatchObject({ ok: true, cmds: [{ ttlS: 315360000 }], note: expect.stringContaining('above the 10-year limit') });
  });

  it("per-decision form: the arguments are the decision; a JSON that lacks fields ('{}') takes them from the arguments", () => {
    expect(parseDecisionArgs(['add', '198.51.100.43', '3600', 'r', '{}'], o)).toMatchObject({ ok: true, cmds: [{ action: 'block', target: '198.51.100.43', ttlS: 3600, reason: 'r' }] });
    expect(parseDecisionArgs(['del', '198.51.100.43', '0', 'r', '{"value":""}'], o)).toMatchObject({ ok: true, cmds: [{ action: 'unblock', target: '198.51.100.43' }] });
    expect(parseDecisionArgs(['add', '198.51.100.43', '3600', 'r', '[]'], o)).toMatchObject({ ok: false, reason: expect.stringContaining('not an object') });
  });
});

describe('vosctl list text output', () => {
  it('shows control characters of a reason as escapes, and a backslash doubled', () => {
    expect(visible('scan\x1b[2J\r\nfake 1.2.3.4\x07\x9b\\x41')).toBe('scan\\x1b[2J\\x0d\\x0afake 1.2.3.4\\x07\\x9b\\\\x41');
    expect(visible('plain reason é')).toBe('plain reason é');
  });
});
