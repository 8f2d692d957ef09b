import t from 'tap';
import fc from 'fast-check';
import { parseJobFile, JobSpecError, parseDurationMs, parseBytes, parseCpuMillicores, splitCommand, interpolate } from '../../src/jobspec/index.js';

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
  t.same(warnings, ['job.yaml:3:1: version: the top-level "version" is obsolete and ignored']);
  t.equal(job.name, 'shop');
  t.equal(job.type, 'service');
  const [api, worker] = job.services;
  t.equal(api!.driver, 'docker');
  t.same(api!.command, ['sh', '-c', 'echo hi']);
  t.same(api!.environment, { LOG_LEVEL: 'info' });
  t.equal(api!.stopGraceMs, 30_000);
  t.equal(api!.stopSignal, 'SIGINT');
  t.same(api!.ports, [{ target: 80, published: 8080, protocol: 'tcp' }, { target: 9090, published: 9090, protocol: 'udp' }, { target: 7000, published: 17000, protocol: 'tcp' }]);
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
});

t.test('batch jobs restart on failure by default; harmless keys only warn', async (t) => {
  const { job, warnings } = ok('x-shoal: { type: batch }\nservices:\n  once:\n    image: x\n    build: .\n    depends_on: [db]\n    deploy: { update_config: { parallelism: 1 } }\n');
  t.equal(job.type, 'batch');
  t.equal(job.services[0]!.deploy.restartPolicy.condition, 'on-failure');
  t.equal(warnings.length, 3);
  t.match(warnings.join('\n'), /job\.yaml:5:5: services\.once\.build: images are not built by Shoal/);
  t.match(warnings.join('\n'), /services\.once\.deploy\.update_config: deploy\.update_config is not supported yet/);
});

// Each malformed file: the text, and a pattern the single error must match (file:line:col: path: message).
const MALFORMED: [string, string, RegExp][] = [
  ['yaml syntax: unclosed flow', 'services: { a: { image: x }\n', /^job\.yaml:\d+:\d+: YAML syntax error/],
  ['yaml syntax: bad indent', 'services:\n  a:\n    image: x\n   command: y\n', /^job\.yaml:4:\d+: YAML syntax error/],
  ['yaml syntax: tab indentation', 'services:\n\ta:\n', /YAML syntax error/],
  ['duplicate key', 'services:\n  a: { image: x }\n  a: { image: y }\n', /YAML syntax error: Map keys must be unique/],
  ['not a mapping', '- a\n- b\n', /a job file must be a mapping with a "services" key/],
  ['empty file', '', /a job file must be a mapping/],
  ['no services', 'name: x\n', /services: is required/],
  ['services is a list', 'services: [a, b]\n', /services: has the wrong type: got a list/],
  ['zero services', 'services: {}\n', /services: a job needs at least one service/],
  ['empty service', 'services:\n  a:\n', /job\.yaml:2:\d+: services\.a: is empty/],
  ['unknown top-level key', 'services: { a: { image: x } }\nfrobnicate: 1\n', /job\.yaml:2:1: frobnicate: unknown key "frobnicate"/],
  ['unknown service key', 'services:\n  a:\n    image: x\n    colour: red\n', /job\.yaml:4:5: services\.a\.colour: unknown key "colour"/],
  ['unsupported secrets', 'services:\n  a:\n    image: x\n    secrets: [s]\n', /services\.a\.secrets: unsupported key "secrets": secrets are not supported yet/],
  ['unknown deploy key', 'services:\n  a:\n    image: x\n    deploy: { replica: 3 }\n', /services\.a\.deploy\.replica: unknown key "replica"/],
  ['replicas wrong type', 'services:\n  a:\n    image: x\n    deploy: { replicas: [1] }\n', /services\.a\.deploy\.replicas: has the wrong type: got a list/],
  ['negative replicas', 'services:\n  a:\n    image: x\n    deploy: { replicas: -1 }\n', /job\.yaml:4:\d+: services\.a\.deploy\.replicas: replicas must be a whole number from 0 to 10000, got -1/],
  ['fractional replicas', 'services:\n  a:\n    image: x\n    deploy: { replicas: 1.5 }\n', /replicas must be a whole number/],
  ['too many replicas', 'services:\n  a:\n    image: x\n    deploy: { replicas: 10001 }\n', /replicas must be a whole number from 0 to 10000, got 10001/],
  ['replicas from a non-numeric variable', 'services:\n  a:\n    image: x\n    deploy: { replicas: "${N:-many}" }\n', /replicas must be a whole number .* got "many"/],
  ['global with replicas', 'services:\n  a:\n    image: x\n    deploy: { mode: global, replicas: 2 }\n', /a global service runs one task on every eligible node/],
  ['bad mode', 'services:\n  a:\n    image: x\n    deploy: { mode: everywhere }\n', /deploy\.mode: must be replicated or global, got "everywhere"/],
  ['docker without image', 'services:\n  a:\n    command: ls\n', /services\.a: needs an "image"/],
  ['process without command', 'services:\n  a:\n    x-shoal: { driver: process }\n', /a process service needs a "command"/],
  ['process with image', 'services:\n  a:\n    image: x\n    command: ls\n    x-shoal: { driver: process }\n', /services\.a\.image: a process service runs a command on the node and takes no image/],
  ['unknown driver', 'services:\n  a:\n    image: x\n    x-shoal: { driver: qemu }\n', /x-shoal\.driver: driver must be "docker" or "process", got "qemu"/],
  ['bridge network', 'services:\n  a:\n    image: x\n    network_mode: bridge\n', /network_mode "bridge" is not supported: bridge and overlay networks are refused until Shoal has its own/],
  ['top-level networks', 'services:\n  a: { image: x }\nnetworks:\n  front: { driver: overlay }\n', /job\.yaml:3:1: networks: top-level networks are not supported/],
  ['named volume', 'services:\n  a:\n    image: x\n    volumes: ["data:/data"]\n', /looks like a named volume; only bind mounts/],
  ['relative mount target', 'services:\n  a:\n    image: x\n    volumes: ["/a:data"]\n', /mount target "data" must be an absolute path/],
  ['bad port', 'services:\n  a:\n    image: x\n    ports: ["80:http"]\n', /services\.a\.ports\.0: "80:http" is not a port mapping/],
  ['port out of range', 'services:\n  a:\n    image: x\n    ports: ["70000:80"]\n', /ports must be between 1 and 65535/],
  ['ingress port', 'services:\n  a:\n    image: x\n    ports: [{ target: 80, published: 80, mode: ingress }]\n', /port mode "ingress" is not supported/],
  ['duplicate host port', 'services:\n  a:\n    image: x\n    ports: ["80:80", "80:81"]\n', /host port 80\/tcp is published twice/],
  ['ports with network none', 'services:\n  a:\n    image: x\n    network_mode: none\n    ports: ["80:80"]\n', /cannot publish ports/],
  ['bad constraint syntax', 'services:\n  a:\n    image: x\n    deploy: { placement: { constraints: ["zone=a"] } }\n', /"zone=a" is not a constraint/],
  ['impossible constraints', 'services:\n  a:\n    image: x\n    deploy: { placement: { constraints: ["node.labels.zone==a", "node.labels.zone==b"] } }\n', /can never both hold: no node could run this service/],
  ['self-contradicting constraints', 'services:\n  a:\n    image: x\n    deploy: { placement: { constraints: ["node.name==n1", "node.name!=n1"] } }\n', /can never both hold/],
  ['bad memory', 'services:\n  a:\n    image: x\n    deploy: { resources: { limits: { memory: lots } } }\n', /limits\.memory: "lots" is not a size/],
  ['negative cpus', 'services:\n  a:\n    image: x\n    deploy: { resources: { limits: { cpus: -1 } } }\n', /limits\.cpus: must be a non-negative number of CPUs/],
  ['reservation above limit', 'services:\n  a:\n    image: x\n    deploy: { resources: { reservations: { memory: 2g }, limits: { memory: 1g } } }\n', /reserves more memory than its limit allows/],
  ['bad duration', 'services:\n  a:\n    image: x\n    stop_grace_period: soon\n', /stop_grace_period: "soon" is not a duration/],
  ['bad restart condition', 'services:\n  a:\n    image: x\n    deploy: { restart_policy: { condition: sometimes } }\n', /restart_policy\.condition: must be none, on-failure or any/],
  ['bad signal', 'services:\n  a:\n    image: x\n    stop_signal: SIGFOO\n', /"SIGFOO" is not a signal Shoal can send/],
  ['bad healthcheck test', 'services:\n  a:\n    image: x\n    healthcheck: { test: ["RUN", "x"] }\n', /must start with "CMD", "CMD-SHELL" or "NONE"/],
  ['healthcheck interval too short', 'services:\n  a:\n    image: x\n    healthcheck: { test: "true", interval: 1ms }\n', /healthcheck\.interval: must be between 100 ms/],
  ['required variable missing', 'services:\n  a:\n    image: "${IMAGE:?set IMAGE to the image to run}"\n', /job\.yaml:3:\d+: services\.a\.image: required variable IMAGE is not set: set IMAGE to the image to run/],
  ['unterminated variable', 'services:\n  a:\n    image: "${IMAGE"\n', /unterminated "\$\{"/],
  ['bad service name', 'services:\n  Web_App!:\n    image: x\n', /service name "Web_App!" must be 1-63 lower-case/],
  ['bad job name', 'name: "My Job"\nservices:\n  a: { image: x }\n', /name: job name "My Job" must be/],
  ['unterminated quote in command', 'services:\n  a:\n    x-shoal: { driver: process }\n    command: echo "hi\n', /unterminated " quote/],
  ['spread on a bad attribute', 'services:\n  a:\n    image: x\n    deploy: { placement: { preferences: [{ spread: zone }] } }\n', /can spread only across node\.labels\.<key>/],
];

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
