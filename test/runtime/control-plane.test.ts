/**
 * The control plane end to end with real agents and real processes: three agents on loopback, a 6-replica
 * process service; SIGKILL one agent and its replicas run again on the survivors; the killed agent comes back,
 * re-attaches to its orphaned tasks and stops them (the leader replaced them); `job stop` leaves nothing running.
 */
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SHOAL_BIN, freeUdpPort, processesWith, startAgent, waitFor, type AgentProcess } from '../helpers/agents.js';

function keygen(dir: string): string {
  const file = join(dir, 'cluster.key');
  const r = spawnSync(process.execPath, [SHOAL_BIN, 'keygen', file], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(r.stderr);
  return file;
}

/** Pids of live processes whose environment contains `marker`. */

function cli(a: AgentProcess, ...args: string[]) {
  return spawnSync(process.execPath, [SHOAL_BIN, '--address', a.api, ...args], { encoding: 'utf8', timeout: 180_000 });
}

t.test('a 6-replica process job survives the SIGKILL of an agent and job stop leaves nothing running', async (t) => {
  const dir = t.testdir({});
  const keyFile = keygen(dir);
  const port = await freeUdpPort('127.0.0.81');
  const seed = `127.0.0.81:${port}`;
  const agents: AgentProcess[] = [];
  for (const i of [1, 2, 3]) {
    agents.push(await startAgent(t, { name: `c${i}`, dataDir: join(dir, `c${i}`), bind: i === 1 ? seed : `127.0.0.8${i}:0`, join: i === 1 ? [] : [seed], keyFile, extraArgs: ['--bootstrap-expect', '3'] }));
  }
  const marker = `shoal-e2e-${process.pid}-${Date.now()}`;
  t.teardown(() => {
    for (const pid of processesWith(marker)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch (_gone) { /* already gone */ }
    }
  });
  const file = join(dir, 'web.yaml');
  writeFileSync(file, [
    'name: web',
    'services:',
    '  web:',
    '    x-shoal: { driver: process }',
    '    command: ["/bin/sh", "-c", "echo started $$SHOAL_SLOT; exec sleep 100000"]',
    `    environment: { E2E_MARKER: ${marker} }`,
    '    deploy:',
    '      replicas: 6',
    '      resources: { reservations: { cpus: "0.01", memory: 8M } }',
    '      restart_policy: { condition: on-failure, delay: 1s }',
    '',
  ].join('\n'));
  await waitFor('a leader and every node in the node table', async () => {
    const nodes = await agents[0]!.client.nodes.list();
    return nodes.nodes.length === 3 && nodes.nodes.every((n) => n.status === 'ready');
  });

  const run = cli(agents[1]!, 'job', 'run', file);
  t.equal(run.status, 0, `job run exits 0\n${run.stdout}\n${run.stderr}`);
  await waitFor('6 replicas running, each its own process', async () => {
    const job = await agents[0]!.client.jobs.get({ name: 'web' });
    return job.job?.services?.[0]?.running === 6 && processesWith(marker).length === 6;
  });
  const before = (await agents[0]!.client.allocations.list({ job: 'web' })).allocations;
  t.equal(before.length, 6);
  t.same(new Set(before.map((a) => a.slot)), new Set([0, 1, 2, 3, 4, 5]), 'one allocation per replica slot');

  const raft = await agents[0]!.client.operator.raftState();
  // Kill an agent that runs something and is not the leader (the leader is tested by the consensus tests).
  const victim = agents.find((a) => a.id !== raft.leaderId && before.some((al) => al.nodeId === a.id))!;
  const victimAllocs = before.filter((a) => a.nodeId === victim.id).map((a) => a.id ?? '');
  t.ok(victimAllocs.length > 0, `${victim.name} runs ${victimAllocs.length} replicas`);
  victim.child.kill('SIGKILL');
  await victim.exited;
  const survivors = agents.filter((a) => a !== victim);
  await waitFor('the killed node\'s replicas run again on the survivors', async () => {
    const allocs = (await survivors[0]!.client.allocations.list({ job: 'web' })).allocations;
    const running = allocs.filter((a) => a.desiredStatus === 'run' && a.clientStatus === 'running');
    return running.length === 6 && running.every((a) => a.nodeId !== victim.id) && new Set(running.map((a) => a.slot)).size === 6;
  }, 120_000);
  const all = (await survivors[0]!.client.allocations.list({ job: 'web', all: true })).allocations;
  for (const id of victimAllocs) {
    const a = all.find((x) => x.id === id)!;
    t.equal(a.desiredStatus, 'stop', `allocation ${id.slice(0, 8)} of the dead node is stopped`);
    t.equal(a.clientStatus, 'lost', 'and marked lost');
  }

  // The dead agent comes back: it re-attaches to the tasks it left running, learns they were replaced, stops them.
  const back = await startAgent(t, { name: victim.name, dataDir: join(dir, victim.name), bind: victim.peer, join: [survivors[0]!.peer], keyFile, extraArgs: ['--bootstrap-expect', '3'] });
  await waitFor('the returning node stops its stale replicas: 6 processes in all', async () => {
    const nodes = await survivors[0]!.client.nodes.list();
    return nodes.nodes.find((n) => n.id === back.id)?.status === 'ready' && processesWith(marker).length === 6;
  }, 120_000);
  t.match(back.output(), /re-attached to a task that kept running/, 'it re-attached instead of starting duplicates');

  const stop = cli(back, 'job', 'stop', 'web');
  t.equal(stop.status, 0, `job stop exits 0\n${stop.stdout}\n${stop.stderr}`);
  await waitFor('nothing of the job runs on any node', () => processesWith(marker).length === 0, 60_000);
  const after = await back.client.jobs.get({ name: 'web' });
  t.equal(after.job!.status, 'dead');
  t.ok(after.allocations.every((a) => a.desiredStatus === 'stop'));
});
