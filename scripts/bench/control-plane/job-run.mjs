// Control-plane deployment benchmark: how long it takes to get N replicas of a service running, Shoal against
// Docker Swarm, measured in the same run with the rounds interleaved (each round rotates which side goes first), so
// noise on this shared machine hits every side alike.
//
//   npm run -s bench:control-plane                     (3 rounds after one warm-up round, 30 replicas)
//   node scripts/bench/control-plane/job-run.mjs [rounds]      env: ROUNDS, REPLICAS, WARMUP=0, VERBOSE=1
//
// Sides:
//   shoal-process  a 3-agent Shoal cluster on loopback (--bootstrap-expect 3); `shoal job run FILE` of a service of N
//                  replicas of `/bin/sh -c "exec sleep 100000"` with the process driver.
//   swarm          Docker Swarm, single-node swarm on a private dockerd started here: `docker service create
//                  --detach=false --replicas N --network host IMAGE sleep 100000`.
//   shoal-docker   the same Shoal cluster (its agents use that same private dockerd through --docker-socket): N replicas
//                  of the same image and command with the docker driver, network_mode host: like for like with swarm.
//
// Two figures per side and round, both counted from the moment the CLI is launched:
//   cli  until the CLI exits 0. `shoal job run` waits until every replica runs (it polls every 300 ms);
//        `docker service create --detach=false` waits until the service converged, and then for the service's update
//        monitor to see the tasks stay up: that monitor is set to 1 ms here (--update-monitor 1ms), otherwise the CLI
//        adds a fixed 5 s "verify that tasks are stable" wait that has nothing to do with deployment speed.
//   api  until the system's own API reports N replicas running, polled every 20 ms from this process
//        (Shoal: Jobs/Get, allocations with client status "running"; Swarm: GET /tasks, state "running"), so neither
//        CLI's poll interval hides the real convergence time.
// Between rounds each side is torn down (`shoal job stop NAME`, which waits; `docker service rm`), and the time until
// the engine or the host runs none of its replicas any more is printed too, for information (stop grace 1 s on every
// side). Shoal keeps the stopped containers of its last tasks for their logs (as Nomad does); Swarm removes them.
//
// Small reservations (0.01 CPU, 4 MiB) on every side so N replicas fit on this 2-core machine.
// When Swarm cannot run here the reason is printed and the peer becomes N parallel `docker run -d` through the CLI,
// clearly labelled as not Swarm. Needs root, dockerd, the docker CLI and a static busybox (for the image) for the
// docker sides; without them only shoal-process runs.
//
// Everything started here (agents, dockerd and its containerd, containers, task processes and their cgroups, mounts, the swarm's
// docker_gwbridge interface when this run created it, temp dirs) is removed at the end, also on failure or ^C;
// only pids started here are killed.
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, copyFileSync, existsSync, mkdirSync, openSync, readFileSync, readdirSync, readlinkSync, symlinkSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import Docker from 'dockerode';
import { ShoalClient } from '../../../dist/rpc/index.js';
import { SHOAL_BIN, cleanup, freeUdpPort, keygen, kill, median, onCleanup, pidAlive, sleep, start, startShoal, tempDir, waitUntil } from '../lib/harness.mjs';
import { removeTaskCgroups } from '../lib/harness.mjs';

const ROUNDS = Number(process.argv[2] ?? process.env.ROUNDS ?? 3);
const REPLICAS = Number(process.env.REPLICAS ?? 30);
const WARMUP = process.env.WARMUP !== '0';
const VERBOSE = process.env.VERBOSE === '1';
const AGENTS = 3;
const IMAGE = 'shoal-bench/busybox:1';
const API_POLL_MS = 20;
const CONVERGE_TIMEOUT_MS = 180_000;
const STOP_TIMEOUT_MS = 120_000;
if (!Number.isInteger(ROUNDS) || ROUNDS < 1) throw new Error(`rounds must be a positive integer (argv[2] or ROUNDS), got "${process.argv[2] ?? process.env.ROUNDS}"`);
if (!Number.isInteger(REPLICAS) || REPLICAS < 1) throw new Error(`REPLICAS must be a positive integer, got "${process.env.REPLICAS}"`);

const sec = (ms) => (ms === undefined || Number.isNaN(ms) ? '-' : `${(ms / 1000).toFixed(2)} s`);
const log = (...a) => console.log(...a);

const root = tempDir('control-plane');

// ---------------------------------------------------------------------------------------------------------------
// Task processes of the process driver are spawned detached (they outlive a SIGKILLed agent by design). Ours are the
// ones whose stdout goes to a log file under this run's temp dir: after the agents are gone, those are killed.
function killOurTaskProcesses() {
  let killed = 0;
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    let target;
    try {
      target = readlinkSync(`/proc/${entry}/fd/1`);
    } catch {
      continue;
    }
    if (!target.startsWith(`${root}/`)) continue;
    try {
      process.kill(Number(entry), 'SIGKILL');
      killed++;
    } catch {
      // Gone meanwhile.
    }
  }
  return killed;
}

// The process driver gives each task a cgroup named after its allocation and removes it only when it destroys the
// task; the last stopped tasks are kept (for their logs) until the agent collects them, so when the agents are gone
// their empty cgroups remain. Those of this run's allocations are removed here.
const ourAllocIds = new Set();
function removeOurCgroups() {
  removeTaskCgroups(ourAllocIds);
}

onCleanup(() => {
  const n = killOurTaskProcesses();
  if (n > 0) console.error(`cleanup: killed ${n} task processes left by the agents`);
  removeOurCgroups();
});

// ---------------------------------------------------------------------------------------------------------------
// A private dockerd (as the tests start it), and the busybox image made without any registry.
const dockerWanted = process.getuid?.() === 0 && spawnSync('sh', ['-c', 'command -v dockerd && command -v docker']).status === 0
  && ['/bin/busybox', '/usr/bin/busybox'].some((p) => existsSync(p));
let engine = null;

const GWBRIDGE = 'docker_gwbridge';
const linkExists = (name) => spawnSync('ip', ['link', 'show', name], { stdio: 'ignore' }).status === 0;

function dockerCliSync(args, timeout = 60_000) {
  return spawnSync('docker', ['-H', engine.host, ...args], { encoding: 'utf8', timeout });
}

/** Stops the private engine and removes what it left (synchronous: it also runs from the exit handler). */
function stopEngineSync() {
  if (!engine) return;
  const e = engine;
  if (pidAlive(e.pid)) {
    if (e.swarm) dockerCliSync(['swarm', 'leave', '--force'], 30_000);
    const ids = (dockerCliSync(['ps', '-aq']).stdout ?? '').split('\n').filter(Boolean);
    if (ids.length > 0) dockerCliSync(['rm', '-f', ...ids], 120_000);
    process.kill(e.pid, 'SIGTERM');
    for (let i = 0; i < 200 && pidAlive(e.pid); i++) spawnSync('sleep', ['0.1']);
    if (pidAlive(e.pid)) process.kill(e.pid, 'SIGKILL');
  }
  // dockerd's own containerd, should it have outlived dockerd.
  const ctdPidFile = path.join(e.dir, 'exec', 'containerd', 'containerd.pid');
  if (existsSync(ctdPidFile)) {
    const pid = Number(readFileSync(ctdPidFile, 'utf8').trim());
    if (pid > 0 && pidAlive(pid) && readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(e.dir)) process.kill(pid, 'SIGKILL');
  }
  const mounts = readFileSync('/proc/self/mountinfo', 'utf8').split('\n').map((l) => l.split(' ')[4]).filter((m) => m && m.startsWith(`${e.dir}/`));
  for (const m of mounts.sort().reverse()) spawnSync('umount', ['-l', m]);
  // The swarm creates docker_gwbridge (a host interface) and leaves it behind; remove it when this run made it.
  if (!e.hadGwbridge && linkExists(GWBRIDGE)) spawnSync('ip', ['link', 'del', GWBRIDGE]);
  engine = null;
}
onCleanup(stopEngineSync);

async function freeTcpPort() {
  const server = net.createServer();
  await new Promise((resolve, reject) => server.listen(0, '127.0.0.1', resolve).once('error', reject));
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

async function startEngine() {
  const dir = path.join(root, 'docker');
  mkdirSync(dir);
  const socketPath = path.join(dir, 'docker.sock');
  const hadGwbridge = linkExists(GWBRIDGE);
  const logFd = openSync(path.join(dir, 'dockerd.log'), 'a');
  const child = spawn('dockerd', ['--host', `unix://${socketPath}`, '--data-root', path.join(dir, 'data'), '--exec-root', path.join(dir, 'exec'),
    '--pidfile', path.join(dir, 'dockerd.pid'), '--bridge=none', '--iptables=false'], { stdio: ['ignore', logFd, logFd], detached: true });
  closeSync(logFd);
  child.unref();
  engine = { pid: child.pid, dir, socketPath, host: `unix://${socketPath}`, swarm: false, hadGwbridge, docker: new Docker({ socketPath }) };
  await waitUntil('the private dockerd to answer', () => engine.docker.ping().then(() => true), 60_000, 100)
    .catch((err) => {
      throw new Error(`${err.message}\n${readFileSync(path.join(dir, 'dockerd.log'), 'utf8').slice(-2000)}`);
    });
  const imageRoot = path.join(dir, 'image-root');
  mkdirSync(path.join(imageRoot, 'bin'), { recursive: true });
  copyFileSync(['/bin/busybox', '/usr/bin/busybox'].find((p) => existsSync(p)), path.join(imageRoot, 'bin', 'busybox'));
  for (const a of ['sh', 'sleep']) symlinkSync('busybox', path.join(imageRoot, 'bin', a));
  const tar = spawn('tar', ['-C', imageRoot, '-c', '.'], { stdio: ['ignore', 'pipe', 'inherit'] });
  const [repo, tag] = IMAGE.split(':');
  const stream = await engine.docker.importImage(tar.stdout, { repo, tag });
  await new Promise((resolve, reject) => engine.docker.modem.followProgress(stream, (err) => (err ? reject(err) : resolve())));
  engine.version = (await engine.docker.version()).Version;
}

/** Single-node swarm on loopback. Returns null when it works, else the reason it cannot run here. */
async function initSwarm() {
  const listen = `127.0.0.1:${await freeTcpPort()}`;
  // dockerd accepts a data path (VXLAN) port only in 1024-49151; the kernel's ephemeral ports lie above that.
  const dataPathPort = await freeUdpPort('127.0.0.1', { min: 20_000, max: 49_151 });
  const r = dockerCliSync(['swarm', 'init', '--advertise-addr', '127.0.0.1', '--listen-addr', listen, '--data-path-port', String(dataPathPort)]);
  if (r.status !== 0) return `\`docker swarm init --advertise-addr 127.0.0.1 --listen-addr ${listen}\` failed (${r.status ?? r.signal}): ${(r.stderr || r.stdout || r.error?.message || '').trim()}`;
  engine.swarm = true;
  return null;
}

function dockerCli(args) {
  const p = start('docker', ['-H', engine.host, ...args]);
  return p.exited.then((code) => {
    if (code !== 0) throw new Error(`docker ${args.join(' ')} exited ${code}\n${p.output()}`);
  });
}

// ---------------------------------------------------------------------------------------------------------------
// The Shoal cluster.
let agents = [];
let client = null;

async function startCluster() {
  const keyFile = keygen(root);
  const extraArgs = ['--bootstrap-expect', String(AGENTS), ...(engine ? ['--docker-socket', engine.socketPath] : [])];
  let first = null;
  for (let i = 1; i <= AGENTS; i++) {
    const bind = `127.0.0.1:${await freeUdpPort('127.0.0.1')}`;
    const a = await startShoal({ name: `cp-${i}`, dataDir: path.join(root, `agent-${i}`), bind, join: first?.bind, keyFile, extraArgs });
    a.bind = bind;
    first ??= a;
    agents.push(a);
  }
  client = new ShoalClient({ address: first.url, timeoutMs: 5_000 });
  const wantDrivers = engine ? ['process', 'docker'] : ['process'];
  let last = '';
  await waitUntil(`${AGENTS} ready, eligible nodes with the drivers ${wantDrivers.join(', ')}`, async () => {
    const { nodes } = await client.nodes.list({});
    last = nodes.map((n) => `${n.name}:${n.status}:${n.eligible ? 'eligible' : 'ineligible'}:[${n.drivers.join(',')}]`).join(' ');
    return nodes.filter((n) => n.status === 'ready' && n.eligible && wantDrivers.every((d) => n.drivers.includes(d))).length === AGENTS;
  }, 120_000, 200).catch((err) => {
    throw new Error(`${err.message}; nodes: ${last || 'none listed'}`);
  });
}

function agentLogs() {
  return agents.map((a) => `--- agent ${a.name} (pid ${a.child.pid}) ---\n${a.output()}`).join('\n');
}

function jobFile(name, driver) {
  const file = path.join(root, `${name}.yaml`);
  const service = driver === 'process'
    ? ['    x-shoal: { driver: process }', '    command: ["/bin/sh", "-c", "exec sleep 100000"]']
    : ['    x-shoal: { driver: docker }', `    image: ${IMAGE}`, '    command: ["sleep", "100000"]', '    network_mode: host'];
  writeFileSync(file, [
    `name: ${name}`,
    'services:',
    '  s:',
    ...service,
    '    stop_grace_period: 1s',
    '    deploy:',
    `      replicas: ${REPLICAS}`,
    '      resources:',
    '        reservations: { cpus: "0.01", memory: 4M }',
    '',
  ].join('\n'));
  return file;
}

function shoalCli(args) {
  return start(process.execPath, [SHOAL_BIN, '--address', agents[0].url, ...args]);
}

// ---------------------------------------------------------------------------------------------------------------
// One measurement: launch the CLI, poll the API every 20 ms meanwhile; both times count from the launch.
async function measure(what, launch, apiConverged) {
  const t0 = performance.now();
  const cli = launch();
  let apiMs;
  let lastApiError;
  const poller = (async () => {
    const deadline = t0 + CONVERGE_TIMEOUT_MS;
    while (performance.now() < deadline) {
      try {
        if (await apiConverged()) {
          apiMs = performance.now() - t0;
          return;
        }
      } catch (err) {
        lastApiError = err;
      }
      await sleep(API_POLL_MS);
    }
  })();
  const timer = setTimeout(() => void kill(cli), CONVERGE_TIMEOUT_MS);
  const code = await cli.exited;
  clearTimeout(timer);
  const cliMs = performance.now() - t0;
  if (code !== 0) throw new Error(`${what}: the CLI exited ${code} after ${sec(cliMs)}\n${cli.output()}`);
  await poller;
  if (apiMs === undefined) {
    throw new Error(`${what}: the API never reported ${REPLICAS} running within ${CONVERGE_TIMEOUT_MS / 1000} s${lastApiError ? `; last error: ${lastApiError.message}` : ''}`);
  }
  return { cliMs, apiMs };
}

const shoalRunning = (name) => async () => {
  const got = await client.jobs.get({ name }, { timeoutMs: 2_000 });
  for (const a of got.allocations) ourAllocIds.add(a.id);
  return got.allocations.filter((a) => a.desiredStatus === 'run' && a.clientStatus === 'running').length >= REPLICAS;
};

async function shoalRound(name, driver) {
  const file = jobFile(name, driver);
  const r = await measure(`shoal-${driver} ${name}`, () => shoalCli(['job', 'run', file]), shoalRunning(name));
  const t0 = performance.now();
  const stop = shoalCli(['job', 'stop', name]);
  const code = await stop.exited;
  if (code !== 0) throw new Error(`shoal job stop ${name} exited ${code}\n${stop.output()}`);
  r.stopMs = performance.now() - t0;
  for (const a of (await client.jobs.get({ name })).allocations) ourAllocIds.add(a.id);
  if (driver === 'docker') {
    // `job stop` returns once the allocations are reported stopped; also wait until the engine runs none of them.
    // (Shoal keeps the stopped containers of its last tasks, for their logs, as Nomad does: they are not removed.)
    await waitUntil(`the containers of ${name} to stop`, async () => (await engine.docker.listContainers({ filters: { label: ['shoal.managed=true'] } })).length === 0, STOP_TIMEOUT_MS, 50);
    r.stopMs = performance.now() - t0;
  }
  return r;
}

async function swarmRound(name) {
  const r = await measure(`swarm ${name}`, () => start('docker', ['-H', engine.host, 'service', 'create', '--detach=false', '--quiet', '--update-monitor', '1ms',
    '--replicas', String(REPLICAS), '--network', 'host', '--stop-grace-period', '1s', '--reserve-cpu', '0.01', '--reserve-memory', '4M',
    '--name', name, IMAGE, 'sleep', '100000']), async () => {
    const tasks = await engine.docker.listTasks({ filters: { service: [name], 'desired-state': ['running'] } });
    return tasks.filter((t) => t.Status?.State === 'running').length >= REPLICAS;
  });
  const t0 = performance.now();
  await dockerCli(['service', 'rm', name]);
  await waitUntil(`the containers of swarm service ${name} to stop`, async () => (await engine.docker.listContainers({ filters: { label: [`com.docker.swarm.service.name=${name}`] } })).length === 0, STOP_TIMEOUT_MS, 50);
  r.stopMs = performance.now() - t0;
  return r;
}

/** The fallback peer when Swarm cannot run: N `docker run -d` through the CLI, all launched at once. */
async function dockerRunRound(name) {
  const r = await measure(`docker-run ${name}`, () => {
    const runs = Array.from({ length: REPLICAS }, (_, i) => start('docker', ['-H', engine.host, 'run', '-d', '--network', 'host', '--label', `bench=${name}`, '--name', `${name}-${i}`, IMAGE, 'sleep', '100000']));
    const exited = Promise.all(runs.map((p) => p.exited)).then((codes) => codes.find((c) => c !== 0) ?? 0);
    return { child: runs[0].child, exited, output: () => runs.map((p) => p.output()).join('\n') };
  }, async () => (await engine.docker.listContainers({ filters: { label: [`bench=${name}`], status: ['running'] } })).length >= REPLICAS);
  const t0 = performance.now();
  const ids = (await engine.docker.listContainers({ all: true, filters: { label: [`bench=${name}`] } })).map((c) => c.Id);
  await dockerCli(['rm', '-f', '-t', '1', ...ids]).catch(() => dockerCli(['rm', '-f', ...ids]));
  r.stopMs = performance.now() - t0;
  return r;
}

// ---------------------------------------------------------------------------------------------------------------
async function main() {
  log(`control-plane deployment: ${REPLICAS} replicas, ${ROUNDS} rounds${WARMUP ? ' + 1 warm-up' : ''} (${os.cpus().length} cores, ${os.release()}, Node ${process.version})`);
  let swarmProblem = null;
  let dockerProblem = null;
  if (dockerWanted) {
    try {
      await startEngine();
      swarmProblem = await initSwarm();
    } catch (err) {
      dockerProblem = `the private dockerd could not be started: ${err.message}`;
      stopEngineSync();
    }
  } else {
    dockerProblem = 'needs root, dockerd, the docker CLI and busybox';
  }
  if (dockerProblem) log(`docker sides skipped: ${dockerProblem}`);
  else log(`private dockerd ${engine.version}, ${swarmProblem ? 'NO swarm' : 'single-node swarm on 127.0.0.1'}`);
  if (swarmProblem) log(`Swarm cannot run here: ${swarmProblem}\n  -> the peer is ${REPLICAS} parallel \`docker run -d\` through the CLI (NOT Swarm)`);

  await startCluster();
  log(`shoal: ${AGENTS} agents on loopback, ready (${agents.map((a) => `${a.name} ${a.api}`).join(', ')})`);

  const peerName = swarmProblem ? 'docker-run (not Swarm)' : 'swarm';
  const sides = [{ key: 'shoal-process', run: (n) => shoalRound(n, 'process') }];
  if (engine) {
    sides.push({ key: peerName, run: (n) => (swarmProblem ? dockerRunRound(n) : swarmRound(n)), peer: true });
    sides.push({ key: 'shoal-docker', run: (n) => shoalRound(n, 'docker') });
  }
  const results = Object.fromEntries(sides.map((s) => [s.key, []]));
  const total = ROUNDS + (WARMUP ? 1 : 0);
  for (let round = 0; round < total; round++) {
    const warm = WARMUP && round === 0;
    const label = warm ? 'warm-up' : `round ${round + (WARMUP ? 0 : 1)}`;
    const order = sides.map((_, i) => sides[(i + round) % sides.length]);
    for (const side of order) {
      const name = `b${round}-${side.key.replace(/[^a-z]/g, '').slice(0, 12)}`;
      const r = await side.run(name);
      if (!warm) results[side.key].push(r);
      log(`  ${label.padEnd(8)} ${side.key.padEnd(24)} cli ${sec(r.cliMs).padStart(8)}   api ${sec(r.apiMs).padStart(8)}   (teardown ${sec(r.stopMs)})`);
    }
  }

  log(`\nmedians over ${ROUNDS} rounds, ${REPLICAS} replicas (time from launching the CLI):`);
  log(`  ${'side'.padEnd(24)} ${'cli exits'.padStart(10)} ${'api: all running'.padStart(17)} ${'teardown'.padStart(10)}`);
  const med = {};
  for (const s of sides) {
    med[s.key] = { cli: median(results[s.key].map((r) => r.cliMs)), api: median(results[s.key].map((r) => r.apiMs)), stop: median(results[s.key].map((r) => r.stopMs)) };
    log(`  ${s.key.padEnd(24)} ${sec(med[s.key].cli).padStart(10)} ${sec(med[s.key].api).padStart(17)} ${sec(med[s.key].stop).padStart(10)}`);
  }
  if (engine) {
    const p = med[peerName];
    log(`\nratios ${peerName} / Shoal (>1: Shoal is faster):`);
    for (const key of ['shoal-docker', 'shoal-process']) {
      log(`  vs ${key.padEnd(14)}${key === 'shoal-docker' ? ' (like for like)' : ' (other driver) '}  cli ${(p.cli / med[key].cli).toFixed(2)}x   api ${(p.api / med[key].api).toFixed(2)}x`);
    }
  }
  // Anything the agents logged at warn or above (they run with --log-level warn): the agent side is new.
  const problems = agents.flatMap((a) => a.output().split('\n').filter((l) => /"level":(40|50|60)/.test(l)).map((l) => `${a.name}: ${l}`));
  if (problems.length > 0) log(`\nagent log lines at warn or above (last ${Math.min(problems.length, 20)}):\n${problems.slice(-20).join('\n')}`);
  if (VERBOSE) log(agentLogs());
}

let failed = false;
try {
  await main();
} catch (err) {
  failed = true;
  console.error(`\nFAILED: ${err.stack ?? err}`);
  if (agents.length > 0) console.error(`\nagent output:\n${agentLogs()}`);
  if (engine) console.error(`\ndockerd log (tail):\n${readFileSync(path.join(engine.dir, 'dockerd.log'), 'utf8').slice(-3000)}`);
} finally {
  // Agents first, gracefully (SIGTERM: leave the cluster), then their leftovers, then the engine.
  await Promise.all(agents.map(async (a) => {
    const t = setTimeout(() => void kill(a, 'SIGKILL'), 10_000);
    await kill(a, 'SIGTERM');
    clearTimeout(t);
  }));
  killOurTaskProcesses();
  removeOurCgroups();
  stopEngineSync();
  cleanup();
}
process.exitCode = failed ? 1 : 0;
