import t from 'tap';
import { NodeRunner, taskSpecFor } from '../../src/runtime/node-runner.js';
import { silentLogger } from '../../src/log/logger.js';
import type { ExitResult, TaskDriver, TaskHandle, TaskSpec } from '../../src/drivers/index.js';
import type { AllocUpdate } from '../../src/state/index.js';
import type { VolumeSpec } from '../../src/jobspec/types.js';
import { addNode, harness, job, nodeId } from '../scheduler/helpers.js';

const N1 = nodeId(1);

/** A driver whose first task fails at once and whose later ones run until stopped. */
function failOnceDriver(): { driver: TaskDriver; startsAtMs: number[] } {
  const startsAtMs: number[] = [];
  const driver = {
    name: 'process',
    fingerprint: async () => ({ driver: 'process', available: true, attributes: {} }),
    start: async (spec: TaskSpec): Promise<TaskHandle> => {
      startsAtMs.push(Date.now());
      return { version: 1, driver: 'process', taskId: spec.id, spec, startedAtMs: Date.now(), state: { n: startsAtMs.length } };
    },
    wait: (handle: TaskHandle): Promise<ExitResult> => (handle.state['n'] === 1
      ? Promise.resolve({ exitCode: 3, signal: null, oomKilled: false, failed: true })
      : new Promise<ExitResult>(() => undefined)),
    stop: async () => undefined,
    inspect: async (handle: TaskHandle) => ({ taskId: handle.taskId, state: 'running' as const, health: { status: 'none' as const, failingStreak: 0, lastOutput: '' } }),
    recover: async () => undefined,
    destroy: async () => undefined,
    close: async () => undefined,
  } as unknown as TaskDriver;
  return { driver, startsAtMs };
}

t.test('a restart delay ends on time even when the periodic reconcile round is far away', async (t) => {
  const h = harness();
  addNode(h, 1);
  h.apply({ type: 'job.register', job: job('services:\n  w:\n    x-shoal: { driver: process }\n    command: run\n    deploy:\n      replicas: 1\n      restart_policy: { condition: on-failure, delay: 300ms, max_attempts: 3 }\n') });
  h.drain();
  const { driver, startsAtMs } = failOnceDriver();
  const runner = new NodeRunner({
    nodeId: N1, dataDir: t.testdir({}), drivers: new Map([['process', driver]]), logger: silentLogger(),
    state: () => h.state, fresh: () => true,
    report: async (updates: AllocUpdate[]) => {
      h.apply({ type: 'alloc.update', nodeId: N1, updates });
    },
    // Kicked on changes only: the periodic round would come a minute later.
    reconcileMs: 60_000,
  });
  await runner.start();
  t.teardown(() => runner.stop());
  runner.kick();
  const deadline = Date.now() + 5_000;
  while (startsAtMs.length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  t.equal(startsAtMs.length, 2, 'the failed task was started again');
  const delayMs = startsAtMs[1]! - startsAtMs[0]!;
  t.ok(delayMs >= 250 && delayMs < 2_000, `restarted ${delayMs} ms after the first start (delay 300 ms)`);
  t.equal(runner.core.task(h.state.allocationsOfJob('app')[0]!.id)?.phase, 'running');
});

/** A driver whose tasks run until stopped. */
function runningDriver(): { driver: TaskDriver; starts: number } {
  const out = { driver: undefined as unknown as TaskDriver, starts: 0 };
  out.driver = {
    ...failOnceDriver().driver,
    start: async (spec: TaskSpec): Promise<TaskHandle> => {
      out.starts++;
      return { version: 1, driver: 'process', taskId: spec.id, spec, startedAtMs: Date.now(), state: {} };
    },
    wait: () => new Promise<ExitResult>(() => undefined),
  } as unknown as TaskDriver;
  return out;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function until(what: string, cond: () => boolean, ms = 5_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

t.test('a node with no task does not poll, acts on a kick, and polls little once its tasks run', async (t) => {
  const h = harness();
  addNode(h, 1);
  const d = runningDriver();
  let rounds = 0;
  const runner = new NodeRunner({
    nodeId: N1, dataDir: t.testdir({}), drivers: new Map([['process', d.driver]]), logger: silentLogger(),
    state: () => {
      rounds++;
      return h.state;
    },
    fresh: () => true,
    report: async (updates: AllocUpdate[]) => {
      h.apply({ type: 'alloc.update', nodeId: N1, updates });
    },
    // Short, so a runner that still polled would show it many times over in the windows below.
    reconcileMs: 20,
  });
  await runner.start();
  t.teardown(() => runner.stop());
  await until('the first round', () => rounds >= 1);
  const idle = rounds;
  await sleep(300);
  t.equal(rounds, idle, 'no round without a kick while the node has nothing to run');

  h.apply({ type: 'job.register', job: job('services:\n  w:\n    x-shoal: { driver: process }\n    command: run\n    deploy:\n      replicas: 1\n') });
  h.drain();
  runner.kick();
  const alloc = (): string => h.state.allocationsOfJob('app')[0]!.id;
  await until('the task runs and the leader knows it', () => h.state.allocation(alloc())?.clientStatus === 'running');
  await sleep(100);
  const settled = rounds;
  await sleep(300);
  t.ok(rounds - settled <= 1, `at most one round in 300 ms while every task runs (${rounds - settled}; LIMITS.nodeSettledReconcileMs apart)`);
  t.equal(d.starts, 1);
});

t.test('a report that was not committed is retried without a kick', async (t) => {
  const h = harness();
  addNode(h, 1);
  h.apply({ type: 'job.register', job: job('services:\n  w:\n    x-shoal: { driver: process }\n    command: run\n    deploy:\n      replicas: 1\n') });
  h.drain();
  const d = runningDriver();
  let reports = 0;
  const runner = new NodeRunner({
    nodeId: N1, dataDir: t.testdir({}), drivers: new Map([['process', d.driver]]), logger: silentLogger(),
    state: () => h.state, fresh: () => true,
    report: async (updates: AllocUpdate[]) => {
      // The first reports fail, as while there is no leader; once the task runs nothing else kicks the runner.
      if (++reports <= 3) throw new Error('no leader');
      h.apply({ type: 'alloc.update', nodeId: N1, updates });
    },
    reconcileMs: 20,
  });
  await runner.start();
  t.teardown(() => runner.stop());
  const alloc = h.state.allocationsOfJob('app')[0]!.id;
  await until('the running status reaches the leader after failed reports', () => h.state.allocation(alloc)?.clientStatus === 'running');
  t.ok(reports >= 4, `${reports} reports, the first three failed`);
});

t.test('a task\'s options reach its TaskSpec; the host name\'s templates are filled in for the task', async (t) => {
  const { parseJobFile } = await import('../../src/jobspec/index.js');
  const spec = parseJobFile(`name: shop
services:
  web:
    image: x
    user: "101"
    hostname: "{{.Service.Name}}-{{.Task.Slot}}.{{.Node.Hostname}}"
    cap_add: [NET_ADMIN]
    dns: [10.0.0.53]
    deploy: { resources: { limits: { pids: 50 } } }
`, { file: 'shop.yaml' }).job.services[0]!;
  const alloc = { id: 'a'.repeat(32), jobName: 'shop', service: 'web', slot: 2 } as Parameters<typeof taskSpecFor>[0];
  const task = taskSpecFor(alloc, spec, 'service', 'f'.repeat(64), 'node-7');
  t.match(task, { user: '101', hostname: 'web-2.node-7', capAdd: ['NET_ADMIN'], dns: ['10.0.0.53'], pidsLimit: 50 });
  t.equal(task.init, undefined, 'what the file does not set is not sent');
  t.equal(taskSpecFor(alloc, { ...spec, options: undefined }, 'service', 'f'.repeat(64)).user, undefined);
  const withVolumes = { ...spec, volumes: [{ type: 'volume' as const, source: 'data', target: '/data', readOnly: false }, { type: 'volume' as const, source: 'shared', target: '/s', readOnly: true }, { type: 'tmpfs' as const, source: '', target: '/tmp', readOnly: false }] };
  const volumes: VolumeSpec[] = [{ name: 'data', external: null, driverOpts: { type: 'none' } }, { name: 'shared', external: 'team-shared', driverOpts: {} }];
  t.same(taskSpecFor(alloc, withVolumes, 'service', 'f'.repeat(64), 'n', volumes).mounts, [
    { type: 'volume', source: 'shop_data', target: '/data', readOnly: false, driverOpts: { type: 'none' } },
    { type: 'volume', source: 'team-shared', target: '/s', readOnly: true, driverOpts: {} },
    { type: 'tmpfs', source: '', target: '/tmp' },
  ], 'a job\'s volume is named after the job on the node; an external one keeps its name');
});
