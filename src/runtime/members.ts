/**
 * How the agent presents members and reaches the network it is given: the member view the API serves (with the
 * roles servers and clients gossip), and the address checks done before the peer socket binds.
 */
import { createSocket } from 'node:dgram';
import { networkInterfaces } from 'node:os';
import { InvalidArgumentError } from '../lib/errors.js';
import { shoal } from '../gen/proto.js';
import type { MemberSnapshot, MemberStatus } from '../membership/index.js';

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
