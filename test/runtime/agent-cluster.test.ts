import t, { type Test } from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { SHOAL_BIN, freeUdpPort, startAgent, statuses, waitFor, type AgentProcess } from '../helpers/agents.js';
import { createNetwork, netnsAvailable } from '../helpers/netns.js';

function keygen(dir: string): string {
  const file = join(dir, 'cluster.key');
  const r = spawnSync(process.execPath, [SHOAL_BIN, 'keygen', file], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(r.stderr);
  return file;
}

let lastSeen = '';

async function allSee(agents: AgentProcess[], expected: Record<string, string>): Promise<boolean> {
  for (const a of agents) {
    const seen = await statuses(a);
    lastSeen = `${a.name} sees ${JSON.stringify(seen)}`;
    for (const [name, status] of Object.entries(expected)) if (seen[name] !== status) return false;
  }
  return true;
}

/** On failure, print what the agents last saw and said: membership problems are impossible to read otherwise. */
function diagnoseOnFailure(t: Test, agents: AgentProcess[], view: () => string): void {
  t.teardown(() => {
    if (t.passing()) return;
    t.comment(`last view: ${view()}`);
    for (const a of agents) t.comment(`--- ${a.name} output (tail) ---\n${a.output().slice(-6000)}`);
  });
}

t.test('five agents on loopback: one membership; SIGKILL -> dead, SIGTERM -> left, a second signal exits at once', async (t) => {
  const dir = t.testdir({});
  const keyFile = keygen(dir);
  const firstPort = await freeUdpPort('127.0.0.21');
  const agents: AgentProcess[] = [];
  diagnoseOnFailure(t, agents, () => lastSeen);
  agents.push(await startAgent(t, { name: 'a1', dataDir: join(dir, 'a1'), bind: `127.0.0.21:${firstPort}`, keyFile }));
  for (let i = 2; i <= 5; i++) {
    agents.push(await startAgent(t, { name: `a${i}`, dataDir: join(dir, `a${i}`), bind: `127.0.0.2${i}:0`, join: [`127.0.0.21:${firstPort}`], keyFile }));
  }
  const all = Object.fromEntries(agents.map((a) => [a.name, 'alive']));
  await waitFor('all five agents see five alive members', () => allSee(agents, all));
  t.pass('one membership of five');

  const self = await agents[0]!.client.agent.self();
  t.equal(self.member?.name, 'a1');
  t.equal(self.member?.id, agents[0]!.id);
  t.ok((self.member?.metadata?.resources?.cpuMillicores ?? 0) > 0, 'resources are gossiped');

  const json = spawnSync(process.execPath, [SHOAL_BIN, '--address', agents[1]!.api, 'members', '-o', 'json'], { encoding: 'utf8' });
  t.equal(json.status, 0, json.stderr);
  const listed = JSON.parse(json.stdout) as { name: string; status: string; id: string }[];
  t.same(listed.map((m) => [m.name, m.status]).sort(), [['a1', 'MEMBER_STATUS_ALIVE'], ['a2', 'MEMBER_STATUS_ALIVE'], ['a3', 'MEMBER_STATUS_ALIVE'], ['a4', 'MEMBER_STATUS_ALIVE'], ['a5', 'MEMBER_STATUS_ALIVE']]);
  const table = spawnSync(process.execPath, [SHOAL_BIN, 'members'], { encoding: 'utf8', env: { ...process.env, SHOAL_ADDR: agents[2]!.api } });
  t.match(table.stdout, /^NAME\s+ID\s+ADDRESS\s+STATUS/);
  t.match(table.stdout, /a5\s+[0-9a-f]{8}\s+127\.0\.0\.25:\d+\s+alive/);

  agents[4]!.child.kill('SIGKILL');
  await waitFor('a1..a3 mark the killed a5 dead', () => allSee(agents.slice(0, 3), { a5: 'dead' }));
  t.pass('SIGKILL: dead everywhere');

  agents[3]!.child.kill('SIGTERM');
  t.equal(await agents[3]!.exited, 0, 'SIGTERM: a4 left and exited 0');
  await waitFor('a1..a3 mark a4 left', () => allSee(agents.slice(0, 3), { a4: 'left', a5: 'dead' }));
  t.pass('SIGTERM: left everywhere, not dead');

  // Two signals sent back to back can merge into one (standard signals do not queue): send the second only once the
  // agent has started leaving.
  agents[2]!.child.kill('SIGTERM');
  await waitFor('a3 starts leaving', () => agents[2]!.output().includes('leaving the cluster'), 30_000, 20);
  agents[2]!.child.kill('SIGTERM');
  t.equal(await agents[2]!.exited, 1, 'a second signal exits at once, with status 1');
});

t.test('the CLI says clearly when no agent answers, and refuses bad flags', async (t) => {
  const port = await freeUdpPort('127.0.0.1');
  const none = spawnSync(process.execPath, [SHOAL_BIN, '--address', `127.0.0.1:${port}`, 'members'], { encoding: 'utf8' });
  t.equal(none.status, 1);
  t.match(none.stderr, new RegExp(`no agent answers at http://127\\.0\\.0\\.1:${port} \\(ECONNREFUSED\\)`));
  const badOut = spawnSync(process.execPath, [SHOAL_BIN, 'members', '-o', 'yaml'], { encoding: 'utf8' });
  t.equal(badOut.status, 1);
  t.match(badOut.stderr, /-o\/--output must be table or json, got "yaml"/);
  const dir = t.testdir({});
  const keyFile = keygen(dir);
  const badBind = spawnSync(process.execPath, [SHOAL_BIN, 'agent', '--bind', 'localhost:7000', '--data-dir', join(dir, 'x'), '--cluster-key-file', keyFile], { encoding: 'utf8', timeout: 30_000 });
  t.equal(badBind.status, 1);
  t.match(badBind.stderr, /--bind: "localhost" must be an IP address/);
  const notMine = spawnSync(process.execPath, [SHOAL_BIN, 'agent', '--bind', '10.254.254.254:7000', '--data-dir', join(dir, 'z'), '--cluster-key-file', keyFile], { encoding: 'utf8', timeout: 30_000 });
  t.equal(notMine.status, 1, 'an address this host does not have fails fast instead of hanging');
  t.match(notMine.stderr, /--bind: cannot bind 10\.254\.254\.254 \(EADDRNOTAVAIL\): it is not an address of this host/);
  const noKey = spawnSync(process.execPath, [SHOAL_BIN, 'agent', '--bind', '127.0.0.1:0', '--data-dir', join(dir, 'y'), '--cluster-key-file', join(dir, 'missing.key')], { encoding: 'utf8', timeout: 30_000 });
  t.equal(noKey.status, 1);
  t.match(noKey.stderr, /cannot read cluster key file .*missing\.key/);
});

const hasNetns = netnsAvailable();

/** Member statuses as the agent at `api` inside namespace `ns` sees them, asked with the CLI run in that namespace. */
function statusesInNs(ns: string, api: string): Promise<Record<string, string>> {
  return new Promise((resolve, reject) => {
    const child = spawn('ip', ['netns', 'exec', ns, process.execPath, SHOAL_BIN, '--address', api, 'members', '-o', 'json'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    child.on('exit', (code) => {
      if (code !== 0) return reject(new Error(`shoal members in ${ns} exited ${code}: ${err}`));
      const list = JSON.parse(out) as { name: string; status: string }[];
      resolve(Object.fromEntries(list.map((m) => [m.name, m.status.replace('MEMBER_STATUS_', '').toLowerCase()])));
    });
  });
}

t.test('three agents in network namespaces: one membership; SIGKILL -> dead; SIGTERM -> left', { skip: hasNetns ? false : 'needs root and ip netns' }, async (t) => {
  const net = createNetwork(t, { hosts: 3, subnet: '10.77.61' });
  const dir = t.testdir({});
  const keyFile = keygen(dir);
  const hosts = net.hosts;
  const agents: AgentProcess[] = [];
  for (const [i, h] of hosts.entries()) {
    agents.push(await startAgent(t, {
      name: `h${i + 1}`, dataDir: join(dir, `h${i + 1}`), bind: `${h.ip}:7647`, keyFile, ns: h.ns, api: '127.0.0.1:7646',
      ...(i > 0 ? { join: [`${hosts[0]!.ip}:7647`] } : {}),
    }));
  }
  const view = (i: number) => statusesInNs(hosts[i]!.ns, '127.0.0.1:7646');
  const allSeeNs = async (viewers: number[], expected: Record<string, string>) => {
    for (const v of viewers) {
      const seen = await view(v);
      lastSeen = `h${v + 1} sees ${JSON.stringify(seen)}`;
      for (const [name, status] of Object.entries(expected)) if (seen[name] !== status) return false;
    }
    return true;
  };
  diagnoseOnFailure(t, agents, () => lastSeen);
  await waitFor('all three hosts see three alive members', () => allSeeNs([0, 1, 2], { h1: 'alive', h2: 'alive', h3: 'alive' }));
  t.pass('one membership across three hosts');
  agents[2]!.child.kill('SIGKILL');
  await waitFor('h1 and h2 mark the killed h3 dead', () => allSeeNs([0, 1], { h3: 'dead' }));
  t.pass('SIGKILL across hosts: dead');
  agents[1]!.child.kill('SIGTERM');
  t.equal(await agents[1]!.exited, 0);
  await waitFor('h1 marks h2 left', () => allSeeNs([0], { h2: 'left', h3: 'dead' }));
  t.pass('SIGTERM across hosts: left');
});
