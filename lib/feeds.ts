/**
 * Threat-feed formats and the addresses no public feed should carry. Pure.
 *
 * APIBAN (apiban.org, POST /api/get {"set":"sip","id":ID}): one JSON document
 * per page, {"ipaddress":["198.51.100.7", ...],"ID":"1700000000"} with up to 250
 * addresses and the ID to continue from; the end is
 * {"ipaddress":["no new bans"],"ID":"none"}. A file may hold several pages
 * one after another (what contrib/cron/feed-import.sh accumulates).
 * VoIPBL (voipbl.org/update/): one address or CIDR per line, like our plain lists.
 */
import { covers, covers6, parseTarget, type Cidr, type Cidr6, type Target } from './address.js';

/**
 * IANA IPv4 Special-Purpose Address Registry (RFC 6890 and its updates), plus
 * multicast (RFC 5771) and the reserved 240/4 (RFC 1112 section 4): nothing a
 * public blocklist should name. Source: https://www.iana.org/assignments/iana-ipv4-special-registry
 */
const SPECIAL_REGISTRY: ReadonlyArray<[string, string]> = [
  ['0.0.0.0/8', '"this network" (RFC 791)'],
  ['10.0.0.0/8', 'private-use (RFC 1918)'],
  ['100.64.0.0/10', 'shared address space (RFC 6598)'],
  ['127.0.0.0/8', 'loopback (RFC 1122)'],
  ['169.254.0.0/16', 'link local (RFC 3927)'],
  ['172.16.0.0/12', 'private-use (RFC 1918)'],
  ['192.0.0.0/24', 'IETF protocol assignments (RFC 6890)'],
  ['192.0.2.0/24', 'documentation, TEST-NET-1 (RFC 5737)'],
  ['192.31.196.0/24', 'AS112-v4 (RFC 7535)'],
  ['192.52.193.0/24', 'AMT (RFC 7450)'],
  ['192.88.99.0/24', 'deprecated 6to4 relay anycast (RFC 7526)'],
  ['192.168.0.0/16', 'private-use (RFC 1918)'],
  ['192.175.48.0/24', 'direct delegation AS112 service (RFC 7534)'],
  ['198.18.0.0/15', 'benchmarking (RFC 2544)'],
  ['198.51.100.0/24', 'documentation, TEST-NET-2 (RFC 5737)'],
  ['203.0.113.0/24', 'documentation, TEST-NET-3 (RFC 5737)'],
  ['224.0.0.0/4', 'multicast (RFC 5771)'],
  ['255.255.255.255/32', 'limited broadcast (RFC 919)'],
  ['240.0.0.0/4', 'reserved (RFC 1112)'],
];

const SPECIAL: ReadonlyArray<Cidr & { text: string; name: string }> = SPECIAL_REGISTRY.map(([cidr, name]) => {
  const t = parseTarget(cidr);
  if (!t.ok) throw new Error(`bad registry entry ${cidr}`);
  return { ...t.target, name };
});

/**
 * IANA IPv6 Special-Purpose Address Registry (RFC 6890 and its updates), plus
 * unique-local, link-local and multicast space (RFC 4193, RFC 4291): nothing a
 * public blocklist should name. Source: https://www.iana.org/assignments/iana-ipv6-special-registry
 * (::ffff:0:0/96 is not here: an IPv4-mapped address is checked as the IPv4
 * address it carries.)
 */
const SPECIAL_REGISTRY6: ReadonlyArray<[string, string]> = [
  ['::/128', 'the unspecified address (RFC 4291)'],
  ['::1/128', 'loopback (RFC 4291)'],
  ['64:ff9b::/96', 'IPv4-IPv6 translation (RFC 6052)'],
  ['64:ff9b:1::/48', 'local-use IPv4/IPv6 translation (RFC 8215)'],
  ['100::/64', 'discard-only (RFC 6666)'],
  ['2001::/23', 'IETF protocol assignments (RFC 2928)'],
  ['2001:db8::/32', 'documentation (RFC 3849)'],
  ['2002::/16', '6to4 (RFC 3056)'],
  ['3fff::/20', 'documentation (RFC 9637)'],
  ['5f00::/16', 'segment routing SIDs (RFC 9602)'],
  ['fc00::/7', 'unique-local (RFC 4193)'],
  ['fe80::/10', 'link-local unicast (RFC 4291)'],
  ['ff00::/8', 'multicast (RFC 4291)'],
];

const SPECIAL6: ReadonlyArray<Cidr6 & { text: string; name: string }> = SPECIAL_REGISTRY6.map(([cidr, name]) => {
  const t = parseTarget(cidr);
  if (!t.ok || t.target.family !== 6) throw new Error(`bad registry entry ${cidr}`);
  return { bytes: t.target.bytes!, prefixlen: t.target.prefixlen, text: t.target.text, name };
});

/**
 * Why a target is special-purpose (it lies in, or contains, a registry block
 * of its family), or null for ordinary unicast space.
 */
export function specialPurpose(t: Target): string | null {
  if (t.family === 6) {
    const c: Cidr6 = { bytes: t.bytes!, prefixlen: t.prefixlen };
    for (const s of SPECIAL6) {
      if (covers6(s, c)) return `'${t.text}' is ${s.name}, ${s.text}`;
      if (covers6(c, s)) return `'${t.text}' contains ${s.name}, ${s.text}`;
    }
    return null;
  }
  for (const s of SPECIAL) {
    if (covers(s, t)) return `'${t.text}' is ${s.name}, ${s.text}`;
    if (covers(t, s)) return `'${t.text}' contains ${s.name}, ${s.text}`;
  }
  return null;
}

export interface FeedEntry {
  /** Where, for messages: "line 3", "page 2 entry 17". */
  where: string;
  text: string;
}

export type FeedFormat = 'plain' | 'apiban' | 'voipbl';

/** The format by content: a JSON object is an APIBAN page; anything else is a list of lines. */
export function detectFormat(text: string): FeedFormat {
  return text.trimStart().startsWith('{') ? 'apiban' : 'plain';
}

/** Split text holding JSON documents one after another (whitespace between) into the documents' texts. */
export function splitJsonDocuments(text: string): string[] {
  const docs: string[] = [];
  let depth = 0;
  let start = -1;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (inString) {
      if (c === '\\') i++;
      else if (c === '"') inString = false;
      continue;
    }
    if (c === '"') inString = true;
    else if (c === '{' || c === '[') {
      if (depth++ === 0) start = i;
    } else if (c === '}' || c === ']') {
      if (--depth === 0) docs.push(text.slice(start, i + 1));
    } else if (depth === 0 && !/\s/.test(c)) {
      docs.push(text.slice(i).trim());
      return docs; // stray text: JSON.parse names it
    }
  }
  if (depth > 0) docs.push(text.slice(start));
  return docs;
}

export interface ApibanParsed {
  entries: FeedEntry[];
  /** Problems with a page as a whole (not JSON, no ipaddress array, rate limited). */
  errors: Array<{ where: string; reason: string }>;
  /** The last page's ID to continue from (not "none"), if any. */
  lastId: string | null;
}

/** APIBAN pages to entries. "no new bans" is the end marker, not an address. */
export function parseApiban(text: string): ApibanParsed {
  const out: ApibanParsed = { entries: [], errors: [], lastId: null };
  splitJsonDocuments(text).forEach((doc, p) => {
    const where = `page ${p + 1}`;
    let page: unknown;
    try {
      page = JSON.parse(doc);
    } catch (err) {
      out.errors.push({ where, reason: `not JSON: ${(err as Error).message}` });
      return;
    }
    if (!page || typeof page !== 'object' || Array.isArray(page)) {
      out.errors.push({ where, reason: 'not an APIBAN object {"ipaddress":[...],"ID":"..."}' });
      return;
    }
    const { ipaddress, ID } = page as Record<string, unknown>;
    if (!Array.isArray(ipaddress)) {
      out.errors.push({ where, reason: `"ipaddress" is ${JSON.stringify(ipaddress)}, not a list of addresses (ID ${JSON.stringify(ID)})` });
      return;
    }
    if (typeof ID === 'string' && ID !== 'none' && ID) out.lastId = ID;
    ipaddress.forEach((ip, i) => {
      if (ip === 'no new bans') return;
      out.entries.push({ where: `${where} entry ${i + 1}`, text: typeof ip === 'string' ? ip : JSON.stringify(ip) });
    });
  });
  return out;
}
