/**
 * The canonical job as data from outside: the JSON `shoal job run --output` prints, and the jobs agents receive over
 * RPC. Nothing is defaulted, converted or substituted here: the value must already be exactly a `Job`, in range, and
 * obey the same cross-field rules as a converted Compose file (checks.ts). The schema is tied to the `Job` type at
 * compile time, so the two cannot drift apart.
 *
 *   text ─► size limit ─► JSON.parse (syntax errors with line and column) ─► jobSchema + checkJob ─► Job
 */
import { LineCounter, isMap, isScalar, parseDocument, type Document } from 'yaml';
import { z } from 'zod';
import { JobSpecError, type JobIssue } from './errors.js';
import { JOBSPEC_LIMITS } from './limits.js';
import { CONSTRAINT_ATTRIBUTE_RE, NAME_MAX_CHARS, NAME_RE, SIGNALS, SPREAD_RE, checkJob, compareExposed, compareNames, isIpAddress, oneOf } from './checks.js';
import { MAX_FILE_MODE, MAX_FILE_OWNER_ID } from './file-objects.js';
import { reportZodIssues, type IssuePath } from './zod-issues.js';
import { BIND_PROPAGATIONS, COLLECTION_KINDS, STATE_SCHEMES, type Job } from './types.js';

const L = JOBSPEC_LIMITS;

function wholeNumber(what: string, min: number, max: number) {
  const message = `${what} must be a whole number from ${min} to ${max}`;
  return z.number().int().min(min, { error: message }).max(max, { error: message });
}

/** Durations and sizes: whole and non-negative, as the Compose conversion produces them. */
function nonNegative(what: string) {
  return z.number().int().min(0, { error: `${what} must be a whole, non-negative number` });
}

function name(what: string) {
  return z.string().max(NAME_MAX_CHARS, { error: `${what} must be at most ${NAME_MAX_CHARS} characters` })
    .regex(NAME_RE, { error: `${what} must be 1-${NAME_MAX_CHARS} lower-case letters, digits, "-" or "_", starting with a letter or digit` });
}

const stringMap = (what: string) => z.record(z.string(), z.string()).refine((m) => Object.keys(m).length <= L.maxListEntries, {
  error: `at most ${L.maxListEntries} ${what} entries are allowed`,
});

const argv = z.array(z.string()).nullable();

const absolutePath = (what: string) => z.string().startsWith('/', { error: `${what} must be an absolute path` });

/**
 * A list the Compose conversion sorts, so that two files meaning the same give the same job: it must come sorted.
 * Equal neighbours pass here; checks.ts reports them as repeated.
 */
function sortedList<T extends z.ZodType>(item: T, compare: (a: z.output<T>, b: z.output<T>) => number, order: string) {
  return z.array(item).superRefine((list, ctx) => {
    for (let i = 1; i < list.length; i++) {
      if (compare(list[i - 1]!, list[i]!) > 0) {
        ctx.addIssue({ code: 'custom', path: [i], message: `must be sorted ${order}: this entry comes before the one above it` });
        return;
      }
    }
  });
}

const protocol = z.enum(['tcp', 'udp'], { error: 'protocol must be "tcp" or "udp"' });

const portSchema = z.strictObject({
  target: wholeNumber('target port', 1, 65535),
  published: wholeNumber('published port', 1, 65535),
  protocol,
  mode: z.enum(['ingress', 'host'], { error: 'mode must be "ingress" or "host"' }),
});

const exposedSchema = z.strictObject({
  port: wholeNumber('exposed port', 1, 65535),
  protocol,
});

const serviceNetworkSchema = z.strictObject({
  name: name('a network name'),
  aliases: sortedList(name('an alias'), compareNames, 'by name'),
});

const networkSchema = z.strictObject({
  name: name('a network name'),
  external: name('an external network name').nullable(),
  internal: z.boolean(),
});

/** A mount: its source is checked by its type in checks.ts (a bind's is an absolute path, a volume's is declared). */
const mountSchema = z.strictObject({
  type: z.enum(['volume', 'tmpfs'], { error: 'a mount type is "volume" or "tmpfs" (none for a bind mount)' }).optional(),
  source: z.string(),
  target: absolutePath('a mount target'),
  readOnly: z.boolean(),
  propagation: z.enum(BIND_PROPAGATIONS, { error: `propagation must be one of ${BIND_PROPAGATIONS.join(', ')}` }).optional(),
  noCopy: z.boolean().optional(),
  tmpfsSizeBytes: z.number().int().positive().optional(),
  tmpfsMode: z.number().int().min(0).max(0o7777).optional(),
});

const volumeSchema = z.strictObject({
  name: name('a volume name'),
  external: z.string().nullable(),
  driverOpts: stringMap('driver option'),
});

/** A secret or config the job declares; names are checked in checks.ts, where a Compose file's are too. */
const fileObjectSchema = z.strictObject({
  name: z.string(),
  clusterName: z.string(),
  external: z.boolean(),
});

/** A service's use of one; its target is checked by the service's driver in checks.ts. */
const fileRefSchema = z.strictObject({
  source: z.string(),
  target: z.string(),
  uid: wholeNumber('uid', 0, MAX_FILE_OWNER_ID).nullable(),
  gid: wholeNumber('gid', 0, MAX_FILE_OWNER_ID).nullable(),
  mode: wholeNumber(`mode (permission bits, 0 to ${MAX_FILE_MODE} = 0o7777)`, 0, MAX_FILE_MODE),
});

const healthInterval = (what: string, min: number) => wholeNumber(`${what} (ms)`, min, L.maxHealthIntervalMs);

const healthSchema = z.strictObject({
  test: z.array(z.string())
    .min(2, { error: 'a healthcheck test is ["CMD", ...argv] or ["CMD-SHELL", "script"]: it needs a command' })
    .refine((t) => t[0] === 'CMD' || t[0] === 'CMD-SHELL', { error: 'a healthcheck test must start with "CMD" or "CMD-SHELL"', path: [0] }),
  intervalMs: healthInterval('intervalMs', L.minHealthIntervalMs),
  timeoutMs: healthInterval('timeoutMs', L.minHealthIntervalMs),
  retries: wholeNumber('retries', 1, L.maxHealthRetries),
  startPeriodMs: healthInterval('startPeriodMs', 0),
});

const constraintSchema = z.strictObject({
  attribute: z.string().regex(CONSTRAINT_ATTRIBUTE_RE, { error: 'a constraint attribute is node.name, node.id, node.role or node.labels.<key>' }),
  op: z.enum(['==', '!='], { error: 'a constraint operator is "==" or "!="' }),
  value: z.string(),
});

const resourcesSchema = z.strictObject({
  cpuMillicores: nonNegative('cpuMillicores'),
  memoryBytes: nonNegative('memoryBytes'),
});

const restartSchema = z.strictObject({
  condition: z.enum(['none', 'on-failure', 'any'], { error: 'condition must be "none", "on-failure" or "any"' }),
  delayMs: nonNegative('delayMs'),
  maxAttempts: wholeNumber('maxAttempts', 0, L.maxRestartAttempts).nullable(),
  windowMs: nonNegative('windowMs'),
});

const optionsSchema = z.strictObject({
  user: z.string().min(1, { error: 'user must not be empty' }).nullable(),
  capAdd: z.array(z.string()),
  capDrop: z.array(z.string()),
  sysctls: stringMap('sysctl'),
  ulimits: z.array(z.strictObject({ name: z.string(), soft: z.number().int().min(-1), hard: z.number().int().min(-1) })),
  init: z.boolean(),
  hostname: z.string().min(1, { error: 'hostname must not be empty' }).nullable(),
  extraHosts: z.array(z.string().regex(/^[^:\s]+:.+$/, { error: 'an extra host is HOST:IP' })),
  dns: z.array(z.string().refine(isIpAddress, { error: 'a nameserver is an IP address' })),
  dnsSearch: z.array(z.string()),
  dnsOptions: z.array(z.string()),
  readOnly: z.boolean(),
  platform: z.string().regex(/^[a-z0-9]+\/[a-z0-9_]+(\/[a-z0-9]+)?$/, { error: 'a platform is os/arch[/variant]' }).nullable(),
  runtime: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]*$/, { error: 'a runtime is a name such as runc or io.containerd.wasmedge.v1' }).nullable(),
  pidsLimit: wholeNumber('pidsLimit (0 for no limit)', 0, 4_194_304),
});

/**
 * A scheme: one branch per kind. Each branch's `kind` says what the kinds are, so that whichever branch the union
 * reports, its message lists them.
 */
const schemeKind = <K extends (typeof STATE_SCHEMES)[number]>(kind: K) => z.literal(kind, { error: `kind must be ${oneOf(STATE_SCHEMES.map((k) => `"${k}"`))}` });
const schemeSchema = z.union([
  z.strictObject({ kind: schemeKind('uniform') }),
  z.strictObject({ kind: schemeKind('named'), names: z.array(z.string()) }),
  z.strictObject({ kind: schemeKind('singleton') }),
]);

/** `x-shoal.state`; the rules between its fields (odd replicas, the count by scheme, names) are in checks.ts. */
const stateSchema = z.strictObject({
  partitions: wholeNumber('partitions', 1, L.maxPartitionsPerService),
  replicas: wholeNumber('replicas', 1, L.maxPartitionReplicas),
  scheme: schemeSchema,
  spread: z.string().optional(),
  collections: sortedList(z.strictObject({
    name: z.string(),
    kind: z.enum(COLLECTION_KINDS, { error: `kind must be ${oneOf(COLLECTION_KINDS.map((k) => `"${k}"`))}` }),
  }), (a, b) => compareNames(a.name, b.name), 'by name'),
});

const serviceSchema = z.strictObject({
  name: name('a service name'),
  driver: z.enum(['docker', 'process'], { error: 'driver must be "docker" or "process"' }),
  image: z.string().nullable(),
  command: argv,
  entrypoint: argv,
  workingDir: z.string().nullable(),
  environment: stringMap('environment'),
  ports: z.array(portSchema),
  expose: sortedList(exposedSchema, compareExposed, 'by port, then protocol'),
  networks: sortedList(serviceNetworkSchema, (a, b) => compareNames(a.name, b.name), 'by name'),
  networkMode: z.enum(['bridge', 'host', 'none'], { error: 'networkMode must be "bridge", "host" or "none"' }),
  volumes: z.array(mountSchema),
  labels: stringMap('label'),
  healthcheck: healthSchema.nullable(),
  stopGraceMs: wholeNumber('stopGraceMs', 0, L.maxStopGraceMs),
  stopSignal: z.string().refine((s) => SIGNALS.includes(s), { error: `stopSignal must be one of ${SIGNALS.join(', ')}` }),
  secrets: z.array(fileRefSchema).optional(),
  configs: z.array(fileRefSchema).optional(),
  options: optionsSchema.optional(),
  state: stateSchema.optional(),
  deploy: z.strictObject({
    mode: z.enum(['replicated', 'global'], { error: 'mode must be "replicated" or "global"' }),
    replicas: wholeNumber('replicas', 0, L.maxReplicas),
    endpointMode: z.enum(['vip', 'dnsrr'], { error: 'endpointMode must be "vip" or "dnsrr"' }),
    placement: z.strictObject({
      constraints: z.array(constraintSchema),
      maxReplicasPerNode: wholeNumber('maxReplicasPerNode (0 for no limit)', 0, L.maxReplicas),
      spread: z.array(z.string().regex(SPREAD_RE, { error: 'can spread only across node.labels.<key>, node.name or node.id' })),
    }),
    resources: z.strictObject({ reservations: resourcesSchema, limits: resourcesSchema }),
    restartPolicy: restartSchema,
  }),
});

/** The canonical job, strictly: every field present, no unknown key, every value in range, every rule of checks.ts. */
export const jobSchema = z.strictObject({
  name: name('a job name'),
  type: z.enum(['service', 'batch'], { error: 'type must be "service" or "batch"' }),
  services: z.array(serviceSchema),
  networks: sortedList(networkSchema, (a, b) => compareNames(a.name, b.name), 'by name'),
  volumes: sortedList(volumeSchema, (a, b) => compareNames(a.name, b.name), 'by name').optional(),
  secrets: sortedList(fileObjectSchema, (a, b) => compareNames(a.name, b.name), 'by name').optional(),
  configs: sortedList(fileObjectSchema, (a, b) => compareNames(a.name, b.name), 'by name').optional(),
}).superRefine((job, ctx) => {
  checkJob(job, (path, message) => ctx.addIssue({ code: 'custom', path, message }));
}) satisfies z.ZodType<Job>;

/** True when A and B are the same type (not merely assignable one way). */
type Exactly<A, B> = (<T>() => T extends A ? 1 : 2) extends (<T>() => T extends B ? 1 : 2) ? true : false;
/** Fails to compile when types.ts and the schema disagree on any field. */
export const SCHEMA_MATCHES_JOB_TYPE: Exactly<z.infer<typeof jobSchema>, Job> = true;

/** Line and column of the field at `path`, or of its key `key` (a key that should not be there). */
type Locate = (path: IssuePath, key?: string) => { line: number; column: number };

const nowhere: Locate = () => ({ line: 0, column: 0 });

function validate(value: unknown, source: string, locate: Locate): Job {
  const parsed = jobSchema.safeParse(value);
  if (parsed.success) return parsed.data;
  const issues: JobIssue[] = [];
  reportZodIssues(parsed.error, value, (path, message, key) => {
    const full = key === undefined ? path : [...path, key];
    issues.push({ file: source, ...locate(path, key), path: full.join('.'), message });
  });
  throw new JobSpecError(issues);
}

/**
 * A canonical job received as a value (e.g. decoded from an RPC). Throws JobSpecError listing every problem, each
 * with its field path (`services.0.deploy.replicas`); `source` names where the value came from in the messages.
 */
export function validateJob(value: unknown, source: string): Job {
  return validate(value, source, nowhere);
}

/** 1-based line and column of a character offset. */
function lineColumn(text: string, offset: number): { line: number; column: number } {
  let line = 1;
  let start = 0;
  for (let i = text.indexOf('\n'); i !== -1 && i < offset; i = text.indexOf('\n', i + 1)) {
    line++;
    start = i + 1;
  }
  return { line, column: offset - start + 1 };
}

/** Finds fields in the JSON text: JSON is YAML, and the YAML parser keeps every node's offset. */
function locator(text: string): Locate {
  const lines = new LineCounter();
  let doc: Document;
  try {
    doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: false });
  } catch {
    return nowhere; // positions are a courtesy: without them the issues still carry their paths
  }
  if (doc.errors.length > 0) return nowhere;
  const at = (offset: number): { line: number; column: number } => {
    const p = lines.linePos(offset);
    return { line: p.line, column: p.col };
  };
  return (path, key) => {
    if (key !== undefined) {
      const map = doc.getIn(path, true);
      const pair = isMap(map) ? map.items.find((item) => isScalar(item.key) && String(item.key.value) === key) : undefined;
      const range = pair && isScalar(pair.key) ? pair.key.range : undefined;
      if (range) return at(range[0]);
    }
    for (let n = path.length; n >= 0; n--) {
      const node = doc.getIn(path.slice(0, n), true) as { range?: [number, number, number] } | undefined;
      if (node?.range) return at(node.range[0]);
    }
    return { line: 0, column: 0 };
  };
}

class JsonSyntaxAt extends Error {
  constructor(readonly offset: number, message: string) {
    super(message);
  }
}

/**
 * Where and why `text` is not JSON. JSON.parse says why but, for some errors, not where; this scanner is run only
 * after JSON.parse has failed, to find the offset of the first character that cannot belong to a JSON text.
 */
export function findJsonSyntaxError(text: string): { offset: number; message: string } {
  let i = 0;
  const fail = (message: string): never => {
    throw new JsonSyntaxAt(i, i >= text.length ? `unexpected end of input: ${message}` : `unexpected ${JSON.stringify(text[i])}: ${message}`);
  };
  const ws = (): void => {
    while (i < text.length && ' \t\n\r'.includes(text[i]!)) i++;
  };
  const literal = (word: string): void => {
    for (const ch of word) {
      if (text[i] !== ch) fail(`expected ${word}`);
      i++;
    }
  };
  const string = (): void => {
    i++; // the opening quote
    for (;;) {
      const ch = text[i];
      if (ch === undefined) fail('unterminated string');
      if (ch === '"') break;
      if (ch! < ' ') fail('control characters must be escaped in a string');
      if (ch === '\\') {
        i++;
        if (text[i] === 'u') {
          for (let k = 0; k < 4; k++) {
            i++;
            if (!/[0-9a-fA-F]/.test(text[i] ?? '')) fail('expected 4 hex digits after \\u');
          }
        } else if (!'"\\/bfnrt'.includes(text[i] ?? 'x')) fail('not a valid escape');
      }
      i++;
    }
    i++;
  };
  const number = (): void => {
    const m = /-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/y;
    m.lastIndex = i;
    const found = m.exec(text);
    if (!found || found[0] === '-' || found[0] === '') fail('expected a value');
    i = m.lastIndex;
  };
  const value = (depth: number): void => {
    if (depth > 10_000) fail('nested too deeply');
    ws();
    const ch = text[i];
    if (ch === '{') {
      i++;
      ws();
      if (text[i] === '}') {
        i++;
        return;
      }
      for (;;) {
        ws();
        if (text[i] !== '"') fail('expected a key in double quotes');
        string();
        ws();
        if (text[i] !== ':') fail('expected ":" after a key');
        i++;
        value(depth + 1);
        ws();
        if (text[i] === ',') i++;
        else if (text[i] === '}') {
          i++;
          return;
        } else fail('expected "," or "}" after a value in an object');
      }
    } else if (ch === '[') {
      i++;
      ws();
      if (text[i] === ']') {
        i++;
        return;
      }
      for (;;) {
        value(depth + 1);
        ws();
        if (text[i] === ',') i++;
        else if (text[i] === ']') {
          i++;
          return;
        } else fail('expected "," or "]" after a value in a list');
      }
    } else if (ch === '"') string();
    else if (ch === 't') literal('true');
    else if (ch === 'f') literal('false');
    else if (ch === 'n') literal('null');
    else if (ch === '-' || (ch !== undefined && ch >= '0' && ch <= '9')) number();
    else fail('expected a value');
  };
  try {
    value(0);
    ws();
    if (i < text.length) fail('expected the end of the text after the value');
  } catch (e) {
    if (e instanceof JsonSyntaxAt) return { offset: e.offset, message: e.message };
    throw e;
  }
  return { offset: text.length, message: 'not valid JSON' };
}

function syntaxError(text: string, file: string): JobSpecError {
  const { offset, message } = findJsonSyntaxError(text);
  return new JobSpecError([{ file, ...lineColumn(text, offset), path: '', message: `JSON syntax error: ${message}` }]);
}

/** Canonical JSON text (what `shoal job run --output` prints) to a Job. */
export function parseCanonicalJob(text: string, file: string): Job {
  const bytes = new TextEncoder().encode(text).length;
  if (bytes > L.maxJobFileBytes) {
    throw new JobSpecError([{ file, line: 0, column: 0, path: '', message: `file is ${bytes} bytes; a job file may be at most ${L.maxJobFileBytes} bytes` }]);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw syntaxError(text, file);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new JobSpecError([{ file, line: 1, column: 1, path: '', message: 'a canonical job is a JSON object with "name", "type" and "services"' }]);
  }
  return validate(value, file, locator(text));
}

/**
 * Whether a job file holds a canonical job rather than a Compose file: a JSON object whose `services` is a list (a
 * Compose file's `services` is a mapping). A `.json` file that is not valid JSON counts too, so that its syntax
 * error is reported as JSON, with line and column.
 */
export function looksCanonical(text: string, file: string): boolean {
  if (!text.trimStart().startsWith('{')) return false;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return /\.json$/i.test(file);
  }
  return typeof value === 'object' && value !== null && Array.isArray((value as Record<string, unknown>)['services']);
}
