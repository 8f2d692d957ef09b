/**
 * Secrets and configs in the replicated state (src/state): created on their own or with a job, immutable, refused
 * for removal while a running job uses them, kept across snapshots, and sent in a client's slice only to a node
 * that runs a task using them. Also the other refusals of a job's registration that leave nothing behind.
 */
import t from 'tap';
import { ClusterState, jobObjectNames, taskSignature } from '../../src/state/cluster-state.js';
import { NodeSlice, sliceDelta } from '../../src/state/slice.js';
import type { Command } from '../../src/state/commands.js';
import type { FileObjectInput } from '../../src/state/types.js';
import { parseJobFile } from '../../src/jobspec/parse.js';
import type { Job } from '../../src/jobspec/types.js';

const BASE = `
name: shop
services:
  web:
    x-shoal: { driver: process }
    command: node web.js
  db:
    x-shoal: { driver: process }
    command: redis-server
`;

/** The job with `db` using its own secret `password` and the external config `tuning`; `web` uses nothing. */
function job(secretName = 'shop_password'): Job {
  const j = parseJobFile(BASE, { file: 'shop.yaml' }).job;
  j.secrets = [{ name: 'password', clusterName: secretName, external: false }];
  j.configs = [{ name: 'tuning', clusterName: 'tuning', external: true }];
  const db = j.services.find((s) => s.name === 'db')!;
  db.secrets = [{ source: 'password', target: 'password', uid: null, gid: null, mode: 0o400 }];
  db.configs = [{ source: 'tuning', target: 'redis.conf', uid: null, gid: null, mode: 0o444 }];
  return j;
}

function object(kind: 'secret' | 'config', name: string, digest = 'd1', job: string | null = null): FileObjectInput {
  return { kind, name, data: Buffer.from(`sealed ${name} ${digest}`).toString('base64'), digest, sizeBytes: 9, job };
}

class World {
  readonly state = new ClusterState();
  index = 0;
  apply(command: Command) {
    return this.state.apply(++this.index, command);
  }
  node(id: string) {
    this.apply({ type: 'node.upsert', node: { id, name: id, address: `${id}:1`, labels: {}, capacity: { cpuMillicores: 8000, memoryBytes: 8e9 }, drivers: ['process'], roles: [] } });
  }
  place(allocs: { id: string; service: string; node: string }[], name = 'shop') {
    const rec = this.state.job(name)!;
    const evalId = this.state.evaluationsOfJob(name).at(-1)!.id;
    return this.apply({
      type: 'plan.apply',
      plan: {
        evalId, jobName: name, jobVersion: rec.version, baseIndex: this.state.index, stops: [], failedPlacements: {},
        placements: allocs.map((a, slot) => ({ id: a.id, jobName: name, jobVersion: rec.version, service: a.service, slot, nodeId: a.node, resources: { cpuMillicores: 0, memoryBytes: 0 }, previousAllocId: '', reschedules: 0 })),
      },
    });
  }
}

t.test('a job registers with its own secret; an external config must exist first', async (t) => {
  const w = new World();
  t.same(jobObjectNames(job(), 'secret'), ['shop_password']);
  t.same(jobObjectNames(job(), 'config'), ['tuning']);
  const missing = w.apply({ type: 'job.register', job: job(), objects: [object('secret', 'shop_password', 'd1', 'shop')] });
  t.match(missing, { ok: false, code: 'ERR_NOT_FOUND', message: /config "tuning" \(used by job "shop"\) does not exist: create it with `shoal config create tuning FILE`/ });
  t.equal(w.state.object('secret', 'shop_password'), undefined, 'a refused registration creates none of its secrets');
  t.equal(w.state.job('shop'), undefined);
  t.equal(w.apply({ type: 'object.create', object: object('config', 'tuning') }).ok, true);
  const ok = w.apply({ type: 'job.register', job: job(), objects: [object('secret', 'shop_password', 'd1', 'shop')] });
  t.equal(ok.ok, true);
  t.match(w.state.object('secret', 'shop_password'), { name: 'shop_password', digest: 'd1', job: 'shop', createIndex: w.index });
  t.same(w.state.jobsUsingObject('secret', 'shop_password'), ['shop']);
  t.same(w.state.objects('config').map((o) => o.name), ['tuning']);
  t.same(w.state.objects('secret').map((o) => o.name), ['shop_password'], 'kinds are apart');
});

t.test('a job with a stateful service that has a task is refused whole; one without is registered; its state is part of what its tasks run', async (t) => {
  const w = new World();
  w.apply({ type: 'object.create', object: object('config', 'tuning') });
  const stateful = (replicas: number, task = ''): Job => {
    const j = job();
    j.services.push(parseJobFile(`services:\n  cart:\n    x-shoal: { state: { partitions: 4, replicas: ${replicas} }${task ? ', driver: process' : ''} }\n${task}`, { file: 'cart.yaml' }).job.services[0]!);
    return j;
  };
  const refused = w.apply({ type: 'job.register', job: stateful(3, '    command: node cart.js\n'), objects: [object('secret', 'shop_password', 'd1', 'shop')] });
  t.same(refused, {
    ok: false, code: 'ERR_UNSUPPORTED', evalIds: [],
    message: 'service "cart" is stateful and has a task (command): a task beside each replica is not run yet; remove command to run it as a replicated store',
  });
  t.equal(w.state.job('shop'), undefined, 'no job');
  t.equal(w.state.object('secret', 'shop_password'), undefined, 'none of its secrets');
  t.same(w.state.evaluationsOfJob('shop'), [], 'nothing to schedule');
  t.equal(w.apply({ type: 'job.register', job: job(), objects: [object('secret', 'shop_password', 'd1', 'shop')] }).ok, true);
  const version = w.state.job('shop')!.version;
  t.match(w.apply({ type: 'job.register', job: stateful(3, '    command: node cart.js\n') }), { ok: false, code: 'ERR_UNSUPPORTED' }, 'nor may a running job gain one');
  t.equal(w.state.job('shop')!.version, version, 'the running job is as it was');
  t.same(w.state.job('shop')!.job.services.map((s) => s.name), ['web', 'db']);
  t.equal(w.apply({ type: 'job.register', job: stateful(3) }).ok, true, 'a replicated store (no task) may join it');
  t.same(w.state.job('shop')!.job.services.map((s) => s.name), ['web', 'db', 'cart']);
  // A change of a service's state rolls its tasks (for a store, there are none to roll: the scheduler keeps its replicas).
  const [three, five] = [stateful(3), stateful(5)].map((j) => j.services.find((s) => s.name === 'cart')!);
  t.not(taskSignature(three!), taskSignature(five!));
});

t.test('a secret never changes: the same contents again are a no-op, other contents are refused whole', async (t) => {
  const w = new World();
  w.apply({ type: 'object.create', object: object('config', 'tuning') });
  w.apply({ type: 'job.register', job: job(), objects: [object('secret', 'shop_password', 'd1', 'shop')] });
  const created = w.state.object('secret', 'shop_password')!.createIndex;
  const again = w.apply({ type: 'job.register', job: job(), objects: [object('secret', 'shop_password', 'd1', 'shop')] });
  t.same(again, { ok: true, evalIds: [] }, 'unchanged job and contents: nothing to schedule');
  t.equal(w.state.object('secret', 'shop_password')!.createIndex, created);
  const changed = job();
  changed.services[0]!.environment = { A: '1' };
  const refused = w.apply({ type: 'job.register', job: changed, objects: [object('secret', 'shop_password', 'd2', 'shop')] });
  t.match(refused, { ok: false, code: 'ERR_ALREADY_EXISTS', message: /secret "shop_password" already exists with other contents .* give the new value a new name/ });
  t.same(w.state.job('shop')!.job.services[0]!.environment, {}, 'the job did not change either');
  t.match(w.apply({ type: 'object.create', object: object('config', 'tuning', 'other') }), { ok: false, code: 'ERR_ALREADY_EXISTS' });
  t.equal(w.apply({ type: 'object.create', object: object('config', 'tuning', 'd1') }).ok, true, 'the same config again is fine');
});

t.test('rotating: a new name rolls only the service that uses it', async (t) => {
  const w = new World();
  w.apply({ type: 'object.create', object: object('config', 'tuning') });
  w.apply({ type: 'job.register', job: job(), objects: [object('secret', 'shop_password', 'd1', 'shop')] });
  const before = w.state.job('shop')!.serviceVersions;
  w.apply({ type: 'object.create', object: object('secret', 'password_v2') });
  const r = w.apply({ type: 'job.register', job: job('password_v2') });
  t.equal(r.ok, true);
  const after = w.state.job('shop')!.serviceVersions;
  t.equal(after['web'], before['web'], 'web does not use the secret: not rolled');
  t.ok(after['db']! > before['db']!, 'db rolls onto the new secret');
});

t.test('removal is refused while a job that is not stopped uses it', async (t) => {
  const w = new World();
  w.apply({ type: 'object.create', object: object('config', 'tuning') });
  w.apply({ type: 'job.register', job: job(), objects: [object('secret', 'shop_password', 'd1', 'shop')] });
  t.match(w.apply({ type: 'object.delete', kind: 'secret', name: 'shop_password' }), { ok: false, code: 'ERR_IN_USE', message: /secret "shop_password" is in use by job "shop": stop it/ });
  t.match(w.apply({ type: 'object.delete', kind: 'config', name: 'tuning' }), { ok: false, code: 'ERR_IN_USE' });
  t.match(w.apply({ type: 'object.delete', kind: 'secret', name: 'tuning' }), { ok: false, code: 'ERR_NOT_FOUND' }, 'a config is not a secret');
  w.apply({ type: 'job.stop', name: 'shop' });
  t.equal(w.apply({ type: 'object.delete', kind: 'secret', name: 'shop_password' }).ok, true);
  t.equal(w.state.object('secret', 'shop_password'), undefined);
  t.match(w.apply({ type: 'object.delete', kind: 'secret', name: 'shop_password' }), { ok: false, code: 'ERR_NOT_FOUND' });
});

t.test('snapshots keep them, and a restored replica agrees', async (t) => {
  const w = new World();
  w.apply({ type: 'object.create', object: object('config', 'tuning') });
  w.apply({ type: 'job.register', job: job(), objects: [object('secret', 'shop_password', 'd1', 'shop')] });
  const copy = ClusterState.restore(JSON.parse(JSON.stringify(w.state.snapshot())));
  t.same(copy.objects('secret'), w.state.objects('secret'));
  t.same(copy.objects('config'), w.state.objects('config'));
  t.match(copy.apply(w.index + 1, { type: 'object.delete', kind: 'secret', name: 'shop_password' }), { ok: false, code: 'ERR_IN_USE' });
  const old = w.state.snapshot();
  delete old.objects;
  t.same(ClusterState.restore(old).objects('secret'), [], 'a snapshot from before secrets restores with none');
});

t.test('a client\'s slice carries a secret only to the node that runs a task using it, and drops it after', async (t) => {
  const w = new World();
  w.node('n1');
  w.node('n2');
  w.apply({ type: 'object.create', object: object('config', 'tuning') });
  w.apply({ type: 'job.register', job: job(), objects: [object('secret', 'shop_password', 'd1', 'shop')] });
  w.place([{ id: 'web-1', service: 'web', node: 'n1' }, { id: 'db-1', service: 'db', node: 'n2' }]);
  const d1 = sliceDelta(w.state, 'n1', 0, 100);
  t.equal(d1.objects, undefined, 'n1 runs only web: no secret, no config');
  const s1 = new NodeSlice('n1');
  s1.merge(d1);
  t.equal(s1.object('secret', 'shop_password'), undefined);
  const d2 = sliceDelta(w.state, 'n2', 0, 100);
  t.same(d2.objects!.map((o) => `${o.kind}/${o.name}`).sort(), ['config/tuning', 'secret/shop_password']);
  const s2 = new NodeSlice('n2');
  s2.merge(d2);
  t.equal(s2.object('secret', 'shop_password')!.data, w.state.object('secret', 'shop_password')!.data, 'sealed as the state holds it');
  // db moves to n1: n1 learns the secret with the new allocation, n2 forgets it once its allocation is gone.
  const at1 = s1.index;
  const at2 = s2.index;
  const rec = w.state.job('shop')!;
  w.apply({
    type: 'plan.apply',
    plan: {
      evalId: w.state.evaluationsOfJob('shop').at(-1)!.id, jobName: 'shop', jobVersion: rec.version, baseIndex: w.state.index, failedPlacements: {},
      stops: [],
      placements: [{ id: 'db-2', jobName: 'shop', jobVersion: rec.version, service: 'db', slot: 1, nodeId: 'n1', resources: { cpuMillicores: 0, memoryBytes: 0 }, previousAllocId: '', reschedules: 0 }],
    },
  });
  s1.merge(sliceDelta(w.state, 'n1', at1, 100));
  t.ok(s1.object('secret', 'shop_password'), 'n1 runs db now: it gets the secret with the allocation');
  const snapshot = w.state.snapshot();
  snapshot.allocations = snapshot.allocations.filter((a) => a.id !== 'db-1');
  const gone = ClusterState.restore(snapshot);
  s2.merge(sliceDelta(gone, 'n2', at2, 100));
  t.equal(s2.object('secret', 'shop_password'), undefined, 'n2 runs no task using it any more: dropped');
});
