// The client side of the mesh benchmark, run as its own process so that the benchmark's own timers and polls never
// share its event loop. Reads one JSON job from argv[2], prints one JSON line with the result.
//
//   {"kind":"http","url":"http://127.0.0.1:8080/","connections":50,"durationSeconds":10,"warmupSeconds":2}
//     autocannon for the duration (after an unmeasured warm-up at the same connection count). Requests/s is the
//     completed 2xx responses over the measured time; the latency percentiles come from every response's own time
//     (autocannon's `response` event, in fractional milliseconds), because autocannon's histogram rounds to whole
//     milliseconds, too coarse for a goal of "at most 1 ms added".
//   {"kind":"bulk","host":"127.0.61.1","port":18081,"bytes":1073741824}
//     connects, asks the bulk backend (backend.mjs) for `bytes` zero bytes, and times from the request to the last
//     byte (connection set-up excluded, as in the bare-link measurement). A transfer that makes no progress for
//     `stallSeconds` (30) fails at once, saying how far it got, rather than waiting for the overall timeout.
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import autocannon from 'autocannon';

const job = JSON.parse(process.argv[2] ?? '{}');

function runAutocannon(opts, onResponse) {
  return new Promise((resolve, reject) => {
    const instance = autocannon({ ...opts, pipelining: 1 }, (err, result) => (err ? reject(err) : resolve(result)));
    if (onResponse) instance.on('response', onResponse);
  });
}

/** Nearest-rank percentile of a sorted array. */
const pct = (sorted, p) => (sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))]);

async function http() {
  const base = { url: job.url, connections: job.connections, timeout: 10 };
  if (job.warmupSeconds > 0) await runAutocannon({ ...base, duration: job.warmupSeconds });
  let lat = new Float64Array(1 << 16);
  let n = 0;
  const started = performance.now();
  const result = await runAutocannon({ ...base, duration: job.durationSeconds }, (_client, status, _bytes, ms) => {
    if (status < 200 || status >= 300) return;
    if (n === lat.length) {
      const bigger = new Float64Array(lat.length * 2);
      bigger.set(lat);
      lat = bigger;
    }
    lat[n++] = ms;
  });
  const elapsedS = (performance.now() - started) / 1000;
  const sorted = lat.subarray(0, n).sort();
  return {
    requests: n,
    // autocannon's own duration (it counts from its first connection) where it gives one; ours otherwise.
    seconds: result.duration > 0 ? result.duration : elapsedS,
    rps: n / (result.duration > 0 ? result.duration : elapsedS),
    p50Ms: pct(sorted, 0.5),
    p90Ms: pct(sorted, 0.9),
    p99Ms: pct(sorted, 0.99),
    p999Ms: pct(sorted, 0.999),
    maxMs: sorted.length ? sorted[sorted.length - 1] : NaN,
    autocannonP99Ms: result.latency.p99,
    autocannonRpsMean: result.requests.average,
    errors: result.errors,
    timeouts: result.timeouts,
    non2xx: result.non2xx,
    resets: result.resets ?? 0,
  };
}

function bulk() {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: job.host, port: job.port });
    let got = 0;
    let t0;
    let firstByteMs;
    let lastProgress = performance.now();
    const stallMs = (job.stallSeconds ?? 30) * 1000;
    const watchdog = setInterval(() => {
      if (performance.now() - lastProgress > stallMs) socket.destroy(new Error(`stalled: no data for ${stallMs / 1000} s`));
    }, 1000);
    const timer = setTimeout(() => socket.destroy(new Error(`no end after ${job.timeoutSeconds ?? 600} s`)), (job.timeoutSeconds ?? 600) * 1000);
    const done = () => {
      clearTimeout(timer);
      clearInterval(watchdog);
    };
    socket.once('connect', () => {
      t0 = performance.now();
      socket.write(`${job.bytes}\n`);
    });
    socket.on('data', (d) => {
      lastProgress = performance.now();
      if (got === 0) firstByteMs = performance.now() - t0;
      got += d.length;
    });
    socket.once('end', () => {
      done();
      const ms = performance.now() - t0;
      socket.destroy();
      if (got !== job.bytes) reject(new Error(`the stream ended after ${got} of ${job.bytes} bytes`));
      else resolve({ bytes: got, ms, firstByteMs, mbPerS: got / 1e6 / (ms / 1000) });
    });
    socket.once('error', (err) => {
      done();
      reject(new Error(`${job.host}:${job.port}: ${err.message} after ${got} of ${job.bytes} bytes`));
    });
  });
}

try {
  const out = job.kind === 'http' ? await http() : job.kind === 'bulk' ? await bulk() : undefined;
  if (!out) throw new Error(`unknown job kind "${job.kind}"`);
  process.stdout.write(`${JSON.stringify(out)}\n`);
  process.exit(0);
} catch (err) {
  process.stdout.write(`${JSON.stringify({ error: String(err?.message ?? err) })}\n`);
  process.exit(1);
}
