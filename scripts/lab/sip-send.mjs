// Send SIP-ish UDP datagrams: node sip-send.mjs HOST PORT [--from ADDR] [--count N] [--gap MS] [--method M]
// With no --method, reads a JSON array of payloads from stdin. Lab use only:
// it refuses any destination outside loopback, the 10.201.0.0/16 lab range and
// the IPv6 documentation prefix 2001:db8::/32 (RFC 3849) the IPv6 lab uses.
import dgram from 'node:dgram';
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { from: { type: 'string' }, count: { type: 'string', default: '1' }, gap: { type: 'string', default: '1' }, method: { type: 'string' }, 'source-port': { type: 'string', default: '0' } },
});
const [host, port] = positionals;
if (!host || !port) {
  console.error('usage: sip-send.mjs HOST PORT [--from ADDR] [--count N] [--gap MS] [--method M]');
  process.exit(2);
}
if (!/^(127\.|10\.201\.|::1$|2001:db8:)/i.test(host)) {
  console.error(`sip-send.mjs: refusing ${host}: lab traffic goes to loopback, 10.201.0.0/16 or 2001:db8::/32 only`);
  process.exit(2);
}
const count = Number(values.count);
const payloads = values.method
  ? Array.from({ length: count }, (_, i) =>
      `${values.method} sip:lab@${host.includes(':') ? `[${host}]` : host} SIP/2.0\r\nVia: SIP/2.0/UDP ${values.from ?? '0.0.0.0'};branch=z9hG4bK${i}\r\nFrom: <sip:lab@x>;tag=${i}\r\nTo: <sip:lab@x>\r\nCall-ID: ${i}@lab\r\nCSeq: ${i + 1} ${values.method}\r\nContent-Length: 0\r\n\r\n`)
  : JSON.parse(readFileSync(0, 'utf8'));
const sock = dgram.createSocket(host.includes(':') ? 'udp6' : 'udp4');
sock.bind({ port: Number(values['source-port']), address: values.from }, () => {
  let i = 0;
  const next = () => {
    if (i >= payloads.length) return sock.close();
    sock.send(Buffer.from(payloads[i++], 'latin1'), Number(port), host, () => setTimeout(next, Number(values.gap)));
  };
  next();
});
