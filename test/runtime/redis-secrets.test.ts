/**
 * A real server configured by a secret and a config: Debian's redis-server as a process task, its password from a
 * secret, its settings from a config, its data in a named volume. A client with the password is served, one without
 * is refused; after the task is killed and restarted by its agent, the data is still there.
 */
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { SHOAL_BIN, freeUdpPort, processesWith, startAgent, waitFor } from '../helpers/agents.js';

const ENV = { PATH: process.env['PATH'] ?? '/usr/bin:/bin', HOME: process.env['HOME'] ?? '/root' };
const hasRedis = spawnSync('sh', ['-c', 'command -v redis-server && command -v redis-cli']).status === 0;
const PORT = 43_300 + (process.pid % 200);

t.test('redis-server takes its password from a secret, its settings from a config, and keeps its data in a volume', { skip: hasRedis ? false : 'redis-server / redis-cli are not installed: .ci/run installs them' }, async (t) => {
  const dir = t.testdir({});
  const keyFile = join(dir, 'cluster.key');
  spawnSync(process.execPath, [SHOAL_BIN, 'keygen', keyFile]);
  const shm = mkdtempSync('/dev/shm/shoal-redis-test-');
  t.teardown(() => rmSync(shm, { recursive: true, force: true }));
  const port = await freeUdpPort('127.0.0.1');
  const agent = await startAgent(t, {
    name: 'solo', dataDir: join(dir, 'solo'), bind: `127.0.0.1:${port}`, keyFile,
    extraArgs: ['--bootstrap-expect', '1', '--secrets-dir', shm, '--task-ports', '43500-43599', '--log-level', 'info'],
  });
  await waitFor('the agent leads', async () => (await agent.client.operator.raftState()).role === 'leader');
  const password = randomBytes(18).toString('hex');
  writeFileSync(join(dir, 'redis-password.txt'), password);
  writeFileSync(join(dir, 'redis.conf'), [`port ${PORT}`, 'bind 127.0.0.1', 'protected-mode yes', 'appendonly yes', 'appendfsync always', 'save ""', 'set-proc-title no', ''].join('\n'));
  // Its config's path names the secrets dir: that finds the redis-server process (which keeps its argv as it is).
  const marker = basename(shm);
  writeFileSync(join(dir, 'cache.yaml'), [
    'name: cache',
    'secrets:',
    '  redis_password: { file: ./redis-password.txt }',
    'configs:',
    '  redis_conf: { file: ./redis.conf }',
    'volumes:',
    '  data: {}',
    'services:',
    '  redis:',
    '    x-shoal: { driver: process }',
    // The password goes to redis-server on its standard input, never in its argv (which every user can read).
    `    command: ["sh", "-c", "printf 'requirepass %s\\\\ndir %s\\\\n' \\"$$(cat \\"$$SHOAL_SECRETS_DIR/redis_password\\")\\" \\"$$SHOAL_VOLUME_CACHE_DATA\\" | exec redis-server \\"$$SHOAL_CONFIGS_DIR/redis.conf\\" -"]`,
    '    secrets: [redis_password]',
    '    configs: [{ source: redis_conf, target: redis.conf }]',
    '    volumes: ["data:/data"]',
    '    deploy:',
    '      restart_policy: { condition: any, delay: 1s }',
    '',
  ].join('\n'));
  const cli = (...args: string[]) => spawnSync(process.execPath, [SHOAL_BIN, '--address', agent.api, ...args], { encoding: 'utf8', env: ENV, timeout: 90_000 });
  const redis = (...args: string[]) => spawnSync('redis-cli', ['-p', String(PORT), '--no-auth-warning', ...args], { encoding: 'utf8', timeout: 10_000 });

  const run = cli('job', 'run', join(dir, 'cache.yaml'), '--wait-timeout', '60');
  t.equal(run.status, 0, run.stderr + run.stdout);
  await waitFor('redis answers', () => /PONG|NOAUTH/.test(redis('ping').stdout), 30_000);
  t.match(redis('ping').stdout, /NOAUTH Authentication required/, 'a client without the password is refused');
  t.match(redis('-a', 'wrong', 'ping').stdout + redis('-a', 'wrong', 'ping').stderr, /WRONGPASS|invalid/i, 'a wrong password is refused');
  t.equal(redis('-a', password, 'set', 'visits', '41').stdout.trim(), 'OK', 'a client with the password is served');
  t.equal(redis('-a', password, 'incr', 'visits').stdout.trim(), '42');
  t.match(redis('-a', password, 'config', 'get', 'dir').stdout, /volumes\/cache_data/, 'its data dir is the named volume');
  t.match(redis('-a', password, 'config', 'get', 'appendonly').stdout, /yes/, 'its settings come from the config');

  // The task dies; its agent restarts it with the same secret, config and volume.
  const pids = processesWith(marker);
  t.ok(pids.length >= 1, 'the redis process is found');
  for (const pid of pids) process.kill(pid, 'SIGKILL');
  await waitFor('redis is back', () => redis('-a', password, 'ping').stdout.trim() === 'PONG' && !pids.includes(processesWith(marker)[0] ?? -1), 60_000);
  t.equal(redis('-a', password, 'get', 'visits').stdout.trim(), '42', 'the data survived the restart');
  const alloc = (await agent.client.allocations.list({ job: 'cache' })).allocations[0]!;
  t.ok((alloc.restarts ?? 0) >= 1, 'restarted in place by its agent');
  t.equal(cli('job', 'stop', 'cache').status, 0);
  await waitFor('redis is gone', () => processesWith(marker).length === 0, 30_000);
});
