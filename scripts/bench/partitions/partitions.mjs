// Stateful partitions (issue 12) side by side with etcd 3.4 (Debian's `etcd-server`), in one run on this machine.
//
//   npm run -s bench:partitions
//   npm run build && node scripts/bench/partitions/partitions.mjs [--seconds 10] [--warmup 2] [--runs 3] [--clients 1,64]
//       [--value-bytes 64] [--rebuild-mb 2] [--rebuild-partitions 8] [--quick] [--skip-etcd] [--skip-failover]
//       [--skip-rebuild] [--net 127.0.73] [--etcd-net 127.0.74] [--keep-logs DIR] [--verbose]
//
// Set-up: three agents a, b, c (bin/shoal agent of this tree) on NET.1-3, one loopback address each and the same
// UDP port, --bootstrap-expect 3, --read-replicas 0; two jobs of one stateful service each, no task (a replicated
// store): `bench` (kv, 8 partitions x 3 replicas) and `bench1` (kv, 1 partition x 3 replicas), run with `shoal job
// run` (which waits until every partition has a primary). etcd: three members on ETCD_NET.1-3, defaults (heartbeat
// 100 ms, election 1000 ms, fsync on). Shoal fsyncs too: its Raft log and every replica's SQLite are
// `synchronous=FULL`.
//
// The load generator is load.mjs, its own process, the same code for every system: node:http with a keep-alive Agent,
// C clients in a closed loop (each sends its next request when the previous one answered), --warmup seconds
// unmeasured, then --seconds measured. A write is a random 16-hex-digit key with the same --value-bytes value.
//
// 1. Write throughput, at each --clients count:
//      ceiling        the generator against an empty node:http server (its own process) answering 200 `{}`: the
//                     generator's own limit, which the systems must stay well below to be measured at all
//      etcd           POST /v3/kv/put on the JSON gateway of the leader (found with /v3/maintenance/status)
//      shoal 1p/8p    POST /rpc/shoal.v1.State/Put (proto3 JSON) to a, b, c in turn, as through a load balancer:
//                     the agent forwards to the primary of the key's partition, which commits through Raft
//    Goals (issue 12): 8 partitions at 64 clients >= 1.5x etcd's writes/s at a p99 no higher than etcd's; 1 partition
//    >= etcd's writes/s (at 64 clients).
// 2. Failover, --runs runs per system. A light load (2 writers, ~100 writes/s, random keys, through the survivors) runs
//    throughout. Shoal: the victim is the agent holding the primary of partition P of `bench` (Partitions/List
//    primaryNodeId, mapped to the agent through the id each agent printed when ready, checked against Agent/Self);
//    the victim rotates over a, b, c from run to run. A key K whose Put answered `partition: P` was found beforehand.
//    After the SIGKILL, Puts of K go to the two survivors in turn, each with a 300 ms deadline, retried at once (at
//    most one per 10 ms); the time from the kill to the first one answered (with partition P) is the failover time.
//    Beside it, the other survivor's replica of P is asked every 20 ms whom it takes for leader (Partitions/Replica),
//    which splits the time into "new primary known" and "write through". Then the victim is restarted on its data
//    dir and the next run waits until `partition ls` is all ready with 3 replicas. etcd: the same with its leader,
//    Puts through the survivors. Goal: Shoal's median <= 0.5 s (etcd 3.4 here: 1.3-1.4 s).
// 3. Reads on the primary, 1 client, the same generator: Shoal `linearizable` Gets (ReadIndex) and `local` Gets sent
//    to the agent of the key's primary, and, for reference, `linearizable` through another agent (forwarded); etcd
//    range reads on its leader, linearizable (the default) and `serializable: true`. `lease` reads are not built in
//    Shoal: one is sent to show the agent's answer, and nothing is measured for them.
// 4. Rebuild (4 agents): a fourth agent d joins; a job `rebuild` (--rebuild-partitions x 3 replicas) is filled to
//    --rebuild-mb MB per partition (64 KiB values, routed per partition with partitionKind int64). The agent (b, c
//    or d) holding most of its replicas is SIGKILLed; timed: when a's gossip marks it dead, and when every partition
//    (of `rebuild`, then of every job) is ready with 3 replicas and none on the dead node; MB/s of the replicas it
//    held. Known limit: unless the build fetches partition snapshots in chunks (LIMITS.partitionSnapshotChunkBytes),
//    a snapshot travels in ONE Raft message, so a replica larger than LIMITS.maxEnvelopePayloadBytes cannot be
//    rebuilt; --rebuild-mb is then kept under it (the issue's 64 MB replicas cannot be measured). The goal (16
//    replicas of 64 MB within 60 s) is judged only with --rebuild-mb 64 and at least 16 replicas on the victim
//    (--rebuild-partitions 22 or more with 4 agents).
//
// --quick: --seconds 2, --warmup 0.5, --runs 1, --rebuild-mb 0.5 (flags given explicitly win): a smoke test.
// Output: one table per section, ratios against etcd measured in the same run, the goals with PASS/FAIL (nothing
// asserts on speed: the machine is shared and noisy), warnings the agents logged, and as the last line one JSON object
// with every figure. Exit status 1 only when the harness fails (a process that does not start, a job that does not
// run...), never for a missed goal. Everything started here (agents, etcd, load generators, the empty server, temp
// dirs) is killed/removed at the end, also on failure or ^C; only pids started here are killed.
import { copyFileSync, createWriteStream, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { SHOAL_BIN, cleanup, freeUdpPort, keygen, kill, median, sleep, start, startShoal, tempDir, waitUntil } from '../lib/harness.mjs';
import { etcdVersion, postJson, startEtcdCluster } from '../lib/etcd.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '../../..');
const LOAD = path.join(HERE, 'load.mjs');

// ---------------------------------------------------------------------------------------------------------------
// Options

const args = process.argv.slice(2);
const VALUED = new Set(['--seconds', '--warmup', '--runs', '--clients', '--value-bytes', '--rebuild-mb', '--rebuild-partitions', '--net', '--etcd-net', '--keep-logs']);
const FLAGS = new Set(['--quick', '--skip-etcd', '--skip-failover', '--skip-rebuild', '--verbose']);
for (let i = 0; i < args.length; i++) {
  if (VALUED.has(args[i])) i++;
  else if (!FLAGS.has(args[i])) {
    console.error(`unknown argument ${args[i]}; flags: ${[...VALUED].map((f) => `${f} V`).join(' ')} ${[...FLAGS].join(' ')}`);
    process.exit(2);
  }
}
const given = (name) => args.includes(name);
const opt = (name, dflt) => {
  const i = args.indexOf(name);
  return i >= 0 && args[i + 1] !== undefined ? args[i + 1] : dflt;
};
const QUICK = given('--quick');
const SECONDS = Number(opt('--seconds', QUICK ? '2' : '10'));
const WARMUP_S = Number(opt('--warmup', QUICK ? '0.5' : '2'));
const RUNS = Number(opt('--runs', QUICK ? '1' : '3'));
const CLIENTS = opt('--clients', '1,64').split(',').map((s) => Number(s.trim()));
const VALUE_BYTES = Number(opt('--value-bytes', '64'));
const REBUILD_MB = Number(opt('--rebuild-mb', QUICK ? '0.5' : '2'));
const REBUILD_PARTITIONS = Number(opt('--rebuild-partitions', '8'));
const NET = opt('--net', '127.0.73');
const ETCD_NET = opt('--etcd-net', '127.0.74');
const KEEP_LOGS = opt('--keep-logs', undefined);
const SKIP_ETCD = given('--skip-etcd');
const SKIP_FAILOVER = given('--skip-failover');
const SKIP_REBUILD = given('--skip-rebuild');
const VERBOSE = given('--verbose');

const fail = (msg) => {
  console.error(`partitions bench: ${msg}`);
  process.exit(2);
};
if (!(SECONDS > 0) || !(WARMUP_S >= 0)) fail('--seconds must be positive and --warmup at least 0');
if (!Number.isInteger(RUNS) || RUNS < 1) fail('--runs must be a positive integer');
if (CLIENTS.some((c) => !Number.isInteger(c) || c < 1 || c > 512)) fail('--clients: integers in 1..512, comma-separated');
if (!Number.isInteger(VALUE_BYTES) || VALUE_BYTES < 1 || VALUE_BYTES > 65_536) fail('--value-bytes must be in 1..65536');
if (!Number.isInteger(REBUILD_PARTITIONS) || REBUILD_PARTITIONS < 1 || REBUILD_PARTITIONS > 64) fail('--rebuild-partitions must be in 1..64');
for (const [flag, net] of [['--net', NET], ['--etcd-net', ETCD_NET]]) if (!/^127\.\d{1,3}\.\d{1,3}$/.test(net)) fail(`${flag} takes the first three parts of a loopback address (127.0.73), got ${net}`);
if (NET === ETCD_NET) fail('--net and --etcd-net must differ');
if (!existsSync(path.join(ROOT, 'dist/cli/main.js'))) fail('dist/ is not built: run `npm run build` first');

const { LIMITS } = await import(path.join(ROOT, 'dist/lib/limits.js'));
const MiB = 1024 * 1024;
// Until partition snapshots are fetched in chunks (LIMITS.partitionSnapshotChunkBytes), a snapshot is one Raft message,
// so a replica must fit in one envelope. A replica's database is a little larger than the values it holds.
const CHUNKED_SNAPSHOTS = typeof LIMITS.partitionSnapshotChunkBytes === 'number';
if (!(REBUILD_MB > 0)) fail('--rebuild-mb must be positive');
if (!CHUNKED_SNAPSHOTS && REBUILD_MB * MiB * 1.25 + 256 * 1024 > LIMITS.maxEnvelopePayloadBytes) {
  fail(`--rebuild-mb must be small enough that a replica stays under LIMITS.maxEnvelopePayloadBytes (${(LIMITS.maxEnvelopePayloadBytes / MiB).toFixed(2)} MiB): ` +
    'a partition snapshot travels in one Raft message today');
}

// Goals (issue 12).
const GOAL_8P_VS_ETCD = 1.5;
const GOAL_1P_VS_ETCD = 1.0;
const GOAL_FAILOVER_MS = 500;
const GOAL_REBUILD_S = 60;

const FAILOVER_DEADLINE_MS = 300;
const FAILOVER_TIMEOUT_MS = 60_000;
const BACKGROUND_WRITERS = 2;
const BACKGROUND_EVERY_MS = 20;
const REBUILD_VALUE_BYTES = 64 * 1024;
const REBUILD_TIMEOUT_MS = 300_000;
const READY_TIMEOUT_MS = 180_000;
const JOB8 = 'bench';
const JOB1 = 'bench1';
const JOB_REBUILD = 'rebuild';
const SERVICE = 'kv';
const COLLECTION = 'c';

const log = (...a) => console.log(...a);
const ms = (x) => (typeof x !== 'number' || !Number.isFinite(x) ? '-' : `${x.toFixed(x < 10 ? 2 : 1)} ms`);
const secs = (x) => (typeof x !== 'number' || !Number.isFinite(x) ? '-' : `${(x / 1000).toFixed(3)} s`);
const ratio = (a, b) => (Number.isFinite(a) && Number.isFinite(b) && b > 0 ? a / b : NaN);
const fx = (x, d = 2) => (Number.isFinite(x) ? x.toFixed(d) : '-');
const pass = (ok) => (ok === undefined ? 'n/a ' : ok ? 'PASS' : 'FAIL');
const loadavg = () => readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
const b64 = (buf) => Buffer.from(buf).toString('base64');
const shortId = (id) => (id ? id.slice(0, 8) : '-');

const root = tempDir('partitions');
const results = {
  config: { seconds: SECONDS, warmupSeconds: WARMUP_S, runs: RUNS, clients: CLIENTS, valueBytes: VALUE_BYTES, rebuildMb: REBUILD_MB, rebuildPartitions: REBUILD_PARTITIONS, quick: QUICK },
};

// ---------------------------------------------------------------------------------------------------------------
// The Shoal cluster

let keyFile;
let peerPort;
const NODES = ['a', 'b', 'c', 'd'];
const agents = new Map(); // name -> startShoal's result, plus bind, dataDir, logFile, warn lines
const bindOf = (name) => `${NET}.${NODES.indexOf(name) + 1}:${peerPort}`;
const live = () => [...agents.values()].filter((a) => a.child.exitCode === null && a.child.signalCode === null);

/** Starts (or restarts, on its data dir) agent `name`; it joins the other agents' DHT nodes (none for the first start of a). */
async function startAgent(name) {
  const joins = [...agents.keys()].filter((n) => n !== name).map(bindOf);
  const a = await startShoal({
    name, dataDir: path.join(root, `agent-${name}`), bind: bindOf(name), keyFile, join: joins.length ? joins.join(',') : undefined,
    extraArgs: ['--bootstrap-expect', '3', '--read-replicas', '0', '--task-ports', `${30_000 + NODES.indexOf(name) * 200}-${30_199 + NODES.indexOf(name) * 200}`,
      ...(VERBOSE ? ['--log-level', 'info'] : [])],
    readyTimeoutMs: 90_000,
  });
  a.logFile = path.join(root, `agent-${name}.log`);
  a.warn = agents.get(name)?.warn ?? [];
  const file = createWriteStream(a.logFile, { flags: 'a' });
  let rest = '';
  a.child.stdout.on('data', (d) => {
    file.write(d);
    rest += d;
    const lines = rest.split('\n');
    rest = lines.pop();
    for (const line of lines) if (/"level":(40|50|60)/.test(line) && a.warn.length < 2000) a.warn.push(line);
  });
  a.child.stderr.on('data', (d) => file.write(d));
  void a.exited.then(() => file.end());
  agents.set(name, a);
  return a;
}

/** A JSON RPC to an agent; throws with the agent's error code and message on failure. */
async function rpc(agent, method, body, timeoutMs = 5_000) {
  const r = await postJson(`${agent.url}/rpc/shoal.v1.${method}`, body, timeoutMs + 200, { 'x-shoal-timeout-ms': String(timeoutMs) });
  if (!r.ok) {
    const err = new Error(`${method} on ${agent.name}: HTTP ${r.status} ${r.body.code ?? ''} ${r.body.message ?? JSON.stringify(r.body).slice(0, 300)}`);
    err.code = r.body.code;
    throw err;
  }
  return r.body;
}

async function shoalCli(agent, argv, timeoutMs = 180_000) {
  const p = start(process.execPath, [SHOAL_BIN, '--address', agent.url, ...argv]);
  let stdout = '';
  p.child.stdout.on('data', (d) => {
    stdout += d;
  });
  const timer = setTimeout(() => void kill(p), timeoutMs);
  const code = await p.exited;
  clearTimeout(timer);
  if (code !== 0) throw new Error(`shoal ${argv.join(' ')} (via ${agent.name}) exited ${code}\n${p.output()}`);
  return stdout;
}

async function runStatefulJob(via, name, partitions) {
  const file = path.join(root, `${name}.yaml`);
  writeFileSync(file, [`name: ${name}`, 'services:', `  ${SERVICE}:`, '    x-shoal:', `      state: { partitions: ${partitions}, replicas: 3 }`, ''].join('\n'));
  const t0 = performance.now();
  const out = await shoalCli(via, ['job', 'run', file]);
  if (!new RegExp(`partitions ${partitions}/${partitions} ready`).test(out)) throw new Error(`job run ${name} did not say "partitions ${partitions}/${partitions} ready":\n${out}`);
  return performance.now() - t0;
}

async function listPartitions(via, job, timeoutMs = 5_000) {
  return (await rpc(via, 'Partitions/List', job ? { job } : {}, timeoutMs)).partitions;
}

/** Why `parts` are not all ready with their replicas (on live nodes, none on `exclude`), or '' when they are. */
function notReady(parts, exclude) {
  for (const p of parts) {
    const where = `${p.job}/${p.service}/${p.partition}`;
    if (p.state !== 'ready') return `${where} is ${p.state}`;
    if (!p.primaryNodeId) return `${where} has no primary`;
    if (p.members.length !== p.replicasWanted) return `${where} has ${p.members.length} members, wants ${p.replicasWanted}`;
    const down = p.members.find((m) => !m.reachable);
    if (down) return `${where}: member ${down.nodeName} does not answer`;
    if (exclude && p.members.some((m) => m.nodeId === exclude)) return `${where} still has a member on the dead node`;
  }
  return '';
}

async function waitAllReady(what, { exclude, timeoutMs = READY_TIMEOUT_MS } = {}) {
  let why = '';
  await waitUntil(what, async () => {
    const via = live()[0];
    why = notReady(await listPartitions(via, undefined), exclude);
    return why === '';
  }, timeoutMs, 250).catch((err) => {
    throw new Error(`${err.message}; last: ${why}`);
  });
}

async function startCluster() {
  keyFile = keygen(root);
  peerPort = await freeUdpPort(`${NET}.1`, { min: 40_000, max: 60_000 });
  for (const n of NODES) {
    if (!(await freeUdpPort(`${NET}.${NODES.indexOf(n) + 1}`, { min: peerPort, max: peerPort }).then(() => true, () => false))) {
      throw new Error(`${NET}.${NODES.indexOf(n) + 1}:${peerPort} (UDP) is taken: choose other addresses with --net`);
    }
  }
  await startAgent('a');
  await Promise.all(['b', 'c'].map((n) => startAgent(n)));
  for (const a of agents.values()) {
    const self = await rpc(a, 'Agent/Self', {});
    if (self.member?.id !== a.id) throw new Error(`agent ${a.name}: Agent/Self says id ${self.member?.id}, its ready line said ${a.id}`);
  }
  let last = '';
  await waitUntil('3 ready nodes and a Raft leader', async () => {
    const { nodes } = await rpc(agents.get('a'), 'Nodes/List', {});
    last = nodes.map((n) => `${n.name}:${n.status}`).join(' ');
    if (nodes.filter((n) => n.status === 'ready').length !== 3) return false;
    return (await rpc(agents.get('a'), 'Operator/RaftState', {})).leaderName !== '';
  }, 120_000, 200).catch((err) => {
    throw new Error(`${err.message}; nodes: ${last || 'none listed'}`);
  });
  const t8 = await runStatefulJob(agents.get('a'), JOB8, 8);
  const t1 = await runStatefulJob(agents.get('b'), JOB1, 1);
  log(`# shoal: agents a, b, c on ${NET}.1-3:${peerPort} (APIs ${[...agents.values()].map((a) => a.api).join(', ')}); ` +
    `job run ${JOB8} (8 partitions) ${secs(t8)}, ${JOB1} (1 partition) ${secs(t1)}`);
  results.setup = { jobRun8Ms: t8, jobRun1Ms: t1 };
}

// ---------------------------------------------------------------------------------------------------------------
// Load generator (load.mjs, its own process) and the empty server

/** CPU seconds (all threads, from /proc/PID/stat) and run-queue wait seconds (every thread's schedstat) of `pids`. */
function procCpu(pids) {
  let cpuS = 0;
  let waitS = 0;
  for (const pid of pids) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      cpuS += (Number(f[11]) + Number(f[12])) / 100;
      for (const task of readdirSync(`/proc/${pid}/task`)) {
        try {
          waitS += Number(readFileSync(`/proc/${pid}/task/${task}/schedstat`, 'utf8').split(' ')[1]) / 1e9;
        } catch {
          // The thread ended between the listing and the read.
        }
      }
    } catch {
      // The process is gone: it no longer adds anything.
    }
  }
  return { cpuS, waitS };
}

/**
 * Runs load.mjs with `job`; with `pids` (the servers under load), also their CPU over the measured window: cores used,
 * CPU milliseconds per request, and cores' worth of time their threads spent runnable but waiting for a CPU (high:
 * the machine is short of CPU, and latencies include that wait).
 */
async function loadRun(job, pids = []) {
  const seconds = job.seconds ?? SECONDS;
  const p = start(process.execPath, [LOAD, JSON.stringify({ warmupSeconds: WARMUP_S, seconds, valueBytes: VALUE_BYTES, timeoutMs: 10_000, ...job })]);
  let stdout = '';
  let at;
  let cpu;
  p.child.stdout.on('data', (d) => {
    stdout += d;
    if (!at && stdout.includes('{"phase":"measure"}')) at = procCpu(pids);
    if (at && !cpu && stdout.includes('{"phase":"end"}')) {
      const now = procCpu(pids);
      cpu = { cpuS: now.cpuS - at.cpuS, waitS: now.waitS - at.waitS };
    }
  });
  const timer = setTimeout(() => void kill(p), (seconds + WARMUP_S + 60) * 1000);
  const code = await p.exited;
  clearTimeout(timer);
  let out;
  try {
    out = JSON.parse(stdout.trim().split('\n').pop() ?? '');
  } catch {
    throw new Error(`load.mjs printed no result (exit ${code})\n${p.output()}`);
  }
  if (out.error) throw new Error(`load.mjs: ${out.error}`);
  if (cpu && pids.length > 0) {
    out.serverCores = cpu.cpuS / seconds;
    out.serverCpuMsPerOp = out.requests > 0 ? (cpu.cpuS * 1000) / out.requests : NaN;
    out.serverWaitCores = cpu.waitS / seconds;
  }
  return out;
}

const agentPids = () => live().map((a) => a.child.pid);
const etcdPids = (etcd) => etcd.members.filter((m) => m.alive()).map((m) => m.proc.child.pid);

/** "a 3, b 3, c 2": how many primaries of `job` each agent holds. */
async function primariesOf(job) {
  const parts = await listPartitions(agents.get('a') ?? live()[0], job);
  const n = new Map([...agents.keys()].map((k) => [k, 0]));
  for (const p of parts) {
    const a = [...agents.values()].find((x) => x.id === p.primaryNodeId);
    n.set(a?.name ?? '?', (n.get(a?.name ?? '?') ?? 0) + 1);
  }
  return [...n].map(([k, v]) => `${k} ${v}`).join(', ');
}

let emptyServer;
async function startEmptyServer() {
  emptyServer = start(process.execPath, [LOAD, 'serve', '127.0.0.1'], { stdin: 'pipe' });
  const port = await new Promise((resolve, reject) => {
    let buf = '';
    emptyServer.child.stdout.on('data', (d) => {
      buf += d;
      const m = /\{"port":(\d+)\}/.exec(buf);
      if (m) resolve(Number(m[1]));
    });
    void emptyServer.exited.then((code) => reject(new Error(`the empty server exited (${code})\n${emptyServer.output()}`)));
  });
  return `http://127.0.0.1:${port}`;
}

// ---------------------------------------------------------------------------------------------------------------
// 1. Write throughput

const HEADER = `  ${'system'.padEnd(26)} ${'clients'.padStart(7)} ${'req/s'.padStart(7)} ${'p50'.padStart(9)} ${'p90'.padStart(9)} ${'p99'.padStart(9)} ${'max'.padStart(9)} ${'errors'.padStart(6)} ` +
  `${'gen CPU'.padStart(7)} ${'srv CPU'.padStart(7)} ${'CPU/op'.padStart(8)} ${'srv wait'.padStart(8)}  notes`;
function row(label, c, r, notes = '') {
  const errs = r.errors ? `${r.errors}` : '0';
  const cpuOp = Number.isFinite(r.serverCpuMsPerOp) ? `${r.serverCpuMsPerOp.toFixed(2)} ms` : '-';
  log(`  ${label.padEnd(26)} ${String(c).padStart(7)} ${fx(r.perS, 0).padStart(7)} ${ms(r.p50Ms).padStart(9)} ${ms(r.p90Ms).padStart(9)} ${ms(r.p99Ms).padStart(9)} ${ms(r.maxMs).padStart(9)} ${errs.padStart(6)} ` +
    `${fx(r.generatorCpu).padStart(7)} ${fx(r.serverCores).padStart(7)} ${cpuOp.padStart(8)} ${fx(r.serverWaitCores).padStart(8)}  ${notes}` +
    (r.errors ? ` errors: ${JSON.stringify(r.errorKinds)} first: ${r.firstError}` : ''));
}
const spread = (r) => {
  const ps = Object.keys(r.partitions ?? {});
  return ps.length ? `${ps.length} partition(s) answered` : '';
};

async function throughput(etcd, emptyUrl) {
  log(`\n== 1. Write throughput: 3 replicas, fsync on; ${SECONDS} s per cell after a ${WARMUP_S} s warm-up; ${VALUE_BYTES}-byte values, random keys`);
  log('   shoal: every write to a, b, c in turn (as through a load balancer); etcd: every write to its leader');
  log('   gen CPU: the generator\'s CPU (cores); srv CPU: the servers\' (all 3 agents / etcd members / the empty server), and per request;');
  log('   srv wait: cores\' worth of the servers\' threads runnable but waiting for a CPU (high: the machine is short of CPU)');
  log(`   primaries: ${JOB8}: ${await primariesOf(JOB8)}; ${JOB1}: ${await primariesOf(JOB1)}`);
  // What the servers burn with no load at all (gossip, heartbeats, timers): the floor under "srv CPU" below.
  const idleS = Math.min(SECONDS, 3);
  const idleBefore = [procCpu(agentPids()), etcd ? procCpu(etcdPids(etcd)) : undefined];
  await sleep(idleS * 1000);
  const idle = { shoalCores: (procCpu(agentPids()).cpuS - idleBefore[0].cpuS) / idleS, etcdCores: etcd ? (procCpu(etcdPids(etcd)).cpuS - idleBefore[1].cpuS) / idleS : NaN };
  log(`   idle, no load (${idleS} s): the 3 agents use ${fx(idle.shoalCores)} cores${etcd ? `, the 3 etcd members ${fx(idle.etcdCores)}` : ''}`);
  log(HEADER);
  const shoalTargets = ['a', 'b', 'c'].map((n) => agents.get(n).url);
  const cells = {};
  for (const c of CLIENTS) {
    cells[c] = {};
    cells[c].ceiling = await loadRun({ kind: 'empty', targets: [emptyUrl], clients: c }, [emptyServer.child.pid]);
    row('ceiling (empty server)', c, cells[c].ceiling, `load ${loadavg()}`);
    if (etcd) {
      const leader = await etcd.leader();
      if (!leader) throw new Error('etcd has no leader');
      cells[c].etcd = await loadRun({ kind: 'etcd-put', targets: [leader.url], clients: c }, etcdPids(etcd));
      row(`etcd, leader ${leader.name}`, c, cells[c].etcd, `load ${loadavg()}`);
    }
    cells[c].shoal1 = await loadRun({ kind: 'shoal-put', job: JOB1, service: SERVICE, collection: COLLECTION, targets: shoalTargets, clients: c }, agentPids());
    row('shoal, 1 partition', c, cells[c].shoal1, `${spread(cells[c].shoal1)}; load ${loadavg()}`);
    cells[c].shoal8 = await loadRun({ kind: 'shoal-put', job: JOB8, service: SERVICE, collection: COLLECTION, targets: shoalTargets, clients: c }, agentPids());
    row('shoal, 8 partitions', c, cells[c].shoal8, `${spread(cells[c].shoal8)}; load ${loadavg()}`);
  }
  log('');
  const goals = [];
  for (const c of CLIENTS) {
    const { ceiling, etcd: e, shoal1, shoal8 } = cells[c];
    const best = Math.max(e?.perS ?? 0, shoal1.perS, shoal8.perS);
    log(`  ${String(c).padStart(3)} clients: generator ceiling ${fx(ceiling.perS, 0)}/s, the fastest system reached ${fx(100 * best / ceiling.perS, 0)}% of it` +
      `${best > 0.5 * ceiling.perS ? '  (WARNING: over half the ceiling: the generator may limit the figures)' : ''}`);
    if (e) {
      for (const [label, s] of [['1 partition ', shoal1], ['8 partitions', shoal8]]) {
        log(`  ${String(c).padStart(3)} clients: shoal ${label} / etcd: writes/s ${fx(ratio(s.perS, e.perS))}x, p50 ${fx(ratio(s.p50Ms, e.p50Ms))}x, p99 ${fx(ratio(s.p99Ms, e.p99Ms))}x`);
      }
    }
  }
  const top = Math.max(...CLIENTS);
  const e = cells[top].etcd;
  if (e && top === 64) {
    const s8 = cells[top].shoal8;
    const s1 = cells[top].shoal1;
    goals.push({ name: `8 partitions, 64 clients: >= ${GOAL_8P_VS_ETCD}x etcd's writes/s at a p99 <= etcd's`, ok: ratio(s8.perS, e.perS) >= GOAL_8P_VS_ETCD && s8.p99Ms <= e.p99Ms,
      got: `${fx(ratio(s8.perS, e.perS))}x, p99 ${ms(s8.p99Ms)} vs ${ms(e.p99Ms)}` });
    goals.push({ name: `1 partition, 64 clients: >= ${GOAL_1P_VS_ETCD}x etcd's writes/s`, ok: ratio(s1.perS, e.perS) >= GOAL_1P_VS_ETCD, got: `${fx(ratio(s1.perS, e.perS))}x` });
  } else {
    goals.push({ name: 'write throughput goals (need etcd and 64 clients)', ok: undefined, got: etcd ? `clients ${CLIENTS.join(',')}` : 'etcd skipped' });
  }
  for (const g of goals) log(`  goal ${pass(g.ok)}  ${g.name}: ${g.got}`);
  results.throughput = { idle, cells, goals };
}

// ---------------------------------------------------------------------------------------------------------------
// Keys per partition, primaries

/** A key of `job` for every partition: Puts of random keys until each partition answered one (through agent a). */
async function keysPerPartition(job, partitions) {
  const keys = new Map();
  for (let i = 0; keys.size < partitions; i++) {
    if (i > 50 * partitions) throw new Error(`no key found for some partitions of ${job} after ${i} Puts: ${[...keys.keys()].join(',')}`);
    const key = `probe-${randomBytes(6).toString('hex')}`;
    const r = await rpc(agents.get('a'), 'State/Put', { job, service: SERVICE, collection: COLLECTION, key, value: b64('probe') });
    if (!keys.has(r.partition)) keys.set(r.partition, key);
  }
  return keys;
}

const agentById = (id) => [...agents.values()].find((a) => a.id === id);

// ---------------------------------------------------------------------------------------------------------------
// 3. Reads on the primary

async function reads(etcd) {
  const readSeconds = Math.min(SECONDS, 5);
  log(`\n== 3. Reads: 1 client, ${readSeconds} s per cell after a ${WARMUP_S} s warm-up, one key read over and over (${VALUE_BYTES}-byte value)`);
  const key = `read-${randomBytes(6).toString('hex')}`;
  const value = b64(randomBytes(VALUE_BYTES));
  const put = await rpc(agents.get('a'), 'State/Put', { job: JOB8, service: SERVICE, collection: COLLECTION, key, value });
  const part = (await listPartitions(agents.get('a'), JOB8)).find((p) => p.partition === put.partition);
  const primary = agentById(part?.primaryNodeId);
  if (!primary) throw new Error(`no live agent holds the primary of ${JOB8}/${put.partition} (${part?.primaryNodeId})`);
  const other = [...agents.values()].find((a) => a !== primary);
  const shoalGet = (consistency, via) => loadRun({ kind: 'shoal-get', job: JOB8, service: SERVICE, collection: COLLECTION, key, consistency, targets: [via.url], clients: 1, seconds: readSeconds }, agentPids());
  log(HEADER);
  const cells = {};
  cells.shoalLinearizable = await shoalGet('linearizable', primary);
  row(`shoal linearizable, ${primary.name}*`, 1, cells.shoalLinearizable, `* the primary of partition ${put.partition}`);
  cells.shoalLocal = await shoalGet('local', primary);
  row(`shoal local, ${primary.name}*`, 1, cells.shoalLocal);
  cells.shoalLinearizableForwarded = await shoalGet('linearizable', other);
  row(`shoal linearizable, ${other.name}`, 1, cells.shoalLinearizableForwarded, 'forwarded to the primary (reference)');
  let lease;
  try {
    lease = await rpc(primary, 'State/Get', { job: JOB8, service: SERVICE, collection: COLLECTION, key, consistency: 'lease' });
    log(`  shoal lease: the agent answered a lease read (${JSON.stringify(lease).slice(0, 120)}) but this benchmark does not measure it yet`);
  } catch (err) {
    lease = { error: err.message };
    log(`  ${'shoal lease'.padEnd(26)}       -  MISSING: lease reads are not built in Shoal yet (the agent answers: ${err.message.replace(/^State\/Get on \w+: /, '')})`);
  }
  cells.shoalLease = lease;
  if (etcd) {
    const leader = await etcd.leader();
    await etcd.put(leader, key, 'x'.repeat(VALUE_BYTES), 2_000);
    cells.etcdLinearizable = await loadRun({ kind: 'etcd-range', key, targets: [leader.url], clients: 1, seconds: readSeconds }, etcdPids(etcd));
    row(`etcd linearizable, ${leader.name}`, 1, cells.etcdLinearizable, 'leader');
    cells.etcdSerializable = await loadRun({ kind: 'etcd-range', key, serializable: true, targets: [leader.url], clients: 1, seconds: readSeconds }, etcdPids(etcd));
    row(`etcd serializable, ${leader.name}`, 1, cells.etcdSerializable, 'leader');
    log('');
    const c = cells;
    log(`  shoal linearizable / etcd linearizable: p50 ${fx(ratio(c.shoalLinearizable.p50Ms, c.etcdLinearizable.p50Ms))}x, p99 ${fx(ratio(c.shoalLinearizable.p99Ms, c.etcdLinearizable.p99Ms))}x`);
    log(`  shoal local        / etcd serializable: p50 ${fx(ratio(c.shoalLocal.p50Ms, c.etcdSerializable.p50Ms))}x, p99 ${fx(ratio(c.shoalLocal.p99Ms, c.etcdSerializable.p99Ms))}x`);
  }
  log(`  goal ${pass(undefined)}  a lease read faster than etcd's serializable read: lease reads are not built yet`);
  results.reads = { partition: put.partition, primary: primary.name, cells };
}

// ---------------------------------------------------------------------------------------------------------------
// 2. Failover

/** A short name for why a call failed: the agent's or etcd's error code, or the client's own deadline. */
function errorKind(err) {
  if (err?.name === 'TimeoutError' || err?.name === 'AbortError') return 'client deadline';
  const msg = String(err?.message ?? err);
  const code = /(ERR_[A-Z_]+)/.exec(msg);
  if (code) return code[1];
  const etcdMsg = /"(?:error|message)":"([^"]{1,60})/.exec(msg);
  if (etcdMsg) return etcdMsg[1];
  const net = /(ECONNREFUSED|ECONNRESET|fetch failed|other side closed)/.exec(msg + String(err?.cause?.code ?? ''));
  if (net) return net[1];
  const http = /HTTP (\d+)/.exec(msg);
  return http ? `HTTP ${http[1]}` : msg.slice(0, 60);
}

/** Writers that each put a random key every BACKGROUND_EVERY_MS through `targets()` in turn, until stopped. */
function backgroundLoad(write, targets) {
  let stop = false;
  const stats = { ok: 0, failed: 0 };
  const writers = Array.from({ length: BACKGROUND_WRITERS }, async (_, w) => {
    let i = w;
    while (!stop) {
      const t = performance.now();
      const ts = targets();
      try {
        await write(ts[i++ % ts.length], `bg-${randomBytes(6).toString('hex')}`);
        stats.ok++;
      } catch (_err) {
        stats.failed++;
      }
      await sleep(Math.max(0, BACKGROUND_EVERY_MS - (performance.now() - t)));
    }
  });
  return { stats, async stop() {
    stop = true;
    await Promise.all(writers);
  } };
}

/** Probes `write(via)` through the survivors in turn until one succeeds; also polls `observe()` every 20 ms. */
async function timeFailover(t0, survivors, write, observe) {
  let leaderSeenMs = NaN;
  let lastObserved = '';
  let done = false;
  const poller = (async () => {
    while (!done) {
      const slot = performance.now();
      try {
        const r = await observe();
        lastObserved = r.text;
        if (r.newLeader) {
          leaderSeenMs = performance.now() - t0;
          return;
        }
      } catch (err) {
        lastObserved = `error: ${String(err.message ?? err).slice(0, 120)}`;
      }
      await sleep(Math.max(0, 20 - (performance.now() - slot)));
    }
  })();
  const errorKinds = {};
  let attempts = 0;
  let result;
  try {
    for (;;) {
      const via = survivors[attempts % survivors.length];
      attempts++;
      const slot = performance.now();
      try {
        await write(via);
        result = { ms: performance.now() - t0, via: via.name };
        break;
      } catch (err) {
        const kind = errorKind(err);
        errorKinds[kind] = (errorKinds[kind] ?? 0) + 1;
        if (performance.now() - t0 > FAILOVER_TIMEOUT_MS) {
          result = { ms: NaN, via: '-', lastErr: String(err.message ?? err).slice(0, 300) };
          break;
        }
        await sleep(Math.max(0, 10 - (performance.now() - slot)));
      }
    }
  } finally {
    await Promise.race([poller, sleep(3_000)]);
    done = true;
    await poller;
  }
  return { ...result, attempts, errorKinds, leaderSeenMs, lastObserved };
}

async function shoalFailoverRun(run, probeKeys, groupPrefix) {
  const parts = await listPartitions(agents.get('a'), JOB8);
  // The victim rotates over a, b, c; the partition is one it leads.
  const order = ['a', 'b', 'c'];
  let victim;
  let part;
  for (let k = 0; k < order.length && !part; k++) {
    victim = agents.get(order[(run + k) % order.length]);
    part = parts.find((p) => p.primaryNodeId === victim.id);
  }
  if (!part) throw new Error(`no agent holds a primary of ${JOB8}: ${JSON.stringify(parts.map((p) => p.primaryNodeId))}`);
  const P = part.partition;
  const key = probeKeys.get(P);
  const survivors = [...agents.values()].filter((a) => a !== victim);
  const [writer, observer] = survivors;
  const led = parts.filter((p) => p.primaryNodeId === victim.id).length;
  const bg = backgroundLoad((via, k) => rpc(via, 'State/Put', { job: JOB8, service: SERVICE, collection: COLLECTION, key: k, value: b64('bg') }, 2_000), () => survivors);
  await sleep(500);
  const t0 = performance.now();
  process.kill(victim.child.pid, 'SIGKILL');
  const r = await timeFailover(t0, [writer, observer], async (via) => {
    const ans = await rpc(via, 'State/Put', { job: JOB8, service: SERVICE, collection: COLLECTION, key, value: b64(`after-${run}`) }, FAILOVER_DEADLINE_MS);
    if (ans.partition !== P) throw new Error(`the probe key answered partition ${ans.partition}, expected ${P}`);
  }, async () => {
    const st = await rpc(observer, 'Partitions/Replica', { group: `${groupPrefix}${P}` }, 200);
    return { newLeader: st.leader !== '' && st.leader !== victim.id, text: `${observer.name}: leader ${shortId(st.leader)} term ${st.term}` };
  });
  await bg.stop();
  await kill(victim);
  const info = { system: 'shoal', run: run + 1, victim: victim.name, partition: P, primariesLed: led, ...r, background: bg.stats };
  log(`  run ${run + 1} shoal  ${secs(r.ms).padStart(9)}  killed ${victim.name} (primary of ${led} of 8 partitions), probed partition ${P} via ${writer.name}/${observer.name}, ` +
    `${r.attempts} attempts, new primary known to ${observer.name} at ${secs(r.leaderSeenMs)}; failed probes: ${fmtKinds(r.errorKinds)}; ` +
    `background ${bg.stats.ok} ok / ${bg.stats.failed} failed${Number.isFinite(r.ms) ? '' : `; last error: ${r.lastErr}; observer: ${r.lastObserved}`}`);
  // Back to full strength for the next run (and the sections after this one).
  const t1 = performance.now();
  await startAgent(victim.name);
  await waitAllReady(`every partition ready again after ${victim.name} restarted`);
  info.recoveredMs = performance.now() - t1;
  if (VERBOSE) log(`         ${victim.name} restarted; every partition ready with 3 replicas ${secs(info.recoveredMs)} after the restart`);
  return info;
}

async function etcdFailoverRun(etcd, run) {
  const leader = await etcd.leader();
  if (!leader) throw new Error('etcd has no leader');
  const survivors = etcd.members.filter((m) => m !== leader);
  const [writer, observer] = survivors;
  const bg = backgroundLoad((via, k) => etcd.put(via, k, 'bg', 2_000), () => survivors);
  await sleep(500);
  const victimId = leader.id;
  const t0 = performance.now();
  process.kill(leader.proc.child.pid, 'SIGKILL');
  const r = await timeFailover(t0, [writer, observer], (via) => etcd.put(via, 'bench/probe', `after-${run}`, FAILOVER_DEADLINE_MS), async () => {
    const st = await etcd.status(observer, 200);
    return { newLeader: st.leader && st.leader !== '0' && st.leader !== victimId, text: `${observer.name}: leader ${st.leader} term ${st.raftTerm}` };
  });
  await bg.stop();
  await etcd.kill(leader);
  log(`  run ${run + 1} etcd   ${secs(r.ms).padStart(9)}  killed ${leader.name} (the leader), probed via ${writer.name}/${observer.name}, ` +
    `${r.attempts} attempts, new leader known to ${observer.name} at ${secs(r.leaderSeenMs)}; failed probes: ${fmtKinds(r.errorKinds)}; ` +
    `background ${bg.stats.ok} ok / ${bg.stats.failed} failed${Number.isFinite(r.ms) ? '' : `; last error: ${r.lastErr}`}`);
  await etcd.restart(leader);
  return { system: 'etcd', run: run + 1, victim: leader.name, ...r, background: bg.stats };
}

const fmtKinds = (kinds) => Object.entries(kinds).map(([k, n]) => `${n} x ${k}`).join(', ') || 'none';

async function failover(etcd) {
  log(`\n== 2. Failover: ${RUNS} run(s) per system; a light load (${BACKGROUND_WRITERS} writers, ~${Math.round(BACKGROUND_WRITERS * 1000 / BACKGROUND_EVERY_MS)} writes/s) through the survivors;`);
  log(`   SIGKILL the primary's agent (Shoal) / the leader (etcd), then writes to that partition through the survivors in turn (${FAILOVER_DEADLINE_MS} ms deadline each, retried at once)`);
  const probeKeys = await keysPerPartition(JOB8, 8);
  const { groupPrefix } = await rpc(agents.get('a'), 'Partitions/Placement', { job: JOB8, service: SERVICE });
  const runs = [];
  for (let i = 0; i < RUNS; i++) {
    const order = i % 2 === 0 ? ['shoal', 'etcd'] : ['etcd', 'shoal'];
    for (const sys of order) {
      if (sys === 'shoal') runs.push(await shoalFailoverRun(i, probeKeys, groupPrefix));
      else if (etcd) runs.push(await etcdFailoverRun(etcd, i));
    }
  }
  const of = (sys) => runs.filter((r) => r.system === sys);
  const list = (xs) => xs.map((r) => (Number.isFinite(r.ms) ? (r.ms / 1000).toFixed(3) : 'timeout')).join(', ');
  const medShoal = median(of('shoal').map((r) => r.ms).filter(Number.isFinite));
  const medEtcd = median(of('etcd').map((r) => r.ms).filter(Number.isFinite));
  const seenShoal = median(of('shoal').map((r) => r.leaderSeenMs).filter(Number.isFinite));
  const seenEtcd = median(of('etcd').map((r) => r.leaderSeenMs).filter(Number.isFinite));
  log('');
  log(`  ${'system'.padEnd(8)} ${'median'.padStart(9)} ${'new primary known'.padStart(18)}  samples (s)`);
  log(`  ${'shoal'.padEnd(8)} ${secs(medShoal).padStart(9)} ${secs(seenShoal).padStart(18)}  ${list(of('shoal'))}`);
  if (etcd) {
    log(`  ${'etcd'.padEnd(8)} ${secs(medEtcd).padStart(9)} ${secs(seenEtcd).padStart(18)}  ${list(of('etcd'))}`);
    log(`  ratio shoal/etcd: ${fx(ratio(medShoal, medEtcd), 3)}`);
  } else {
    log('  etcd skipped (etcd 3.4 on a 2-core Debian 12 machine: 1.3-1.4 s, ANCHORS.md)');
  }
  const goal = { name: `median failover <= ${GOAL_FAILOVER_MS / 1000} s`, ok: Number.isFinite(medShoal) ? medShoal <= GOAL_FAILOVER_MS : false, got: secs(medShoal) };
  log(`  goal ${pass(goal.ok)}  ${goal.name}: ${goal.got}`);
  results.failover = { runs, medianShoalMs: medShoal, medianEtcdMs: medEtcd, goals: [goal] };
}

// ---------------------------------------------------------------------------------------------------------------
// 4. Rebuild

async function rebuild() {
  log(`\n== 4. Rebuild: 4 agents; job ${JOB_REBUILD}, ${REBUILD_PARTITIONS} partitions x 3 replicas of ~${REBUILD_MB} MB each; SIGKILL the agent holding most of them`);
  if (CHUNKED_SNAPSHOTS) {
    log(`   snapshots are fetched in chunks of ${fx(LIMITS.partitionSnapshotChunkBytes / MiB)} MiB (this build); the issue's figure: --rebuild-mb 64 (16 replicas of 64 MB)`);
  } else {
    log(`   LIMITATION: a partition snapshot travels in ONE Raft message, so a replica over LIMITS.maxEnvelopePayloadBytes (${(LIMITS.maxEnvelopePayloadBytes / MiB).toFixed(2)} MiB)`);
    log('   cannot be rebuilt yet; the issue\'s 16 replicas of 64 MB cannot be measured until snapshots are streamed in chunks.');
  }
  const a = agents.get('a');
  const tJoin = performance.now();
  await startAgent('d');
  await waitUntil('4 ready nodes', async () => (await rpc(a, 'Nodes/List', {})).nodes.filter((n) => n.status === 'ready').length === 4, 120_000, 250);
  await waitAllReady('every partition ready after d joined');
  const spreadNow = async () => {
    const parts = await listPartitions(a, undefined);
    return ['a', 'b', 'c', 'd'].map((n) => {
      const id = agents.get(n).id;
      return `${n} ${parts.filter((p) => p.members.some((m) => m.nodeId === id)).length}/${parts.filter((p) => p.primaryNodeId === id).length}`;
    }).join(', ');
  };
  log(`   replicas/primaries per agent once d joined (every job): ${await spreadNow()}`);
  const runMs = await runStatefulJob(a, JOB_REBUILD, REBUILD_PARTITIONS);
  log(`   d joined and every partition was ready ${secs(performance.now() - tJoin)} later; job run ${JOB_REBUILD}: ${secs(runMs)}`);

  // Fill each partition: values routed to a partition by a position in its int64 range (partitionKind int64).
  const parts = await listPartitions(a, JOB_REBUILD);
  const perPartition = Math.ceil((REBUILD_MB * MiB) / REBUILD_VALUE_BYTES);
  const value = b64(randomBytes(REBUILD_VALUE_BYTES));
  const writes = [];
  for (const p of parts) {
    const low = /^\[(-?\d+),/.exec(p.range)?.[1];
    if (low === undefined) throw new Error(`partition ${p.partition} of ${JOB_REBUILD} has no int64 range: ${p.range}`);
    for (let i = 0; i < perPartition; i++) writes.push({ partition: p.partition, low, key: `fill-${p.partition}-${i}` });
  }
  const tFill = performance.now();
  const order = ['a', 'b', 'c', 'd'];
  let next = 0;
  await Promise.all(Array.from({ length: 8 }, async (_, w) => {
    while (next < writes.length) {
      const x = writes[next++];
      const via = agents.get(order[(next + w) % order.length]);
      const r = await rpc(via, 'State/Put', { job: JOB_REBUILD, service: SERVICE, collection: COLLECTION, key: x.key, value, partitionKind: 'int64', partitionKey: x.low }, 10_000);
      if (r.partition !== x.partition) throw new Error(`a fill write for partition ${x.partition} landed in ${r.partition}`);
    }
  }));
  const fillMs = performance.now() - tFill;
  await waitAllReady('every partition ready after the fill');
  const before = await listPartitions(a, undefined);
  const mine = before.filter((p) => p.job === JOB_REBUILD);
  const sizes = mine.map((p) => Number(p.sizeBytes));
  log(`   filled ${writes.length} x ${REBUILD_VALUE_BYTES / 1024} KiB in ${secs(fillMs)}; replica sizes ${fx(Math.min(...sizes) / MiB)}-${fx(Math.max(...sizes) / MiB)} MiB`);
  log(`   replicas/primaries per agent with ${JOB_REBUILD} (every job): ${await spreadNow()}`);

  // The victim: the agent other than a (which the benchmark asks) holding most replicas of the job; d on a tie.
  const count = (name, list) => list.filter((p) => p.members.some((m) => m.nodeId === agents.get(name).id)).length;
  const victim = agents.get(['d', 'b', 'c'].sort((x, y) => count(y, mine) - count(x, mine))[0]);
  const heldMine = mine.filter((p) => p.members.some((m) => m.nodeId === victim.id));
  const heldAll = before.filter((p) => p.members.some((m) => m.nodeId === victim.id));
  const bytesMine = heldMine.reduce((s, p) => s + Number(p.sizeBytes), 0);
  const bytesAll = heldAll.reduce((s, p) => s + Number(p.sizeBytes), 0);
  const victimId = victim.id;
  const t0 = performance.now();
  process.kill(victim.child.pid, 'SIGKILL');
  await kill(victim);
  let deadMs = NaN;
  let mineMs = NaN;
  let allMs = NaN;
  let last = '';
  while (performance.now() - t0 < REBUILD_TIMEOUT_MS && !Number.isFinite(allMs)) {
    const slot = performance.now();
    try {
      if (!Number.isFinite(deadMs)) {
        const { members } = await rpc(a, 'Members/List', {}, 2_000);
        if (members.find((m) => m.id === victimId)?.status === 'MEMBER_STATUS_DEAD') deadMs = performance.now() - t0;
      }
      const now = await listPartitions(a, undefined, 5_000);
      const whyMine = notReady(now.filter((p) => p.job === JOB_REBUILD), victimId);
      if (whyMine === '' && !Number.isFinite(mineMs)) mineMs = performance.now() - t0;
      last = notReady(now, victimId);
      if (last === '') allMs = performance.now() - t0;
    } catch (err) {
      last = `error: ${String(err.message ?? err).slice(0, 200)}`;
    }
    await sleep(Math.max(0, 250 - (performance.now() - slot)));
  }
  const mbps = (bytes, t) => (Number.isFinite(t) && t > 0 ? bytes / MiB / (t / 1000) : NaN);
  log('');
  log(`  killed ${victim.name}: it held ${heldMine.length} replicas of ${JOB_REBUILD} (${fx(bytesMine / MiB)} MiB) and ${heldAll.length} replicas in all (${fx(bytesAll / MiB)} MiB)`);
  log(`  ${'step'.padEnd(46)} ${'since kill'.padStart(10)}  ${'MiB/s'.padStart(7)}`);
  log(`  ${'gossip on a marks it dead'.padEnd(46)} ${secs(deadMs).padStart(10)}`);
  log(`  ${`${JOB_REBUILD}: every partition 3 replicas, none on it`.padEnd(46)} ${secs(mineMs).padStart(10)}  ${fx(mbps(bytesMine, mineMs)).padStart(7)}` +
    `  (${fx(mbps(bytesMine, mineMs - deadMs))} MiB/s after detection)`);
  log(`  ${'all jobs: every partition 3 replicas'.padEnd(46)} ${secs(allMs).padStart(10)}  ${fx(mbps(bytesAll, allMs)).padStart(7)}` +
    `${Number.isFinite(allMs) ? '' : `  NOT DONE within ${REBUILD_TIMEOUT_MS / 1000} s: ${last}`}`);
  const comparable = heldMine.length >= 16 && REBUILD_MB >= 64;
  const goal = comparable
    ? { name: `rebuild of ${heldMine.length} replicas of ~${REBUILD_MB} MB within ${GOAL_REBUILD_S} s`, ok: Number.isFinite(mineMs) && mineMs <= GOAL_REBUILD_S * 1000, got: secs(mineMs) }
    : { name: `rebuild within ${GOAL_REBUILD_S} s (issue: 16 replicas of 64 MB; here ${heldMine.length} of ~${REBUILD_MB} MB: not comparable)`, ok: undefined, got: secs(mineMs) };
  log(`  goal ${pass(goal.ok)}  ${goal.name}: ${goal.got}`);
  results.rebuild = { victim: victim.name, replicasOfJob: heldMine.length, bytesOfJob: bytesMine, replicasAll: heldAll.length, bytesAll, deadMs, mineMs, allMs, last, fillMs, sizes, goals: [goal] };
}

// ---------------------------------------------------------------------------------------------------------------

function agentWarnings() {
  const out = [];
  for (const a of agents.values()) {
    if (a.warn.length === 0) continue;
    const byMsg = new Map();
    for (const line of a.warn) {
      let msg = line.slice(0, 160);
      try {
        const j = JSON.parse(line);
        msg = `${j.level >= 50 ? 'ERROR' : 'WARN'} ${j.msg ?? ''}`;
      } catch {
        // Not JSON: keep the raw start of the line.
      }
      const e = byMsg.get(msg) ?? { n: 0, first: line };
      e.n++;
      byMsg.set(msg, e);
    }
    for (const [msg, e] of byMsg) out.push(`  ${a.name}: ${e.n} x ${msg}${VERBOSE ? `\n      first: ${e.first.slice(0, 600)}` : ''}`);
  }
  return out;
}

let etcd;
try {
  const version = SKIP_ETCD ? undefined : etcdVersion();
  if (!SKIP_ETCD && !version) throw new Error('etcd is not installed: apt-get install -y --no-install-recommends etcd-server etcd-client (or pass --skip-etcd)');
  log(`# partitions benchmark (issue 12); ${QUICK ? 'QUICK (smoke test: figures are not to be quoted); ' : ''}load ${loadavg()}; ${(await import('node:os')).cpus().length} CPUs`);
  await startCluster();
  if (!SKIP_ETCD) {
    etcd = await startEtcdCluster({ dir: tempDir('etcd'), hosts: [1, 2, 3].map((i) => `${ETCD_NET}.${i}`) });
    log(`# etcd: ${version}, 3 members on ${ETCD_NET}.1-3 (heartbeat 100 ms, election 1000 ms, fsync on)`);
  }
  const emptyUrl = await startEmptyServer();
  await throughput(etcd, emptyUrl);
  await reads(etcd);
  if (SKIP_FAILOVER) log('\n== 2. Failover: skipped (--skip-failover)');
  else await failover(etcd);
  if (SKIP_REBUILD) log('\n== 4. Rebuild: skipped (--skip-rebuild)');
  else await rebuild();
  const warnings = agentWarnings();
  log(`\n== Agent warnings and errors (log level ${VERBOSE ? 'info' : 'warn'}): ${warnings.length === 0 ? 'none' : ''}`);
  for (const w of warnings) log(w);
  results.agentWarnings = warnings;
  log(`\n${JSON.stringify(results)}`);
} catch (err) {
  console.error(`partitions bench: ${err.stack ?? err}`);
  for (const a of agents.values()) console.error(`--- agent ${a.name} (pid ${a.child.pid}, log ${a.logFile}) ---\n${a.output()}`);
  process.exitCode = 1;
} finally {
  if (KEEP_LOGS) {
    mkdirSync(KEEP_LOGS, { recursive: true });
    for (const a of agents.values()) if (existsSync(a.logFile)) copyFileSync(a.logFile, path.join(KEEP_LOGS, path.basename(a.logFile)));
    console.error(`agent logs kept in ${KEEP_LOGS}`);
  }
  emptyServer?.child.stdin?.end();
  if (etcd) await etcd.stop().catch(() => undefined);
  cleanup();
}
process.exit(process.exitCode ?? 0);
