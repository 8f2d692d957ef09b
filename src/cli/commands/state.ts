/**
 * `shoal state get|put|rm|scan JOB SERVICE KEY [VALUE]`: a stateful service's dictionaries, through any agent (it
 * routes each call to the primary of the key's partition). `shoal partition ls [JOB [SERVICE]]`: where each
 * partition's replicas are and how far behind each is.
 *
 * Exit codes: 0 done; 1 the key does not exist (`get`, and `rm` of a missing key); 2 a condition failed (`put
 * --if-version`/`--if-absent`, `rm --if-version`); anything else is an error with its message.
 */
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { shoal } from '../../gen/proto.js';
import { InvalidArgumentError } from '../../lib/errors.js';
import { clientFrom, parseOutput, printMessageJson, printTable, u64, type GlobalFlags } from '../output.js';

export const EXIT_NOT_FOUND = 1;
export const EXIT_CONDITION_FAILED = 2;

interface StateFlags {
  collection: string;
  output: string;
  partitionKey?: string;
  partitionKind?: string;
  consistency?: string;
}

const DEFAULT_COLLECTION = 'default';

function target(job: string, service: string, flags: StateFlags): shoal.v1.IStateRequest {
  return {
    job, service, collection: flags.collection,
    ...(flags.partitionKey === undefined ? {} : { partitionKey: flags.partitionKey }),
    ...(flags.partitionKind === undefined ? {} : { partitionKind: flags.partitionKind }),
    ...(flags.consistency === undefined ? {} : { consistency: flags.consistency }),
  };
}

function common(cmd: Command): Command {
  return cmd
    .option('-c, --collection <name>', 'the dictionary', DEFAULT_COLLECTION)
    .option('--partition-key <key>', 'route by this key instead of the entry\'s key')
    .option('--partition-kind <kind>', 'key (default), int64, named or singleton')
    .option('-o, --output <format>', 'table or json', 'table');
}

function readValue(value: string | undefined, file: string | undefined): Uint8Array {
  if (file !== undefined && value !== undefined) throw new InvalidArgumentError('give the value as an argument or with --file, not both');
  if (file !== undefined) return readFileSync(file === '-' ? 0 : file);
  if (value === undefined) throw new InvalidArgumentError('put needs a VALUE argument, or --file FILE (- for standard input)');
  return new TextEncoder().encode(value);
}

function whole(text: string | undefined, flag: string): number | undefined {
  if (text === undefined) return undefined;
  if (!/^[1-9][0-9]*$/.test(text)) throw new InvalidArgumentError(`${flag} must be a positive whole number, got "${text}"`);
  return Number(text);
}

/** A failed condition is an answer, not an error: exit 2 with the key's version now. */
function conditionFailed(err: unknown): boolean {
  const code = (err as { code?: string }).code;
  if (code !== 'ERR_CONDITION_FAILED') return false;
  process.stderr.write(`${(err as Error).message}\n`);
  process.exitCode = EXIT_CONDITION_FAILED;
  return true;
}

export function registerState(program: Command): void {
  const state = program.command('state').description('read and write the dictionaries of stateful services (x-shoal.state)');

  common(state.command('get').description('print a key\'s value (exit 1 when it does not exist)'))
    .argument('<job>').argument('<service>').argument('<key>')
    .option('--consistency <level>', 'linearizable (default) or local (any replica, possibly behind)')
    .action(async (job: string, service: string, key: string, flags: StateFlags, command: Command) => {
      const output = parseOutput(flags.output);
      const res = await clientFrom(command.optsWithGlobals<GlobalFlags>()).state.get({ ...target(job, service, flags), key });
      if (output === 'json') printMessageJson(shoal.v1.StateGetResponse, res);
      else if (res.found) {
        process.stdout.write(Buffer.from(res.value));
        if (process.stdout.isTTY && res.value.length > 0 && res.value[res.value.length - 1] !== 0x0a) process.stdout.write('\n');
      } else process.stderr.write(`key "${key}" not found in ${flags.collection} (partition ${res.partition}, index ${u64(res.index)})\n`);
      if (!res.found) process.exitCode = EXIT_NOT_FOUND;
    });

  common(state.command('put').description('write a key (its version is the write\'s log index)'))
    .argument('<job>').argument('<service>').argument('<key>').argument('[value]')
    .option('-f, --file <file>', 'read the value from a file (- for standard input)')
    .option('--if-version <n>', 'write only if the key is at this version')
    .option('--if-absent', 'write only if the key does not exist')
    .action(async (job: string, service: string, key: string, value: string | undefined, flags: StateFlags & { file?: string; ifVersion?: string; ifAbsent?: boolean }, command: Command) => {
      const output = parseOutput(flags.output);
      const ifVersion = whole(flags.ifVersion, '--if-version');
      const req = { ...target(job, service, flags), key, value: readValue(value, flags.file), ...(ifVersion ? { ifVersion } : {}), ...(flags.ifAbsent ? { ifAbsent: true } : {}) };
      try {
        const res = await clientFrom(command.optsWithGlobals<GlobalFlags>()).state.put(req);
        if (output === 'json') printMessageJson(shoal.v1.StateWriteResponse, res);
        else process.stdout.write(`${key} = version ${u64(res.version)} (partition ${res.partition}${u64(res.previousVersion) > 0 ? `, replaced version ${u64(res.previousVersion)}` : ', new'})\n`);
      } catch (err) {
        if (!conditionFailed(err)) throw err;
      }
    });

  common(state.command('rm').description('delete a key (exit 1 when it did not exist)'))
    .argument('<job>').argument('<service>').argument('<key>')
    .option('--if-version <n>', 'delete only if the key is at this version')
    .action(async (job: string, service: string, key: string, flags: StateFlags & { ifVersion?: string }, command: Command) => {
      const output = parseOutput(flags.output);
      const ifVersion = whole(flags.ifVersion, '--if-version');
      try {
        const res = await clientFrom(command.optsWithGlobals<GlobalFlags>()).state.delete({ ...target(job, service, flags), key, ...(ifVersion ? { ifVersion } : {}) });
        if (output === 'json') printMessageJson(shoal.v1.StateWriteResponse, res);
        else process.stdout.write(res.deleted ? `${key} deleted (was version ${u64(res.previousVersion)})\n` : `${key} did not exist\n`);
        if (!res.deleted) process.exitCode = EXIT_NOT_FOUND;
      } catch (err) {
        if (!conditionFailed(err)) throw err;
      }
    });

  common(state.command('scan').description('list keys from START (every partition, in turn, when no key routes the scan)'))
    .argument('<job>').argument('<service>').argument('[start]', 'first key (inclusive)')
    .option('--end <key>', 'last key (exclusive)')
    .option('--limit <n>', 'entries at most', '100')
    .option('--consistency <level>', 'linearizable (default) or local')
    .action(async (job: string, service: string, start: string | undefined, flags: StateFlags & { end?: string; limit: string }, command: Command) => {
      const output = parseOutput(flags.output);
      const limit = whole(flags.limit, '--limit')!;
      const client = clientFrom(command.optsWithGlobals<GlobalFlags>());
      const base = { ...target(job, service, flags), ...(start ? { start } : {}), ...(flags.end ? { end: flags.end } : {}) };
      // A key range lives in one partition only when a key routes it; otherwise every partition is scanned in turn.
      const routes: shoal.v1.IStateScanRequest[] = [];
      if (flags.partitionKey !== undefined || flags.partitionKind !== undefined) routes.push(base);
      else {
        const parts = (await client.partitions.list({ job, service })).partitions;
        if (parts.length === 0) throw new InvalidArgumentError(`job "${job}" service "${service}" has no partitions`);
        for (const p of parts) routes.push({ ...base, ...routeOf(p) });
      }
      const entries: { key: string; value: Uint8Array; version: number; partition: number }[] = [];
      for (const r of routes) {
        let next: string | undefined = r.start ?? undefined;
        while (entries.length < limit) {
          const res = await client.state.scan({ ...r, ...(next ? { start: next } : {}), limit: Math.min(1_000, limit - entries.length) });
          for (const e of res.entries) entries.push({ key: e.key ?? '', value: e.value ?? new Uint8Array(0), version: u64(e.version), partition: res.partition });
          if (!res.continuation) break;
          next = res.continuation;
        }
        if (entries.length >= limit) break;
      }
      if (output === 'json') {
        process.stdout.write(`${JSON.stringify({ entries: entries.map((e) => ({ ...e, value: Buffer.from(e.value).toString('base64') })) }, null, 2)}\n`);
        return;
      }
      if (entries.length === 0) {
        process.stdout.write('No keys\n');
        return;
      }
      printTable(['KEY', 'VERSION', 'PARTITION', 'VALUE'], entries.map((e) => [e.key, String(e.version), String(e.partition), preview(e.value)]));
    });

  const partition = program.command('partition').description('the partitions of stateful services');
  registerPartitionTransfer(partition);
  partition.command('ls').description('list partitions: key range, primary, secondaries with their lag, size and state')
    .argument('[job]').argument('[service]')
    .option('-o, --output <format>', 'table or json', 'table')
    .action(async (job: string | undefined, service: string | undefined, flags: { output: string }, command: Command) => {
      const output = parseOutput(flags.output);
      const res = await clientFrom(command.optsWithGlobals<GlobalFlags>()).partitions.list({ ...(job ? { job } : {}), ...(service ? { service } : {}) });
      if (output === 'json') return printMessageJson(shoal.v1.ListPartitionsResponse, res);
      if (res.partitions.length === 0) {
        process.stdout.write('No stateful services\n');
        return;
      }
      printTable(['JOB', 'SERVICE', 'PARTITION', 'RANGE', 'PRIMARY', 'SECONDARIES (LAG)', 'SIZE', 'STATE'], res.partitions.map((p) => {
        const primary = (p.members ?? []).find((m) => m.role === 'primary');
        const others = (p.members ?? []).filter((m) => m.role !== 'primary').map((m) => `${m.nodeName}${m.role === 'secondary' ? '' : `[${m.role}]`}(${m.reachable ? u64(m.lag) : '?'})`);
        return [p.job ?? '', p.service ?? '', String(p.partition ?? 0), p.range || '-', primary?.nodeName ?? '-', others.join(' ') || '-', `${Math.ceil(u64(p.sizeBytes) / 1024)} KiB`, p.state ?? ''];
      }));
    });
}

/** `shoal partition transfer JOB SERVICE N --to NODE`: hands partition N's primary role to NODE (one of its voters). */
export function registerPartitionTransfer(partition: Command): void {
  partition.command('transfer').description('make NODE the primary of partition N (NODE must hold one of its replicas)')
    .argument('<job>').argument('<service>').argument('<partition>', 'the partition number, from 0')
    .requiredOption('--to <node>', 'the node to lead it: a name, or an id (a unique prefix is enough)')
    .action(async (job: string, service: string, n: string, flags: { to: string }, command: Command) => {
      if (!/^(0|[1-9][0-9]*)$/.test(n)) throw new InvalidArgumentError(`the partition must be a number from 0, got "${n}"`);
      const res = await clientFrom(command.optsWithGlobals<GlobalFlags>()).partitions.transfer({ job, service, partition: Number(n), to: flags.to });
      process.stdout.write(`partition ${n} of ${job}/${service}: primary is now ${res.primaryNodeName || (res.primaryNodeId ?? '').slice(0, 12)}\n`);
    });
}

/** The routing of a scan to one partition, from its description in `partition ls`. */
function routeOf(p: shoal.v1.IPartitionInfo): shoal.v1.IStateScanRequest {
  const range = p.range ?? '';
  const m = /^\[(-?\d+), -?\d+\]$/.exec(range);
  if (m) return { partitionKind: 'int64', partitionKey: m[1]! };
  if (range !== '') return { partitionKind: 'named', partitionKey: range };
  return { partitionKind: 'singleton' };
}

function preview(value: Uint8Array): string {
  const text = Buffer.from(value).toString('utf8');
  const printable = /^[\x20-\x7e]*$/.test(text);
  const shown = printable ? text : `base64:${Buffer.from(value).toString('base64')}`;
  return shown.length > 60 ? `${shown.slice(0, 57)}...` : shown;
}
