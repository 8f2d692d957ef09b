// A tiny HTTP server for examples/hello.yaml: answers every request with who it is.
//
// It listens on 127.0.0.1 at $PORT, or, when PORT is 0 or unset, on a port the kernel picks, so that several
// replicas can run on one machine (as in `npm run cluster`, three agents on one host). Either way it prints the
// address on stdout: `shoal alloc logs <alloc>` shows where each replica is.
import http from 'node:http';
import os from 'node:os';

const who = process.env.SHOAL_ALLOC_ID ?? os.hostname();
const port = Number(process.env.PORT ?? 0);
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  console.error(`hello-server: PORT must be a port number (0 for any free port), got "${process.env.PORT}"`);
  process.exit(2);
}

const server = http.createServer((req, res) => {
  res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' });
  res.end(`hello from ${who} (pid ${process.pid})\n`);
});

server.on('error', (err) => {
  console.error(`hello-server: cannot listen on 127.0.0.1:${port}: ${err.message}`);
  process.exit(1);
});

server.listen(port, '127.0.0.1', () => {
  const address = server.address();
  console.log(`hello-server ${who} listening on http://127.0.0.1:${typeof address === 'object' && address ? address.port : port}`);
});

function stop(signal) {
  console.log(`hello-server ${who}: ${signal}, closing`);
  server.close(() => process.exit(0));
  server.closeAllConnections();
}
process.once('SIGTERM', () => stop('SIGTERM'));
process.once('SIGINT', () => stop('SIGINT'));
