// The app tier of examples/counter: counts visits in redis-server and says which task answered.
//
// It listens on 127.0.0.1:$PORT and reaches redis at $SHOAL_SERVICE_REDIS (host:port of its agent's listener for
// the `redis` service). It speaks redis' protocol itself (INCR is one line), so the example needs no npm package.
// `node counter-app.mjs --check` is its health check: it asks the running app for /health.
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';

const port = Number(process.env.PORT);
if (!Number.isInteger(port) || port < 1) {
  console.error(`counter-app: PORT must be the port Shoal gives this task, got "${process.env.PORT}"`);
  process.exit(2);
}

if (process.argv.includes('--check')) {
  const req = http.get({ host: '127.0.0.1', port, path: '/health', timeout: 1500 }, (res) => process.exit(res.statusCode === 200 ? 0 : 1));
  req.on('error', () => process.exit(1));
  req.on('timeout', () => req.destroy(new Error('timeout')));
} else {
  serve();
}

function serve() {
  const who = process.env.SHOAL_ALLOC_ID?.slice(0, 8) ?? String(process.pid);
  const [redisHost, redisPort] = (process.env.SHOAL_SERVICE_REDIS ?? '').split(':');
  if (!redisHost || !redisPort) {
    console.error('counter-app: SHOAL_SERVICE_REDIS is not set: is this service on a network with redis?');
    process.exit(2);
  }

  // redis wants a password: the job's secret, which the agent wrote in this task's private SHOAL_SECRETS_DIR.
  let password = '';
  try {
    password = fs.readFileSync(path.join(process.env.SHOAL_SECRETS_DIR ?? '', 'redis_password'), 'utf8').trim();
  } catch {
    // no secret: redis without a password
  }

  /** One connection to redis, opened again when it drops (AUTH first); replies come back in order. */
  let socket;
  let buffer = '';
  const waiting = [];
  function connection() {
    if (socket && !socket.destroyed) return socket;
    buffer = '';
    socket = net.connect({ host: redisHost, port: Number(redisPort) });
    socket.setEncoding('utf8');
    socket.on('data', (d) => {
      buffer += d;
      let end;
      while ((end = buffer.indexOf('\r\n')) !== -1) {
        const line = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const w = waiting.shift();
        if (!w) continue;
        if (line.startsWith(':')) w.resolve(Number(line.slice(1)));
        else if (line === '+OK') w.resolve(0);
        else w.reject(new Error(`redis answered ${line}`));
      }
    });
    const fail = (err) => {
      for (const w of waiting.splice(0)) w.reject(err);
    };
    socket.on('error', fail);
    socket.on('close', () => fail(new Error('the connection to redis closed')));
    if (password !== '') {
      waiting.push({ resolve: () => {}, reject: (err) => console.error(`counter-app: AUTH failed: ${err.message}`) });
      socket.write(`*2\r\n$4\r\nAUTH\r\n$${Buffer.byteLength(password)}\r\n${password}\r\n`);
    }
    return socket;
  }
  function incr(key) {
    return new Promise((resolve, reject) => {
      waiting.push({ resolve, reject });
      connection().write(`*2\r\n$4\r\nINCR\r\n$${Buffer.byteLength(key)}\r\n${key}\r\n`);
    });
  }

  const server = http.createServer((req, res) => {
    if (req.url === '/health') {
      res.end('ok\n');
      return;
    }
    incr('hits').then(
      (n) => res.end(`hits ${n} (app ${who})\n`),
      (err) => {
        res.writeHead(503, { 'content-type': 'text/plain' });
        res.end(`counter-app ${who}: redis is not reachable: ${err.message}\n`);
      },
    );
  });
  server.listen(port, '127.0.0.1', () => console.log(`counter-app ${who} listening on 127.0.0.1:${port}; redis at ${redisHost}:${redisPort}`));
  process.on('SIGTERM', () => server.close(() => process.exit(0)));
}
