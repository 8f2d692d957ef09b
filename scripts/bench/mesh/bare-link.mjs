// The peer of the mesh's bulk transfer: a bare hyperswarm connection between two processes, as two nodes would have,
// with no Shoal in between. One process per end; configuration as JSON in argv[2]:
//
//   {"role":"server","host":"127.0.61.11","port":47000,"topic":"<64 hex>"}
//     runs the private DHT's bootstrapper on host:port (never the public DHT: `bootstrap` is always an explicit
//     list) and a hyperswarm node on host:port+1 that announces `topic`. On each connection it reads a decimal byte
//     count and a newline, writes that many zero bytes on the raw secret stream (64 KiB writes, the size of a mesh
//     DATA frame, honouring backpressure), then ends the stream.
//   {"role":"client","host":"127.0.61.12","port":47000,"bootstrap":["127.0.61.11:47000"],"topic":"<64 hex>","bytes":N}
//     a hyperswarm node on host:port that looks the topic up, connects, asks for N bytes and times from the request
//     to the last byte (the connection's set-up is not counted, as for the mesh).
// Both use the options Shoal's transport gives its DHT (src/transport/hyperswarm-transport.ts): non-ephemeral,
// non-firewalled, explicit host and port. Each prints JSON lines: {"ev":"ready"} once listening, and the client
// {"ev":"result",...} (or {"ev":"error",...}).
import DHT from 'hyperdht';
import Hyperswarm from 'hyperswarm';
import { performance } from 'node:perf_hooks';

const c = JSON.parse(process.argv[2] ?? '{}');
const CHUNK = Buffer.alloc(64 * 1024);
const say = (o) => process.stdout.write(`${JSON.stringify(o)}\n`);

if (c.role !== 'server' && c.role !== 'client') throw new Error('role must be server or client');
if (!Array.isArray(c.bootstrap) && c.role === 'client') throw new Error('a client needs an explicit bootstrap list');

const boot = c.role === 'server' ? DHT.bootstrapper(c.port, c.host, { host: c.host }) : null;
if (boot) await boot.ready();
const bootstrap = boot ? [`${c.host}:${c.port}`] : c.bootstrap;
const dht = new DHT({ bootstrap, nodes: [], ephemeral: false, firewalled: false, host: c.host, port: boot ? c.port + 1 : c.port, anyPort: false });
await dht.ready();
const swarm = new Hyperswarm({ dht });
const topic = Buffer.from(c.topic, 'hex');

function serve(conn) {
  let head = '';
  const onData = (d) => {
    head += d.toString('latin1');
    const nl = head.indexOf('\n');
    if (nl < 0) return;
    conn.off('data', onData);
    conn.resume();
    let left = Number(head.slice(0, nl));
    const pump = () => {
      while (left > 0) {
        const n = Math.min(left, CHUNK.length);
        left -= n;
        if (!conn.write(n === CHUNK.length ? CHUNK : CHUNK.subarray(0, n))) {
          conn.once('drain', pump);
          return;
        }
      }
      conn.end();
    };
    pump();
  };
  conn.on('data', onData);
}

let fetched = false;
function fetchFrom(conn) {
  if (fetched) {
    conn.destroy();
    return;
  }
  fetched = true;
  let got = 0;
  let firstByteMs;
  const t0 = performance.now();
  conn.on('data', (d) => {
    if (got === 0) firstByteMs = performance.now() - t0;
    got += d.length;
  });
  conn.once('end', () => {
    const ms = performance.now() - t0;
    if (got !== c.bytes) say({ ev: 'error', error: `the stream ended after ${got} of ${c.bytes} bytes` });
    else say({ ev: 'result', bytes: got, ms, firstByteMs, mbPerS: got / 1e6 / (ms / 1000) });
    conn.end();
  });
  conn.write(`${c.bytes}\n`);
}

let connected = false;
let refresh;
swarm.on('connection', (conn) => {
  connected = true;
  clearInterval(refresh);
  conn.on('error', (err) => say({ ev: 'conn-error', error: err.message }));
  if (c.role === 'server') serve(conn);
  else fetchFrom(conn);
});
const discovery = swarm.join(topic, { server: c.role === 'server', client: c.role === 'client' });
await discovery.flushed();
// Plain hyperswarm can miss a peer that joined a moment earlier until its next refresh: look again soon.
if (!connected) refresh = setInterval(() => void discovery.refresh({ server: c.role === 'server', client: c.role === 'client' }).catch(() => undefined), 1000);
say({ ev: 'ready' });

const stop = async () => {
  clearInterval(refresh);
  await swarm.destroy().catch(() => undefined);
  if (boot) await boot.destroy().catch(() => undefined);
  process.exit(0);
};
process.stdin.on('data', () => undefined);
process.stdin.on('end', () => void stop());
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => void stop());
