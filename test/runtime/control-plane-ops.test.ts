/**
 * Day-two operations through the CLI against three real agents: plan, scale, logs (with follow), health-check
 * restarts, node drain, a batch job, and an agent that leaves (SIGTERM) taking its tasks down with it while the
 * leader places them elsewhere.
 */
import t from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SHOAL_BIN, freeUdpPort, processesWith, startAgent, waitFor, type AgentProcess } from '../helpers/agents.js';


t.test('plan, scale, logs, health restarts, drain, batch jobs and a leaving agent', async (t) => {
  const dir = t.testdir({});
  const keyFile = join(dir, 'cluster.key');
  spawnSync(process.execPath, [SHOAL_BIN, 'keygen', keyFile]);
  const port = await freeUdpPort('127.0.0.101');
  const seed = `127.0.0.101:${port}`;
  const agents: AgentProcess[] = [];
  for (const i of [1, 2, 3]) {
    agents.push(await startAgent(t, { name: `o${i}`, dataDir: join(dir, `o${i}`), bind: i === 1 ? seed : `127.0.0.10${i}:0`, join: i === 1 ? [] : [seed], keyFile, extraArgs: ['--bootstrap-expect', '3'] }));
  }
  const marker = `shoal-ops-${process.pid}-${Date.now()}`;
  t.teardown(() => {
    for (const pid of processesWith(marker)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch (_gone) { /* already gone */ }
    }
  });
  const a1 = agents[0]!;
  const cli = (...args: string[]) => spawnSync(process.execPath, [SHOAL_BIN, '--address', a1.api, ...args], { encoding: 'utf8', timeout: 180_000 });
  await waitFor('three ready nodes', async () => (await a1.client.nodes.list()).nodes.filter((n) => n.status === 'ready').length === 3);

  const svc = (replicas: number) => [
    'name: ops',
    'services:',
    '  web:',
    '    x-shoal: { driver: process }',
    '    command: ["/bin/sh", "-c", "echo hello from $$SHOAL_SLOT; echo to-stderr >&2; exec sleep 100000"]',
    `    environment: { MARKER: ${marker} }`,
    '    stop_grace_period: 2s',
    '    deploy:',
    `      replicas: ${replicas}`,
    '      resources: { reservations: { cpus: "0.01", memory: 8M } }',
    '',
  ].join('\n');
  const file = join(dir, 'ops.yaml');
  writeFileSync(file, svc(3));

  let r = cli('job', 'plan', file);
  t.equal(r.status, 1, `plan of a new job: exit 1 (changes)\n${r.stdout}${r.stderr}`);
  t.match(r.stdout, /create/);
  r = cli('job', 'run', file);
  t.equal(r.status, 0, `job run: exit 0\n${r.stdout}${r.stderr}`);
  r = cli('job', 'plan', file);
  t.equal(r.status, 0, `plan of the same file: exit 0 (no change)\n${r.stdout}${r.stderr}`);
  writeFileSync(file, svc(4));
  r = cli('job', 'plan', file);
  t.equal(r.status, 1, 'plan with one more replica: exit 1');
  t.match(r.stdout, /replicas: 3 -> 4/, 'the diff names the field');
  const planJson = JSON.parse(cli('job', 'plan', file, '-o', 'json').stdout) as { services: { name: string; place: number; stop: number }[] };
  t.match(planJson.services, [{ name: 'web', place: 1, stop: 0 }], 'one placement, nothing stopped');

  r = cli('job', 'scale', 'ops', 'web', '5');
  t.equal(r.status, 0, `scale: exit 0\n${r.stderr}`);
  await waitFor('5 replicas running', async () => (await a1.client.jobs.get({ name: 'ops' })).job?.services?.[0]?.running === 5 && processesWith(marker).length === 5);

  // Logs, by an 8-character prefix, from whichever node runs the allocation.
  const allocs = JSON.parse(cli('alloc', 'ls', '--job', 'ops', '-o', 'json').stdout) as { allocations: { id: string; nodeId: string; slot: number }[] };
  t.equal(allocs.allocations.length, 5);
  for (const a of allocs.allocations) {
    const logs = cli('alloc', 'logs', a.id.slice(0, 8));
    t.equal(logs.status, 0, `alloc logs ${a.id.slice(0, 8)}: exit 0 ${logs.stderr}`);
    t.equal(logs.stdout, `hello from ${a.slot}\n`, 'stdout of the right task');
    t.equal(logs.stderr, 'to-stderr\n', 'stderr to stderr');
  }
  t.match(cli('alloc', 'logs', 'zzzz').stderr, /no allocation starts with "zzzz"/);

  // A batch job whose output arrives over time: `alloc logs -f` streams it and ends when the task exits.
  const batch = join(dir, 'count.yaml');
  writeFileSync(batch, [
    'name: count',
    'x-shoal: { type: batch }',
    'services:',
    '  count:',
    '    x-shoal: { driver: process }',
    '    command: ["/bin/sh", "-c", "for i in 1 2 3 4 5; do echo line $$i; sleep 0.3; done"]',
    `    environment: { MARKER: ${marker} }`,
    '',
  ].join('\n'));
  r = cli('job', 'run', batch, '--detach');
  t.equal(r.status, 0, `batch run --detach: exit 0 ${r.stderr}`);
  let countAlloc = '';
  await waitFor('the batch allocation is placed', async () => {
    const list = await a1.client.allocations.list({ job: 'count' });
    countAlloc = list.allocations[0]?.id ?? '';
    return countAlloc !== '';
  });
  const follow = spawnSync(process.execPath, [SHOAL_BIN, '--address', agents[1]!.api, 'alloc', 'logs', '-f', countAlloc.slice(0, 8)], { encoding: 'utf8', timeout: 60_000 });
  t.equal(follow.status, 0, `logs -f ends with the task ${follow.stderr}`);
  t.equal(follow.stdout, 'line 1\nline 2\nline 3\nline 4\nline 5\n', 'every line, once, in order');
  await waitFor('the batch job completes', async () => (await a1.client.jobs.get({ name: 'count' })).job!.status === 'complete');

  // Health checks: a service that turns unhealthy is restarted by its node.
  const flag = join(dir, 'healthy');
  writeFileSync(flag, '');
  const health = join(dir, 'health.yaml');
  writeFileSync(health, [
    'name: probe',
    'services:',
    '  probe:',
    '    x-shoal: { driver: process }',
    '    command: ["sleep", "100000"]',
    `    environment: { MARKER: ${marker} }`,
    `    healthcheck: { test: ["CMD", "test", "-f", "${flag}"], interval: 200ms, timeout: 1s, retries: 2 }`,
    '    deploy:',
    '      restart_policy: { condition: on-failure, delay: 0s }',
    '',
  ].join('\n'));
  t.equal(cli('job', 'run', health).status, 0, 'health job runs');
  spawnSync('rm', ['-f', flag]);
  await waitFor('the unhealthy task is restarted', async () => {
    const a = (await a1.client.allocations.list({ job: 'probe' })).allocations[0];
    return (a?.restarts ?? 0) >= 1 && /unhealthy after \d+ failed checks/.test(a?.clientMessage ?? '');
  }, 60_000);
  writeFileSync(flag, '');
  t.equal(cli('job', 'stop', 'probe').status, 0);

  // A job no node has room for: `job run` says why and exits 2 (like Nomad); the rest of the cluster is untouched.
  const huge = join(dir, 'huge.yaml');
  writeFileSync(huge, 'name: huge\nservices:\n  huge:\n    x-shoal: { driver: process }\n    command: ["sleep", "100000"]\n    deploy:\n      replicas: 2\n      resources: { reservations: { memory: 100000G } }\n');
  r = cli('job', 'run', huge);
  t.equal(r.status, 2, `placement failure: exit 2\n${r.stdout}${r.stderr}`);
  t.match(`${r.stdout}${r.stderr}`, /huge: 2 replicas? not placed: resources: memory exhausted/, 'with the reason');
  t.equal(cli('job', 'stop', 'huge').status, 0);

  // A port published in host mode is a node resource: 4 replicas wanting it fit on the 3 nodes once each.
  const ported = join(dir, 'ported.yaml');
  writeFileSync(ported, `name: ported\nservices:\n  p:\n    x-shoal: { driver: process }\n    command: ["sleep", "100000"]\n    environment: { MARKER: ${marker} }\n    ports: [{ target: 18080, published: 18080, mode: host }]\n    deploy:\n      replicas: 4\n`);
  r = cli('job', 'run', ported);
  t.equal(r.status, 2, `one replica cannot be placed: exit 2\n${r.stdout}${r.stderr}`);
  t.match(`${r.stdout}${r.stderr}`, /p: 1 replica not placed: port 18080\/tcp in use \(3\)/, 'because every node has the port taken');
  const portAllocs = (await a1.client.allocations.list({ job: 'ported' })).allocations.filter((a) => a.desiredStatus === 'run');
  t.equal(new Set(portAllocs.map((a) => a.nodeId)).size, 3, 'one replica on each node');
  t.equal(cli('job', 'stop', 'ported').status, 0);

  // Drain: the node's allocations move elsewhere and nothing new goes there.
  const victim = agents[1]!;
  r = cli('node', 'drain', victim.name);
  t.equal(r.status, 0, `node drain: exit 0\n${r.stdout}${r.stderr}`);
  const afterDrain = (await a1.client.allocations.list({ job: 'ops' })).allocations;
  t.notOk(afterDrain.some((a) => a.nodeId === victim.id && a.desiredStatus === 'run'), 'nothing left on the drained node');
  await waitFor('5 replicas running off the drained node', async () => {
    const list = (await a1.client.allocations.list({ job: 'ops' })).allocations.filter((a) => a.desiredStatus === 'run' && a.clientStatus === 'running');
    return list.length === 5 && list.every((a) => a.nodeId !== victim.id) && processesWith(marker).length === 5;
  });
  const nodes = JSON.parse(cli('node', 'ls', '-o', 'json').stdout) as { nodes: { name: string; draining: boolean; eligible: boolean }[] };
  t.match(nodes.nodes.find((n) => n.name === victim.name), { draining: true, eligible: false });
  r = cli('node', 'drain', victim.name, '--disable');
  t.equal(r.status, 0);
  await waitFor('the node takes work again', async () => (await a1.client.nodes.list()).nodes.find((n) => n.id === victim.id)?.eligible === true);

  // An agent that leaves stops its tasks; the leader places them on the others.
  const leaving = agents[2]!;
  const onLeaving = (await a1.client.allocations.list({ job: 'ops' })).allocations.filter((a) => a.nodeId === leaving.id).length;
  t.ok(onLeaving > 0, `${leaving.name} runs ${onLeaving} replicas`);
  leaving.child.kill('SIGTERM');
  t.equal(await leaving.exited, 0, 'the leaving agent exits 0');
  await waitFor('5 replicas running on the two remaining nodes, and only 5 processes', async () => {
    const list = (await a1.client.allocations.list({ job: 'ops' })).allocations.filter((a) => a.desiredStatus === 'run' && a.clientStatus === 'running');
    return list.length === 5 && list.every((a) => a.nodeId !== leaving.id) && processesWith(marker).length === 5;
  }, 120_000);

  // A follower answers reads and forwards writes; stop leaves nothing behind.
  const stopper = spawn(process.execPath, [SHOAL_BIN, '--address', agents[1]!.api, 'job', 'stop', 'ops'], { stdio: 'ignore' });
  const code = await new Promise((resolve) => stopper.on('exit', resolve));
  t.equal(code, 0, 'job stop through a follower');
  await waitFor('no task of the test is left running', () => processesWith(marker).length === 0, 60_000);
});
