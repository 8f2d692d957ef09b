/**
 * A Compose service with an image runs as containers through the agent's docker driver, on a private dockerd:
 * `shoal job run` until running, logs from the container, `job stop` until the containers are gone from "running";
 * a container's secrets and configs as it sees them.
 */
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
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

t.test('a container gets its secrets and configs as read-only files with their owner and mode, on tmpfs; tmpfs options', { skip }, async (t) => {
  if ('skip' in engine) return;
  const dir = t.testdir({});
  const keyFile = join(dir, 'cluster.key');
  spawnSync(process.execPath, [SHOAL_BIN, 'keygen', keyFile]);
  const shm = mkdtempSync('/dev/shm/shoal-docker-secrets-');
  t.teardown(() => rmSync(shm, { recursive: true, force: true }));
  const port = await freeUdpPort('127.0.0.1');
  const agent = await startAgent(t, {
    name: 'dock2', dataDir: join(dir, 'dock2'), bind: `127.0.0.1:${port}`, keyFile,
    extraArgs: ['--bootstrap-expect', '1', '--docker-socket', engine.socketPath, '--secrets-dir', shm],
  });
  await waitFor('the node registers with the docker driver', async () => (await agent.client.nodes.list()).nodes[0]?.drivers?.includes('docker') === true);
  const token = randomBytes(32).toString('hex');
  writeFileSync(join(dir, 'token'), token);
  writeFileSync(join(dir, 'key'), 'the key\n');
  const file = join(dir, 'files.yaml');
  writeFileSync(file, [
    'name: files',
    'secrets:',
    '  token: { file: ./token }',
    '  key: { file: ./key }',
    'configs:',
    '  conf: { content: "level = 3" }',
    'services:',
    '  box:',
    `    image: ${TEST_IMAGE}`,
    // The value itself is never printed: its hash is, and what the files look like from inside.
    '    command: ["sh", "-c", "sha256sum /run/secrets/token; stat -c \'%n %a %u:%g\' /run/secrets/token /etc/app/key /conf; cat /conf; echo; stat -c \'%n %a\' /scratch; df -k /scratch | tail -1 | awk \'{print \\"scratch-kb\\", $$2}\'; (echo x > /run/secrets/token) 2>/dev/null && echo writable || echo read-only; exec sleep 600"]',
    '    network_mode: host',
    '    stop_grace_period: 1s',
    '    secrets: [token, { source: key, target: /etc/app/key, uid: "1000", gid: "2000", mode: 0400 }]',
    '    configs: [conf]',
    '    tmpfs: ["/scratch:size=8m,mode=1770"]',
    '',
  ].join('\n'));
  const cli = (...args: string[]) => spawnSync(process.execPath, [SHOAL_BIN, '--address', agent.api, ...args], { encoding: 'utf8', timeout: 180_000 });
  const run = cli('job', 'run', file);
  t.equal(run.status, 0, `job run: exit 0\n${run.stdout}${run.stderr}`);
  const alloc = (await agent.client.allocations.list({ job: 'files' })).allocations[0]!;
  let out = '';
  await waitFor('the container printed what it sees', () => {
    out = cli('alloc', 'logs', alloc.id!.slice(0, 8)).stdout;
    return /read-only|writable/.test(out);
  }, 30_000);
  t.match(out, new RegExp(`^${createHash('sha256').update(token).digest('hex')}  /run/secrets/token$`, 'm'), 'the same bytes as the source file');
  t.match(out, /^\/run\/secrets\/token 444 0:0$/m, 'a secret at /run/secrets/<name>, 0444 root\'s by default');
  t.match(out, /^\/etc\/app\/key 400 1000:2000$/m, 'uid, gid and mode as asked');
  t.match(out, /^\/conf 444 0:0$/m, 'a config at /<name>');
  t.match(out, /^level = 3$/m);
  t.match(out, /^read-only$/m, 'read-only in the container');
  t.match(out, /^\/scratch 1770$/m, 'a tmpfs with its mode');
  t.match(out, /^scratch-kb 8192$/m, 'and its size');
  const [c] = await engine.docker.listContainers({ filters: { label: ['shoal.job=files'] } });
  const mounts = (await engine.docker.getContainer(c!.Id).inspect()).Mounts;
  t.ok(mounts.filter((m) => m.Destination.startsWith('/run/secrets') || m.Destination === '/etc/app/key').every((m) => m.Source.startsWith(shm) && m.RW === false), 'bind-mounted from the agent\'s tmpfs, read-only');
  t.equal(cli('job', 'stop', 'files').status, 0);
  await waitFor('the files are removed with the task', () => readdirSync(shm, { recursive: true }).filter((p) => String(p).includes(alloc.id!)).length === 0, 30_000);
});
