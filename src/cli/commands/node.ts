/**
 * `shoal node ls|drain|eligibility`: the nodes the scheduler places on, as the replicated state knows them.
 * A node is named by its name, its id or a unique id prefix; the agent resolves it.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Command } from 'commander';
import { shoal } from '../../gen/proto.js';
import { InvalidArgumentError, ShoalError } from '../../lib/errors.js';
import {
  ProgressLines, u64, clientFrom, formatCores, formatMiB, parseOutput, printMessageJson, printTable, shortId, type GlobalFlags, type OutputFlags,
} from '../output.js';
import { POLL_INTERVAL_MS } from './job.js';

interface DrainFlags {
  disable?: boolean;
  detach?: boolean;
  waitTimeout: string;
}

export function registerNode(program: Command): void {
  const node = program.command('node').description('list nodes, drain them, mark them (in)eligible for new work');

  node
    .command('ls')
    .description('list the cluster\'s nodes with their allocated and total resources')
    .option('-o, --output <format>', 'table or json', 'table')
    .action(async (flags: OutputFlags, command: Command) => {
      const output = parseOutput(flags.output);
      const globals = command.optsWithGlobals<GlobalFlags>();
      const res = await clientFrom(globals).nodes.list({ stale: globals.stale === true });
      if (output === 'json') return printMessageJson(shoal.v1.ListNodesResponse, res);
      if (res.nodes.length === 0) {
        process.stdout.write('No nodes\n');
        return;
      }
      const taken = res.nodes.some((n) => (n.portsTaken ?? []).length > 0);
      printTable(['NAME', 'ID', 'STATUS', 'ELIGIBLE', 'DRAIN', 'ALLOCS', 'CPU', 'MEMORY', 'ROLES', ...(taken ? ['PORTS TAKEN'] : [])], res.nodes.map((n) => [
        n.name ?? '', shortId(n.id), n.status ?? '', n.eligible ? 'yes' : 'no', n.draining ? 'yes' : 'no', String(n.allocations ?? 0),
        `${formatCores(n.allocatedCpuMillicores)}/${formatCores(n.cpuMillicores)}`,
        `${formatMiB(n.allocatedMemoryBytes)}/${formatMiB(n.memoryBytes)} MiB`,
        (n.roles ?? []).join(',') || '-',
        ...(taken ? [(n.portsTaken ?? []).join(',') || '-'] : []),
      ]));
    });

  node
    .command('drain')
    .description('stop placing work on a node and move its allocations elsewhere; waits until none is left there')
    .argument('<node>', 'node name, id or unique id prefix')
    .option('--disable', 'end a drain (the node still needs `node eligibility --enable` to take new work)')
    .option('--detach', 'return once the drain is recorded, without waiting')
    .option('--wait-timeout <seconds>', 'give up waiting after this long (the drain goes on)', '300')
    .action(async (name: string, flags: DrainFlags, command: Command) => {
      const seconds = Number(flags.waitTimeout);
      if (!Number.isFinite(seconds) || seconds <= 0) throw new InvalidArgumentError(`--wait-timeout must be a positive number of seconds, got "${flags.waitTimeout}"`);
      const client = clientFrom(command.optsWithGlobals<GlobalFlags>());
      const enable = flags.disable !== true;
      const res = await client.nodes.drain({ node: name, enable });
      process.stdout.write(`Node ${name} (${shortId(res.nodeId)}): drain ${enable ? 'enabled' : 'disabled'}\n`);
      if (!enable || flags.detach) return;
      const deadline = Date.now() + seconds * 1000;
      const progress = new ProgressLines();
      for (;;) {
        const allocs = await client.allocations.list({ node: res.nodeId || name, minIndex: u64(res.index) });
        const left = allocs.allocations.filter((a) => a.desiredStatus === 'run').length;
        if (left === 0) {
          process.stdout.write(`Node ${name}: drain complete, no allocations left\n`);
          return;
        }
        progress.update([['drain', `Node ${name}: ${left} ${left === 1 ? 'allocation' : 'allocations'} left`]]);
        if (Date.now() + POLL_INTERVAL_MS > deadline) {
          throw new ShoalError('ERR_WAIT_TIMEOUT', `node ${name} still has ${left} allocations after ${seconds} s; the drain goes on: see \`shoal alloc ls --node ${name}\``);
        }
        await sleep(POLL_INTERVAL_MS);
      }
    });

  node
    .command('eligibility')
    .description('allow (--enable) or stop (--disable) placing new work on a node; running work stays')
    .argument('<node>', 'node name, id or unique id prefix')
    .option('--enable', 'the node may receive new allocations')
    .option('--disable', 'the node receives no new allocations')
    .action(async (name: string, flags: { enable?: boolean; disable?: boolean }, command: Command) => {
      if (flags.enable === flags.disable) throw new InvalidArgumentError('node eligibility needs exactly one of --enable or --disable');
      const eligible = flags.enable === true;
      const res = await clientFrom(command.optsWithGlobals<GlobalFlags>()).nodes.eligibility({ node: name, eligible });
      process.stdout.write(`Node ${name} (${shortId(res.nodeId)}) is now ${eligible ? 'eligible' : 'ineligible'} for new allocations\n`);
    });
}
