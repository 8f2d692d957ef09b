#!/usr/bin/env node
// `npm run cluster`: a three-agent Shoal cluster on this machine, in the foreground, for trying Shoal out.
//
//   check ports ─► cluster key (shoal keygen, once) ─► start shoal-1, shoal-2, shoal-3 ─► wait for a Raft leader
//     ─► shoal job run examples/hello.yaml ─► print members, allocations, where hello answers, what to try
//     ─► wait for Ctrl-C (SIGINT) or SIGTERM ─► SIGTERM the agents (SIGKILL after 10 s) ─► clean up leftover
//        task processes the agents recorded ─► exit 0
//
// Everything lives under --data-dir (default .shoal-dev/ in the repository): the cluster key, and per agent its data
// dir, agent.log and agent.pid. The agents keep their identity and state there, so the next run restarts the same
// cluster; delete the folder for a fresh one. The agents run in their own process groups: Ctrl-C reaches this
// script only, and the script stops them one by one, gracefully.
import { randomBytes } from 'node:crypto';
import { spawn, spawnSync } from 'node:child_process';
import dgram from 'node:dgram';
import http from 'node:http';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const SHOAL_BIN = path.join(REPO, 'bin', 'shoal');
const DEFAULT_AGENTS = 3;
const MAX_AGENTS = 10;
const DEFAULT_BASE_PORT = 7646;
/** Peer (DHT) sockets are this far above the API ports: API 7646-7648, peers 7746-7748 by default. */
const PEER_PORT_OFFSET = 100;
const TASK_PORTS_BASE = 21_000;
const TASK_PORTS_PER_AGENT = 500;
const COUNTER_PORT = Number(process.env.COUNTER_PORT ?? 8080);
const CONTAINERS_PORT = Number(process.env.CONTAINERS_PORT ?? 8081);
const READY_TIMEOUT_MS = 60_000;
const LEADER_TIMEOUT_MS = 90_000;
const STOP_GRACE_MS = 10_000;
const TASK_STOP_GRACE_MS = 5_000;
const POLL_MS = 250;

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const say = (line = '') => process.stdout.write(`${line}\n`);
const rel = (p) => (path.relative(process.cwd(), p).startsWith('..') ? p : path.relative(process.cwd(), p) || '.');

class UsageError extends Error {}

function usage() {
  return `usage: node scripts/cluster.mjs [--agents N] [--base-port N] [--data-dir DIR]

Starts Shoal agents (three by default) on 127.0.0.1, 127.0.0.2, ... and runs examples/hello.yaml on them, then
examples/counter/counter.yaml (nginx, an app and redis-server) when nginx and redis-server are installed, and
examples/containers.yaml when the agents have a Docker engine, and examples/store.yaml (a replicated store);
Ctrl-C stops them. COUNTER_PORT (default 8080)
and CONTAINERS_PORT (default 8081) are the ports the two stacks publish on every agent.
  --agents N      how many agents, ${DEFAULT_AGENTS} to ${MAX_AGENTS} (default ${DEFAULT_AGENTS}). Up to five are all voters; from eight on,
                  the cluster has 5 voters, 2 read replicas and clients (agents that hold no copy of the log)
  --base-port N   API ports N, N+1, ... and peer ports N+${PEER_PORT_OFFSET}, N+${PEER_PORT_OFFSET + 1}, ... (default ${DEFAULT_BASE_PORT})
  --data-dir DIR  where the agents keep their state and logs (default .shoal-dev in the repository)`;
}

function parseArgs(argv) {
  const opts = { agents: DEFAULT_AGENTS, basePort: DEFAULT_BASE_PORT, dataDir: path.join(REPO, '.shoal-dev') };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const [flag, inline] = arg.includes('=') ? [arg.slice(0, arg.indexOf('=')), arg.slice(arg.indexOf('=') + 1)] : [arg, undefined];
    const value = () => {
      const v = inline ?? argv[++i];
      if (v === undefined || v === '') throw new UsageError(`${flag} needs a value`);
      return v;
    };
    if (flag === '--help' || flag === '-h') {
      say(usage());
      process.exit(0);
    } else if (flag === '--agents') {
      const v = value();
      const n = Number(v);
      if (!Number.isInteger(n) || n < DEFAULT_AGENTS || n > MAX_AGENTS) throw new UsageError(`--agents must be a whole number from ${DEFAULT_AGENTS} to ${MAX_AGENTS}, got "${v}"`);
      opts.agents = n;
    } else if (flag === '--base-port') {
      const v = value();
      const n = Number(v);
      if (!Number.isInteger(n) || n < 1024 || n + PEER_PORT_OFFSET + MAX_AGENTS - 1 > 65535) {
        throw new UsageError(`--base-port must be a whole number from 1024 to ${65535 - PEER_PORT_OFFSET - MAX_AGENTS + 1}, got "${v}"`);
      }
      opts.basePort = n;
    } else if (flag === '--data-dir') {
      opts.dataDir = path.resolve(value());
    } else {
      throw new UsageError(`unknown option "${arg}"`);
    }
  }
  return opts;
}

// ---- ports ------------------------------------------------------------------------------------------------------

function tcpFree(port) {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once('error', (err) => resolve(err.code === 'EADDRINUSE' ? false : err));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

function udpFree(port, host) {
  return new Promise((resolve) => {
    const socket = dgram.createSocket('udp4');
    socket.once('error', (err) => {
      socket.close();
      resolve(err.code === 'EADDRINUSE' ? false : err);
    });
    socket.bind(port, host, () => socket.close(() => resolve(true)));
  });
}

async function checkPorts(agents, basePort) {
  const problems = [];
  const taken = [];
  for (const a of agents) {
    for (const [what, port, free] of [['API (TCP)', a.apiPort, await tcpFree(a.apiPort)], ['peer (UDP)', a.peerPort, await udpFree(a.peerPort, a.host)]]) {
      if (free === true) continue;
      taken.push(port);
      problems.push(free === false ? `port ${port}, the ${what} port of ${a.name}, is in use by another program` : `cannot check port ${port} (${what} of ${a.name}): ${free.message}`);
    }
  }
  if (problems.length > 0) {
    throw new Error(`${problems.join('\n')}\nStop whatever uses ${problems.length > 1 ? 'them' : 'it'} (see \`ss -lntup | grep -w ${taken[0] ?? basePort}\`), or pick other ports: npm run cluster -- --base-port ${basePort > 40_000 ? basePort - 1000 : basePort + 1000}`);
  }
}

// ---- processes --------------------------------------------------------------------------------------------------

function alive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return err.code === 'EPERM';
  }
}

function readProc(pid, file) {
  try {
    return readFileSync(`/proc/${pid}/${file}`, 'utf8');
  } catch {
    return undefined; // gone, or not ours to read
  }
}

function cmdline(pid) {
  return (readProc(pid, 'cmdline') ?? '').split('\0').filter((s) => s !== '').join(' ');
}

/** Field 22 of /proc/<pid>/stat (start time), read after the command name, which may contain spaces. */
function startTicks(pid) {
  const stat = readProc(pid, 'stat');
  if (stat === undefined) return undefined;
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(fields[19]);
}

function shoalCli(args, { env = {}, stdio = 'pipe', timeoutMs = 20_000 } = {}) {
  return spawnSync(process.execPath, [SHOAL_BIN, ...args], { cwd: REPO, env: { ...process.env, ...env }, encoding: 'utf8', stdio, timeout: timeoutMs });
}

/** The agent's own lines of output from its log file since `offset`. */
function readFrom(file, offset) {
  try {
    const buf = readFileSync(file);
    return { text: buf.subarray(offset).toString('utf8'), size: buf.length };
  } catch {
    return { text: '', size: offset }; // not created yet
  }
}

function tail(file, lines = 15) {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).map((l) => `    ${l}`).join('\n');
  } catch (err) {
    return `    (cannot read ${file}: ${err.message})`;
  }
}

// ---- the cluster ------------------------------------------------------------------------------------------------

const opts = (() => {
  try {
    return parseArgs(process.argv.slice(2));
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    process.stderr.write(`cluster: ${err.message}\n\n${usage()}\n`);
    process.exit(2);
  }
})();

const agents = Array.from({ length: opts.agents }, (_, i) => {
  const name = `shoal-${i + 1}`;
  const dir = path.join(opts.dataDir, name);
  return {
    name, dir, dataDir: path.join(dir, 'data'), log: path.join(dir, 'agent.log'), pidFile: path.join(dir, 'agent.pid'),
    apiPort: opts.basePort + i, peerPort: opts.basePort + PEER_PORT_OFFSET + i, child: undefined, exited: undefined,
    // Each agent on its own loopback address, so that each publishes the routing mesh's ports (the counter
    // example's 8080) on its own address, as separate hosts would; and its own range of task ports.
    host: `127.0.0.${i + 1}`, taskPorts: `${TASK_PORTS_BASE + i * TASK_PORTS_PER_AGENT}-${TASK_PORTS_BASE + (i + 1) * TASK_PORTS_PER_AGENT - 1}`,
  };
});
const apiAddress = `http://127.0.0.1:${agents[0].apiPort}`;
const keyFile = path.join(opts.dataDir, 'cluster.key');
let stopping;

function startAgent(a) {
  mkdirSync(a.dir, { recursive: true });
  const offset = readFrom(a.log, 0).size;
  const fd = openSync(a.log, 'a');
  const join = a === agents[0] ? [] : ['--join', `${agents[0].host}:${agents[0].peerPort}`];
  const args = [SHOAL_BIN, 'agent', '--name', a.name, '--data-dir', a.dataDir, '--bind', `${a.host}:${a.peerPort}`, '--api', `127.0.0.1:${a.apiPort}`,
    '--cluster-key-file', keyFile, '--bootstrap-expect', String(DEFAULT_AGENTS), '--task-ports', a.taskPorts, ...join];
  // detached: its own process group, so the terminal's Ctrl-C reaches this script only and the agents are stopped
  // one signal each (a second signal makes an agent exit at once instead of leaving gracefully).
  a.child = spawn(process.execPath, args, { cwd: REPO, stdio: ['ignore', fd, fd], detached: true, env: { ...process.env, SHOAL_LOG_LEVEL: process.env.SHOAL_LOG_LEVEL ?? 'info' } });
  closeSync(fd);
  a.exited = new Promise((resolve) => a.child.once('exit', (code, signal) => resolve(code ?? signal)));
  void a.exited.then((how) => {
    rmSync(a.pidFile, { force: true });
    if (!stopping) say(`!! agent ${a.name} exited (${how}) while the cluster was running; its log ends with:\n${tail(a.log)}`);
  });
  writeFileSync(a.pidFile, `${a.child.pid}\n`);
  return offset;
}

async function waitReady(a, offset) {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  let exited;
  void a.exited.then((how) => (exited = how));
  for (;;) {
    const line = readFrom(a.log, offset).text.split('\n').find((l) => l.startsWith('{"event":"ready"'));
    if (line) return JSON.parse(line);
    if (exited !== undefined) throw new Error(`agent ${a.name} exited (${exited}) before it was ready; ${rel(a.log)} ends with:\n${tail(a.log)}`);
    if (Date.now() > deadline) throw new Error(`agent ${a.name} was not ready within ${READY_TIMEOUT_MS / 1000} s; ${rel(a.log)} ends with:\n${tail(a.log)}`);
    await sleep(POLL_MS);
  }
}

async function waitForLeader() {
  const deadline = Date.now() + LEADER_TIMEOUT_MS;
  let last = '';
  for (;;) {
    if (stopping) return undefined;
    const r = shoalCli(['--address', apiAddress, 'operator', 'raft', '-o', 'json']);
    let status = (r.stderr || r.error?.message || '').trim();
    if (r.status === 0) {
      const raft = JSON.parse(r.stdout);
      if (raft.member && raft.leaderId) return raft;
      status = raft.waiting || (raft.member ? 'electing a leader' : 'joining the Raft group');
    }
    if (status !== last) say(`   ... ${status}`);
    last = status;
    if (Date.now() > deadline) throw new Error(`no Raft leader after ${LEADER_TIMEOUT_MS / 1000} s (last: ${status}); see the agents' logs in ${rel(opts.dataDir)}/*/agent.log`);
    await sleep(500);
  }
}

/** The body of a GET, or undefined when nothing answers within a second. */
function httpGet(url) {
  return new Promise((resolve) => {
    const req = http.get(url, { timeout: 1_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve(res.statusCode === 200 ? body : undefined));
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(undefined));
  });
}

/**
 * Where each hello replica listens: the last "listening on http://..." line of its log (a restarted replica prints
 * a new one), once that address answers as that replica. Waits up to 60 s for every replica (a replica restarted
 * after an agent restart waits out its restart delay first); returns those found by then.
 */
async function helloEndpoints() {
  const deadline = Date.now() + 60_000;
  let found;
  let reported = '';
  for (;;) {
    found = [];
    const ls = shoalCli(['--address', apiAddress, 'alloc', 'ls', '--job', 'hello', '-o', 'json']);
    const allocs = ls.status === 0 ? (JSON.parse(ls.stdout).allocations ?? []) : [];
    for (const alloc of allocs.filter((x) => x.clientStatus === 'running')) {
      const logs = shoalCli(['--address', apiAddress, 'alloc', 'logs', alloc.id]);
      const urls = [...(logs.stdout ?? '').matchAll(/listening on (http:\/\/\S+)/g)].map((m) => m[1]);
      const url = urls[urls.length - 1];
      if (url && (await httpGet(url))?.includes(alloc.id)) found.push({ url, alloc: alloc.id.slice(0, 8), node: alloc.nodeName || (alloc.nodeId ?? '').slice(0, 8) });
    }
    if ((allocs.length > 0 && found.length === allocs.length) || Date.now() > deadline || stopping) return found;
    const status = `${found.length} of ${allocs.length} hello replicas answering`;
    if (status !== reported) say(`   ... ${status}`);
    reported = status;
    await sleep(1_000);
  }
}

/**
 * The multi-tier example (nginx -> app -> redis-server, each found by name through the service mesh), when Debian's
 * servers are installed. Returns the ingress URLs that answered, one per agent.
 */
async function runCounter() {
  const missing = ['nginx', 'redis-server'].filter((bin) => spawnSync('sh', ['-c', `command -v ${bin}`]).status !== 0);
  if (missing.length > 0) {
    say(`\n6. Skipping examples/counter (nginx in front of an app and redis-server, found by name through the service mesh): ${missing.join(' and ')} ${missing.length > 1 ? 'are' : 'is'} not installed (apt-get install nginx-light redis-server)`);
    return [];
  }
  say(`\n6. Running a three-tier stack: shoal job run examples/counter/counter.yaml (nginx -> app -> redis, each found by name; redis' password is a secret of the job)`);
  // redis' password, a secret of the job that `shoal job run` reads from this variable.
  const env = { SHOAL_ADDR: apiAddress, SHOAL_EXAMPLES: path.join(REPO, 'examples'), COUNTER_PORT: String(COUNTER_PORT), COUNTER_REDIS_PASSWORD: process.env.COUNTER_REDIS_PASSWORD ?? randomBytes(16).toString('hex') };
  const run = shoalCli(['job', 'run', 'examples/counter/counter.yaml', '--wait-timeout', '90'], { env, stdio: 'inherit', timeoutMs: 120_000 });
  if (stopping) return [];
  if (run.status !== 0) {
    say(`!! job counter did not start (shoal job run exited ${run.status ?? run.signal ?? run.error?.message}); see \`shoal job status counter\``);
    return [];
  }
  // Port COUNTER_PORT is published in ingress mode: every agent answers on it, whichever node runs nginx.
  const answered = [];
  const deadline = Date.now() + 60_000;
  for (const a of agents) {
    const url = `http://${a.host}:${COUNTER_PORT}/`;
    let body;
    while (!stopping && Date.now() < deadline && !(body = await httpGet(url))?.startsWith('hits')) await sleep(500);
    if (body?.startsWith('hits')) answered.push({ url, body: body.trim(), agent: a.name });
  }
  if (answered.length > 0) {
    say(`\ncounter answers on every agent's address (the routing mesh):`);
    for (const x of answered) say(`   curl ${x.url}   ->  ${x.body}   (${x.agent})`);
  }
  if (answered.length < agents.length) say(`!! only ${answered.length} of ${agents.length} agents answered on port ${COUNTER_PORT}; see \`shoal service status counter web\``);
  return answered;
}

/**
 * The stateful example: a replicated store (examples/store.yaml, 4 partitions × 3 replicas), a write through one
 * agent and a read through another. Returns whether it ran.
 */
function runStore() {
  if (agents.length < 3) {
    say(`\n8. Skipping examples/store.yaml (a replicated store, 3 replicas per partition): it needs 3 agents`);
    return false;
  }
  say(`\n8. Running a replicated store: shoal job run examples/store.yaml (4 partitions, each a Raft group of 3 replicas)`);
  const run = shoalCli(['job', 'run', 'examples/store.yaml', '--wait-timeout', '90'], { env: { SHOAL_ADDR: apiAddress }, stdio: 'inherit', timeoutMs: 120_000 });
  if (stopping || run.status !== 0) {
    if (!stopping) say(`!! job store did not start (shoal job run exited ${run.status ?? run.signal ?? run.error?.message}); see \`shoal partition ls store\``);
    return false;
  }
  const put = shoalCli(['state', 'put', 'store', 'kv', 'cart-1', '{"apples": 2}', '-c', 'carts'], { env: { SHOAL_ADDR: apiAddress } });
  const other = `http://127.0.0.1:${agents[agents.length - 1].apiPort}`;
  const get = shoalCli(['state', 'get', 'store', 'kv', 'cart-1', '-c', 'carts'], { env: { SHOAL_ADDR: other } });
  say(`   $ shoal state put store kv cart-1 '{"apples": 2}' -c carts   ->  ${(put.stdout || put.stderr).trim()}`);
  say(`   $ SHOAL_ADDR=${other} shoal state get store kv cart-1 -c carts   ->  ${(get.stdout || get.stderr).trim()}`);
  shoalCli(['partition', 'ls', 'store'], { env: { SHOAL_ADDR: apiAddress }, stdio: 'inherit' });
  return put.status === 0 && get.status === 0;
}

/**
 * The container example (two services that find each other by name on the agents' bridges), when every agent has
 * a Docker engine. Returns the ingress URL that answered, if any.
 */
async function runContainers() {
  const nodes = shoalCli(['node', 'ls', '-o', 'json'], { env: { SHOAL_ADDR: apiAddress } });
  let docker = false;
  try {
    const list = JSON.parse(nodes.stdout).nodes ?? [];
    docker = list.length > 0 && list.every((n) => (n.drivers ?? []).includes('docker'));
  } catch {
    // no answer: treated as no engine
  }
  if (!docker) {
    say(`\n7. Skipping examples/containers.yaml (two containers that find each other by name): no Docker engine answers at the agents' --docker-socket`);
    return undefined;
  }
  say(`\n7. Running containers: shoal job run examples/containers.yaml (client fetches http://web:8080/ by name)`);
  const run = shoalCli(['job', 'run', 'examples/containers.yaml', '--wait-timeout', '180'], { env: { SHOAL_ADDR: apiAddress, CONTAINERS_PORT: String(CONTAINERS_PORT) }, stdio: 'inherit', timeoutMs: 240_000 });
  if (stopping || run.status !== 0) {
    if (!stopping) say(`!! job containers did not start (shoal job run exited ${run.status ?? run.signal ?? run.error?.message}); see \`shoal job status containers\``);
    return undefined;
  }
  const url = `http://${agents[0].host}:${CONTAINERS_PORT}/`;
  const deadline = Date.now() + 30_000;
  let body;
  while (!stopping && Date.now() < deadline && !(body = await httpGet(url))?.startsWith('hello from web')) await sleep(500);
  if (body?.startsWith('hello from web')) say(`   curl ${url}   ->  ${body.trim()}`);
  else say(`!! ${url} did not answer; see \`shoal service status containers web\``);
  return body ? url : undefined;
}

/** Task processes the agents' data dirs record (process driver handles in <data-dir>/allocs/*.json) that still run. */
function recordedTasks() {
  const out = [];
  for (const a of agents) {
    const dir = path.join(a.dataDir, 'allocs');
    let files;
    try {
      files = readdirSync(dir).filter((f) => f.endsWith('.json'));
    } catch {
      continue; // this agent never ran a task
    }
    for (const f of files) {
      try {
        const record = JSON.parse(readFileSync(path.join(dir, f), 'utf8'));
        const handle = record.handle ? JSON.parse(record.handle) : undefined;
        const pid = handle?.state?.pid;
        if (handle?.driver !== 'process' || !Number.isSafeInteger(pid) || pid <= 0) continue;
        // The same pid with another start time is an unrelated process that reused the number: never touch it.
        if (alive(pid) && startTicks(pid) === handle.state.startTicks) out.push({ pid, agent: a.name, alloc: record.allocId ?? f.replace(/\.json$/, ''), job: record.jobName ?? '?' });
      } catch (err) {
        say(`   (cannot read task record ${path.join(dir, f)}: ${err.message})`);
      }
    }
  }
  return out;
}

/** This process and its ancestors (npm, the shell...), whose command lines may name the data dir too. */
function ownLineage() {
  const pids = new Set();
  for (let pid = process.pid; pid > 1 && !pids.has(pid);) {
    pids.add(pid);
    const stat = readProc(pid, 'stat');
    if (stat === undefined) break;
    pid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  }
  return pids;
}

/** Processes whose command line mentions the data dir: listed so that nothing is left behind unnoticed. */
function processesMentioning(dir) {
  const out = [];
  const lineage = ownLineage();
  for (const entry of readdirSync('/proc')) {
    const pid = Number(entry);
    if (!Number.isInteger(pid) || lineage.has(pid)) continue;
    const cmd = cmdline(pid);
    if (cmd.includes(dir)) out.push({ pid, cmd });
  }
  return out;
}

async function cleanUpTasks() {
  const recorded = recordedTasks();
  const mentioning = processesMentioning(opts.dataDir);
  const recordedPids = new Set(recorded.map((t) => t.pid));
  const others = mentioning.filter((p) => !recordedPids.has(p.pid));
  if (recorded.length === 0 && others.length === 0) return;
  say('Processes left behind after the agents stopped:');
  for (const t of recorded) say(`   pid ${t.pid}: task of ${t.job} (alloc ${t.alloc.slice(0, 8)}, ${t.agent}): ${cmdline(t.pid)}`);
  for (const p of others) say(`   pid ${p.pid}: ${p.cmd}  (not recorded by the agents: left alone)`);
  if (recorded.length === 0) return;
  say(`Stopping the ${recorded.length} recorded task process${recorded.length === 1 ? '' : 'es'} (SIGTERM, SIGKILL after ${TASK_STOP_GRACE_MS / 1000} s)...`);
  // The process driver starts every task in its own process group (pgid = pid): signal the group to reach its children.
  const signal = (t, sig) => {
    try {
      process.kill(-t.pid, sig);
    } catch {
      try {
        process.kill(t.pid, sig);
      } catch {
        // exited in the meantime
      }
    }
  };
  for (const t of recorded) signal(t, 'SIGTERM');
  const deadline = Date.now() + TASK_STOP_GRACE_MS;
  while (recorded.some((t) => alive(t.pid)) && Date.now() < deadline) await sleep(100);
  for (const t of recorded.filter((x) => alive(x.pid))) {
    say(`   pid ${t.pid} still running: SIGKILL`);
    signal(t, 'SIGKILL');
  }
}

async function stopCluster(code) {
  if (stopping) return stopping;
  stopping = (async () => {
    const running = agents.filter((a) => a.child && a.child.exitCode === null && a.child.signalCode === null);
    if (running.length > 0) {
      say(`\nStopping the cluster: SIGTERM to ${running.map((a) => `${a.name} (pid ${a.child.pid})`).join(', ')}; they leave the cluster gracefully...`);
      for (const a of running) a.child.kill('SIGTERM');
      const timeout = sleep(STOP_GRACE_MS).then(() => 'timeout');
      for (const a of running) {
        const how = await Promise.race([a.exited, timeout]);
        if (how === 'timeout') {
          say(`   ${a.name} did not exit within ${STOP_GRACE_MS / 1000} s: SIGKILL`);
          a.child.kill('SIGKILL');
          await a.exited;
        } else {
          say(`   ${a.name} stopped (${how === 0 ? 'exit 0' : how})`);
        }
      }
    }
    if (!agents.some((a) => a.child)) process.exit(code); // nothing was started
    await cleanUpTasks();
    say(`Cluster stopped. Its state stays in ${rel(opts.dataDir)}/ (npm run cluster starts the same cluster again; delete the folder for a new one).`);
    process.exit(code);
  })();
  return stopping;
}

let signals = 0;
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    signals++;
    if (signals === 1) {
      void stopCluster(0);
      return;
    }
    say(`\n${sig} again: killing the agents now`);
    for (const a of agents) if (a.child && a.child.exitCode === null && a.child.signalCode === null) a.child.kill('SIGKILL');
  });
}

async function main() {
  say(`Shoal local cluster: ${opts.agents} agents on 127.0.0.1-${opts.agents}, state and logs in ${rel(opts.dataDir)}/`);
  if (!existsSync(path.join(REPO, 'dist', 'cli', 'main.js'))) throw new Error('the CLI is not built: run `npm run build` first (npm run cluster does)');

  // An agent of an earlier run still running (e.g. this script was killed with SIGKILL) holds the ports and the data.
  for (const a of agents) {
    const pid = existsSync(a.pidFile) ? Number(readFileSync(a.pidFile, 'utf8').trim()) : NaN;
    if (Number.isInteger(pid) && pid > 0 && alive(pid) && cmdline(pid).includes(a.dataDir)) {
      throw new Error(`agent ${a.name} of an earlier run is still running (pid ${pid}); stop it with \`kill ${pid}\` and start again`);
    }
  }
  say(`1. Checking ports: API ${agents.map((a) => a.apiPort).join(', ')} (TCP), peers ${agents.map((a) => a.peerPort).join(', ')} (UDP)`);
  await checkPorts(agents, opts.basePort);

  mkdirSync(opts.dataDir, { recursive: true });
  if (existsSync(keyFile)) {
    say(`2. Cluster key: ${rel(keyFile)} (from an earlier run)`);
  } else {
    const r = shoalCli(['keygen', keyFile]);
    if (r.status !== 0) throw new Error(`shoal keygen failed: ${(r.stderr || r.stdout).trim()}`);
    say(`2. Cluster key: created ${rel(keyFile)} with \`shoal keygen\``);
  }

  say('3. Starting the agents (each waits for all 3 before the first Raft group forms: --bootstrap-expect 3)');
  for (const a of agents) {
    if (stopping) return;
    const offset = startAgent(a);
    const ready = await waitReady(a, offset);
    say(`   ${a.name} started: pid ${a.child.pid}, API http://${ready.api}, peer ${ready.peer}, node id ${String(ready.id).slice(0, 8)}, log ${rel(a.log)}`);
  }

  say('4. Waiting for the agents to elect a Raft leader...');
  const raft = await waitForLeader();
  if (!raft) return;
  say(`   leader: ${raft.leaderName || raft.leaderId.slice(0, 8)} (term ${raft.term})`);

  say(`5. Running the example job: shoal job run examples/hello.yaml (on ${agents[0].name})`);
  const run = shoalCli(['job', 'run', 'examples/hello.yaml', '--wait-timeout', '60'], { env: { SHOAL_ADDR: apiAddress, SHOAL_EXAMPLES: path.join(REPO, 'examples') }, stdio: 'inherit', timeoutMs: 90_000 });
  if (stopping) return;
  const jobOk = run.status === 0;
  say(jobOk ? '   job hello is running' : `!! job hello did not start (shoal job run exited ${run.status ?? run.signal ?? run.error?.message}); the cluster keeps running: see \`shoal job status hello\``);

  say('\n$ shoal members');
  shoalCli(['members'], { env: { SHOAL_ADDR: apiAddress }, stdio: 'inherit' });
  say('\n$ shoal alloc ls');
  shoalCli(['alloc', 'ls'], { env: { SHOAL_ADDR: apiAddress }, stdio: 'inherit' });
  const endpoints = jobOk ? await helloEndpoints() : [];
  if (endpoints.length > 0) {
    say('\nhello answers at:');
    for (const e of endpoints) say(`   ${e.url}   (alloc ${e.alloc} on ${e.node})`);
  }
  const counter = jobOk ? await runCounter() : [];
  const containers = jobOk ? await runContainers() : undefined;
  const store = jobOk ? runStore() : false;
  const curl = endpoints[0] ? endpoints[0].url : 'http://127.0.0.1:PORT   (PORT: from `shoal alloc logs <alloc id>`)';
  const shoal = path.relative(process.cwd(), SHOAL_BIN).startsWith('..') ? SHOAL_BIN : `./${path.relative(process.cwd(), SHOAL_BIN)}`;
  say(`
Try these (in another terminal, in ${process.cwd()}):
   export SHOAL_ADDR=${apiAddress}     # or pass --address ${apiAddress} to each command
   ${shoal} members                    # the agents, by gossip, with their roles (voter, leader, replica, client)
   ${shoal} operator raft              # the servers: leader, voters, read replicas; and how many clients
   ${shoal} job status hello           # the job's services and allocations
   ${shoal} alloc ls                   # where the replicas run
   ${shoal} alloc logs <alloc id>      # a replica's output (it says where it listens)
   curl ${curl}
   ${shoal} job run examples/batch.yaml   # a batch job: runs once, then shows as complete${counter.length > 0 ? `
   curl ${counter[counter.length - 1].url}          # the counter stack, through any agent's address
   ${shoal} service ls                 # the service catalog: endpoints, networks, published ports
   ${shoal} service status counter app # an app's endpoints, and where this agent listens for it` : ''}${containers ? `
   curl ${containers}               # two containers on the agents' bridges, web found by name` : ''}${store ? `
   ${shoal} state put store kv cart-2 '{"pears": 1}' -c carts   # a replicated store: 4 partitions x 3 replicas
   ${shoal} state scan store kv -c carts
   ${shoal} partition ls store         # each partition's range, primary and secondaries` : ''}
   ${shoal} job stop hello${opts.agents < 8 ? `
   npm run cluster -- --agents 8       # (after Ctrl-C) 5 voters, 2 read replicas and a client that holds no log` : ''}
Agent logs: ${agents.map((a) => rel(a.log)).join(', ')}

The cluster runs until you press Ctrl-C.`);
}

main().catch((err) => {
  if (stopping) return;
  process.stderr.write(`\ncluster: ${err.message}\n`);
  void stopCluster(1);
});
