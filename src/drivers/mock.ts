/**
 * The mock driver, for the simulator and for tests of whatever sits above drivers (after Nomad's
 * drivers/mock). It runs nothing: a task follows a script read from `spec.driverConfig`, on a `Clock` it is
 * given. It sets no timers and reads no wall clock, so a run on a simulated clock is deterministic: whoever
 * moves the clock calls `world.tick()`, which settles everything that became due (exits, kills after a grace
 * period, health probes) in time order.
 *
 * Tasks live in a `MockWorld` (the "machine"), not in the driver, so a new driver over the same world is an
 * agent restart: recover() finds the tasks that kept running.
 *
 * Script (all optional): runForMs (default: until stopped), exitCode (0), startError ('command-not-found' |
 * 'image-not-found' | 'start-failed'), ignoreStopSignal (hang on stop until SIGKILL after the grace),
 * exitCodeOnStop (exit with this code on the stop signal instead of dying from it), oomAfterMs (OOM-killed then),
 * stdout / stderr (written at start), healthy (default true), healthyForMs (probes pass only that long),
 * memoryBytes (reported by stats).
 */
import type { Clock } from '../lib/clock.js';
import { CommandNotFoundError, DriverOperationError, ImageNotFoundError, InvalidTaskError, TaskLostError, TaskStartError } from './errors.js';
import { HealthTracker, NO_HEALTH } from './health.js';
import { lastLines } from './logfiles.js';
import { stopParameters, validateTaskSpec } from './spec.js';
import type { ExitResult, Fingerprint, LogChunk, LogOptions, TaskDriver, TaskHandle, TaskSpec, TaskStats, TaskStatus } from './types.js';

export interface MockScript {
  readonly runForMs?: number;
  readonly exitCode?: number;
  readonly startError?: 'command-not-found' | 'image-not-found' | 'start-failed';
  readonly ignoreStopSignal?: boolean;
  readonly exitCodeOnStop?: number;
  readonly oomAfterMs?: number;
  readonly stdout?: string;
  readonly stderr?: string;
  readonly healthy?: boolean;
  readonly healthyForMs?: number;
  readonly memoryBytes?: number;
}

const NUMBER_FIELDS = ['runForMs', 'exitCode', 'exitCodeOnStop', 'oomAfterMs', 'healthyForMs', 'memoryBytes'] as const;
const BOOLEAN_FIELDS = ['ignoreStopSignal', 'healthy'] as const;
const STRING_FIELDS = ['stdout', 'stderr'] as const;
const START_ERRORS = ['command-not-found', 'image-not-found', 'start-failed'];

/** Reads the script from the spec, refusing unknown fields and wrong types (a typo must not silently run forever). */
export function parseMockScript(spec: TaskSpec): MockScript {
  const raw = spec.driverConfig ?? {};
  const known = new Set<string>([...NUMBER_FIELDS, ...BOOLEAN_FIELDS, ...STRING_FIELDS, 'startError']);
  for (const [key, value] of Object.entries(raw)) {
    if (!known.has(key)) throw new InvalidTaskError(spec.id, `driverConfig.${key}`, `is not a mock script field (known: ${[...known].join(', ')})`);
    const ok = (NUMBER_FIELDS as readonly string[]).includes(key) ? Number.isSafeInteger(value) && (value as number) >= 0
      : (BOOLEAN_FIELDS as readonly string[]).includes(key) ? typeof value === 'boolean'
        : (STRING_FIELDS as readonly string[]).includes(key) ? typeof value === 'string'
          : START_ERRORS.includes(value as string);
    if (!ok) throw new InvalidTaskError(spec.id, `driverConfig.${key}`, `has an invalid value ${JSON.stringify(value)}`);
  }
  return raw as MockScript;
}

interface MockTask {
  readonly spec: TaskSpec;
  readonly script: MockScript;
  readonly startedAtMs: number;
  exit?: ExitResult;
  /** When a stop's grace period ends and SIGKILL follows. */
  killAtMs?: number;
  tracker?: HealthTracker;
  nextProbeAtMs: number;
  waiters: (() => void)[];
}

/** The simulated machine the mock tasks run on; shared by every MockDriver instance over it. */
export class MockWorld {
  readonly tasks = new Map<string, MockTask>();

  constructor(readonly clock: Clock) {}

  /** Settles everything due by the clock's present, task by task in start order, each in time order. */
  tick(): void {
    const now = this.clock.nowMs();
    for (const task of this.tasks.values()) {
      if (task.exit) continue;
      const ends: { atMs: number; exit: ExitResult }[] = [];
      const s = task.script;
      if (s.runForMs !== undefined) ends.push({ atMs: task.startedAtMs + s.runForMs, exit: { exitCode: s.exitCode ?? 0, signal: null, oomKilled: false, failed: (s.exitCode ?? 0) !== 0 } });
      if (s.oomAfterMs !== undefined) ends.push({ atMs: task.startedAtMs + s.oomAfterMs, exit: { exitCode: 137, signal: 'SIGKILL', oomKilled: true, failed: true } });
      if (task.killAtMs !== undefined) ends.push({ atMs: task.killAtMs, exit: { exitCode: null, signal: 'SIGKILL', oomKilled: false, failed: true } });
      ends.sort((a, b) => a.atMs - b.atMs);
      const end = ends[0];
      const probeUntil = Math.min(now, end ? end.atMs - 1 : now);
      const hc = task.spec.healthcheck;
      while (task.tracker && hc && task.nextProbeAtMs <= probeUntil) {
        const at = task.nextProbeAtMs;
        const ok = (s.healthy ?? true) && (s.healthyForMs === undefined || at - task.startedAtMs < s.healthyForMs);
        task.tracker.record(ok, at, ok ? 'mock probe passed' : 'mock probe failed');
        task.nextProbeAtMs += hc.intervalMs;
      }
      if (end && end.atMs <= now) this.finish(task, end.exit);
    }
  }

  finish(task: MockTask, exit: ExitResult): void {
    if (task.exit) return;
    task.exit = exit;
    for (const w of task.waiters.splice(0)) w();
  }

  /** Kills a task behind the driver's back (an operator, the OOM killer). */
  kill(taskId: string, signal = 'SIGKILL'): void {
    const task = this.tasks.get(taskId);
    if (task) this.finish(task, { exitCode: null, signal, oomKilled: false, failed: true });
  }

  ended(task: MockTask): Promise<void> {
    return task.exit ? Promise.resolve() : new Promise((resolve) => task.waiters.push(resolve));
  }
}

export interface MockDriverOptions {
  world: MockWorld;
}

export class MockDriver implements TaskDriver {
  readonly name = 'mock' as const;
  readonly #world: MockWorld;

  constructor(options: MockDriverOptions) {
    this.#world = options.world;
  }

  #task(handle: TaskHandle): MockTask {
    if (handle.driver !== 'mock') throw new InvalidTaskError(handle.taskId, 'handle.driver', `"${handle.driver}" handle given to the mock driver`);
    this.#world.tick();
    const task = this.#world.tasks.get(handle.taskId);
    if (!task) throw new TaskLostError(handle.taskId, 'the mock world holds no such task');
    return task;
  }

  async fingerprint(): Promise<Fingerprint> {
    return { driver: 'mock', available: true, version: 'mock', attributes: { clock: 'given' } };
  }

  async start(spec: TaskSpec): Promise<TaskHandle> {
    validateTaskSpec(spec);
    const script = parseMockScript(spec);
    this.#world.tick();
    if (script.startError === 'command-not-found') throw new CommandNotFoundError(spec.command ?? '(none)', 'in the mock script');
    if (script.startError === 'image-not-found') throw new ImageNotFoundError(spec.image ?? '(none)', 'the mock script says so');
    if (script.startError === 'start-failed') throw new TaskStartError(spec.id, 'the mock script says so');
    const existing = this.#world.tasks.get(spec.id);
    if (existing && !existing.exit) throw new InvalidTaskError(spec.id, 'id', 'a task with this id is already running');
    const now = this.#world.clock.nowMs();
    const task: MockTask = {
      spec,
      script,
      startedAtMs: now,
      nextProbeAtMs: now + (spec.healthcheck?.intervalMs ?? 0),
      waiters: [],
      ...(spec.healthcheck ? { tracker: new HealthTracker(spec.healthcheck, now) } : {}),
    };
    this.#world.tasks.delete(spec.id);
    this.#world.tasks.set(spec.id, task);
    return { version: 1, driver: 'mock', taskId: spec.id, spec, startedAtMs: now, state: {} };
  }

  async stop(handle: TaskHandle, signal?: string, graceMs?: number): Promise<void> {
    const params = stopParameters(handle.spec, signal, graceMs);
    const task = this.#task(handle);
    if (task.exit) return;
    const now = this.#world.clock.nowMs();
    if (params.signal === 'SIGKILL') {
      this.#world.finish(task, { exitCode: null, signal: 'SIGKILL', oomKilled: false, failed: true });
    } else if (task.script.ignoreStopSignal) {
      task.killAtMs = Math.min(task.killAtMs ?? Number.MAX_SAFE_INTEGER, now + params.graceMs);
      this.#world.tick();
    } else {
      const code = task.script.exitCodeOnStop;
      this.#world.finish(task, code === undefined ? { exitCode: null, signal: params.signal, oomKilled: false, failed: true } : { exitCode: code, signal: null, oomKilled: false, failed: code !== 0 });
    }
    await this.#world.ended(task);
  }

  async wait(handle: TaskHandle): Promise<ExitResult> {
    const task = this.#task(handle);
    await this.#world.ended(task);
    return task.exit!;
  }

  async inspect(handle: TaskHandle): Promise<TaskStatus> {
    const task = this.#task(handle);
    const health = task.tracker?.report() ?? NO_HEALTH;
    return task.exit ? { taskId: handle.taskId, state: 'exited', exit: task.exit, health } : { taskId: handle.taskId, state: 'running', health };
  }

  logs(handle: TaskHandle, options: LogOptions = {}): AsyncIterable<LogChunk> {
    const world = this.#world;
    const task = this.#task(handle);
    return {
      async *[Symbol.asyncIterator]() {
        for (const stream of ['stdout', 'stderr'] as const) {
          const text = task.script[stream];
          if (options[stream] === false || !text) continue;
          const data = options.tail === undefined ? Buffer.from(text) : lastLines(Buffer.from(text), options.tail);
          if (data.length > 0) yield { stream, data };
        }
        if (options.follow) {
          // Everything is written at start, so following only means: end when the task does (or when aborted).
          const aborted = new Promise<void>((resolve) => options.signal?.addEventListener('abort', () => resolve(), { once: true }));
          await Promise.race([world.ended(task), aborted]);
        }
      },
    };
  }

  async stats(handle: TaskHandle): Promise<TaskStats> {
    const task = this.#task(handle);
    if (task.exit) throw new DriverOperationError(handle.taskId, 'stats', 'the task is not running');
    const elapsedMs = this.#world.clock.nowMs() - task.startedAtMs;
    return { cpuTimeNs: Math.round(elapsedMs * 100_000), memoryBytes: task.script.memoryBytes ?? 1024 * 1024, source: 'mock script' };
  }

  async recover(handle: TaskHandle): Promise<void> {
    this.#task(handle);
  }

  /** Removes the task at once (SIGKILL if it runs): destroy must not wait on a clock nobody may move. */
  async destroy(handle: TaskHandle): Promise<void> {
    this.#world.tick();
    const task = this.#world.tasks.get(handle.taskId);
    if (!task) return;
    this.#world.finish(task, { exitCode: null, signal: 'SIGKILL', oomKilled: false, failed: true });
    this.#world.tasks.delete(handle.taskId);
  }

  async close(): Promise<void> {
    // Nothing of its own to release: the world (the "machine") keeps the tasks.
  }
}
