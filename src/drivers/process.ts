/**
 * The process driver: runs a command on the host as a supervised process.
 *
 * - Own process group (spawned detached), so stop reaches the task's children too: the stop signal to the group,
 *   SIGKILL to the group (and to anything left in its cgroup) after the grace period.
 * - Environment is exactly the spec's (plus a default PATH and SHOAL_ALLOC_ID): the agent's own environment,
 *   which may hold secrets, is not passed on.
 * - stdout/stderr go straight to files in `<dataDir>/tasks/<id>/logs` (see logfiles.ts), so logs survive the
 *   task and the agent, and an agent restart never breaks the task's output.
 * - Limits through cgroup v2, cgroup v1 or prlimit (see cgroup.ts); fingerprint says which.
 * - The handle records the pid and the process start time (field 22 of /proc/<pid>/stat): a pid alone may
 *   have been reused by an unrelated process after a reboot or a long downtime.
 * - A task we spawned is our child: its exit status comes from the kernel and is also written to
 *   `<task dir>/exit.json`. A re-attached task is not our child: we poll /proc until it is gone, and its status
 *   is then unknown unless exit.json says it (it exited while this agent was still watching it).
 * - Periodic work is one timer per kind for the whole driver, not one per task, and only while there is work for
 *   it: log rotation while a task runs, the /proc poll while a re-attached task runs. Exits of our own children
 *   are kernel events and need no timer.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { promises as fs, constants as fsConstants, openSync, closeSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Clock } from '../lib/clock.js';
import { describeError } from '../lib/errors.js';
import { LIMITS } from '../lib/limits.js';
import type { Logger } from '../log/logger.js';
import { silentLogger } from '../log/logger.js';
import { systemClock } from '../platform/system-clock.js';
import { CommandNotFoundError, DriverOperationError, InvalidTaskError, TaskLostError, TaskStartError } from './errors.js';
import { HealthMonitor, NO_HEALTH, httpProbe, tcpProbe, type Probe } from './health.js';
import { cgroupPids, createTaskCgroup, detectIsolation, memoryUsageBytes, oomKills, removeTaskCgroup, unenforceable, wrapArgv, type Isolation, type TaskCgroup } from './cgroup.js';
import { readLogs, rotateIfNeeded } from './logfiles.js';
import { clip, stopParameters, validateTaskSpec } from './spec.js';
import type { ExitResult, Fingerprint, LogChunk, LogOptions, TaskDriver, TaskHandle, TaskSpec, TaskStats, TaskStatus } from './types.js';

const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
/** Linux reports /proc times in USER_HZ, which is 100 on every architecture Linux supports. */
const USER_HZ = 100;
/** Written into the task directory as soon as the process exists, so find() can re-adopt a task whose start was interrupted. */
const HANDLE_FILE = 'handle.json';

export interface ProcessDriverOptions {
  /** Where task directories (logs, exit status) live. */
  dataDir: string;
  /** 'auto' picks cgroups when writable; 'prlimit' or 'none' force a weaker mechanism. */
  isolation?: 'auto' | 'prlimit' | 'none';
  /** Root of the cgroup filesystem (tests point it elsewhere). */
  cgroupFs?: string;
  logger?: Logger;
  clock?: Clock;
}

interface ProcState {
  pid: number;
  startTicks: number;
  taskDir: string;
  cgroup: TaskCgroup | null;
}

interface Entry {
  handle: TaskHandle;
  state: ProcState;
  child?: ChildProcess;
  exit?: ExitResult;
  exited: Promise<ExitResult>;
  resolveExit: (exit: ExitResult) => void;
  monitor?: HealthMonitor;
}

/** Fields of /proc/<pid>/stat after the command name (which may itself contain spaces and parentheses). */
function procStat(pid: number): { state: string; startTicks: number; cpuTicks: number } | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
    // rest[0] is field 3 (state); utime/stime are fields 14/15, starttime field 22.
    return { state: rest[0] ?? '?', cpuTicks: Number(rest[11]) + Number(rest[12]), startTicks: Number(rest[19]) };
  } catch (_e) {
    return undefined;
  }
}

/** True when `pid` is still the process we started (same start time) and not a zombie. */
function sameLiveProcess(state: ProcState): boolean {
  const stat = procStat(state.pid);
  return stat !== undefined && stat.startTicks === state.startTicks && stat.state !== 'Z' && stat.state !== 'X';
}

function killGroup(pid: number, signal: NodeJS.Signals | number): boolean {
  try {
    process.kill(-pid, signal);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ESRCH') return false;
    throw err;
  }
}

function killPid(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
  }
}

async function resolveCommand(spec: TaskSpec, cwd: string, envPath: string): Promise<string> {
  const command = spec.command!;
  const candidates = command.includes('/') ? [path.resolve(cwd, command)] : envPath.split(':').filter((d) => d !== '').map((d) => path.join(d, command));
  for (const candidate of candidates) {
    try {
      await fs.access(candidate, fsConstants.X_OK);
      if ((await fs.stat(candidate)).isFile()) return candidate;
    } catch (_e) {
      continue;
    }
  }
  throw new CommandNotFoundError(command, command.includes('/') ? `(no executable file at ${candidates[0]})` : `on PATH ${envPath}`);
}

/**
 * `user` as the ids a process runs with: `name|uid[:group|gid]`, names looked up in this node's /etc/passwd and
 * /etc/group; a user without a group runs with its own primary group (a bare uid unknown here, with gid = uid).
 */
export async function resolveUser(taskId: string, user: string, files = { passwd: '/etc/passwd', group: '/etc/group' }): Promise<{ uid: number; gid: number }> {
  const [who = '', group] = user.split(':');
  const table = async (file: string): Promise<string[][]> => (await fs.readFile(file, 'utf8').catch(() => '')).split('\n').filter((l) => l !== '' && !l.startsWith('#')).map((l) => l.split(':'));
  const passwd = await table(files.passwd);
  const entry = /^\d+$/.test(who) ? passwd.find((p) => p[2] === who) : passwd.find((p) => p[0] === who);
  if (!entry && !/^\d+$/.test(who)) throw new InvalidTaskError(taskId, 'user', `no user "${who}" on this node (${files.passwd})`);
  const uid = Number(entry?.[2] ?? who);
  let gid = Number(entry?.[3] ?? uid);
  if (group !== undefined && group !== '') {
    if (/^\d+$/.test(group)) gid = Number(group);
    else {
      const g = (await table(files.group)).find((x) => x[0] === group);
      if (!g) throw new InvalidTaskError(taskId, 'user', `no group "${group}" on this node (${files.group})`);
      gid = Number(g[2]);
    }
  }
  if (!Number.isSafeInteger(uid) || !Number.isSafeInteger(gid)) throw new InvalidTaskError(taskId, 'user', `"${user}" does not name a uid and gid`);
  return { uid, gid };
}

export class ProcessDriver implements TaskDriver {
  readonly name = 'process' as const;
  readonly #opts: ProcessDriverOptions;
  readonly #log: Logger;
  readonly #clock: Clock;
  readonly #entries = new Map<string, Entry>();
  #isolation: Promise<Isolation> | undefined;
  #closed = false;
  /** Running tasks whose logs are checked for rotation, all by one timer. */
  readonly #rotating = new Set<Entry>();
  #rotateTimer: NodeJS.Timeout | undefined;
  #rotateRound: Promise<void> | undefined;
  /** Running re-attached tasks (not our children), looked for in /proc by one timer. */
  readonly #foreign = new Set<Entry>();
  #foreignTimer: NodeJS.Timeout | undefined;

  constructor(options: ProcessDriverOptions) {
    this.#opts = options;
    this.#log = (options.logger ?? silentLogger()).child({ component: 'driver.process' });
    this.#clock = options.clock ?? systemClock;
  }

  #iso(): Promise<Isolation> {
    this.#isolation ??= detectIsolation(this.#opts.isolation ?? 'auto', this.#opts.cgroupFs);
    return this.#isolation;
  }

  async fingerprint(): Promise<Fingerprint> {
    const iso = await this.#iso();
    try {
      await fs.mkdir(path.join(this.#opts.dataDir, 'tasks'), { recursive: true });
    } catch (err) {
      return { driver: 'process', available: false, reason: `data dir ${this.#opts.dataDir} is not writable: ${describeError(err)}`, attributes: {} };
    }
    return {
      driver: 'process',
      available: true,
      version: process.version,
      cpus: os.cpus().length,
      memoryBytes: os.totalmem(),
      attributes: { isolation: iso.kind, 'isolation.note': iso.note },
    };
  }

  /** Which limit mechanism this driver uses (cgroup v2, cgroup v1, prlimit or none). */
  async isolation(): Promise<Isolation> {
    return this.#iso();
  }

  async start(spec: TaskSpec): Promise<TaskHandle> {
    validateTaskSpec(spec, { command: true });
    if (spec.networkMode === 'bridge') throw new InvalidTaskError(spec.id, 'networkMode', 'a process shares its node\'s network; bridges are for containers');
    const previous = this.#entries.get(spec.id);
    if (previous && previous.exit === undefined) throw new InvalidTaskError(spec.id, 'id', 'a task with this id is already running');
    const taskDir = path.join(this.#opts.dataDir, 'tasks', spec.id);
    const logDir = path.join(taskDir, 'logs');
    const cwd = spec.workingDir ?? taskDir;
    const env: Record<string, string> = { PATH: DEFAULT_PATH, SHOAL_ALLOC_ID: spec.id, SHOAL_TASK_NAME: spec.name, ...spec.env };
    const executable = await resolveCommand(spec, cwd, env['PATH']!);
    await fs.mkdir(logDir, { recursive: true });
    await fs.rm(path.join(taskDir, 'exit.json'), { force: true });
    if (!(await fs.stat(cwd).then((s) => s.isDirectory(), () => false))) throw new InvalidTaskError(spec.id, 'workingDir', `"${cwd}" is not an existing directory`);
    for (const [i, m] of (spec.mounts ?? []).entries()) {
      if (m.type === 'tmpfs') throw new InvalidTaskError(spec.id, `mounts[${i}]`, 'a tmpfs mount is for containers: a process sees its node\'s file systems');
      if (m.type === 'volume') {
        // A named volume is a directory of this node, kept across restarts; the task is told where.
        const dir = path.join(this.#opts.dataDir, 'volumes', m.source);
        await fs.mkdir(dir, { recursive: true });
        env[`SHOAL_VOLUME_${m.source.toUpperCase().replace(/[^A-Z0-9]/g, '_')}`] = dir;
        continue;
      }
      // Processes see the host's filesystem: a mount is a promise that the path exists.
      if (!(await fs.stat(m.source).then(() => true, () => false))) throw new InvalidTaskError(spec.id, `mounts[${i}].source`, `"${m.source}" does not exist`);
    }
    const ids = spec.user === undefined ? undefined : await resolveUser(spec.id, spec.user);
    const iso = await this.#iso();
    const cannot = unenforceable(iso, spec.pidsLimit, spec.ulimits);
    if (cannot) throw new InvalidTaskError(spec.id, spec.pidsLimit !== undefined && cannot.startsWith('a pids') ? 'pidsLimit' : 'ulimits', cannot);
    let cgroup: TaskCgroup | undefined;
    try {
      cgroup = await createTaskCgroup(iso, spec.id, spec.resources, spec.pidsLimit);
    } catch (err) {
      throw new TaskStartError(spec.id, `cannot create its ${iso.kind} cgroup: ${describeError(err)}`, { cause: err });
    }
    const argv = wrapArgv(iso, cgroup, spec.resources, [executable, ...(spec.args ?? [])], ids, spec.ulimits);
    const out = openSync(path.join(logDir, 'stdout.log'), 'a');
    const err = openSync(path.join(logDir, 'stderr.log'), 'a');
    let child: ChildProcess;
    let stat: ReturnType<typeof procStat>;
    try {
      child = spawn(argv[0]!, argv.slice(1), { cwd, env, detached: true, stdio: ['ignore', out, err], ...(cgroup || !ids ? {} : ids) });
      // Read the start time now, before the event loop could reap a task that exits at once.
      stat = child.pid === undefined ? undefined : procStat(child.pid);
    } finally {
      closeSync(out);
      closeSync(err);
    }
    // Record the handle before anything is awaited: an agent that dies now finds the task again with find().
    const handleFile = path.join(taskDir, HANDLE_FILE);
    if (child.pid !== undefined) {
      writeFileSync(handleFile, JSON.stringify({
        version: 1, driver: 'process', taskId: spec.id, spec, startedAtMs: Date.now(),
        state: { pid: child.pid, startTicks: stat?.startTicks ?? -1, taskDir, cgroup: cgroup ? { version: cgroup.version, dirs: cgroup.dirs, memoryDir: cgroup.memoryDir } : null },
      } satisfies TaskHandle));
    }
    const spawned = await new Promise<Error | undefined>((resolve) => {
      child.once('spawn', () => resolve(undefined));
      child.once('error', (e) => resolve(e));
    });
    if (spawned || child.pid === undefined) {
      rmSync(handleFile, { force: true });
      if (cgroup) await removeTaskCgroup(cgroup).catch(() => undefined);
      const code = (spawned as NodeJS.ErrnoException | undefined)?.code;
      if (code === 'ENOENT' || code === 'EACCES') throw new CommandNotFoundError(spec.command!, `(${describeError(spawned)})`, { cause: spawned });
      throw new TaskStartError(spec.id, describeError(spawned), { cause: spawned });
    }
    // The child stays referenced while it runs, so a caller awaiting wait() keeps the process alive; close() lets go.
    const state: ProcState = { pid: child.pid, startTicks: stat?.startTicks ?? -1, taskDir, cgroup: cgroup ?? null };
    const handle: TaskHandle = {
      version: 1,
      driver: 'process',
      taskId: spec.id,
      spec,
      startedAtMs: Date.now(),
      state: { pid: state.pid, startTicks: state.startTicks, taskDir, cgroup: cgroup ? { version: cgroup.version, dirs: cgroup.dirs, memoryDir: cgroup.memoryDir } : null },
    };
    const entry = this.#newEntry(handle, state);
    entry.child = child;
    child.once('exit', (code, signal) => void this.#onChildExit(entry, code, signal));
    this.#watch(entry);
    this.#log.info({ task: spec.id, pid: state.pid, isolation: iso.kind }, 'process task started');
    return handle;
  }

  #newEntry(handle: TaskHandle, state: ProcState): Entry {
    let resolveExit!: (exit: ExitResult) => void;
    const exited = new Promise<ExitResult>((resolve) => (resolveExit = resolve));
    const entry: Entry = { handle, state, exited, resolveExit };
    this.#entries.set(handle.taskId, entry);
    return entry;
  }

  /** Log rotation and health checks, for as long as the task runs and this driver watches it. */
  #watch(entry: Entry): void {
    this.#rotating.add(entry);
    if (!this.#rotateTimer) {
      // Unreferenced: rotation alone must not keep a process alive.
      this.#rotateTimer = setInterval(() => this.#rotateAll(), LIMITS.driverLogRotateCheckMs);
      this.#rotateTimer.unref();
    }
    const hc = entry.handle.spec.healthcheck;
    if (hc) entry.monitor = new HealthMonitor(hc, this.#probe(entry), this.#clock, this.#clock.nowMs());
  }

  /** One rotation round over every running task, one task after the other; a round still running is not doubled. */
  #rotateAll(): void {
    if (this.#rotateRound) return;
    this.#rotateRound = (async () => {
      for (const entry of [...this.#rotating]) {
        await rotateIfNeeded(path.join(entry.state.taskDir, 'logs'))
          .catch((err: unknown) => this.#log.warn({ task: entry.handle.taskId, err: describeError(err) }, 'log rotation failed'));
      }
    })().finally(() => {
      this.#rotateRound = undefined;
    });
  }

  /** Watches a re-attached process (not our child, so no exit event) by polling /proc, with one timer for all. */
  #pollForeign(entry: Entry): void {
    this.#foreign.add(entry);
    this.#foreignTimer ??= setInterval(() => {
      for (const e of [...this.#foreign]) {
        if (sameLiveProcess(e.state)) continue;
        this.#foreign.delete(e); // once: its exit is being read
        void this.#onForeignExit(e);
      }
    }, LIMITS.driverProcessPollMs);
  }

  /** The task no longer runs: it leaves the shared rounds, and a timer with nothing left to do is cleared. */
  #unwatch(entry: Entry): void {
    this.#rotating.delete(entry);
    this.#foreign.delete(entry);
    if (this.#rotating.size === 0 && this.#rotateTimer) {
      clearInterval(this.#rotateTimer);
      this.#rotateTimer = undefined;
    }
    if (this.#foreign.size === 0 && this.#foreignTimer) {
      clearInterval(this.#foreignTimer);
      this.#foreignTimer = undefined;
    }
  }

  #probe(entry: Entry): Probe {
    const spec = entry.handle.spec;
    const test = spec.healthcheck!.test;
    if (test.kind === 'tcp') return tcpProbe(test.port, test.host);
    if (test.kind === 'http') return httpProbe(test.port, test.path, test.host);
    const argv = test.kind === 'cmd' ? [...test.argv] : ['/bin/sh', '-c', test.command];
    const env = { PATH: DEFAULT_PATH, SHOAL_ALLOC_ID: spec.id, ...spec.env };
    const cwd = spec.workingDir ?? entry.state.taskDir;
    return (timeoutMs) => new Promise((resolve) => {
      const chunks: Buffer[] = [];
      let settled = false;
      const finish = (ok: boolean, note: string): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        resolve({ ok, output: clip(Buffer.concat(chunks).toString('utf8') + note) });
      };
      const probe = spawn(argv[0]!, argv.slice(1), { cwd, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
      probe.stdout?.on('data', (d: Buffer) => chunks.push(d));
      probe.stderr?.on('data', (d: Buffer) => chunks.push(d));
      const timer = setTimeout(() => {
        if (probe.pid !== undefined) killGroup(probe.pid, 'SIGKILL');
        finish(false, `health check timed out after ${timeoutMs} ms`);
      }, timeoutMs);
      probe.once('error', (err) => finish(false, describeError(err)));
      probe.once('exit', (code, signal) => finish(code === 0, code === 0 ? '' : ` (exit ${code ?? signal})`));
    });
  }

  async #onChildExit(entry: Entry, code: number | null, signal: NodeJS.Signals | null): Promise<void> {
    // The leader is gone; whatever it left behind in its group or cgroup goes with it.
    killGroup(entry.state.pid, 'SIGKILL');
    const oom = entry.state.cgroup ? (await oomKills(entry.state.cgroup)) > 0 : false;
    // An exited task keeps its files (logs) until destroy(), but not its cgroup: empty ones would pile up.
    if (entry.state.cgroup) await removeTaskCgroup(entry.state.cgroup).catch(() => undefined);
    const exit: ExitResult = { exitCode: code, signal, oomKilled: oom, failed: code !== 0 || oom };
    await fs.writeFile(path.join(entry.state.taskDir, 'exit.json'), JSON.stringify(exit)).catch((err) => this.#log.warn({ err: describeError(err) }, 'cannot record exit status'));
    this.#finish(entry, exit);
  }

  #finish(entry: Entry, exit: ExitResult): void {
    if (entry.exit) return;
    entry.exit = exit;
    this.#unwatch(entry);
    entry.monitor?.stop();
    void rotateIfNeeded(path.join(entry.state.taskDir, 'logs')).catch(() => undefined);
    entry.resolveExit(exit);
    this.#log.info({ task: entry.handle.taskId, ...exit }, 'process task exited');
  }

  #stateOf(handle: TaskHandle): ProcState {
    if (handle.driver !== 'process') throw new InvalidTaskError(handle.taskId, 'handle.driver', `"${handle.driver}" handle given to the process driver`);
    const s = handle.state as unknown as ProcState;
    if (!Number.isSafeInteger(s.pid) || s.pid <= 0 || typeof s.taskDir !== 'string') throw new InvalidTaskError(handle.taskId, 'handle.state', 'has no valid pid/taskDir');
    return { pid: s.pid, startTicks: s.startTicks, taskDir: s.taskDir, cgroup: s.cgroup ?? null };
  }

  /** The entry for a handle, re-attaching (without throwing when lost) if this driver instance has not seen it. */
  async #entry(handle: TaskHandle): Promise<Entry> {
    const known = this.#entries.get(handle.taskId);
    if (known) return known;
    const state = this.#stateOf(handle);
    const entry = this.#newEntry(handle, state);
    if (sameLiveProcess(state)) {
      this.#watch(entry);
      this.#pollForeign(entry);
    } else {
      await this.#onForeignExit(entry);
    }
    return entry;
  }

  /** A re-attached process is gone. Its status is known only if exit.json was written when it exited. */
  async #onForeignExit(entry: Entry): Promise<void> {
    if (entry.exit) return;
    try {
      const recorded = JSON.parse(await fs.readFile(path.join(entry.state.taskDir, 'exit.json'), 'utf8')) as ExitResult;
      this.#finish(entry, recorded);
      return;
    } catch (_e) {
      // No record: it exited while no agent watched it.
    }
    const oom = entry.state.cgroup ? (await oomKills(entry.state.cgroup)) > 0 : false;
    killGroup(entry.state.pid, 'SIGKILL');
    this.#finish(entry, { exitCode: null, signal: null, oomKilled: oom, failed: true, unknownReason: 'the process ended while re-attached (not our child), so its exit status could not be read' });
  }

  async find(taskId: string): Promise<TaskHandle | undefined> {
    try {
      const handle = JSON.parse(await fs.readFile(path.join(this.#opts.dataDir, 'tasks', taskId, HANDLE_FILE), 'utf8')) as TaskHandle;
      return handle.taskId === taskId && handle.driver === 'process' ? handle : undefined;
    } catch (_missing) {
      return undefined;
    }
  }

  async recover(handle: TaskHandle): Promise<void> {
    const entry = await this.#entry(handle);
    if (entry.exit?.unknownReason !== undefined && entry.child === undefined) {
      const state = entry.state;
      const alive = procStat(state.pid);
      const why = alive ? `pid ${state.pid} now belongs to another process (start time ${alive.startTicks}, expected ${state.startTicks})` : `pid ${state.pid} no longer exists`;
      this.#entries.delete(handle.taskId);
      throw new TaskLostError(handle.taskId, why);
    }
  }

  async stop(handle: TaskHandle, signal?: string, graceMs?: number): Promise<void> {
    const params = stopParameters(handle.spec, signal, graceMs);
    const entry = await this.#entry(handle);
    if (entry.exit) return;
    killGroup(entry.state.pid, params.signal as NodeJS.Signals);
    let timer: NodeJS.Timeout | undefined;
    const graceOver = new Promise<'grace'>((resolve) => (timer = setTimeout(() => resolve('grace'), params.graceMs)));
    const first = await Promise.race([entry.exited.then(() => 'exited' as const), graceOver]);
    clearTimeout(timer);
    if (first === 'grace') {
      this.#log.info({ task: handle.taskId, graceMs: params.graceMs }, 'task ignored its stop signal; killing it');
      killGroup(entry.state.pid, 'SIGKILL');
      if (entry.state.cgroup) for (const pid of await cgroupPids(entry.state.cgroup)) killPid(pid);
    }
    await entry.exited;
  }

  async wait(handle: TaskHandle): Promise<ExitResult> {
    return (await this.#entry(handle)).exited;
  }

  async inspect(handle: TaskHandle): Promise<TaskStatus> {
    const entry = await this.#entry(handle);
    const health = entry.monitor?.report() ?? NO_HEALTH;
    if (entry.exit) return { taskId: handle.taskId, state: 'exited', exit: entry.exit, health };
    return { taskId: handle.taskId, state: 'running', pid: entry.state.pid, health };
  }

  logs(handle: TaskHandle, options: LogOptions = {}): AsyncIterable<LogChunk> {
    const state = this.#stateOf(handle);
    const entryPromise = options.follow ? this.#entry(handle) : undefined;
    const closed = (): boolean => this.#closed;
    return {
      async *[Symbol.asyncIterator]() {
        const entry = await entryPromise;
        yield* readLogs(path.join(state.taskDir, 'logs'), options, () => entry === undefined || entry.exit !== undefined || closed());
      },
    };
  }

  async stats(handle: TaskHandle): Promise<TaskStats> {
    const entry = await this.#entry(handle);
    const stat = entry.exit ? undefined : procStat(entry.state.pid);
    if (!stat) throw new DriverOperationError(handle.taskId, 'stats', 'the task is not running');
    const fromCgroup = entry.state.cgroup ? await memoryUsageBytes(entry.state.cgroup) : undefined;
    let rss = 0;
    if (fromCgroup === undefined) {
      const status = await fs.readFile(`/proc/${entry.state.pid}/status`, 'utf8').catch(() => '');
      rss = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0) * 1024;
    }
    return {
      cpuTimeNs: (stat.cpuTicks * 1e9) / USER_HZ,
      memoryBytes: fromCgroup ?? rss,
      source: fromCgroup === undefined ? '/proc (task leader only)' : `cgroup v${entry.state.cgroup!.version} memory, /proc cpu (leader only)`,
    };
  }

  async destroy(handle: TaskHandle): Promise<void> {
    const entry = await this.#entry(handle);
    if (!entry.exit) await this.stop(handle);
    if (entry.state.cgroup) await removeTaskCgroup(entry.state.cgroup).catch((err) => this.#log.warn({ task: handle.taskId, err: describeError(err) }, 'cannot remove cgroup'));
    await fs.rm(entry.state.taskDir, { recursive: true, force: true });
    this.#entries.delete(handle.taskId);
  }

  async close(): Promise<void> {
    this.#closed = true;
    for (const entry of this.#entries.values()) {
      this.#unwatch(entry);
      entry.monitor?.stop();
      // Forget our children: like an agent that exits, this instance no longer records their exit.
      entry.child?.removeAllListeners('exit');
      entry.child?.unref();
    }
    this.#entries.clear();
  }
}
