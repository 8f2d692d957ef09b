import t from 'tap';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { SHOAL_BIN, freeUdpPort, startAgent, waitFor, type AgentProcess } from '../helpers/agents.js';

function keygen(dir: string): string {
  const file = join(dir, 'cluster.key');
  const r = spawnSync(process.execPath, [SHOAL_BIN, 'keygen', file], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(r.stderr);
  return file;
}

async function raft(a: AgentProcess) {
  return a.client.operator.raftState();
}

t.test('three identical agents bootstrap one Raft group; the leader fails over; a restarted agent rejoins from disk', async (t) => {
  const dir = t.testdir({});
  const keyFile = keygen(dir);
  const port = await freeUdpPort('127.0.0.71');
  const join1 = [`127.0.0.71:${port}`];
  const agents: AgentProcess[] = [await startAgent(t, { name: 'r1', dataDir: join(dir, 'r1'), bind: `127.0.0.71:${port}`, keyFile, extraArgs: ['--bootstrap-expect', '3'] })];
  const early = await raft(agents[0]!);
  t.equal(early.member, false, 'alone, the first agent does not bootstrap');
  t.match(early.waiting, /waiting for 3 members to bootstrap the cluster \(1 known\)/);
  for (const i of [2, 3]) agents.push(await startAgent(t, { name: `r${i}`, dataDir: join(dir, `r${i}`), bind: `127.0.0.7${i}:0`, join: join1, keyFile, extraArgs: ['--bootstrap-expect', '3'] }));
  await waitFor('every agent sees the same leader and three voters', async () => {
    const states = await Promise.all(agents.map(raft));
    return states.every((s) => s.member && s.leaderId !== '' && s.leaderId === states[0]!.leaderId && s.peers.filter((p) => p.voter).length === 3);
  });
  const before = await raft(agents[0]!);
  const leader = agents.find((a) => a.id === before.leaderId)!;
  t.ok(leader, `leader is ${before.leaderName}`);
  await waitFor('roles reach gossip: the leader shows as voter,leader', async () => {
    const res = await agents[0]!.client.members.list();
    const roles = Object.fromEntries(res.members.map((m) => [m.name ?? '', (m.metadata?.roles ?? []).join(',')]));
    return roles[leader.name] === 'voter,leader' && Object.values(roles).filter((r) => r === 'voter').length === 2;
  });
  const committed = Math.max(...(await Promise.all(agents.map(raft))).map((s) => Number(s.commitIndex)));
  t.ok(committed >= 3, `the node table was committed through Raft (commit index ${committed})`);

  // A write through any agent: followers forward it to the leader over the peer network.
  const viaFollower = agents.find((a) => a !== leader)!;
  const barrier = await viaFollower.client.operator.raftBarrier();
  t.equal(barrier.leaderId, leader.id, 'a follower forwarded the write to the leader');
  t.ok(Number(barrier.index) > committed - 1, `committed at index ${barrier.index}`);
  t.equal((await leader.client.operator.raftBarrier()).leaderId, leader.id);

  leader.child.kill('SIGKILL');
  await leader.exited;
  const survivors = agents.filter((a) => a !== leader);
  await waitFor('a new leader among the survivors', async () => {
    const states = await Promise.all(survivors.map(raft));
    return states.every((s) => s.leaderId !== '' && s.leaderId !== leader.id && s.leaderId === states[0]!.leaderId && Number(s.term) > Number(before.term));
  });
  t.pass('a new leader was elected');

  const restarted = await startAgent(t, { name: leader.name, dataDir: join(dir, leader.name), bind: leader.peer, join: [survivors[0]!.peer], keyFile, extraArgs: ['--bootstrap-expect', '3'] });
  t.equal(restarted.id, leader.id, 'same identity from the data directory');
  await waitFor('the restarted agent follows the new leader and has every committed entry', async () => {
    const [mine, theirs] = await Promise.all([raft(restarted), raft(survivors[0]!)]);
    // A voter again: if it stayed dead past autopilot's grace period it was removed, and comes back as a replica
    // (after being told to drop its stale log) that is promoted once caught up.
    const votersNow = theirs.peers.filter((p) => p.voter).map((p) => p.id);
    return mine.member && mine.role === 'follower' && mine.leaderId === theirs.leaderId && Number(mine.appliedIndex) >= committed && votersNow.length === 3 && votersNow.includes(restarted.id);
  });
  t.pass('rejoined from its SQLite log without losing committed entries');

  // Two of three voters gone: no quorum. A write fails within its deadline and says why, instead of hanging.
  for (const a of [restarted, survivors[1]!]) a.child.kill('SIGKILL');
  const lone = survivors[0]!;
  await waitFor('the lone agent sees the other two dead', async () => {
    const res = await lone.client.members.list();
    return res.members.filter((m) => m.status === 3).length === 2;
  });
  const started = Date.now();
  const err = await lone.client.operator.raftBarrier({ timeoutMs: 3_000 }).catch((e: unknown) => e) as { code: string; message: string };
  t.ok(Date.now() - started < 10_000, 'the call returned instead of hanging');
  t.equal(err.code, 'ERR_NO_QUORUM');
  t.match(err.message, /the cluster has no quorum: only 1 of its 3 voters are alive \(2 needed\)/);
  const cli = spawnSync(process.execPath, [SHOAL_BIN, '--address', survivors[0]!.api, 'operator', 'raft'], { encoding: 'utf8' });
  t.equal(cli.status, 0, cli.stderr);
  t.match(cli.stdout, /^term \d+, leader (r\d|\(none\)); this agent is a server \(\w+\); commit \d+, applied \d+, last \d+; 0 clients\nNAME\s+ID\s+ROLE\s+MATCH\n/);
});

t.test('--bootstrap-expect 1 makes a single-agent development cluster', async (t) => {
  const dir = t.testdir({});
  const keyFile = keygen(dir);
  const port = await freeUdpPort('127.0.0.79');
  const solo = await startAgent(t, { name: 'solo', dataDir: join(dir, 'solo'), bind: `127.0.0.79:${port}`, keyFile, extraArgs: ['--bootstrap-expect', '1'] });
  await waitFor('the single agent leads', async () => (await raft(solo)).role === 'leader');
  const json = spawnSync(process.execPath, [SHOAL_BIN, '--address', solo.api, 'operator', 'raft', '-o', 'json'], { encoding: 'utf8' });
  const state = JSON.parse(json.stdout) as { member: boolean; leaderName: string; peers: { voter: boolean }[] };
  t.same([state.member, state.leaderName, state.peers.length], [true, 'solo', 1]);
  // Idle, the group goes quiet, and both outputs say so.
  await waitFor('the idle group goes quiet', async () => (await raft(solo)).quiesced === true);
  const text = spawnSync(process.execPath, [SHOAL_BIN, '--address', solo.api, 'operator', 'raft'], { encoding: 'utf8' });
  t.match(text.stdout, /; 0 clients; quiet \(idle: no heartbeats, gossip watches the leader\)\n/);
  const quiet = JSON.parse(spawnSync(process.execPath, [SHOAL_BIN, '--address', solo.api, 'operator', 'raft', '-o', 'json'], { encoding: 'utf8' }).stdout) as { quiesced: boolean };
  t.equal(quiet.quiesced, true);
});

t.test('autopilot: five agents grow to five voters; after two voters are killed the set is repaired to three healthy ones', async (t) => {
  const dir = t.testdir({});
  const keyFile = keygen(dir);
  const port = await freeUdpPort('127.0.0.91');
  const agents: AgentProcess[] = [await startAgent(t, { name: 'q1', dataDir: join(dir, 'q1'), bind: `127.0.0.91:${port}`, keyFile })];
  for (const i of [2, 3, 4, 5]) agents.push(await startAgent(t, { name: `q${i}`, dataDir: join(dir, `q${i}`), bind: `127.0.0.9${i}:0`, join: [`127.0.0.91:${port}`], keyFile }));
  await waitFor('five voters and one leader, seen alike by every agent', async () => {
    const states = await Promise.all(agents.map(raft));
    return states.every((s) => s.member && s.leaderId !== '' && s.leaderId === states[0]!.leaderId && s.peers.filter((p) => p.voter).length === 5);
  });
  const st = await raft(agents[0]!);
  const victims = agents.filter((a) => a.id !== st.leaderId).slice(0, 2);
  for (const v of victims) v.child.kill('SIGKILL');
  const alive = agents.filter((a) => !victims.includes(a));
  await waitFor('the voter set is repaired to the three healthy agents', async () => {
    const states = await Promise.all(alive.map(raft));
    const want = alive.map((a) => a.id).sort().join();
    return states.every((s) => s.leaderId !== '' && s.peers.filter((p) => p.voter).map((p) => p.id).sort().join() === want);
  });
  t.pass('autopilot removed the dead voters');
});
