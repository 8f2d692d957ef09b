// Service mesh benchmark (issue #13): what a connection through Shoal's mesh costs, against no proxy, HAProxy and a
// bare hyperswarm link, all in the same run on this machine.
//
//   npm run -s bench:mesh
//   npm run build && node scripts/bench/mesh/mesh.mjs [--duration-seconds 10] [--warmup-seconds 2] [--connections 1,50]
//       [--bulk-bytes 1073741824] [--runs 1] [--skip-requests] [--skip-tunnel] [--skip-bulk] [--skip-recovery]
//       [--net 127.0.61] [--peer-port 7850] [--port-base 18080] [--haproxy-threads N] [--keep-logs DIR] [--verbose]
//
// Set-up: three agents a, b, c on 127.0.61.1-3 (one loopback address per node, the same UDP port, --bootstrap-expect
// 3, distinct --task-ports ranges, logs at info so that gossip suspicions are visible) and one job whose services run
// backend.mjs with the process driver, pinned to node b, each publishing a port in ingress mode ("18080:80"): every
// agent then listens on <its bind ip>:18080 and forwards each connection to the task, over the encrypted peer link
// when the task runs elsewhere. Where the task listens comes from `shoal service status JOB SERVICE -o json` (and is
// checked against `shoal alloc status ID -o json`).
//
// 1. Requests. autocannon (load.mjs, its own process) at each --connections count for --duration-seconds, after an
//    unmeasured --warmup-seconds, against the same keep-alive HTTP backend (9-byte answers) four ways:
//      direct        127.0.0.1:<task port>
//      haproxy       Debian's HAProxy in TCP mode on 127.0.0.1, its one server the same task port (its default
//                    thread count unless --haproxy-threads)
//      mesh, same    the ingress port on b, the node that runs the task (agent b connects to the task)
//      mesh, across  the ingress port on a (agent a forwards over the peer link to agent b, which connects)
//    and, for reference, a fifth: a bare hyperdht tunnel between two processes (tunnel.mjs, no Shoal; --skip-tunnel),
//    which says what the link itself costs across "nodes" here. The order rotates from run to run. p99 is computed
//    from every response's own time, not autocannon's whole-millisecond histogram. Goals: same-node mesh >= 0.8x
//    HAProxy's requests/s; at 1 connection, at most 1 ms added to p99 (mesh p99 minus direct p99); across nodes
//    >= 0.5x direct requests/s.
// 2. Bulk. --bulk-bytes (1 GiB) from the bulk backend on b to a client that connects to a's ingress port (so every
//    byte crosses the peer link), timed from the request to the last byte; against a bare hyperswarm connection
//    between two processes on 127.0.61.11 and .12 (bare-link.mjs: private DHT bootstrapper, raw secret stream,
//    64 KiB writes). Goal: mesh >= 0.7x the bare link's MB/s. Also printed: the Raft term before and after the
//    transfers (`shoal operator raft -o json`), every agent log line that says "suspect" meanwhile, and the CPU that
//    agents a and b used during the mesh transfer.
// 3. Recovery. A second job: 2 replicas (nodes b and c: `node.name != a`, one per node) publishing --port-base+2; a
//    few requests through a's ingress say which replica answers (the backend answers with its allocation id). The
//    agent of the node that served the last one is SIGKILLed together with its task processes (those whose stdout
//    is a log file under that agent's data dir), and from then on a new connection is opened to a's ingress port
//    every 10 ms, each sending one request (5 s timeout). Printed: the time from the kill to the first successful
//    response, failed attempts, the slowest answer, from when on every attempt was answered within 100 ms, and when
//    agent a's catalog dropped the dead endpoint. With --runs > 1 the killed agent is restarted (same data dir)
//    between runs.
//
// Output: the tables, the goals with PASS/FAIL (nothing asserts: the machine is shared and noisy), anything the agents
// logged at warn or above, and as the last line one JSON object with every figure. Everything started here (agents,
// their task processes and cgroups, HAProxy, the tunnel and bare-link processes, load generators, temp dirs) is
// removed at the end, also on failure or ^C; only pids started here are killed. --keep-logs DIR keeps the agents' logs.
import { spawnSync } from 'node:child_process';
import { copyFileSync, createWriteStream, existsSync, mkdirSync, readdirSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { ShoalClient } from '../../../dist/rpc/index.js';
import { SHOAL_BIN, cleanup, freeUdpPort, keygen, kill, median, onCleanup, pidAlive, sleep, start, startShoal, tempDir, waitUntil } from '../lib/harness.mjs';
import { removeTaskCgroups } from '../lib/harness.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const BACKEND = path.join(HERE, 'backend.mjs');
const LOAD = path.join(HERE, 'load.mjs');
const BARE_LINK = path.join(HERE, 'bare-link.mjs');
const TUNNEL = path.join(HERE, 'tunnel.mjs');

// ---------------------------------------------------------------------------------------------------------------
// Options

const args = process.argv.slice(2);
const KNOWN = new Set(['--duration-seconds', '--warmup-seconds', '--connections', '--bulk-bytes', '--runs', '--net', '--peer-port', '--port-base', '--haproxy-threads',
  '--keep-logs', '--skip-requests', '--skip-tunnel', '--skip-bulk', '--skip-recovery', '--verbose']);
for (const a of args) if (a.startsWith('--') && !KNOWN.has(a)) throw new Error(`unknown flag ${a}; flags: ${[...KNOWN].join(' ')}`);
const opt = (name, dflt) => {
  const i = args.indexOf(name);
  return i >= 0 && args[i + 1] !== undefined ? args[i + 1] : dflt;
};
const DURATION_S = Number(opt('--duration-seconds', '10'));
const WARMUP_S = Number(opt('--warmup-seconds', '2'));
const CONNECTIONS = opt('--connections', '1,50').split(',').map((s) => Number(s.trim()));
const BULK_BYTES = Number(opt('--bulk-bytes', String(2 ** 30)));
const RUNS = Number(opt('--runs', '1'));
const NET = opt('--net', '127.0.61');
const PEER_PORT = Number(opt('--peer-port', '7850'));
const PORT_BASE = Number(opt('--port-base', '18080'));
const HAPROXY_THREADS = opt('--haproxy-threads', undefined);
const KEEP_LOGS = opt('--keep-logs', undefined);
const SKIP_REQUESTS = args.includes('--skip-requests');
const SKIP_TUNNEL = args.includes('--skip-tunnel');
const SKIP_BULK = args.includes('--skip-bulk');
const SKIP_RECOVERY = args.includes('--skip-recovery');
const VERBOSE = args.includes('--verbose');

if (!(DURATION_S > 0) || !(WARMUP_S >= 0)) throw new Error('--duration-seconds must be positive and --warmup-seconds at least 0');
if (CONNECTIONS.some((c) => !Number.isInteger(c) || c < 1 || c > 120)) throw new Error('--connections: integers in 1..120 (a peer link carries at most 128 mesh streams)');
if (!Number.isInteger(BULK_BYTES) || BULK_BYTES < 1) throw new Error('--bulk-bytes must be a positive integer');
if (!Number.isInteger(RUNS) || RUNS < 1) throw new Error('--runs must be a positive integer');
if (!/^127\.\d{1,3}\.\d{1,3}$/.test(NET)) throw new Error(`--net takes the first three parts of a loopback address (127.0.61), got ${NET}`);
if (!Number.isInteger(PEER_PORT) || PEER_PORT < 1024 || PEER_PORT > 65_000) throw new Error('--peer-port must be in 1024..65000');
if (!Number.isInteger(PORT_BASE) || PORT_BASE < 1024 || PORT_BASE > 65_000) throw new Error('--port-base must be in 1024..65000');
if (HAPROXY_THREADS !== undefined && !(Number.isInteger(Number(HAPROXY_THREADS)) && Number(HAPROXY_THREADS) >= 1)) throw new Error('--haproxy-threads must be a positive integer');

// Goals (issue #13), printed with PASS/FAIL.
const GOAL_SAME_VS_HAPROXY = 0.8;
const GOAL_P99_ADDED_MS = 1;
const GOAL_ACROSS_VS_DIRECT = 0.5;
const GOAL_BULK_VS_BARE = 0.7;

const NODES = ['a', 'b', 'c'];
const TASK_PORTS = { a: '24000-24199', b: '24200-24399', c: '24400-24599' };
const HTTP_PORT = PORT_BASE;
const BULK_PORT = PORT_BASE + 1;
const RECOVERY_PORT = PORT_BASE + 2;
const JOB = 'meshbench';
const RECOVERY_JOB = 'meshrecover';
const ATTEMPT_EVERY_MS = 10;
const ATTEMPT_TIMEOUT_MS = 5_000;
const RECOVERY_TIMEOUT_MS = 60_000;
const CATALOG_POLL_MS = 20;
const BULK_TIMEOUT_S = Math.max(120, Math.ceil(BULK_BYTES / 1e6)); // at least 1 MB/s

const log = (...a) => console.log(...a);
const fmt = (x, d = 2) => (typeof x !== 'number' || Number.isNaN(x) ? '-' : x.toFixed(d));
// Missing figures (no successful response: JSON turns NaN into null) print as '-'.
const ms = (x) => (typeof x !== 'number' || Number.isNaN(x) ? '-' : `${x.toFixed(x < 10 ? 2 : 1)} ms`);
const pass = (ok) => (ok ? 'PASS' : 'FAIL');
const loadavg = () => readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
const bindIp = (node) => `${NET}.${NODES.indexOf(node) + 1}`;

const root = tempDir('mesh');
const results = { config: { durationSeconds: DURATION_S, warmupSeconds: WARMUP_S, connections: CONNECTIONS, bulkBytes: BULK_BYTES, runs: RUNS, net: NET } };

// ---------------------------------------------------------------------------------------------------------------
// Leftovers of the process driver: task processes outlive a SIGKILLed agent (they run detached), and each task has a
// cgroup named after its allocation. Ours are those whose stdout is a file under this run's temp dir, and the cgroups
// of this run's allocations.

/** Pids whose stdout is a file under `dir`. */
function pidsWithStdoutUnder(dir) {
  const out = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    let target;
    try {
      target = readlinkSync(`/proc/${entry}/fd/1`);
    } catch {
      continue;
    }
    if (target.startsWith(`${dir}/`)) out.push(Number(entry));
  }
  return out;
}

function killPids(pids) {
  let killed = 0;
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
      killed++;
    } catch {
      // Gone meanwhile.
    }
  }
  return killed;
}

const ourAllocIds = new Set();
function removeOurCgroups() {
  removeTaskCgroups(ourAllocIds);
}

onCleanup(() => {
  const n = killPids(pidsWithStdoutUnder(root));
  if (n > 0) console.error(`cleanup: killed ${n} task processes left by the agents`);
  removeOurCgroups();
});

// ---------------------------------------------------------------------------------------------------------------
// Small helpers

/** utime+stime of a process in clock ticks (100 per second on Linux). */
function cpuTicks(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(f[11]) + Number(f[12]);
  } catch {
    return NaN;
  }
}

function tcpBindable(host, port) {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once('error', () => resolve(false));
    s.listen({ host, port, exclusive: true }, () => s.close(() => resolve(true)));
  });
}

async function freeTcpPort(host = '127.0.0.1') {
  const s = net.createServer();
  await new Promise((resolve, reject) => s.listen(0, host, resolve).once('error', reject));
  const { port } = s.address();
  await new Promise((resolve) => s.close(resolve));
  return port;
}

/** Runs a tracked child to its end; resolves with its exit code and whole stdout (stderr's tail on failure). */
function runChild(cmd, argv, timeoutMs) {
  const p = start(cmd, argv);
  let stdout = '';
  p.child.stdout.on('data', (d) => {
    stdout += d;
  });
  const timer = setTimeout(() => void kill(p), timeoutMs);
  return p.exited.then((code) => {
    clearTimeout(timer);
    return { code, stdout, output: p.output() };
  });
}

/** `shoal --address <agent> ARGS -o json`, parsed. */
async function shoalJson(agent, argv) {
  const r = await runChild(process.execPath, [SHOAL_BIN, '--address', agent.url, ...argv, '-o', 'json'], 30_000);
  if (r.code !== 0) throw new Error(`shoal ${argv.join(' ')} on ${agent.name} exited ${r.code}\n${r.output}`);
  return JSON.parse(r.stdout);
}

/** One HTTP/1.1 request on a new TCP connection; resolves with the status and body, rejects on error or timeout. */
function oneRequest(host, port, timeoutMs) {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host, port });
    let buf = '';
    const timer = setTimeout(() => socket.destroy(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
    socket.once('connect', () => socket.write(`GET / HTTP/1.1\r\nHost: ${host}:${port}\r\nConnection: close\r\n\r\n`));
    socket.on('data', (d) => {
      buf += d.toString('latin1');
    });
    socket.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    socket.once('close', () => {
      clearTimeout(timer);
      const m = /^HTTP\/1\.[01] (\d{3})[^\r]*\r\n[\s\S]*?\r\n\r\n([\s\S]*)$/.exec(buf);
      if (!m) reject(new Error(buf.length === 0 ? 'closed without an answer' : `unparsable answer: ${JSON.stringify(buf.slice(0, 80))}`));
      else resolve({ status: Number(m[1]), body: m[2].trim() });
    });
  });
}

/**
 * Watches a child's stdout for JSON lines; returns `wait(pred, what, timeoutMs)`, which resolves with the first line
 * (parsed) that satisfies `pred`, and rejects on timeout or when the child exits first.
 */
function jsonLines(p) {
  const waiters = [];
  const got = [];
  let rest = '';
  p.child.stdout.on('data', (d) => {
    rest += d;
    const ls = rest.split('\n');
    rest = ls.pop();
    for (const l of ls) {
      try {
        got.push(JSON.parse(l));
      } catch {
        continue;
      }
      for (const w of waiters.splice(0)) w();
    }
  });
  return (pred, what, timeoutMs) => new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${what} within ${timeoutMs} ms\n${p.output()}`)), timeoutMs);
    const check = () => {
      const e = got.find(pred);
      if (e) {
        clearTimeout(timer);
        resolve(e);
      } else waiters.push(check);
    };
    void p.exited.then(() => {
      if (!got.find(pred)) {
        clearTimeout(timer);
        reject(new Error(`the process exited before its ${what}\n${p.output()}`));
      }
    });
    check();
  });
}

/** Ends a child that stops when its stdin closes; SIGKILL after 5 s. */
async function endChild(p) {
  p.child.stdin?.end();
  await Promise.race([p.exited, sleep(5_000)]);
  await kill(p);
}

// ---------------------------------------------------------------------------------------------------------------
// The Shoal cluster

let keyFile;
const agents = new Map(); // name -> agent (startShoal's result, plus bind, dataDir, log state)
let client; // ShoalClient on agent a

function agentOptions(name) {
  return {
    name, dataDir: path.join(root, `agent-${name}`), bind: `${bindIp(name)}:${PEER_PORT}`, keyFile,
    join: name === 'a' ? undefined : `${bindIp('a')}:${PEER_PORT}`,
    extraArgs: ['--bootstrap-expect', '3', '--task-ports', TASK_PORTS[name], '--log-level', 'info'],
    readyTimeoutMs: 90_000,
  };
}

/** Starts (or restarts) one agent; its stdout (JSON log lines) also goes to agent-<name>.log, and lines are watched. */
async function startAgent(name) {
  const o = agentOptions(name);
  const a = await startShoal(o);
  a.bind = o.bind;
  a.dataDir = o.dataDir;
  a.logFile = path.join(root, `agent-${name}.log`);
  a.lines = { suspect: [], warn: [] };
  const file = createWriteStream(a.logFile, { flags: 'a' });
  let rest = '';
  a.child.stdout.on('data', (d) => {
    file.write(d);
    rest += d;
    const lines = rest.split('\n');
    rest = lines.pop();
    for (const line of lines) {
      if (/suspect/i.test(line)) a.lines.suspect.push({ at: performance.now(), line });
      if (/"level":(40|50|60)/.test(line) && a.lines.warn.length < 1000) a.lines.warn.push(line);
    }
  });
  a.child.stderr.on('data', (d) => file.write(d));
  void a.exited.then(() => file.end());
  agents.set(name, a);
  return a;
}

async function startCluster() {
  keyFile = keygen(root);
  for (const n of NODES) {
    if (!(await freeUdpPort(bindIp(n), { min: PEER_PORT, max: PEER_PORT }).then(() => true, () => false))) {
      throw new Error(`${bindIp(n)}:${PEER_PORT} (UDP) is taken: choose other addresses with --net or another --peer-port`);
    }
    for (const port of [HTTP_PORT, BULK_PORT, RECOVERY_PORT]) {
      if (!(await tcpBindable(bindIp(n), port))) throw new Error(`${bindIp(n)}:${port} (TCP) is taken: choose other ports with --port-base`);
    }
  }
  await startAgent('a');
  await Promise.all(['b', 'c'].map((n) => startAgent(n)));
  client = new ShoalClient({ address: agents.get('a').url, timeoutMs: 5_000 });
  let last = '';
  await waitUntil('3 ready, eligible nodes with the process driver and a Raft leader', async () => {
    const { nodes } = await client.nodes.list({});
    last = nodes.map((n) => `${n.name}:${n.status}:${n.eligible ? 'eligible' : 'ineligible'}`).join(' ');
    if (nodes.filter((n) => n.status === 'ready' && n.eligible && n.drivers.includes('process')).length !== NODES.length) return false;
    return (await client.operator.raftState()).leaderName !== '';
  }, 120_000, 200).catch((err) => {
    throw new Error(`${err.message}; nodes: ${last || 'none listed'}`);
  });
}

function agentLogTails() {
  return [...agents.values()].map((a) => `--- agent ${a.name} (pid ${a.child.pid}, log ${a.logFile}) ---\n${a.output()}`).join('\n');
}

/** A job file: services as { name, mode, port, target, replicas, placement lines }. */
function writeJob(name, services) {
  const file = path.join(root, `${name}.yaml`);
  const lines = [`name: ${name}`, 'services:'];
  for (const s of services) {
    lines.push(
      `  ${s.name}:`,
      '    x-shoal: { driver: process }',
      `    command: [${JSON.stringify(process.execPath)}, ${JSON.stringify(BACKEND)}, ${JSON.stringify(s.mode)}]`,
      `    ports: ["${s.port}:${s.target}"]`,
      '    stop_grace_period: 1s',
      '    deploy:',
      `      replicas: ${s.replicas}`,
      '      placement:',
      ...s.placement.map((l) => `        ${l}`),
    );
  }
  writeFileSync(file, `${lines.join('\n')}\n`);
  return file;
}

async function runJob(file) {
  const r = await runChild(process.execPath, [SHOAL_BIN, '--address', agents.get('a').url, 'job', 'run', file], 120_000);
  if (r.code !== 0) throw new Error(`shoal job run ${file} exited ${r.code}\n${r.output}`);
}

async function rememberAllocs(job) {
  const got = await client.jobs.get({ name: job }).catch(() => undefined);
  for (const al of got?.allocations ?? []) ourAllocIds.add(al.id);
}

/**
 * Waits until `service status` on `via` lists `count` endpoints (on `onNodes` when given) and `via`'s ingress
 * listener for `published` is up; returns the status JSON's service.
 */
async function waitForService(via, job, service, published, count, onNodes) {
  let last;
  await waitUntil(`${job}/${service}: ${count} endpoint(s) and an ingress listener on ${via.name}`, async () => {
    last = (await shoalJson(via, ['service', 'status', job, service])).service;
    const eps = last.endpoints ?? [];
    if (eps.length !== count || (onNodes && !eps.every((e) => onNodes.includes(e.nodeName)))) return false;
    const l = (last.listeners ?? []).find((x) => x.kind === 'ingress' && x.address === `${bindIp(via.name)}:${published}`);
    if (l?.error) throw new Error(`${via.name} cannot publish ${published}: ${l.error}`);
    return l !== undefined;
  }, 90_000, 250).catch((err) => {
    throw new Error(`${err.message}; last status: ${JSON.stringify(last)}`);
  });
  return last;
}

// ---------------------------------------------------------------------------------------------------------------
// HAProxy

let haproxy;
async function startHaproxy(backendPort) {
  const bin = ['/usr/sbin/haproxy', '/usr/bin/haproxy'].find((p) => existsSync(p));
  if (!bin) return { skipped: 'haproxy is not installed (apt-get install -y haproxy)' };
  const version = (spawnSync(bin, ['-v'], { encoding: 'utf8' }).stdout ?? '').split('\n')[0].replace(/^HAProxy version (\S+).*/, '$1');
  const port = await freeTcpPort();
  const cfg = path.join(root, 'haproxy.cfg');
  writeFileSync(cfg, [
    'global',
    '  maxconn 4000', // 2 fds each: within this machine's open-file limit
    ...(HAPROXY_THREADS ? [`  nbthread ${HAPROXY_THREADS}`] : []),
    'defaults',
    '  mode tcp',
    '  timeout connect 5s',
    '  timeout client 120s',
    '  timeout server 120s',
    'frontend bench',
    `  bind 127.0.0.1:${port}`,
    '  default_backend task',
    'backend task',
    `  server t1 127.0.0.1:${backendPort}`,
    '',
  ].join('\n'));
  haproxy = start(bin, ['-db', '-f', cfg]);
  await waitUntil('haproxy to answer', async () => (await oneRequest('127.0.0.1', port, 1_000)).status === 200, 15_000, 100).catch((err) => {
    throw new Error(`${err.message}\n${haproxy.output()}`);
  });
  const threads = HAPROXY_THREADS ?? `default (${os.cpus().length} here)`;
  return { version, port, threads };
}

// ---------------------------------------------------------------------------------------------------------------
// The reference tunnel (tunnel.mjs): TCP -> one hyperdht stream per connection -> TCP, no Shoal.

const tunnelProcs = [];
async function startTunnel(backendPort) {
  const serverHost = `${NET}.21`;
  const clientHost = `${NET}.22`;
  const port = await freeUdpPort(serverHost, { min: 32_100, max: 32_700 });
  const clientPort = await freeUdpPort(clientHost, { min: 32_100, max: 32_700 });
  const listen = await freeTcpPort();
  const server = start(process.execPath, [TUNNEL, JSON.stringify({ role: 'server', host: serverHost, port, backend: backendPort })], { stdin: 'pipe' });
  tunnelProcs.push(server);
  const { publicKey } = await jsonLines(server)((e) => e.ev === 'ready', 'ready line from the tunnel server', 30_000);
  const clientProc = start(process.execPath, [TUNNEL, JSON.stringify({ role: 'client', host: clientHost, port: clientPort, bootstrap: [`${serverHost}:${port}`], publicKey, listen })], { stdin: 'pipe' });
  tunnelProcs.push(clientProc);
  await jsonLines(clientProc)((e) => e.ev === 'ready', 'ready line from the tunnel client', 30_000);
  await waitUntil('the tunnel to answer', async () => (await oneRequest('127.0.0.1', listen, 3_000)).status === 200, 30_000, 200);
  return { port: listen, hosts: `${clientHost} -> ${serverHost}` };
}

async function stopTunnel() {
  for (const p of tunnelProcs.splice(0)) await endChild(p);
}

// ---------------------------------------------------------------------------------------------------------------
// 1. Requests

async function loadRun(job) {
  const r = await runChild(process.execPath, [LOAD, JSON.stringify(job)], (job.durationSeconds + job.warmupSeconds + 60) * 1000);
  const line = r.stdout.trim().split('\n').pop() ?? '';
  let out;
  try {
    out = JSON.parse(line);
  } catch {
    throw new Error(`load.mjs printed no result (exit ${r.code})\n${r.output}`);
  }
  if (out.error) throw new Error(`load.mjs: ${out.error}`);
  return out;
}

async function requests(paths) {
  log(`\n== 1. Requests: autocannon, ${DURATION_S} s per cell after a ${WARMUP_S} s warm-up, connections ${CONNECTIONS.join(' and ')}, ${RUNS} run(s)`);
  const raw = {}; // key -> conns -> [result]
  for (const p of paths) raw[p.key] = Object.fromEntries(CONNECTIONS.map((c) => [c, []]));
  for (let run = 0; run < RUNS; run++) {
    for (const conns of CONNECTIONS) {
      const order = paths.map((_p, i) => paths[(i + run) % paths.length]);
      for (const p of order) {
        const r = await loadRun({ kind: 'http', url: p.url, connections: conns, durationSeconds: DURATION_S, warmupSeconds: WARMUP_S });
        raw[p.key][conns].push(r);
        const bad = r.errors + r.timeouts + r.non2xx;
        log(`  run ${run + 1} ${String(conns).padStart(3)} conn  ${p.label.padEnd(30)} ${fmt(r.rps, 0).padStart(8)} req/s  p50 ${ms(r.p50Ms).padStart(9)}  p99 ${ms(r.p99Ms).padStart(9)}${bad ? `  errors ${r.errors} timeouts ${r.timeouts} non-2xx ${r.non2xx}` : ''}   (load ${loadavg()})`);
      }
    }
  }
  const med = {};
  for (const p of paths) {
    med[p.key] = {};
    for (const c of CONNECTIONS) {
      const rs = raw[p.key][c];
      med[p.key][c] = {
        rps: median(rs.map((r) => r.rps)), p50Ms: median(rs.map((r) => r.p50Ms)), p99Ms: median(rs.map((r) => r.p99Ms)), p999Ms: median(rs.map((r) => r.p999Ms)),
        errors: rs.reduce((s, r) => s + r.errors + r.timeouts + r.non2xx, 0),
      };
    }
  }
  log(`\n  ${RUNS > 1 ? `median of ${RUNS} runs` : 'results'}:`);
  log(`  ${'path'.padEnd(44)} ${'conns'.padStart(5)} ${'req/s'.padStart(8)} ${'p50'.padStart(9)} ${'p99'.padStart(9)} ${'p99.9'.padStart(9)} ${'errors'.padStart(6)}`);
  for (const c of CONNECTIONS) {
    for (const p of paths) {
      const m = med[p.key][c];
      log(`  ${p.label.padEnd(44)} ${String(c).padStart(5)} ${fmt(m.rps, 0).padStart(8)} ${ms(m.p50Ms).padStart(9)} ${ms(m.p99Ms).padStart(9)} ${ms(m.p999Ms).padStart(9)} ${String(m.errors).padStart(6)}`);
    }
  }
  const has = (k) => med[k] !== undefined;
  log('\n  goals:');
  for (const c of CONNECTIONS) {
    if (has('haproxy')) {
      const x = med['mesh-same'][c].rps / med.haproxy[c].rps;
      log(`    ${String(c).padStart(3)} conn  same-node mesh / HAProxy requests/s   ${fmt(x)}x  (goal >= ${GOAL_SAME_VS_HAPROXY})  ${pass(x >= GOAL_SAME_VS_HAPROXY)}`);
    }
    const y = med['mesh-across'][c].rps / med.direct[c].rps;
    log(`    ${String(c).padStart(3)} conn  across-nodes mesh / direct requests/s  ${fmt(y)}x  (goal >= ${GOAL_ACROSS_VS_DIRECT})  ${pass(y >= GOAL_ACROSS_VS_DIRECT)}`);
    if (has('tunnel')) {
      log(`    ${String(c).padStart(3)} conn  (reference) hyperdht tunnel / direct    ${fmt(med.tunnel[c].rps / med.direct[c].rps)}x;  across-nodes mesh / hyperdht tunnel ${fmt(med['mesh-across'][c].rps / med.tunnel[c].rps)}x`);
    }
  }
  if (CONNECTIONS.includes(1)) {
    const d = med.direct[1].p99Ms;
    for (const [k, label] of [['mesh-same', 'same-node mesh'], ['mesh-across', 'across-nodes mesh'], ['haproxy', 'HAProxy (reference)'], ['tunnel', 'hyperdht tunnel (ref.)']]) {
      if (!has(k)) continue;
      const added = med[k][1].p99Ms - d;
      const reference = k === 'haproxy' || k === 'tunnel';
      log(`      1 conn  p99 added by ${label.padEnd(24)} ${ms(added).padStart(9)}  (${ms(med[k][1].p99Ms)} - ${ms(d)} direct)${reference ? '' : `  (goal <= ${GOAL_P99_ADDED_MS} ms)  ${pass(added <= GOAL_P99_ADDED_MS)}`}`);
    }
  }
  return { runs: raw, median: med };
}

// ---------------------------------------------------------------------------------------------------------------
// 2. Bulk

async function raftTerm() {
  const st = await shoalJson(agents.get('a'), ['operator', 'raft']);
  return { term: Number(st.term), leader: st.leaderName };
}

async function meshBulk() {
  const a = agents.get('a');
  const b = agents.get('b');
  const c0 = { a: cpuTicks(a.child.pid), b: cpuTicks(b.child.pid) };
  const t0 = performance.now();
  const r = await runChild(process.execPath, [LOAD, JSON.stringify({ kind: 'bulk', host: bindIp('a'), port: BULK_PORT, bytes: BULK_BYTES, timeoutSeconds: BULK_TIMEOUT_S, stallSeconds: 30 })], (BULK_TIMEOUT_S + 30) * 1000);
  const wallS = (performance.now() - t0) / 1000;
  const cpu = { a: ((cpuTicks(a.child.pid) - c0.a) / 100 / wallS) * 100, b: ((cpuTicks(b.child.pid) - c0.b) / 100 / wallS) * 100 };
  const out = JSON.parse(r.stdout.trim().split('\n').pop() || '{"error":"no output"}');
  if (out.error) throw new Error(`mesh bulk transfer: ${out.error}\n${r.output}`);
  return { ...out, cpuPct: cpu };
}

async function bareBulk() {
  const topic = randomBytes(32).toString('hex');
  const serverHost = `${NET}.11`;
  const clientHost = `${NET}.12`;
  const port = await freeUdpPort(serverHost, { min: 30_000, max: 32_000 });
  const clientPort = await freeUdpPort(clientHost, { min: 30_000, max: 32_000 });
  const server = start(process.execPath, [BARE_LINK, JSON.stringify({ role: 'server', host: serverHost, port, topic })], { stdin: 'pipe' });
  try {
    await jsonLines(server)((e) => e.ev === 'ready', 'ready line from the bare-link server', 30_000);
    const clientProc = start(process.execPath, [BARE_LINK, JSON.stringify({ role: 'client', host: clientHost, port: clientPort, bootstrap: [`${serverHost}:${port}`], topic, bytes: BULK_BYTES })], { stdin: 'pipe' });
    try {
      const res = await jsonLines(clientProc)((e) => e.ev === 'result' || e.ev === 'error', 'result from the bare-link client', (BULK_TIMEOUT_S + 30) * 1000);
      if (res.ev === 'error') throw new Error(`bare link: ${res.error}`);
      return res;
    } finally {
      await endChild(clientProc);
    }
  } finally {
    await endChild(server);
  }
}

async function bulk() {
  const gib = BULK_BYTES / 2 ** 30;
  log(`\n== 2. Bulk: ${BULK_BYTES} bytes (${fmt(gib, gib < 1 ? 3 : 2)} GiB) from node b, ${RUNS} run(s); MB = 10^6 bytes`);
  const before = await raftTerm();
  const tStart = performance.now();
  const runs = [];
  for (let run = 0; run < RUNS; run++) {
    const order = run % 2 === 0 ? ['mesh', 'bare'] : ['bare', 'mesh'];
    const r = {};
    for (const side of order) {
      r[side] = side === 'mesh' ? await meshBulk() : await bareBulk();
      const extra = side === 'mesh' ? `  (CPU during it: agent a ${fmt(r.mesh.cpuPct.a, 0)} %, agent b ${fmt(r.mesh.cpuPct.b, 0)} % of a core)` : '';
      log(`  run ${run + 1}  ${(side === 'mesh' ? 'mesh, a\'s ingress -> peer link -> b' : 'bare hyperswarm link').padEnd(36)} ${fmt(r[side].mbPerS, 1).padStart(7)} MB/s  ${fmt(r[side].ms / 1000)} s  first byte ${ms(r[side].firstByteMs)}${extra}   (load ${loadavg()})`);
    }
    runs.push(r);
  }
  const after = await raftTerm();
  const suspects = [...agents.values()].flatMap((a) => a.lines.suspect.filter((s) => s.at >= tStart).map((s) => `${a.name}: ${s.line}`));
  const mesh = median(runs.map((r) => r.mesh.mbPerS));
  const bare = median(runs.map((r) => r.bare.mbPerS));
  const x = mesh / bare;
  log(`\n  mesh ${fmt(mesh, 1)} MB/s, bare hyperswarm link ${fmt(bare, 1)} MB/s${RUNS > 1 ? ' (medians)' : ''}: ${fmt(x)}x  (goal >= ${GOAL_BULK_VS_BARE})  ${pass(x >= GOAL_BULK_VS_BARE)}`);
  log(`  Raft term ${before.term} (leader ${before.leader}) before, ${after.term} (leader ${after.leader}) after: ${after.term === before.term && after.leader === before.leader ? 'no election' : 'ELECTION(S) during the transfers'}`);
  log(`  agent log lines saying "suspect" during the transfers: ${suspects.length}${suspects.length ? `\n${suspects.slice(0, 10).map((l) => `    ${l.slice(0, 300)}`).join('\n')}` : ''}`);
  return { runs, meshMbPerS: mesh, bareMbPerS: bare, ratio: x, termBefore: before, termAfter: after, suspectLines: suspects.length };
}

// ---------------------------------------------------------------------------------------------------------------
// 3. Recovery

async function recoveryRun(run) {
  const a = agents.get('a');
  const status = await waitForService(a, RECOVERY_JOB, 'web', RECOVERY_PORT, 2, ['b', 'c']);
  await rememberAllocs(RECOVERY_JOB);
  const nodeOfAlloc = new Map((status.endpoints ?? []).map((e) => [e.allocId.slice(0, 8), e.nodeName]));
  // Which replica answers: a few requests, each on its own connection (the ingress alternates between them).
  const served = [];
  for (let i = 0; i < 10; i++) served.push((await oneRequest(bindIp('a'), RECOVERY_PORT, 5_000)).body);
  const victimName = nodeOfAlloc.get(served.at(-1));
  if (!victimName) throw new Error(`the last answer (${served.at(-1)}) names no endpoint of ${JSON.stringify(status.endpoints)}`);
  const victim = agents.get(victimName);
  const victimAlloc = (status.endpoints ?? []).find((e) => e.nodeName === victimName).allocId;
  const raft = await client.operator.raftState().catch(() => undefined);
  const victimRole = raft?.leaderName === victimName ? 'Raft leader' : 'Raft follower';
  const tasks = pidsWithStdoutUnder(victim.dataDir);
  const servedBy = served.map((id) => nodeOfAlloc.get(id) ?? id).join(',');

  // The kill, then an attempt every 10 ms on a new connection, and agent a's catalog polled meanwhile.
  const attempts = [];
  let catalogDropMs;
  const t0 = performance.now();
  process.kill(victim.child.pid, 'SIGKILL');
  killPids(tasks);
  let stop = false;
  const poller = (async () => {
    while (!stop && catalogDropMs === undefined) {
      try {
        const got = await client.services.get({ job: RECOVERY_JOB, service: 'web' }, { timeoutMs: 2_000 });
        if (!(got.service?.endpoints ?? []).some((e) => e.allocId === victimAlloc)) catalogDropMs = performance.now() - t0;
      } catch {
        // Agent a is alive; a slow answer is retried.
      }
      await sleep(CATALOG_POLL_MS);
    }
  })();
  const inflight = new Set();
  let firstOkMs;
  let lastBadEndMs = 0;
  while (performance.now() - t0 < RECOVERY_TIMEOUT_MS) {
    const at = performance.now() - t0;
    const rec = { startMs: at };
    attempts.push(rec);
    const p = oneRequest(bindIp('a'), RECOVERY_PORT, ATTEMPT_TIMEOUT_MS).then((res) => {
      rec.endMs = performance.now() - t0;
      rec.ok = res.status === 200;
      rec.by = nodeOfAlloc.get(res.body) ?? res.body;
      if (!rec.ok) rec.error = `HTTP ${res.status}`;
    }, (err) => {
      rec.endMs = performance.now() - t0;
      rec.ok = false;
      rec.error = err.message;
    }).then(() => {
      inflight.delete(p);
      if (rec.ok && (firstOkMs === undefined || rec.endMs < firstOkMs)) firstOkMs = rec.endMs;
      if (!rec.ok) lastBadEndMs = Math.max(lastBadEndMs, rec.endMs);
    });
    inflight.add(p);
    // Done once a request succeeded, the catalog dropped the dead endpoint, and the attempts of the last second all
    // succeeded (the figures of interest are then all known).
    const now = performance.now() - t0;
    if (firstOkMs !== undefined && catalogDropMs !== undefined && now > catalogDropMs + 1_000 && now > lastBadEndMs + 1_000
      && attempts.filter((x) => x.startMs > now - 1_000).every((x) => x.ok !== false)) break;
    const next = t0 + (attempts.length) * ATTEMPT_EVERY_MS;
    const wait = next - performance.now();
    if (wait > 0) await sleep(wait);
  }
  await Promise.all(inflight);
  stop = true;
  await poller;
  await kill(victim); // reaps the process (it is dead already)

  const failed = attempts.filter((x) => !x.ok);
  const lat = attempts.filter((x) => x.ok).map((x) => x.endMs - x.startMs);
  const slowest = lat.length ? Math.max(...lat) : NaN;
  const errors = {};
  for (const f of failed) errors[f.error] = (errors[f.error] ?? 0) + 1;
  // From when on every new connection was answered quickly: the start of the attempt after the last slow or failed one.
  const SLOW_MS = 100;
  const bad = attempts.filter((x) => !x.ok || x.endMs - x.startMs > SLOW_MS);
  const allFastFromMs = bad.length ? Math.max(...bad.map((x) => x.startMs)) + ATTEMPT_EVERY_MS : 0;
  const r = {
    allFastFromMs,
    victim: victimName, victimRole, tasksKilled: tasks.length, servedBefore: servedBy, attempts: attempts.length, failed: failed.length, errors,
    firstOkMs, catalogDropMs, lastFailEndMs: failed.length ? lastBadEndMs : undefined, slowestOkMs: slowest,
    slowOver100Ms: lat.filter((x) => x > 100).length, firstAttemptBy: attempts[0]?.by, firstAttemptMs: attempts[0] ? attempts[0].endMs - attempts[0].startMs : undefined,
  };
  log(`  run ${run + 1}: killed agent ${victimName} (${victimRole}, pid ${victim.child.pid}) and ${tasks.length} task process(es); answers before the kill came from ${servedBy}`);
  log(`    first successful new request      ${ms(firstOkMs)} after the kill (the first attempt, at 0 ms, was answered by ${r.firstAttemptBy ?? 'nobody'} in ${ms(r.firstAttemptMs)})`);
  log(`    attempts                          ${attempts.length} (every ${ATTEMPT_EVERY_MS} ms), failed ${failed.length}${failed.length ? ` (${Object.entries(errors).map(([e, n]) => `${n}x ${e}`).join('; ')}), the last ended ${ms(lastBadEndMs)} after the kill` : ''}`);
  log(`    slowest successful attempt        ${ms(slowest)}; ${r.slowOver100Ms} took over 100 ms`);
  log(`    every attempt answered in < ${SLOW_MS} ms  from ${ms(allFastFromMs)} after the kill on`);
  log(`    agent a's catalog dropped it      ${ms(catalogDropMs)} after the kill`);
  return r;
}

async function recovery() {
  log(`\n== 3. Recovery: 2 replicas (nodes b and c), clients through a's ingress port ${bindIp('a')}:${RECOVERY_PORT}; kill -9 the serving node's agent and tasks, then a new connection every ${ATTEMPT_EVERY_MS} ms`);
  await runJob(writeJob(RECOVERY_JOB, [{ name: 'web', mode: 'http', port: RECOVERY_PORT, target: 80, replicas: 2, placement: ['constraints: ["node.name != a"]', 'max_replicas_per_node: 1'] }]));
  const runs = [];
  for (let run = 0; run < RUNS; run++) {
    const r = await recoveryRun(run);
    runs.push(r);
    if (run + 1 < RUNS) {
      // Bring the node back (same data dir and address) and wait for both replicas again.
      await startAgent(r.victim);
      await waitForService(agents.get('a'), RECOVERY_JOB, 'web', RECOVERY_PORT, 2, ['b', 'c']);
    }
  }
  if (RUNS > 1) {
    log(`  medians: first success ${ms(median(runs.map((r) => r.firstOkMs)))}, catalog dropped ${ms(median(runs.map((r) => r.catalogDropMs)))}, `
      + `every attempt fast from ${ms(median(runs.map((r) => r.allFastFromMs)))}, slowest ${ms(median(runs.map((r) => r.slowestOkMs)))}, failed attempts ${median(runs.map((r) => r.failed))}`);
  }
  return { runs };
}

// ---------------------------------------------------------------------------------------------------------------

async function main() {
  log(`mesh benchmark (${os.cpus().length} cores, ${os.release()}, Node ${process.version}, load ${loadavg()})`);
  await startCluster();
  log(`shoal: agents ${NODES.map((n) => agents.get(n)).map((a) => `${a.name} ${a.bind}`).join(', ')} (task ports ${NODES.map((n) => `${n} ${TASK_PORTS[n]}`).join(', ')}), formed with a leader`);

  const jobFile = writeJob(JOB, [
    { name: 'web', mode: 'http', port: HTTP_PORT, target: 80, replicas: 1, placement: ['constraints: ["node.name == b"]'] },
    ...(SKIP_BULK ? [] : [{ name: 'bulk', mode: 'bulk', port: BULK_PORT, target: 81, replicas: 1, placement: ['constraints: ["node.name == b"]'] }]),
  ]);
  await runJob(jobFile);
  await rememberAllocs(JOB);
  const web = await waitForService(agents.get('a'), JOB, 'web', HTTP_PORT, 1, ['b']);
  await waitForService(agents.get('b'), JOB, 'web', HTTP_PORT, 1, ['b']);
  const ep = web.endpoints[0];
  const taskPort = ep.ports['80'];
  const alloc = await shoalJson(agents.get('a'), ['alloc', 'status', ep.allocId]);
  const allocPorts = alloc.allocation?.taskPorts ?? alloc.taskPorts;
  log(`job ${JOB}: web = alloc ${ep.allocId.slice(0, 8)} on ${ep.nodeName}, task port ${taskPort} (service status), alloc status taskPorts ${JSON.stringify(allocPorts)}`);
  if (allocPorts && String(allocPorts['80']) !== String(taskPort)) log(`  NOTE: alloc status and service status disagree on the task port`);
  if (!SKIP_BULK) {
    await waitForService(agents.get('a'), JOB, 'bulk', BULK_PORT, 1, ['b']);
  }

  const hp = SKIP_REQUESTS ? { skipped: '--skip-requests' } : await startHaproxy(taskPort);
  if (hp.skipped) log(`HAProxy skipped: ${hp.skipped}`);
  else log(`HAProxy ${hp.version}, mode tcp, nbthread ${hp.threads}, 127.0.0.1:${hp.port} -> 127.0.0.1:${taskPort}`);
  results.haproxy = hp;

  const tunnel = SKIP_TUNNEL || SKIP_REQUESTS ? undefined : await startTunnel(taskPort);
  if (tunnel) log(`hyperdht tunnel (reference, no Shoal): 127.0.0.1:${tunnel.port} -> ${tunnel.hosts} -> 127.0.0.1:${taskPort}`);
  const paths = [
    { key: 'direct', label: `direct 127.0.0.1:${taskPort}`, url: `http://127.0.0.1:${taskPort}/` },
    ...(hp.skipped ? [] : [{ key: 'haproxy', label: `HAProxy tcp 127.0.0.1:${hp.port}`, url: `http://127.0.0.1:${hp.port}/` }]),
    { key: 'mesh-same', label: `mesh, same node (b ${bindIp('b')}:${HTTP_PORT})`, url: `http://${bindIp('b')}:${HTTP_PORT}/` },
    { key: 'mesh-across', label: `mesh, across (a ${bindIp('a')}:${HTTP_PORT})`, url: `http://${bindIp('a')}:${HTTP_PORT}/` },
    ...(tunnel ? [{ key: 'tunnel', label: `hyperdht tunnel (ref.) 127.0.0.1:${tunnel.port}`, url: `http://127.0.0.1:${tunnel.port}/` }] : []),
  ];
  for (const p of paths) {
    const u = new URL(p.url);
    const r = await oneRequest(u.hostname, Number(u.port), 5_000);
    if (r.status !== 200 || r.body !== ep.allocId.slice(0, 8)) throw new Error(`${p.label}: expected 200 from ${ep.allocId.slice(0, 8)}, got ${r.status} ${r.body}`);
  }
  // Each part stands alone: one that fails is reported and the next still runs (the exit code says it failed).
  const part = async (key, fn) => {
    try {
      results[key] = await fn();
    } catch (err) {
      partFailed = true;
      results[key] = { error: String(err?.message ?? err) };
      log(`\n  ${key} FAILED: ${err?.message ?? err}`);
      if (VERBOSE) console.error(err?.stack);
    }
  };
  if (!SKIP_REQUESTS) {
    await part('requests', async () => {
      const termBefore = await raftTerm();
      const r = await requests(paths);
      const termAfter = await raftTerm();
      log(`  Raft term ${termBefore.term} -> ${termAfter.term} over the request runs`);
      return r;
    });
  }
  if (haproxy) await kill(haproxy);
  await stopTunnel();

  if (!SKIP_BULK) await part('bulk', bulk);
  if (!SKIP_RECOVERY) await part('recovery', recovery);

  const warns = [...agents.values()].flatMap((a) => a.lines.warn.map((l) => `${a.name}: ${l}`));
  if (warns.length > 0) log(`\nagent log lines at warn or above (${warns.length}; last ${Math.min(20, warns.length)}):\n${warns.slice(-20).map((l) => l.slice(0, 400)).join('\n')}`);
  if (VERBOSE) log(agentLogTails());
}

let failed = false;
let partFailed = false;
try {
  await main();
} catch (err) {
  failed = true;
  results.error = String(err?.message ?? err);
  console.error(`\nFAILED: ${err?.stack ?? err}`);
  if (agents.size > 0) console.error(`\nagent output (tails; full logs are removed with the temp dir):\n${agentLogTails()}`);
} finally {
  if (client) for (const job of [JOB, RECOVERY_JOB]) await rememberAllocs(job);
  // Agents first, gracefully (SIGTERM: they leave the cluster), then what they left, then the rest.
  await Promise.all([...agents.values()].map(async (a) => {
    if (!pidAlive(a.child.pid)) return;
    const t = setTimeout(() => void kill(a, 'SIGKILL'), 10_000);
    await kill(a, 'SIGTERM');
    clearTimeout(t);
  }));
  killPids(pidsWithStdoutUnder(root));
  removeOurCgroups();
  if (KEEP_LOGS) {
    mkdirSync(KEEP_LOGS, { recursive: true });
    for (const n of NODES) if (existsSync(path.join(root, `agent-${n}.log`))) copyFileSync(path.join(root, `agent-${n}.log`), path.join(KEEP_LOGS, `agent-${n}.log`));
    console.error(`agent logs copied to ${KEEP_LOGS}`);
  }
  cleanup();
}
console.log(JSON.stringify(results));
process.exitCode = failed || partFailed ? 1 : 0;
