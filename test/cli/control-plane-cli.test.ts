/**
 * The control-plane commands (`job`, `alloc`, `node`) as a user runs them: the built `shoal` binary in a child
 * process, talking protobuf over HTTP to a real RpcServer on loopback whose handlers answer from a script and record
 * every call. This tests the CLI's behaviour (what it sends, when it stops waiting, what it prints, its exit codes);
 * the server's own behaviour is tested with the runtime.
 */
import t, { type Test } from 'tap';
import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  RpcServer, JobsRegister, JobsPlan, JobsGet, JobsList, JobsStop, JobsScale, AllocationsList, AllocationsGet, AllocationsLogs,
  NodesList, NodesDrain, NodesEligibility, type MethodDescriptor,
} from '../../src/rpc/index.js';
import { AmbiguousIdError, NotFoundError, ShoalError } from '../../src/lib/errors.js';
import { parseJobFile } from '../../src/jobspec/index.js';
import { shoal } from '../../src/gen/proto.js';

const bin = fileURLToPath(new URL('../../bin/shoal', import.meta.url));

// Every subtest has its own server and files: run a few at once, since each CLI run is a Node start-up.
t.jobs = 4;

const WEB_YAML = `name: web
services:
  web:
    image: nginx:1.27
    deploy: { replicas: 3 }
`;

interface Call {
  method: string;
  request: Record<string, unknown>;
}

type Script = Partial<Record<string, (request: Record<string, unknown>, n: number) => object>>;

/** A real RPC server whose every control-plane method answers from `script` and is recorded in `calls`. */
async function scriptedAgent(t: Test, script: Script) {
  const calls: Call[] = [];
  const server = new RpcServer({ host: '127.0.0.1', port: 0 });
  const methods: MethodDescriptor<unknown, unknown>[] = [
    JobsRegister, JobsPlan, JobsGet, JobsList, JobsStop, JobsScale, AllocationsList, AllocationsGet, AllocationsLogs, NodesList, NodesDrain, NodesEligibility,
  ] as MethodDescriptor<unknown, unknown>[];
  for (const m of methods) {
    const key = `${m.service.replace('shoal.v1.', '')}/${m.method}`;
    server.register(m, (req) => {
      const request = m.requestType.toObject(req, { longs: Number, defaults: true }) as Record<string, unknown>;
      const n = calls.filter((c) => c.method === key).length;
      calls.push({ method: key, request });
      const answer = script[key];
      if (!answer) throw new ShoalError('ERR_UNKNOWN_METHOD', `the test script has no answer for ${key}`);
      return m.responseType.fromObject(answer(request, n) as Record<string, unknown>);
    });
  }
  const address = await server.start();
  t.teardown(() => server.stop());
  const count = (method: string): number => calls.filter((c) => c.method === method).length;
  return { calls, count, address: `127.0.0.1:${address.port}` };
}

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Starts the CLI; `onStdout` sees the output so far each time more arrives (and may signal the child). */
function startCli(args: string[], onStdout?: (stdout: string, child: ChildProcess) => void): Promise<Run> {
  return new Promise((resolve, reject) => {
    const env = { ...process.env };
    delete env['SHOAL_ADDR'];
    delete env['SHOAL_TOKEN'];
    const child = spawn(process.execPath, [bin, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      stdout += d;
      onStdout?.(stdout, child);
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

const shoalCli = (args: string[]): Promise<Run> => startCli(args);

/** A loopback port nothing listens on (bound, then closed). */
async function deadPort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

const svc = (o: Partial<shoal.v1.ServiceSummary.$Properties> = {}) => ({ name: 'web', driver: 'docker', mode: 'replicated', desired: 3, ...o });
const summary = (services: object[], o: object = {}) => ({ name: 'web', type: 'service', version: 1, status: 'pending', services, ...o });
const registered = { name: 'web', version: 1, evalId: 'eval-0001-aaaa', index: 10, changed: true };
const alloc = (o: Partial<shoal.v1.Allocation.$Properties> = {}) => ({
  id: 'a1b2c3d4e5f6a7b8', jobName: 'web', jobVersion: 1, service: 'web', slot: 0, nodeId: 'f'.repeat(64), nodeName: 'n1',
  desiredStatus: 'run', clientStatus: 'running', restarts: 0, createIndex: 11, modifyIndex: 12, ...o,
});

t.test('job run: registers the parsed job, shows progress, exits 0 once every replica runs', async (t) => {
  const dir = t.testdir({ 'web.yaml': WEB_YAML });
  const agent = await scriptedAgent(t, {
    'Jobs/Register': () => registered,
    'Jobs/Get': (_req, n) => n === 0
      ? { job: summary([svc({ pending: 3 })]), evaluations: [{ id: registered.evalId, status: 'pending', createIndex: 10 }], index: 10 }
      : n === 1
        ? { job: summary([svc({ running: 1, pending: 2 })]), evaluations: [{ id: registered.evalId, status: 'complete', createIndex: 10 }], index: 12 }
        : { job: summary([svc({ running: 3 })], { status: 'running' }), evaluations: [{ id: registered.evalId, status: 'complete', createIndex: 10 }], index: 14 },
  });
  const res = await shoalCli(['--address', agent.address, 'job', 'run', join(dir, 'web.yaml')]);
  t.equal(res.code, 0, res.stderr);
  t.match(res.stdout, /Job web registered \(version 1\)/);
  t.match(res.stdout, /Evaluation ID: eval-0001-aaaa/);
  t.match(res.stdout, /web: 0\/3 running, 3 pending\n/);
  t.match(res.stdout, /web: 1\/3 running, 2 pending\n/);
  t.match(res.stdout, /web: 3\/3 running\n/);
  t.equal(agent.count('Jobs/Register'), 1);
  const sent = JSON.parse(agent.calls.find((c) => c.method === 'Jobs/Register')!.request['jobJson'] as string) as { name: string; services: { deploy: { replicas: number } }[] };
  t.same(sent, parseJobFile(WEB_YAML, { file: join(dir, 'web.yaml'), baseDir: dir }).job, 'the canonical job is what is registered');
  t.equal(agent.count('Jobs/Get'), 3, 'polls until the job has converged, then stops');
  t.ok(agent.calls.filter((c) => c.method === 'Jobs/Get').every((c) => (c.request['minIndex'] as number) >= 10 && c.request['name'] === 'web'), 'reads its own write');
});

t.test('job run: a read that finds no leader (an election under load) is retried; an error that is not transient ends the run', async (t) => {
  const dir = t.testdir({ 'web.yaml': WEB_YAML });
  const agent = await scriptedAgent(t, {
    'Jobs/Register': () => registered,
    'Jobs/Get': (_req, n) => {
      if (n === 0) throw new ShoalError('ERR_NO_LEADER', 'no leader is known yet');
      if (n === 1) throw new ShoalError('ERR_DEADLINE_EXCEEDED', 'shoal.v1.Jobs/Get did not complete within its deadline of 10000 ms');
      return { job: summary([svc({ running: 3 })], { status: 'running' }), evaluations: [{ id: registered.evalId, status: 'complete', createIndex: 10 }], index: 14 };
    },
  });
  const res = await shoalCli(['--address', agent.address, 'job', 'run', join(dir, 'web.yaml')]);
  t.equal(res.code, 0, res.stderr);
  t.match(res.stdout, /web: 3\/3 running\n/);
  t.equal(agent.count('Jobs/Get'), 3, 'two transient failures, then the answer');

  const broken = await scriptedAgent(t, {
    'Jobs/Register': () => registered,
    'Jobs/Get': () => {
      throw new ShoalError('ERR_NOT_FOUND', 'job "web" does not exist');
    },
  });
  const failed = await shoalCli(['--address', broken.address, 'job', 'run', join(dir, 'web.yaml')]);
  t.not(failed.code, 0);
  t.match(failed.stderr, /job "web" does not exist/);
  t.equal(broken.count('Jobs/Get'), 1, 'not retried');
});

t.test('job run: a batch job is done when every replica completed', async (t) => {
  const dir = t.testdir({ 'once.yaml': 'name: once\nx-shoal: { type: batch }\nservices:\n  once: { image: busybox, deploy: { replicas: 2 } }\n' });
  const agent = await scriptedAgent(t, {
    'Jobs/Register': () => ({ ...registered, name: 'once' }),
    'Jobs/Get': (_req, n) => ({
      job: { name: 'once', type: 'batch', version: 1, services: [{ name: 'once', desired: 2, running: n === 0 ? 2 : 0, complete: n === 0 ? 0 : 2 }] },
      evaluations: [{ id: registered.evalId, status: 'complete', createIndex: 10 }],
    }),
  });
  const res = await shoalCli(['--address', agent.address, 'job', 'run', join(dir, 'once.yaml')]);
  t.equal(res.code, 0, res.stderr);
  t.match(res.stdout, /once: 0\/2 complete, 2 running/);
  t.match(res.stdout, /once: 2\/2 complete/);
  t.equal(agent.count('Jobs/Get'), 2, 'running replicas of a batch job are not done yet');
});

t.test('job run: failed placements print their reasons and exit 2', async (t) => {
  const dir = t.testdir({ 'web.yaml': WEB_YAML });
  const agent = await scriptedAgent(t, {
    'Jobs/Register': () => registered,
    'Jobs/Get': () => ({
      job: summary([svc({ running: 1, unplaced: 2 })]),
      evaluations: [{
        id: registered.evalId, status: 'complete', createIndex: 10, modifyIndex: 11,
        failedPlacements: [{ service: 'web', missing: 2, reasons: { 'constraint node.labels.zone==x': 2, 'resources: memory exhausted': 3 } }],
      }],
    }),
  });
  const res = await shoalCli(['--address', agent.address, 'job', 'run', join(dir, 'web.yaml')]);
  t.equal(res.code, 2, res.stderr);
  t.match(res.stderr, 'web: 2 replicas not placed: resources: memory exhausted (3), constraint node.labels.zone==x (2)');
  t.equal(agent.count('Jobs/Get'), 1);
});

t.test('job run: a pending newer evaluation is waited for; its failed placements end the run', async (t) => {
  const dir = t.testdir({ 'web.yaml': WEB_YAML });
  const agent = await scriptedAgent(t, {
    'Jobs/Register': () => registered,
    'Jobs/Get': (_req, n) => ({
      job: summary([svc({ running: 3 })]),
      evaluations: n === 0
        ? [{ id: 'eval-newer', status: 'pending', createIndex: 13 }, { id: registered.evalId, status: 'complete', createIndex: 10 }]
        : [{ id: 'eval-newer', status: 'failed', createIndex: 13, modifyIndex: 15, failedPlacements: [{ service: 'web', missing: 1, reasons: { 'no ready node': 1 } }] },
          { id: registered.evalId, status: 'complete', createIndex: 10, modifyIndex: 11 }],
    }),
  });
  const res = await shoalCli(['--address', agent.address, 'job', 'run', join(dir, 'web.yaml')]);
  t.equal(res.code, 2, res.stderr);
  t.match(res.stderr, 'web: 1 replica not placed: no ready node (1)');
  t.equal(agent.count('Jobs/Get'), 2, 'running == desired is not success while a newer evaluation is pending');
});

t.test('job run: failed allocations of the new version with no replacement exit 2 with their message', async (t) => {
  const dir = t.testdir({ 'web.yaml': WEB_YAML });
  const agent = await scriptedAgent(t, {
    'Jobs/Register': () => registered,
    'Jobs/Get': () => ({
      job: summary([svc({ running: 2, failed: 1 })]),
      evaluations: [{ id: registered.evalId, status: 'complete', createIndex: 10 }],
      allocations: [
        alloc(), alloc({ id: 'b'.repeat(16), slot: 1 }),
        alloc({ id: 'c'.repeat(16), slot: 2, clientStatus: 'failed', clientMessage: 'image nginx:1.27 not found' }),
        alloc({ id: 'd'.repeat(16), slot: 2, jobVersion: 0, clientStatus: 'failed', clientMessage: 'an older version failed' }),
      ],
    }),
  });
  const res = await shoalCli(['--address', agent.address, 'job', 'run', join(dir, 'web.yaml')]);
  t.equal(res.code, 2, res.stderr);
  t.match(res.stderr, /web\[2\]: allocation cccccccc on n1 failed: image nginx:1\.27 not found/);
  t.notMatch(res.stderr, /older version/);
});

t.test('job run: --wait-timeout gives up with exit 1 and says where the job stands', async (t) => {
  const dir = t.testdir({ 'web.yaml': WEB_YAML });
  const agent = await scriptedAgent(t, {
    'Jobs/Register': () => registered,
    'Jobs/Get': () => ({ job: summary([svc({ running: 1, pending: 2 })]), evaluations: [{ id: registered.evalId, status: 'pending', createIndex: 10 }] }),
  });
  const res = await shoalCli(['--address', agent.address, 'job', 'run', '--wait-timeout', '1', join(dir, 'web.yaml')]);
  t.equal(res.code, 1);
  t.match(res.stderr, /^shoal: job web version 1 did not converge within 1 s \(web: 1\/3 running, 2 pending\)/);
  t.ok(agent.count('Jobs/Get') >= 1);
});

t.test('job run: --detach prints the evaluation and does not wait; an unchanged job says so', async (t) => {
  const dir = t.testdir({ 'web.yaml': WEB_YAML });
  let changed = true;
  const agent = await scriptedAgent(t, {
    'Jobs/Register': () => (changed ? registered : { name: 'web', version: 4, evalId: '', index: 20, changed: false }),
    'Jobs/Get': () => { throw new ShoalError('ERR_INTERNAL', 'Get must not be called'); },
  });
  const detached = await shoalCli(['--address', agent.address, 'job', 'run', '--detach', join(dir, 'web.yaml')]);
  t.equal(detached.code, 0, detached.stderr);
  t.match(detached.stdout, /Evaluation ID: eval-0001-aaaa/);
  changed = false;
  const same = await shoalCli(['--address', agent.address, 'job', 'run', join(dir, 'web.yaml')]);
  t.equal(same.code, 0, same.stderr);
  t.equal(same.stdout, 'Job web unchanged (version 4)\n');
  t.equal(agent.count('Jobs/Get'), 0);
});

t.test('job run --output prints the canonical job and needs no agent; warnings go to stderr', async (t) => {
  const dir = t.testdir({ 'web.yaml': `version: "3.9"\n${WEB_YAML}` });
  const port = await deadPort();
  const res = await shoalCli(['--address', `127.0.0.1:${port}`, 'job', 'run', '--output', join(dir, 'web.yaml')]);
  t.equal(res.code, 0, res.stderr);
  const expected = parseJobFile(`version: "3.9"\n${WEB_YAML}`, { file: join(dir, 'web.yaml'), baseDir: dir }).job;
  t.equal(res.stdout, `${JSON.stringify(expected, null, 2)}\n`, 'pretty canonical JSON, 2 spaces');
  t.match(res.stderr, /^warning: .*web\.yaml:1:1: version: the top-level "version" is obsolete/);
  // env_file is read on the CLI's machine, next to the job file; its variables land in the canonical job.
  const envDir = t.testdir({ 'app.env': 'MODE=prod\nPORT=8080\n', 'My App.yaml': 'services:\n  a:\n    image: x\n    env_file: app.env\n    environment: { PORT: "9090" }\n' });
  const env = await shoalCli(['job', 'run', '--output', join(envDir, 'My App.yaml')]);
  t.equal(env.code, 0, env.stderr);
  const job = JSON.parse(env.stdout) as { name: string; services: { environment: Record<string, string> }[] };
  t.equal(job.name, 'myapp', 'the name from the file name, normalised');
  t.same(job.services[0]!.environment, { MODE: 'prod', PORT: '9090' });

  // -c base -c override, merged in order; --env-file for ${VAR}.
  const merge = t.testdir({
    'base.yml': 'services:\n  web:\n    image: nginx:${TAG}\n    deploy: { replicas: 1 }\n',
    'prod.yml': 'services:\n  web:\n    deploy: { replicas: 3 }\n',
    'vars.env': 'TAG=1.27\n',
  });
  const merged = await shoalCli(['job', 'run', '--output', '-c', join(merge, 'base.yml'), '-c', join(merge, 'prod.yml'), '--env-file', join(merge, 'vars.env')]);
  t.equal(merged.code, 0, merged.stderr);
  const mj = JSON.parse(merged.stdout) as { name: string; services: { image: string; deploy: { replicas: number } }[] };
  t.same([mj.name, mj.services[0]!.image, mj.services[0]!.deploy.replicas], ['base', 'nginx:1.27', 3], 'named after the first file; the override wins; the env file fills ${TAG}');
  const both = await shoalCli(['job', 'run', '--output', join(merge, 'base.yml'), '-c', join(merge, 'prod.yml')]);
  t.equal(both.code, 1);
  t.match(both.stderr, /give the job file as an argument or with -c, not both/);
  const none = await shoalCli(['job', 'plan']);
  t.match(none.stderr, /no job file: give one as an argument, or several with -c FILE -c FILE/);
});

t.test('job run: a malformed file names file:line and sends nothing', async (t) => {
  const dir = t.testdir({ 'bad.yaml': 'name: web\nservices:\n  web:\n    image: [unclosed\n' , 'wrong.yaml': 'services:\n  web:\n    image: x\n    deploy: { replicas: lots }\n' });
  const agent = await scriptedAgent(t, { 'Jobs/Register': () => registered });
  const bad = await shoalCli(['--address', agent.address, 'job', 'run', join(dir, 'bad.yaml')]);
  t.equal(bad.code, 1);
  t.match(bad.stderr, /^shoal: .*bad\.yaml:\d+:\d+: YAML syntax error/);
  const wrong = await shoalCli(['--address', agent.address, 'job', 'run', join(dir, 'wrong.yaml')]);
  t.equal(wrong.code, 1);
  t.match(wrong.stderr, /wrong\.yaml:4:\d+: services\.web\.deploy\.replicas/);
  const missing = await shoalCli(['--address', agent.address, 'job', 'run', join(dir, 'nope.yaml')]);
  t.equal(missing.code, 1);
  t.match(missing.stderr, /^shoal: cannot read job file .*nope\.yaml: ENOENT/);
  t.equal(agent.count('Jobs/Register'), 0);
});

t.test('job plan: exit 0 for no change, 1 for changes, 255 on any error', async (t) => {
  const dir = t.testdir({ 'web.yaml': WEB_YAML, 'bad.yaml': 'services: [' });
  let answer: object | Error = {};
  const agent = await scriptedAgent(t, {
    'Jobs/Plan': () => {
      if (answer instanceof Error) throw answer;
      return answer;
    },
  });
  const plan = (...extra: string[]) => shoalCli(['--address', agent.address, 'job', 'plan', ...extra, join(dir, 'web.yaml')]);

  answer = { jobChange: 'unchanged', currentVersion: 3, services: [{ name: 'web', keep: 3 }] };
  const none = await plan();
  t.equal(none.code, 0, none.stderr);
  t.match(none.stdout, /Job web: unchanged \(version 3\)/);

  answer = {
    jobChange: 'update', currentVersion: 3, diff: ['services.web.deploy.replicas: 2 -> 3', 'services.web.image: nginx:1.26 -> nginx:1.27'],
    services: [{ name: 'web', place: 3, stop: 2, keep: 0, stopReasons: { 'job updated': 2 } }],
    failedPlacements: [{ service: 'web', missing: 1, reasons: { 'resources: cpu exhausted': 4 } }],
  };
  const update = await plan();
  t.equal(update.code, 1, update.stderr);
  t.match(update.stdout, /Job web: update \(current version 3\)/);
  t.match(update.stdout, / {2}services\.web\.deploy\.replicas: 2 -> 3\n/);
  t.match(update.stdout, /web\s+3\s+2\s+0\s+job updated \(2\)/);
  t.match(update.stdout, /web: 1 replica not placed: resources: cpu exhausted \(4\)/);
  const json = await plan('-o', 'json');
  t.equal(json.code, 1);
  const parsed = JSON.parse(json.stdout) as { jobChange: string; currentVersion: unknown; index: unknown; services: { place: number }[] };
  t.equal(parsed.jobChange, 'update');
  t.equal(parsed.currentVersion, 3, '64-bit numbers are JSON numbers');
  t.equal(parsed.index, 0, 'defaults are present');
  t.equal(parsed.services[0]!.place, 3);
  t.same(JSON.parse(agent.calls.find((c) => c.method === 'Jobs/Plan')!.request['jobJson'] as string).name, 'web');

  answer = { jobChange: 'unchanged', currentVersion: 3, services: [{ name: 'web', place: 1, keep: 2 }] };
  t.equal((await plan()).code, 1, 'an unchanged job that would place replicas is a change');

  answer = new ShoalError('ERR_NO_LEADER', 'no Raft leader is known');
  const failed = await plan();
  t.equal(failed.code, 255);
  t.equal(failed.stderr, 'shoal: no Raft leader is known\n');
  const plans = agent.count('Jobs/Plan');
  const badFile = await shoalCli(['--address', agent.address, 'job', 'plan', join(dir, 'bad.yaml')]);
  t.equal(badFile.code, 255);
  t.match(badFile.stderr, /bad\.yaml:1:\d+/);
  t.equal(agent.count('Jobs/Plan'), plans, 'an invalid file is not sent');
  const unreachable = await shoalCli(['--address', `127.0.0.1:${await deadPort()}`, 'job', 'plan', join(dir, 'web.yaml')]);
  t.equal(unreachable.code, 255);
  t.match(unreachable.stderr, /no agent answers/);
});

t.test('job status: the job list, one job\'s services, allocations and placement failures; -o json', async (t) => {
  const agent = await scriptedAgent(t, {
    'Jobs/List': () => ({
      jobs: [
        summary([svc({ running: 3 })], { status: 'running', version: 2 }),
        { name: 'etl', type: 'batch', version: 1, status: 'complete', services: [{ name: 'load', desired: 1, complete: 1 }] },
      ],
      index: 30,
    }),
    'Jobs/Get': (req) => {
      if (req['name'] !== 'web') throw new NotFoundError(`job "${String(req['name'])}" is not registered`);
      return {
        job: summary([svc({ running: 2, pending: 1 })], { version: 2, status: 'running' }),
        allocations: [alloc({ jobVersion: 2 }), alloc({ id: '0123456789abcdef', slot: 1, clientStatus: 'pending', jobVersion: 2, restarts: 4 })],
        evaluations: [{ id: 'eval-9999-zzzz', status: 'complete', createIndex: 20, modifyIndex: 21, failedPlacements: [{ service: 'web', missing: 1, reasons: { 'port 80/tcp in use': 2 } }] }],
        index: 30,
      };
    },
  });
  const list = await shoalCli(['--address', agent.address, 'job', 'status']);
  t.equal(list.code, 0, list.stderr);
  t.match(list.stdout, /^NAME\s+TYPE\s+VERSION\s+STATUS\s+SERVICES\n/);
  t.match(list.stdout, /web\s+service\s+2\s+running\s+web 3\/3\n/);
  t.match(list.stdout, /etl\s+batch\s+1\s+complete\s+load 1\/1\n/);
  const one = await shoalCli(['--address', agent.address, 'job', 'status', 'web']);
  t.equal(one.code, 0, one.stderr);
  t.match(one.stdout, /SERVICE\s+DRIVER\s+MODE\s+DESIRED\s+RUNNING\s+PENDING\s+FAILED\s+COMPLETE\s+LOST\n/);
  t.match(one.stdout, /web\s+docker\s+replicated\s+3\s+2\s+1\s+0\s+0\s+0\n/);
  t.match(one.stdout, /\na1b2c3d4\s+n1\s+web\s+0\s+2\s+run\s+running\s+0/);
  t.match(one.stdout, /\n01234567\s+n1\s+web\s+1\s+2\s+run\s+pending\s+4/);
  t.notMatch(one.stdout, /a1b2c3d4e5/, 'ids are shortened to 8 characters');
  t.match(one.stdout, /web: 1 replica not placed: port 80\/tcp in use \(2\)/);
  const json = await shoalCli(['--address', agent.address, 'job', 'status', 'web', '-o', 'json']);
  t.equal(json.code, 0);
  const parsed = JSON.parse(json.stdout) as { job: { version: number }; allocations: { id: string; cpuMillicores: number }[]; index: number };
  t.equal(parsed.job.version, 2);
  t.equal(parsed.allocations[1]!.id, '0123456789abcdef', 'JSON keeps full ids');
  t.equal(parsed.allocations[0]!.cpuMillicores, 0);
  t.equal(parsed.index, 30);
  const listJson = await shoalCli(['--address', agent.address, 'job', 'status', '-o', 'json']);
  t.same((JSON.parse(listJson.stdout) as { jobs: { name: string }[] }).jobs.map((j) => j.name), ['web', 'etl']);
  const missing = await shoalCli(['--address', agent.address, 'job', 'status', 'nope']);
  t.equal(missing.code, 1);
  t.equal(missing.stderr, 'shoal: job "nope" is not registered\n');
});

t.test('job stop waits until no allocation runs; job scale validates the count', async (t) => {
  const agent = await scriptedAgent(t, {
    'Jobs/Stop': () => ({ evalId: 'eval-stop', index: 40 }),
    'Jobs/Get': (_req, n) => ({
      job: summary([svc({ desired: 0, running: n === 0 ? 2 : 0 })], { stopped: true }),
      allocations: n === 0
        ? [alloc({ desiredStatus: 'stop' }), alloc({ id: 'b'.repeat(16), desiredStatus: 'stop', clientStatus: 'running' })]
        : [alloc({ desiredStatus: 'stop', clientStatus: 'complete' }), alloc({ id: 'b'.repeat(16), desiredStatus: 'stop', clientStatus: 'complete' })],
    }),
    'Jobs/Scale': () => ({ evalId: 'eval-scale', index: 50, version: 3 }),
  });
  const stop = await shoalCli(['--address', agent.address, 'job', 'stop', 'web']);
  t.equal(stop.code, 0, stop.stderr);
  t.match(stop.stdout, /web: 2 allocations still running\n/);
  t.match(stop.stdout, /Job web stopped\n/);
  t.equal(agent.count('Jobs/Get'), 2);
  t.equal(agent.calls.find((c) => c.method === 'Jobs/Get')!.request['minIndex'], 40);

  for (const bad of ['abc', '-1', '1.5', '10001']) {
    const res = await shoalCli(['--address', agent.address, 'job', 'scale', 'web', 'web', '--', bad]);
    t.equal(res.code, 1, `replicas "${bad}" is refused`);
    t.match(res.stderr, /replicas must be a whole number from 0 to 10000/);
  }
  t.equal(agent.count('Jobs/Scale'), 0, 'nothing is sent for a bad count');
  const scale = await shoalCli(['--address', agent.address, 'job', 'scale', 'web', 'web', '5']);
  t.equal(scale.code, 0, scale.stderr);
  t.match(scale.stdout, /scaled to 5 \(version 3\)\nEvaluation ID: eval-scale/);
  t.same(agent.calls.find((c) => c.method === 'Jobs/Scale')!.request, { name: 'web', service: 'web', replicas: 5 });
});

t.test('alloc ls and status: tables, filters sent as given, prefix errors from the agent, -o json', async (t) => {
  const agent = await scriptedAgent(t, {
    'Allocations/List': () => ({ allocations: [alloc(), alloc({ id: '0123456789abcdef', slot: 1, clientStatus: 'failed', clientMessage: 'exit code 1:\n  boom' })], index: 9 }),
    'Allocations/Get': (req) => {
      if (req['id'] === 'a') throw new AmbiguousIdError('a', ['a1b2c3d4', 'a9999999']);
      return { allocation: alloc({ cpuMillicores: 500, memoryBytes: 256 * 1024 * 1024, previousAllocId: 'e'.repeat(16) }), index: 9 };
    },
  });
  const ls = await shoalCli(['--address', agent.address, 'alloc', 'ls', '--job', 'web', '--node', 'n1', '--all']);
  t.equal(ls.code, 0, ls.stderr);
  t.match(ls.stdout, /^ID\s+NODE\s+JOB\s+SERVICE\s+SLOT\s+DESIRED\s+STATUS\s+RESTARTS\s+MESSAGE\n/);
  t.match(ls.stdout, /01234567\s+n1\s+web\s+web\s+1\s+run\s+failed\s+0\s+exit code 1: boom\n/);
  t.match(agent.calls.find((c) => c.method === 'Allocations/List')!.request, { job: 'web', node: 'n1', all: true });
  const json = await shoalCli(['--address', agent.address, 'alloc', 'ls', '-o', 'json']);
  t.equal(json.code, 0);
  t.equal((JSON.parse(json.stdout) as { allocations: { createIndex: number }[] }).allocations[0]!.createIndex, 11);
  const status = await shoalCli(['--address', agent.address, 'alloc', 'status', 'a1b2']);
  t.equal(status.code, 0, status.stderr);
  t.match(status.stdout, /ID\s+a1b2c3d4e5f6a7b8\n/);
  t.match(status.stdout, /Resources\s+0\.5 CPU, 256 MiB\n/);
  t.match(status.stdout, /Replaces\s+eeeeeeee\n/);
  t.equal(agent.calls.filter((c) => c.method === 'Allocations/Get')[0]!.request['id'], 'a1b2', 'the prefix is passed as typed');
  const ambiguous = await shoalCli(['--address', agent.address, 'alloc', 'status', 'a']);
  t.equal(ambiguous.code, 1);
  t.match(ambiguous.stderr, /^shoal: id prefix "a" matches 2 ids/);
});

/** Logs answers from two byte strings, `window` bytes at a time, honouring the offsets asked for. */
function logWindows(stdout: string, stderr: string, window: number, finishedAfter = Infinity) {
  return (req: Record<string, unknown>, n: number) => {
    const o = req['stdoutOffset'] as number;
    const e = req['stderrOffset'] as number;
    const out = Buffer.from(stdout).subarray(o, o + window);
    const err = Buffer.from(stderr).subarray(e, e + window);
    return { stdout: out, stderr: err, stdoutOffset: o + out.length, stderrOffset: e + err.length, finished: n >= finishedAfter, allocId: 'a1b2c3d4e5f6a7b8' };
  };
}

t.test('alloc logs: concatenates windows until one brings nothing; --stderr; --tail', async (t) => {
  const out = 'line 1\nline 2\nline 3\nline 4\n';
  const err = 'warn A\nwarn B\n';
  const agent = await scriptedAgent(t, { 'Allocations/Logs': logWindows(out, err, 5) });
  const res = await shoalCli(['--address', agent.address, 'alloc', 'logs', 'a1b2']);
  t.equal(res.code, 0, res.stderr);
  t.equal(res.stdout, out);
  t.equal(res.stderr, err);
  const calls = agent.calls.filter((c) => c.method === 'Allocations/Logs');
  t.equal(calls.length, Math.ceil(out.length / 5) + 1, 'one call per window, and one that brings nothing');
  t.same(calls.map((c) => c.request['stdoutOffset']), [0, 5, 10, 15, 20, 25, 28]);
  t.ok(calls.every((c) => c.request['waitMs'] === 0 && c.request['maxBytes'] === 65536 && c.request['id'] === 'a1b2'));

  const onlyErr = await shoalCli(['--address', agent.address, 'alloc', 'logs', '--stderr', 'a1b2']);
  t.equal(onlyErr.code, 0);
  t.equal(onlyErr.stdout, '');
  t.equal(onlyErr.stderr, err);

  const tail = await shoalCli(['--address', agent.address, 'alloc', 'logs', '--tail', '2', 'a1b2']);
  t.equal(tail.code, 0, tail.stderr);
  t.equal(tail.stdout, 'line 3\nline 4\n');
  t.equal(tail.stderr, err);
  const badTail = await shoalCli(['--address', agent.address, 'alloc', 'logs', '--tail', 'x', 'a1b2']);
  t.equal(badTail.code, 1);
  t.match(badTail.stderr, /--tail must be a whole number/);
});

t.test('alloc logs -f: waits on the agent for output and stops once the task finished and all is read', async (t) => {
  const out = 'one\ntwo\nthree\n';
  // A window of 4 bytes: the task is reported finished from the 3rd call on; the CLI must still read the rest.
  const agent = await scriptedAgent(t, { 'Allocations/Logs': logWindows(out, '', 4, 2) });
  const res = await shoalCli(['--address', agent.address, 'alloc', 'logs', '-f', 'a1b2']);
  t.equal(res.code, 0, res.stderr);
  t.equal(res.stdout, out);
  const calls = agent.calls.filter((c) => c.method === 'Allocations/Logs');
  t.ok(calls.every((c) => c.request['waitMs'] === 2000), 'follow asks the agent to wait for new output');
  t.equal(calls.length, Math.ceil(out.length / 4) + 1, JSON.stringify(calls.map((c) => c.request)));
});

t.test('alloc logs -f: Ctrl-C ends following with exit 0', async (t) => {
  const agent = await scriptedAgent(t, {
    'Allocations/Logs': (req) => (req['stdoutOffset'] === 0
      ? { stdout: Buffer.from('started\n'), stdoutOffset: 8 }
      : { stdoutOffset: 8 }), // the task keeps running and says nothing more
  });
  let interrupted = false;
  const res = await startCli(['--address', agent.address, 'alloc', 'logs', '-f', 'a1b2'], (stdout, child) => {
    if (!interrupted && stdout.includes('started\n')) {
      interrupted = true;
      child.kill('SIGINT');
    }
  });
  t.ok(interrupted);
  t.equal(res.code, 0, res.stderr);
  t.equal(res.stdout, 'started\n');
  t.equal(res.stderr, '');
});

t.test('node ls, drain (waits for allocations to leave), eligibility', async (t) => {
  const nodeId = `abcdef01${'0'.repeat(56)}`;
  const agent = await scriptedAgent(t, {
    'Nodes/List': () => ({
      nodes: [{
        id: nodeId, name: 'n1', address: '127.0.0.1:7001', status: 'ready', eligible: true, draining: false, roles: ['voter', 'leader'],
        cpuMillicores: 2000, memoryBytes: 4096 * 1024 * 1024, allocatedCpuMillicores: 500, allocatedMemoryBytes: 512 * 1024 * 1024, allocations: 2,
      }],
      index: 7,
    }),
    'Nodes/Drain': () => ({ nodeId, index: 60 }),
    'Allocations/List': (_req, n) => ({ allocations: n < 2 ? [alloc(), alloc({ id: 'b'.repeat(16), desiredStatus: n === 0 ? 'run' : 'stop' })] : [] }),
    'Nodes/Eligibility': () => ({ nodeId, index: 61 }),
  });
  const ls = await shoalCli(['--address', agent.address, 'node', 'ls']);
  t.equal(ls.code, 0, ls.stderr);
  t.match(ls.stdout, /^NAME\s+ID\s+STATUS\s+ELIGIBLE\s+DRAIN\s+ALLOCS\s+CPU\s+MEMORY\s+ROLES\n/);
  t.match(ls.stdout, /n1\s+abcdef01\s+ready\s+yes\s+no\s+2\s+0\.5\/2\s+512\/4096 MiB\s+voter,leader\n/);
  const json = await shoalCli(['--address', agent.address, 'node', 'ls', '-o', 'json']);
  t.match(JSON.parse(json.stdout), { nodes: [{ id: nodeId, cpuMillicores: 2000, labels: {}, drivers: [] }], index: 7 });

  const drain = await shoalCli(['--address', agent.address, 'node', 'drain', 'n1']);
  t.equal(drain.code, 0, drain.stderr);
  t.match(drain.stdout, /Node n1: 2 allocations left\n/);
  t.match(drain.stdout, /Node n1: 1 allocation left\n/);
  t.match(drain.stdout, /drain complete/);
  t.match(agent.calls.find((c) => c.method === 'Nodes/Drain')!.request, { node: 'n1', enable: true });
  t.match(agent.calls.find((c) => c.method === 'Allocations/List')!.request, { node: nodeId, minIndex: 60 });
  const lists = agent.count('Allocations/List');
  const undrain = await shoalCli(['--address', agent.address, 'node', 'drain', '--disable', 'n1']);
  t.equal(undrain.code, 0);
  t.match(agent.calls.filter((c) => c.method === 'Nodes/Drain')[1]!.request, { enable: false });
  t.equal(agent.count('Allocations/List'), lists, 'ending a drain does not wait');

  const neither = await shoalCli(['--address', agent.address, 'node', 'eligibility', 'n1']);
  t.equal(neither.code, 1);
  t.match(neither.stderr, /exactly one of --enable or --disable/);
  const off = await shoalCli(['--address', agent.address, 'node', 'eligibility', 'n1', '--disable']);
  t.equal(off.code, 0, off.stderr);
  t.match(off.stdout, /is now ineligible/);
  t.same(agent.calls.filter((c) => c.method === 'Nodes/Eligibility').map((c) => c.request), [{ node: 'n1', eligible: false }]);
});
