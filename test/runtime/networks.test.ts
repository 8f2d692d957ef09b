/**
 * Shared networks and the catalog against a real agent: `shoal network create|ls|rm`, a job joining a network that
 * does not exist, removing a network a job uses (refused, nothing changes), and a blocking catalog query that
 * answers when the catalog changes; an ingress port another program holds, shown by `node ls` and `job status`.
 */
import t from 'tap';
import { spawnSync } from 'node:child_process';
import net from 'node:net';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SHOAL_BIN, freeUdpPort, startAgent, waitFor } from '../helpers/agents.js';

const INGRESS = 42_500 + (process.pid % 400);
const ENV = { PATH: process.env['PATH'] ?? '/usr/bin:/bin', HOME: process.env['HOME'] ?? '/root' };

t.test('shared networks: create, join, refuse to remove while in use, remove; the catalog answers blocking queries', async (t) => {
  const dir = t.testdir({});
  const keyFile = join(dir, 'cluster.key');
  spawnSync(process.execPath, [SHOAL_BIN, 'keygen', keyFile]);
  const port = await freeUdpPort('127.0.0.1');
  const agent = await startAgent(t, { name: 'solo', dataDir: join(dir, 'solo'), bind: `127.0.0.1:${port}`, keyFile, extraArgs: ['--bootstrap-expect', '1', '--task-ports', '42000-42099'] });
  await waitFor('the single agent leads', async () => (await agent.client.nodes.list()).nodes.length === 1 && (await agent.client.operator.raftState()).role === 'leader');
  const cli = (...args: string[]) => spawnSync(process.execPath, [SHOAL_BIN, '--address', agent.api, ...args], { encoding: 'utf8', env: ENV, timeout: 60_000 });

  const file = join(dir, 'api.yaml');
  writeFileSync(file, [
    'name: api',
    'networks:',
    '  shared: { external: true, name: backbone }',
    'services:',
    '  api:',
    '    x-shoal: { driver: process }',
    '    command: ["sleep", "100000"]',
    '    expose: [3000]',
    '    networks:',
    '      shared: { aliases: [api-v1] }',
    '',
  ].join('\n'));

  const missing = cli('job', 'run', '--detach', file);
  t.equal(missing.status, 1, 'a job on a network that does not exist is refused');
  t.match(missing.stderr, /network "backbone" \(the job's "shared", external\) does not exist: create it with `shoal network create backbone`/);
  t.equal((await agent.client.jobs.list()).jobs.length, 0, 'and not registered');

  t.equal(cli('network', 'ls').stdout, 'No shared networks (create one with `shoal network create NAME`)\n');
  const bad = cli('network', 'create', 'Not_Valid');
  t.equal(bad.status, 1);
  t.match(bad.stderr, /network name "Not_Valid" must be 1-63 lower-case letters/);
  const created = cli('network', 'create', 'backbone', '--internal');
  t.equal(created.status, 0, created.stderr);
  const twice = cli('network', 'create', 'backbone');
  t.equal(twice.status, 1);
  t.match(twice.stderr, /network "backbone" already exists/);

  // A blocking query on the catalog parks until the job's services appear.
  const list0 = await agent.client.services.list({});
  const waiting = agent.client.services.list({ waitIndex: list0.index, waitMs: 20_000 });
  const run = cli('job', 'run', '--detach', file);
  t.equal(run.status, 0, run.stderr);
  const woke = await waiting;
  t.ok(Number(woke.index) > Number(list0.index), 'the blocking query answered with a newer catalog');
  t.same(woke.services.map((s) => `${s.job}/${s.service}`), ['api/api']);
  t.same(woke.services[0]!.networks, [{ network: 'backbone', aliases: ['api-v1'] }], 'on the shared network, by its cluster-wide name');

  const ls = cli('network', 'ls');
  t.match(ls.stdout, /backbone\s+yes\s+api/, 'the network lists the job on it');
  const json = JSON.parse(cli('network', 'ls', '-o', 'json').stdout) as { networks: { name: string; jobs: string[] }[] };
  t.same(json.networks.map((n) => [n.name, n.jobs]), [['backbone', ['api']]]);

  const before = await agent.client.operator.raftState();
  const inUse = cli('network', 'rm', 'backbone');
  t.equal(inUse.status, 1, 'removing a network in use is refused');
  t.match(inUse.stderr, /network "backbone" is in use by job "api": stop it first/);
  t.match(cli('network', 'ls').stdout, /backbone/, 'and it is still there');
  const after = await agent.client.operator.raftState();
  t.ok(Number(after.lastIndex) <= Number(before.lastIndex) + 1, 'nothing but the refused write reached the log');

  t.equal(cli('job', 'stop', 'api').status, 0);
  const gone = cli('network', 'rm', 'backbone');
  t.equal(gone.status, 0, gone.stderr);
  t.equal(cli('network', 'rm', 'backbone').status, 1, 'a second rm finds nothing');
  const status = cli('service', 'status', 'api', 'api');
  t.equal(status.status, 1, 'a stopped job has no services');
  t.match(status.stderr, /no running job named "api"/);

  // An ingress port another program holds on the node: reported by `node ls` and `job status`, and cleared once
  // the agent takes it.
  const squatter = net.createServer();
  await new Promise<void>((resolve) => squatter.listen(INGRESS, '127.0.0.1', resolve));
  const web = join(dir, 'web.yaml');
  writeFileSync(web, ['name: web', 'services:', '  web:', '    x-shoal: { driver: process }', '    command: ["sleep", "100000"]', `    ports: ["${INGRESS}:8080"]`, ''].join('\n'));
  t.equal(cli('job', 'run', web).status, 0);
  await waitFor('the node reports the port taken', async () => (await agent.client.nodes.list()).nodes[0]!.portsTaken?.includes(INGRESS) === true, 30_000);
  t.match(cli('node', 'ls').stdout, new RegExp(`PORTS TAKEN[\\s\\S]*solo[^\\n]*${INGRESS}`), 'node ls shows it');
  t.match(cli('job', 'status', 'web').stdout, new RegExp(`Ingress ports taken[^\\n]*\\n  ${INGRESS} \\(web\\) on solo`), 'job status shows it');
  await new Promise<void>((resolve) => squatter.close(() => resolve()));
  t.equal(cli('job', 'scale', 'web', 'web', '2').status, 0, 'a catalog change makes the agent try again');
  await waitFor('the port is no longer reported', async () => ((await agent.client.nodes.list()).nodes[0]!.portsTaken ?? []).length === 0, 30_000);
  t.notMatch(cli('job', 'status', 'web').stdout, /Ingress ports taken/);
  t.equal(cli('job', 'stop', 'web').status, 0);
});
