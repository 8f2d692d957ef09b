/**
 * Secrets and configs on real agents: a server and a client (which holds only its slice), a job whose file provides
 * a secret and a config and names an external secret, run as a process task on the client.
 *   - `shoal secret create|ls|rm`, `shoal config create|ls|status|rm`, and their refusals (in use, changed contents);
 *   - an unknown external secret fails the run, precisely, and leaves the cluster unchanged;
 *   - the task's copies have the source's bytes, on tmpfs, readable by no other user;
 *   - the value appears in no file under any agent's data dir, in no agent log, in no API answer or CLI output;
 *   - a new name rolls the service; a stopped task's files are gone.
 */
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SHOAL_BIN, freeUdpPort, startAgent, waitFor } from '../helpers/agents.js';

const ENV = { PATH: process.env['PATH'] ?? '/usr/bin:/bin', HOME: process.env['HOME'] ?? '/root' };

/** Every file under `dir`, recursively. */
function filesUnder(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...filesUnder(p));
    else if (e.isFile()) out.push(p);
  }
  return out;
}

t.test('secrets and configs: delivered to a client\'s task, never stored or shown in the clear', async (t) => {
  const dir = t.testdir({});
  const keyFile = join(dir, 'cluster.key');
  spawnSync(process.execPath, [SHOAL_BIN, 'keygen', keyFile]);
  const shm = mkdtempSync('/dev/shm/shoal-secrets-test-');
  t.teardown(() => rmSync(shm, { recursive: true, force: true }));
  const seedPort = await freeUdpPort('127.0.0.131');
  const common = ['--read-replicas', '0', '--secrets-dir', shm, '--task-ports', '43100-43199'];
  const s1 = await startAgent(t, { name: 's1', dataDir: join(dir, 's1'), bind: `127.0.0.131:${seedPort}`, keyFile, extraArgs: ['--bootstrap-expect', '1', ...common] });
  await waitFor('s1 leads', async () => (await s1.client.operator.raftState()).role === 'leader');
  // Three voters first (autopilot's target), so that the fourth agent is a client.
  const joiner = (name: string, i: number) => startAgent(t, { name, dataDir: join(dir, name), bind: `127.0.0.13${i}:0`, join: [`127.0.0.131:${seedPort}`], keyFile, extraArgs: common });
  const s2 = await joiner('s2', 2);
  const s3 = await joiner('s3', 3);
  await waitFor('three voters', async () => (await s1.client.operator.raftState()).peers.length === 3, 90_000);
  const c2 = await joiner('c2', 4);
  let seen = '';
  await waitFor('c2 is a client with a ready node', async () => {
    const st = await c2.client.operator.raftState();
    const nodes = (await s1.client.nodes.list()).nodes;
    seen = `c2 role ${st.agentRole}; nodes ${nodes.map((n) => `${n.name}:${n.status}`).join(',')}`;
    return st.agentRole === 'client' && nodes.filter((n) => n.status === 'ready').length === 4;
  }, 90_000).catch((err: Error) => {
    throw new Error(`${err.message} (${seen})`);
  });
  const cli = (...args: string[]) => spawnSync(process.execPath, [SHOAL_BIN, '--address', c2.api, ...args], { encoding: 'utf8', env: ENV, timeout: 60_000 });
  const outputs: string[] = [];
  const run = (...args: string[]) => {
    const r = cli(...args);
    outputs.push(r.stdout, r.stderr);
    return r;
  };

  const token = `tok-${randomBytes(24).toString('hex')}`;
  const apiKey = `key-${randomBytes(24).toString('hex')}`;
  const rotated = `rot-${randomBytes(24).toString('hex')}`;
  const values = [token, apiKey, rotated];
  writeFileSync(join(dir, 'token.txt'), token);
  writeFileSync(join(dir, 'api.key'), apiKey);
  writeFileSync(join(dir, 'rotated.txt'), rotated);
  writeFileSync(join(dir, 'app.conf'), 'greeting = hello\n');
  const jobFile = (tokenKey: string) => [
    'name: vault',
    'secrets:',
    `  ${tokenKey}:`,
    `    file: ./${tokenKey === 'token' ? 'token.txt' : 'rotated.txt'}`,
    '  api_key:',
    '    external: true',
    'configs:',
    '  app_conf:',
    '    file: ./app.conf',
    'services:',
    '  reader:',
    '    x-shoal: { driver: process }',
    '    command: ["sh", "-c", "test -r \\"$$SHOAL_SECRETS_DIR/token\\" && test -r \\"$$SHOAL_CONFIGS_DIR/app.conf\\" && echo ready && exec sleep 100000"]',
    '    secrets:',
    `      - { source: ${tokenKey}, target: token }`,
    '      - { source: api_key, target: keys/api, mode: 0400 }',
    '    configs: [{ source: app_conf, target: app.conf }]',
    '    deploy:',
    '      placement: { constraints: [node.name == c2] }',
    '',
  ].join('\n');
  const file = join(dir, 'vault.yaml');
  writeFileSync(file, jobFile('token'));

  // --output and plan never read the contents; a missing file is named, with where the job file declares it.
  const output = run('job', 'run', '--output', file);
  t.equal(output.status, 0, output.stderr);
  t.match(JSON.parse(output.stdout), { secrets: [{ name: 'api_key', clusterName: 'api_key', external: true }, { name: 'token', clusterName: 'vault_token', external: false }] });
  writeFileSync(join(dir, 'broken.yaml'), jobFile('token').replace('./token.txt', './nowhere.txt'));
  const broken = run('job', 'run', '--output', join(dir, 'broken.yaml'));
  t.equal(broken.status, 1);
  t.match(broken.stderr, /broken\.yaml:\d+.*secret "token": cannot read .*nowhere\.txt: ENOENT/);

  // The external secret does not exist yet: the plan says so; the run is refused, and nothing is created (not
  // even the job's own secret).
  const planMissing = run('job', 'plan', file);
  t.equal(planMissing.status, 255, 'job plan: an error');
  t.match(planMissing.stderr, /secret "api_key" \(used by job "vault"\) does not exist/);
  const before = await s1.client.operator.raftState();
  const missing = run('job', 'run', '--detach', file);
  t.equal(missing.status, 1, 'refused');
  t.match(missing.stderr, /secret "api_key" \(used by job "vault"\) does not exist: create it with `shoal secret create api_key FILE`/);
  t.equal((await s1.client.jobs.list()).jobs.length, 0, 'no job');
  t.same((await s1.client.secrets.list()).objects, [], 'no secret');
  t.ok(Number((await s1.client.operator.raftState()).lastIndex) <= Number(before.lastIndex) + 1, 'nothing but the refused write reached the log');

  const created = spawnSync(process.execPath, [SHOAL_BIN, '--address', c2.api, 'secret', 'create', 'api_key', '-'], { input: apiKey, encoding: 'utf8', env: ENV });
  outputs.push(created.stdout, created.stderr);
  t.equal(created.status, 0, created.stderr);
  t.match(created.stdout, /^Secret api_key created \(digest [0-9a-f]{12}, index \d+\)\n$/);
  t.match(run('secret', 'create', 'api_key', join(dir, 'api.key')).stdout, /Secret api_key unchanged/, 'the same contents again change nothing');
  const changed = run('secret', 'create', 'api_key', join(dir, 'token.txt'));
  t.equal(changed.status, 1);
  t.match(changed.stderr, /secret "api_key" already exists with other contents .* give the new value a new name/);

  const planned = run('job', 'plan', file, '-o', 'json');
  t.equal(planned.status, 1, 'job plan: the job would be created (its own secret and config stand in for the plan)');
  t.match(JSON.parse(planned.stdout), { jobChange: 'create', services: [{ name: 'reader', place: 1 }] });
  const ran = run('job', 'run', file, '--wait-timeout', '60');
  t.equal(ran.status, 0, ran.stderr + ran.stdout);
  const allocs = (await s1.client.allocations.list({ job: 'vault' })).allocations.filter((a) => a.desiredStatus === 'run');
  t.equal(allocs.length, 1);
  const alloc = allocs[0]!;
  t.equal(alloc.nodeName, 'c2', 'on the client');
  const node = (await c2.client.agent.self()).member!.id!;
  const taskDir = join(shm, node.slice(0, 16), alloc.id!);
  t.equal(readFileSync(join(taskDir, 'secrets', 'token'), 'utf8'), token, 'the task\'s copy has the source\'s bytes');
  t.equal(readFileSync(join(taskDir, 'secrets', 'keys', 'api'), 'utf8'), apiKey);
  t.equal(readFileSync(join(taskDir, 'configs', 'app.conf'), 'utf8'), 'greeting = hello\n');
  t.equal(statSync(join(taskDir, 'secrets')).mode & 0o777, 0o700, 'no other user may read them');
  t.equal(statSync(join(taskDir, 'secrets', 'keys', 'api')).mode & 0o777, 0o400, 'the mode asked for');
  let logs = '';
  await waitFor('the task found its files', async () => {
    const w = await s1.client.allocations.logs({ id: alloc.id! });
    logs = `${Buffer.from(w.stdout).toString()} | ${Buffer.from(w.stderr).toString()}`;
    return logs.includes('ready');
  }, 30_000).catch((err: Error) => {
    throw new Error(`${err.message}: ${logs}`);
  });

  const ls = run('secret', 'ls');
  t.match(ls.stdout, /api_key\s+[0-9a-f]{12}\s+\d+ B\s+-\s+vault/);
  t.match(ls.stdout, /vault_token\s+[0-9a-f]{12}\s+\d+ B\s+vault\s+vault/);
  const status = run('config', 'status', 'vault_app_conf');
  t.equal(status.status, 0, status.stderr);
  t.match(status.stdout, /Digest\s+sha256:[0-9a-f]{64}[\s\S]*greeting = hello/, 'a config\'s contents are shown');
  const inUse = run('secret', 'rm', 'api_key');
  t.equal(inUse.status, 1);
  t.match(inUse.stderr, /secret "api_key" is in use by job "vault": stop it/);
  t.match(run('config', 'rm', 'vault_app_conf').stderr, /config "vault_app_conf" is in use by job "vault"/);

  // Every API answer and CLI output a user might look at.
  run('job', 'status', 'vault');
  run('job', 'status', 'vault', '-o', 'json');
  run('alloc', 'status', alloc.id!.slice(0, 8), '-o', 'json');
  run('secret', 'ls', '-o', 'json');
  run('job', 'plan', file);
  const answers = JSON.stringify([
    await s1.client.jobs.get({ name: 'vault' }), await c2.client.jobs.get({ name: 'vault' }), await s1.client.allocations.list({}),
    await s1.client.secrets.list(), await s1.client.configs.list(),
  ]);

  // A new name rolls the service onto the new value.
  writeFileSync(file, jobFile('token_v2'));
  const rolled = run('job', 'run', file, '--wait-timeout', '60');
  t.equal(rolled.status, 0, rolled.stderr + rolled.stdout);
  const now = (await s1.client.allocations.list({ job: 'vault' })).allocations.filter((a) => a.desiredStatus === 'run' && a.clientStatus === 'running');
  t.equal(now.length, 1);
  t.not(now[0]!.id, alloc.id, 'a new allocation');
  t.equal(readFileSync(join(shm, node.slice(0, 16), now[0]!.id!, 'secrets', 'token'), 'utf8'), rotated);
  await waitFor('the old task\'s files are gone', () => {
    try {
      statSync(taskDir);
      return false;
    } catch {
      return true;
    }
  }, 30_000);

  t.equal(run('job', 'stop', 'vault').status, 0);
  await waitFor('no task files left on c2', () => readdirSync(join(shm, node.slice(0, 16))).length === 0, 30_000);
  const removed = run('secret', 'rm', 'api_key');
  t.equal(removed.status, 0, removed.stderr);

  // The values are nowhere: not in any file under the data dirs (Raft log, snapshots, slices, task records, task
  // logs), not in the agents' logs (at debug level), not in an answer or an output.
  const texts: [string, Buffer][] = [];
  for (const a of [s1, s2, s3, c2]) for (const f of filesUnder(join(dir, a.name))) texts.push([f, readFileSync(f)]);
  texts.push(...[s1, s2, s3, c2].map((a): [string, Buffer] => [`${a.name} log`, Buffer.from(a.output())]), ['answers', Buffer.from(answers)], ['cli', Buffer.from(outputs.join('\n'))]);
  t.ok(texts.length > 10, `${texts.length} places searched`);
  for (const v of values) {
    const hits = texts.filter(([, b]) => b.includes(v) || b.includes(Buffer.from(v).toString('base64'))).map(([f]) => f);
    t.same(hits, [], `${v.slice(0, 4)}...: in no file, log, answer or output`);
  }
});
