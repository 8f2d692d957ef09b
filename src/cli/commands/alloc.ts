/**
 * `shoal alloc ls|status|logs`: the allocations the scheduler placed (one replica of a service on one node).
 * Ids print as 8 characters; every command takes any unique prefix back (the agent resolves it and says when a
 * prefix is ambiguous or unknown).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Command } from 'commander';
import { shoal } from '../../gen/proto.js';
import { InvalidArgumentError } from '../../lib/errors.js';
import { LIMITS } from '../../lib/limits.js';
import type { ShoalClient } from '../../rpc/index.js';
import {
  u64, clientFrom, formatCores, formatMiB, parseOutput, printFields, printMessageJson, printTable, shortId, type GlobalFlags, type OutputFlags,
} from '../output.js';

/** Bytes per stream asked for in one Logs call. */
const LOG_WINDOW_BYTES = 64 * 1024;
/** How long one Logs call in --follow waits on the agent for new output. */
const LOG_FOLLOW_WAIT_MS = 2_000;
/** Pause between --follow calls that brought nothing. */
const FOLLOW_IDLE_PAUSE_MS = 200;

interface LsFlags extends OutputFlags {
  job?: string;
  node?: string;
  all?: boolean;
}

interface LogsFlags {
  follow?: boolean;
  stderr?: boolean;
  tail?: string;
}

export function registerAlloc(program: Command): void {
  const alloc = program.command('alloc').description('list and inspect allocations, read their logs');

  alloc
    .command('ls')
    .description('list allocations (running or pending unless --all)')
    .option('--job <name>', 'only this job\'s allocations')
    .option('--node <node>', 'only allocations on this node (name, id or unique id prefix)')
    .option('--all', 'include stopped and finished allocations')
    .option('-o, --output <format>', 'table or json', 'table')
    .action(async (flags: LsFlags, command: Command) => {
      const output = parseOutput(flags.output);
      const globals = command.optsWithGlobals<GlobalFlags>();
      const res = await clientFrom(globals).allocations.list({
        stale: globals.stale === true,
        ...(flags.job === undefined ? {} : { job: flags.job }),
        ...(flags.node === undefined ? {} : { node: flags.node }),
        all: flags.all === true,
      });
      if (output === 'json') return printMessageJson(shoal.v1.ListAllocationsResponse, res);
      if (res.allocations.length === 0) {
        process.stdout.write('No allocations\n');
        return;
      }
      printTable(['ID', 'NODE', 'JOB', 'SERVICE', 'SLOT', 'DESIRED', 'STATUS', 'RESTARTS', 'MESSAGE'], res.allocations.map((a) => [
        shortId(a.id), a.nodeName || shortId(a.nodeId) || '-', a.jobName ?? '', a.service ?? '', String(a.slot ?? 0),
        a.desiredStatus ?? '', a.clientStatus ?? '', String(a.restarts ?? 0), oneLine(a.clientMessage ?? '') || '-',
      ]));
    });

  alloc
    .command('status')
    .description('show one allocation')
    .argument('<id>', 'allocation id or unique prefix')
    .option('-o, --output <format>', 'table or json', 'table')
    .action(async (id: string, flags: OutputFlags, command: Command) => {
      const output = parseOutput(flags.output);
      const globals = command.optsWithGlobals<GlobalFlags>();
      const res = await clientFrom(globals).allocations.get({ id, stale: globals.stale === true });
      if (output === 'json') return printMessageJson(shoal.v1.GetAllocationResponse, res);
      const a = res.allocation;
      if (!a) throw new InvalidArgumentError(`the agent returned no allocation for "${id}"`);
      printFields([
        ['ID', a.id ?? ''],
        ['Job', `${a.jobName} (version ${a.jobVersion ?? 0})`],
        ['Service', `${a.service} (slot ${a.slot ?? 0}${a.stateful ? `, a replica of partition ${a.partition ?? 0}` : ''})`],
        ['Node', `${a.nodeName || '?'} (${shortId(a.nodeId)})`],
        ['Desired', `${a.desiredStatus}${a.desiredReason ? ` (${a.desiredReason})` : ''}`],
        ['Status', `${a.clientStatus}${a.clientMessage ? `: ${a.clientMessage}` : ''}`],
        ['Restarts', String(a.restarts ?? 0)],
        ['Health', a.health || '-'],
        ['Ports', Object.entries(a.taskPorts ?? {}).map(([t, p]) => `${t} -> ${p}`).join(', ') || '-'],
        ['Host ports', (a.hostPorts ?? []).join(', ') || '-'],
        ['Resources', `${formatCores(a.cpuMillicores)} CPU, ${formatMiB(a.memoryBytes)} MiB`],
        ['Replaces', a.previousAllocId ? shortId(a.previousAllocId) : '-'],
        ['Index', `created ${a.createIndex ?? 0}, modified ${a.modifyIndex ?? 0}`],
      ]);
    });

  alloc
    .command('logs')
    .description('print an allocation\'s output (stdout, and stderr to stderr)')
    .argument('<id>', 'allocation id or unique prefix')
    .option('-f, --follow', 'keep printing new output until the task exits (or Ctrl-C)')
    .option('--stderr', 'print only the task\'s stderr')
    .option('--tail <lines>', 'print only the last N lines of what is there so far')
    .action(async (id: string, flags: LogsFlags, command: Command) => {
      const tail = flags.tail === undefined ? undefined : parseTail(flags.tail);
      const client = clientFrom(command.optsWithGlobals<GlobalFlags>());
      await streamLogs(client, id, { follow: flags.follow === true, stderrOnly: flags.stderr === true, tail });
    });
}

function oneLine(text: string): string {
  const line = text.replace(/\s+/g, ' ').trim();
  return line.length > 60 ? `${line.slice(0, 57)}...` : line;
}

function parseTail(text: string): number {
  const n = /^\d+$/.test(text.trim()) ? Number(text.trim()) : NaN;
  if (!Number.isInteger(n) || n > LIMITS.driverMaxLogTailLines) throw new InvalidArgumentError(`--tail must be a whole number from 0 to ${LIMITS.driverMaxLogTailLines}, got "${text}"`);
  return n;
}

/** The last `n` lines of `buf` (a final line without a newline counts as a line). */
export function lastLines(buf: Buffer, n: number): Buffer {
  if (n === 0) return Buffer.alloc(0);
  let end = buf.length;
  if (end > 0 && buf[end - 1] === 0x0a) end--;
  let seen = 0;
  for (let i = end - 1; i >= 0; i--) {
    if (buf[i] === 0x0a && ++seen === n) return buf.subarray(i + 1);
  }
  return buf;
}

interface LogOptions {
  follow: boolean;
  stderrOnly: boolean;
  tail: number | undefined;
}

/**
 * Reads windows of output until there is no more (or, with follow, until the task has finished and everything is
 * read, or Ctrl-C). Offsets come from the agent's answers, so a window is never printed twice; an answer that did
 * not move an offset past the bytes it carried still advances it by them, so the loop always makes progress.
 */
async function streamLogs(client: ShoalClient, id: string, options: LogOptions): Promise<void> {
  const cancel = new AbortController();
  const onSigint = (): void => cancel.abort();
  process.once('SIGINT', onSigint);
  let stdoutOffset = 0;
  let stderrOffset = 0;
  // --tail: gather everything there is first, keeping only the last lines, then print (and follow from there).
  let tailing = options.tail !== undefined;
  let tailOut: Buffer = Buffer.alloc(0);
  let tailErr: Buffer = Buffer.alloc(0);
  try {
    for (;;) {
      const waitMs = options.follow && !tailing ? LOG_FOLLOW_WAIT_MS : 0;
      let res: shoal.v1.AllocationLogsResponse;
      try {
        res = await client.allocations.logs(
          { id, stdoutOffset, stderrOffset, maxBytes: LOG_WINDOW_BYTES, waitMs },
          { signal: cancel.signal, ...(waitMs > 0 ? { timeoutMs: LIMITS.defaultRpcTimeoutMs + waitMs } : {}) },
        );
      } catch (err) {
        // Ctrl-C may land while the call is in flight (an ERR_CANCELLED) or while its body is read (an AbortError).
        if (cancel.signal.aborted) return;
        throw err;
      }
      const out = Buffer.from(res.stdout ?? []);
      const err = Buffer.from(res.stderr ?? []);
      stdoutOffset = Math.max(u64(res.stdoutOffset), stdoutOffset + out.length);
      stderrOffset = Math.max(u64(res.stderrOffset), stderrOffset + err.length);
      const fresh = out.length > 0 || err.length > 0;
      if (tailing) {
        tailOut = lastLines(Buffer.concat([tailOut, out]), options.tail!);
        tailErr = lastLines(Buffer.concat([tailErr, err]), options.tail!);
        if (fresh) continue;
        tailing = false;
        await write(options.stderrOnly ? Buffer.alloc(0) : tailOut, tailErr);
        if (!options.follow || res.finished) return;
        continue;
      }
      await write(options.stderrOnly ? Buffer.alloc(0) : out, err);
      if (!fresh && (!options.follow || res.finished)) return;
      if (cancel.signal.aborted) return;
      // An agent that answers at once despite wait_ms must not turn --follow into a busy loop.
      if (!fresh) await sleep(FOLLOW_IDLE_PAUSE_MS, undefined, { signal: cancel.signal }).catch((e: unknown) => {
        if (!cancel.signal.aborted) throw e; // only Ctrl-C ends the pause early
      });
    }
  } finally {
    process.off('SIGINT', onSigint);
  }
}

async function write(out: Buffer, err: Buffer): Promise<void> {
  const put = (stream: NodeJS.WriteStream, bytes: Buffer): Promise<void> => new Promise((resolve) => {
    if (bytes.length === 0 || stream.write(bytes)) resolve();
    else stream.once('drain', () => resolve());
  });
  await put(process.stdout, out);
  await put(process.stderr, err);
}
