/**
 * The `shoal` command line. Each subcommand lives in its own file under src/cli/commands and registers itself
 * on the program here; the CLI talks to agents only through the typed RPC client.
 */
import { readFileSync } from 'node:fs';
import { Command, CommanderError } from 'commander';
import { ShoalError } from '../lib/errors.js';
import { registerAgent } from './commands/agent.js';
import { registerKeygen } from './commands/keygen.js';
import { registerMembers } from './commands/members.js';
import { registerOperator } from './commands/operator.js';
import { registerJob } from './commands/job.js';
import { registerAlloc } from './commands/alloc.js';
import { registerNode } from './commands/node.js';
import { registerService } from './commands/service.js';
import { registerNetwork } from './commands/network.js';
import { registerSecret } from './commands/secret.js';
import { registerState } from './commands/state.js';

export const VERSION: string = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

export function buildProgram(): Command {
  const program = new Command('shoal')
    .description('Shoal: a peer-to-peer cluster runtime (gossip membership, Raft leadership, jobs as containers or processes)')
    .version(VERSION, '-v, --version', 'print the Shoal version')
    .showHelpAfterError('(run with --help for usage)')
    .option('--address <url>', 'agent API address, a URL or host:port (default SHOAL_ADDR, else http://127.0.0.1:7646)')
    .option('--token <token>', 'bearer token for a remote agent (default SHOAL_TOKEN)')
    .option('--timeout <seconds>', 'deadline of each call to the agent (default 10)')
    .option('--stale', 'reads: let any server answer from its own copy (faster, may be behind); default: consistent, through the leader')
    .exitOverride();
  registerAgent(program);
  registerMembers(program);
  registerKeygen(program);
  registerOperator(program);
  registerJob(program);
  registerAlloc(program);
  registerNode(program);
  registerService(program);
  registerNetwork(program);
  registerSecret(program);
  registerState(program);
  return program;
}

export async function main(argv: string[]): Promise<void> {
  // `shoal members | head -1`: a closed pipe ends the command quietly, as it does for any Unix tool.
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(0);
    throw err;
  });
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      process.exitCode = err.exitCode;
      return;
    }
    if (err instanceof ShoalError) {
      process.stderr.write(`shoal: ${err.message}\n`);
      process.exitCode = 1;
      return;
    }
    throw err;
  }
}
