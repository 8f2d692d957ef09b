/**
 * A Compose service with an image runs as containers through the agent's docker driver, on a private dockerd:
 * `shoal job run` until running, logs from the container, `job stop` until the containers are gone from "running".
 */
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SHOAL_BIN, freeUdpPort, startAgent, waitFor } from '../helpers/agents.js';
import { startPrivateDockerd, TEST_IMAGE } from '../helpers/docker.js';

const engine = await startPrivateDockerd();
const skip = 'skip' in engine ? engine.skip : false;
if (!('skip' in engine)) t.teardown(() => engine.stop());

t.test('an image service runs as containers on the node and stops with the job', { skip }, async (t) => {
  if ('skip' in engine) return;
  const dir = t.testdir({});
  const keyFile = join(dir, 'cluster.key');
  spawnSync(process.execPath, [SHOAL_BIN, 'keygen', keyFile]);
  const port = await freeUdpPort('127.0.0.1');
  const agent = await startAgent(t, {
    name: 'dock', dataDir: join(dir, 'dock'), bind: `127.0.0.1:${port}`, keyFile,
    extraArgs: ['--bootstrap-expect', '1', '--docker-socket', engine.socketPath],
  });
  await waitFor('the node registers with the docker driver', async () => (await agent.client.nodes.list()).nodes[0]?.drivers?.includes('docker') === true);
  const file = join(dir, 'box.yaml');
  writeFileSync(file, [
    'name: box',
    'services:',
    '  box:',
    `    image: ${TEST_IMAGE}`,
    '    command: ["sh", "-c", "echo box $$SHOAL_SLOT; exec sleep 600"]',
    '    network_mode: host',
    '    stop_grace_period: 1s',
    '    deploy:',
    '      replicas: 2',
    '      resources: { limits: { memory: 64M } }',
    '',
  ].join('\n'));
  const cli = (...args: string[]) => spawnSync(process.execPath, [SHOAL_BIN, '--address', agent.api, ...args], { encoding: 'utf8', timeout: 180_000 });
  const run = cli('job', 'run', file);
  t.equal(run.status, 0, `job run: exit 0\n${run.stdout}${run.stderr}`);
  const running = await engine.docker.listContainers({ filters: { label: ['shoal.job=box'] } });
  t.equal(running.length, 2, 'two containers run, labelled with the job');
  t.ok(running.every((c) => c.HostConfig.NetworkMode === 'host'));
  const allocs = (await agent.client.allocations.list({ job: 'box' })).allocations;
  for (const a of allocs) {
    const logs = cli('alloc', 'logs', (a.id ?? '').slice(0, 8));
    t.equal(logs.stdout, `box ${a.slot}\n`, 'the container\'s output, through the agent');
  }
  const inspect = await engine.docker.getContainer(running[0]!.Id).inspect();
  t.equal(inspect.HostConfig.Memory, 64 * 1024 * 1024, 'the memory limit reached the engine');
  t.equal(cli('job', 'stop', 'box').status, 0);
  await waitFor('no container of the job runs', async () => (await engine.docker.listContainers({ filters: { label: ['shoal.job=box'] } })).length === 0, 60_000);
});
