/**
 * `x-shoal.state`, a stateful service (issue 12, point 1): every form the job file may take, the canonical StateSpec
 * each converts to, and every way to get it wrong, each located by file, line and field path as other job keys are.
 */
import t from 'tap';
import { JobSpecError, parseJobFile, parseJobFiles, validateJob, type Job, type JobIssue, type StateSpec } from '../../src/jobspec/index.js';
import { LIMITS } from '../../src/lib/limits.js';

const parse = (text: string, env: Record<string, string> = {}) => parseJobFile(text, { file: 'job.yaml', env });

/**
 * A job whose one service `db` has `lines` inside `x-shoal.state`, then `extra` lines of the service. The first state
 * line is line 5 of the file, the first extra line comes right after the last state line.
 */
function stateful(lines: string[], extra: string[] = []): string {
  return ['services:', '  db:', '    x-shoal:', '      state:', ...lines.map((l) => `        ${l}`), ...extra.map((l) => `    ${l}`), ''].join('\n');
}

function issuesOf(text: string, env: Record<string, string> = {}): readonly JobIssue[] {
  try {
    parse(text, env);
  } catch (err) {
    if (err instanceof JobSpecError) return err.issues;
    throw err;
  }
  return [];
}

const DEFAULTS: StateSpec = { partitions: 1, replicas: 3, scheme: { kind: 'uniform' }, collections: [] };

// Each valid form: the file, the canonical state it gives, and what else the service must be.
const VALID: { what: string; text: string; env?: Record<string, string>; state: StateSpec; image?: string | null; driver?: 'docker' | 'process' }[] = [
  { what: 'all defaults: a uniform scheme of one partition, three replicas, no task', text: 'services:\n  db:\n    x-shoal: { state: {} }\n', state: DEFAULTS, image: null },
  {
    what: 'uniform, with spread and collections (sorted by name)',
    text: stateful(['partitions: 16', 'replicas: 5', 'scheme: uniform', 'spread: zone', 'collections:', '  - { name: orders, kind: queue }', '  - { name: carts, kind: dictionary }']),
    state: { partitions: 16, replicas: 5, scheme: { kind: 'uniform' }, spread: 'zone', collections: [{ name: 'carts', kind: 'dictionary' }, { name: 'orders', kind: 'queue' }] },
  },
  {
    what: 'named: the partition count is the number of names, in their order',
    text: stateful(['scheme: named', 'names: [eu, us, asia]']),
    state: { partitions: 3, replicas: 3, scheme: { kind: 'named', names: ['eu', 'us', 'asia'] }, collections: [] },
  },
  {
    what: 'named, with partitions equal to the number of names; a name may be written as a number',
    text: stateful(['scheme: named', 'partitions: 2', 'names: [2024, "2025"]']),
    state: { partitions: 2, replicas: 3, scheme: { kind: 'named', names: ['2024', '2025'] }, collections: [] },
  },
  { what: 'singleton', text: stateful(['scheme: singleton', 'replicas: 1']), state: { ...DEFAULTS, replicas: 1, scheme: { kind: 'singleton' } } },
  { what: 'singleton with partitions: 1', text: stateful(['scheme: singleton', 'partitions: 1']), state: { ...DEFAULTS, scheme: { kind: 'singleton' } } },
  {
    what: 'counts from variables, at their limits',
    text: stateful(['partitions: "${PARTITIONS}"', 'replicas: "${REPLICAS:-7}"']),
    env: { PARTITIONS: String(LIMITS.partitionsMaxPerService) },
    state: { ...DEFAULTS, partitions: LIMITS.partitionsMaxPerService, replicas: LIMITS.partitionReplicasMax },
  },
  { what: 'spread written as deploy.placement.preferences writes it', text: stateful(['spread: node.labels.rack']), state: { ...DEFAULTS, spread: 'rack' } },
  {
    what: 'a task beside each replica (image and command), with ports',
    text: stateful(['partitions: 4'], ['image: shop/cart:1', 'command: [serve]', 'ports: ["8080:80"]']),
    state: { ...DEFAULTS, partitions: 4 }, image: 'shop/cart:1',
  },
  { what: 'a process task beside each replica', text: stateful(['partitions: 2'], ['x-shoal.driver: process', 'command: node cart.js']), state: { ...DEFAULTS, partitions: 2 }, driver: 'process' },
  { what: 'the process driver without a command: a store alone', text: 'services:\n  db:\n    x-shoal: { driver: process, state: { replicas: 5 } }\n', state: { ...DEFAULTS, replicas: 5 }, driver: 'process', image: null },
  {
    what: 'the dotted form, with a nested mapping',
    text: 'services:\n  db:\n    x-shoal.state:\n      scheme: named\n      names: [eu, us]\n      collections: [{ name: carts, kind: dictionary }]\n',
    state: { partitions: 2, replicas: 3, scheme: { kind: 'named', names: ['eu', 'us'] }, collections: [{ name: 'carts', kind: 'dictionary' }] },
  },
  {
    what: 'the dotted form beside a dotted driver',
    text: 'services:\n  db:\n    x-shoal.driver: process\n    x-shoal.state: { partitions: 8 }\n    command: [run]\n',
    state: { ...DEFAULTS, partitions: 8 }, driver: 'process',
  },
];

t.test('every valid form of x-shoal.state converts to its canonical StateSpec, which validates as it is', async (t) => {
  for (const v of VALID) {
    const { job, warnings } = parse(v.text, v.env);
    const db = job.services[0]!;
    t.same(warnings, [], `${v.what}: no warning`);
    t.strictSame(db.state, v.state, v.what);
    t.equal(db.deploy.replicas, 0, `${v.what}: no replica count of its own`);
    t.equal(db.deploy.mode, 'replicated', v.what);
    if (v.image !== undefined) t.equal(db.image, v.image, `${v.what}: image`);
    t.equal(db.driver, v.driver ?? 'docker', `${v.what}: driver`);
    t.same(validateJob(JSON.parse(JSON.stringify(job)), 'rpc'), job, `${v.what}: validateJob accepts the canonical job`);
    t.same(parse(JSON.stringify(job)).job, job, `${v.what}: the canonical JSON parses back to the same job`);
  }
  const nested = parse('services:\n  db:\n    x-shoal: { driver: process, state: { partitions: 8 } }\n    command: [run]\n').job;
  t.same(parse(VALID.at(-1)!.text).job, nested, 'the dotted form means what the nested one does');
  t.equal(parse('services:\n  web:\n    image: x\n').job.services[0]!.state, undefined, 'a stateless service has no state: its canonical job is as before');
});

// Each error: the file, the path and line it must be reported at (the only issue), and the message.
const ERRORS: [string, string, string, number, RegExp][] = [
  ['replicas 0', stateful(['replicas: 0']), 'services.db.x-shoal.state.replicas', 5, /^replicas must be a whole number from 1 to 7, got 0$/],
  ['replicas 2 (even)', stateful(['partitions: 4', 'replicas: 2']), 'services.db.x-shoal.state.replicas', 6, /^replicas must be odd \(1, 3, 5 or 7\), got 2: a partition needs a majority of its replicas/],
  ['replicas 8', stateful(['replicas: 8']), 'services.db.x-shoal.state.replicas', 5, /^replicas must be a whole number from 1 to 7, got 8$/],
  ['replicas "three"', stateful(['replicas: three']), 'services.db.x-shoal.state.replicas', 5, /^replicas must be a whole number from 1 to 7, got "three"$/],
  ['replicas a list', stateful(['replicas: [3]']), 'services.db.x-shoal.state.replicas', 5, /^has the wrong type: got a list/],
  ['partitions 0', stateful(['partitions: 0']), 'services.db.x-shoal.state.partitions', 5, /^partitions must be a whole number from 1 to 1024, got 0$/],
  ['partitions over the limit', stateful([`partitions: ${LIMITS.partitionsMaxPerService + 1}`]), 'services.db.x-shoal.state.partitions', 5, /^partitions must be a whole number from 1 to 1024, got 1025$/],
  ['partitions not a whole number', stateful(['replicas: 3', 'partitions: 2.5']), 'services.db.x-shoal.state.partitions', 6, /^partitions must be a whole number from 1 to 1024, got 2\.5$/],
  ['an unknown scheme', stateful(['scheme: hashed', 'names: [a]']), 'services.db.x-shoal.state.scheme', 5, /^scheme must be uniform, named or singleton, got "hashed"$/],
  ['names with the (default) uniform scheme', stateful(['partitions: 2', 'names: [eu, us]']), 'services.db.x-shoal.state.names', 6, /^names are for scheme: named \(one partition per name\); this scheme is uniform$/],
  ['names with a singleton', stateful(['scheme: singleton', 'names: [only]']), 'services.db.x-shoal.state.names', 6, /^names are for scheme: named .*this scheme is singleton$/],
  ['named without names', stateful(['replicas: 3', 'scheme: named']), 'services.db.x-shoal.state.scheme', 6, /^a named scheme needs "names": one partition per name$/],
  ['named with no names', stateful(['scheme: named', 'names: []']), 'services.db.x-shoal.state.names', 6, /^a named scheme needs "names"/],
  ['named with a partition count that is not the number of names', stateful(['scheme: named', 'names: [eu, us, asia]', 'partitions: 4']), 'services.db.x-shoal.state.partitions', 7, /^a named scheme has one partition per name: leave partitions out, or make it 3, the number of names; got 4$/],
  ['a name listed twice', stateful(['scheme: named', 'names:', '  - eu', '  - us', '  - eu']), 'services.db.x-shoal.state.names.2', 9, /^partition name "eu" is listed twice$/],
  ['an empty name', stateful(['scheme: named', 'names: [eu, ""]']), 'services.db.x-shoal.state.names.1', 6, /^a partition name must not be empty$/],
  ['a name with a lone surrogate', stateful(['scheme: named', 'names: ["eu\\ud800"]']), 'services.db.x-shoal.state.names.0', 6, /^partition name ".*" contains a lone UTF-16 surrogate/],
  ['a name over the key limit', stateful(['scheme: named', `names: [eu, ${'n'.repeat(LIMITS.partitionKeyMaxBytes + 1)}]`]), 'services.db.x-shoal.state.names.1', 6, /^partition name "n{40}\.\.\." is 1025 bytes in UTF-8; at most 1024 are allowed$/],
  ['a name over the limit in UTF-8 bytes, not characters', stateful(['scheme: named', `names: [${'é'.repeat(LIMITS.partitionKeyMaxBytes / 2 + 1)}]`]), 'services.db.x-shoal.state.names.0', 6, /is 1026 bytes in UTF-8; at most 1024 are allowed$/],
  ['too many names', stateful(['scheme: named', `names: [${Array.from({ length: LIMITS.partitionsMaxPerService + 1 }, (_, i) => `p${i}`).join(', ')}]`]), 'services.db.x-shoal.state.names', 6, /^a stateful service may have at most 1024 partitions, got 1025 names$/],
  ['a singleton with partitions 2', stateful(['scheme: singleton', 'partitions: 2']), 'services.db.x-shoal.state.partitions', 6, /^a singleton scheme has one partition: leave partitions out, or make it 1; got 2$/],
  ['a collection declared twice', stateful(['collections:', '  - { name: carts, kind: dictionary }', '  - { name: orders, kind: queue }', '  - { name: carts, kind: queue }']), 'services.db.x-shoal.state.collections.2.name', 8, /^collection "carts" is declared twice$/],
  ['a collection of an unknown kind', stateful(['collections:', '  - { name: carts, kind: list }']), 'services.db.x-shoal.state.collections.0.kind', 6, /^kind must be dictionary or queue, got "list"$/],
  ['a collection without a kind', stateful(['collections: [{ name: carts }]']), 'services.db.x-shoal.state.collections.0.kind', 5, /^is required/],
  ['a collection with an empty name', stateful(['collections:', '  - { name: carts, kind: queue }', '  - { name: "", kind: queue }']), 'services.db.x-shoal.state.collections.1.name', 7, /^a collection name must not be empty$/],
  ['a collection name over the limit', stateful([`collections: [{ name: ${'c'.repeat(LIMITS.partitionCollectionNameMaxBytes + 1)}, kind: queue }]`]), 'services.db.x-shoal.state.collections.0.name', 5, /is 257 bytes in UTF-8; at most 256 are allowed$/],
  ['too many collections', stateful(['replicas: 3', `collections: [${Array.from({ length: LIMITS.partitionMaxCollections + 1 }, (_, i) => `{ name: c${i}, kind: queue }`).join(', ')}]`]), 'services.db.x-shoal.state.collections', 6, /^a stateful service may declare at most 1024 collections, got 1025$/],
  ['spread that is not a label key', stateful(['spread: "rack row"']), 'services.db.x-shoal.state.spread', 5, /^spread names a node label, such as zone: "rack row" is not a label key/],
  ['deploy.replicas with state', stateful(['partitions: 2'], ['deploy:', '  replicas: 6']), 'services.db.deploy.replicas', 7, /^a stateful service takes no replica count: its task count is partitions × replicas \(set them in x-shoal\.state\)$/],
  ['deploy.replicas: 1 with state (the default, written out)', stateful(['partitions: 2'], ['deploy: { replicas: 1 }']), 'services.db.deploy.replicas', 6, /^a stateful service takes no replica count/],
  ['global mode with state', stateful(['partitions: 2'], ['image: x', 'deploy:', '  mode: global']), 'services.db.deploy.mode', 8, /^a stateful service cannot be global: its tasks are the replicas of its partitions/],
  ['published ports without a task', stateful(['partitions: 2'], ['ports: ["8080:80"]']), 'services.db.ports', 6, /^a stateful service without a task \(no image, no command\) has nothing to publish a port for: remove "ports", or give it a task$/],
  ['a command without an image for a container', stateful(['partitions: 2'], ['command: [serve]']), 'services.db', 3, /^needs an "image" for the task it runs beside each replica/],
  ['an unknown key inside state', stateful(['replicas: 3', 'colour: red']), 'services.db.x-shoal.state.colour', 6, /^unknown key "colour"$/],
  ['state that is not a mapping', 'services:\n  db:\n    x-shoal:\n      state: 3\n', 'services.db.x-shoal.state', 4, /^has the wrong type: got number 3/],
  // The dotted form: located where the file writes it, under the dotted key.
  ['the dotted form: replicas 2', 'services:\n  db:\n    x-shoal.state:\n      partitions: 2\n      replicas: 2\n', 'services.db.x-shoal.state.replicas', 5, /^replicas must be odd/],
  ['the dotted form: an unknown key', 'services:\n  db:\n    x-shoal.state:\n      partitions: 2\n      colour: red\n', 'services.db.x-shoal.state.colour', 5, /^unknown key "colour"$/],
  ['the dotted form: a collection declared twice', 'services:\n  db:\n    x-shoal.state:\n      collections:\n        - { name: a, kind: queue }\n        - { name: a, kind: queue }\n', 'services.db.x-shoal.state.collections.1.name', 6, /^collection "a" is declared twice$/],
  ['the dotted form: an unknown key in x-shoal', 'services:\n  db:\n    image: x\n    x-shoal.stat: { partitions: 2 }\n', 'services.db.x-shoal.stat', 4, /^unknown key "stat"$/],
  ['the dotted form and the mapping both', 'services:\n  db:\n    x-shoal: { state: {} }\n    x-shoal.state: { replicas: 5 }\n', 'services.db.x-shoal.state', 4, /^"x-shoal\.state" repeats x-shoal\.state, which is also set in the x-shoal mapping$/],
];

t.test(`${ERRORS.length} malformed x-shoal.state files each get one error, at the field's path and line`, async (t) => {
  for (const [what, text, path, line, message] of ERRORS) {
    const issues = issuesOf(text);
    t.equal(issues.length, 1, `${what}: one problem, one error (got ${issues.map((i) => `${i.path}: ${i.message}`).join('; ') || 'none'})`);
    const issue = issues[0];
    if (!issue) continue;
    t.equal(issue.file, 'job.yaml', `${what}: file`);
    t.equal(issue.path, path, `${what}: path`);
    t.equal(issue.line, line, `${what}: line`);
    t.ok(issue.column > 0, `${what}: column`);
    t.match(issue.message, message, `${what}: message`);
  }
});

t.test('the error message names the file, line, column and path, as every job error does', async (t) => {
  t.throws(() => parse(stateful(['replicas: 4'])), { code: 'ERR_INVALID_JOB', message: /^job\.yaml:5:19: services\.db\.x-shoal\.state\.replicas: replicas must be odd/ });
  t.throws(() => parse('services:\n  db:\n    x-shoal.state:\n      colour: red\n'), { message: /^job\.yaml:4:7: services\.db\.x-shoal\.state\.colour: unknown key "colour"$/ });
  const err = t.throws(() => parse(stateful(['replicas: 4', 'scheme: singleton', 'partitions: 3'], ['deploy: { replicas: 2 }']))) as JobSpecError;
  t.same(err.issues.map((i) => [i.path, i.line]).sort((a, b) => Number(a[1]) - Number(b[1])), [
    ['services.db.x-shoal.state.replicas', 5], ['services.db.x-shoal.state.partitions', 7], ['services.db.deploy.replicas', 8],
  ], 'several problems are reported together');
});

t.test('merged files: an error in an override\'s (dotted) state names that file and line', async (t) => {
  const base = { file: 'base.yml', text: 'services:\n  db:\n    x-shoal:\n      state: { partitions: 4, collections: [{ name: carts, kind: dictionary }] }\n' };
  const over = { file: 'prod.yml', text: 'services:\n  db:\n    x-shoal.state:\n      replicas: 5\n' };
  const { job } = parseJobFiles([base, over], {});
  t.same(job.services[0]!.state, { partitions: 4, replicas: 5, scheme: { kind: 'uniform' }, collections: [{ name: 'carts', kind: 'dictionary' }] }, 'mappings merge key by key');
  const bad = { file: 'prod.yml', text: 'services:\n  db:\n    x-shoal.state:\n      scheme: uniform\n      replicas: 4\n' };
  t.throws(() => parseJobFiles([base, bad], {}), { message: /^prod\.yml:5:17: services\.db\.x-shoal\.state\.replicas: replicas must be odd/ });
});

t.test('a canonical job obeys the same rules: errors name the canonical paths', async (t) => {
  const { job } = parse(stateful(['scheme: named', 'names: [eu, us]', 'collections: [{ name: a, kind: queue }, { name: b, kind: dictionary }]']));
  const mutated = (change: (db: Record<string, any>) => void): unknown => {
    const copy = JSON.parse(JSON.stringify(job)) as Job;
    change(copy.services[0] as unknown as Record<string, any>);
    return copy;
  };
  const cases: [string, (db: Record<string, any>) => void, RegExp][] = [
    ['even replicas', (db) => { db['state'].replicas = 4; }, /services\.0\.state\.replicas: replicas must be odd/],
    ['replicas over the limit', (db) => { db['state'].replicas = 9; }, /services\.0\.state\.replicas: replicas must be a whole number from 1 to 7/],
    ['partitions that are not the number of names', (db) => { db['state'].partitions = 3; }, /services\.0\.state\.partitions: a named scheme has one partition per name: partitions must be 2, the number of names, got 3/],
    ['an unknown scheme', (db) => { db['state'].scheme = { kind: 'hashed' }; }, /services\.0\.state\.scheme\.kind: kind must be "uniform", "named" or "singleton"/],
    ['names on a uniform scheme', (db) => { db['state'].scheme = { kind: 'uniform', names: ['eu'] }; }, /services\.0\.state\.scheme\.names: unknown key "names"/],
    ['a name listed twice', (db) => { db['state'].scheme.names = ['eu', 'eu']; }, /services\.0\.state\.scheme\.names\.1: partition name "eu" is listed twice/],
    ['a singleton of two partitions', (db) => { db['state'].scheme = { kind: 'singleton' }; }, /services\.0\.state\.partitions: a singleton scheme has one partition: partitions must be 1, got 2/],
    ['collections out of order', (db) => { db['state'].collections.reverse(); }, /services\.0\.state\.collections\.1: must be sorted by name/],
    ['a collection of an unknown kind', (db) => { db['state'].collections[0].kind = 'list'; }, /services\.0\.state\.collections\.0\.kind: kind must be "dictionary" or "queue"/],
    ['a replica count in deploy', (db) => { db['deploy'].replicas = 4; }, /services\.0\.deploy\.replicas: a stateful service takes no replica count/],
    ['global mode', (db) => { db['deploy'].mode = 'global'; }, /services\.0\.deploy\.mode: a stateful service cannot be global/],
    ['ports without a task', (db) => { db['ports'] = [{ target: 80, published: 8080, protocol: 'tcp', mode: 'ingress' }]; }, /services\.0\.ports: a stateful service without a task/],
    ['an unknown key', (db) => { db['state'].colour = 'red'; }, /services\.0\.state\.colour: unknown key "colour"/],
    ['no partition count', (db) => { delete db['state'].partitions; }, /services\.0\.state\.partitions: is required/],
  ];
  for (const [what, change, message] of cases) {
    t.throws(() => validateJob(mutated(change), 'rpc'), { code: 'ERR_INVALID_JOB', message }, what);
    t.throws(() => parse(JSON.stringify(mutated(change), null, 2)), { code: 'ERR_INVALID_JOB', message: new RegExp(`^job\\.yaml:\\d+:\\d+: ${message.source}`) }, `${what}, located in canonical JSON`);
  }
});

t.test('state is part of the canonical job: a change of it changes the service', async (t) => {
  const a = parse(stateful(['partitions: 4'])).job;
  const b = parse(stateful(['partitions: 4', 'replicas: 5'])).job;
  const c = parse(stateful(['partitions: 4', 'collections: [{ name: q, kind: queue }]'])).job;
  t.not(JSON.stringify(a), JSON.stringify(b));
  t.not(JSON.stringify(a), JSON.stringify(c));
  const reordered = parse(stateful(['collections: [{ name: b, kind: queue }, { name: a, kind: queue }]'])).job;
  const ordered = parse(stateful(['collections: [{ name: a, kind: queue }, { name: b, kind: queue }]'])).job;
  t.same(reordered, ordered, 'the order collections are declared in does not matter');
  const named = parse(stateful(['scheme: named', 'names: [a, b]'])).job;
  const renamed = parse(stateful(['scheme: named', 'names: [b, a]'])).job;
  t.not(JSON.stringify(named), JSON.stringify(renamed), 'the order of names does: it numbers the partitions');
});
