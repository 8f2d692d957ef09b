import t from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import dgram from 'node:dgram';
import { readFileSync, readdirSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const SCRIPT = fileURLToPath(new URL('../../scripts/cluster.mjs', import.meta.url));
const PEER_PORT_OFFSET = 100;

function tcpFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

function udpFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = dgram.createSocket('udp4');
    socket.once('error', () => {
      socket.close();
      resolve(false);
    });
    socket.bind(port, '127.0.0.1', () => socket.close(() => resolve(true)));
  });
}

/** A base port whose three API (TCP) and three peer (UDP) ports are free now. */
/** Debian's nginx-light and redis-server: with them, the script also runs the counter stack (.ci/run installs them). */
const hasServers = ['nginx', 'redis-server'].every((bin) => spawnSync('sh', ['-c', `command -v ${bin}`]).status === 0);

async function freeBasePort(): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const base = 20_000 + Math.floor(Math.random() * 20_000);
    const checks = await Promise.all([0, 1, 2].flatMap((i) => [tcpFree(base + i), udpFree(base + PEER_PORT_OFFSET + i)]));
    if (checks.every(Boolean)) return base;
  }
  throw new Error('no free range of ports found');
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function cmdline(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ');
  } catch {
    return ''; // gone
  }
}

function get(url: string): Promise<string> {
  return new Promise((resolve, reject) => {
    http.get(url, { timeout: 5_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve(body));
    }).on('error', reject).on('timeout', () => reject(new Error(`GET ${url} timed out`)));
  });
}

t.test('npm run cluster: three agents, the hello job on them, and Ctrl-C stops everything and exits 0', async (t) => {
  const dataDir = t.testdir({});
  const basePort = await freeBasePort();
  const counterPort = await freeBasePort();
  const child = spawn(process.execPath, [SCRIPT, '--base-port', String(basePort), '--data-dir', dataDir], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, COUNTER_PORT: String(counterPort) } });
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (out += d));
  child.stderr.on('data', (d: Buffer) => (err += d));
  const exited = new Promise<number | string>((resolve) => child.on('exit', (code, signal) => resolve(code ?? signal ?? -1)));
  const agentPids = (): number[] => readdirSync(dataDir).filter((n) => n.startsWith('shoal-')).flatMap((n) => {
    try {
      return [Number(readFileSync(join(dataDir, n, 'agent.pid'), 'utf8').trim())];
    } catch {
      return []; // removed once that agent exited
    }
  });
  const taskPids: number[] = [];
  // Whatever happens, nothing this test started keeps running: the script, its agents, the tasks they ran.
  const started = new Set<number>();
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await exited;
    }
    for (const pid of [...started, ...taskPids]) {
      if (alive(pid) && (cmdline(pid).includes(dataDir) || /hello-server|counter-app|nginx|redis-server/.test(cmdline(pid)))) process.kill(pid, 'SIGKILL');
    }
  });

  const outcome = await new Promise<'ready' | 'exited'>((resolve) => {
    const timer = setInterval(() => {
      for (const pid of agentPids()) started.add(pid);
      if (out.includes('The cluster runs until you press Ctrl-C.')) resolve('ready');
    }, 100);
    void exited.then(() => resolve('exited'));
    t.teardown(() => clearInterval(timer));
  });
  for (const pid of agentPids()) started.add(pid);
  if (outcome !== 'ready') {
    t.fail(`the script exited before the cluster was ready\nstdout:\n${out}\nstderr:\n${err}`);
    return;
  }
  t.match(out, /2\. Cluster key: created .*cluster\.key with `shoal keygen`/);
  t.match(out, /shoal-1 started: pid \d+/);
  t.match(out, /leader: shoal-\d/);
  t.match(out, /job hello is running/, 'the example job runs');
  t.match(out, new RegExp(`export SHOAL_ADDR=http://127\\.0\\.0\\.1:${basePort}`));
  t.equal(started.size, 3, 'three agents started');

  const replicas = [...out.matchAll(/^ {3}(http:\/\/127\.0\.0\.1:\d+) {3}\(alloc [0-9a-f]{8} on (shoal-\d)\)$/gm)].map((m) => ({ url: m[1]!, node: m[2]! }));
  t.equal(replicas.length, 3, 'three hello replicas answer');
  let orphan = 0;
  for (const { url, node } of replicas) {
    const body = await get(url);
    t.match(body, /^hello from [0-9a-f]+ \(pid \d+\)\n$/, url);
    taskPids.push(Number(/\(pid (\d+)\)/.exec(body)![1]));
    if (node === 'shoal-3') orphan = taskPids[taskPids.length - 1]!;
  }
  t.equal(new Set(taskPids).size, 3, 'three distinct task processes');
  if (hasServers) {
    // The counter stack answers through the routing mesh on every agent's own address.
    const counter = [...out.matchAll(/^ {3}curl (http:\/\/127\.0\.0\.\d:\d+\/) {3}-> {2}hits \d+/gm)].map((m) => m[1]!);
    t.same(counter, [1, 2, 3].map((i) => `http://127.0.0.${i}:${counterPort}/`), 'the counter stack answers on each agent');
    for (const url of counter) t.match(await get(url), /^hits \d+ \(app [0-9a-f]{8}\)/, url);
  } else {
    t.match(out, /6\. Skipping examples\/counter/);
  }
  // The replicated store: written through the first agent, read back through the last.
  t.match(out, /8\. Running a replicated store/);
  t.match(out, /shoal state put store kv cart-1 .* -> {2}cart-1 = version \d+ \(partition \d, new\)/, 'a write to the store');
  t.match(out, /shoal state get store kv cart-1 -c carts {3}-> {2}\{"apples": 2\}/, 'read back through another agent');
  for (const pid of taskPids) t.ok(alive(pid), `task ${pid} runs before the stop`);

  // An agent killed outright cannot stop its task: the script must find the task in shoal-3's records and stop it.
  const shoal3 = Number(readFileSync(join(dataDir, 'shoal-3', 'agent.pid'), 'utf8').trim());
  process.kill(shoal3, 'SIGKILL');
  await new Promise<void>((resolve) => {
    const timer = setInterval(() => {
      if (!out.includes('agent shoal-3 exited (SIGKILL)')) return;
      clearInterval(timer);
      resolve();
    }, 50);
  });
  t.ok(alive(orphan), 'the killed agent\'s task outlives it');

  child.kill('SIGINT');
  const code = await exited;
  if (code !== 0) t.comment(`stdout:\n${out.slice(-3000)}\nstderr:\n${err}`);
  t.equal(code, 0, 'exit 0 after Ctrl-C');
  t.match(out, /Stopping the cluster: SIGTERM to shoal-1 \(pid \d+\), shoal-2 \(pid \d+\);/);
  t.match(out, new RegExp(`pid ${orphan}: task of hello \\(alloc [0-9a-f]{8}, shoal-3\\): .*hello-server\\.mjs`), 'the orphaned task is listed');
  t.match(out, /Stopping the \d+ recorded task process(es)? \(SIGTERM/);
  t.match(out, /Cluster stopped\./);
  for (const pid of started) t.notOk(alive(pid) && cmdline(pid).includes(dataDir), `agent ${pid} is gone`);
  for (const pid of taskPids) t.notOk(alive(pid) && cmdline(pid).includes('hello-server'), `task ${pid} is gone`);
});

t.test('a port in use is named, with the way out, and nothing starts', async (t) => {
  const dataDir = t.testdir({});
  const basePort = await freeBasePort();
  const blocker = net.createServer();
  await new Promise<void>((resolve) => blocker.listen(basePort + 1, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => blocker.close(() => resolve())));
  const res = spawnSync(process.execPath, [SCRIPT, '--base-port', String(basePort), '--data-dir', dataDir], { encoding: 'utf8', timeout: 60_000 });
  t.equal(res.status, 1, res.stderr);
  t.match(res.stderr, new RegExp(`port ${basePort + 1}, the API \\(TCP\\) port of shoal-2, is in use by another program`));
  t.match(res.stderr, /--base-port \d+/);
  t.same(readdirSync(dataDir).filter((n) => n.startsWith('shoal-')), [], 'no agent was started');
});

t.test('bad options are refused with the usage', async (t) => {
  for (const args of [['--base-port', 'abc'], ['--base-port', '70000'], ['--frobnicate'], ['--data-dir']]) {
    const res = spawnSync(process.execPath, [SCRIPT, ...args], { encoding: 'utf8', timeout: 30_000 });
    t.equal(res.status, 2, args.join(' '));
    t.match(res.stderr, /^cluster: .*\n\nusage: node scripts\/cluster\.mjs/, args.join(' '));
  }
});
