// A reference path for the request measurements: a bare hyperdht TCP tunnel between two processes, with no Shoal in
// it (the shape of holepunchto's hypertele), so that what the mesh adds across nodes can be told apart from what the
// link itself costs. Configuration as JSON in argv[2]:
//
//   {"role":"server","host":"127.0.61.21","port":47000,"backend":24231}
//     the private DHT's bootstrapper on host:port (never the public DHT) and a DHT node on host:port+1 that listens
//     with a fresh key pair; every encrypted stream it accepts is piped to 127.0.0.1:<backend>. Prints
//     {"ev":"ready","publicKey":"<hex>"}.
//   {"role":"client","host":"127.0.61.22","port":47000,"bootstrap":["127.0.61.21:47000"],"publicKey":"<hex>","listen":P}
//     a DHT node that listens on 127.0.0.1:P (TCP); every TCP connection gets its own encrypted stream to the server
//     (dht.connect), and the two are piped. Prints {"ev":"ready"}.
// One stream per connection, where the mesh multiplexes every connection over one peer link: both are fair
// "no Shoal" baselines, this one the simpler.
import DHT from 'hyperdht';
import net from 'node:net';

const c = JSON.parse(process.argv[2] ?? '{}');
const say = (o) => process.stdout.write(`${JSON.stringify(o)}\n`);
if (c.role !== 'server' && c.role !== 'client') throw new Error('role must be server or client');
if (c.role === 'client' && !Array.isArray(c.bootstrap)) throw new Error('a client needs an explicit bootstrap list');

const boot = c.role === 'server' ? DHT.bootstrapper(c.port, c.host, { host: c.host }) : null;
if (boot) await boot.ready();
const dht = new DHT({ bootstrap: boot ? [`${c.host}:${c.port}`] : c.bootstrap, nodes: [], ephemeral: false, firewalled: false, host: c.host, port: boot ? c.port + 1 : c.port, anyPort: false });
await dht.ready();

function join(sock, stream) {
  sock.setNoDelay(true);
  sock.on('error', () => stream.destroy());
  stream.on('error', () => sock.destroy());
  sock.on('close', () => stream.destroy());
  stream.on('close', () => sock.destroy());
  sock.pipe(stream).pipe(sock);
}

let server;
if (c.role === 'server') {
  server = dht.createServer((stream) => {
    const sock = net.connect({ host: '127.0.0.1', port: c.backend });
    join(sock, stream);
  });
  const keyPair = DHT.keyPair();
  await server.listen(keyPair);
  say({ ev: 'ready', publicKey: keyPair.publicKey.toString('hex') });
} else {
  const publicKey = Buffer.from(c.publicKey, 'hex');
  server = net.createServer((sock) => {
    sock.pause();
    const stream = dht.connect(publicKey);
    stream.once('open', () => {
      join(sock, stream);
      sock.resume();
    });
    stream.once('error', () => sock.destroy());
  });
  await new Promise((resolve, reject) => server.listen(c.listen, '127.0.0.1', resolve).once('error', reject));
  say({ ev: 'ready' });
}

const stop = async () => {
  await Promise.resolve(server?.close()).catch(() => undefined);
  await dht.destroy({ force: true }).catch(() => undefined);
  if (boot) await boot.destroy({ force: true }).catch(() => undefined);
  process.exit(0);
};
process.stdin.on('data', () => undefined);
process.stdin.on('end', () => void stop());
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => void stop());
