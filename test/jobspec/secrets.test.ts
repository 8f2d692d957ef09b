/**
 * Secrets and configs in job files: the top-level declarations (file, environment, content, external, name), the
 * services' references (short and long syntax, targets by driver, mode, uid, gid), the contents the CLI is told to
 * read, the merge of several files, and canonical JSON. Several one-error cases also live in malformed-cases.ts, which
 * the end-to-end bad-input test runs against an agent.
 */
import t, { type Test } from 'tap';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { JobSpecError, parseJobFile, parseJobFiles, validateJob, type Job } from '../../src/jobspec/index.js';
import { JOBSPEC_LIMITS } from '../../src/jobspec/limits.js';
import { parseFileMode, resolveTarget } from '../../src/jobspec/file-objects.js';

const here = path.dirname(fileURLToPath(import.meta.url));

const OPTIONS = { file: 'job.yaml', baseDir: '/srv/jobs', home: '/home/ann' };
const ok = (text: string, env: Record<string, string> = {}) => parseJobFile(text, { ...OPTIONS, env });
const fails = (t: Test, text: string, env: Record<string, string> = {}): JobSpecError => t.throws(() => ok(text, env)) as JobSpecError;
/** A container `a` with the given lines under it, then the given top-level lines. */
const container = (service: string, top = '') => `services:\n  a:\n    image: x\n${service}${top}`;
/** A process task `p` likewise. */
const process_ = (service: string, top = '') => `services:\n  p:\n    x-shoal.driver: process\n    command: [w]\n${service}${top}`;

t.test('every source, both syntaxes, both drivers: the canonical job and what the CLI must read', async (t) => {
  const file = path.join(here, 'fixtures/secrets.yaml');
  const result = parseJobFile(readFileSync(file, 'utf8'), { file, env: { LOG_LEVEL: 'the-api-key' }, baseDir: '/srv/vault' });
  const { job, warnings, contents } = result;
  t.same(warnings, []);
  t.same(job.secrets, [
    { name: 'api_key', clusterName: 'vault_api_key', external: false },
    { name: 'db_password', clusterName: 'vault_db_password', external: false },
    { name: 'tls', clusterName: 'shared-tls', external: true },
  ], 'sorted by name; a job\'s own are <job>_<key>, an external one is its name');
  t.same(job.configs, [
    { name: 'app', clusterName: 'vault-app-v1', external: false },
    { name: 'nginx', clusterName: 'vault_nginx', external: false },
  ], '"name:" names a job\'s own config in the cluster, as in Compose');
  const [api, worker] = job.services;
  t.same(api!.secrets, [
    { source: 'db_password', target: '/run/secrets/db_password', uid: null, gid: null, mode: 0o444 },
    { source: 'api_key', target: '/run/secrets/keys/api', uid: 1000, gid: 1000, mode: 0o400 },
    { source: 'tls', target: '/etc/tls/key.pem', uid: null, gid: null, mode: 0o444 },
  ], 'a container\'s secrets: under /run/secrets unless absolute; in the file\'s order');
  t.same(api!.configs, [
    { source: 'nginx', target: '/nginx', uid: null, gid: null, mode: 0o444 },
    { source: 'app', target: '/etc/app/app.conf', uid: null, gid: null, mode: 0o440 },
  ], 'a container\'s configs: under / unless absolute');
  t.same(worker!.secrets, [
    { source: 'db_password', target: 'db_password', uid: null, gid: null, mode: 0o444 },
    { source: 'api_key', target: 'keys/api', uid: null, gid: null, mode: 0o400 },
  ], 'a process task\'s: relative to SHOAL_SECRETS_DIR');
  t.same(worker!.configs, [{ source: 'app', target: 'app.conf', uid: null, gid: null, mode: 0o444 }]);
  t.same(contents, [
    { kind: 'secret', name: 'api_key', clusterName: 'vault_api_key', environment: 'LOG_LEVEL', where: `${file}:26:18: secrets.api_key.environment` },
    { kind: 'secret', name: 'db_password', clusterName: 'vault_db_password', file: '/srv/vault/secrets/db_password.txt', where: `${file}:24:11: secrets.db_password.file` },
    { kind: 'config', name: 'app', clusterName: 'vault-app-v1', file: '/srv/vault/app.conf', where: `${file}:35:11: configs.app.file` },
    { kind: 'config', name: 'nginx', clusterName: 'vault_nginx', content: 'server { listen 80; }\n', where: `${file}:32:14: configs.nginx.content` },
  ], 'the job\'s own, secrets then configs, each by name; nothing for an external one');
  t.notOk(JSON.stringify(result).includes('the-api-key'), 'the value of an environment source is nowhere in the result');

  t.same(validateJob(JSON.parse(JSON.stringify(job)), 'rpc'), job, 'the canonical job validates');
  const again = parseJobFile(JSON.stringify(job), { file: 'vault.json' });
  t.same(again.job, job, 'and comes back the same from `--output` JSON');
  t.same(again.contents, [], 'canonical JSON names no contents to read');
  const none = ok(container(''));
  t.notOk('secrets' in none.job || 'configs' in none.job || 'secrets' in none.job.services[0]! || 'configs' in none.job.services[0]!, 'a job without them has no such keys');
  t.same(none.contents, []);
  const empty = ok(container('    secrets: []\n', 'secrets: {}\nconfigs: {}\n'));
  t.same(empty.job, none.job, 'empty lists and mappings are none');
});

t.test('mode: octal as Docker reads it (YAML 1.1 numbers, octal strings), decimal without a leading zero', async (t) => {
  const modeOf = (mode: string, env: Record<string, string> = {}) => {
    const r = ok(container(`    secrets:\n      - source: s\n        mode: ${mode}\n`, 'secrets:\n  s: { file: /s }\n'), env);
    return { mode: r.job.services[0]!.secrets![0]!.mode, warnings: r.warnings };
  };
  const cases: [string, number][] = [
    ['0440', 0o440], ['"0440"', 0o440], ["'0440'", 0o440], ['0o440', 0o440], ['"0o440"', 0o440], ['"440"', 0o440],
    ['0400', 0o400], ['0', 0], ['00', 0], ['0777', 0o777], ['07777', 0o7777], ['288', 288], ['256', 256], ['420', 0o644], ['0x1ff', 0o777],
    ['"${MODE}"', 0o600], ['${MODE}', 0o600],
  ];
  for (const [written, expected] of cases) {
    const r = modeOf(written, { MODE: '0600' });
    t.equal(r.mode, expected, `mode: ${written}`);
    t.same(r.warnings, [], `mode: ${written}: no warning`);
  }
  const decimal = modeOf('440');
  t.equal(decimal.mode, 440, 'a bare number without a leading zero is decimal, as Docker reads it');
  t.same(decimal.warnings, ['job.yaml:6:15: services.a.secrets.0.mode: mode 440 is the decimal number 440 (0670 in octal), as Docker reads it; for the permission bits 0440, write 0440']);
  t.equal(modeOf('644').warnings.length, 1, '644 is 01204: a warning too');
  t.equal(modeOf('420').warnings.length, 0, 'the decimal 420, 0644, is what it says: no warning');
  // Through an alias and through a merge key, the number's text is found where it is written.
  const aliased = ok(`x-mode: &m 0440\nx-refs: &refs\n  secrets:\n    - { source: s, mode: 0400 }\n${container('    secrets:\n      - { source: s, mode: *m }\n  b:\n    <<: *refs\n    image: y\n', 'secrets:\n  s: { file: /s }\n')}`);
  t.same(aliased.job.services.map((s) => s.secrets![0]!.mode), [0o440, 0o400], 'aliases and merge keys');
  t.same(modeOf('0440').mode, 0o440);

  const bad: [unknown, string][] = [
    ['0948', 'mode "0948" is not an octal number of permission bits (0 to 7777, such as 0440)'],
    ['rw', 'mode "rw" is not an octal number of permission bits (0 to 7777, such as 0440)'],
    [-1, 'mode -1 is not an octal number of permission bits (0 to 7777, such as 0440)'],
    ['010000', 'mode "010000" is not an octal number of permission bits (0 to 7777, such as 0440)'],
    [4096, 'mode 4096 is not an octal number of permission bits (0 to 7777, such as 0440)'],
    [1.5, 'mode 1.5 is not an octal number of permission bits (0 to 7777, such as 0440)'],
    ['', 'mode "" is not an octal number of permission bits (0 to 7777, such as 0440)'],
    [true, 'mode true is not an octal number of permission bits (0 to 7777, such as 0440)'],
  ];
  for (const [value, message] of bad) t.equal(parseFileMode(value), message, `parseFileMode(${JSON.stringify(value)})`);
  for (const written of ['0948', 'rw', '-1', '-0440', '010000', '5000', '"0o8"', '"${MODE}"']) {
    const err = fails(t, container(`    secrets:\n      - source: s\n        mode: ${written}\n`, 'secrets:\n  s: { file: /s }\n'), { MODE: '288' });
    t.equal(err.issues.length, 1, `mode: ${written}`);
    t.match(err.message, /^job\.yaml:6:15: services\.a\.secrets\.0\.mode: mode .* is not an octal number of permission bits/, `mode: ${written}`);
  }
});

t.test('uid and gid: numbers, or numeric strings as Compose writes them', async (t) => {
  const ref = (line: string) => ok(container(`    secrets:\n      - { source: s, ${line} }\n`, 'secrets:\n  s: { file: /s }\n')).job.services[0]!.secrets![0]!;
  t.match(ref('uid: "1000", gid: "50"'), { uid: 1000, gid: 50 });
  t.match(ref('uid: 0, gid: 0'), { uid: 0, gid: 0 });
  t.match(ref('uid: 4294967294'), { uid: 4294967294, gid: null });
  t.match(ref('gid: " 7 "'), { uid: null, gid: 7 });
  for (const [line, message] of [
    ['uid: app', /job\.yaml:5:27: services\.a\.secrets\.0\.uid: uid must be a whole number from 0 to 4294967294, got "app"/],
    ['gid: "-1"', /job\.yaml:5:27: services\.a\.secrets\.0\.gid: gid must be a whole number from 0 to 4294967294, got "-1"/],
    ['uid: 1.5', /services\.a\.secrets\.0\.uid: uid must be a whole number from 0 to 4294967294, got 1\.5/],
    ['gid: 4294967295', /services\.a\.secrets\.0\.gid: gid must be a whole number/],
  ] as const) {
    const err = fails(t, container(`    secrets:\n      - { source: s, ${line} }\n`, 'secrets:\n  s: { file: /s }\n'));
    t.equal(err.issues.length, 1, line);
    t.match(err.message, message, line);
  }
});

t.test('targets: a container\'s are absolute (secrets under /run/secrets, configs under /); a process task\'s relative', async (t) => {
  const cases: ['docker' | 'process', 'secret' | 'config', string, string | undefined, string][] = [
    ['docker', 'secret', 'db', undefined, '/run/secrets/db'],
    ['docker', 'secret', 'db', 'password', '/run/secrets/password'],
    ['docker', 'secret', 'db', 'conf/db.pw', '/run/secrets/conf/db.pw'],
    ['docker', 'secret', 'db', '/etc/db/password', '/etc/db/password'],
    ['docker', 'secret', 'db', '/etc//db/./x/../password', '/etc/db/password'],
    ['docker', 'config', 'nginx', undefined, '/nginx'],
    ['docker', 'config', 'nginx', 'etc/nginx.conf', '/etc/nginx.conf'],
    ['docker', 'config', 'nginx', '/etc/nginx/nginx.conf', '/etc/nginx/nginx.conf'],
    ['process', 'secret', 'db', undefined, 'db'],
    ['process', 'secret', 'db', './conf//db.pw', 'conf/db.pw'],
    ['process', 'config', 'nginx', 'nginx/nginx.conf', 'nginx/nginx.conf'],
    ['process', 'config', 'nginx', '/etc/nginx.conf', '/etc/nginx.conf'],
    ['process', 'config', 'nginx', '../x', '../x'],
    ['process', 'config', 'nginx', '.', '.'],
  ];
  for (const [driver, kind, source, target, expected] of cases) {
    t.equal(resolveTarget(kind, driver, source, target), expected, `${driver} ${kind} ${source} -> ${String(target)}`);
  }
  // As parsed: the process task's absolute and escaping targets are kept as written, and refused with the reason.
  const { job } = ok(process_('    secrets:\n      - { source: s, target: ./a/b }\n    configs: [c, { source: c, target: sub/c }]\n', 'secrets:\n  s: { file: /s }\nconfigs:\n  c: { content: x }\n'));
  t.same(job.services[0]!.secrets!.map((r) => r.target), ['a/b']);
  t.same(job.services[0]!.configs!.map((r) => r.target), ['c', 'sub/c']);
  t.ok(ok(process_('    secrets: [c]\n    configs: [c]\n', 'secrets:\n  c: { file: /s }\nconfigs:\n  c: { content: x }\n')), 'a process task\'s secret and config may have one name: they are in two directories');
  const same = fails(t, container('    secrets: [c]\n    configs: [{ source: c, target: /run/secrets/c }]\n', 'secrets:\n  c: { file: /s }\nconfigs:\n  c: { content: x }\n'));
  t.match(same.message, /^job\.yaml:5:\d+: services\.a\.configs\.0\.target: config target "\/run\/secrets\/c" is also the target of services\.a\.secrets\.0$/, 'a container\'s secrets and configs share its file system');
  t.ok(ok(container('    secrets: [s, { source: s, target: /etc/s }]\n', 'secrets:\n  s: { file: /s }\n')), 'one secret may be used at two targets');
});

t.test('names in the cluster: <job>_<key>, or name:, or an external one\'s key or name', async (t) => {
  const { job, warnings } = ok(`name: shop
services:
  a: { image: x }
secrets:
  own: { file: /x }
  named: { file: /x, name: shop-named.v2 }
  ext: { external: true }
  ext_named: { external: "true", name: Shared.Cert }
  legacy: { external: { name: old-cert } }
  both: { external: { name: old-cert }, name: old-cert }
  same_as_ext: { external: true, name: Shared.Cert }
  labelled: { file: /x, labels: { team: a } }
`);
  t.same(job.secrets, [
    { name: 'both', clusterName: 'old-cert', external: true },
    { name: 'ext', clusterName: 'ext', external: true },
    { name: 'ext_named', clusterName: 'Shared.Cert', external: true },
    { name: 'labelled', clusterName: 'shop_labelled', external: false },
    { name: 'legacy', clusterName: 'old-cert', external: true },
    { name: 'named', clusterName: 'shop-named.v2', external: false },
    { name: 'own', clusterName: 'shop_own', external: false },
    { name: 'same_as_ext', clusterName: 'Shared.Cert', external: true },
  ], 'two external entries may name one object');
  t.same(warnings, ['job.yaml:12:25: secrets.labelled.labels: "labels" of a secret are ignored']);
  t.equal(ok(`name: ${'j'.repeat(60)}\nservices:\n  a: { image: x }\nsecrets:\n  abc: { file: /x }\n`).job.secrets![0]!.clusterName.length, 64, '64 characters are allowed');
  t.same(ok('services:\n  a: { image: x }\nsecrets:\n  s: { file: /x, x-note: anything }\n').job.secrets, [{ name: 's', clusterName: 'job_s', external: false }], 'x- fields are ignored, as in Compose');
  const badJob = fails(t, 'name: "My Job"\nservices:\n  a: { image: x }\nsecrets:\n  s: { file: /x }\n');
  t.same(badJob.issues.map((i) => i.path), ['name'], 'a job name that is not valid is reported once, not again in each cluster name');
});

t.test('the contents to read: resolved like bind sources, never read, and never the value of a variable', async (t) => {
  const secret = 'correct horse battery staple';
  const env = { DB_PASSWORD: secret, TOKEN: '' };
  const result = ok(`services:
  a: { image: x }
secrets:
  home: { file: ~/keys/a.pem }
  abs: { file: /etc//keys/../keys/b.pem }
  rel: { file: ../shared/c.pem }
  var: { environment: DB_PASSWORD }
  empty: { environment: TOKEN }
configs:
  text: { content: "level=\${LEVEL:-info}\\npassword=$$NOT_SUBSTITUTED" }
`, env);
  t.same(result.contents.map((c) => [c.name, c.file ?? c.environment ?? c.content]), [
    ['abs', '/etc/keys/b.pem'], ['empty', 'TOKEN'], ['home', '/home/ann/keys/a.pem'], ['rel', '/srv/shared/c.pem'], ['var', 'DB_PASSWORD'],
    ['text', 'level=info\npassword=$NOT_SUBSTITUTED'],
  ], 'a set variable may be empty; a config\'s content is substituted as any value');
  t.notOk(JSON.stringify(result).includes(secret), 'the secret\'s value is not in the result');
  // Nor in the errors of a file that fails for another reason.
  const err = fails(t, `services:\n  a: { image: x, secrets: [nope] }\nsecrets:\n  var: { environment: DB_PASSWORD }\n`, env);
  t.notOk(JSON.stringify(err.issues).includes(secret) || err.message.includes(secret), 'nor in the errors');
  const noBase = t.throws(() => parseJobFile('services:\n  a: { image: x }\nsecrets:\n  s: { file: s.txt }\n', { file: 'job.yaml' })) as JobSpecError;
  t.match(noBase.message, /^job\.yaml:4:14: secrets\.s\.file: "s\.txt" is relative, and there is no job file directory to resolve it against; use an absolute path$/);
  const noHome = t.throws(() => parseJobFile('services:\n  a: { image: x }\nsecrets:\n  s: { file: ~/s.txt }\n', { file: 'job.yaml', baseDir: '/x' })) as JobSpecError;
  t.match(noHome.message, /secrets\.s\.file: "~\/s\.txt": "~" is expanded only by `shoal job run` on its machine/);
});

// Each bad file: its text, the variables, and the single error (file:line:column: path: message).
const BAD: [string, string, Record<string, string>, RegExp][] = [
  ['a reference to an undeclared secret', container('    secrets: [db, cert]\n', 'secrets:\n  db: { file: /x }\n  key: { file: /y }\n'), {},
    /^job\.yaml:4:19: services\.a\.secrets\.1: secret "cert" is not one of the job's secrets \(db, key\): declare it under the top-level "secrets"$/],
  ['a long reference to an undeclared config', container('    configs:\n      - source: nginx\n', 'configs:\n  app: { content: x }\n'), {},
    /^job\.yaml:5:17: services\.a\.configs\.0\.source: config "nginx" is not one of the job's configs \(app\)/],
  ['a reference when the job declares none', container('    configs: [nginx]\n'), {},
    /^job\.yaml:4:15: services\.a\.configs\.0: config "nginx" is not one of the job's configs \(it declares none\)/],
  ['a secret written in the file', container('', 'secrets:\n  db:\n    content: hunter2\n'), {},
    /^job\.yaml:6:5: secrets\.db\.content: a secret's value must not be written in the job file; use file: or environment:$/],
  ['two sources', container('', 'configs:\n  c:\n    file: ./a\n    content: b\n'), {},
    /^job\.yaml:6:5: configs\.c: config "c" takes one of file, environment, content or external: true, got file and content$/],
  ['external and a source', container('', 'secrets:\n  db:\n    external: true\n    environment: X\n'), { X: 'x' },
    /^job\.yaml:6:5: secrets\.db: secret "db" takes one of file, environment or external: true, got environment and external$/],
  ['no source', container('', 'secrets:\n  db:\n'), {}, /^job\.yaml:5:3: secrets\.db: secret "db" needs one of file, environment or external: true$/],
  ['no source, not external', container('', 'configs:\n  c: { external: false, name: x }\n'), {}, /^job\.yaml:5:3: configs\.c: config "c" needs one of file, environment, content or external: true$/],
  ['a variable that is not set', container('', 'secrets:\n  db:\n    environment: DB_PASSWORD\n'), { OTHER: 'x' },
    /^job\.yaml:6:18: secrets\.db\.environment: the environment variable DB_PASSWORD is not set: `shoal job run` takes the secret's value from it$/],
  ['not a variable name', container('', 'secrets:\n  db: { environment: "1 X" }\n'), {}, /^job\.yaml:5:22: secrets\.db\.environment: "1 X" is not the name of an environment variable/],
  ['an empty file name', container('', 'secrets:\n  db: { file: "${NONE}" }\n'), {}, /^job\.yaml:5:15: secrets\.db\.file: is empty \(a variable that is not set\?\)$/],
  ['a driver', container('', 'secrets:\n  db:\n    file: /x\n    driver: vault\n'), {}, /^job\.yaml:7:5: secrets\.db\.driver: "driver" is not supported: Shoal keeps secrets itself/],
  ['a template driver', container('', 'configs:\n  c:\n    content: x\n    template_driver: golang\n'), {}, /^job\.yaml:7:5: configs\.c\.template_driver: "template_driver" is not supported: Shoal keeps configs itself/],
  ['driver options', container('', 'secrets:\n  db: { file: /x, driver_opts: { a: b } }\n'), {}, /^job\.yaml:5:19: secrets\.db\.driver_opts: "driver_opts" is not supported/],
  ['an unknown key', container('', 'secrets:\n  db: { file: /x, colour: red }\n'), {}, /^job\.yaml:5:19: secrets\.db\.colour: unknown key "colour"$/],
  ['an unknown reference key', container('    secrets:\n      - { source: db, owner: me }\n', 'secrets:\n  db: { file: /x }\n'), {}, /^job\.yaml:5:23: services\.a\.secrets\.0\.owner: unknown key "owner"$/],
  ['a reference without source', container('    secrets:\n      - { target: /x }\n', 'secrets:\n  db: { file: /x }\n'), {}, /^job\.yaml:5:\d+: services\.a\.secrets\.0(\.source)?: is required/],
  ['a bad key', container('', 'secrets:\n  "db password": { file: /x }\n'), {}, /^job\.yaml:5:3: secrets\.db password: secret name "db password" must be 1-64 letters, digits, "_", "\." or "-", starting with a letter or digit$/],
  ['a key starting with "_"', container('', 'configs:\n  _c: { content: x }\n'), {}, /^job\.yaml:5:3: configs\._c: config name "_c" must be 1-64/],
  ['a cluster name too long', `name: ${'j'.repeat(60)}\n${container('', 'secrets:\n  password: { file: /x }\n')}`, {},
    /^job\.yaml:6:3: secrets\.password: secret "password": its name in the cluster, "j{60}_password", must be 1-64 .* \(a job's own secret is named <job>_<key> in the cluster: shorten the key, or set "name"\)$/],
  ['a bad name:', container('', 'secrets:\n  db: { file: /x, name: "db password" }\n'), {}, /^job\.yaml:5:25: secrets\.db\.name: secret "db": its name in the cluster, "db password", must be 1-64 letters, digits, "_", "\." or "-", starting with a letter or digit$/],
  ['a bad external.name', container('', 'configs:\n  c: { external: { name: "-c" } }\n'), {}, /^job\.yaml:5:26: configs\.c\.external\.name: config "c": its name in the cluster, "-c", must be/],
  ['external names that disagree', container('', 'secrets:\n  db: { external: { name: a }, name: b }\n'), {}, /^job\.yaml:5:32: secrets\.db\.name: external\.name "a" and name "b" disagree/],
  ['an own secret named as another', container('', 'secrets:\n  a: { file: /x, name: same }\n  b: { external: true, name: same }\n'), {},
    /^job\.yaml:6:30: secrets\.b\.name: secret "b" has the cluster name "same" of secrets\.a too: a secret the job provides must be the only one of its name$/],
  ['an external "true" that is not a boolean', container('', 'secrets:\n  db: { external: yes please }\n'), {}, /^job\.yaml:5:19: secrets\.db\.external: must be true or false, got "yes please"$/],
  ['a mode that is not octal', container('    secrets:\n      - { source: db, mode: 0948 }\n', 'secrets:\n  db: { file: /x }\n'), {},
    /^job\.yaml:5:29: services\.a\.secrets\.0\.mode: mode "0948" is not an octal number of permission bits \(0 to 7777, such as 0440\)$/],
  ['an absolute target for a process task', process_('    secrets:\n      - source: db\n        target: /etc/db\n', 'secrets:\n  db: { file: /x }\n'), {},
    /^job\.yaml:7:17: services\.p\.secrets\.0\.target: target "\/etc\/db": a process task sees the node's own file system: its secrets are files in SHOAL_SECRETS_DIR \(configs: SHOAL_CONFIGS_DIR\), named by a relative target$/],
  ['a target that leaves the directory', process_('    configs:\n      - { source: app, target: conf/../../app.conf }\n', 'configs:\n  app: { content: x }\n'), {},
    /^job\.yaml:6:32: services\.p\.configs\.0\.target: target "\.\.\/app\.conf" would leave SHOAL_CONFIGS_DIR: a relative target may not go above it with "\.\."$/],
  ['a target that names no file', process_('    secrets:\n      - { source: s, target: ./ }\n', 'secrets:\n  s: { file: /x }\n'), {}, /^job\.yaml:6:30: services\.p\.secrets\.0\.target: target "\.\/" names no file$/],
  ['an empty target', container('    secrets:\n      - { source: db, target: "" }\n', 'secrets:\n  db: { file: /x }\n'), {}, /^job\.yaml:5:31: services\.a\.secrets\.0\.target: is empty/],
  ['two references to one target', container('    secrets:\n      - db\n      - { source: key, target: db }\n', 'secrets:\n  db: { file: /x }\n  key: { file: /y }\n'), {},
    /^job\.yaml:6:32: services\.a\.secrets\.1\.target: secret target "\/run\/secrets\/db" is also the target of services\.a\.secrets\.0$/],
  ['one reference twice', process_('    secrets: [db, db]\n', 'secrets:\n  db: { file: /x }\n'), {}, /^job\.yaml:5:\d+: services\.p\.secrets\.1: secret target "db" is also the target of services\.p\.secrets\.0$/],
  ['one target inside another', container('    configs:\n      - { source: c, target: /etc/app }\n      - { source: d, target: /etc/app/x.conf }\n', 'configs:\n  c: { content: y }\n  d: { content: z }\n'), {},
    /^job\.yaml:6:30: services\.a\.configs\.1\.target: config target "\/etc\/app\/x\.conf" and the target "\/etc\/app" of services\.a\.configs\.0 are one inside the other$/],
  ['a uid that is not a number', container('    secrets:\n      - { source: db, uid: app }\n', 'secrets:\n  db: { file: /x }\n'), {}, /^job\.yaml:5:28: services\.a\.secrets\.0\.uid: uid must be a whole number/],
  ['references as a mapping', container('    secrets: { db: {} }\n', 'secrets:\n  db: { file: /x }\n'), {}, /^job\.yaml:4:\d+: services\.a\.secrets: has the wrong type: got a mapping/],
];

t.test(`${BAD.length} bad secrets and configs each get one precise error`, async (t) => {
  for (const [what, text, env, pattern] of BAD) {
    let err: unknown;
    try {
      ok(text, env);
    } catch (e) {
      err = e;
    }
    if (!(err instanceof JobSpecError)) {
      t.fail(`${what}: expected a JobSpecError, got ${err === undefined ? 'success' : String(err)}`);
      continue;
    }
    t.equal(err.issues.length, 1, `${what}: one problem, one error${err.issues.length > 1 ? `: ${err.message}` : ''}`);
    t.match(err.message, pattern, what);
  }
});

t.test('limits: secrets and configs per job, references per service', async (t) => {
  const L = JOBSPEC_LIMITS;
  const declare = (kind: string, n: number) => `${kind}:\n${Array.from({ length: n }, (_, i) => `  s${String(i).padStart(3, '0')}: { file: /s }\n`).join('')}`;
  t.ok(ok(container('', declare('secrets', L.maxSecretsPerJob))), `${L.maxSecretsPerJob} secrets`);
  t.match(fails(t, container('', declare('secrets', L.maxSecretsPerJob + 1))).message, new RegExp(`^job\\.yaml:4:1: secrets: a job may declare at most ${L.maxSecretsPerJob} secrets, got ${L.maxSecretsPerJob + 1}$`));
  t.match(fails(t, container('', declare('configs', L.maxConfigsPerJob + 1))).message, new RegExp(`^job\\.yaml:4:1: configs: a job may declare at most ${L.maxConfigsPerJob} configs, got ${L.maxConfigsPerJob + 1}$`));
  const refs = (n: number) => `    secrets:\n${Array.from({ length: n }, (_, i) => `      - { source: s000, target: t${i} }\n`).join('')}`;
  t.ok(ok(container(refs(L.maxFileRefsPerService), declare('secrets', 1))), `${L.maxFileRefsPerService} references`);
  const err = fails(t, container(refs(L.maxFileRefsPerService + 1), declare('secrets', 1)));
  t.same(err.issues.map((i) => `${i.line}:${i.path}`), ['5:services.a.secrets']);
  t.match(err.message, new RegExp(`a service may use at most ${L.maxFileRefsPerService} secrets, got ${L.maxFileRefsPerService + 1}$`));
});

t.test('several files: secrets replaced whole by key, references by source, as stack deploy merges them', async (t) => {
  const base = { file: '/srv/app/base.yml', text: `name: app
services:
  web:
    image: nginx
    secrets:
      - db
      - { source: key, target: k1, mode: 0440 }
      - { source: key, target: k2 }
      - cert
    configs: [site]
secrets:
  db: { file: ./dev-db.txt }
  key: { file: ./key }
  cert: { file: ./cert, name: dev-cert }
configs:
  site: { content: dev }
` };
  const prod = { file: '/srv/app/prod.yml', text: `services:
  web:
    secrets:
      - { source: key, target: prod-key, uid: "33" }
      - tls
      - db
secrets:
  db: { environment: DB_PASSWORD }
  tls: { external: true }
configs:
  site: { content: prod }
` };
  const { job, contents } = parseJobFiles([base, prod], { env: { DB_PASSWORD: 'pw' }, baseDir: '/srv/app' });
  t.same(job.services[0]!.secrets!.map((r) => [r.source, r.target, r.uid, r.mode.toString(8)]), [
    ['db', '/run/secrets/db', null, '444'],
    ['key', '/run/secrets/prod-key', 33, '444'],
    ['cert', '/run/secrets/cert', null, '444'],
    ['tls', '/run/secrets/tls', null, '444'],
  ], 'the later file\'s entries replace every earlier one of their source, whole, where the first was; new ones follow');
  t.same(job.secrets, [
    { name: 'cert', clusterName: 'dev-cert', external: false },
    { name: 'db', clusterName: 'app_db', external: false },
    { name: 'key', clusterName: 'app_key', external: false },
    { name: 'tls', clusterName: 'tls', external: true },
  ]);
  t.same(contents, [
    { kind: 'secret', name: 'cert', clusterName: 'dev-cert', file: '/srv/app/cert', where: '/srv/app/base.yml:14:17: secrets.cert.file' },
    { kind: 'secret', name: 'db', clusterName: 'app_db', environment: 'DB_PASSWORD', where: '/srv/app/prod.yml:8:22: secrets.db.environment' },
    { kind: 'secret', name: 'key', clusterName: 'app_key', file: '/srv/app/key', where: '/srv/app/base.yml:13:16: secrets.key.file' },
    { kind: 'config', name: 'site', clusterName: 'app_site', content: 'prod', where: '/srv/app/prod.yml:11:20: configs.site.content' },
  ], 'a secret the override gives another source is that source alone (not file: and environment:)');
  t.same(parseJobFiles([base, prod], { env: { DB_PASSWORD: 'pw' }, baseDir: '/srv/app' }).job, job, 'deterministic');
  const untouched = parseJobFiles([base, { file: '/srv/app/more.yml', text: 'services:\n  web:\n    configs: [{ source: site, target: /etc/site }]\n' }], { env: {}, baseDir: '/srv/app' }).job;
  t.same(untouched.services[0]!.configs!.map((r) => r.target), ['/etc/site'], 'a config reference replaced by source');
  t.same(untouched.services[0]!.secrets!.length, 4, 'what the override does not name stays');

  const bad = { file: '/srv/app/bad.yml', text: 'services:\n  web:\n    secrets:\n      - { source: key, target: k1, mode: 0999 }\n' };
  t.throws(() => parseJobFiles([base, bad], { env: {}, baseDir: '/srv/app' }), { message: /^\/srv\/app\/bad\.yml:4:42: services\.web\.secrets\.1\.mode: mode "0999" is not an octal number/ }, 'an error names the file that set the entry');
  const unset = { file: '/srv/app/unset.yml', text: 'secrets:\n  key: { environment: KEY }\nservices: {}\n' };
  t.throws(() => parseJobFiles([base, unset], { env: {}, baseDir: '/srv/app' }), { message: /^\/srv\/app\/unset\.yml:2:23: secrets\.key\.environment: the environment variable KEY is not set/ });
});

t.test('canonical JSON: the same rules, at the canonical paths', async (t) => {
  const base = ok(`name: shop
services:
  api:
    image: x
    secrets: [db, { source: tls, target: /etc/tls.pem }]
  worker:
    x-shoal.driver: process
    command: [w]
    configs: [app]
secrets:
  db: { file: /db }
  tls: { external: true }
configs:
  app: { content: x }
`).job;
  t.same(validateJob(JSON.parse(JSON.stringify(base)), 'rpc'), base);
  type Mutation = (job: any) => void;
  const cases: [string, Mutation, string, RegExp][] = [
    ['secrets out of order', (j) => j.secrets.reverse(), 'secrets.1', /must be sorted by name/],
    ['a secret listed twice', (j) => j.secrets.push({ ...j.secrets[1] }), 'secrets.2.name', /^secret "tls" is listed twice$/],
    ['a bad secret name', (j) => j.secrets.unshift({ name: 'a b', clusterName: 'a b', external: true }), 'secrets.0.name', /^secret name "a b" must be 1-64 letters/],
    ['a bad cluster name', (j) => (j.configs[0].clusterName = 'x'.repeat(65)), 'configs.0.clusterName', /^config "app": its name in the cluster, "x{65}", must be 1-64/],
    ['external not a boolean', (j) => (j.secrets[1].external = 'yes'), 'secrets.1.external', /expected boolean/],
    ['an unknown key', (j) => (j.secrets[0].file = '/db'), 'secrets.0.file', /unknown key "file"/],
    ['a reference to an undeclared secret', (j) => (j.services[0].secrets[0].source = 'nope'), 'services.0.secrets.0.source', /^secret "nope" is not one of the job's secrets \(db, tls\)/],
    ['a relative container target', (j) => (j.services[0].secrets[0].target = 'db'), 'services.0.secrets.0.target', /^a container's secret target must be an absolute path, got "db"$/],
    ['a container target not normalised', (j) => (j.services[0].secrets[0].target = '/run/secrets/./db'), 'services.0.secrets.0.target', /^target "\/run\/secrets\/\.\/db" must be written normalised, as "\/run\/secrets\/db"$/],
    ['a container target that is /', (j) => (j.services[0].secrets[0].target = '/'), 'services.0.secrets.0.target', /^target "\/" names no file$/],
    ['an absolute process target', (j) => (j.services[1].configs[0].target = '/etc/app'), 'services.1.configs.0.target', /a process task sees the node's own file system/],
    ['a process target with ..', (j) => (j.services[1].configs[0].target = 'a/../../b'), 'services.1.configs.0.target', /would leave SHOAL_CONFIGS_DIR/],
    ['a process target not normalised', (j) => (j.services[1].configs[0].target = 'a//b'), 'services.1.configs.0.target', /^target "a\/\/b" must be written normalised, as "a\/b"$/],
    ['two references to one target', (j) => (j.services[0].secrets[1].target = '/run/secrets/db'), 'services.0.secrets.1.target', /^secret target "\/run\/secrets\/db" is also the target of services\.0\.secrets\.0$/],
    ['a mode too big', (j) => (j.services[0].secrets[0].mode = 0o10000), 'services.0.secrets.0.mode', /mode \(permission bits, 0 to 4095 = 0o7777\) must be a whole number from 0 to 4095/],
    ['a negative uid', (j) => (j.services[0].secrets[0].uid = -1), 'services.0.secrets.0.uid', /uid must be a whole number from 0 to 4294967294/],
    ['a gid as a string', (j) => (j.services[0].secrets[0].gid = '1000'), 'services.0.secrets.0.gid', /wrong type/],
    ['a reference without mode', (j) => delete j.services[0].secrets[0].mode, 'services.0.secrets.0.mode', /is required/],
    ['too many configs', (j) => j.configs.push(...Array.from({ length: 64 }, (_, i) => ({ name: `c${String(i).padStart(2, '0')}`, clusterName: `c${String(i).padStart(2, '0')}`, external: true }))), 'configs', /a job may declare at most 64 configs, got 65/],
  ];
  for (const [what, mutate, expectedPath, message] of cases) {
    const job = structuredClone(base) as Job;
    mutate(job);
    const err = t.throws(() => validateJob(job, 'rpc'), what) as JobSpecError;
    t.same(err.issues?.map((i) => i.path), [expectedPath], `${what}: path`);
    t.match(err.issues?.[0]?.message, message, `${what}: message`);
    const fromText = t.throws(() => parseJobFile(JSON.stringify(job, null, 2), { file: 'job.json' }), what) as JobSpecError;
    t.ok(fromText.issues?.[0] && fromText.issues[0].line > 0, `${what}: located in the text`);
  }
});
