/**
 * A stateful service on real agents: three servers and a client, a replicated store of 4 partitions × 3 replicas
 * (`x-shoal.state`, no task). Through the CLI and the typed client:
 *   - `job run` waits until every partition has a primary and prints `partitions 4/4 ready`;
 *   - `state put|get|rm|scan` through any agent, a client included; exit 1 for a missing key, 2 for a failed condition;
 *   - `partition ls` shows each partition's range, primary, secondaries and state;
 *   - bad calls get a precise error and change nothing: an unknown service, a stateless service, an oversized value,
 *     a wrong partition kind, a transaction across partitions, a client-set `forwarded` field;
 *   - SIGKILL of the agent holding the most primaries: every acknowledged write is still readable, the partitions it
 *     led take writes again, and every partition is rebuilt to 3 replicas on the remaining nodes.
 */
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { LIMITS } from '../../src/lib/limits.js';
import { SHOAL_BIN, freeUdpPort, startAgent, waitFor, type AgentProcess } from '../helpers/agents.js';

const ENV = { PATH: process.env['PATH'] ?? '/usr/bin:/bin', HOME: process.env['HOME'] ?? '/root' };

const JOB = [
  'name: shop',
  'services:',
  '  carts:',
  '    x-shoal:',
  '      state: { partitions: 4, replicas: 3, collections: [{ name: carts, kind: dictionary }] }',
  '  web:',
  '    x-shoal: { driver: process }',
  '    command: ["sleep", "100000"]',
  '',
].join('\n');

t.test('a replicated store on real agents: run, read and write through any agent, survive the loss of a node', async (t) => {
  const dir = t.testdir({});
  const keyFile = join(dir, 'cluster.key');
  spawnSync(process.execPath, [SHOAL_BIN, 'keygen', keyFile]);
  const seedPort = await freeUdpPort('127.0.0.141');
  const common = ['--read-replicas', '0'];
  const s1 = await startAgent(t, { name: 's1', dataDir: join(dir, 's1'), bind: `127.0.0.141:${seedPort}`, keyFile, extraArgs: ['--bootstrap-expect', '1', ...common] });
  await waitFor('s1 leads', async () => (await s1.client.operator.raftState()).role === 'leader');
  const joiner = (name: string, i: number) => startAgent(t, { name, dataDir: join(dir, name), bind: `127.0.0.14${i}:0`, join: [`127.0.0.141:${seedPort}`], keyFile, extraArgs: common });
  const s2 = await joiner('s2', 2);
  const s3 = await joiner('s3', 3);
  await waitFor('three voters', async () => (await s1.client.operator.raftState()).peers.length === 3, 90_000);
  const c4 = await joiner('c4', 4);
  await waitFor('four ready nodes, c4 a client', async () => {
    const nodes = (await s1.client.nodes.list()).nodes;
    return (await c4.client.operator.raftState()).agentRole === 'client' && nodes.filter((n) => n.status === 'ready').length === 4;
  }, 90_000);
  const agents: AgentProcess[] = [s1, s2, s3, c4];
  const cli = (via: AgentProcess, ...args: string[]) => spawnSync(process.execPath, [SHOAL_BIN, '--address', via.api, ...args], { encoding: 'utf8', env: ENV, timeout: 120_000 });

  writeFileSync(join(dir, 'shop.yml'), JOB);
  const run = cli(c4, 'job', 'run', join(dir, 'shop.yml'));
  t.equal(run.status, 0, `job run exits 0 (${run.stdout}${run.stderr})`);
  t.match(run.stdout, /carts: partitions 4\/4 ready/, 'job run waited for every partition\'s primary');

  const ls = JSON.parse(cli(s2, 'partition', 'ls', 'shop', '-o', 'json').stdout) as { partitions: { partition: number; state: string; range: string; primaryNodeId: string; members: { nodeId: string; role: string }[] }[] };
  t.equal(ls.partitions.length, 4);
  for (const p of ls.partitions) {
    t.equal(p.state, 'ready', `partition ${p.partition} ready`);
    t.equal(new Set(p.members.map((m) => m.nodeId)).size, 3, `partition ${p.partition} has 3 replicas on distinct nodes`);
    t.match(p.range, /^\[-?\d+, -?\d+\]$/);
  }
  const replicaAlloc = (await s1.client.allocations.list({ job: 'shop' })).allocations.find((a) => a.service === 'carts' && a.desiredStatus === 'run')!;
  t.match(cli(s1, 'alloc', 'status', replicaAlloc.id!).stdout, /Service\s+carts \(slot \d+, a replica of partition \d\)/, 'alloc status names the partition');
  t.match(replicaAlloc, { stateful: true, clientStatus: 'running' }, 'a replica\'s allocation runs once its replica does');
  const table = cli(s1, 'partition', 'ls');
  t.match(table.stdout, /JOB\s+SERVICE\s+PARTITION\s+RANGE\s+PRIMARY/);

  // Writes and reads through every agent (the typed client for most, the CLI for one).
  const acked = new Map<string, string>();
  const enc = (text: string): Uint8Array => new TextEncoder().encode(text);
  const dec = (bytes: Uint8Array | null | undefined): string => new TextDecoder().decode(bytes ?? new Uint8Array(0));
  const viaCli = cli(s2, 'state', 'put', 'shop', 'carts', 'cart-0', 'items-0', '-c', 'carts');
  t.equal(viaCli.status, 0, `put through the CLI: ${viaCli.stdout}${viaCli.stderr}`);
  t.match(viaCli.stdout, /cart-0 = version \d+ \(partition \d, new\)/);
  acked.set('cart-0', 'items-0');
  const partitionsHit = new Set<number>();
  await Promise.all(Array.from({ length: 23 }, async (_, j) => {
    const i = j + 1;
    const via = agents[i % agents.length]!;
    const r = await via.client.state.put({ job: 'shop', service: 'carts', collection: 'carts', key: `cart-${i}`, value: enc(`items-${i}`) });
    partitionsHit.add(r.partition);
    acked.set(`cart-${i}`, `items-${i}`);
  }));
  t.equal(partitionsHit.size, 4, '24 keys reach all 4 partitions');
  for (const a of agents) {
    for (const [k, v] of acked) t.equal(dec((await a.client.state.get({ job: 'shop', service: 'carts', collection: 'carts', key: k })).value), v, `${k} read through ${a.name}`);
  }
  const got = cli(c4, 'state', 'get', 'shop', 'carts', 'cart-7', '-c', 'carts');
  t.equal(got.stdout, 'items-7', 'get through the client');
  const local = cli(s3, 'state', 'get', 'shop', 'carts', 'cart-7', '-c', 'carts', '--consistency', 'local', '-o', 'json');
  t.match(JSON.parse(local.stdout), { found: true }, 'a local read answers from a replica');
  const missing = cli(s1, 'state', 'get', 'shop', 'carts', 'nope', '-c', 'carts');
  t.equal(missing.status, 1, 'a missing key exits 1');
  t.match(missing.stderr, /not found/);
  const v = JSON.parse(cli(s1, 'state', 'get', 'shop', 'carts', 'cart-3', '-c', 'carts', '-o', 'json').stdout) as { version: number };
  const stale = cli(s1, 'state', 'put', 'shop', 'carts', 'cart-3', 'x', '-c', 'carts', '--if-version', String(Number(v.version) + 1000));
  t.equal(stale.status, 2, `a failed condition exits 2 (${stale.stderr})`);
  t.equal(cli(s1, 'state', 'put', 'shop', 'carts', 'cart-3', 'items-3b', '-c', 'carts', '--if-version', String(v.version)).status, 0, 'the right version writes');
  acked.set('cart-3', 'items-3b');
  const rm = cli(s2, 'state', 'rm', 'shop', 'carts', 'cart-0', '-c', 'carts');
  t.equal(rm.status, 0);
  acked.delete('cart-0');
  t.equal(cli(s2, 'state', 'rm', 'shop', 'carts', 'cart-0', '-c', 'carts').status, 1, 'removing a missing key exits 1');
  const scan = JSON.parse(cli(c4, 'state', 'scan', 'shop', 'carts', '-c', 'carts', '--limit', '1000', '-o', 'json').stdout) as { entries: { key: string }[] };
  t.same(scan.entries.map((e) => e.key).sort(), [...acked.keys()].sort(), 'a scan without a key visits every partition');

  // Bad calls: precise errors, nothing changed.
  const c = s1.client;
  await t.rejects(c.state.get({ job: 'shop', service: 'nope', collection: 'carts', key: 'k' }), { code: 'ERR_NOT_FOUND', message: /has no service "nope"/ });
  await t.rejects(c.state.get({ job: 'shop', service: 'web', collection: 'carts', key: 'k' }), { message: /not stateful/ });
  await t.rejects(c.state.put({ job: 'shop', service: 'carts', collection: 'carts', key: 'big', value: new Uint8Array(LIMITS.partitionEntryValueMaxBytes + 1) }), { code: 'ERR_PARTITION_LIMIT' });
  await t.rejects(c.state.get({ job: 'shop', service: 'carts', collection: 'carts', key: 'k', partitionKind: 'named', partitionKey: 'eu' }), { code: 'ERR_WRONG_PARTITION_KIND' });
  const keys = [...acked.keys()];
  const far = keys.find((k) => ls.partitions.length > 1 && k !== keys[0]) ?? 'cart-1';
  await t.rejects(c.state.txn({
    job: 'shop', service: 'carts',
    ops: Array.from({ length: 24 }, (_, i) => ({ type: 'put', collection: 'carts', key: `cart-${i}`, value: new Uint8Array([1]) })),
  }), { message: /one partition/ }, `a transaction across partitions is refused (${far})`);
  await t.rejects(c.state.put({ job: 'shop', service: 'carts', collection: 'carts', key: 'k', value: new Uint8Array([1]), forwarded: { partition: 0, group: 'x', client: 'evil', seq: 1, acked: 1 } }), { code: 'ERR_INVALID_ARGUMENT', message: /forwarded/ });
  t.equal(cli(s1, 'state', 'get', 'shop', 'carts', 'big', '-c', 'carts').status, 1, 'the oversized put wrote nothing');
  t.equal(cli(s1, 'state', 'get', 'shop', 'carts', 'cart-1', '-c', 'carts').stdout, 'items-1', 'the refused transaction wrote nothing');

  // Hand partition 0's primary role to one of its secondaries, by name, through a client.
  const p0 = ls.partitions.find((p) => p.partition === 0)!;
  const target = agents.find((a) => a.id !== p0.primaryNodeId && p0.members.some((m) => m.nodeId === a.id))!;
  const moved = cli(c4, 'partition', 'transfer', 'shop', 'carts', '0', '--to', target.name);
  t.equal(moved.status, 0, `partition transfer: ${moved.stdout}${moved.stderr}`);
  t.match(moved.stdout, new RegExp(`primary is now ${target.name}`));
  const afterMove = JSON.parse(cli(s1, 'partition', 'ls', 'shop', 'carts', '-o', 'json').stdout) as typeof ls;
  t.equal(afterMove.partitions.find((p) => p.partition === 0)!.primaryNodeId, target.id, 'partition ls shows the new primary');
  const outsider = agents.find((a) => !p0.members.some((m) => m.nodeId === a.id));
  if (outsider) t.not(cli(s1, 'partition', 'transfer', 'shop', 'carts', '0', '--to', outsider.name).status, 0, 'a node without a replica of it is refused');
  t.not(cli(s1, 'partition', 'transfer', 'shop', 'carts', '9', '--to', target.name).status, 0, 'an unknown partition is refused');
  ls.partitions = afterMove.partitions;

  // Kill the server holding the most primaries (not s1, which the test talks to).
  const counts = new Map<string, number>();
  for (const p of ls.partitions) counts.set(p.primaryNodeId, (counts.get(p.primaryNodeId) ?? 0) + 1);
  const victims = [s2, s3, c4].sort((a, b) => (counts.get(b.id) ?? 0) - (counts.get(a.id) ?? 0));
  const victim = victims[0]!;
  victim.child.kill('SIGKILL');
  await victim.exited;
  const alive = agents.filter((a) => a !== victim);
  let lastErr = '';
  const killedAt = Date.now();
  await waitFor('every partition takes writes again', async () => {
    try {
      const hit = new Set<number>();
      for (let p = 0; p < 24; p++) hit.add((await alive[p % alive.length]!.client.state.put({ job: 'shop', service: 'carts', collection: 'carts', key: `after-${p}`, value: enc('v') }, { timeoutMs: 5_000 })).partition);
      return hit.size === 4;
    } catch (err) {
      lastErr = (err as Error).message;
      return false;
    }
  }, 120_000).catch((err: Error) => {
    for (const a of alive) {
      const lines = a.output().split('\n').filter((l) => /partition|raft/.test(l)).slice(-40);
      t.comment(`--- ${a.name} (${a.id.slice(0, 12)}) ---\n${lines.join('\n')}`);
    }
    throw new Error(`${err.message}: ${lastErr}`);
  });
  t.comment(`every partition took writes again ${Date.now() - killedAt} ms after the SIGKILL of ${victim.name}`);
  for (const [k, value] of acked) t.equal(dec((await alive[0]!.client.state.get({ job: 'shop', service: 'carts', collection: 'carts', key: k })).value), value, `${k} survived the loss of ${victim.name}`);
  let seen = '';
  await waitFor('every partition rebuilt to 3 replicas on live nodes', async () => {
    const now = JSON.parse(cli(s1, 'partition', 'ls', 'shop', '-o', 'json').stdout) as typeof ls;
    seen = JSON.stringify(now.partitions.map((p) => [p.partition, p.state, p.members.map((m) => `${m.nodeId.slice(0, 6)}:${m.role}`)]));
    return now.partitions.every((p) => p.state === 'ready' && p.members.length === 3 && !p.members.some((m) => m.nodeId === victim.id));
  }, 120_000).catch((err: Error) => {
    throw new Error(`${err.message}: ${seen}`);
  });
  t.pass(`rebuilt ${Date.now() - killedAt} ms after the SIGKILL: ${seen}`);
});
