import t from 'tap';
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { z } from 'zod';
import { JobSpecError, jobSchema, parseCanonicalJob, parseJobFile, validateJob, type Job } from '../../src/jobspec/index.js';
import { findJsonSyntaxError } from '../../src/jobspec/canonical.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '../..');

// The schema's output type is exactly Job: neither may gain, lose or change a field without the other.
type Exactly<A, B> = (<T>() => T extends A ? 1 : 2) extends (<T>() => T extends B ? 1 : 2) ? true : false;
const schemaIsJob: Exactly<z.infer<typeof jobSchema>, Job> = true;
const schemaIsNotLooser: Exactly<z.infer<typeof jobSchema>, Job & { extra: 1 }> = false;
t.ok(schemaIsJob && !schemaIsNotLooser);

const ENV = { PWD: repo, LOG_LEVEL: 'debug', HOME: '/home/someone' };

function yamlFiles(): { file: string; text: string }[] {
  const out: { file: string; text: string }[] = [];
  for (const dir of [path.join(repo, 'examples'), path.join(here, 'fixtures')]) {
    for (const name of readdirSync(dir).sort()) {
      if (/\.ya?ml$/.test(name)) out.push({ file: path.join(dir, name), text: readFileSync(path.join(dir, name), 'utf8') });
    }
  }
  return out;
}

t.test('every example and fixture survives YAML -> Job -> JSON -> parseJobFile unchanged', async (t) => {
  const files = yamlFiles();
  t.ok(files.some((f) => f.file.endsWith('examples/hello.yaml')), 'examples/hello.yaml is covered');
  t.ok(files.filter((f) => f.file.includes('/fixtures/')).length >= 4, 'fixtures are covered');
  t.ok(files.some((f) => f.file.endsWith('fixtures/stack.yaml')), 'the networked stack is covered');
  for (const { file, text } of files) {
    const { job } = parseJobFile(text, { file, env: ENV, baseDir: path.dirname(file) });
    for (const [jsonFile, json] of [[file.replace(/\.ya?ml$/, '.json'), JSON.stringify(job, null, 2)], ['job.yaml', JSON.stringify(job)]] as const) {
      const again = parseJobFile(json, { file: jsonFile, env: {}, name: 'ignored-name' });
      t.same(again.job, job, `${path.basename(file)} as ${jsonFile}`);
      t.strictSame(again.warnings, []);
    }
    t.same(validateJob(JSON.parse(JSON.stringify(job)), 'rpc'), job, `${path.basename(file)}: validateJob accepts it`);
    t.same(parseCanonicalJob(JSON.stringify(job), 'x.json'), job);
  }
});

t.test('canonical JSON is taken as it is: its own name, no ${VAR} substitution, no defaults', async (t) => {
  const { job } = parseJobFile('name: app\nservices:\n  a: { image: "x:1", environment: { A: "$$HOME" } }\n', { file: 'app.yaml', env: {} });
  t.equal(job.services[0]!.environment['A'], '$HOME');
  const json = JSON.stringify(job);
  const again = parseJobFile(json, { file: 'other.json', env: { HOME: '/root' }, name: 'override' });
  t.equal(again.job.name, 'app', 'the canonical job names itself; --name does not apply');
  t.equal(again.job.services[0]!.environment['A'], '$HOME', 'no substitution in canonical JSON');
  const partial = JSON.parse(json) as Record<string, unknown>;
  delete (partial['services'] as Record<string, unknown>[])[0]!['stopGraceMs'];
  t.throws(() => parseJobFile(JSON.stringify(partial), { file: 'p.json' }), { code: 'ERR_INVALID_JOB', message: /^p\.json:\d+:\d+: services\.0: is required|services\.0\.stopGraceMs: is required/ });
});

t.test('a Compose file written as JSON is still a Compose file', async (t) => {
  const { job } = parseJobFile('{"services": {"a": {"image": "x", "deploy": {"replicas": 2}}}}', { file: '/x/compose.json' });
  t.equal(job.name, 'compose');
  t.equal(job.services[0]!.deploy.replicas, 2);
  t.equal(job.services[0]!.stopGraceMs, 10_000, 'defaults filled in by the Compose conversion');
  // YAML flow style that is not JSON is YAML.
  t.equal(parseJobFile('{services: {a: {image: x}}}', { file: 'flow.yaml' }).job.services[0]!.image, 'x');
});

t.test('JSON syntax errors name the line and column', async (t) => {
  const cases: [string, number, number, RegExp][] = [
    ['{\n  "name": "x",\n  "services": [,]\n}', 3, 16, /unexpected ",": expected a value/],
    ['{\n  "name": "x"\n  "type": "service"\n}', 3, 3, /unexpected "\\"": expected "," or "}" after a value in an object/],
    ['{"name": "x", "services": [', 1, 28, /unexpected end of input: expected a value/],
    ['{"name": tru}', 1, 13, /unexpected "}": expected true/],
    ['{"name": "a\tb"}', 1, 12, /unexpected "\\t": control characters must be escaped/],
    ['{"services": []} trailing', 1, 18, /unexpected "t": expected the end of the text/],
  ];
  for (const [text, line, column, message] of cases) {
    const err = t.throws(() => parseJobFile(text, { file: 'job.json' })) as JobSpecError;
    t.equal(err.code, 'ERR_INVALID_JOB');
    t.equal(err.issues.length, 1);
    t.match(err.issues[0], { file: 'job.json', line, column, path: '' }, JSON.stringify(text));
    t.match(err.message, new RegExp(`^job\\.json:${line}:${column}: JSON syntax error: ${message.source}`));
    t.throws(() => JSON.parse(text), SyntaxError, 'really not JSON');
  }
  t.same(findJsonSyntaxError('{"a": [1, 2, {"b": null}]}'), { offset: 26, message: 'not valid JSON' }, 'valid JSON has no error offset');
});

const BASE: Job = parseJobFile(readFileSync(path.join(here, 'fixtures/shop.yaml'), 'utf8'), { file: 'shop.yaml', env: ENV, baseDir: '/srv' }).job;

type Mutation = (job: any) => void;

// Each malformed canonical job: how it differs from a valid one, the exact path of the single issue, and its message.
const MALFORMED: [string, Mutation, string, RegExp][] = [
  ['missing type', (j) => delete j.type, 'type', /is required/],
  ['unknown top-level key', (j) => (j.version = '3'), 'version', /unknown key "version"/],
  ['bad job name', (j) => (j.name = 'My Job'), 'name', /a job name must be 1-63 lower-case letters/],
  ['job name too long', (j) => (j.name = 'a'.repeat(64)), 'name', /at most 63 characters/],
  ['unknown job type', (j) => (j.type = 'cron'), 'type', /type must be "service" or "batch"/],
  ['services is a map', (j) => (j.services = { api: j.services[0] }), 'services', /has the wrong type: got a mapping, expected array/],
  ['no services', (j) => (j.services = []), 'services', /a job needs at least one service/],
  ['duplicate service names', (j) => (j.services[1].name = 'api'), 'services.1.name', /service name "api" is used twice \(also by services\.0\)/],
  ['bad service name', (j) => (j.services[0].name = 'Api!'), 'services.0.name', /a service name must be/],
  ['unknown service key', (j) => (j.services[0].imageName = 'x'), 'services.0.imageName', /unknown key "imageName"/],
  ['missing workingDir', (j) => delete j.services[0].workingDir, 'services.0.workingDir', /is required/],
  ['unknown driver', (j) => (j.services[0].driver = 'qemu'), 'services.0.driver', /driver must be "docker" or "process"/],
  ['negative replicas', (j) => (j.services[0].deploy.replicas = -1), 'services.0.deploy.replicas', /replicas must be a whole number from 0 to 10000/],
  ['too many replicas', (j) => (j.services[0].deploy.replicas = 10_001), 'services.0.deploy.replicas', /from 0 to 10000/],
  ['fractional replicas', (j) => (j.services[0].deploy.replicas = 1.5), 'services.0.deploy.replicas', /wrong type: got number 1\.5, expected int/],
  ['replicas as a string', (j) => (j.services[0].deploy.replicas = '3'), 'services.0.deploy.replicas', /wrong type: got string "3", expected number/],
  ['global with replicas', (j) => (j.services[1].deploy.replicas = 2), 'services.1.deploy.replicas', /a global service runs one task on every eligible node/],
  ['maxReplicasPerNode too big', (j) => (j.services[0].deploy.placement.maxReplicasPerNode = 10_001), 'services.0.deploy.placement.maxReplicasPerNode', /from 0 to 10000/],
  ['port out of range', (j) => (j.services[0].ports[0].published = 70_000), 'services.0.ports.0.published', /published port must be a whole number from 1 to 65535/],
  ['port zero', (j) => (j.services[0].ports[2].target = 0), 'services.0.ports.2.target', /target port must be a whole number from 1 to 65535/],
  ['bad protocol', (j) => (j.services[0].ports[1].protocol = 'sctp'), 'services.0.ports.1.protocol', /protocol must be "tcp" or "udp"/],
  ['port published twice in a service', (j) => (j.services[0].ports[2].published = 8080), 'services.0.ports.2', /^published port 8080\/tcp is published twice in the job: also by services\.0\.ports\.0$/],
  ['port published by two services', (j) => (j.services[1].ports = [{ target: 1, published: 8080, protocol: 'tcp', mode: 'host' }]), 'services.1.ports.0', /^published port 8080\/tcp is published twice in the job: also by services\.0\.ports\.0$/],
  ['a UDP port through the mesh', (j) => (j.services[0].ports[1].mode = 'ingress'), 'services.0.ports.1.mode', /routing mesh carries TCP only/],
  ['unknown port mode', (j) => (j.services[0].ports[0].mode = 'routed'), 'services.0.ports.0.mode', /mode must be "ingress" or "host"/],
  ['port without mode', (j) => delete j.services[0].ports[0].mode, 'services.0.ports.0.mode', /is required/],
  ['unknown endpoint mode', (j) => (j.services[0].deploy.endpointMode = 'rr'), 'services.0.deploy.endpointMode', /endpointMode must be "vip" or "dnsrr"/],
  ['missing expose', (j) => delete j.services[1].expose, 'services.1.expose', /is required/],
  ['exposed port out of range', (j) => (j.services[0].expose[0].port = 0), 'services.0.expose.0.port', /exposed port must be a whole number from 1 to 65535/],
  ['exposed ports out of order', (j) => j.services[0].expose.reverse(), 'services.0.expose.1', /must be sorted by port, then protocol/],
  ['exposed port repeated', (j) => (j.services[0].expose[2].port = 3000), 'services.0.expose.2', /^port 3000\/tcp is exposed twice$/],
  ['expose without network', (j) => Object.assign(j.services[0], { networkMode: 'none', ports: [], networks: [] }), 'services.0.expose', /a service with network_mode: none cannot expose ports/],
  ['networks with network none', (j) => Object.assign(j.services[0], { networkMode: 'none', ports: [], expose: [] }), 'services.0.networks', /a service with network_mode: none is on no network/],
  ['missing job networks', (j) => delete j.networks, 'networks', /is required/],
  ['job networks out of order', (j) => j.networks.reverse(), 'networks.1', /must be sorted by name/],
  ['no default network', (j) => j.networks.splice(1, 1), 'networks', /the job's networks must include "default"/],
  ['job network listed twice', (j) => j.networks.push({ name: 'shared', external: null, internal: false }), 'networks.4.name', /network "shared" is listed twice/],
  ['bad network name', (j) => j.networks.push({ name: 'zz top', external: null, internal: false }), 'networks.4.name', /a network name must be/],
  ['bad external name', (j) => (j.networks[3].external = 'shop events'), 'networks.3.external', /an external network name must be/],
  ['internal as a string', (j) => (j.networks[0].internal = 'yes'), 'networks.0.internal', /wrong type: got string "yes", expected boolean/],
  ['unknown network key', (j) => (j.networks[0].driver = 'overlay'), 'networks.0.driver', /unknown key "driver"/],
  ['service on an unknown network', (j) => (j.services[1].networks[1].name = 'events'), 'services.1.networks.1', /network "events" is not one of the job's networks \(back, default, front, shared\)/],
  ['service networks out of order', (j) => j.services[0].networks.reverse(), 'services.0.networks.1', /must be sorted by name/],
  ['service network listed twice', (j) => (j.services[1].networks[1].name = 'back'), 'services.1.networks.1', /network "back" is listed twice/],
  ['aliases out of order', (j) => j.services[0].networks[1].aliases.reverse(), 'services.0.networks.1.aliases.1', /must be sorted by name/],
  ['bad alias', (j) => (j.services[0].networks[1].aliases[0] = 'API'), 'services.0.networks.1.aliases.0', /an alias must be/],
  ['alias repeated', (j) => (j.services[0].networks[1].aliases = ['api', 'api']), 'services.0.networks.1.aliases.1', /^alias "api" is repeated on network "front"$/],
  ['alias that is another service\'s name', (j) => (j.services[0].networks[0].aliases = ['worker']), 'services.0.networks.0.aliases.0', /^alias "worker" on network "back" is the name of another service on it \(services\.1\)$/],
  ['alias of two services on one network', (j) => { j.services[0].networks[0].aliases = ['jobs']; j.services[1].networks[0].aliases = ['jobs']; }, 'services.1.networks.0.aliases.0', /^alias "jobs" on network "back" is also an alias of services\.0\.networks\.0\.aliases\.0/],
  ['too many aliases', (j) => (j.services[0].networks[1].aliases = Array.from({ length: 17 }, (_, i) => `a${String(i).padStart(2, '0')}`)), 'services.0.networks.1.aliases', /at most 16 aliases on one network, got 17/],
  ['too many networks', (j) => j.networks.push(...Array.from({ length: 13 }, (_, i) => ({ name: `x${String(i).padStart(2, '0')}`, external: null, internal: false }))), 'networks', /a job may have at most 16 networks \("default" included\), got 17/],
  ['negative duration', (j) => (j.services[0].deploy.restartPolicy.delayMs = -5), 'services.0.deploy.restartPolicy.delayMs', /delayMs must be a whole, non-negative number/],
  ['stop grace too long', (j) => (j.services[0].stopGraceMs = 300_001), 'services.0.stopGraceMs', /stopGraceMs must be a whole number from 0 to 300000/],
  ['unknown stop signal', (j) => (j.services[0].stopSignal = 'INT'), 'services.0.stopSignal', /stopSignal must be one of SIGTERM/],
  ['docker without image', (j) => (j.services[0].image = null), 'services.0.image', /needs an "image"/],
  ['process with an image', (j) => (j.services[1].image = 'x'), 'services.1.image', /a process service runs a command on the node and takes no image/],
  ['process with an empty command', (j) => (j.services[1].command = []), 'services.1.command', /a process service needs a "command"/],
  ['process without network', (j) => Object.assign(j.services[1], { networkMode: 'none', networks: [] }), 'services.1.networkMode', /network_mode: none needs the docker driver/],
  ['ports without network', (j) => Object.assign(j.services[0], { networkMode: 'none', networks: [], expose: [] }), 'services.0.ports', /cannot publish ports/],
  ['healthcheck test without CMD', (j) => (j.services[0].healthcheck.test = ['RUN', 'x']), 'services.0.healthcheck.test.0', /must start with "CMD" or "CMD-SHELL"/],
  ['healthcheck interval too short', (j) => (j.services[0].healthcheck.intervalMs = 10), 'services.0.healthcheck.intervalMs', /intervalMs \(ms\) must be a whole number from 100 to 3600000/],
  ['constraint on an unknown attribute', (j) => (j.services[0].deploy.placement.constraints[1].attribute = 'zone'), 'services.0.deploy.placement.constraints.1.attribute', /node\.name, node\.id, node\.role or node\.labels\.<key>/],
  ['contradicting constraints', (j) => j.services[0].deploy.placement.constraints.push({ attribute: 'node.name', op: '==', value: 'n3' }), 'services.0.deploy.placement.constraints.3', /"node\.name!=n3" and "node\.name==n3" can never both hold/],
  ['spread on a bad attribute', (j) => (j.services[0].deploy.placement.spread = ['zone']), 'services.0.deploy.placement.spread.0', /can spread only across/],
  ['the same spread twice', (j) => (j.services[0].deploy.placement.spread = ['node.labels.zone', 'node.labels.zone']), 'services.0.deploy.placement.spread.1', /"node\.labels\.zone" is spread across twice/],
  ['too many spreads', (j) => (j.services[0].deploy.placement.spread = ['a', 'b', 'c', 'd', 'e'].map((k) => `node.labels.${k}`)), 'services.0.deploy.placement.spread', /at most 4 spread preferences are allowed, got 5/],
  ['reservation above limit', (j) => (j.services[0].deploy.resources.reservations.memoryBytes = 2 * 1024 ** 3), 'services.0.deploy.resources.reservations.memoryBytes', /reserves more memory than its limit allows/],
  ['fractional millicores', (j) => (j.services[0].deploy.resources.limits.cpuMillicores = 0.5), 'services.0.deploy.resources.limits.cpuMillicores', /expected int/],
  ['relative mount source', (j) => (j.services[0].volumes[0].source = 'data'), 'services.0.volumes.0.source', /a bind mount source must be an absolute path/],
  ['environment value not a string', (j) => (j.services[0].environment.PORT = 80), 'services.0.environment.PORT', /wrong type: got number 80, expected string/],
  ['too many labels', (j) => (j.services[0].labels = Object.fromEntries(Array.from({ length: 1001 }, (_, i) => [`k${i}`, 'v']))), 'services.0.labels', /at most 1000 label entries/],
  ['negative maxAttempts', (j) => (j.services[0].deploy.restartPolicy.maxAttempts = -1), 'services.0.deploy.restartPolicy.maxAttempts', /maxAttempts must be a whole number from 0 to 1000000/],
  ['null restart policy', (j) => (j.services[0].deploy.restartPolicy = null), 'services.0.deploy.restartPolicy', /wrong type: got null, expected object/],
];

t.test(`${MALFORMED.length} malformed canonical jobs each get one issue at the exact path`, async (t) => {
  t.ok(MALFORMED.length >= 15);
  for (const [what, mutate, expectedPath, message] of MALFORMED) {
    const job = structuredClone(BASE);
    mutate(job);
    let err: unknown;
    try {
      validateJob(job, 'rpc:Jobs/Register');
    } catch (e) {
      err = e;
    }
    if (!(err instanceof JobSpecError)) {
      t.fail(`${what}: expected a JobSpecError, got ${err === undefined ? 'success' : String(err)}`);
      continue;
    }
    t.equal(err.code, 'ERR_INVALID_JOB', what);
    t.same(err.issues.map((i) => i.path), [expectedPath], `${what}: path`);
    t.match(err.issues[0]!.message, message, `${what}: message`);
    t.match(err.issues[0], { file: 'rpc:Jobs/Register', line: 0, column: 0 }, `${what}: no position for a value`);
    // The same job as text: the same issue, now with the line and column of the field.
    const text = JSON.stringify(job, null, 2);
    // (A job whose services are not a list is not recognised as canonical by parseJobFile: it is a Compose file.)
    const fromText = t.throws(() => (Array.isArray(job.services) ? parseJobFile(text, { file: 'job.json' }) : parseCanonicalJob(text, 'job.json')), what) as JobSpecError;
    t.same(fromText.issues.map((i) => i.path), [expectedPath], `${what}: path from text`);
    t.ok(fromText.issues[0]!.line > 0, `${what}: line from text`);
  }
});

t.test('a field in error is located at its line and column in the JSON text', async (t) => {
  const job = structuredClone(BASE) as unknown as { services: { deploy: { replicas: number } }[] };
  job.services[0]!.deploy.replicas = -3;
  const text = JSON.stringify(job, null, 2);
  const lines = text.split('\n');
  const line = lines.findIndex((l) => l.includes('"replicas": -3')) + 1;
  const column = lines[line - 1]!.indexOf('-3') + 1;
  const err = t.throws(() => parseCanonicalJob(text, 'job.json')) as JobSpecError;
  t.match(err.message, new RegExp(`^job\\.json:${line}:${column}: services\\.0\\.deploy\\.replicas: replicas must be a whole number from 0 to 10000$`));
  // An unknown key is located at the key itself.
  const extra = JSON.stringify(BASE, null, 2).replace('"name": "shop",', '"name": "shop",\n  "colour": "red",');
  const err2 = t.throws(() => parseCanonicalJob(extra, 'job.json')) as JobSpecError;
  t.match(err2.issues[0], { path: 'colour', line: 3, column: 3, message: 'unknown key "colour"' });
});

t.test('several problems are reported together', async (t) => {
  const job = structuredClone(BASE) as unknown as Record<string, any>;
  job['name'] = 'Bad Name';
  job['services'][0].deploy.replicas = -1;
  job['services'][1].image = 'x';
  const err = t.throws(() => validateJob(job, 'rpc')) as JobSpecError;
  t.same(err.issues.map((i) => i.path).sort(), ['name', 'services.0.deploy.replicas', 'services.1.image']);
  t.match(err.message, /^3 problems in the job file:\n/);
});

t.test('values that are not a job object', async (t) => {
  for (const value of [undefined, null, 42, 'job', [BASE]]) {
    const err = t.throws(() => validateJob(value, 'rpc')) as JobSpecError;
    t.equal(err.issues.length, 1, String(value));
    t.equal(err.issues[0]!.path, '');
  }
  t.throws(() => parseCanonicalJob('[1]', 'job.json'), { message: /a canonical job is a JSON object/ });
  t.throws(() => parseCanonicalJob(`{"name": "${'x'.repeat(2 * 1024 * 1024)}"}`, 'job.json'), { message: /a job file may be at most 1048576 bytes/ });
});

t.test('YAML cross-field checks point at the entry they came from, after entries that were skipped', async (t) => {
  const err = t.throws(() => parseJobFile('services:\n  a:\n    image: x\n    ports: ["nope", "80:80", "80:81"]\n    deploy:\n      placement:\n        constraints: ["zone=a", "node.name==n1", "node.name==n2"]\n', { file: 'job.yaml' })) as JobSpecError;
  // Conversion errors come first, then the shared rules: the service's own, then those across the job (ports).
  t.same(err.issues.map((i) => i.path), ['services.a.ports.0', 'services.a.deploy.placement.constraints.0', 'services.a.deploy.placement.constraints.2', 'services.a.ports.2']);
  t.match(err.issues[2]!.message, /"node\.name==n1" and "node\.name==n2" can never both hold/);
  t.match(err.issues[3]!.message, /^published port 80\/tcp is published twice in the job: also by services\.a\.ports\.1$/, 'the first entry is named as the file has it');
  const res = t.throws(() => parseJobFile('services:\n  a:\n    image: x\n    deploy: { resources: { reservations: { cpus: 2 }, limits: { cpus: 1 } } }\n', { file: 'job.yaml' })) as JobSpecError;
  t.same(res.issues.map((i) => i.path), ['services.a.deploy.resources.reservations.cpus']);
});
