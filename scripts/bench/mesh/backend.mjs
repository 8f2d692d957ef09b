// The task the mesh benchmark runs with the process driver (and measures directly): it listens on 127.0.0.1:$PORT.
//
//   node backend.mjs http   a keep-alive HTTP server; every request gets 200 and the first 8 characters of its
//                           allocation id ($SHOAL_ALLOC_ID, "direct" outside Shoal) and a newline: 9 bytes, so the
//                           benchmark measures the path, not the server, and can tell which replica answered.
//   node backend.mjs bulk   a TCP source: a client sends a decimal byte count and a newline, and gets that many zero
//                           bytes (written as fast as the socket drains), then the end of the stream.
import http from 'node:http';
import net from 'node:net';

const MODE = process.argv[2];
const PORT = Number(process.env.PORT);
const MAX_BULK_BYTES = 64 * 2 ** 30;
const CHUNK = Buffer.alloc(256 * 1024);
if (!Number.isInteger(PORT) || PORT < 1 || PORT > 65535) throw new Error(`PORT must be a port number, got "${process.env.PORT}"`);

function serveHttp() {
  const body = Buffer.from(`${(process.env.SHOAL_ALLOC_ID ?? 'direct').slice(0, 8)}\n`);
  const headers = { 'content-type': 'text/plain', 'content-length': String(body.length) };
  const server = http.createServer((_req, res) => {
    res.writeHead(200, headers);
    res.end(body);
  });
  // autocannon keeps its connections for the whole run; Node's 5 s default would close the idle ones between runs.
  server.keepAliveTimeout = 120_000;
  server.headersTimeout = 130_000;
  return server;
}

function sendZeros(socket, bytes) {
  let left = bytes;
  const pump = () => {
    while (left > 0) {
      const n = Math.min(left, CHUNK.length);
      left -= n;
      if (!socket.write(n === CHUNK.length ? CHUNK : CHUNK.subarray(0, n))) {
        socket.once('drain', pump);
        return;
      }
    }
    socket.end();
  };
  pump();
}

function serveBulk() {
  return net.createServer((socket) => {
    socket.on('error', () => undefined); // a client that goes away mid-transfer is not this process's problem
    let head = '';
    const onData = (d) => {
      head += d.toString('latin1');
      const nl = head.indexOf('\n');
      if (nl < 0) {
        if (head.length > 32) socket.destroy();
        return;
      }
      socket.off('data', onData);
      const bytes = Number(head.slice(0, nl).trim());
      if (!Number.isInteger(bytes) || bytes < 0 || bytes > MAX_BULK_BYTES) {
        socket.end(`bad byte count "${head.slice(0, nl)}"\n`);
        return;
      }
      socket.resume();
      sendZeros(socket, bytes);
    };
    socket.on('data', onData);
  });
}

const server = MODE === 'http' ? serveHttp() : MODE === 'bulk' ? serveBulk() : undefined;
if (!server) throw new Error(`usage: node backend.mjs http|bulk (got "${MODE}")`);
server.listen(PORT, '127.0.0.1', () => console.log(`${MODE} backend listening on 127.0.0.1:${PORT}`));
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => process.exit(0));
