/**
 * `shoal service ls|status`: the service catalog as the agent holds it: each service's endpoints (the tasks that
 * answer for it, with their nodes), its networks, its published ports, and where this agent listens for it.
 */
import type { Command } from 'commander';
import { shoal } from '../../gen/proto.js';
import { clientFrom, parseOutput, printMessageJson, printTable, shortId, type GlobalFlags, type OutputFlags } from '../output.js';

function ports(map: Record<string, number> | null | undefined): string {
  return Object.entries(map ?? {}).map(([t, p]) => (String(p) === t ? t : `${p}->${t}`)).join(',') || '-';
}

function ingress(info: shoal.v1.IServiceInfo): string {
  return (info.ingress ?? []).map((p) => `${p.published}->${p.target}/tcp`).join(',') || '-';
}

export function registerService(program: Command): void {
  const service = program.command('service').description('the service catalog: endpoints, networks and published ports');

  service
    .command('ls')
    .description('list services with their endpoint counts and published ports')
    .argument('[job]', 'only this job\'s services')
    .option('-o, --output <format>', 'table or json', 'table')
    .action(async (job: string | undefined, flags: OutputFlags, command: Command) => {
      const output = parseOutput(flags.output);
      const res = await clientFrom(command.optsWithGlobals<GlobalFlags>()).services.list({ job: job ?? '' });
      if (output === 'json') return printMessageJson(shoal.v1.ListServicesResponse, res);
      if (res.services.length === 0) {
        process.stdout.write(job ? `No services in job "${job}"\n` : 'No services\n');
        return;
      }
      printTable(['JOB', 'SERVICE', 'ENDPOINTS', 'PORTS', 'INGRESS', 'NETWORKS', 'MODE'], res.services.map((s) => [
        s.job ?? '', s.service ?? '', String(s.endpoints?.length ?? 0), (s.targetPorts ?? []).join(',') || '-', ingress(s),
        (s.networks ?? []).map((n) => n.network).join(',') || '-', s.endpointMode ?? '',
      ]));
    });

  service
    .command('status')
    .description('one service: its endpoints with their nodes, its networks and aliases, and this agent\'s listeners')
    .argument('<job>')
    .argument('<service>')
    .option('-o, --output <format>', 'table or json', 'table')
    .action(async (job: string, name: string, flags: OutputFlags, command: Command) => {
      const output = parseOutput(flags.output);
      const res = await clientFrom(command.optsWithGlobals<GlobalFlags>()).services.get({ job, service: name });
      if (output === 'json') return printMessageJson(shoal.v1.GetServiceResponse, res);
      const s = res.service!;
      const out = process.stdout;
      out.write(`Service      ${s.job}/${s.service}\n`);
      out.write(`Mode         ${s.endpointMode}\n`);
      out.write(`Ports        ${(s.targetPorts ?? []).join(', ') || '-'}\n`);
      out.write(`Ingress      ${ingress(s)}\n`);
      out.write(`Networks     ${(s.networks ?? []).map((n) => (n.aliases?.length ? `${n.network} (aliases ${n.aliases.join(', ')})` : n.network)).join('; ') || '-'}\n`);
      out.write(`Health       ${s.healthChecked ? 'checked: every endpoint below passes its health check' : 'no health check: every running task is an endpoint'}\n`);
      out.write(`\nEndpoints (${s.endpoints?.length ?? 0})\n`);
      if ((s.endpoints?.length ?? 0) === 0) out.write('  none: no task of this service runs and passes its checks\n');
      else {
        printTable(['ALLOC', 'NODE', 'PORTS', 'HEALTH'], (s.endpoints ?? []).map((e) => [
          shortId(e.allocId), e.nodeName || shortId(e.nodeId), ports(e.ports as Record<string, number>), s.healthChecked ? 'healthy' : 'running',
        ]));
      }
      const listeners = s.listeners ?? [];
      out.write(`\nListeners on this agent (${listeners.length})\n`);
      if (listeners.length === 0) out.write('  none: no task here reaches this service, and it publishes no port\n');
      else {
        printTable(['KIND', 'ADDRESS', 'TARGET', 'CONNECTIONS', 'PROBLEM'], listeners.map((l) => [
          l.kind ?? '', l.address ?? '', String(l.targetPort ?? ''), String(l.connections ?? 0), l.error || '-',
        ]));
      }
    });
}
