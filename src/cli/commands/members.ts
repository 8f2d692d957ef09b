/** `shoal members`: the cluster's membership as the local agent's gossip sees it. */
import type { Command } from 'commander';
import { shoal } from '../../gen/proto.js';
import { clientFrom, printTable, type OutputFlags, type GlobalFlags, parseOutput } from '../output.js';

const STATUS_NAMES: Record<number, string> = {
  [shoal.v1.MemberStatus.MEMBER_STATUS_ALIVE]: 'alive',
  [shoal.v1.MemberStatus.MEMBER_STATUS_SUSPECT]: 'suspect',
  [shoal.v1.MemberStatus.MEMBER_STATUS_DEAD]: 'dead',
  [shoal.v1.MemberStatus.MEMBER_STATUS_LEFT]: 'left',
};

export function registerMembers(program: Command): void {
  program
    .command('members')
    .description('list the cluster\'s members as this agent sees them')
    .option('-o, --output <format>', 'table or json', 'table')
    .action(async (flags: OutputFlags, command: Command) => {
      const output = parseOutput(flags.output);
      const client = clientFrom(command.optsWithGlobals<GlobalFlags>());
      const res = await client.members.list();
      if (output === 'json') {
        const members = res.members.map((m) => shoal.v1.Member.toObject(m as shoal.v1.Member, { enums: String, longs: Number, defaults: true, arrays: true, objects: true }));
        process.stdout.write(`${JSON.stringify(members, null, 2)}\n`);
        return;
      }
      printTable(['NAME', 'ID', 'ADDRESS', 'STATUS', 'ROLES', 'LABELS'], res.members.map((m) => [
        m.name ?? '',
        (m.id ?? '').slice(0, 8),
        m.address ?? '',
        STATUS_NAMES[m.status ?? 0] ?? String(m.status),
        (m.metadata?.roles ?? []).join(',') || '-',
        // Reserved "shoal." labels are Shoal's own bookkeeping (e.g. the bootstrap proposal); `-o json` shows them.
        Object.entries(m.metadata?.labels ?? {}).filter(([k]) => !k.startsWith('shoal.')).map(([k, v]) => `${k}=${v}`).join(',') || '-',
      ]));
    });
}
