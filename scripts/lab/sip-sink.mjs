// Count UDP datagrams per source address: node sip-sink.mjs ADDR PORT
// Prints {"source": count, ...} as one JSON line on each SIGUSR1 and on SIGTERM (then exits).
import dgram from 'node:dgram';

const [addr, port] = process.argv.slice(2);
const counts = {};
const sock = dgram.createSocket('udp4');
sock.on('message', (_m, rinfo) => (counts[rinfo.address] = (counts[rinfo.address] ?? 0) + 1));
sock.bind(Number(port), addr, () => console.log('listening'));
process.on('SIGUSR1', () => console.log(JSON.stringify(counts)));
process.on('SIGTERM', () => {
  console.log(JSON.stringify(counts));
  sock.close();
  process.exit(0);
});
