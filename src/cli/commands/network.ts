/**
 * `shoal network create|ls|rm`: networks shared between jobs. A job joins one with
 * `networks: { NAME: { external: true } }`; its services then reach the services of other jobs on it, by alias.
 */
import type { Command } from 'commander';
import { shoal } from '../../gen/proto.js';
import { clientFrom, parseOutput, printMessageJson, printTable, type GlobalFlags, type OutputFlags } from '../output.js';

export function registerNetwork(program: Command): void {
  const network = program.command('network').description('networks shared between jobs (Compose `external: true`)');

  network
    .command('create')
    .description('create a network that jobs can join with `external: true`')
    .argument('<name>', 'lower-case letters, digits, "-" or "_"')
    .option('--internal', 'no route out of the cluster for the tasks on it')
    .action(async (name: string, flags: { internal?: boolean }, command: Command) => {
      const res = await clientFrom(command.optsWithGlobals<GlobalFlags>()).networks.create({ name, internal: flags.internal === true });
      process.stdout.write(`Network ${name} created (index ${res.index})\n`);
    });

  network
    .command('ls')
    .description('list the shared networks and the jobs on each')
    .option('-o, --output <format>', 'table or json', 'table')
    .action(async (flags: OutputFlags, command: Command) => {
      const output = parseOutput(flags.output);
      const globals = command.optsWithGlobals<GlobalFlags>();
      const res = await clientFrom(globals).networks.list({ stale: globals.stale === true });
      if (output === 'json') return printMessageJson(shoal.v1.ListNetworksResponse, res);
      if (res.networks.length === 0) {
        process.stdout.write('No shared networks (create one with `shoal network create NAME`)\n');
        return;
      }
      printTable(['NAME', 'INTERNAL', 'JOBS'], res.networks.map((n) => [n.name ?? '', n.internal ? 'yes' : 'no', (n.jobs ?? []).join(',') || '-']));
    });

  network
    .command('rm')
    .description('remove a shared network; refused while a job that is not stopped uses it')
    .argument('<name>')
    .action(async (name: string, _flags: unknown, command: Command) => {
      const res = await clientFrom(command.optsWithGlobals<GlobalFlags>()).networks.delete({ name });
      process.stdout.write(`Network ${name} removed (index ${res.index})\n`);
    });
}
