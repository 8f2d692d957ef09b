/**
 * `shoal secret create` and `shoal job run` never send a secret's value over plain HTTP to another host: refused
 * before any connection, with what to do instead (https:// and loopback addresses are fine).
 */
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SHOAL_BIN } from '../helpers/agents.js';
import { checkSecretTransport } from '../../src/cli/output.js';
import { ShoalClient } from '../../src/rpc/index.js';

// An address in TEST-NET-1 (RFC 5737): nothing answers there, and the refusal must come before any attempt.
const REMOTE = '192.0.2.10:7646';
const ENV = { PATH: process.env['PATH'] ?? '/usr/bin:/bin', HOME: process.env['HOME'] ?? '/root' };
const shoal = (args: string[], input?: string) => spawnSync(process.execPath, [SHOAL_BIN, '--timeout', '2', ...args], { encoding: 'utf8', env: ENV, timeout: 30_000, ...(input === undefined ? {} : { input }) });

t.test('a secret\'s value is not sent to a remote agent over plain HTTP', async (t) => {
  const dir = t.testdir({});
  const created = shoal(['--address', REMOTE, 'secret', 'create', 'db_password', '-'], 'hunter2');
  t.equal(created.status, 1);
  t.match(created.stderr, /secret create db_password: refusing to send a secret's value to http:\/\/192\.0\.2\.10:7646 over plain HTTP; run the command on a cluster host \(its agent's loopback address\), or reach the API through https:\/\//);
  t.notMatch(created.stderr, /hunter2/);
  writeFileSync(join(dir, 'pw.txt'), 'hunter2');
  writeFileSync(join(dir, 'db.yaml'), 'secrets:\n  pw: { file: ./pw.txt }\nservices:\n  db:\n    image: postgres:16\n    secrets: [pw]\n');
  const run = shoal(['--address', REMOTE, 'job', 'run', '--detach', join(dir, 'db.yaml')]);
  t.equal(run.status, 1);
  t.match(run.stderr, /job run \(job "db" provides secrets\): refusing to send a secret's value/);
  // https://, loopback, and a config pass the check; asked directly, so that nothing connects anywhere.
  for (const address of ['https://192.0.2.10:7646', '127.0.0.1:7646', 'localhost:7646', '[::1]:7646']) {
    t.doesNotThrow(() => checkSecretTransport(new ShoalClient({ address }), 'secret create x'), `${address}: allowed`);
  }
  t.throws(() => checkSecretTransport(new ShoalClient({ address: '10.0.0.5:7646' }), 'secret create x'), { code: 'ERR_INVALID_ARGUMENT' });
});
