/** `shoal operator raft`: the cluster's Raft group as the local agent sees it. */
import type { Command } from 'commander';
import { shoal } from '../../gen/proto.js';
import { clientFrom, parseOutput, printTable, type GlobalFlags, type OutputFlags } from '../output.js';

export function registerOperator(program: Command): void {
  const operator = program.command('operator').description('operator views of the control plane');
  operator
    .command('raft')
    .description('the Raft group that replicates the cluster state: term, leader, voters, learners, indexes')
    .option('-o, --output <format>', 'table or json', 'table')
    .action(async (flags: OutputFlags, command: Command) => {
      const output = parseOutput(flags.output);
      const res = await clientFrom(command.optsWithGlobals<GlobalFlags>()).operator.raftState();
      if (output === 'json') {
        process.stdout.write(`${JSON.stringify(shoal.v1.RaftStateResponse.toObject(res, { longs: Number, defaults: true, arrays: true }), null, 2)}\n`);
        return;
      }
      if (!res.member) {
        process.stdout.write(`this agent is not in the cluster's Raft group: ${res.waiting}\n`);
        return;
      }
      process.stdout.write(`term ${res.term}, leader ${res.leaderName || res.leaderId.slice(0, 8) || '(none)'}, this agent is ${res.role}; commit ${res.commitIndex}, applied ${res.appliedIndex}, last ${res.lastIndex}\n`);
      printTable(['NAME', 'ID', 'ROLE', 'MATCH'], res.peers.map((p) => [
        p.name || '?', (p.id ?? '').slice(0, 8), `${p.voter ? 'voter' : 'learner'}${p.id === res.leaderId ? ' (leader)' : ''}`, res.role === 'leader' ? String(p.matchIndex) : '-',
      ]));
    });
}
