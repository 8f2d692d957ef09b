/**
 * Networks, aliases, exposed ports, port modes and endpoint modes in job files: what Compose / Swarm accept converts
 * to the canonical job, what Shoal ignores warns, and what it cannot honour is an error at the exact key. The
 * one-error cases live in malformed-cases.ts (the end-to-end bad-input test runs them against an agent too).
 */
import t, { type Test } from 'tap';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { JobSpecError, parseJobFile, validateJob } from '../../src/jobspec/index.js';
import { LIMITS, checkLimits } from '../../src/lib/limits.js';
import { JOBSPEC_LIMITS } from '../../src/jobspec/limits.js';

const here = path.dirname(fileURLToPath(import.meta.url));

const ok = (text: string, env: Record<string, string> = {}) => parseJobFile(text, { file: 'job.yaml', env, baseDir: '/srv/jobs' });
const fails = (t: Test, text: string): JobSpecError => t.throws(() => ok(text)) as JobSpecError;

t.test('a multi-service stack in the shape of awesome-compose converts with its networks', async (t) => {
  const { job, warnings } = parseJobFile(readFileSync(path.join(here, 'fixtures/stack.yaml'), 'utf8'), { file: 'stack.yaml', env: {}, baseDir: '/srv' });
  t.same(job.networks, [
    { name: 'default', external: null, internal: false },
    { name: 'edge', external: 'traefik-public', internal: false },
    { name: 'private', external: null, internal: true },
    { name: 'public', external: null, internal: false },
  ], 'sorted by name, default added');
  const byName = Object.fromEntries(job.services.map((s) => [s.name, s]));
  t.same(job.services.map((s) => s.name), ['proxy', 'frontend', 'backend', 'db'], 'services keep the file\'s order');
  t.same(byName['proxy']!.networks, [{ name: 'edge', aliases: [] }, { name: 'public', aliases: [] }]);
  t.same(byName['proxy']!.ports, [{ target: 80, published: 80, protocol: 'tcp', mode: 'ingress' }, { target: 443, published: 443, protocol: 'tcp', mode: 'host' }]);
  t.same(byName['frontend']!.networks, [{ name: 'public', aliases: ['ui', 'web'] }], 'aliases sorted');
  t.same(byName['frontend']!.expose, [{ port: 3000, protocol: 'tcp' }]);
  t.same(byName['backend']!.networks, [{ name: 'private', aliases: [] }, { name: 'public', aliases: ['api'] }]);
  t.same(byName['backend']!.expose, [{ port: 8080, protocol: 'tcp' }, { port: 9229, protocol: 'tcp' }]);
  t.same(byName['db']!.networks, [{ name: 'private', aliases: ['mysql'] }]);
  t.equal(byName['db']!.deploy.endpointMode, 'dnsrr');
  t.equal(byName['backend']!.deploy.endpointMode, 'vip');
  t.ok(job.services.every((s) => s.networkMode === 'bridge'), 'containers go on bridges for the job\'s networks');
  t.same(warnings.map((w) => w.replace(/: .*$/, '')), ['stack.yaml:17:5', 'stack.yaml:24:5', 'stack.yaml:41:5'], 'only depends_on and restart warn');
  t.same(validateJob(JSON.parse(JSON.stringify(job)), 'rpc'), job, 'the canonical job validates');
});

t.test('service networks: list and mapping forms mean the same', async (t) => {
  const list = ok('services:\n  a:\n    image: x\n    networks: [front, back]\nnetworks: { front: , back: }\n').job;
  const map = ok('services:\n  a:\n    image: x\n    networks:\n      back:\n      front: {}\nnetworks: { front: , back: }\n').job;
  t.same(list, map);
  t.same(list.services[0]!.networks, [{ name: 'back', aliases: [] }, { name: 'front', aliases: [] }]);
  t.same(ok('services:\n  a:\n    image: x\n    networks: []\n').job.services[0]!.networks, [{ name: 'default', aliases: [] }], 'an empty list is the default network, as in Compose');
  t.same(ok('services:\n  a:\n    image: x\n    networks: [default]\n').job.services[0]!.networks, [{ name: 'default', aliases: [] }], 'default may be named without being declared');
});

t.test('network_mode: none is on no network; host, as before, is on the default one', async (t) => {
  const { job } = ok('services:\n  a:\n    image: x\n    network_mode: none\n  b:\n    image: x\n    network_mode: host\n');
  t.same(job.services[0]!.networks, []);
  t.equal(job.services[0]!.networkMode, 'none');
  t.same(job.services[1]!.networks, [{ name: 'default', aliases: [] }]);
  t.equal(job.services[1]!.networkMode, 'host');
});

t.test('a container without network_mode goes on bridges; a process always shares its node\'s network', async (t) => {
  const { job } = ok('services:\n  a:\n    image: x\n  p:\n    command: [sleep, "1"]\n    x-shoal: { driver: process }\n');
  t.same(job.services.map((s) => s.networkMode), ['bridge', 'host']);
  const asProcess = { ...JSON.parse(JSON.stringify(job)), services: [{ ...job.services[1]!, networkMode: 'bridge' }] };
  t.throws(() => validateJob(asProcess, 'rpc'), /services\.0\.networkMode: the process driver runs tasks in the node's network; a bridge needs the docker driver/);
  const noNetwork = { ...JSON.parse(JSON.stringify(job)), services: [{ ...job.services[0]!, networks: [] }] };
  t.throws(() => validateJob(noNetwork, 'rpc'), /services\.0\.networks: a container on a bridge must be on at least one network/);
});

t.test('top-level networks: internal, external (key, name, deprecated external.name), a configured default', async (t) => {
  const { job, warnings } = ok(`
services:
  a: { image: x, networks: [default, back, edge, legacy, shared] }
networks:
  default:
    external: true
    name: cluster-wide
  back: { internal: "\${INTERNAL}", driver: bridge }
  edge: { external: true }
  legacy: { external: { name: old-proxy } }
  shared: { external: "true", name: old-proxy }
`, { INTERNAL: 'true' });
  t.same(warnings, []);
  t.same(job.networks, [
    { name: 'back', external: null, internal: true },
    { name: 'default', external: 'cluster-wide', internal: false },
    { name: 'edge', external: 'edge', internal: false },
    { name: 'legacy', external: 'old-proxy', internal: false },
    { name: 'shared', external: 'old-proxy', internal: false },
  ]);
  t.same(ok('services:\n  a: { image: x }\nnetworks:\n  edge: { external: { name: p }, name: p }\n').job.networks[1], { name: 'edge', external: 'p', internal: false }, 'external.name and name may agree');
  t.same(ok('services:\n  a: { image: x }\nnetworks:\n  back: { internal: false, external: false }\n').job.networks[0], { name: 'back', external: null, internal: false });
});

t.test('what a Docker network driver would use is ignored with a warning at its key', async (t) => {
  const { job, warnings } = ok(`services:
  a:
    image: x
    networks:
      back:
        aliases: [store]
        priority: 100
        gw_priority: 1
        link_local_ips: [169.254.8.8]
        mac_address: 02:42:ac:11:65:43
        driver_opts: { foo: bar }
        interface_name: eth1
        x-note: anything
networks:
  back:
    driver: macvlan
    attachable: true
    labels: { team: a }
    driver_opts: { com.docker.network.bridge.name: br0 }
    enable_ipv4: true
    enable_ipv6: true
    name: my-back
    x-note: anything
`);
  t.same(job.services[0]!.networks, [{ name: 'back', aliases: ['store'] }]);
  t.same(job.networks[0], { name: 'back', external: null, internal: false });
  // The top-level networks are converted before the services that use them.
  t.same(warnings, [
    'job.yaml:16:13: networks.back.driver: network driver "macvlan" is ignored: Shoal connects the job\'s networks itself',
    'job.yaml:17:5: networks.back.attachable: "attachable" is ignored: Shoal connects the job\'s networks itself',
    'job.yaml:18:5: networks.back.labels: "labels" is ignored: Shoal connects the job\'s networks itself',
    'job.yaml:19:5: networks.back.driver_opts: "driver_opts" is ignored: Shoal connects the job\'s networks itself',
    'job.yaml:20:5: networks.back.enable_ipv4: "enable_ipv4" is ignored: Shoal connects the job\'s networks itself',
    'job.yaml:21:5: networks.back.enable_ipv6: "enable_ipv6" is ignored: Shoal connects the job\'s networks itself',
    'job.yaml:22:5: networks.back.name: "name" is ignored: a network of this job is named <job>_back in the cluster; to share a network between jobs, create it with `shoal network create` and mark it external: true',
    'job.yaml:7:9: services.a.networks.back.priority: "priority" is ignored: Shoal connects the job\'s networks itself',
    'job.yaml:8:9: services.a.networks.back.gw_priority: "gw_priority" is ignored: Shoal connects the job\'s networks itself',
    'job.yaml:9:9: services.a.networks.back.link_local_ips: "link_local_ips" is ignored: Shoal connects the job\'s networks itself',
    'job.yaml:10:9: services.a.networks.back.mac_address: "mac_address" is ignored: Shoal connects the job\'s networks itself',
    'job.yaml:11:9: services.a.networks.back.driver_opts: "driver_opts" is ignored: Shoal connects the job\'s networks itself',
    'job.yaml:12:9: services.a.networks.back.interface_name: "interface_name" is ignored: Shoal connects the job\'s networks itself',
  ]);
});

t.test('expose: numbers, "3000", "3000/tcp" and "53/udp", sorted by port then protocol', async (t) => {
  const { job } = ok('services:\n  a:\n    image: x\n    expose: ["8080/udp", 8080, "53/udp", "3000/tcp", 53]\n');
  t.same(job.services[0]!.expose, [
    { port: 53, protocol: 'tcp' }, { port: 53, protocol: 'udp' }, { port: 3000, protocol: 'tcp' }, { port: 8080, protocol: 'tcp' }, { port: 8080, protocol: 'udp' },
  ]);
});

t.test('ports: the short syntax and the long one without mode publish through the mesh (ingress); mode: host on the node', async (t) => {
  const { job } = ok('services:\n  a:\n    image: x\n    ports: ["80", "8080:81", "53:53/udp", { target: 82 }, { target: 83, published: 8083, mode: ingress }, { target: 84, published: 8084, mode: host }]\n');
  t.same(job.services[0]!.ports.map((p) => `${p.published}:${p.target}/${p.protocol} ${p.mode}`), [
    '80:80/tcp ingress', '8080:81/tcp ingress', '53:53/udp host', '82:82/tcp ingress', '8083:83/tcp ingress', '8084:84/tcp host',
  ]);
  t.same(ok('services:\n  a:\n    image: x\n    ports: ["53:53/udp", "53:53/tcp"]\n').job.services[0]!.ports.length, 2, 'the same port on two protocols is two ports');
});

t.test('deploy.endpoint_mode: vip (the default) or dnsrr, no longer ignored', async (t) => {
  const { job, warnings } = ok('services:\n  a:\n    image: x\n    deploy: { endpoint_mode: dnsrr }\n  b:\n    image: x\n    deploy: { endpoint_mode: vip }\n');
  t.same(job.services.map((s) => s.deploy.endpointMode), ['dnsrr', 'vip']);
  t.same(warnings, []);
});

t.test('a process service that is handed PORT warns where the file sets PORT', async (t) => {
  const warning = 'PORT is set by Shoal for a service with ports or expose: the job\'s value is overridden';
  const map = ok('services:\n  a:\n    x-shoal: { driver: process }\n    command: ./serve\n    expose: [3000]\n    environment:\n      LOG: debug\n      PORT: "3000"\n');
  t.same(map.warnings, [`job.yaml:8:7: services.a.environment.PORT: ${warning}`]);
  t.equal(map.job.services[0]!.environment['PORT'], '3000', 'the job keeps the value; the node overrides it');
  const list = ok('services:\n  a:\n    x-shoal: { driver: process }\n    command: ./serve\n    ports: ["8080:8080"]\n    environment: [PORT=1, A=2, PORT=8080]\n', {});
  t.same(list.warnings, [`job.yaml:6:32: services.a.environment.2: ${warning}`], 'at the entry that wins');
  const fromEnv = ok('services:\n  a:\n    x-shoal: { driver: process }\n    command: ./serve\n    ports: ["8080:8080"]\n    environment: [PORT]\n', { PORT: '1' });
  t.same(fromEnv.warnings, [`job.yaml:6:19: services.a.environment.0: ${warning}`]);
  t.same(ok('services:\n  a:\n    x-shoal: { driver: process }\n    command: ./serve\n    environment: { PORT: "1" }\n').warnings, [], 'no ports, no expose: PORT is the job\'s');
  t.same(ok('services:\n  a:\n    image: x\n    ports: ["80:80"]\n    environment: { PORT: "1" }\n').warnings, [], 'a docker task keeps its PORT');
  t.same(ok('services:\n  a:\n    x-shoal: { driver: process }\n    command: ./serve\n    ports: ["80:80"]\n    environment: [PORT]\n').warnings, [], 'PORT named but not set');
  const unsetLast = ok('services:\n  a:\n    x-shoal: { driver: process }\n    command: ./serve\n    ports: ["80:80"]\n    environment: [PORT=1, PORT]\n');
  t.same(unsetLast.warnings, [`job.yaml:6:19: services.a.environment.0: ${warning}`], 'a later PORT that is not set does not replace the value');
});

t.test('the shared rules name the entries of the file, through sorting and skipped entries', async (t) => {
  // Aliases and exposed ports are sorted in the canonical job; errors still point at the file's entries.
  const err = fails(t, `services:
  web:
    image: x
    expose: [3001, "bad", 3000, "3001/tcp"]
    networks:
      front:
        aliases: [zz, db, Bad!, zz]
  db:
    image: y
    networks: [front]
networks:
  front:
`);
  t.same(err.issues.map((i) => `${i.line}:${i.column} ${i.path}`), [
    '4:20 services.web.expose.1',
    '7:27 services.web.networks.front.aliases.2',
    '4:33 services.web.expose.3',
    '7:33 services.web.networks.front.aliases.3',
    '7:23 services.web.networks.front.aliases.1',
  ]);
  t.match(err.issues[2]!.message, /^port 3001\/tcp is exposed twice$/);
  t.match(err.issues[3]!.message, /^alias "zz" is repeated on network "front"$/);
  t.match(err.issues[4]!.message, /^alias "db" on network "front" is the name of another service on it \(services\.db\)$/);
});

t.test('errors name every problem with networks at once, and nothing is converted', async (t) => {
  const err = fails(t, `services:
  web:
    image: x
    ports: ["8080:80"]
    networks: [front, nope]
  api:
    image: y
    network_mode: none
    networks: [front]
    expose: [1]
networks:
  front: { external: true, driver: overlay }
  back: { ipam: {} }
`);
  t.same(err.issues.map((i) => `${i.line}:${i.column} ${i.path}`), [
    '12:28 networks.front.driver',
    '13:11 networks.back.ipam',
    '8:5 services.api.network_mode',
    '10:13 services.api.expose',
    '5:23 services.web.networks.1',
  ]);
  t.equal(err.code, 'ERR_INVALID_JOB');
});

t.test('network limits', async (t) => {
  checkLimits();
  t.equal(JOBSPEC_LIMITS.maxNetworks, LIMITS.jobMaxNetworks);
  t.equal(JOBSPEC_LIMITS.maxNetworksPerService, LIMITS.jobMaxNetworksPerService);
  t.equal(JOBSPEC_LIMITS.maxAliasesPerNetwork, LIMITS.jobMaxAliasesPerNetwork);
  t.throws(() => checkLimits({ ...LIMITS, jobMaxNetworksPerService: LIMITS.jobMaxNetworks + 1 }), /cannot be on more networks than its job may have/);
  const names = Array.from({ length: 15 }, (_, i) => `n${String(i).padStart(2, '0')}`);
  const at = `services:\n  a:\n    image: x\n    networks: [default, ${names.join(', ')}]\nnetworks:\n${names.map((n) => `  ${n}:\n`).join('')}`;
  t.equal(ok(at).job.services[0]!.networks.length, 16, '16 networks, default included, are allowed');
  const over = fails(t, at.replace('[default, ', '[default, n15, ').replace('networks:\n', 'networks:\n  n15:\n'));
  t.same(over.issues.map((i) => `${i.line}:${i.column} ${i.path}`), ['4:15 services.a.networks', '5:1 networks']);
  t.match(over.issues[0]!.message, /^a service may be on at most 16 networks, got 17$/);
  const aliases = Array.from({ length: 16 }, (_, i) => `a${i}`);
  t.equal(ok(`services:\n  a:\n    image: x\n    networks: { default: { aliases: [${aliases.join(', ')}] } }\n`).job.services[0]!.networks[0]!.aliases.length, 16);
});
