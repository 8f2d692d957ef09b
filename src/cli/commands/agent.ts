/**
 * `shoal agent`: runs the agent in the foreground until SIGTERM or SIGINT, which leave the cluster gracefully and
 * exit 0. A second signal while leaving exits at once (status 1).
 */
import type { Command } from 'commander';
import { describeError } from '../../lib/errors.js';
import { Agent } from '../../runtime/agent.js';
import { loadAgentConfig, type ConfigOverrides } from '../../runtime/config.js';
import { SdNotifier } from '../../platform/sd-notify.js';

interface AgentFlags {
  config?: string;
  name?: string;
  dataDir?: string;
  bind?: string;
  join?: string;
  clusterKeyFile?: string;
  api?: string;
  apiTokenFile?: string;
  labels?: string;
  logLevel?: string;
  publicDht?: boolean;
  bootstrapExpect?: string;
  dockerSocket?: string;
  readReplicas?: string;
  failureDomainLabel?: string;
  taskPorts?: string;
  meshBalance?: string;
  bridgePool?: string;
  secretsDir?: string;
}

export function registerAgent(program: Command): void {
  program
    .command('agent')
    .description('run the Shoal agent on this host (every host runs the same agent)')
    .option('-c, --config <file>', 'YAML config file (default /etc/shoal/agent.yaml when present); flags win over it')
    .option('--name <name>', 'node name shown in `shoal members` (default: the host name)')
    .option('--data-dir <dir>', 'where the agent keeps its identity, logs and state (default /var/lib/shoal)')
    .option('--bind <host:port>', 'peer socket: this agent\'s node of the cluster\'s private DHT (default 0.0.0.0:7647)')
    .option('--join <host:port,...>', 'DHT nodes (other agents\' --bind addresses) to bootstrap from; none for the first agent')
    .option('--cluster-key-file <file>', 'the cluster key (`shoal keygen`); or set SHOAL_CLUSTER_KEY')
    .option('--api <host:port>', 'HTTP API address (default 127.0.0.1:7646)')
    .option('--api-token-file <file>', 'bearer token that remote (non-loopback) API callers must send')
    .option('--labels <k=v,...>', 'node labels, for placement constraints')
    .option('--log-level <level>', 'fatal, error, warn, info, debug or trace (default info, or SHOAL_LOG_LEVEL)')
    .option('--public-dht', 'also use the public hyperswarm DHT (off: the cluster\'s private DHT is used alone)')
    .option('--bootstrap-expect <n>', 'members that must be alive before the first Raft group forms (1 for development)')
    .option('--docker-socket <path>', 'Docker engine socket (default /var/run/docker.sock)')
    .option('--read-replicas <n>', 'non-voting servers kept beside the voters, 0 to 2 (default 2); every other agent is a client')
    .option('--failure-domain-label <label>', 'node label naming failure domains; servers are spread across them (default zone)')
    .option('--task-ports <low-high>', 'ports given to process tasks (PORT) and to service listeners (default 20000-29999); distinct per agent on one host')
    .option('--mesh-balance <strategy>', 'how connections to a service spread over its tasks: round-robin (default) or least-connections')
    .option('--bridge-pool <cidr>', 'where container bridges (one per network on this node) take their /24s (default 10.213.0.0/16)')
    .option('--secrets-dir <dir>', 'where tasks\' secrets and configs are written; must be on a tmpfs (default /run/shoal if /run is one, else /dev/shm/shoal)')
    .action(async (flags: AgentFlags) => {
      const overrides: ConfigOverrides & { config?: string } = {};
      for (const [k, v] of Object.entries(flags)) if (v !== undefined) (overrides as Record<string, unknown>)[k] = v;
      const config = loadAgentConfig(overrides);
      const agent = new Agent({ config });
      // Under a Type=notify systemd unit (agent/shoal.service): READY=1, STOPPING=1 and watchdog pings.
      const notifier = SdNotifier.fromEnv({ onError: (err) => agent.log.warn({ err: describeError(err) }, 'systemd notification failed') });
      let signals = 0;
      const onSignal = (signal: NodeJS.Signals): void => {
        signals++;
        if (signals > 1) {
          agent.log.warn({ signal }, 'second signal: exiting at once');
          process.exit(1);
        }
        agent.log.info({ signal }, 'leaving the cluster');
        void notifier?.stopping('leaving the cluster');
        agent.stop({ leave: true }).then(
          () => process.exit(0),
          (err: unknown) => {
            agent.log.error({ err: describeError(err) }, 'error while stopping');
            process.exit(1);
          },
        );
      };
      process.on('SIGTERM', onSignal);
      process.on('SIGINT', onSignal);
      try {
        await agent.start();
      } catch (err) {
        await agent.stop({ leave: false }).catch(() => undefined);
        throw err;
      }
      // Machine-readable line for scripts and tests that start agents (the log above is for people).
      process.stdout.write(`${JSON.stringify({ event: 'ready', id: agent.nodeId, name: config.name, api: agent.apiAddress, peer: `${config.bind.host}:${agent.transport && 'address' in agent.transport ? (agent.transport as { address(): { port: number } }).address().port : config.bind.port}` })}\n`);
      if (notifier) {
        void notifier.ready(`member ${config.name} (${agent.nodeId}) running`);
        notifier.startWatchdog();
      }
    });
}
