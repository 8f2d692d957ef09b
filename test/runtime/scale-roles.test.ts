/**
 * Servers and clients on real agents (issue: scale). Seven agents on loopback with no read replicas: five voters
 * (the servers) and two clients. Clients hold no Raft log and run their tasks from the slice they stream from one
 * server. The test checks, in order:
 *   - a client's data dir has no raft.db, and `shoal members` / `operator raft` show the roles;
 *   - `job status`, `alloc ls` and `alloc logs` work through a client (consistent and --stale);
 *   - a server refuses a slice watch for a node other than the caller's (over the API and a forged peer id);
 *   - every server SIGSTOPped: the clients' tasks keep running; SIGCONT: the clients resync (a new job reaches them);
 *   - the server a client watches is SIGKILLed: the client moves to another server and no task restarts; the dead
 *     server is replaced by promoting the other client (labels steer which one).
 */
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SHOAL_BIN, freeUdpPort, processesWith, startAgent, waitFor, type AgentProcess } from '../helpers/agents.js';

t.test('servers and clients: no log on clients, reads through a client, server loss, every server paused', async (t) => {
  const dir = t.testdir({});
  const keyFile = join(dir, 'cluster.key');
  spawnSync(process.execPath, [SHOAL_BIN, 'keygen', keyFile]);
  const seedPort = await freeUdpPort('127.0.0.121');
  const seed = `127.0.0.121:${seedPort}`;
  const marker = `shoal-scale-${process.pid}-${Date.now()}`;
  t.teardown(() => {
    for (const pid of processesWith(marker)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch (_gone) { /* already gone */ }
    }
  });
  const agents = new Map<string, AgentProcess>();
  const start = async (name: string, i: number, zone: string): Promise<AgentProcess> => {
    const a = await startAgent(t, {
      name, dataDir: join(dir, name), bind: i === 1 ? seed : `127.0.0.12${i}:0`, join: i === 1 ? [] : [seed], keyFile,
      extraArgs: ['--bootstrap-expect', '3', '--read-replicas', '0', '--labels', `zone=${zone}`, '--log-level', 'info'],
    });
    agents.set(name, a);
    return a;
  };
  const roles = async (viewer: AgentProcess): Promise<Record<string, string>> => {
    const res = await viewer.client.members.list();
    return Object.fromEntries(res.members.filter((m) => m.status === 1).map((m) => [m.name ?? '', (m.metadata?.roles ?? []).join(',')]));
  };
  const voters = async (viewer: AgentProcess): Promise<string[]> => Object.entries(await roles(viewer)).filter(([, r]) => r.includes('voter')).map(([n]) => n).sort();

  // Five servers first (three bootstrap, two promoted once five agents are alive), then two clients. c6's zone has
  // no server, so autopilot promotes it first when a server dies; c7 stays a client throughout.
  for (const [i, name] of ['s1', 's2', 's3', 's4', 's5'].entries()) await start(name, i + 1, 'a');
  const s1 = agents.get('s1')!;
  await waitFor('five voters', async () => (await voters(s1)).length === 5, 90_000);
  const c6 = await start('c6', 6, 'b');
  const c7 = await start('c7', 7, 'a');
  await waitFor('the two clients are seen as clients by every agent', async () => {
    for (const a of agents.values()) {
      const r = await roles(a);
      if (r['c6'] !== 'client' || r['c7'] !== 'client' || Object.keys(r).length !== 7) return false;
    }
    return true;
  }, 60_000);
  t.same(await voters(s1), ['s1', 's2', 's3', 's4', 's5'], 'the voters are the five servers');
  for (const c of [c6, c7]) {
    t.notOk(existsSync(join(dir, c.name, 'raft.db')), `${c.name}: no Raft log in its data dir`);
    const st = await c.client.operator.raftState();
    t.equal(st.agentRole, 'client', `${c.name}: operator raft says it is a client`);
    t.ok(st.answeredBy && st.answeredBy.startsWith('s'), `${c.name}: a server (${st.answeredBy}) answered for it`);
    t.equal(st.peers.length, 5, 'the servers are listed');
    t.equal(st.clients, 2, 'and the clients counted');
  }
  t.ok(existsSync(join(dir, 's1', 'raft.db')), 'a server has its log');
  const cli = (agent: AgentProcess, ...args: string[]) => spawnSync(process.execPath, [SHOAL_BIN, '--address', agent.api, ...args], { encoding: 'utf8', timeout: 120_000 });
  let r = cli(c7, 'members');
  t.match(r.stdout, /c7\s.*client/, '`shoal members` shows the client role');
  t.match(r.stdout, /voter/, 'and the voters');

  // One task per node; each prints its pid once, so a restart would show as a second line.
  const job = (name: string, replicas: number): string => {
    const file = join(dir, `${name}.yaml`);
    writeFileSync(file, [
      `name: ${name}`,
      'services:',
      '  t:',
      '    x-shoal: { driver: process }',
      '    command: ["/bin/sh", "-c", "echo pid=$$$$; exec sleep 100000"]',
      `    environment: { MARKER: ${marker} }`,
      '    stop_grace_period: 1s',
      '    deploy:',
      `      replicas: ${replicas}`,
      '      placement: { max_replicas_per_node: 1 }',
      '      resources: { reservations: { cpus: "0.01", memory: 8M } }',
      '',
    ].join('\n'));
    return file;
  };
  r = cli(c7, 'job', 'run', job('spread', 7));
  t.equal(r.status, 0, `job run through a client: exit 0\n${r.stdout}${r.stderr}`);
  await waitFor('7 tasks running', () => processesWith(marker).length === 7, 60_000);

  // Reads through a client: consistent (the default) and stale.
  const status = await c7.client.jobs.get({ name: 'spread' });
  t.equal(status.job?.services?.[0]?.running, 7, 'job status through a client');
  const stale = await c7.client.jobs.get({ name: 'spread', stale: true });
  t.ok(Number(stale.index) > 0, 'a stale read answers with the index it was served at');
  r = cli(c6, 'job', 'status', 'spread', '--stale');
  t.equal(r.status, 0, `job status --stale through a client\n${r.stderr}`);
  const allocs = (await c7.client.allocations.list({ job: 'spread' })).allocations;
  t.equal(allocs.length, 7, 'alloc ls through a client');
  const byNode = new Map(allocs.map((a) => [a.nodeName ?? '', a.id ?? '']));
  for (const [reader, owner] of [[c7, 's2'], [c7, 'c7'], [c6, 'c7']] as const) {
    const id = byNode.get(owner)!;
    const logs = await reader.client.allocations.logs({ id: id.slice(0, 8) });
    t.match(Buffer.from(logs.stdout).toString(), /^pid=\d+\n$/, `alloc logs of ${owner}'s task through ${reader.name}`);
  }

  // Bad input: only a node's own agent may watch its slice.
  const res = await fetch(`http://${s1.api}/rpc/shoal.v1.Slices/Watch`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ nodeId: c6.id, sinceIndex: 0, waitMs: 10 }),
  });
  const body = await res.json() as { code?: string; message?: string };
  t.equal(body.code, 'ERR_PERMISSION_DENIED', `a slice watch from the API is refused: ${body.message}`);
  t.match(body.message, /only to that node's own agent/, 'and says why');

  const pidOf = async (reader: AgentProcess, owner: string): Promise<string> => Buffer.from((await reader.client.allocations.logs({ id: byNode.get(owner)! })).stdout).toString();
  const before = { c6: await pidOf(c6, 'c6'), c7: await pidOf(c7, 'c7') };

  // Every server paused: the clients' tasks keep running; resumed: the clients resync.
  const servers = ['s1', 's2', 's3', 's4', 's5'].map((n) => agents.get(n)!);
  for (const s of servers) s.child.kill('SIGSTOP');
  t.teardown(() => {
    for (const s of servers) s.child.kill('SIGCONT');
  });
  await new Promise((resolve) => setTimeout(resolve, 6_000));
  t.equal(processesWith(marker).length, 7, 'with every server stopped, every task still runs');
  const noServer = await c7.client.jobs.get({ name: 'spread' }).then(() => 'answered', (err: Error) => err.message);
  t.match(noServer, /server|quorum|leader|deadline|unreachable/i, `a read through a client fails clearly with no server: ${noServer}`);
  for (const s of servers) s.child.kill('SIGCONT');
  r = cli(c6, 'job', 'run', job('after', 7));
  t.equal(r.status, 0, `after SIGCONT, a new job runs everywhere, the clients included\n${r.stdout}${r.stderr}`);
  await waitFor('14 tasks', () => processesWith(marker).length === 14, 60_000);

  // The server c7 watches dies: c7 moves to another one, with no task restarted; c6 is promoted in its place.
  const watched = (await c7.client.operator.raftState()).answeredBy!;
  t.ok(watched, `c7 watches ${watched}`);
  const victim = agents.get(watched)!;
  victim.child.kill('SIGKILL');
  await victim.exited;
  await waitFor('c7 watches another server', async () => {
    const st = await c7.client.operator.raftState();
    return st.answeredBy !== watched && (st.answeredBy ?? '') !== '';
  }, 30_000);
  await waitFor('c6 promoted to voter', async () => (await voters(c7)).includes('c6'), 60_000);
  t.equal((await roles(c7))['c7'], 'client', 'c7 is still a client');
  t.ok(existsSync(join(dir, 'c6', 'raft.db')), 'the promoted client now holds the log');
  // The tasks on both former and current clients never restarted.
  // Six nodes are left for a job of seven replicas at most one per node: six run, one cannot be placed.
  await waitFor('the job status reflects the lost node', async () => (await c7.client.jobs.get({ name: 'spread' })).job?.services?.[0]?.running === 6, 60_000);
  t.equal(await pidOf(c6, 'c6'), before.c6, 'c6\'s task kept running through its promotion (one pid line)');
  t.equal(await pidOf(c7, 'c7'), before.c7, 'c7\'s task kept running through the server change');
});
