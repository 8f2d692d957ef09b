import t from 'tap';
import { NodeCore, type NodeEffect } from '../../src/node/index.js';
import { LIMITS } from '../../src/lib/limits.js';
import { addNode, harness, job, nodeId } from '../scheduler/helpers.js';
import type { SchedulerHarness } from '../../src/scheduler/index.js';

const N1 = nodeId(1);

function setup(yaml: string, name = 'app') {
  const h = harness();
  addNode(h, 1);
  h.apply({ type: 'job.register', job: job(yaml, name) });
  h.drain();
  const core = new NodeCore(N1);
  return { h, core };
}

const kinds = (effects: NodeEffect[]) => effects.map((e) => e.kind);
const starts = (effects: NodeEffect[]) => effects.filter((e) => e.kind === 'start').map((e) => (e as { allocId: string }).allocId);

/** Applies the node's reports as the leader would commit them. */
function report(h: SchedulerHarness, core: NodeCore) {
  const updates = core.reports(h.state);
  if (updates.length > 0) h.apply({ type: 'alloc.update', nodeId: N1, updates });
  return updates;
}

const svc = (policy: string, extra = '') => `services:\n  w:\n    x-shoal: { driver: process }\n    command: run\n    deploy:\n      replicas: 2\n      restart_policy: ${policy}\n${extra}`;

t.test('placed allocations start once; records are persisted before the start; running is reported', async (t) => {
  const { h, core } = setup(svc('{ condition: on-failure }'));
  core.observe(h.state);
  const fx = core.drainEffects();
  t.same(kinds(fx), ['persist', 'start', 'persist', 'start'], 'persist precedes each start');
  core.observe(h.state);
  t.same(core.drainEffects(), [], 'observing again starts nothing twice');
  t.same(report(h, core), [], 'nothing to report while starting');
  for (const id of starts(fx)) core.started(id, `{"h":"${id}"}`);
  const sent = report(h, core);
  t.equal(sent.length, 2);
  t.ok(h.state.allocationsOfJob('app').every((a) => a.clientStatus === 'running' && a.driverHandle.startsWith('{')));
  t.same(report(h, core), [], 'the state is the acknowledgement: nothing more to say');
});

t.test('restart policy: delay, attempts within the window, then failed; the leader replaces a bounded number of times', async (t) => {
  const { h, core } = setup(svc('{ condition: on-failure, delay: 2s, max_attempts: 2, window: 60s }'));
  core.tick(1_000);
  core.observe(h.state);
  const [id] = starts(core.drainEffects());
  core.started(id!, 'h1');
  core.exited(id!, { failed: true, message: 'exit code 3' });
  t.equal(core.task(id!)!.phase, 'restarting');
  t.match(core.task(id!)!.clientMessage, /exit code 3; restarting in 2000 ms/);
  core.tick(2_500);
  core.observe(h.state);
  t.same(starts(core.drainEffects()), [], 'not before the delay');
  core.tick(3_000);
  core.observe(h.state);
  t.same(starts(core.drainEffects()), [id], 'restarted after the delay');
  core.started(id!, 'h2');
  core.exited(id!, { failed: true, message: 'exit code 3' });
  core.tick(5_000);
  core.observe(h.state);
  core.drainEffects();
  core.started(id!, 'h3');
  core.exited(id!, { failed: true, message: 'exit code 3' });
  t.equal(core.task(id!)!.clientStatus, 'failed', 'the third failure within the window gives up');
  t.match(core.task(id!)!.clientMessage, /gave up after 2 restarts within 60000 ms/);
  t.equal(core.task(id!)!.restarts, 2);
  report(h, core);
  h.drain();
  const replacement = h.state.allocationsOfJob('app').find((a) => a.previousAllocId === id);
  t.ok(replacement, 'the leader placed a replacement for the failed allocation');
  t.equal(replacement!.reschedules, 1);
});

t.test('a failed replica is replaced at most LIMITS.schedulerMaxReschedules times', async (t) => {
  const { h, core } = setup(svc('{ condition: on-failure, max_attempts: 0 }', ''));
  let failed = 0;
  for (let round = 0; round < 10; round++) {
    core.observe(h.state);
    const ids = starts(core.drainEffects());
    if (ids.length === 0) break;
    for (const id of ids) {
      core.started(id, 'h');
      if (h.state.allocation(id)!.slot === 0) {
        core.exited(id, { failed: true, message: 'exit code 1' });
        failed++;
      }
    }
    report(h, core);
    h.drain();
  }
  t.equal(failed, LIMITS.schedulerMaxReschedules + 1, 'the first run plus the bounded replacements');
  const slot0 = h.state.allocationsOfJob('app').filter((a) => a.slot === 0);
  t.ok(slot0.every((a) => a.clientStatus === 'failed'));
  t.equal(slot0.filter((a) => a.desiredStatus === 'run').length, 1, 'the last failure is kept, not replaced');
});

t.test('batch tasks complete on exit 0; condition any restarts a service that exits 0; none never restarts', async (t) => {
  const batch = setup(`x-shoal: { type: batch }\n${svc('{ condition: on-failure, delay: 0s }')}`, 'b');
  batch.core.observe(batch.h.state);
  const [b] = starts(batch.core.drainEffects());
  batch.core.started(b!, 'h');
  batch.core.exited(b!, { failed: false, message: 'exit code 0' });
  t.equal(batch.core.task(b!)!.clientStatus, 'complete');

  const any = setup(svc('{ condition: any, delay: 0s }'));
  any.core.observe(any.h.state);
  const [a] = starts(any.core.drainEffects());
  any.core.started(a!, 'h');
  any.core.exited(a!, { failed: false, message: 'exit code 0' });
  any.core.observe(any.h.state);
  t.same(starts(any.core.drainEffects()), [a], 'restarted at once (delay 0)');
  t.equal(any.core.task(a!)!.restarts, 1);

  const none = setup(svc('{ condition: none }'));
  none.core.observe(none.h.state);
  const [n] = starts(none.core.drainEffects());
  none.core.started(n!, 'h');
  none.core.exited(n!, { failed: true, message: 'exit code 1' });
  t.equal(none.core.task(n!)!.clientStatus, 'failed');
  report(none.h, none.core);
  none.h.drain();
  t.notOk(none.h.state.allocationsOfJob('app').some((x) => x.previousAllocId === n), 'condition none: no replacement either');
});

t.test('a start error that retrying cannot fix fails at once; a recoverable one follows the restart policy', async (t) => {
  const { h, core } = setup(svc('{ condition: on-failure, delay: 1s }'));
  core.observe(h.state);
  const [x, y] = starts(core.drainEffects());
  core.startFailed(x!, 'command "run" not found', false);
  t.equal(core.task(x!)!.clientStatus, 'failed');
  t.match(core.task(x!)!.clientMessage, /start failed: command "run" not found/);
  core.startFailed(y!, 'engine unavailable', true);
  t.equal(core.task(y!)!.phase, 'restarting');
});

t.test('stopping: unwanted tasks are stopped, then reported complete; a start in flight is stopped once it lands', async (t) => {
  const { h, core } = setup(svc('{ condition: on-failure }'));
  core.observe(h.state);
  const [x, y] = starts(core.drainEffects());
  core.started(x!, 'hx');
  report(h, core);
  h.apply({ type: 'job.stop', name: 'app' });
  h.drain();
  core.observe(h.state);
  const fx = core.drainEffects();
  t.same(fx.filter((e) => e.kind === 'stop').map((e) => (e as { allocId: string }).allocId), [x], 'the running task is stopped');
  core.stopped(x!);
  core.started(y!, 'hy');
  t.same(core.drainEffects().filter((e) => e.kind === 'stop').map((e) => (e as { allocId: string }).allocId), [y], 'the late start is stopped too');
  core.exited(y!, { failed: true, message: 'killed by SIGTERM' });
  core.stopped(y!);
  report(h, core);
  t.ok(h.state.allocationsOfJob('app').every((a) => a.clientStatus === 'complete'), 'both reported complete');
});

t.test('an allocation stopped before this node started it is reported as never started', async (t) => {
  const { h, core } = setup(svc('{ condition: on-failure }'));
  h.apply({ type: 'job.stop', name: 'app' });
  h.drain();
  core.observe(h.state);
  t.same(starts(core.drainEffects()), []);
  report(h, core);
  t.ok(h.state.allocationsOfJob('app').every((a) => a.clientStatus === 'complete' && /never started here/.test(a.clientMessage)));
});

t.test('restore: live tasks are re-attached, lost ones go through the restart policy, nothing is started twice', async (t) => {
  const { h, core } = setup(svc('{ condition: on-failure, delay: 0s }'));
  core.observe(h.state);
  const persisted = new Map<string, unknown>();
  const [x, y] = starts(core.drainEffects());
  core.started(x!, 'hx');
  core.started(y!, 'hy');
  for (const e of core.drainEffects()) if (e.kind === 'persist') persisted.set(e.allocId, e.record);
  report(h, core);
  const again = new NodeCore(N1);
  again.restore([
    { record: persisted.get(x!) as never, alive: true },
    { record: persisted.get(y!) as never, alive: false, lostReason: 'pid gone' },
  ]);
  again.observe(h.state);
  const fx = again.drainEffects();
  t.same(starts(fx), [y], 'only the lost one starts again');
  t.match(again.task(y!)!.clientMessage, /lost while the agent was down \(pid gone\)/);
  t.equal(again.task(x!)!.phase, 'running');
});

t.test('finished tasks the leader no longer wants are destroyed beyond the kept number, oldest first', async (t) => {
  const { h, core } = setup(`services:\n  w:\n    x-shoal: { driver: process }\n    command: run\n    deploy: { replicas: ${LIMITS.nodeMaxDeadTasksKept + 3} }\n`);
  core.tick(1);
  core.observe(h.state);
  const ids = starts(core.drainEffects());
  ids.forEach((id, i) => {
    core.tick(10 + i);
    core.started(id, `h${i}`);
  });
  report(h, core);
  h.apply({ type: 'job.stop', name: 'app' });
  h.drain();
  core.observe(h.state);
  ids.forEach((id, i) => {
    core.tick(1_000 + i);
    core.stopped(id);
  });
  core.drainEffects();
  core.observe(h.state);
  const destroyed = core.drainEffects().filter((e) => e.kind === 'destroy').map((e) => (e as { allocId: string }).allocId);
  t.same(destroyed, ids.slice(0, 3), 'the three oldest were destroyed');
  t.equal(core.tasks().length, LIMITS.nodeMaxDeadTasksKept);
});

t.test('a task\'s ports and health reach the leader with its status, and health changes are reported as they come', async (t) => {
  const { h, core } = setup(svc('{ condition: on-failure }', '    expose: [3000]\n    healthcheck: { test: ["CMD", "true"], interval: 1s }\n'));
  core.observe(h.state);
  const ids = starts(core.drainEffects());
  core.started(ids[0]!, 'h1', { 3000: 20001 }, true);
  core.started(ids[1]!, 'h2', { 3000: 20002 }, true);
  const sent = report(h, core);
  t.same(sent.map((u) => [u.taskPorts, u.health]), [[{ 3000: 20001 }, 'starting'], [{ 3000: 20002 }, 'starting']], 'ports and a starting check with running');
  t.same(h.state.catalogService('app/w')!.endpoints, [], 'a task whose check has not passed is no endpoint');
  core.health(ids[0]!, 'healthy');
  t.same(report(h, core).map((u) => [u.allocId, u.health]), [[ids[0], 'healthy']], 'only the change is reported');
  t.same(h.state.catalogService('app/w')!.endpoints.map((e) => [e.allocId, e.ports]), [[ids[0], { 3000: 20001 }]]);
  t.same(report(h, core), [], 'nothing more once the state shows it');
  core.health(ids[0]!, 'healthy');
  t.same(report(h, core), [], 'the same status again is no change');
  core.exited(ids[0]!, { failed: true, message: 'exit code 1' });
  const after = report(h, core).find((u) => u.allocId === ids[0]);
  t.equal(after?.taskPorts, undefined, 'a task that is not running reports no ports');
  t.equal(after?.health, undefined, 'and no health');
  t.same(h.state.catalogService('app/w')!.endpoints, [], 'and leaves the catalog');
  t.same(core.task(ids[0]!)!.ports, { 3000: 20001 }, 'but keeps its ports for its restart');
});

t.test('a replicated store\'s allocations are the partition host\'s: no record, no start, no stop, no report', async (t) => {
  const { h, core } = setup(`services:\n  db:\n    x-shoal: { state: { partitions: 2, replicas: 1 } }\n${svc('{ condition: on-failure }').slice('services:\n'.length)}`);
  const db = h.state.allocationsOfJob('app').filter((a) => a.service === 'db');
  t.equal(db.length, 2, 'two replicas placed on the node');
  t.ok(db.every((a) => a.partition !== undefined));
  core.observe(h.state);
  const fx = core.drainEffects();
  t.same(fx.filter((e) => e.kind === 'start').map((e) => (e as { spec: { name: string } }).spec.name), ['w', 'w'], 'only the stateless tasks start');
  t.ok(fx.every((e) => !db.some((a) => a.id === e.allocId)), 'no effect for a replica');
  t.ok(db.every((a) => core.task(a.id) === undefined), 'no task record');
  // The partition host reports the replicas; the node core leaves that alone.
  h.apply({ type: 'alloc.update', nodeId: N1, updates: db.map((a) => ({ allocId: a.id, clientStatus: 'running' as const, clientMessage: 'replica primary', restarts: 0, driverHandle: '' })) });
  core.observe(h.state);
  t.ok(core.reports(h.state).every((u) => !db.some((a) => a.id === u.allocId)), 'nothing reported about them');
  h.apply({ type: 'job.stop', name: 'app' });
  h.drain();
  core.observe(h.state);
  t.ok(core.drainEffects().every((e) => !db.some((a) => a.id === e.allocId)), 'stopping them is not the node core\'s either');
  t.ok(core.reports(h.state).every((u) => !db.some((a) => a.id === u.allocId)), 'nor reporting them "never started"');
  t.ok(db.every((a) => core.task(a.id) === undefined));
});
