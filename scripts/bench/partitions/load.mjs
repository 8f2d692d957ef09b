// The load generator of the partitions benchmark, run as its own process so that the benchmark's timers and polls
// never share its event loop. The same code drives Shoal, etcd and the empty server: node:http with a keep-alive
// Agent (undici 7 is not a dependency of this tree; undici 6 is only there under tap's node-gyp), C clients in a
// closed loop, each sending its next request as soon as the previous one answered.
//
//   node load.mjs '<job JSON>'       runs the job, prints one JSON line with the result
//   node load.mjs serve HOST         the empty server: answers every request 200 `{}`; prints {"port":N}, ends when
//                                    its stdin closes
//
// A job: {
//   targets: ["http://127.0.0.1:40001", ...]   taken in turn (round-robin over every request of every client)
//   kind: "shoal-put" | "shoal-get" | "etcd-put" | "etcd-range" | "empty"
//   clients, seconds, warmupSeconds, timeoutMs, valueBytes,
//   job, service, collection       (shoal-*), key (shoal-get, etcd-range: the key read), consistency (shoal-get),
//   serializable                   (etcd-range)
// }
// Writes use a fresh random key each (16 hex digits) and the same random value of valueBytes bytes. "empty" sends the
// body a shoal-put would send, so the generator does the same work as against Shoal.
//
// Counted: the requests that complete with a 2xx inside the measured window (after the warm-up); requests/s is their
// number over the window; p50/p90/p99/max from each one's own time (send to last byte of the answer). Also printed:
// the errors by kind, the partitions the answers named (Shoal), and the CPU this process used per second of wall
// time (near 1.0 means the generator itself is saturated). Before the result, it prints {"phase":"measure"} when the
// measured window opens and {"phase":"end"} when it closes.
import http from 'node:http';
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';

const pct = (sorted, p) => (sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))]);

if (process.argv[2] === 'serve') {
  const server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': '2' });
      res.end('{}');
    });
  });
  server.keepAliveTimeout = 60_000;
  server.listen(0, process.argv[3] ?? '127.0.0.1', () => console.log(JSON.stringify({ port: server.address().port })));
  process.stdin.resume();
  process.stdin.on('end', () => process.exit(0));
  process.stdin.on('close', () => process.exit(0));
} else {
  const job = JSON.parse(process.argv[2] ?? '{}');
  try {
    console.log(JSON.stringify(await run(job)));
  } catch (err) {
    console.log(JSON.stringify({ error: String(err.stack ?? err) }));
  }
  process.exit(0);
}

function bodyMaker(job) {
  const value = randomBytes(job.valueBytes ?? 64).toString('base64');
  const key = () => randomBytes(8).toString('hex');
  switch (job.kind) {
    case 'shoal-put':
    case 'empty':
      return { path: '/rpc/shoal.v1.State/Put', body: () => JSON.stringify({ job: job.job ?? 'bench', service: job.service ?? 'kv', collection: job.collection ?? 'c', key: key(), value }) };
    case 'shoal-get': {
      const body = JSON.stringify({ job: job.job, service: job.service, collection: job.collection, key: job.key, consistency: job.consistency ?? 'linearizable' });
      return { path: '/rpc/shoal.v1.State/Get', body: () => body };
    }
    case 'etcd-put':
      return { path: '/v3/kv/put', body: () => JSON.stringify({ key: Buffer.from(key()).toString('base64'), value }) };
    case 'etcd-range': {
      const body = JSON.stringify({ key: Buffer.from(job.key).toString('base64'), ...(job.serializable ? { serializable: true } : {}) });
      return { path: '/v3/kv/range', body: () => body };
    }
    default:
      throw new Error(`unknown kind ${job.kind}`);
  }
}

async function run(job) {
  const clients = job.clients;
  const targets = job.targets.map((t) => new URL(t));
  const agent = new http.Agent({ keepAlive: true, maxSockets: clients, maxFreeSockets: clients, scheduling: 'fifo' });
  const { path, body } = bodyMaker(job);
  const timeoutMs = job.timeoutMs ?? 10_000;
  const headers = { 'content-type': 'application/json' };
  if (job.kind.startsWith('shoal')) headers['x-shoal-timeout-ms'] = String(timeoutMs);

  const request = (target, payload) => new Promise((resolve, reject) => {
    const req = http.request({ agent, host: target.hostname, port: target.port, path: job.kind === 'empty' ? '/' : path, method: 'POST',
      headers: { ...headers, 'content-length': Buffer.byteLength(payload) } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => {
        text += d;
      });
      res.on('end', () => resolve({ status: res.statusCode, text }));
      res.on('error', reject);
    });
    req.setTimeout(timeoutMs + 1_000, () => req.destroy(new Error(`no answer within ${timeoutMs + 1_000} ms`)));
    req.on('error', reject);
    req.end(payload);
  });

  let lat = new Float64Array(1 << 16);
  let n = 0;
  let errors = 0;
  const errorKinds = {};
  let firstError = '';
  const partitions = {};
  let rr = 0;
  const noteError = (kind, detail) => {
    errors++;
    errorKinds[kind] = (errorKinds[kind] ?? 0) + 1;
    if (!firstError) firstError = `${kind}: ${detail}`.slice(0, 300);
  };

  const warmupMs = (job.warmupSeconds ?? 0) * 1000;
  const t0 = performance.now();
  const measureFrom = t0 + warmupMs;
  const measureTo = measureFrom + job.seconds * 1000;
  let cpuAtStart = process.cpuUsage();
  // The phase lines let the benchmark sample the servers' CPU over exactly the measured window.
  const cpuTimer = setTimeout(() => {
    cpuAtStart = process.cpuUsage();
    console.log(JSON.stringify({ phase: 'measure' }));
  }, warmupMs);
  let ended = false;
  const end = () => {
    if (ended) return;
    ended = true;
    console.log(JSON.stringify({ phase: 'end' }));
  };
  const endTimer = setTimeout(end, warmupMs + job.seconds * 1000);

  const client = async () => {
    while (performance.now() < measureTo) {
      const target = targets[rr++ % targets.length];
      const start = performance.now();
      let r;
      try {
        r = await request(target, body());
      } catch (err) {
        if (start >= measureFrom) noteError(err.code ?? 'client error', err.message);
        await new Promise((resolve) => setTimeout(resolve, 10));
        continue;
      }
      const end = performance.now();
      if (start < measureFrom || end > measureTo) continue;
      if (r.status < 200 || r.status >= 300) {
        let code = `HTTP ${r.status}`;
        try {
          const parsed = JSON.parse(r.text);
          code = parsed.code ?? parsed.error ?? code;
        } catch {
          // Not JSON: the status says enough.
        }
        noteError(String(code).slice(0, 80), r.text.slice(0, 200));
        continue;
      }
      if (job.kind === 'shoal-put' || job.kind === 'shoal-get') {
        // Sampled (one answer in 16): enough to show the spread over partitions without parsing every answer.
        if ((n & 15) === 0) {
          const p = JSON.parse(r.text).partition;
          partitions[p] = (partitions[p] ?? 0) + 1;
        }
      }
      if (n === lat.length) {
        const bigger = new Float64Array(lat.length * 2);
        bigger.set(lat);
        lat = bigger;
      }
      lat[n++] = end - start;
    }
  };
  await Promise.all(Array.from({ length: clients }, () => client()));
  clearTimeout(cpuTimer);
  clearTimeout(endTimer);
  // The clients stop on performance.now(); the timer may not have fired yet.
  end();
  const cpu = process.cpuUsage(cpuAtStart);
  agent.destroy();
  const sorted = lat.subarray(0, n).sort();
  return {
    requests: n,
    perS: n / job.seconds,
    p50Ms: pct(sorted, 0.5),
    p90Ms: pct(sorted, 0.9),
    p99Ms: pct(sorted, 0.99),
    maxMs: n ? sorted[n - 1] : NaN,
    errors,
    errorKinds,
    firstError,
    partitions,
    // CPU seconds of this process per wall second of the measured window (1.0: one core, the generator's ceiling).
    generatorCpu: (cpu.user + cpu.system) / 1e6 / ((performance.now() - measureFrom) / 1000),
  };
}
