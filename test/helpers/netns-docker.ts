/**
 * Several Docker hosts on one machine, for tests of containers across nodes: each "host" is a network namespace
 * (test/helpers/netns.ts) with its own dockerd, started inside that namespace, the busybox test image imported,
 * and a real Shoal agent bound to the namespace's address with `--docker-socket` pointing at that engine. Agents,
 * engines, containers and bridges of one host see only that host's network; hosts reach each other over the
 * namespaces' private subnet only (no namespace has a route anywhere else).
 *
 *   const c = await startDockerCluster(t, { hosts: 3, subnet: '10.77.83' });
 *   if ('skip' in c) ...                                  // not root, no dockerd, no busybox, no `ip netns`
 *   await c.hosts[0].cli(['job', 'run', file]);           // the CLI, against that host's agent
 *   await c.hosts[1].client.allocations.list({});          // the typed client, against h2's agent
 *   await dockerExec(c.hosts[1].docker, id, ['sh', '-c', 'wget -q -O - http://web:8080/'], 8_000);
 *
 * Why it is built this way:
 * - `ip netns exec` gives the command a private mount namespace with a fresh /sys, which hides the cgroup
 *   hierarchies dockerd needs ("Devices cgroup isn't mounted"). The engine is started through a small `sh` that
 *   mounts them again, as this machine has them (read from /proc/self/mountinfo), then execs dockerd. Mounts made
 *   there (overlays, netns files) stay in that private namespace and go away with its processes.
 * - The agent's API listens on 127.0.0.1 inside its namespace, out of this process's reach (and another agent may
 *   hold 127.0.0.1:7646 of this machine). A helper process inside the namespace serves it on a unix socket, and this
 *   process serves that on 127.0.0.1:<free port>: `host.api`, for the CLI and the typed client. So `host.cli` is
 *   asynchronous: a synchronous spawn would block the event loop that carries its requests.
 * - Each namespace gets /etc/netns/<ns>/resolv.conf naming 127.0.0.1, which `ip netns exec` puts on /etc/resolv.conf,
 *   and the helper process answers there NXDOMAIN to every name, at once, as a host's resolver that knows no such
 *   name would (`host.upstreamQueries()` lists what it was asked). So names an agent forwards to "the host's
 *   resolvers" stay inside the namespace instead of aiming at this machine's resolver (unreachable anyway: a
 *   namespace has no route out), and fail fast.
 * - The agents' network guard (test processes and their children refuse traffic outside loopback and the ranges a
 *   test created) is told about the namespaces' subnet and the bridge pool, where the agents answer containers' DNS
 *   queries and connect to containers.
 * - SHOAL_NETNS_DOCKER_LOGS=<dir> keeps every agent's output and every dockerd's log there at teardown.
 * - Teardown, also when the test fails: agents SIGKILLed, every container force-removed through its engine, dockerd
 *   stopped by its pid, then SIGKILL for whatever is still in a namespace (`ip netns pids`: the helpers) or names
 *   the harness's temp dir on its command line (containerd, shims), directories removed, namespaces deleted. On
 *   SIGTERM/SIGINT, or an exit without teardown, the same is done synchronously.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import Docker from 'dockerode';
import { ShoalClient } from '../../src/rpc/index.js';
import { SHOAL_BIN, startAgent, waitFor, type AgentProcess } from './agents.js';
import { alive, importBusybox, onPath, stopPid, TEST_IMAGE } from './docker.js';
import { createNetwork, netnsAvailable, type NetnsNetwork, type TeardownContext } from './netns.js';

export { TEST_IMAGE };

/** The agents' default `--bridge-pool` (src/mesh/bridges.ts), where container bridges take their /24s. */
export const DEFAULT_BRIDGE_POOL = '10.213.0.0/16';

export interface CliResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

export interface DockerHost {
  /** The agent's and the node's name: h1, h2, ... */
  name: string;
  ns: string;
  /** The namespace's address on the hosts' subnet; the agent binds it. */
  ip: string;
  /** The engine of this host, through its unix socket. */
  docker: Docker;
  socketPath: string;
  dockerdPid: number;
  /** The agent's API, forwarded to 127.0.0.1:<port> of this process's network. */
  api: string;
  client: ShoalClient;
  agent: AgentProcess;
  /** `shoal --address <api> ...args`, asynchronously; killed after timeoutMs (default 120 s). */
  cli(args: string[], options?: { timeoutMs?: number; cwd?: string }): Promise<CliResult>;
  /** The host dies: SIGKILL its agent, then force-remove its containers (its engine stays up for the teardown). */
  kill(): Promise<void>;
  /** Names asked of this host's resolver (127.0.0.1:53 in its namespace, which answers NXDOMAIN), in order. */
  upstreamQueries(): string[];
  /** Tails of the agent's output and of dockerd's log, for a failure message. */
  diagnostics(): string;
}

export interface DockerCluster {
  hosts: DockerHost[];
  net: NetnsNetwork;
  /** Temp dir holding engines, agent data dirs and sockets; removed at teardown. */
  dir: string;
  image: string;
  bridgePool: string;
  /** Milliseconds each phase took, for the test's comments. */
  timings: Record<string, number>;
}

export interface DockerClusterOptions {
  hosts: number;
  /** First three octets of the hosts' /24, e.g. '10.77.83'. */
  subnet: string;
  /** Passed as `--bridge-pool`; the network guard allows it in any case. */
  bridgePool?: string;
  extraAgentArgs?: string[];
}

function killPid(pid: number, signal: NodeJS.Signals = 'SIGKILL'): void {
  try {
    process.kill(pid, signal);
  } catch (_gone) { /* already gone */ }
}

/** Pids of the processes whose command line names `dir` (a temp dir of this harness: its containerd and shims). */
function pidsMentioning(dir: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      if (readFileSync(`/proc/${entry}/cmdline`, 'utf8').includes(dir)) pids.push(Number(entry));
    } catch (_gone) { /* exited meanwhile */ }
  }
  return pids;
}

/** Pids of the processes in namespace `ns` (only processes this harness started can be there). */
function pidsIn(ns: string): number[] {
  const r = spawnSync('ip', ['netns', 'pids', ns], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.split('\n').filter((l) => /^\d+$/.test(l.trim())).map(Number) : [];
}

/** Why this machine cannot run the harness, or undefined when it can. */
export function dockerClusterUnavailable(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root (network namespaces and private dockerds)';
  if (!onPath('dockerd')) return 'no dockerd binary (apt-get install docker.io)';
  if (!['/bin/busybox', '/usr/bin/busybox'].some((p) => existsSync(p))) return 'no static busybox for the test image (apt-get install busybox-static)';
  if (!onPath('ip') || !netnsAvailable()) return 'cannot create network namespaces (needs root and iproute2)';
  return undefined;
}

/**
 * A shell prologue that mounts the cgroup hierarchies again under the fresh /sys that `ip netns exec` gives
 * (dockerd needs them), as this machine has them.
 */
export function cgroupRemountScript(mountinfo = readFileSync('/proc/self/mountinfo', 'utf8')): string {
  const lines: string[] = [];
  const entries = mountinfo.split('\n').map((l) => {
    const [left, right] = l.split(' - ');
    if (!left || !right) return undefined;
    const mountPoint = left.split(' ')[4] ?? '';
    const [fstype, source, superOptions] = right.split(' ');
    return { mountPoint, fstype, source, superOptions };
  }).filter((e): e is { mountPoint: string; fstype: string; source: string; superOptions: string } =>
    e !== undefined && e.fstype !== undefined && (e.mountPoint === '/sys/fs/cgroup' || e.mountPoint.startsWith('/sys/fs/cgroup/')));
  entries.sort((a, b) => a.mountPoint.split('/').length - b.mountPoint.split('/').length);
  const q = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;
  for (const e of entries) {
    lines.push(`mkdir -p ${q(e.mountPoint)}`);
    lines.push(`mount -t ${q(e.fstype)} -o ${q(e.superOptions)} ${q(e.source)} ${q(e.mountPoint)}`);
  }
  return lines.join('\n');
}

/** Runs `cmd` in a container through its engine; `code` is null when it did not finish within timeoutMs. */
export async function dockerExec(docker: Docker, containerId: string, cmd: string[], timeoutMs: number): Promise<{ code: number | null; stdout: string; stderr: string; ms: number }> {
  const started = Date.now();
  const exec = await docker.getContainer(containerId).exec({ Cmd: cmd, AttachStdout: true, AttachStderr: true });
  const stream = await exec.start({ hijack: true, stdin: false });
  const out = new PassThrough();
  const err = new PassThrough();
  let stdout = '';
  let stderr = '';
  out.on('data', (d: Buffer) => (stdout += d.toString()));
  err.on('data', (d: Buffer) => (stderr += d.toString()));
  docker.modem.demuxStream(stream, out, err);
  const finished = await new Promise<boolean>((resolve) => {
    const timer = setTimeout(() => resolve(false), timeoutMs);
    const done = (): void => {
      clearTimeout(timer);
      resolve(true);
    };
    stream.once('end', done);
    stream.once('close', done);
    stream.once('error', done);
  });
  if (!finished) {
    stream.destroy();
    return { code: null, stdout, stderr, ms: Date.now() - started };
  }
  const info = await exec.inspect();
  return { code: info.ExitCode ?? null, stdout, stderr, ms: Date.now() - started };
}

/**
 * The JavaScript of the helper process in each namespace (argv: unix socket, API port):
 * - the API forwarder: unix socket -> 127.0.0.1:<API port> of the namespace;
 * - the namespace's "host resolver" on 127.0.0.1:53 (its /etc/resolv.conf names it): it answers NXDOMAIN to every
 *   query, at once, as a resolver that knows no such name would, and prints each name as a JSON line, so a test can
 *   see what the agent forwarded upstream.
 */
const NAMESPACE_HELPER = [
  "const net = require('node:net');",
  "const dgram = require('node:dgram');",
  'const [sock, port] = process.argv.slice(1);',
  "const dns = dgram.createSocket('udp4');",
  "dns.on('message', (q, r) => {",
  '  if (q.length < 12) return;',
  '  const labels = [];',
  '  let i = 12;',
  '  while (i < q.length && q[i] !== 0) { labels.push(q.subarray(i + 1, i + 1 + q[i]).toString()); i += q[i] + 1; }',
  '  const a = Buffer.from(q.subarray(0, Math.min(q.length, i + 5)));',
  '  a[2] |= 0x80; a[3] = 0x83; a.writeUInt16BE(1, 4); a.fill(0, 6, 12);', // response, recursion available, NXDOMAIN
  "  process.stdout.write(JSON.stringify({ dns: labels.join('.'), from: r.address }) + '\\n');",
  '  dns.send(a, r.port, r.address);',
  '});',
  "dns.bind(53, '127.0.0.1', () => {",
  "  net.createServer((c) => { const u = net.connect(Number(port), '127.0.0.1'); c.pipe(u).pipe(c);",
  "    c.on('error', () => u.destroy()); u.on('error', () => c.destroy()); })",
  "    .listen(sock, () => process.stdout.write('ready\\n'));",
  '});',
].join('\n');

interface Tracked {
  pids: Set<number>;
  engines: { socketPath: string; pid: number }[];
  namespaces: string[];
  etcDirs: string[];
  /** /etc/netns did not exist before: remove it when empty. */
  removeEtcNetns: boolean;
  dirs: string[];
}

/** Synchronous last-resort clean-up (process exit, SIGTERM): containers, engines, namespace processes, dirs. */
function cleanupSync(tr: Tracked): void {
  const docker = onPath('docker');
  for (const e of tr.engines) {
    if (docker && alive(e.pid)) {
      const ids = spawnSync(docker, ['-H', `unix://${e.socketPath}`, 'ps', '-aq'], { encoding: 'utf8', timeout: 10_000 }).stdout?.split('\n').filter(Boolean) ?? [];
      if (ids.length > 0) spawnSync(docker, ['-H', `unix://${e.socketPath}`, 'rm', '-f', ...ids], { timeout: 20_000 });
    }
    killPid(e.pid);
  }
  for (const pid of tr.pids) killPid(pid);
  for (const ns of tr.namespaces) for (const pid of pidsIn(ns)) killPid(pid);
  for (const d of tr.dirs) for (const pid of pidsMentioning(d)) killPid(pid);
  for (const d of tr.etcDirs) rmSync(d, { recursive: true, force: true });
  if (tr.removeEtcNetns) spawnSync('rmdir', ['/etc/netns']);
  for (const d of tr.dirs) {
    try {
      rmSync(d, { recursive: true, force: true });
    } catch (_busy) { /* a mount still held by a dying process; the OS temp dir is cleaned eventually */ }
  }
}

function logTail(logPath: string, lines: number, only?: RegExp): string {
  try {
    return readFileSync(logPath, 'utf8').split('\n').filter((l) => !only || only.test(l)).slice(-lines).join('\n');
  } catch (err) {
    return `(${String(err)})`;
  }
}

function runNode(args: string[], timeoutMs: number, cwd?: string): Promise<CliResult> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], ...(cwd ? { cwd } : {}) });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ status: code, stdout, stderr: signal ? `${stderr}\n(killed by ${signal} after ${timeoutMs} ms)` : stderr });
    });
  });
}

/**
 * Starts `hosts` Docker hosts and an agent on each (bootstrap-expect = hosts), and waits until every node is ready
 * with the docker driver. Returns `{ skip }` when this machine cannot run it.
 */
export async function startDockerCluster(t: TeardownContext, o: DockerClusterOptions): Promise<DockerCluster | { skip: string }> {
  const why = dockerClusterUnavailable();
  if (why) return { skip: why };
  const busybox = ['/bin/busybox', '/usr/bin/busybox'].find((p) => existsSync(p))!;
  const dockerd = onPath('dockerd')!;
  const timings: Record<string, number> = {};
  let mark = Date.now();
  const lap = (what: string): void => {
    timings[what] = Date.now() - mark;
    mark = Date.now();
  };

  const dir = mkdtempSync(path.join(os.tmpdir(), 'shoal-netns-docker-'));
  const tracked: Tracked = { pids: new Set(), engines: [], namespaces: [], etcDirs: [], removeEtcNetns: !existsSync('/etc/netns'), dirs: [dir] };
  // Ordered clean-up, run once: the helpers' own teardowns are collected here instead of being left to tap's order.
  const later: (() => unknown)[] = [];
  const collect: TeardownContext = { teardown: (fn) => later.push(fn) };
  const servers: net.Server[] = [];
  const agents: AgentProcess[] = [];
  const onExit = (): void => cleanupSync(tracked);
  const onSignal = (signal: NodeJS.Signals): void => {
    cleanupSync(tracked);
    process.exit(signal === 'SIGINT' ? 130 : 143);
  };
  process.on('exit', onExit);
  process.once('SIGTERM', onSignal);
  process.once('SIGINT', onSignal);
  const logSources: { name: string; agent: AgentProcess; dockerdLog: string }[] = [];
  let tornDown = false;
  const teardown = async (): Promise<void> => {
    if (tornDown) return;
    tornDown = true;
    const keep = process.env['SHOAL_NETNS_DOCKER_LOGS'];
    if (keep) {
      mkdirSync(keep, { recursive: true });
      for (const l of logSources) {
        writeFileSync(path.join(keep, `agent-${l.name}.log`), l.agent.output());
        writeFileSync(path.join(keep, `dockerd-${l.name}.log`), logTail(l.dockerdLog, 100_000));
      }
    }
    for (const a of agents) if (a.child.exitCode === null && a.child.signalCode === null) a.child.kill('SIGKILL');
    await Promise.all(agents.map((a) => a.exited));
    await Promise.all(tracked.engines.map(async (e) => {
      const docker = new Docker({ socketPath: e.socketPath });
      const list = await docker.listContainers({ all: true }).catch(() => []);
      await Promise.all(list.map((c) => docker.getContainer(c.Id).remove({ force: true }).catch(() => undefined)));
      await stopPid(e.pid, 10_000);
    }));
    for (const pid of tracked.pids) killPid(pid);
    for (const ns of tracked.namespaces) for (const pid of pidsIn(ns)) killPid(pid);
    for (const pid of pidsMentioning(dir)) killPid(pid);
    for (const s of servers) s.close();
    for (let i = 0; i < 100 && (tracked.namespaces.some((ns) => pidsIn(ns).length > 0) || pidsMentioning(dir).length > 0); i++) await sleep(50);
    for (const fn of later.reverse()) await fn();
    for (const d of tracked.etcDirs) rmSync(d, { recursive: true, force: true });
    if (tracked.removeEtcNetns) spawnSync('rmdir', ['/etc/netns']); // only if empty: another test may be using it
    for (const d of tracked.dirs) rmSync(d, { recursive: true, force: true });
    process.removeListener('exit', onExit);
    process.removeListener('SIGTERM', onSignal);
    process.removeListener('SIGINT', onSignal);
  };
  t.teardown(teardown);

  const bridgePool = o.bridgePool ?? DEFAULT_BRIDGE_POOL;
  const netw = createNetwork(collect, { hosts: o.hosts, subnet: o.subnet });
  tracked.namespaces.push(...netw.hosts.map((h) => h.ns));
  lap('namespaces');

  // The cluster key and the agent's flags, meanwhile (each is a Node start).
  const keyFile = path.join(dir, 'cluster.key');
  const prep = runNode([SHOAL_BIN, 'keygen', keyFile], 30_000);
  prep.catch(() => undefined); // awaited below
  // Engines, one per namespace, in parallel.
  const cgroups = cgroupRemountScript();
  const engines = await Promise.all(netw.hosts.map(async (h, i) => {
    const etc = path.join('/etc/netns', h.ns);
    mkdirSync(etc, { recursive: true });
    tracked.etcDirs.push(etc);
    writeFileSync(path.join(etc, 'resolv.conf'), 'nameserver 127.0.0.1\n');
    const edir = path.join(dir, `engine-h${i + 1}`);
    mkdirSync(edir);
    const socketPath = path.join(edir, 'docker.sock');
    const logPath = path.join(edir, 'dockerd.log');
    const script = `set -e\n${cgroups}\nexec "$@"`;
    const log = openSync(logPath, 'a');
    const child: ChildProcess = spawn('ip', ['netns', 'exec', h.ns, 'sh', '-c', script, 'sh', dockerd,
      '--host', `unix://${socketPath}`, '--data-root', path.join(edir, 'data'), '--exec-root', path.join(edir, 'exec'),
      '--pidfile', path.join(edir, 'dockerd.pid'), '--bridge=none', '--iptables=false', '--ip-masq=false',
    ], { stdio: ['ignore', log, log], detached: true });
    closeSync(log);
    // `ip netns exec` and `sh` both exec: this pid becomes dockerd's.
    const pid = child.pid!;
    child.unref();
    tracked.engines.push({ socketPath, pid });
    return { h, i, edir, socketPath, pid, logPath, docker: new Docker({ socketPath }) };
  }));
  await Promise.all(engines.map(async (e) => {
    for (const deadline = Date.now() + 30_000; ;) {
      if (await e.docker.ping().then(() => true, () => false)) return;
      if (!alive(e.pid) || Date.now() > deadline) {
        throw new Error(`dockerd in ${e.h.ns} ${alive(e.pid) ? 'did not answer within 30 s' : 'exited at start'}; its log ends:\n${logTail(e.logPath, 10)}`);
      }
      await sleep(100);
    }
  }));
  lap('engines');
  await Promise.all(engines.map((e) => importBusybox(e.docker, e.edir, busybox)));
  lap('images');

  // Agents.
  const keygen = await prep;
  if (keygen.status !== 0) throw new Error(`shoal keygen failed: ${keygen.stderr}`);
  const poolFlag = o.bridgePool !== undefined ? ['--bridge-pool', bridgePool] : [];
  const allow = [...new Set([...(process.env['SHOAL_NETGUARD_ALLOW'] ?? '').split(',').filter(Boolean), netw.cidr, bridgePool])].join(',');
  const seed = `${netw.hosts[0]!.ip}:7647`;
  const startOne = async (e: (typeof engines)[number]): Promise<AgentProcess> => {
    const a = await startAgent(collect, {
      name: `h${e.i + 1}`, dataDir: path.join(dir, `agent-h${e.i + 1}`), bind: `${e.h.ip}:7647`, keyFile, ns: e.h.ns, api: '127.0.0.1:7646',
      ...(e.i > 0 ? { join: [seed] } : {}),
      extraArgs: ['--bootstrap-expect', String(Math.min(o.hosts, 3)), '--docker-socket', e.socketPath, ...poolFlag, ...(o.extraAgentArgs ?? [])],
      env: { SHOAL_NETGUARD_ALLOW: allow },
    });
    agents.push(a);
    if (a.child.pid) tracked.pids.add(a.child.pid);
    return a;
  };
  // Namespace helpers (API forwarder: namespace 127.0.0.1:7646 -> unix socket -> 127.0.0.1:<port> here; the
  // stand-in host resolver), started beside the agents.
  const upstream: string[][] = engines.map(() => []);
  const forwarders = Promise.all(engines.map(async (e) => {
    const sock = path.join(dir, `api-h${e.i + 1}.sock`);
    const fwd = spawn('ip', ['netns', 'exec', e.h.ns, process.execPath, '-e', NAMESPACE_HELPER, sock, '7646'], { stdio: ['ignore', 'pipe', 'pipe'] });
    if (fwd.pid) tracked.pids.add(fwd.pid);
    await new Promise<void>((resolve, reject) => {
      let err = '';
      let pending = '';
      fwd.stderr.on('data', (d) => (err += d));
      fwd.stdout.on('data', (d: Buffer) => {
        pending += d.toString();
        const lines = pending.split('\n');
        pending = lines.pop() ?? '';
        for (const line of lines) {
          if (line === 'ready') resolve();
          else if (line.startsWith('{')) upstream[e.i]!.push((JSON.parse(line) as { dns: string }).dns);
        }
      });
      fwd.once('exit', (code) => reject(new Error(`the helper process in ${e.h.ns} exited (${code}): ${err}`)));
    });
    const server = net.createServer((c) => {
      const u = net.connect(sock);
      c.pipe(u).pipe(c);
      c.on('error', () => u.destroy());
      u.on('error', () => c.destroy());
    });
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
    return `127.0.0.1:${(server.address() as net.AddressInfo).port}`;
  }));
  forwarders.catch(() => undefined); // awaited below; a failure must not go unhandled meanwhile
  const first = await startOne(engines[0]!);
  const rest = await Promise.all(engines.slice(1).map(startOne));
  const started = [first, ...rest];
  lap('agents');
  const apis = await forwarders;
  const hosts: DockerHost[] = engines.map((e) => {
    const api = apis[e.i]!;
    const agent = started[e.i]!;
    const host: DockerHost = {
      name: `h${e.i + 1}`, ns: e.h.ns, ip: e.h.ip, docker: e.docker, socketPath: e.socketPath, dockerdPid: e.pid, api,
      client: new ShoalClient({ address: `http://${api}`, timeoutMs: 5_000 }),
      agent,
      cli: (args, opts) => runNode([SHOAL_BIN, '--address', api, ...args], opts?.timeoutMs ?? 120_000, opts?.cwd),
      kill: async () => {
        agent.child.kill('SIGKILL');
        await agent.exited;
        const list = await e.docker.listContainers({ all: true });
        await Promise.all(list.map((c) => e.docker.getContainer(c.Id).remove({ force: true })));
      },
      upstreamQueries: () => [...upstream[e.i]!],
      diagnostics: () => `--- agent ${agent.name} (last 40 lines)\n${agent.output().split('\n').slice(-40).join('\n')}\n--- dockerd of ${agent.name} (last 10 warnings and errors)\n${logTail(e.logPath, 10, /level=(warning|error|fatal)/)}`,
    };
    return host;
  });
  logSources.push(...engines.map((e) => ({ name: `h${e.i + 1}`, agent: started[e.i]!, dockerdLog: e.logPath })));
  lap('forwarders');

  await waitFor('a leader, and every node ready with the docker driver', async () => {
    for (const h of hosts) if (!(await h.client.operator.raftState()).leaderId) return false;
    const nodes = (await hosts[0]!.client.nodes.list()).nodes;
    return nodes.length === o.hosts && nodes.every((n) => n.status === 'ready' && (n.drivers ?? []).includes('docker'));
  }, 60_000, 200);
  lap('cluster');
  return { hosts, net: netw, dir, image: TEST_IMAGE, bridgePool, timings };
}
