import t from 'tap';
import fc from 'fast-check';
import { parseJobFile, JobSpecError, parseDurationMs, parseBytes, parseCpuMillicores, splitCommand, interpolate, validateJob, parseJobFiles } from '../../src/jobspec/index.js';
import { MALFORMED } from './malformed-cases.js';

const ok = (text: string, env: Record<string, string> = {}, extra: { name?: string; file?: string } = {}) =>
  parseJobFile(text, { file: extra.file ?? 'job.yaml', env, baseDir: '/srv/jobs', ...(extra.name ? { name: extra.name } : {}) });

t.test('a full Compose-style service converts to the canonical job', async (t) => {
  const { job, warnings } = ok(`
name: shop
version: "3.9"
x-defaults: &defaults
  environment:
    LOG_LEVEL: \${LOG_LEVEL:-info}
  stop_grace_period: 30s
services:
  api:
    <<: *defaults
    image: shoal-test/busybox:1
    command: ["sh", "-c", "echo hi"]
    ports: ["8080:80", "9090:9090/udp", { target: 7000, published: 17000, mode: host }]
    volumes: ["./data:/data:ro", { type: bind, source: /var/log, target: /logs }]
    labels: [team=payments]
    stop_signal: INT
    healthcheck: { test: "wget -q -O- localhost", interval: 10s, timeout: 2s, retries: 5, start_period: 1m }
    deploy:
      replicas: \${REPLICAS}
      labels: { tier: backend }
      placement:
        constraints: ["node.labels.zone == eu-1", "node.name!=n3", "node.hostname==n1"]
        preferences: [{ spread: node.labels.rack }]
        max_replicas_per_node: 2
      resources:
        reservations: { cpus: "0.25", memory: 64M }
        limits: { cpus: 1, memory: 1g }
      restart_policy: { condition: on-failure, delay: 2s, max_attempts: 3, window: 2m }
  worker:
    x-shoal: { driver: process }
    command: ./worker --queue "high prio"
    environment: [A=1, FROM_ENV]
    deploy: { mode: global }
`, { REPLICAS: '4', FROM_ENV: 'yes' });
  t.same(warnings, [
    'job.yaml:3:1: version: the top-level "version" is obsolete and ignored',
    'job.yaml:13:24: services.api.ports.1: port 9090/udp is published in host mode (on the nodes that run the task): the routing mesh carries TCP only',
  ]);
  t.equal(job.name, 'shop');
  t.equal(job.type, 'service');
  const [api, worker] = job.services;
  t.equal(api!.driver, 'docker');
  t.same(api!.command, ['sh', '-c', 'echo hi']);
  t.same(api!.environment, { LOG_LEVEL: 'info' });
  t.equal(api!.stopGraceMs, 30_000);
  t.equal(api!.stopSignal, 'SIGINT');
  t.same(api!.ports, [{ target: 80, published: 8080, protocol: 'tcp', mode: 'ingress' }, { target: 9090, published: 9090, protocol: 'udp', mode: 'host' }, { target: 7000, published: 17000, protocol: 'tcp', mode: 'host' }]);
  t.same(api!.expose, []);
  t.same(api!.networks, [{ name: 'default', aliases: [] }], 'a service that names no network is on the default one');
  t.same(job.networks, [{ name: 'default', external: null, internal: false }], 'every job has the default network');
  t.equal(api!.deploy.endpointMode, 'vip');
  t.same(api!.volumes, [{ source: '/srv/jobs/data', target: '/data', readOnly: true }, { source: '/var/log', target: '/logs', readOnly: false }]);
  t.same(api!.labels, { team: 'payments', tier: 'backend' });
  t.same(api!.healthcheck, { test: ['CMD-SHELL', 'wget -q -O- localhost'], intervalMs: 10_000, timeoutMs: 2_000, retries: 5, startPeriodMs: 60_000 });
  t.equal(api!.deploy.replicas, 4);
  t.same(api!.deploy.placement, {
    constraints: [{ attribute: 'node.labels.zone', op: '==', value: 'eu-1' }, { attribute: 'node.name', op: '!=', value: 'n3' }, { attribute: 'node.name', op: '==', value: 'n1' }],
    maxReplicasPerNode: 2, spread: ['node.labels.rack'],
  });
  t.same(api!.deploy.resources, { reservations: { cpuMillicores: 250, memoryBytes: 64 * 1024 ** 2 }, limits: { cpuMillicores: 1000, memoryBytes: 1024 ** 3 } });
  t.same(api!.deploy.restartPolicy, { condition: 'on-failure', delayMs: 2_000, maxAttempts: 3, windowMs: 120_000 });
  t.equal(worker!.driver, 'process');
  t.same(worker!.command, ['./worker', '--queue', 'high prio']);
  t.same(worker!.environment, { A: '1', FROM_ENV: 'yes' });
  t.same([worker!.deploy.mode, worker!.deploy.replicas], ['global', 0]);
  t.equal(worker!.deploy.restartPolicy.condition, 'any');
});

t.test('job name: top-level name, else --name, else the file name', async (t) => {
  t.equal(ok('services: { a: { image: x } }', {}, { file: '/x/my-app.yml' }).job.name, 'my-app');
  t.equal(ok('services: { a: { image: x } }', {}, { file: '/x/my-app.yml', name: 'other' }).job.name, 'other');
  t.equal(ok('name: top\nservices: { a: { image: x } }', {}, { name: 'other' }).job.name, 'top');
  // As Compose normalises project names: lower case, other characters removed, leading "_"/"-" trimmed, 63 at most.
  t.equal(ok('services: { a: { image: x } }', {}, { file: '/x/Docker.Compose.Prod.yml' }).job.name, 'dockercomposeprod');
  t.equal(ok('services: { a: { image: x } }', {}, { file: '/x/_My Stack (v2).yaml' }).job.name, 'mystackv2');
  t.equal(ok('services: { a: { image: x } }', {}, { file: `/x/${'a'.repeat(70)}.yml` }).job.name, 'a'.repeat(63));
  t.equal(ok('services: { a: { image: x } }', {}, { file: '/x/--web_1.json' }).job.name, 'web_1');
  t.throws(() => ok('services: { a: { image: x } }', {}, { file: '/x/___.yml' }), /___\.yml" leaves no job name/);
  t.throws(() => ok('name: Bad Name\nservices: { a: { image: x } }'), /job name "Bad Name" must be 1-63 lower-case letters/, 'a name the file gives is not normalised');
});

t.test('how a task runs: user, capabilities, sysctls, ulimits, init, host name, hosts, resolver, pids', async (t) => {
  const { job, warnings } = ok(`services:
  a:
    image: x
    user: 1000
    cap_add: [net_admin, CAP_SYS_TIME]
    cap_drop: [ALL]
    sysctls: [net.core.somaxconn=1024]
    ulimits: { nproc: 512, nofile: { soft: 1024, hard: 2048 } }
    init: "true"
    hostname: "{{.Service.Name}}-{{ .Task.Slot }}"
    extra_hosts: ["db.local:10.0.0.5", "v6=::1"]
    dns: [1.1.1.1, "2606:4700:4700::1111"]
    dns_search: example.org
    dns_opt: [ndots:2]
    deploy: { resources: { limits: { pids: 100 } } }
  b:
    image: x
  p:
    x-shoal: { driver: process }
    command: [sleep, "1"]
    user: nobody:nogroup
`);
  t.same(warnings, []);
  t.same(job.services[0]!.options, {
    user: '1000', capAdd: ['NET_ADMIN', 'CAP_SYS_TIME'], capDrop: ['ALL'], sysctls: { 'net.core.somaxconn': '1024' },
    ulimits: [{ name: 'nofile', soft: 1024, hard: 2048 }, { name: 'nproc', soft: 512, hard: 512 }], init: true,
    hostname: '{{.Service.Name}}-{{ .Task.Slot }}', extraHosts: ['db.local:10.0.0.5', 'v6:::1'], dns: ['1.1.1.1', '2606:4700:4700::1111'],
    dnsSearch: ['example.org'], dnsOptions: ['ndots:2'], readOnly: false, platform: null, runtime: null, pidsLimit: 100,
  });
  const wasm = ok('services:\n  w:\n    image: x\n    platform: WASI/wasm\n    runtime: io.containerd.wasmedge.v1\n').job.services[0]!.options!;
  t.same([wasm.platform, wasm.runtime], ['wasi/wasm', 'io.containerd.wasmedge.v1'], 'platform and runtime');
  t.equal(job.services[1]!.options, undefined, 'a service that sets none has none: its canonical job is as before');
  t.equal(job.services[2]!.options?.user, 'nobody:nogroup', 'a process task takes a user');
  t.same(validateJob(JSON.parse(JSON.stringify(job)), 'rpc'), job, 'the canonical job validates');
  const bad: [string, RegExp][] = [
    ['cap_add: [net admin]', /services\.a\.cap_add\.0: "net admin" is not a Linux capability name/],
    ['ulimits: { files: 10 }', /services\.a\.ulimits\.files: "files" is not a ulimit \(core, cpu/],
    ['ulimits: { nofile: { soft: 20, hard: 10 } }', /services\.a\.ulimits\.nofile: soft limit 20 is above the hard limit 10/],
    ['hostname: "{{.Node.Name}}"', /services\.a\.hostname: "\{\{\.Node\.Name\}\}" is not a template Shoal fills in/],
    ['extra_hosts: ["db.local"]', /services\.a\.extra_hosts\.0: "db\.local" is not HOST:IP/],
    ['extra_hosts: { db: nowhere }', /services\.a\.extra_hosts\.db: "nowhere" \(for db\) is not an IP address/],
    ['dns: resolver.local', /services\.a\.dns: nameserver "resolver\.local" is not an IP address/],
    ['deploy: { resources: { limits: { pids: 0 } } }', /services\.a\.deploy\.resources\.limits\.pids: pids must be a whole number from 1/],
  ];
  for (const [line, message] of bad) t.throws(() => ok(`services:\n  a:\n    image: x\n    ${line}\n`), { message }, line);
  const proc = (line: string) => `services:\n  p:\n    x-shoal: { driver: process }\n    command: [sleep, "1"]\n    ${line}\n`;
  t.throws(() => ok(proc('sysctls: { net.core.somaxconn: 1 }')), { message: /job\.yaml:5:\d+: services\.p\.sysctls: a process shares its node's kernel settings \(a process task honours "user", "ulimits" and the pids limit only; use the docker driver\)/ });
  t.throws(() => ok(proc('hostname: h')), { message: /services\.p\.hostname: a process has its node's host name/ });
  t.throws(() => ok(proc('runtime: runc')), { message: /services\.p\.runtime: an OCI runtime runs containers/ });
  const honoured = ok(proc('ulimits: { nofile: 1024 }\n    deploy: { resources: { limits: { pids: 50 } } }')).job.services[0]!.options!;
  t.same([honoured.ulimits, honoured.pidsLimit], [[{ name: 'nofile', soft: 1024, hard: 1024 }], 50], 'a process task takes ulimits and a pids limit');
});

t.test('env_file: read through the caller, in order, with "environment" winning; bad lines and missing files named', async (t) => {
  const files: Record<string, string> = {
    '/srv/jobs/common.env': '# shared\nexport LEVEL=info\nNAME="shoal app"\nQUOTED=\'${NOT_SUBSTITUTED}\'\nHOST=${HOST_FROM_ENV:-fallback} # trailing comment\n\n',
    '/etc/app/prod.env': 'LEVEL=warn\nREGION=eu\n',
    '/srv/jobs/broken.env': 'GOOD=1\nthis line is wrong\n',
  };
  const readFile = (p: string): string => {
    if (files[p] === undefined) throw Object.assign(new Error('no such file'), { code: 'ENOENT' });
    return files[p]!;
  };
  const parse = (text: string) => parseJobFile(text, { file: 'job.yaml', env: { HOST_FROM_ENV: 'db1' }, baseDir: '/srv/jobs', readFile });
  const { job } = parse('services:\n  a:\n    image: x\n    env_file: [common.env, /etc/app/prod.env, { path: missing.env, required: false }]\n    environment: { REGION: us }\n');
  t.same(job.services[0]!.environment, { LEVEL: 'warn', NAME: 'shoal app', QUOTED: '${NOT_SUBSTITUTED}', HOST: 'db1', REGION: 'us' });
  t.throws(() => parse('services:\n  a:\n    image: x\n    env_file: nowhere.env\n'), { message: /job\.yaml:4:15: services\.a\.env_file: cannot read env_file "\/srv\/jobs\/nowhere\.env": ENOENT/ });
  t.throws(() => parse('services:\n  a:\n    image: x\n    env_file: [broken.env]\n'), { message: /services\.a\.env_file\.0: \/srv\/jobs\/broken\.env:2: "this line is wrong" is not KEY=VALUE/ });
  t.throws(() => ok('services:\n  a:\n    image: x\n    env_file: common.env\n'), { message: /env_file "common\.env" is read by `shoal job run` on the CLI's machine/ }, 'a parser without file access refuses it');
});

t.test('several files merge in order, as stack deploy merges them; an error names the file that set the key', async (t) => {
  const base = { file: '/srv/app/base.yml', text: `name: app
version: "3.8"
services:
  web:
    image: nginx:1
    environment: [A=1, B=2]
    ports: ["8080:80"]
    networks: [front]
    deploy: { replicas: 2, placement: { constraints: [node.labels.zone==a] } }
  db:
    image: redis:7
    command: [redis-server]
networks: { front: {}, back: {} }
` };
  const override = { file: '/srv/app/prod.yml', text: `services:
  web:
    image: nginx:2
    environment: { B: "3", C: "4" }
    ports: ["8080:80", "8443:443"]
    networks: { back: { aliases: [site] } }
    deploy: { replicas: 5 }
  db:
    command: [redis-server, --appendonly, "yes"]
` };
  const { job, warnings } = parseJobFiles([base, override], { env: {}, baseDir: '/srv/app' });
  t.equal(job.name, 'app', 'the name comes from the first file');
  const web = job.services.find((x) => x.name === 'web')!;
  t.equal(web.image, 'nginx:2', 'a later scalar replaces');
  t.same(web.environment, { A: '1', B: '3', C: '4' }, 'environment merges by key, list and mapping forms alike');
  t.same(web.ports.map((p) => p.published), [8080, 8443], 'ports are appended, without duplicates');
  t.same(web.networks, [{ name: 'back', aliases: ['site'] }, { name: 'front', aliases: [] }], 'networks: a list and a mapping merge');
  t.equal(web.deploy.replicas, 5);
  t.same(web.deploy.placement.constraints, [{ attribute: 'node.labels.zone', op: '==', value: 'a' }], 'what the override does not say stays');
  t.same(job.services.find((x) => x.name === 'db')!.command, ['redis-server', '--appendonly', 'yes'], 'a command is replaced, not appended');
  t.match(warnings, [/base\.yml:2:1: version/], 'warnings name their file');
  t.same(parseJobFiles([{ file: 'one.yml', text: 'services: { a: { image: x } }' }], {}).job.name, 'one', 'one file: as parseJobFile');

  const bad = { file: '/srv/app/bad.yml', text: 'services:\n  db:\n    cap_add: [bogus cap]\n' };
  t.throws(() => parseJobFiles([base, bad], { env: {}, baseDir: '/srv/app' }), { message: /\/srv\/app\/bad\.yml:3:\d+: services\.db\.cap_add\.0: "bogus cap" is not a Linux capability name/ });
  const appended = { file: '/srv/app/ports.yml', text: 'services:\n  web:\n    ports:\n      - "nope"\n' };
  t.throws(() => parseJobFiles([base, appended], { env: {}, baseDir: '/srv/app' }), { message: /^\/srv\/app\/ports\.yml:4:9: services\.web\.ports\.1: "nope" is not a port mapping/ }, 'an appended entry is located in its own file, at its own index there');
  const conflict = { file: '/srv/app/host.yml', text: 'services:\n  web:\n    network_mode: host\n' };
  t.throws(() => parseJobFiles([base, conflict], { env: {}, baseDir: '/srv/app' }), { message: /host\.yml:\d+:\d+: services\.web.*network_mode and networks cannot both be given/ }, 'a conflicting override is refused, naming the override');
  t.throws(() => parseJobFiles([base, { file: 'job.json', text: '{"name":"x","type":"service","services":[],"networks":[]}' }], {}), { message: /canonical JSON job cannot be merged/ });
});

t.test('named volumes, tmpfs and read_only; "~" expanded with the CLI\'s home', async (t) => {
  const parse = (text: string) => parseJobFile(text, { file: 'job.yaml', env: {}, baseDir: '/srv/jobs', home: '/home/ann' });
  const { job, warnings } = parse(`services:
  db:
    image: postgres
    read_only: true
    tmpfs: /run
    volumes:
      - db-data:/var/lib/postgresql/data
      - { type: volume, source: shared, target: /shared, read_only: true }
      - { type: tmpfs, target: /tmp }
      - ~/conf:/etc/app:ro
volumes:
  db-data:
    driver_opts: { type: none, o: bind, device: /mnt/fast }
  shared:
    external: true
    name: team-shared
  unused: {}
`);
  t.same(warnings, []);
  t.same(job.volumes, [
    { name: 'db-data', external: null, driverOpts: { type: 'none', o: 'bind', device: '/mnt/fast' } },
    { name: 'shared', external: 'team-shared', driverOpts: {} },
    { name: 'unused', external: null, driverOpts: {} },
  ]);
  t.same(job.services[0]!.volumes, [
    { type: 'volume', source: 'db-data', target: '/var/lib/postgresql/data', readOnly: false },
    { type: 'volume', source: 'shared', target: '/shared', readOnly: true },
    { type: 'tmpfs', source: '', target: '/tmp', readOnly: false },
    { source: '/home/ann/conf', target: '/etc/app', readOnly: true },
    { type: 'tmpfs', source: '', target: '/run', readOnly: false },
  ]);
  t.equal(job.services[0]!.options?.readOnly, true);
  t.same(validateJob(JSON.parse(JSON.stringify(job)), 'rpc'), job, 'the canonical job validates');
  t.throws(() => parse('services:\n  a:\n    image: x\n    volumes: [data:/data]\n'), { message: /job\.yaml:4:\d+: services\.a\.volumes\.0: volume "data" is not one of the job's volumes: declare it under the top-level "volumes"/ });
  t.throws(() => parse('services:\n  a:\n    image: x\nvolumes:\n  data: { driver: rexray }\n'), { message: /volumes\.data\.driver: volume driver "rexray" is not available/ });
  t.throws(() => ok('services:\n  a:\n    image: x\n    volumes: [~/x:/x]\n'), { message: /"~" is expanded only by `shoal job run` on its machine/ });
  t.throws(() => parse('services:\n  a:\n    x-shoal: { driver: process }\n    command: [x]\n    tmpfs: /run\n'), { message: /services\.a(\.volumes\.0)?: a tmpfs mount is for containers/ });
  t.throws(() => parse('services:\n  a:\n    image: x\n    volumes: [/data]\n'), { message: /anonymous volumes are not supported: name the volume/ });
  t.throws(() => parse('services:\n  a:\n    image: x\n    volumes: ["${MEDIA}:/media"]\n'), { message: /services\.a\.volumes\.0: ":\/media" has an empty source \(a variable that is not set\?\)/ });
  const unset = parseJobFile('services:\n  a:\n    image: "x:${TAG}"\n    environment: [A=$UNSET_A, "B=${SET:-d}"]\n', { file: 'job.yaml', env: {} });
  t.same(unset.warnings, [
    'job.yaml:3:12: services.a.image: variable TAG is not set: an empty string is used (as Compose does)',
    'job.yaml:4:19: services.a.environment.0: variable UNSET_A is not set: an empty string is used (as Compose does)',
  ], 'a plain reference to an unset variable warns; one with a default does not');
});

t.test('batch jobs restart on failure by default; harmless keys only warn', async (t) => {
  const { job, warnings } = ok('x-shoal: { type: batch }\nservices:\n  once:\n    image: x\n    build: .\n    depends_on: [db]\n    deploy: { update_config: { parallelism: 1 } }\n');
  t.equal(job.type, 'batch');
  t.equal(job.services[0]!.deploy.restartPolicy.condition, 'on-failure');
  t.equal(warnings.length, 3);
  t.match(warnings.join('\n'), /job\.yaml:5:5: services\.once\.build: images are not built by Shoal/);
  t.match(warnings.join('\n'), /services\.once\.deploy\.update_config: deploy\.update_config is not supported yet/);
  const health = ok('services:\n  w:\n    image: x\n    healthcheck:\n      test: ["CMD", "true"]\n      start_interval: 1s\n');
  t.same(health.warnings, ['job.yaml:6:7: services.w.healthcheck.start_interval: healthcheck.start_interval is ignored: checks run every "interval", during the start period too']);
  t.equal(health.job.services[0]!.healthcheck!.test[1], 'true', 'the rest of the check is kept');
});


t.test(`${MALFORMED.length} malformed job files each get a precise error`, async (t) => {
  t.ok(MALFORMED.length >= 30);
  for (const [what, text, pattern] of MALFORMED) {
    let err: unknown;
    try {
      ok(text);
    } catch (e) {
      err = e;
    }
    if (!(err instanceof JobSpecError)) {
      t.fail(`${what}: expected a JobSpecError, got ${err === undefined ? 'success' : String(err)}`);
      continue;
    }
    t.equal(err.code, 'ERR_INVALID_JOB', what);
    // (A command that cannot be split also leaves its process service without one: that case reports both.)
    if (what !== 'unterminated quote in command') t.equal(err.issues.length, 1, `${what}: one problem, one error`);
    t.match(err.message, pattern, what);
    t.ok(err.issues.every((i) => i.file === 'job.yaml'), `${what}: every issue names the file`);
  }
});

t.test('several problems are reported together, in file order', async (t) => {
  const err = t.throws(() => ok('services:\n  a:\n    image: x\n    deploy: { replicas: -2 }\n  b:\n    image: y\n    ports: ["nope"]\n')) as JobSpecError;
  t.equal(err.issues.length, 2);
  t.match(err.message, /^2 problems in the job file:\n {2}job\.yaml:4:\d+: services\.a\.deploy\.replicas: .*\n {2}job\.yaml:7:\d+: services\.b\.ports\.0: /);
});

t.test('oversized files and alias bombs are refused before they cost anything', async (t) => {
  const big = `services:\n  a:\n    image: x\n    labels:\n${'      k: v\n'.repeat(1)}#${'x'.repeat(10 * 1024 * 1024)}\n`;
  t.throws(() => ok(big), { code: 'ERR_INVALID_JOB', message: /job\.yaml: file is \d+ bytes; a job file may be at most 1048576 bytes/ });
  const lines = ['a: &a ["x","x","x","x","x","x","x","x","x","x"]'];
  for (let i = 1; i < 12; i++) lines.push(`${String.fromCharCode(97 + i)}: &${String.fromCharCode(97 + i)} [${Array(10).fill(`*${String.fromCharCode(96 + i)}`).join(',')}]`);
  lines.push('services: { s: { image: x } }');
  t.throws(() => ok(lines.join('\n')), { code: 'ERR_INVALID_JOB', message: /cannot read the YAML|YAML syntax error/ });
});

t.test('units', async (t) => {
  t.equal(parseDurationMs('1h30m'), 5_400_000);
  t.equal(parseDurationMs('1.5s'), 1_500);
  t.equal(parseDurationMs('250ms'), 250);
  t.equal(parseDurationMs('0'), 0);
  t.match(parseDurationMs('5'), /is not a duration/);
  t.match(parseDurationMs('1s2'), /is not a duration/);
  t.match(parseDurationMs(true), /got boolean/);
  t.equal(parseDurationMs(2_000_000_000), 2_000, 'numbers are nanoseconds, as in Compose');
  t.equal(parseBytes('512m'), 512 * 1024 ** 2);
  t.equal(parseBytes('1.5GiB'), 1.5 * 1024 ** 3);
  t.equal(parseBytes(1024), 1024);
  t.match(parseBytes('12 parsecs'), /is not a size/);
  t.match(parseBytes(-1), /non-negative/);
  t.equal(parseCpuMillicores('0.5'), 500);
  t.equal(parseCpuMillicores(2), 2000);
  t.match(parseCpuMillicores('0.0001'), /below the smallest unit/);
  t.match(parseCpuMillicores('many'), /non-negative number of CPUs/);
  t.same(splitCommand(`sh -c 'echo "a b"' x\\ y "q\\"z"`), ['sh', '-c', 'echo "a b"', 'x y', 'q"z']);
  t.same(splitCommand('  '), []);
  t.match(splitCommand("it's"), /unterminated ' quote/);
  fc.assert(fc.property(fc.integer({ min: 0, max: 10_000 }), fc.integer({ min: 0, max: 59 }), fc.integer({ min: 0, max: 999 }), (h, m, ms) => parseDurationMs(`${h}h${m}m${ms}ms`) === h * 3_600_000 + m * 60_000 + ms));
});

t.test('variable substitution', async (t) => {
  const env = { A: 'x', EMPTY: '' };
  t.same(interpolate('$A-${A}-${B:-d}-${EMPTY:-e}-${EMPTY-f}-$$A-${B-${A}}', env), { value: 'x-x-d-e--$A-x' });
  t.same(interpolate('${EMPTY:?must be set}', env), { error: 'required variable EMPTY is empty: must be set' });
  t.same(interpolate('${B?}', env), { error: 'required variable B is not set' });
  t.match(interpolate('${1BAD}', env), { error: /invalid variable reference/ });
  t.same(interpolate('cost: $5', env), { value: 'cost: $5' });
});

t.test('x-shoal fields may also be written as dotted keys, as in `x-shoal.driver: process`', async (t) => {
  const dotted = ok('x-shoal.type: batch\nservices:\n  a:\n    x-shoal.driver: process\n    command: echo hi\n');
  const nested = ok('x-shoal: { type: batch }\nservices:\n  a:\n    x-shoal: { driver: process }\n    command: echo hi\n');
  t.same(dotted.job, nested.job);
  t.equal(dotted.job.type, 'batch');
  t.equal(dotted.job.services[0]!.driver, 'process');
  t.throws(() => ok('services:\n  a:\n    x-shoal: { driver: docker }\n    x-shoal.driver: process\n    image: x\n'), { message: /job\.yaml:4:5: services\.a\.x-shoal\.driver: "x-shoal\.driver" repeats x-shoal\.driver/ });
  t.throws(() => ok('services:\n  a:\n    x-shoal.drivr: process\n    image: x\n'), { message: /drivr/ });
});

t.test('mount options: bind propagation, volume nocopy, tmpfs size and mode reach the canonical mount; misplaced ones are refused', async (t) => {
  const job = ok(`volumes:\n  data: {}\nservices:\n  a:\n    image: x\n    volumes:\n      - /srv/a:/a:ro,rslave\n      - data:/d:nocopy\n      - { type: bind, source: /srv/b, target: /b, bind: { propagation: shared } }\n      - { type: volume, source: data, target: /e, volume: { nocopy: true } }\n      - { type: tmpfs, target: /t, tmpfs: { size: 64m, mode: 1777 } }\n    tmpfs: ["/run:size=1g,mode=0700,noexec"]\n`);
  t.same(job.job.services[0]!.volumes, [
    { source: '/srv/a', target: '/a', readOnly: true, propagation: 'rslave' },
    { type: 'volume', source: 'data', target: '/d', readOnly: false, noCopy: true },
    { source: '/srv/b', target: '/b', readOnly: false, propagation: 'shared' },
    { type: 'volume', source: 'data', target: '/e', readOnly: false, noCopy: true },
    { type: 'tmpfs', source: '', target: '/t', readOnly: false, tmpfsSizeBytes: 64 * 1024 * 1024, tmpfsMode: 0o1777 },
    { type: 'tmpfs', source: '', target: '/run', readOnly: false, tmpfsSizeBytes: 1024 ** 3, tmpfsMode: 0o700 },
  ]);
  t.match(job.warnings.join('\n'), /tmpfs option "noexec" is ignored/);
  const bad: [string, RegExp][] = [
    ['- /srv/a:/a:rshared,bogus', /mount option "rshared,bogus" is not supported/],
    ['- data:/d:rslave', /"rslave" is a bind mount's propagation; "data" is a volume/],
    ['- /srv/a:/a:nocopy', /"nocopy" is for a volume; "\/srv\/a" is a bind mount/],
    ['- { type: bind, source: /srv/b, target: /b, bind: { propagation: sideways } }', /volumes\.0\.bind\.propagation: "sideways" is not a propagation/],
    ['- { type: bind, source: /srv/b, target: /b, volume: { nocopy: true } }', /volumes\.0\.volume: "volume" options are for a volume mount; this one is a bind mount/],
    ['- { type: tmpfs, target: /t, tmpfs: { size: lots } }', /volumes\.0\.tmpfs\.size: "lots" is not a size/],
    ['- { type: tmpfs, target: /t, tmpfs: { mode: 999 } }', /volumes\.0\.tmpfs\.mode: mode "999" is not an octal number/],
  ];
  for (const [line, message] of bad) t.throws(() => ok(`volumes:\n  data: {}\nservices:\n  a:\n    image: x\n    volumes:\n      ${line}\n`), { message }, line);
  t.throws(() => ok(`services:\n  p:\n    x-shoal: { driver: process }\n    command: [sleep, "1"]\n    volumes: ["/srv/a:/a:rshared"]\n`), { message: /services\.p\.volumes\.0: propagation is for a container's bind mount/ });
});
