/**
 * Bulk traffic through the routing mesh on real agents: 1 GiB from a task on one node, read through the ingress
 * port of another, crosses their peer link as bulk frames. It must arrive whole, and cost no false suspicion and no
 * election: gossip and Raft on the same link go ahead of it (src/transport/link.ts).
 */
import t from 'tap';
import net from 'node:net';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SHOAL_BIN, freeUdpPort, processesWith, startAgent, statuses, waitFor, type AgentProcess } from '../helpers/agents.js';

const GIB = 1024 * 1024 * 1024;

function keygen(dir: string): string {
  const file = join(dir, 'cluster.key');
  const r = spawnSync(process.execPath, [SHOAL_BIN, 'keygen', file], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(r.stderr);
  return file;
}

/** Reads everything a TCP server sends; resolves with the byte count. */
function drain(host: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    let bytes = 0;
    const s = net.connect({ host, port });
    s.on('data', (d: Buffer) => (bytes += d.length));
    s.on('end', () => resolve(bytes));
    s.on('error', reject);
  });
}

t.test('1 GiB through the mesh across nodes arrives whole, with no suspicion and no election', async (t) => {
  const dir = t.testdir({});
  const keyFile = keygen(dir);
  const seedPort = await freeUdpPort('127.0.0.101');
  const seed = `127.0.0.101:${seedPort}`;
  const agents: AgentProcess[] = [];
  for (const i of [1, 2, 3]) {
    agents.push(await startAgent(t, {
      name: `b${i}`, dataDir: join(dir, `b${i}`), bind: i === 1 ? seed : `127.0.0.10${i}:0`, join: i === 1 ? [] : [seed], keyFile,
      extraArgs: ['--bootstrap-expect', '3', '--task-ports', `${33000 + i * 500}-${33000 + i * 500 + 499}`],
    }));
  }
  const marker = `shoal-bulk-${process.pid}-${Date.now()}`;
  t.teardown(() => {
    for (const pid of processesWith(marker)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch (_gone) { /* already gone */ }
    }
  });
  const ingressPort = 18900 + (process.pid % 90);
  const file = join(dir, 'blob.yaml');
  // A task that sends 1 GiB of zeros to every connection, then closes it.
  const server = `const n=require('net');n.createServer(s=>{let left=${GIB};const c=Buffer.alloc(1<<20);const go=()=>{while(left>0){left-=c.length;if(!s.write(c))return s.once('drain',go)}s.end()};go()}).listen(+process.env.PORT,'127.0.0.1')`;
  writeFileSync(file, [
    'name: blob',
    'services:',
    '  blob:',
    '    x-shoal: { driver: process }',
    `    command: ["node", "-e", ${JSON.stringify(server)}]`,
    `    environment: { E2E_MARKER: ${marker} }`,
    `    ports: ["${ingressPort}:9000"]`,
    '    deploy:',
    '      placement: { constraints: ["node.name == b3"] }',
    '',
  ].join('\n'));
  await waitFor('a leader and every node in the node table', async () => {
    const nodes = await agents[0]!.client.nodes.list();
    return nodes.nodes.length === 3 && nodes.nodes.every((n) => n.status === 'ready');
  });
  const run = spawnSync(process.execPath, [SHOAL_BIN, '--address', agents[0]!.api, 'job', 'run', file], { encoding: 'utf8', timeout: 120_000 });
  t.equal(run.status, 0, `${run.stdout}\n${run.stderr}`);
  await waitFor('the blob service has its endpoint', async () => ((await agents[0]!.client.services.get({ job: 'blob', service: 'blob' })).service?.endpoints?.length ?? 0) === 1, 60_000);
  // Let the cluster go quiet, then note the term and how much each agent has logged.
  await new Promise((r) => setTimeout(r, 2_000));
  const term = Number((await agents[0]!.client.operator.raftState()).term);
  const logged = agents.map((a) => a.output().length);

  const started = Date.now();
  const bytes = await drain('127.0.0.101', ingressPort);
  const seconds = (Date.now() - started) / 1000;
  t.equal(bytes, GIB, `1 GiB arrived through b1's ingress port from the task on b3 (${(GIB / 1048576 / seconds).toFixed(0)} MiB/s)`);

  await new Promise((r) => setTimeout(r, 1_000));
  for (const a of agents) t.equal(Number((await a.client.operator.raftState()).term), term, `${a.name}: no election (term ${term})`);
  for (const [i, a] of agents.entries()) {
    const after = a.output().slice(logged[i]);
    t.notMatch(after, /"msg":"member (suspect|dead)"/, `${a.name}: no member was suspected during the transfer`);
  }
  for (const a of agents) t.same(await statuses(a), { b1: 'alive', b2: 'alive', b3: 'alive' }, `${a.name} sees every member alive`);
});
