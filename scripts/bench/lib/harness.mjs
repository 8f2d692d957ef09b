// Shared plumbing of the benchmarks that start real agents (and their peers) as processes: tracking every child
// and temp dir so they are removed whatever happens, waiting, free ports, and starting a Shoal agent.
import { spawn, spawnSync } from 'node:child_process';
import dgram from 'node:dgram';
import { existsSync, mkdtempSync, rmdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path, { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const SHOAL_BIN = fileURLToPath(new URL('../../../bin/shoal', import.meta.url));

const children = new Set();
const tempDirs = [];
const extraCleanups = [];

/** Runs `fn` at exit too (e.g. deleting namespaces), after every child is killed. */
export function onCleanup(fn) {
  extraCleanups.push(fn);
}

/** Kills every tracked child and removes every temp dir (also run at exit). */
export function cleanup() {
  for (const child of children) {
    if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) {
      try {
        process.kill(child.pid, 'SIGKILL');
      } catch (_err) {
        // Already gone between the check and the kill.
      }
    }
  }
  children.clear();
  for (const fn of extraCleanups.splice(0)) fn();
  for (const d of tempDirs.splice(0)) rmSync(d, { recursive: true, force: true });
}
process.on('exit', cleanup);
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(sig, () => {
    console.error(`\n${sig}: cleaning up`);
    process.exit(130);
  });
}

export function tempDir(what) {
  const d = mkdtempSync(join(tmpdir(), `shoal-bench-${what}-`));
  tempDirs.push(d);
  return d;
}

export function run(cmd, argv) {
  const r = spawnSync(cmd, argv, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd} ${argv.join(' ')} failed (${r.status ?? r.signal}): ${(r.stderr || r.stdout || r.error?.message || '').trim()}`);
  return r.stdout;
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** The median of `xs` (the mean of the middle two for an even count); NaN when there is none. */
export function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const m = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Whether a process with this pid exists (signal 0 checks without sending anything). */
export function pidAlive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

export async function waitUntil(what, check, timeoutMs = 60_000, intervalMs = 100) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      if (await check()) return;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? ` (last error: ${last.message ?? last})` : ''}`);
    await sleep(intervalMs);
  }
}

/** Spawns a tracked child; `ns` runs it inside a namespace (ip netns exec execs it, so the pid is the program's). */
export function start(cmd, argv, { ns, stdin = 'ignore' } = {}) {
  const child = ns ? spawn('ip', ['netns', 'exec', ns, cmd, ...argv], { stdio: [stdin, 'pipe', 'pipe'] }) : spawn(cmd, argv, { stdio: [stdin, 'pipe', 'pipe'] });
  children.add(child);
  let out = '';
  let err = '';
  child.stdout.on('data', (d) => {
    out += d;
    if (out.length > 200_000) out = out.slice(-100_000);
  });
  child.stderr.on('data', (d) => {
    err += d;
    if (err.length > 200_000) err = err.slice(-100_000);
  });
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve(code ?? signal)));
  return { child, exited, output: () => `stdout:\n${out.slice(-3000)}\nstderr:\n${err.slice(-3000)}` };
}

export async function kill(proc, signal = 'SIGKILL') {
  if (proc.child.exitCode === null && proc.child.signalCode === null) {
    try {
      process.kill(proc.child.pid, signal);
    } catch (_err) {
      // It exited on its own in the meantime.
    }
  }
  await proc.exited;
  children.delete(proc.child);
}

/** A UDP port free on `host`: any the kernel picks, or one in [min, max] (tried in a random order). */
export async function freeUdpPort(host, { min, max } = {}) {
  const tryBind = async (port) => {
    const socket = dgram.createSocket('udp4');
    const ok = await new Promise((resolve) => socket.once('error', () => resolve(false)).bind(port, host, () => resolve(true)));
    const got = ok ? socket.address().port : undefined;
    await new Promise((resolve) => socket.close(() => resolve()));
    return got;
  };
  if (min === undefined || max === undefined) {
    const port = await tryBind(0);
    if (port === undefined) throw new Error(`cannot bind a UDP port on ${host}`);
    return port;
  }
  for (let attempt = 0; attempt < 100; attempt++) {
    const port = await tryBind(min + Math.floor(Math.random() * (max - min + 1)));
    if (port !== undefined) return port;
  }
  throw new Error(`no free UDP port on ${host} in ${min}-${max} after 100 tries`);
}

export function keygen(dir) {
  const key = join(dir, 'cluster.key');
  run(process.execPath, [SHOAL_BIN, 'keygen', key]);
  return key;
}

/**
 * Starts `shoal agent` and waits for its ready line. Returns the process (`child`, `exited`, `output`, and `proc` for
 * callers that keep it apart) with the agent's name, id and API address.
 */
export async function startShoal({ name, dataDir, bind, join: joinAddr, keyFile, ns, api = '127.0.0.1:0', extraArgs = [], readyTimeoutMs = 60_000 }) {
  const argv = [SHOAL_BIN, 'agent', '--name', name, '--data-dir', dataDir, '--bind', bind, '--cluster-key-file', keyFile, '--api', api, '--log-level', 'warn',
    ...(joinAddr ? ['--join', joinAddr] : []), ...extraArgs];
  // SHOAL_BENCH_NODE_ARGS passes options to the agents' node, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof" to profile them.
  const nodeArgs = (process.env.SHOAL_BENCH_NODE_ARGS ?? '').split(' ').filter(Boolean);
  const proc = start(process.execPath, [...nodeArgs, ...argv], { ns });
  const ready = await new Promise((resolve, reject) => {
    let buf = '';
    const timer = setTimeout(() => reject(new Error(`shoal agent ${name} not ready within ${readyTimeoutMs} ms\n${proc.output()}`)), readyTimeoutMs);
    proc.child.stdout.on('data', (d) => {
      buf += d;
      for (const line of buf.split('\n')) {
        if (!line.startsWith('{"event":"ready"')) continue;
        clearTimeout(timer);
        resolve(JSON.parse(line));
      }
    });
    void proc.exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`shoal agent ${name} exited (${code}) before it was ready\n${proc.output()}`));
    });
  });
  return { ...proc, proc, name, api: ready.api, id: ready.id, url: `http://${ready.api}` };
}

const TASK_CGROUP_PARENTS = ['/sys/fs/cgroup/shoal', '/sys/fs/cgroup/memory/shoal', '/sys/fs/cgroup/cpu/shoal', '/sys/fs/cgroup/cpu,cpuacct/shoal'];

/**
 * Removes the cgroups the process driver left for these allocations (it keeps stopped tasks' until the agent collects
 * them). A killed task leaves its cgroup a moment after the signal: retried briefly, since rmdir of a busy one fails.
 */
export function removeTaskCgroups(allocIds) {
  let left = [];
  for (const parent of TASK_CGROUP_PARENTS) for (const id of allocIds) if (existsSync(path.join(parent, id))) left.push(path.join(parent, id));
  for (let attempt = 0; attempt < 20 && left.length > 0; attempt++) {
    if (attempt > 0) spawnSync('sleep', ['0.1']);
    left = left.filter((dir) => {
      try {
        rmdirSync(dir);
        return false;
      } catch {
        return existsSync(dir);
      }
    });
  }
  if (left.length > 0) console.error(`cleanup: could not remove ${left.length} task cgroups, e.g. ${left[0]}`);
}
