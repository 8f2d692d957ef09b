/**
 * How the agent presents members and reaches the network it is given: the member view the API serves (with the
 * roles servers and clients gossip), and the address checks done before the peer socket binds.
 */
import { createSocket } from 'node:dgram';
import { readFileSync, statfsSync } from 'node:fs';
import { cpus, networkInterfaces, totalmem } from 'node:os';
import { join } from 'node:path';
import { InvalidArgumentError, ShoalError, describeError } from '../lib/errors.js';
import type { Logger } from '../log/logger.js';
import { writeFileDurably } from '../platform/durable-file.js';
import { shoal } from '../gen/proto.js';
import type { Membership, MemberSnapshot, MemberStatus, NodeMeta } from '../membership/index.js';
import type { AgentConfig } from './config.js';
import { AGENT_VERSION } from './version.js';

const INCARNATION_FILE = 'membership.incarnation';

/** What this agent gossips about itself at start (roles and the real API port are patched in later). */
export function localMeta(config: AgentConfig, drivers: readonly string[], peerAddress: string, log: Logger): NodeMeta {
  let diskFreeBytes = 0;
  try {
    const fs = statfsSync(config.dataDir);
    diskFreeBytes = fs.bavail * fs.bsize;
  } catch (err) {
    log.warn({ err: describeError(err) }, 'cannot read free disk space');
  }
  return {
    name: config.name,
    agentVersion: AGENT_VERSION,
    addresses: [peerAddress, `${advertisedHost(config.api.host)}:${config.api.port}`],
    labels: config.labels,
    resources: { cpuMillicores: cpus().length * 1000, memoryBytes: totalmem(), diskFreeBytes },
    drivers: [...drivers].sort(),
    roles: { voter: false, leader: false },
  };
}

/** The membership incarnation this agent last gossiped (0: none); a restart starts above it. */
export function readIncarnation(dataDir: string): number {
  try {
    const n = Number(readFileSync(join(dataDir, INCARNATION_FILE), 'utf8').trim());
    return Number.isSafeInteger(n) && n >= 0 ? n : 0;
  } catch (_missing) {
    return 0;
  }
}

export function persistIncarnation(dataDir: string, incarnation: number): void {
  writeFileDurably(join(dataDir, INCARNATION_FILE), `${incarnation}\n`);
}

const STATUS_TO_PROTO: Record<MemberStatus, shoal.v1.MemberStatus> = {
  alive: shoal.v1.MemberStatus.MEMBER_STATUS_ALIVE,
  suspect: shoal.v1.MemberStatus.MEMBER_STATUS_SUSPECT,
  dead: shoal.v1.MemberStatus.MEMBER_STATUS_DEAD,
  left: shoal.v1.MemberStatus.MEMBER_STATUS_LEFT,
};

export function memberToProto(m: MemberSnapshot): shoal.v1.IMember {
  return {
    id: m.id,
    name: m.meta.name,
    address: m.meta.addresses[0] ?? '',
    status: STATUS_TO_PROTO[m.status],
    incarnation: m.incarnation,
    metadata: {
      agentVersion: m.meta.agentVersion,
      labels: m.meta.labels,
      resources: { cpuMillicores: m.meta.resources.cpuMillicores, memoryBytes: m.meta.resources.memoryBytes, diskFreeBytes: m.meta.resources.diskFreeBytes },
      drivers: m.meta.drivers,
      roles: rolesOf(m),
      addresses: m.meta.addresses,
    },
  };
}

/** The roles shown for a member: voter, leader and replica are servers; any other agent is a client. */
export function rolesOf(m: MemberSnapshot): string[] {
  const r = m.meta.roles;
  const roles = [...(r.voter ? ['voter'] : []), ...(r.leader ? ['leader'] : []), ...(r.replica ? ['replica'] : [])];
  return roles.length > 0 ? roles : ['client'];
}

/** Whether gossip says a member holds the log (a voter, a read replica or the leader). */
export function isServerMember(m: MemberSnapshot): boolean {
  return m.meta.roles.voter || m.meta.roles.leader || m.meta.roles.replica === true;
}

/** The address other hosts can reach a socket bound to `host` at: a wildcard bind advertises the first external IPv4. */
export function advertisedHost(host: string): string {
  if (host !== '0.0.0.0' && host !== '::') return host;
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
  }
  return '127.0.0.1';
}

/**
 * Fails fast, naming the flag, when --bind names an address this host does not have: the DHT's UDP bind would
 * otherwise never complete and the agent would hang at start.
 */
export async function checkBindable(host: string): Promise<void> {
  const socket = createSocket(host.includes(':') ? 'udp6' : 'udp4');
  try {
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(0, host, () => resolve());
    });
  } catch (err) {
    throw new InvalidArgumentError(`--bind: cannot bind ${host} (${(err as NodeJS.ErrnoException).code ?? String(err)}): it is not an address of this host`, { host });
  } finally {
    socket.close();
  }
}

/** Why a server has no leader to offer: too few voters alive for a quorum, or an election under way. */
export function noLeaderError(membership: Membership, term: number, voters: readonly string[]): ShoalError {
  const alive = voters.filter((v) => v === membership.id || membership.member(v)?.status === 'alive').length;
  const quorum = Math.floor(voters.length / 2) + 1;
  return alive < quorum
    ? new ShoalError('ERR_NO_QUORUM', `the cluster has no quorum: only ${alive} of its ${voters.length} voters are alive (${quorum} needed); no write can commit until enough of them are back`, { alive, voters: voters.length })
    : new ShoalError('ERR_NO_LEADER', `no leader is known in term ${term}; an election is in progress, retry in a moment`, { term });
}
