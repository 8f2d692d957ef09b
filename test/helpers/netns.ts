/**
 * Several "hosts" on one machine for multi-host tests: Linux network namespaces, each with its own address on a
 * private /24, all joined by a bridge that lives in a namespace of its own (so the machine's own network and
 * firewall are never touched). Needs root and iproute2 (+ iptables for cut/restore).
 *
 *   const net = createNetwork(t, { hosts: 3, subnet: '10.77.41' });   // 10.77.41.1 .. 10.77.41.3
 *   spawn('ip', ['netns', 'exec', net.hosts[0].ns, process.execPath, ...]);
 *   net.cut(net.hosts[2]);   // iptables DROP to/from the subnet inside that host
 *   net.restore(net.hosts[2]);
 *
 * The namespaces are deleted in the test's teardown, on process exit (also when an assertion throws), and by
 * `removeStaleNamespaces(prefix)`. Set SHOAL_NETGUARD_ALLOW to `net.cidr` so the network guard lets the
 * agents talk inside the subnet (createNetwork does it for this process and its children).
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';

export interface NetnsHost {
  /** Namespace name, for `ip netns exec`. */
  ns: string;
  /** The host's address on the subnet. */
  ip: string;
}

export interface NetnsNetwork {
  hosts: NetnsHost[];
  /** e.g. 10.77.41.0/24 */
  cidr: string;
  /** Drops all traffic between `host` and the rest of the subnet, both ways (iptables inside the host). */
  cut(host: NetnsHost): void;
  /** Undoes cut(). */
  restore(host: NetnsHost): void;
  /** Deletes every namespace; idempotent. */
  destroy(): void;
}

export interface TeardownContext {
  teardown(fn: () => unknown): void;
}

/** Namespace names start with this, so a crashed run's leftovers can be found. */
export const NETNS_PREFIX = 'shoalt';

function run(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.status !== 0) {
    throw new Error(`${cmd} ${args.join(' ')} failed (${r.status ?? r.signal}): ${(r.stderr || r.stdout || r.error?.message || '').trim()}`);
  }
  return r.stdout;
}

/** True when this process can create network namespaces (root, iproute2 present). */
export function netnsAvailable(): boolean {
  const name = `${NETNS_PREFIX}-probe-${randomBytes(3).toString('hex')}`;
  const r = spawnSync('ip', ['netns', 'add', name], { encoding: 'utf8' });
  if (r.status !== 0) return false;
  spawnSync('ip', ['netns', 'del', name]);
  return true;
}

function addAllowed(cidr: string): void {
  const current = (process.env['SHOAL_NETGUARD_ALLOW'] ?? '').split(',').filter((s) => s.trim() !== '');
  if (!current.includes(cidr)) process.env['SHOAL_NETGUARD_ALLOW'] = [...current, cidr].join(',');
}

const live = new Set<string>();
process.on('exit', () => {
  for (const ns of live) spawnSync('ip', ['netns', 'del', ns]);
});

/**
 * Creates `hosts` namespaces on `${subnet}.0/24` (subnet is the first three octets, e.g. '10.77.41'), addresses
 * `${subnet}.1` upwards, joined by a bridge. With hosts = 1 and no subnet it is simply an isolated loopback.
 */
export function createNetwork(t: TeardownContext, options: { hosts: number; subnet: string }): NetnsNetwork {
  const id = randomBytes(3).toString('hex');
  const prefix = `${NETNS_PREFIX}-${id}`;
  const cidr = `${options.subnet}.0/24`;
  const sw = `${prefix}-sw`;
  const hosts: NetnsHost[] = [];
  const created: string[] = [];
  let destroyed = false;
  const destroy = (): void => {
    if (destroyed) return;
    destroyed = true;
    const errors: string[] = [];
    for (const ns of created.reverse()) {
      const r = spawnSync('ip', ['netns', 'del', ns], { encoding: 'utf8' });
      if (r.status !== 0 && !/No such file/.test(r.stderr)) errors.push(`${ns}: ${r.stderr.trim()}`);
      live.delete(ns);
    }
    if (errors.length > 0) throw new Error(`could not delete namespaces: ${errors.join('; ')}`);
  };
  t.teardown(destroy);
  const addNs = (ns: string): void => {
    run('ip', ['netns', 'add', ns]);
    created.push(ns);
    live.add(ns);
    run('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
  };
  try {
    addNs(sw);
    run('ip', ['-n', sw, 'link', 'add', 'br0', 'type', 'bridge']);
    run('ip', ['-n', sw, 'link', 'set', 'br0', 'up']);
    for (let i = 1; i <= options.hosts; i++) {
      const ns = `${prefix}-h${i}`;
      addNs(ns);
      run('ip', ['-n', sw, 'link', 'add', `v${i}`, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
      run('ip', ['-n', sw, 'link', 'set', `v${i}`, 'master', 'br0', 'up']);
      const ip = `${options.subnet}.${i}`;
      run('ip', ['-n', ns, 'addr', 'add', `${ip}/24`, 'dev', 'eth0']);
      run('ip', ['-n', ns, 'link', 'set', 'eth0', 'up']);
      hosts.push({ ns, ip });
    }
  } catch (err) {
    destroy();
    throw err;
  }
  addAllowed(cidr);
  return {
    hosts,
    cidr,
    cut(host) {
      run('ip', ['netns', 'exec', host.ns, 'iptables', '-A', 'INPUT', '-s', cidr, '-j', 'DROP']);
      run('ip', ['netns', 'exec', host.ns, 'iptables', '-A', 'OUTPUT', '-d', cidr, '-j', 'DROP']);
    },
    restore(host) {
      run('ip', ['netns', 'exec', host.ns, 'iptables', '-F', 'INPUT']);
      run('ip', ['netns', 'exec', host.ns, 'iptables', '-F', 'OUTPUT']);
    },
    destroy,
  };
}

/** One namespace with only loopback: agents on 127.x addresses, isolated from the machine's interfaces. */
export function createLoopbackHost(t: TeardownContext): NetnsHost {
  const ns = `${NETNS_PREFIX}-${randomBytes(3).toString('hex')}-lo`;
  run('ip', ['netns', 'add', ns]);
  live.add(ns);
  t.teardown(() => {
    spawnSync('ip', ['netns', 'del', ns]);
    live.delete(ns);
  });
  run('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
  return { ns, ip: '127.0.0.1' };
}

/** Deletes namespaces left by a crashed run (names starting with the prefix). */
export function removeStaleNamespaces(prefix = NETNS_PREFIX): string[] {
  const names = run('ip', ['netns', 'list']).split('\n').map((l) => l.split(' ')[0] ?? '').filter((n) => n.startsWith(`${prefix}-`));
  for (const n of names) spawnSync('ip', ['netns', 'del', n]);
  return names;
}
