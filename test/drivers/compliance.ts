/**
 * The one test suite every TaskDriver passes (after libp2p's interface-compliance-tests). Each case describes the
 * task twice: as a POSIX shell command (run by the process driver on the host and by the docker driver in a
 * busybox image) and as a script for the mock driver (`driverConfig`), which the real drivers ignore.
 *
 * Time passes only through `opts.pass(ms)`: real drivers sleep, the mock advances its simulated clock. Nothing
 * here asserts on durations.
 */
import type { Test } from 'tap';
import type { ExitResult, HealthStatus, LogChunk, LogOptions, TaskDriver, TaskHandle, TaskSpec } from '../../src/drivers/types.js';
import { DriverError } from '../../src/drivers/errors.js';

export interface ComplianceOptions {
  /** A fresh driver instance over the same host (or mock world): calling it again simulates an agent restart. */
  makeDriver: () => Promise<TaskDriver> | TaskDriver;
  /** Fields every spec gets (the docker image, the network mode). */
  baseSpec?: Partial<TaskSpec>;
  /** Lets time pass: a real sleep, or advancing the mock's clock. */
  pass: (ms: number) => Promise<void>;
  /** Kills the task with SIGKILL behind the driver's back (as the OOM killer or an operator would). */
  killFromOutside: (handle: TaskHandle) => Promise<void>;
  /** true, or why OOM cannot be produced by this driver here. */
  oom: true | string;
  /** An image that is neither local nor pullable (docker), or why the case does not apply. */
  missingImage: string | { skip: string };
  /** Whether HTTP/TCP probes run against the host's loopback (processes, host-network containers). */
  hostProbes: true | string;
  /** Prefix for task ids, unique per run. */
  idPrefix: string;
}

/** A case name, the shell script, and the same behaviour for the mock. */
function sh(script: string, mock: Record<string, unknown>): Pick<TaskSpec, 'command' | 'args' | 'driverConfig' | 'stopGraceMs'> {
  // A short grace keeps teardown quick: `sleep` as a container's PID 1 ignores SIGTERM.
  return { command: 'sh', args: ['-c', script], driverConfig: mock, stopGraceMs: 1000 };
}

/** Prints "ready" once its trap is set, so a test can wait for that instead of guessing a delay. */
const FOREVER = 'trap "exit 0" TERM; echo ready; while true; do sleep 1; done';
const DEAF = 'trap "" TERM; echo ready; while true; do sleep 1; done';

export function runDriverCompliance(t: Test, opts: ComplianceOptions): void {
  let seq = 0;

  async function setup(t: Test): Promise<{ driver: TaskDriver; spec: (fields: Partial<TaskSpec>) => TaskSpec; started: (h: TaskHandle) => TaskHandle }> {
    const driver = await opts.makeDriver();
    const handles: TaskHandle[] = [];
    t.teardown(async () => {
      const cleaner = await opts.makeDriver();
      for (const h of handles) await cleaner.destroy(h).catch(() => undefined);
      await cleaner.close();
      await driver.close();
    });
    return {
      driver,
      spec: (fields) => ({ id: `${opts.idPrefix}-${++seq}`, name: `case-${seq}`, ...opts.baseSpec, ...fields }),
      started: (h) => {
        handles.push(h);
        return h;
      },
    };
  }

  /** Lets time pass until the promise settles (real drivers: in 50 ms steps; the mock: its clock moves). */
  async function drive<T>(promise: Promise<T>, stepMs = 50): Promise<T> {
    let settled = false;
    const tracked = promise.finally(() => {
      settled = true;
    });
    tracked.catch(() => undefined);
    for (let i = 0; !settled && i < 10_000; i++) await opts.pass(stepMs);
    return tracked;
  }

  async function until(t: Test, what: string, cond: () => Promise<boolean>, stepMs = 100, maxSteps = 300): Promise<void> {
    for (let i = 0; i < maxSteps; i++) {
      if (await cond()) return;
      await opts.pass(stepMs);
    }
    t.fail(`never happened: ${what}`);
  }

  async function collect(iter: AsyncIterable<LogChunk>): Promise<{ stdout: string; stderr: string }> {
    const out = { stdout: '', stderr: '' };
    for await (const chunk of iter) out[chunk.stream] += chunk.data.toString('utf8');
    return out;
  }

  async function ready(t: Test, driver: TaskDriver, h: TaskHandle): Promise<void> {
    await until(t, 'the task printed ready', async () => (await drive(collect(driver.logs(h, { stderr: false })))).stdout.includes('ready'));
  }

  const logs = (driver: TaskDriver, h: TaskHandle, o: LogOptions = {}): Promise<{ stdout: string; stderr: string }> => drive(collect(driver.logs(h, o)));
  const killed = (e: ExitResult): boolean => e.signal === 'SIGKILL' || e.exitCode === 137;
  const health = async (driver: TaskDriver, h: TaskHandle): Promise<HealthStatus> => (await driver.inspect(h)).health.status;

  function rejectsWith(t: Test, err: unknown, code: string, recoverable: boolean, mentions: string): void {
    t.ok(err instanceof DriverError, `a DriverError (got ${String(err)})`);
    const e = err as DriverError;
    t.equal(e.code, code);
    t.equal(e.recoverable, recoverable, `recoverable is ${recoverable}`);
    t.match(e.message, mentions, 'the message names what was wrong');
  }

  t.test('fingerprint reports the driver available', async (t) => {
    const { driver } = await setup(t);
    const fp = await driver.fingerprint();
    t.equal(fp.driver, driver.name);
    t.equal(fp.available, true, fp.reason ?? '');
  });

  t.test('exit codes: 0 is success, 3 is a failure with its code', async (t) => {
    const { driver, spec, started } = await setup(t);
    const ok = started(await driver.start(spec(sh('exit 0', { runForMs: 10, exitCode: 0 }))));
    const bad = started(await driver.start(spec(sh('exit 3', { runForMs: 10, exitCode: 3 }))));
    const okExit = await drive(driver.wait(ok));
    t.match(okExit, { exitCode: 0, failed: false, oomKilled: false });
    const badExit = await drive(driver.wait(bad));
    t.match(badExit, { exitCode: 3, failed: true, oomKilled: false });
    t.same(await drive(driver.wait(bad)), badExit, 'wait again returns the same result');
    const status = await driver.inspect(bad);
    t.equal(status.state, 'exited');
    t.equal(status.exit?.exitCode, 3);
    await driver.stop(bad);
    t.pass('stopping an exited task is a no-op');
  });

  t.test('a task killed from outside is reported failed', async (t) => {
    const { driver, spec, started } = await setup(t);
    const h = started(await driver.start(spec(sh('sleep 600', {}))));
    t.equal((await driver.inspect(h)).state, 'running');
    await opts.killFromOutside(h);
    const exit = await drive(driver.wait(h));
    t.equal(exit.failed, true);
    t.ok(killed(exit), `reported as killed (${JSON.stringify(exit)})`);
  });

  t.test('stop: a task that handles its stop signal ends without SIGKILL', async (t) => {
    const { driver, spec, started } = await setup(t);
    const h = started(await driver.start(spec(sh(FOREVER, { exitCodeOnStop: 0, stdout: 'ready\n' }))));
    await ready(t, driver, h);
    await drive(driver.stop(h, 'SIGTERM', 20_000));
    const exit = await drive(driver.wait(h));
    t.notOk(killed(exit), `not killed (${JSON.stringify(exit)})`);
    t.equal((await driver.inspect(h)).state, 'exited');
  });

  t.test('stop: a task that ignores SIGTERM is killed after the grace period', async (t) => {
    const { driver, spec, started } = await setup(t);
    const h = started(await driver.start(spec(sh(DEAF, { ignoreStopSignal: true, stdout: 'ready\n' }))));
    await ready(t, driver, h);
    await drive(driver.stop(h, 'SIGTERM', 500));
    const exit = await drive(driver.wait(h));
    t.ok(killed(exit), `killed by SIGKILL after the grace (${JSON.stringify(exit)})`);
    t.equal(exit.failed, true);
  });

  t.test('OOM from a memory limit is reported', { skip: opts.oom === true ? false : opts.oom }, async (t) => {
    const { driver, spec, started } = await setup(t);
    const h = started(await driver.start(spec({
      ...sh('dd if=/dev/zero of=/dev/null bs=96M count=1', { oomAfterMs: 20 }),
      resources: { memoryBytes: 24 * 1024 * 1024 },
    })));
    const exit = await drive(driver.wait(h));
    t.equal(exit.oomKilled, true, JSON.stringify(exit));
    t.equal(exit.failed, true);
  });

  t.test('logs survive the exit: both streams, tail, stream selection', async (t) => {
    const { driver, spec, started } = await setup(t);
    const h = started(await driver.start(spec(sh('echo out1; echo err1 >&2; echo out2', { runForMs: 10, stdout: 'out1\nout2\n', stderr: 'err1\n' }))));
    await drive(driver.wait(h));
    t.same(await logs(driver, h), { stdout: 'out1\nout2\n', stderr: 'err1\n' });
    t.same(await logs(driver, h, { tail: 1 }), { stdout: 'out2\n', stderr: 'err1\n' });
    t.same(await logs(driver, h, { stderr: false }), { stdout: 'out1\nout2\n', stderr: '' });
    t.same(await logs(driver, h, { stdout: false }), { stdout: '', stderr: 'err1\n' });
  });

  t.test('logs follow a running task until it exits', async (t) => {
    const { driver, spec, started } = await setup(t);
    const h = started(await driver.start(spec(sh('echo first; sleep 1; echo second', { runForMs: 1000, stdout: 'first\nsecond\n' }))));
    const followed = await logs(driver, h, { follow: true, stderr: false });
    t.equal(followed.stdout, 'first\nsecond\n');
    t.equal((await driver.inspect(h)).state, 'exited', 'follow ended because the task exited');
  });

  t.test('stats of a running task', async (t) => {
    const { driver, spec, started } = await setup(t);
    const h = started(await driver.start(spec(sh('sleep 600', {}))));
    const s = await driver.stats(h);
    t.ok(s.memoryBytes >= 0 && Number.isFinite(s.memoryBytes), `memory ${s.memoryBytes}`);
    t.ok(s.cpuTimeNs >= 0 && Number.isFinite(s.cpuTimeNs), `cpu ${s.cpuTimeNs}`);
    t.type(s.source, 'string');
  });

  t.test('recover after the driver is recreated (agent restart), then stop', async (t) => {
    const { driver, spec, started } = await setup(t);
    const original = started(await driver.start(spec(sh(FOREVER, { exitCodeOnStop: 0, stdout: 'ready\n' }))));
    await ready(t, driver, original);
    const persisted = JSON.parse(JSON.stringify(original)) as TaskHandle;
    t.same(persisted, original, 'the handle is plain JSON');
    await driver.close();
    const again = await opts.makeDriver();
    t.teardown(() => again.close());
    await again.recover(persisted);
    t.equal((await again.inspect(persisted)).state, 'running', 'still running after the restart');
    await drive(again.stop(persisted, 'SIGTERM', 20_000));
    const exit = await drive(again.wait(persisted));
    t.equal((await again.inspect(persisted)).state, 'exited');
    t.type(exit.failed, 'boolean');
  });

  t.test('recover of a task that died while no agent watched: lost, or exited and failed', async (t) => {
    const { driver, spec, started } = await setup(t);
    const h = started(await driver.start(spec(sh('sleep 600', {}))));
    await driver.close();
    await opts.killFromOutside(h);
    await opts.pass(200);
    const again = await opts.makeDriver();
    t.teardown(() => again.close());
    try {
      await again.recover(h);
      const exit = await drive(again.wait(h));
      t.equal(exit.failed, true, 'reported failed');
    } catch (err) {
      rejectsWith(t, err, 'ERR_TASK_LOST', true, h.taskId);
    }
  });

  t.test('recover of a destroyed task reports it lost', async (t) => {
    const { driver, spec } = await setup(t);
    const h = await driver.start(spec(sh('sleep 600', {})));
    await drive(driver.destroy(h));
    const again = await opts.makeDriver();
    t.teardown(() => again.close());
    const err = await again.recover(h).then(() => undefined, (e: unknown) => e);
    rejectsWith(t, err, 'ERR_TASK_LOST', true, h.taskId);
  });

  t.test('a health check turns healthy, then unhealthy', async (t) => {
    const { driver, spec, started } = await setup(t);
    const h = started(await driver.start(spec({
      ...sh('touch healthy; sleep 4; rm healthy; sleep 600', { healthyForMs: 4000 }),
      healthcheck: { test: { kind: 'cmd-shell', command: 'test -f healthy' }, intervalMs: 200, timeoutMs: 2000, retries: 2, startPeriodMs: 0 },
    })));
    t.not(await health(driver, h), 'none');
    await until(t, 'healthy', async () => (await health(driver, h)) === 'healthy');
    await until(t, 'unhealthy', async () => (await health(driver, h)) === 'unhealthy');
    const report = (await driver.inspect(h)).health;
    t.ok(report.failingStreak >= 2, `failing streak ${report.failingStreak}`);
  });

  t.test('a TCP probe on a closed port makes the task unhealthy', { skip: opts.hostProbes === true ? false : opts.hostProbes }, async (t) => {
    const { driver, spec, started } = await setup(t);
    const h = started(await driver.start(spec({
      ...sh('sleep 600', { healthy: false }),
      healthcheck: { test: { kind: 'tcp', port: 9, host: '127.0.0.1' }, intervalMs: 200, timeoutMs: 1000, retries: 2, startPeriodMs: 0 },
    })));
    await until(t, 'unhealthy', async () => (await health(driver, h)) === 'unhealthy');
    t.match((await driver.inspect(h)).health.lastOutput, /127\.0\.0\.1:9/);
  });

  t.test('a task without a health check reports none', async (t) => {
    const { driver, spec, started } = await setup(t);
    const h = started(await driver.start(spec(sh('sleep 600', {}))));
    t.equal(await health(driver, h), 'none');
  });

  t.test('an image that does not exist is a clear, permanent error', { skip: typeof opts.missingImage === 'string' ? false : opts.missingImage.skip }, async (t) => {
    const { driver, spec } = await setup(t);
    const image = opts.missingImage as string;
    const err = await drive(driver.start(spec({ ...sh('true', { startError: 'image-not-found' }), image }))).then(() => undefined, (e: unknown) => e);
    rejectsWith(t, err, 'ERR_IMAGE_NOT_FOUND', false, image);
  });

  t.test('a command that does not exist is a clear, permanent error', async (t) => {
    const { driver, spec, started } = await setup(t);
    const err = await drive(driver.start(spec({ command: 'shoal-no-such-command', args: ['x'], driverConfig: { startError: 'command-not-found' } }))).then(
      (h) => started(h),
      (e: unknown) => e,
    );
    rejectsWith(t, err, 'ERR_COMMAND_NOT_FOUND', false, 'shoal-no-such-command');
  });

  t.test('an invalid spec is refused before anything is created', async (t) => {
    const { driver, spec } = await setup(t);
    const err = await driver.start({ ...spec(sh('true', {})), id: '../escape' }).then(() => undefined, (e: unknown) => e);
    rejectsWith(t, err, 'ERR_TASK_INVALID', false, 'id');
    const err2 = await driver.start(spec({ ...sh('true', {}), stopSignal: 'SIGNOPE' })).then(() => undefined, (e: unknown) => e);
    rejectsWith(t, err2, 'ERR_TASK_INVALID', false, 'stopSignal');
  });
}
