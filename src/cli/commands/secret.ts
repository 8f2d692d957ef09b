/**
 * `shoal secret create|ls|rm` and `shoal config create|ls|rm|status`: secrets and configs a job names with
 * `external: true` (a job's file may also provide its own, registered by `shoal job run`). A secret is sealed by the
 * agent before it is written and never shown again; `config status` shows a config's contents. Neither ever
 * changes: a new value takes a new name, and pointing a service at it rolls the service.
 */
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { shoal } from '../../gen/proto.js';
import { InvalidArgumentError } from '../../lib/errors.js';
import { LIMITS } from '../../lib/limits.js';
import { checkSecretTransport, clientFrom, parseOutput, printFields, printMessageJson, printTable, u64, type GlobalFlags, type OutputFlags } from '../output.js';

type Kind = 'secret' | 'config';

export function registerSecret(program: Command): void {
  registerKind(program, 'secret', 'secrets, encrypted in the cluster and delivered only to the tasks that use them');
  const config = registerKind(program, 'config', 'configs: files delivered to the tasks that use them');
  config
    .command('status')
    .description('show a config and its contents')
    .argument('<name>')
    .option('-o, --output <format>', 'table or json', 'table')
    .action(async (name: string, flags: OutputFlags, command: Command) => {
      const output = parseOutput(flags.output);
      const globals = command.optsWithGlobals<GlobalFlags>();
      const res = await clientFrom(globals).configs.get({ name, stale: globals.stale === true });
      if (output === 'json') return printMessageJson(shoal.v1.GetConfigResponse, res);
      const c = res.config ?? {};
      printFields([
        ['Name', c.name ?? ''], ['Digest', `sha256:${c.digest ?? ''}`], ['Size', `${u64(c.sizeBytes)} bytes`], ['Job', c.job || '-'],
        ['Used by', (c.usedBy ?? []).join(', ') || '-'], ['Created', `index ${u64(c.createIndex)}`],
      ]);
      process.stdout.write('\n');
      process.stdout.write(Buffer.from(res.data));
      if (res.data.length > 0 && res.data[res.data.length - 1] !== 0x0a) process.stdout.write('\n');
    });
}

function registerKind(program: Command, kind: Kind, description: string): Command {
  const group = program.command(kind).description(description);
  const api = (command: Command) => {
    const client = clientFrom(command.optsWithGlobals<GlobalFlags>());
    return kind === 'secret' ? client.secrets : client.configs;
  };

  group
    .command('create')
    .description(`create a ${kind} from a file, or from standard input with "-"`)
    .argument('<name>', 'letters, digits, "_", "." or "-", starting with a letter or digit (64 at most)')
    .argument('<file>', 'the file to read, or "-" for standard input')
    .action(async (name: string, file: string, _flags: unknown, command: Command) => {
      const data = readSource(file, kind);
      const client = clientFrom(command.optsWithGlobals<GlobalFlags>());
      if (kind === 'secret') checkSecretTransport(client, `secret create ${name}`);
      const res = await (kind === 'secret' ? client.secrets : client.configs).create({ name, data });
      const digest = res.digest.slice(0, 12);
      process.stdout.write(res.created ? `${title(kind)} ${name} created (digest ${digest}, index ${u64(res.index)})\n` : `${title(kind)} ${name} unchanged (digest ${digest})\n`);
    });

  group
    .command('ls')
    .description(`list the ${kind}s and the jobs that use each${kind === 'secret' ? ' (never their values)' : ''}`)
    .option('-o, --output <format>', 'table or json', 'table')
    .action(async (flags: OutputFlags, command: Command) => {
      const output = parseOutput(flags.output);
      const globals = command.optsWithGlobals<GlobalFlags>();
      const res = await api(command).list({ stale: globals.stale === true });
      if (output === 'json') return printMessageJson(shoal.v1.ListObjectsResponse, res);
      if (res.objects.length === 0) {
        process.stdout.write(`No ${kind}s (create one with \`shoal ${kind} create NAME FILE\`)\n`);
        return;
      }
      printTable(['NAME', 'DIGEST', 'SIZE', 'JOB', 'USED BY', 'CREATED'], res.objects.map((o) => [
        o.name ?? '', (o.digest ?? '').slice(0, 12), `${u64(o.sizeBytes)} B`, o.job || '-', (o.usedBy ?? []).join(',') || '-', `index ${u64(o.createIndex)}`,
      ]));
    });

  group
    .command('rm')
    .description(`remove a ${kind}; refused while a job that is not stopped uses it`)
    .argument('<name>')
    .action(async (name: string, _flags: unknown, command: Command) => {
      const res = await api(command).delete({ name });
      process.stdout.write(`${title(kind)} ${name} removed (index ${u64(res.index)})\n`);
    });
  return group;
}

function readSource(file: string, kind: Kind): Buffer {
  let data: Buffer;
  try {
    data = readFileSync(file === '-' ? 0 : file);
  } catch (err) {
    throw new InvalidArgumentError(`cannot read the ${kind} from ${file === '-' ? 'standard input' : file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { file });
  }
  if (data.length > LIMITS.fileObjectMaxBytes) throw new InvalidArgumentError(`${file === '-' ? 'standard input' : file} has ${data.length} bytes: a ${kind} has at most ${LIMITS.fileObjectMaxBytes}`);
  return data;
}

function title(kind: Kind): string {
  return kind === 'secret' ? 'Secret' : 'Config';
}
