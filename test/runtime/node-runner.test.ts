import t from 'tap';
import { NodeRunner } from '../../src/runtime/node-runner.js';
import { silentLogger } from '../../src/log/logger.js';
import type { ExitResult, TaskDriver, TaskHandle, TaskSpec } from '../../src/drivers/index.js';
import type { AllocUpdate } from '../../src/state/index.js';
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
