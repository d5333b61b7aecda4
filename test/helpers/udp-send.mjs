// Usage: node udp-send.mjs HOST PORT SOURCE_PORT < JSON array of payloads.
// Sends each payload as one datagram, a millisecond apart, then exits.
import dgram from 'node:dgram';
import { readFileSync } from 'node:fs';

const [host, port, sourcePort] = process.argv.slice(2);
const payloads = JSON.parse(readFileSync(0, 'utf8'));
const sock = dgram.createSocket('udp4');
sock.bind(Number(sourcePort) || 0, () => {
  let i = 0;
  const next = () => {
    if (i >= payloads.length) return sock.close();
    sock.send(Buffer.from(payloads[i++], 'latin1'), Number(port), host, () => setTimeout(next, 1));
  };
  next();
});
