/**
 * Bad job input against a real agent: every malformed file given to `shoal job run` (and `job plan`) gets a precise
 * error naming the file, line and field, and exits non-zero; malformed canonical jobs sent straight to the RPC are
 * refused with the field path; after all of it the cluster holds no job and its Raft log did not grow.
 */
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SHOAL_BIN, freeUdpPort, startAgent, waitFor } from '../helpers/agents.js';
import { MALFORMED } from '../jobspec/malformed-cases.js';
import { RemoteError } from '../../src/rpc/index.js';

const ENV = { PATH: process.env['PATH'] ?? '/usr/bin:/bin', HOME: process.env['HOME'] ?? '/root' };

t.test('malformed job files and canonical jobs change nothing in the cluster', async (t) => {
  const dir = t.testdir({});
  const keyFile = join(dir, 'cluster.key');
  spawnSync(process.execPath, [SHOAL_BIN, 'keygen', keyFile]);
  const port = await freeUdpPort('127.0.0.1');
  const agent = await startAgent(t, { name: 'solo', dataDir: join(dir, 'solo'), bind: `127.0.0.1:${port}`, keyFile, extraArgs: ['--bootstrap-expect', '1'] });
  await waitFor('the single agent leads and its node is registered', async () => {
    const nodes = await agent.client.nodes.list();
    return nodes.nodes.length === 1 && (await agent.client.operator.raftState()).role === 'leader';
  });
  // Let the node table settle (roles reach gossip), then take the log position everything is compared with.
  await new Promise((r) => setTimeout(r, 1_500));
  const before = await agent.client.operator.raftState();

  const cli = (...args: string[]) => spawnSync(process.execPath, [SHOAL_BIN, '--address', agent.api, ...args], { encoding: 'utf8', env: ENV, timeout: 60_000 });
  const cases: [string, string, RegExp][] = [
    ...MALFORMED,
    ['a 10 MB file', `services:\n  a:\n    image: x\n    labels:\n${'      k: v\n'.repeat(1_000_000).slice(0, 10 * 1024 * 1024)}`, /job\.yaml: file is \d+ bytes; a job file may be at most \d+ bytes/],
    ['binary garbage', '\u0000\u0001\u0002\u00ff'.repeat(100), /job\.yaml:/],
  ];
  t.ok(cases.length >= 30, `${cases.length} malformed files`);
  for (const [i, [what, text, pattern]] of cases.entries()) {
    const sub = join(dir, `case-${i}`);
    mkdirSync(sub);
    const file = join(sub, 'job.yaml');
    writeFileSync(file, text);
    const run = cli('job', 'run', file);
    t.equal(run.status, 1, `${what}: job run exits 1`);
    // The CLI prints errors with the path it was given; compare from the file's base name on.
    const stderr = run.stderr.replaceAll(`${sub}/`, '').replace(/^shoal: /, '');
    t.match(stderr, pattern, `${what}: the error names the place`);
    t.notMatch(run.stderr, /at .*\.js:\d+/, `${what}: no stack trace`);
  }
  const plan = cli('job', 'plan', join(dir, 'case-0', 'job.yaml'));
  t.equal(plan.status, 255, 'job plan of a malformed file exits 255');

  // The agent checks canonical jobs itself: a client that skips the CLI gets the same precise errors.
  const good = { name: 'ok', type: 'service', services: [] as unknown[], networks: [{ name: 'default', external: null, internal: false }] };
  const bad: [string, string, RegExp][] = [
    ['not JSON', '{"name": "x",', /job_json is not valid JSON/],
    ['empty', '', /job_json is empty/],
    ['a Compose file as JSON', JSON.stringify({ services: { a: { image: 'x' } } }), /services/],
    ['no services', JSON.stringify(good), /services/],
    ['unknown key', JSON.stringify({ ...good, colour: 'red' }), /colour/],
    ['wrong type', JSON.stringify({ ...good, name: 42 }), /name/],
  ];
  for (const [what, jobJson, pattern] of bad) {
    const err = await agent.client.jobs.register({ jobJson }).then(() => undefined, (e: unknown) => e);
    t.ok(err instanceof RemoteError, `${what}: refused`);
    t.match((err as RemoteError).code, /ERR_INVALID_ARGUMENT|ERR_INVALID_JOB/, `${what}: as invalid input`);
    t.match((err as RemoteError).message, pattern, `${what}: ${(err as RemoteError).message.slice(0, 120)}`);
  }
  const huge = await agent.client.jobs.register({ jobJson: 'x'.repeat(5 * 1024 * 1024) }).then(() => undefined, (e: unknown) => e);
  t.match(huge, { code: 'ERR_REQUEST_TOO_LARGE' }, 'an oversized request is refused before it is read whole');

  const after = await agent.client.operator.raftState();
  t.equal((await agent.client.jobs.list()).jobs.length, 0, 'no job was registered');
  t.equal(Number(after.lastIndex), Number(before.lastIndex), 'nothing was written to the Raft log');
  t.equal((await agent.client.agent.self()).member?.name, 'solo', 'the agent still answers');
});
