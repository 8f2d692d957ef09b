/** `shoal operator raft`: the cluster's Raft group as the local agent sees it. */
import type { Command } from 'commander';
import { shoal } from '../../gen/proto.js';
import { clientFrom, parseOutput, printTable, type GlobalFlags, type OutputFlags } from '../output.js';

export function registerOperator(program: Command): void {
  const operator = program.command('operator').description('operator views of the control plane');
  operator
    .command('raft')
    .description('the servers (Raft voters and read replicas) that replicate the cluster state: term, leader, indexes, clients')
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
      const who = res.agentRole === 'client'
        ? `this agent is a client (no copy of the log); as server ${res.answeredBy} sees it (${res.role})`
        : `this agent is a server (${res.role})`;
      process.stdout.write(`term ${res.term}, leader ${res.leaderName || res.leaderId.slice(0, 8) || '(none)'}; ${who}; commit ${res.commitIndex}, applied ${res.appliedIndex}, last ${res.lastIndex}; ${res.clients} client${res.clients === 1 ? '' : 's'}${res.quiesced ? '; quiet (idle: no heartbeats, gossip watches the leader)' : ''}\n`);
      printTable(['NAME', 'ID', 'ROLE', 'MATCH'], res.peers.map((p) => [
        p.name || '?', (p.id ?? '').slice(0, 8), `${p.voter ? 'voter' : 'read replica'}${p.id === res.leaderId ? ' (leader)' : ''}`, res.role === 'leader' ? String(p.matchIndex) : '-',
      ]));
    });
}
