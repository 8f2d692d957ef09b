import t from 'tap';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadAgentConfig, parseHostPort, parseLabels } from '../../src/runtime/config.js';

t.test('defaults, then the file, then flags', async (t) => {
  const dir = t.testdir({
    'agent.yaml': 'name: from-file\ndata_dir: ./data\nbind: 10.0.0.5:7000\njoin: [10.0.0.1:7647, "10.0.0.2:7647"]\nlabels: { zone: a, gpu: true }\nlog_level: debug\nbootstrap_expect: 5\n',
  });
  const config = join(dir, 'agent.yaml');
  const fromFile = loadAgentConfig({ config }, {});
  t.equal(fromFile.name, 'from-file');
  t.equal(fromFile.dataDir, join(dir, 'data'), 'relative paths resolve against the file');
  t.same(fromFile.bind, { host: '10.0.0.5', port: 7000 });
  t.same(fromFile.join, [{ host: '10.0.0.1', port: 7647 }, { host: '10.0.0.2', port: 7647 }]);
  t.same(fromFile.labels, { zone: 'a', gpu: 'true' });
  t.equal(fromFile.bootstrapExpect, 5);
  t.same(fromFile.api, { host: '127.0.0.1', port: 7646 });
  t.equal(fromFile.publicDht, false);
  const flagged = loadAgentConfig({ config, name: 'from-flag', join: '127.0.0.2:9', labels: 'zone=b', bootstrapExpect: '1', api: ':8000' }, { SHOAL_CLUSTER_KEY: 'ab'.repeat(32) });
  t.equal(flagged.name, 'from-flag');
  t.same(flagged.join, [{ host: '127.0.0.2', port: 9 }]);
  t.same(flagged.labels, { zone: 'b' });
  t.equal(flagged.bootstrapExpect, 1);
  t.same(flagged.api, { host: '127.0.0.1', port: 8000 });
  t.equal(flagged.logLevel, 'debug');
});

t.test('errors name the source and the field', async (t) => {
  const dir = t.testdir({
    'unknown.yaml': 'name: x\ncolour: red\n',
    'badtype.yaml': 'name: x\nbootstrap_expect: "three"\n',
    'syntax.yaml': 'name: [x\n',
  });
  t.throws(() => loadAgentConfig({ config: join(dir, 'unknown.yaml') }, {}), { code: 'ERR_INVALID_ARGUMENT', message: /unknown\.yaml:2:\d+: unknown key "colour"/ });
  t.throws(() => loadAgentConfig({ config: join(dir, 'badtype.yaml') }, {}), { message: /badtype\.yaml:2:\d+: bootstrap_expect: / });
  t.throws(() => loadAgentConfig({ config: join(dir, 'syntax.yaml') }, {}), { message: /syntax\.yaml: YAML syntax error/ });
  t.throws(() => loadAgentConfig({ config: join(dir, 'missing.yaml') }, {}), { message: /cannot read the config file .*missing\.yaml: ENOENT/ });
  t.throws(() => loadAgentConfig({ bind: 'localhost:7000' }, {}), { message: /--bind: "localhost" must be an IP address/ });
  t.throws(() => loadAgentConfig({ join: '10.0.0.1' }, {}), { message: /--join: "10.0.0.1" is not HOST:PORT/ });
  t.throws(() => loadAgentConfig({ bootstrapExpect: 2 }, {}), { message: /--bootstrap-expect: must be 1 \(development\) or 3 to 7 members, got 2/ });
  t.throws(() => loadAgentConfig({ logLevel: 'loud' }, {}), { message: /--log-level: "loud" is not one of/ });
  t.throws(() => loadAgentConfig({}, { SHOAL_LOG_LEVEL: 'loud' }), { message: /SHOAL_LOG_LEVEL: "loud"/ });
  writeFileSync(join(dir, 'level.yaml'), 'log_level: loud\n');
  t.throws(() => loadAgentConfig({ config: join(dir, 'level.yaml') }, {}), { message: /level\.yaml: log_level: "loud"/ });
  t.throws(() => loadAgentConfig({ readReplicas: '3' }, {}), { message: /--read-replicas: must be 0 to 2 \(limit autopilotMaxReadReplicas\), got "3"/ });
  t.throws(() => loadAgentConfig({ readReplicas: 'two' }, {}), { message: /--read-replicas: must be 0 to 2/ });
  writeFileSync(join(dir, 'replicas.yaml'), 'read_replicas: -1\n');
  t.throws(() => loadAgentConfig({ config: join(dir, 'replicas.yaml') }, {}), { message: /replicas\.yaml: read_replicas: must be 0 to 2/ });
  t.throws(() => loadAgentConfig({ failureDomainLabel: 'a zone' }, {}), { message: /--failure-domain-label: "a zone" is not a label name/ });
  t.throws(() => loadAgentConfig({ bridgePool: '10.213.0.0/26' }, {}), { message: /--bridge-pool: bridge pool "10\.213\.0\.0\/26" must have a prefix length from 8 to 24/ });
  writeFileSync(join(dir, 'pool.yaml'), 'bridge_pool: 10.213.0.0\n');
  t.throws(() => loadAgentConfig({ config: join(dir, 'pool.yaml') }, {}), { message: /pool\.yaml: bridge_pool: "10\.213\.0\.0" is not an IPv4 CIDR/ });
});

t.test('container bridges: the pool', async (t) => {
  t.equal(loadAgentConfig({}, {}).bridgePool, '10.213.0.0/16');
  t.equal(loadAgentConfig({ bridgePool: '172.30.0.0/20' }, {}).bridgePool, '172.30.0.0/20');
});

t.test('servers: read replicas and the failure-domain label', async (t) => {
  const defaults = loadAgentConfig({}, {});
  t.equal(defaults.readReplicas, 2, 'two read replicas by default');
  t.equal(defaults.failureDomainLabel, 'zone');
  const set = loadAgentConfig({ readReplicas: '0', failureDomainLabel: 'rack' }, {});
  t.equal(set.readReplicas, 0);
  t.equal(set.failureDomainLabel, 'rack');
});

t.test('host:port and labels', async (t) => {
  t.same(parseHostPort('[::1]:80', 'x'), { host: '::1', port: 80 });
  t.same(parseHostPort(':80', 'x'), { host: '0.0.0.0', port: 80 });
  t.throws(() => parseHostPort('1.2.3.4:99999', 'x'), { message: /port 99999 is out of range/ });
  t.same(parseLabels('a=1, b = two ,c=', '--labels'), { a: '1', b: 'two', c: '' });
  t.throws(() => parseLabels('novalue', '--labels'), { message: /--labels: "novalue" is not KEY=VALUE/ });
  t.throws(() => parseLabels('b@d=1', '--labels'), { message: /label key "b@d"/ });
  t.throws(() => parseLabels('shoal.bootstrap=x', '--labels'), { message: /reserved for Shoal itself/ });
});

t.test('the config file: each key takes its own type, and every error names the line and the key', async (t) => {
  const dir = t.testdir({
    'types.yaml': 'name: ""\njoin: [10.0.0.1:7647, 5]\nlabels: { zone: [a] }\npublic_dht: "yes"\nread_replicas: 1.5\ndocker_socket: ""\nlog_level: 3\n',
    'list.yaml': '- name: x\n',
    'empty.yaml': '',
  });
  const err = t.throws(() => loadAgentConfig({ config: join(dir, 'types.yaml') }, {})) as Error;
  t.match(err.message, /types\.yaml:1:\d+: name: must be 1 to 128 characters/);
  t.match(err.message, /types\.yaml:2:\d+: join\.1: expected a string, got number 5/);
  t.match(err.message, /types\.yaml:3:\d+: labels\.zone: expected a string, number or boolean, got a list/);
  t.match(err.message, /types\.yaml:4:\d+: public_dht: expected true or false, got string "yes"/);
  t.match(err.message, /types\.yaml:5:\d+: read_replicas: expected an integer, got number 1.5/);
  t.match(err.message, /types\.yaml:6:\d+: docker_socket: must not be empty/);
  t.match(err.message, /types\.yaml:7:\d+: log_level: expected a string, got number 3/);
  t.throws(() => loadAgentConfig({ config: join(dir, 'list.yaml') }, {}), { message: /list\.yaml:1: expected a map of settings, got a list/ });
  t.equal(loadAgentConfig({ config: join(dir, 'empty.yaml') }, {}).bootstrapExpect, 3, 'an empty file takes the defaults');
});
