/**
 * Secrets at rest (src/runtime/secrets.ts) and on the node (src/runtime/task-files.ts), on real files: sealed so
 * that only the cluster key opens them, bound to their name, and written for a task only on a memory file system,
 * with the owner and mode the job asks for.
 */
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { SecretVault } from '../../src/runtime/secrets.js';
import { TaskFiles, defaultSecretsRoot, type ObjectSource } from '../../src/runtime/task-files.js';
import type { FileObjectRecord } from '../../src/state/types.js';
import type { Job, ServiceSpec } from '../../src/jobspec/types.js';
import { parseJobFile } from '../../src/jobspec/parse.js';

const KEY = randomBytes(32);

t.test('a secret is sealed under the cluster key, bound to its name; a config is stored as it is', async (t) => {
  const vault = new SecretVault(KEY);
  const value = Buffer.from('hunter2-and-more');
  const sealed = vault.seal('secret', 'db_password', value, 'shop');
  t.notOk(Buffer.from(sealed.data, 'base64').includes(value), 'the stored form does not contain the value');
  t.notOk(sealed.data.includes(value.toString('base64').slice(0, 12)), 'nor its base64');
  t.equal(sealed.sizeBytes, value.length);
  t.equal(sealed.job, 'shop');
  t.match(sealed.digest, /^[0-9a-f]{64}$/);
  t.same(vault.open(sealed), value);
  t.not(vault.seal('secret', 'db_password', value, null).data, sealed.data, 'a fresh nonce each time');
  t.equal(vault.seal('secret', 'db_password', value, null).digest, sealed.digest, 'the digest names the contents');
  t.not(new SecretVault(randomBytes(32)).seal('secret', 'db_password', value, null).digest, sealed.digest, 'the digest is keyed: without the key it reveals nothing');
  t.throws(() => new SecretVault(randomBytes(32)).open(sealed), { code: 'ERR_DATA_LOSS', message: /secret "db_password" does not decrypt with this agent's cluster key/ });
  t.throws(() => vault.open({ ...sealed, name: 'other' }), { code: 'ERR_DATA_LOSS' }, 'one secret\'s ciphertext cannot pass for another\'s');
  const raw = Buffer.from(sealed.data, 'base64');
  raw[raw.length - 1]! ^= 1;
  t.throws(() => vault.open({ ...sealed, data: raw.toString('base64') }), { code: 'ERR_DATA_LOSS' }, 'altered');
  t.throws(() => vault.open({ ...sealed, data: 'AAAA' }), { code: 'ERR_DATA_LOSS', message: /truncated/ });
  const config = vault.seal('config', 'nginx.conf', Buffer.from('worker_processes 1;\n'), null);
  t.equal(Buffer.from(config.data, 'base64').toString(), 'worker_processes 1;\n');
  t.match(config.digest, /^[0-9a-f]{64}$/);
  t.throws(() => vault.seal('secret', '-bad', value, null), { code: 'ERR_INVALID_ARGUMENT', message: /secret name "-bad" must be/ });
  t.throws(() => vault.seal('config', 'big', Buffer.alloc(600 * 1024), null), { code: 'ERR_INVALID_ARGUMENT', message: /more than 512000/ });
});

function fixture(driver: 'docker' | 'process'): { job: Job; spec: ServiceSpec; objects: ObjectSource; value: Buffer; conf: Buffer } {
  const job = parseJobFile(`
services:
  db:
${driver === 'process' ? '    x-shoal: { driver: process }\n    command: redis-server' : '    image: redis:7'}
`, { file: 'shop.yaml' }).job;
  job.secrets = [{ name: 'password', clusterName: 'shop_password', external: false }];
  job.configs = [{ name: 'conf', clusterName: 'shop_conf', external: false }];
  const spec = job.services[0]!;
  spec.secrets = [{ source: 'password', target: driver === 'process' ? 'db/password' : '/run/secrets/password', uid: 1234, gid: 4321, mode: 0o440 }];
  spec.configs = [{ source: 'conf', target: driver === 'process' ? 'redis.conf' : '/etc/redis.conf', uid: null, gid: null, mode: 0o444 }];
  const vault = new SecretVault(KEY);
  const value = randomBytes(48);
  const conf = Buffer.from('maxmemory 10mb\n');
  const records = new Map<string, FileObjectRecord>([
    ['secret/shop_password', { ...vault.seal('secret', 'shop_password', value, 'shop'), createIndex: 3 }],
    ['config/shop_conf', { ...vault.seal('config', 'shop_conf', conf, 'shop'), createIndex: 3 }],
  ]);
  return { job, spec, objects: { object: (kind, name) => records.get(`${kind}/${name}`) }, value, conf };
}

t.test('a container gets each file bind-mounted read-only at its target, with its owner and mode', async (t) => {
  const root = mkdtempSync('/dev/shm/shoal-test-');
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  const files = new TaskFiles({ root, nodeId: 'abcdef0123456789ffff', vault: new SecretVault(KEY) });
  const { job, spec, objects, value, conf } = fixture('docker');
  const r = files.write('alloc-1', spec, job, objects, null);
  t.same(r.env, {});
  t.same(r.mounts.map((m) => [m.target, m.readOnly]), [['/run/secrets/password', true], ['/etc/redis.conf', true]]);
  t.ok(r.mounts[0]!.source.startsWith(join(root, 'abcdef0123456789', 'alloc-1')), 'under <root>/<node>/<alloc>');
  t.same(readFileSync(r.mounts[0]!.source), value, 'the same bytes as the source');
  t.same(readFileSync(r.mounts[1]!.source), conf);
  const st = statSync(r.mounts[0]!.source);
  t.equal(st.mode & 0o7777, 0o440);
  t.same([st.uid, st.gid], [1234, 4321]);
  t.same([statSync(r.mounts[1]!.source).uid, statSync(r.mounts[1]!.source).mode & 0o7777], [0, 0o444], 'root\'s by default');
  files.remove('alloc-1');
  t.notOk(existsSync(join(files.dir, 'alloc-1')), 'removed with the task');
});

t.test('a process task gets private directories named in its environment, owned by its user', async (t) => {
  const root = mkdtempSync('/dev/shm/shoal-test-');
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  const files = new TaskFiles({ root, nodeId: 'n1', vault: new SecretVault(KEY) });
  const { job, spec, objects, value, conf } = fixture('process');
  const r = files.write('alloc-2', spec, job, objects, { uid: 65534, gid: 65534 });
  t.same(r.mounts, []);
  const secrets = r.env['SHOAL_SECRETS_DIR']!;
  const configs = r.env['SHOAL_CONFIGS_DIR']!;
  t.same(readFileSync(join(secrets, 'db/password')), value);
  t.same(readFileSync(join(configs, 'redis.conf')), conf);
  for (const dir of [secrets, join(secrets, 'db'), configs]) {
    const st = statSync(dir);
    t.same([st.mode & 0o777, st.uid, st.gid], [0o700, 65534, 65534], `${dir}: the task's user alone`);
  }
  t.same([statSync(join(secrets, 'db/password')).uid, statSync(join(configs, 'redis.conf')).uid], [1234, 65534], 'a ref\'s uid wins; else the task\'s user');
  // A restart writes afresh; the sweep at start-up removes what no live task owns.
  files.write('alloc-2', spec, job, objects, null);
  files.write('alloc-3', spec, job, objects, null);
  files.sweep(new Set(['alloc-3']));
  t.same(readdirSync(files.dir), ['alloc-3']);
  // A root of the system's own (--secrets-dir /dev/shm) keeps its mode; one made here is 0711 whatever the umask.
  chmodSync(root, 0o1777);
  new TaskFiles({ root, nodeId: 'n2', vault: new SecretVault(KEY) }).write('alloc-4', spec, job, objects, null);
  t.equal(statSync(root).mode & 0o7777, 0o1777, 'an existing root is left as it was');
  const made = join(root, 'made', 'here');
  const old = process.umask(0o027);
  try {
    new TaskFiles({ root: made, nodeId: 'n3', vault: new SecretVault(KEY) }).write('alloc-5', spec, job, objects, null);
  } finally {
    process.umask(old);
  }
  t.equal(statSync(made).mode & 0o777, 0o711, 'a root made here can be traversed by a task\'s user');
});

t.test('a secret is never written outside a memory file system; a missing one fails the start with its name', async (t) => {
  const disk = mkdtempSync(join(process.cwd(), '.tmp-secrets-'));
  t.teardown(() => rmSync(disk, { recursive: true, force: true }));
  const { job, spec, objects } = fixture('process');
  const files = new TaskFiles({ root: disk, nodeId: 'n1', vault: new SecretVault(KEY) });
  if (statSync(disk).dev !== statSync('/dev/shm').dev) {
    t.throws(() => files.write('a', spec, job, objects, null), { code: 'ERR_UNSAFE_SECRETS_DIR', message: /service "db" uses secrets, but .* is not on a memory file system/ });
    t.same(readdirSync(join(disk, 'n1', 'a')), [], 'nothing written');
    const onlyConfig = { ...spec, secrets: [] };
    t.ok(files.write('b', onlyConfig, job, objects, null).env['SHOAL_CONFIGS_DIR'], 'configs are not secret: any file system');
  }
  const shm = mkdtempSync('/dev/shm/shoal-test-');
  t.teardown(() => rmSync(shm, { recursive: true, force: true }));
  const onShm = new TaskFiles({ root: shm, nodeId: 'n1', vault: new SecretVault(KEY) });
  t.throws(() => onShm.write('c', spec, job, { object: () => undefined }, null), { code: 'ERR_NOT_FOUND', message: /secret "shop_password" \(service "db"'s "password"\) is not known on this node yet/ });
  const otherKey = new TaskFiles({ root: shm, nodeId: 'n1', vault: new SecretVault(randomBytes(32)) });
  t.throws(() => otherKey.write('e', spec, job, objects, null), { code: 'ERR_DATA_LOSS' }, 'another cluster key opens nothing');
  t.match(defaultSecretsRoot(), /^\/(run|dev\/shm)\/shoal(-\d+)?$/);
});
