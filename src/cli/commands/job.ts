/**
 * `shoal job run|plan|status|stop|scale`: jobs in, allocations out, for Nomad and Docker Swarm users.
 *
 * Job files are parsed and validated here, on the CLI's side, so a bad file names its file:line:col and nothing
 * is sent. `job run` then registers the canonical job and, unless detached, watches it converge:
 *
 *   register ─► poll Get (read-your-write through min_index) every ~300 ms, printing per-service progress
 *     ├─ the evaluation (or a newer one) is done and every service is running/complete as desired ─► exit 0
 *     ├─ the latest finished evaluation could not place replicas                                 ─► exit 2
 *     ├─ allocations of this version failed and nothing replaces them                            ─► exit 2
 *     └─ --wait-timeout passed                                                                   ─► exit 1
 *
 * Exit codes are set through process.exitCode so output is flushed and the RPC client's sockets close normally.
 */
import { accessSync, constants, readFileSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Command } from 'commander';
import { shoal } from '../../gen/proto.js';
import { InvalidArgumentError, ShoalError } from '../../lib/errors.js';
import { LIMITS } from '../../lib/limits.js';
import type { Job } from '../../jobspec/index.js';
import type { FileObjectSource } from '../../jobspec/types.js';
import type { ShoalClient } from '../../rpc/index.js';
import {
  ProgressLines, u64, checkSecretTransport, clientFrom, formatFailedPlacement, formatReasons, parseOutput, printFields, printMessageJson, printTable, shortId,
  type GlobalFlags, type OutputFlags,
} from '../output.js';

/** How often `job run`, `job stop` and `node drain` ask the agent for the job's state while waiting. */
export const POLL_INTERVAL_MS = 300;
/** Exit code of `job run` when the job cannot be placed or its allocations fail (as `nomad job run`). */
export const EXIT_PLACEMENT_FAILED = 2;
/** Exit code of `job plan` on any error (as `nomad job plan`); 0 = no change, 1 = changes. */
export const EXIT_PLAN_ERROR = 255;

type ServiceSummary = shoal.v1.ServiceSummary.$Properties;
type Evaluation = shoal.v1.Evaluation.$Properties;
type Allocation = shoal.v1.Allocation.$Properties;

interface FileFlags {
  /** `-c FILE`, repeated: files merged in order, as `docker stack deploy -c a -c b` does. */
  composeFile: string[];
  /** Variables for `${VAR}`, under those of the environment. */
  envFile?: string;
  name?: string;
}

interface RunFlags extends FileFlags {
  detach?: boolean;
  output?: boolean;
  waitTimeout: string;
}

const collect = (value: string, previous: string[]): string[] => [...previous, value];

/** The job files of a command: the positional one, or every `-c`, never both. */
function jobFiles(file: string | undefined, flags: FileFlags): string[] {
  if (file !== undefined && flags.composeFile.length > 0) throw new InvalidArgumentError(`give the job file as an argument or with -c, not both ("${file}" and -c ${flags.composeFile.join(' -c ')})`);
  const files = file !== undefined ? [file] : flags.composeFile;
  if (files.length === 0) throw new InvalidArgumentError('no job file: give one as an argument, or several with -c FILE -c FILE');
  return files;
}

interface StopFlags {
  detach?: boolean;
  waitTimeout: string;
}

export function registerJob(program: Command): void {
  const job = program.command('job').description('run, plan, inspect, scale and stop jobs');

  job
    .command('run')
    .description('register a job from a Compose-style file and wait until it runs (exit 2 if it cannot be placed or fails)')
    .argument('[file]', 'job file (Compose-style YAML, or canonical JSON)')
    .option('-c, --compose-file <file>', 'a Compose file; repeat to merge several in order (an override file after its base)', collect, [])
    .option('--env-file <file>', 'variables for ${VAR} in the job files (the environment\'s own win)')
    .option('--detach', 'print the evaluation id and return without waiting')
    .option('--output', 'print the canonical job as JSON and exit without contacting an agent')
    .option('--name <name>', 'job name when the file has no top-level "name" (default: the file\'s base name)')
    .option('--wait-timeout <seconds>', 'give up waiting after this long (the job keeps converging)', '300')
    .action(async (file: string | undefined, flags: RunFlags, command: Command) => {
      const waitMs = parseSeconds(flags.waitTimeout, '--wait-timeout');
      const { job: parsed, contents, env } = await loadJob(jobFiles(file, flags), flags);
      if (flags.output) {
        checkContents(contents);
        process.stdout.write(`${JSON.stringify(parsed, null, 2)}\n`);
        return;
      }
      const client = clientFrom(command.optsWithGlobals<GlobalFlags>());
      if (contents.some((c) => c.kind === 'secret')) checkSecretTransport(client, `job run (job "${parsed.name}" provides secrets)`);
      const res = await client.jobs.register({ jobJson: JSON.stringify(parsed), ...readContents(contents, env) });
      if (!res.changed) {
        process.stdout.write(`Job ${res.name} unchanged (version ${res.version})\n`);
        return;
      }
      process.stdout.write(`Job ${res.name} registered (version ${res.version})\nEvaluation ID: ${res.evalId}\n`);
      if (flags.detach) return;
      process.exitCode = await waitForJob(client, parsed, res, waitMs);
    });

  job
    .command('plan')
    .description('show what running the job file would change, without changing anything (exit 0: no change, 1: changes, 255: error)')
    .argument('[file]', 'job file')
    .option('-c, --compose-file <file>', 'a Compose file; repeat to merge several in order', collect, [])
    .option('--env-file <file>', 'variables for ${VAR} in the job files (the environment\'s own win)')
    .option('--name <name>', 'job name when the file has no top-level "name"')
    .option('-o, --output <format>', 'table or json', 'table')
    .action(async (file: string | undefined, flags: OutputFlags & FileFlags, command: Command) => {
      try {
        const output = parseOutput(flags.output);
        const { job: parsed, contents } = await loadJob(jobFiles(file, flags), flags);
        checkContents(contents);
        const plan = await clientFrom(command.optsWithGlobals<GlobalFlags>()).jobs.plan({ jobJson: JSON.stringify(parsed) });
        if (output === 'json') printMessageJson(shoal.v1.PlanJobResponse, plan);
        else printPlan(parsed.name, plan);
        const changes = plan.jobChange !== 'unchanged' || plan.services.some((s) => (s.place ?? 0) > 0 || (s.stop ?? 0) > 0);
        process.exitCode = changes ? 1 : 0;
      } catch (err) {
        if (!(err instanceof ShoalError)) throw err;
        process.stderr.write(`shoal: ${err.message}\n`);
        process.exitCode = EXIT_PLAN_ERROR;
      }
    });

  job
    .command('status')
    .description('list jobs, or show one job\'s services, allocations and placement failures')
    .argument('[name]', 'job name')
    .option('-o, --output <format>', 'table or json', 'table')
    .action(async (name: string | undefined, flags: OutputFlags, command: Command) => {
      const output = parseOutput(flags.output);
      const globals = command.optsWithGlobals<GlobalFlags>();
      const client = clientFrom(globals);
      const stale = globals.stale === true;
      if (name === undefined) {
        const res = await client.jobs.list({ stale });
        if (output === 'json') return printMessageJson(shoal.v1.ListJobsResponse, res);
        if (res.jobs.length === 0) {
          process.stdout.write('No jobs\n');
          return;
        }
        printTable(['NAME', 'TYPE', 'VERSION', 'STATUS', 'SERVICES'], res.jobs.map((j) => [
          j.name ?? '', j.type ?? '', String(j.version ?? 0), j.status ?? '',
          (j.services ?? []).map((s) => `${s.name} ${doneCount(j.type ?? '', s)}/${s.desired ?? 0}`).join(', ') || '-',
        ]));
        return;
      }
      const res = await client.jobs.get({ name, stale });
      if (output === 'json') return printMessageJson(shoal.v1.GetJobResponse, res);
      printJobStatus(res);
    });

  job
    .command('stop')
    .description('stop every allocation of a job and wait until they have stopped')
    .argument('<name>', 'job name')
    .option('--detach', 'return once the stop is recorded, without waiting')
    .option('--wait-timeout <seconds>', 'give up waiting after this long (the allocations keep stopping)', '300')
    .action(async (name: string, flags: StopFlags, command: Command) => {
      const waitMs = parseSeconds(flags.waitTimeout, '--wait-timeout');
      const client = clientFrom(command.optsWithGlobals<GlobalFlags>());
      const res = await client.jobs.stop({ name });
      process.stdout.write(`Job ${name} stopping\nEvaluation ID: ${res.evalId}\n`);
      if (flags.detach) return;
      await waitForStop(client, name, u64(res.index), waitMs);
    });

  job
    .command('scale')
    .description('set the number of replicas of one service of a job')
    .argument('<name>', 'job name')
    .argument('<service>', 'service name')
    .argument('<replicas>', `replica count, 0 to ${LIMITS.jobMaxReplicas}`)
    .action(async (name: string, service: string, replicasText: string, _flags: object, command: Command) => {
      const replicas = /^\d+$/.test(replicasText.trim()) ? Number(replicasText.trim()) : NaN;
      if (!Number.isInteger(replicas) || replicas > LIMITS.jobMaxReplicas) {
        throw new InvalidArgumentError(`replicas must be a whole number from 0 to ${LIMITS.jobMaxReplicas}, got "${replicasText}"`);
      }
      const res = await clientFrom(command.optsWithGlobals<GlobalFlags>()).jobs.scale({ name, service, replicas });
      process.stdout.write(`Job ${name} service ${service} scaled to ${replicas} (version ${res.version})\nEvaluation ID: ${res.evalId}\n`);
    });
}

/**
 * Reads and validates a job file; a bad file throws JobSpecError naming every problem with file:line:col. The job
 * spec's parser (yaml and zod) loads here, not when the CLI starts: `shoal agent` runs this same program and must
 * not carry it.
 */
async function loadJob(files: string[], flags: { name?: string; envFile?: string }): Promise<{ job: Job; contents: FileObjectSource[]; env: Record<string, string | undefined> }> {
  const read = (file: string, what: string): string => {
    try {
      return readFileSync(file, 'utf8');
    } catch (err) {
      throw new InvalidArgumentError(`cannot read ${what} ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { file });
    }
  };
  const texts = files.map((file) => ({ file, text: read(file, 'job file') }));
  const { parseEnvText, parseJobFiles } = await import('../../jobspec/parse.js');
  let env: Record<string, string | undefined> = process.env;
  if (flags.envFile !== undefined) {
    const parsed = parseEnvText(read(flags.envFile, 'env file'), flags.envFile, process.env);
    if (parsed.errors.length > 0) throw new InvalidArgumentError(`--env-file: ${parsed.errors.join('; ')}`);
    env = { ...parsed.vars, ...process.env };
  }
  const readFile = (p: string): string => readFileSync(p, 'utf8');
  const name = flags.name;
  // Relative paths (bind mounts, env files) resolve against the first file's directory, as Compose's project directory.
  const { job, warnings, contents } = parseJobFiles(texts, { env, baseDir: dirname(resolve(files[0]!)), readFile, home: homedir(), ...(name === undefined ? {} : { name }) });
  for (const w of warnings) process.stderr.write(`warning: ${w}\n`);
  return { job, contents, env };
}

/** `--output` and `job plan`: every secret and config file the job names can be read (none is read). */
function checkContents(contents: FileObjectSource[]): void {
  for (const c of contents) {
    if (c.file === undefined) continue;
    try {
      if (!statSync(c.file).isFile()) throw Object.assign(new Error('not a regular file'), { code: 'not a regular file' });
      accessSync(c.file, constants.R_OK);
    } catch (err) {
      throw new InvalidArgumentError(`${c.where}: ${c.kind} "${c.name}": cannot read ${c.file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { file: c.file });
    }
  }
}

/** `job run`: the contents of the job's own secrets and configs, read here on the CLI's machine, for the registration. */
function readContents(contents: FileObjectSource[], env: Record<string, string | undefined>): { secrets: shoal.v1.IObjectContents[]; configs: shoal.v1.IObjectContents[] } {
  const out = { secrets: [] as shoal.v1.IObjectContents[], configs: [] as shoal.v1.IObjectContents[] };
  for (const c of contents) {
    let data: Buffer;
    if (c.file !== undefined) {
      try {
        data = readFileSync(c.file);
      } catch (err) {
        throw new InvalidArgumentError(`${c.where}: ${c.kind} "${c.name}": cannot read ${c.file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { file: c.file });
      }
    } else if (c.environment !== undefined) {
      const value = env[c.environment];
      if (value === undefined) throw new InvalidArgumentError(`${c.where}: ${c.kind} "${c.name}": the environment variable ${c.environment} is not set`);
      data = Buffer.from(value);
    } else data = Buffer.from(c.content ?? '');
    if (data.length > LIMITS.fileObjectMaxBytes) throw new InvalidArgumentError(`${c.where}: ${c.kind} "${c.name}" has ${data.length} bytes, more than ${LIMITS.fileObjectMaxBytes}`);
    (c.kind === 'secret' ? out.secrets : out.configs).push({ name: c.clusterName, data });
  }
  return out;
}

function parseSeconds(text: string, flag: string): number {
  const seconds = Number(text);
  if (!Number.isFinite(seconds) || seconds <= 0) throw new InvalidArgumentError(`${flag} must be a positive number of seconds, got "${text}"`);
  return seconds * 1000;
}

/** Replicas that count as done: running for service jobs, complete for batch jobs. */
function doneCount(jobType: string, s: ServiceSummary): number {
  return jobType === 'batch' ? s.complete ?? 0 : s.running ?? 0;
}

/** "web: 3/6 running, 3 pending" (batch: "once: 2/4 complete, 1 running, 1 pending"), with failures when any. */
export function progressLine(jobType: string, s: ServiceSummary): string {
  const parts = jobType === 'batch'
    ? [`${s.complete ?? 0}/${s.desired ?? 0} complete`, (s.running ?? 0) > 0 ? `${s.running} running` : '']
    : [`${s.running ?? 0}/${s.desired ?? 0} running`];
  if ((s.pending ?? 0) > 0) parts.push(`${s.pending} pending`);
  if ((s.failed ?? 0) > 0) parts.push(`${s.failed} failed`);
  if ((s.lost ?? 0) > 0) parts.push(`${s.lost} lost`);
  if ((s.unplaced ?? 0) > 0) parts.push(`${s.unplaced} unplaced`);
  return `${s.name}: ${parts.filter((p) => p !== '').join(', ')}`;
}

type Outcome =
  | { kind: 'waiting' }
  | { kind: 'done' }
  | { kind: 'unplaced'; lines: string[] }
  | { kind: 'failed'; lines: string[] };

/**
 * Decides from one Get answer whether `job run` is finished. Evaluations that count are the registration's own and
 * any newer one of the job (a node failure or a scale during the wait supersedes it).
 */
export function judgeRun(got: shoal.v1.GetJobResponse, evalId: string, registeredIndex: number, version: number): Outcome {
  const job = got.job;
  if (!job) return { kind: 'waiting' };
  const evals = got.evaluations.filter((e) => e.id === evalId || u64(e.createIndex) >= registeredIndex);
  const anyPending = got.evaluations.some((e) => e.status === 'pending');
  // Until the registration's evaluation is visible it is as good as pending.
  const pending = evals.length === 0 || evals.some((e) => e.status === 'pending');
  const services = job.services ?? [];
  if (!pending) {
    const latest = newest(evals.filter((e) => e.status !== 'pending'));
    const failedPlacements = latest?.failedPlacements ?? [];
    if (failedPlacements.length > 0) return { kind: 'unplaced', lines: failedPlacements.map(formatFailedPlacement) };
    const unplaced = services.filter((s) => (s.unplaced ?? 0) > 0);
    if (unplaced.length > 0 && !anyPending) {
      return { kind: 'unplaced', lines: unplaced.map((s) => formatFailedPlacement({ service: s.name ?? '?', missing: s.unplaced ?? 0, reasons: {} })) };
    }
    const replaced = new Set(got.allocations.map((a) => a.previousAllocId).filter((id) => id));
    const failed = got.allocations.filter((a) => u64(a.jobVersion) === version && a.desiredStatus === 'run' && a.clientStatus === 'failed' && !replaced.has(a.id ?? ''));
    if (failed.length > 0 && !anyPending) return { kind: 'failed', lines: failed.map(describeFailedAlloc) };
    const desired = job.type === 'batch' ? 'complete' : 'running';
    if (services.every((s) => (desired === 'complete' ? s.complete ?? 0 : s.running ?? 0) === (s.desired ?? 0))) return { kind: 'done' };
  }
  return { kind: 'waiting' };
}

function newest(evals: Evaluation[]): Evaluation | undefined {
  return [...evals].sort((a, b) => u64(b.modifyIndex) - u64(a.modifyIndex) || u64(b.createIndex) - u64(a.createIndex))[0];
}

function describeFailedAlloc(a: Allocation): string {
  return `${a.service}[${a.slot ?? 0}]: allocation ${shortId(a.id)} on ${a.nodeName || shortId(a.nodeId) || '?'} failed${a.clientMessage ? `: ${a.clientMessage}` : ''}`;
}

/** Codes a read may fail with while the cluster changes leader or is busy: the wait goes on until its own deadline. */
const TRANSIENT = new Set(['ERR_NO_LEADER', 'ERR_NO_QUORUM', 'ERR_NOT_LEADER', 'ERR_RAFT_NOT_LEADER', 'ERR_PEER_UNREACHABLE', 'ERR_UNAVAILABLE', 'ERR_DEADLINE_EXCEEDED']);

/** `jobs.get` for a wait loop: a transient failure is retried (after a poll interval) until `deadline`. */
async function getForWait(client: ShoalClient, request: { name: string; minIndex: number }, deadline: number): Promise<shoal.v1.GetJobResponse> {
  for (;;) {
    try {
      return await client.jobs.get(request);
    } catch (err) {
      const code = (err as { code?: string }).code ?? '';
      if (!TRANSIENT.has(code) || Date.now() + POLL_INTERVAL_MS > deadline) throw err;
      await sleep(POLL_INTERVAL_MS);
    }
  }
}

async function waitForJob(client: ShoalClient, job: Job, registered: shoal.v1.RegisterJobResponse, waitMs: number): Promise<number> {
  const deadline = Date.now() + waitMs;
  const progress = new ProgressLines();
  let minIndex = u64(registered.index);
  let lastLines: string[] = [];
  for (;;) {
    const got = await getForWait(client, { name: registered.name || job.name, minIndex }, deadline);
    minIndex = Math.max(minIndex, u64(got.index));
    const type = got.job?.type || job.type;
    lastLines = (got.job?.services ?? []).map((s) => progressLine(type, s));
    progress.update((got.job?.services ?? []).map((s, i) => [s.name ?? String(i), lastLines[i]!]));
    const outcome = judgeRun(got, registered.evalId ?? '', u64(registered.index), u64(registered.version));
    if (outcome.kind === 'done') {
      const partitions = await waitForPartitions(client, registered.name || job.name, job, deadline, progress);
      process.stdout.write(`Job ${registered.name} version ${registered.version} is ${type === 'batch' ? 'complete' : 'running'}: ${[...lastLines, ...partitions].join('; ')}\n`);
      return 0;
    }
    if (outcome.kind === 'unplaced') {
      process.stderr.write(`Job ${registered.name} version ${registered.version} could not be fully placed:\n${outcome.lines.map((l) => `  ${l}\n`).join('')}`);
      return EXIT_PLACEMENT_FAILED;
    }
    if (outcome.kind === 'failed') {
      process.stderr.write(`Job ${registered.name} version ${registered.version} has failed allocations:\n${outcome.lines.map((l) => `  ${l}\n`).join('')}`);
      return EXIT_PLACEMENT_FAILED;
    }
    if (Date.now() + POLL_INTERVAL_MS > deadline) {
      throw new ShoalError('ERR_WAIT_TIMEOUT', `job ${registered.name} version ${registered.version} did not converge within ${waitMs / 1000} s (${lastLines.join('; ') || 'no services reported'}); the cluster keeps working on it: see \`shoal job status ${registered.name}\``);
    }
    await sleep(POLL_INTERVAL_MS);
  }
}

/**
 * A stateful service is up once every partition has a primary, which a quorum elected: waits for that, showing
 * `partitions N/N ready` per service. Returns the final lines (none for a job without stateful services).
 */
async function waitForPartitions(client: ShoalClient, name: string, job: Job, deadline: number, progress: ProgressLines): Promise<string[]> {
  const stateful = job.services.filter((s) => s.state !== undefined);
  if (stateful.length === 0) return [];
  for (;;) {
    const res = await client.partitions.list({ job: name });
    const lines = stateful.map((s) => {
      const parts = res.partitions.filter((p) => p.service === s.name);
      const ready = parts.filter((p) => p.state === 'ready' || p.state === 'degraded').length;
      const degraded = parts.filter((p) => p.state === 'degraded').length;
      return `${s.name}: partitions ${ready}/${s.state!.partitions} ready${degraded > 0 ? ` (${degraded} degraded: fewer replicas than ${s.state!.replicas})` : ''}`;
    });
    progress.update(stateful.map((s, i) => [`${s.name}/partitions`, lines[i]!]));
    const done = stateful.every((s) => res.partitions.filter((p) => p.service === s.name && (p.state === 'ready' || p.state === 'degraded')).length === s.state!.partitions);
    if (done) return lines;
    if (Date.now() + POLL_INTERVAL_MS > deadline) {
      throw new ShoalError('ERR_WAIT_TIMEOUT', `job ${name}: not every partition has a primary yet (${lines.join('; ')}); see \`shoal partition ls ${name}\``);
    }
    await sleep(POLL_INTERVAL_MS);
  }
}

async function waitForStop(client: ShoalClient, name: string, stopIndex: number, waitMs: number): Promise<void> {
  const deadline = Date.now() + waitMs;
  const progress = new ProgressLines();
  let minIndex = stopIndex;
  for (;;) {
    const got = await getForWait(client, { name, minIndex }, deadline);
    minIndex = Math.max(minIndex, u64(got.index));
    const live = got.allocations.filter((a) => a.desiredStatus === 'run' || a.clientStatus === 'running' || a.clientStatus === 'pending');
    if (live.length === 0) {
      process.stdout.write(`Job ${name} stopped\n`);
      return;
    }
    progress.update([['stop', `${name}: ${live.length} ${live.length === 1 ? 'allocation' : 'allocations'} still running`]]);
    if (Date.now() + POLL_INTERVAL_MS > deadline) {
      throw new ShoalError('ERR_WAIT_TIMEOUT', `job ${name}: ${live.length} allocations still running after ${waitMs / 1000} s; they keep stopping: see \`shoal job status ${name}\``);
    }
    await sleep(POLL_INTERVAL_MS);
  }
}

function printPlan(name: string, plan: shoal.v1.PlanJobResponse): void {
  const change = plan.jobChange === 'create'
    ? `Job ${name}: create`
    : plan.jobChange === 'update'
      ? `Job ${name}: update (current version ${plan.currentVersion})`
      : `Job ${name}: unchanged (version ${plan.currentVersion})`;
  process.stdout.write(`${change}\n`);
  for (const line of plan.diff) process.stdout.write(`  ${line}\n`);
  if (plan.services.length > 0) {
    process.stdout.write('\n');
    printTable(['SERVICE', 'PLACE', 'STOP', 'KEEP', 'STOP REASONS'], plan.services.map((s) => [
      s.name ?? '', String(s.place ?? 0), String(s.stop ?? 0), String(s.keep ?? 0), formatReasons(s.stopReasons) || '-',
    ]));
  }
  if (plan.failedPlacements.length > 0) {
    process.stdout.write('\nPlacement failures:\n');
    for (const p of plan.failedPlacements) process.stdout.write(`  ${formatFailedPlacement(p)}\n`);
  }
}

function printJobStatus(res: shoal.v1.GetJobResponse): void {
  const job = res.job;
  if (!job) throw new ShoalError('ERR_BAD_RESPONSE', 'Jobs/Get answered without a job');
  printFields([['Name', job.name ?? ''], ['Type', job.type ?? ''], ['Version', String(job.version ?? 0)], ['Status', job.status ?? ''], ['Stopped', job.stopped ? 'yes' : 'no']]);
  process.stdout.write('\nServices\n');
  printTable(['SERVICE', 'DRIVER', 'MODE', 'DESIRED', 'RUNNING', 'PENDING', 'FAILED', 'COMPLETE', 'LOST'], (job.services ?? []).map((s) => [
    s.name ?? '', s.driver ?? '', s.mode ?? '', String(s.desired ?? 0), String(s.running ?? 0), String(s.pending ?? 0),
    String(s.failed ?? 0), String(s.complete ?? 0), String(s.lost ?? 0),
  ]));
  process.stdout.write('\nAllocations\n');
  if (res.allocations.length === 0) process.stdout.write('No allocations\n');
  else {
    printTable(['ID', 'NODE', 'SERVICE', 'SLOT', 'VERSION', 'DESIRED', 'STATUS', 'RESTARTS', 'INDEX'], res.allocations.map((a) => [
      shortId(a.id), a.nodeName || shortId(a.nodeId) || '-', a.service ?? '', String(a.slot ?? 0), String(a.jobVersion ?? 0),
      a.desiredStatus ?? '', a.clientStatus ?? '', String(a.restarts ?? 0), String(a.modifyIndex ?? 0),
    ]));
  }
  if (res.portsTaken.length > 0) {
    process.stdout.write('\nIngress ports taken (another program holds them there: the routing mesh does not answer on those nodes)\n');
    for (const p of res.portsTaken) process.stdout.write(`  ${p.port} (${p.service}) on ${p.nodeName || shortId(p.nodeId)}\n`);
  }
  const latest = newest(res.evaluations.filter((e) => e.status !== 'pending'));
  const pending = res.evaluations.filter((e) => e.status === 'pending').length;
  if (pending > 0) process.stdout.write(`\n${pending} ${pending === 1 ? 'evaluation is' : 'evaluations are'} pending\n`);
  if (latest && (latest.failedPlacements ?? []).length > 0) {
    process.stdout.write(`\nPlacement failures (evaluation ${shortId(latest.id)})\n`);
    for (const p of latest.failedPlacements ?? []) process.stdout.write(`  ${formatFailedPlacement(p)}\n`);
  }
}
