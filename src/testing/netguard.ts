/**
 * The network guard, loaded into every test process (`node --import dist/testing/netguard.js`, set in the tap
 * config) and inherited by every child process a test starts (through NODE_OPTIONS).
 *
 * It refuses, before any packet leaves, every TCP connect, UDP send (Node's dgram and udx-native, which
 * hyperswarm uses) and DNS lookup whose target is outside loopback and the ranges a test created itself
 * (SHOAL_NETGUARD_ALLOW="10.77.0.0/24,..."). A refused call throws `NetworkGuardError`; the attempt is
 * recorded, and the process exits non-zero at the end so the test fails even if the caller swallowed the error.
 *
 * Why: hyperdht falls back to the public DHT bootstrap hosts when `bootstrap` is undefined, null or false. A test
 * must never reach them, nor anything else outside this machine.
 */
import dgram from 'node:dgram';
import dns from 'node:dns';
import net from 'node:net';
import { networkInterfaces } from 'node:os';
import { createRequire, syncBuiltinESMExports } from 'node:module';
import { fileURLToPath } from 'node:url';

export class NetworkGuardError extends Error {
  readonly code = 'ERR_NETWORK_GUARD';
  constructor(what: string, target: string) {
    super(`network guard: refused ${what} to ${target} (tests may only reach loopback and their own namespaces; allowed: ${allowedText()})`);
    this.name = 'NetworkGuardError';
  }
}

interface Cidr {
  family: 4 | 6;
  bits: bigint;
  prefix: number;
}

interface GuardState {
  violations: string[];
}
const GUARD_KEY = Symbol.for('shoal.netguard');
const globalWithGuard = globalThis as unknown as Record<symbol, GuardState | undefined>;
// One guard per process, even if this module is loaded twice (from dist by --import, and from src by a test).
const alreadyInstalled = globalWithGuard[GUARD_KEY] !== undefined;
const state: GuardState = globalWithGuard[GUARD_KEY] ?? { violations: [] };
globalWithGuard[GUARD_KEY] = state;
const violations = state.violations;
let extraAllowed: Cidr[] = [];

function parseIp(address: string): { family: 4 | 6; bits: bigint } | undefined {
  const host = address.replace(/^\[|\]$/g, '').split('%')[0] as string;
  const kind = net.isIP(host);
  if (kind === 4) {
    return { family: 4, bits: host.split('.').reduce((acc, part) => (acc << 8n) | BigInt(Number(part)), 0n) };
  }
  if (kind === 6) {
    const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(host);
    if (mapped) return parseIp(mapped[1] as string);
    const [head, tail] = host.split('::') as [string, string | undefined];
    const h = head ? head.split(':') : [];
    const t = tail ? tail.split(':') : [];
    const groups = tail === undefined ? h : [...h, ...Array(8 - h.length - t.length).fill('0'), ...t];
    return { family: 6, bits: groups.reduce((acc, g) => (acc << 16n) | BigInt(parseInt(g || '0', 16)), 0n) };
  }
  return undefined;
}

function parseCidr(text: string): Cidr {
  const [addr, prefixText] = text.trim().split('/');
  const ip = parseIp(addr ?? '');
  if (!ip) throw new Error(`SHOAL_NETGUARD_ALLOW: "${text}" is not an address or CIDR`);
  const max = ip.family === 4 ? 32 : 128;
  const prefix = prefixText === undefined ? max : Number(prefixText);
  if (!Number.isInteger(prefix) || prefix < 0 || prefix > max) throw new Error(`SHOAL_NETGUARD_ALLOW: bad prefix in "${text}"`);
  return { family: ip.family, bits: ip.bits, prefix };
}

const LOOPBACK: Cidr[] = [parseCidr('127.0.0.0/8'), parseCidr('::1/128')];

/**
 * This machine's own interface addresses, each alone (/32, /128), never their subnets: the kernel delivers a packet
 * sent to one of them locally, so it never leaves the machine. hyperdht does exactly that when it checks which of a
 * peer's announced LAN addresses it can use (it sends one byte from each local address to itself).
 */
const OWN_ADDRESSES: Cidr[] = Object.values(networkInterfaces())
  .flatMap((list) => list ?? [])
  .map((a) => a.address.split('%')[0] as string)
  .filter((address) => net.isIP(address) !== 0)
  .map((address) => parseCidr(address));

function inCidr(ip: { family: 4 | 6; bits: bigint }, cidr: Cidr): boolean {
  if (ip.family !== cidr.family) return false;
  const width = BigInt(cidr.family === 4 ? 32 : 128);
  const shift = width - BigInt(cidr.prefix);
  return ip.bits >> shift === cidr.bits >> shift;
}

function allowedText(): string {
  return ['127.0.0.0/8', '::1', 'this machine\'s own interface addresses', ...(process.env['SHOAL_NETGUARD_ALLOW'] ?? '').split(',').filter(Boolean)].join(', ');
}

function refreshAllowed(): void {
  extraAllowed = (process.env['SHOAL_NETGUARD_ALLOW'] ?? '').split(',').filter((s) => s.trim() !== '').map(parseCidr);
}

/** True when a test may talk to `host` (an IP literal or "localhost"). Hostnames are never allowed. */
export function isAllowedHost(host: string | undefined | null): boolean {
  if (host === undefined || host === null || host === '' || host === 'localhost') return true;
  refreshAllowed();
  const ip = parseIp(host);
  if (!ip) return false;
  return [...LOOPBACK, ...OWN_ADDRESSES, ...extraAllowed].some((c) => inCidr(ip, c));
}

function refuse(what: string, target: string): never {
  const err = new NetworkGuardError(what, target);
  violations.push(err.message);
  process.stderr.write(`${err.message}\n${(err.stack ?? '').split('\n').slice(1, 6).join('\n')}\n`);
  throw err;
}

function check(what: string, host: string | undefined | null, port?: unknown): void {
  if (!isAllowedHost(host)) refuse(what, `${String(host)}${port === undefined ? '' : `:${String(port)}`}`);
}

function install(): void {
  // --- TCP (net, and so http, https, tls) --------------------------------------------------------------------------
  const originalConnect = net.Socket.prototype.connect;
  net.Socket.prototype.connect = function guardedConnect(this: net.Socket, ...args: unknown[]) {
    const first = args[0];
    if (Array.isArray(first)) {
      // Internal form used by net.connect: [options, callback].
      const opts = first[0] as { host?: string; path?: string; port?: number } | undefined;
      if (opts && opts.path === undefined) check('TCP connect', opts.host ?? 'localhost', opts.port);
    } else if (typeof first === 'object' && first !== null) {
      const opts = first as { host?: string; path?: string; port?: number };
      if (opts.path === undefined) check('TCP connect', opts.host ?? 'localhost', opts.port);
    } else if (typeof first === 'number' || (typeof first === 'string' && /^\d+$/.test(first))) {
      check('TCP connect', typeof args[1] === 'string' ? args[1] : 'localhost', first);
    }
    return (originalConnect as (...a: unknown[]) => net.Socket).apply(this, args);
  } as typeof net.Socket.prototype.connect;

  // --- UDP (dgram) ---------------------------------------------------------------------------------------------------
  const originalSend = dgram.Socket.prototype.send;
  dgram.Socket.prototype.send = function guardedSend(this: dgram.Socket, ...args: unknown[]) {
    // send(msg, [offset, length,] port, address, callback): the address is the string after the port.
    const portIndex = args.findIndex((a, i) => i > 0 && typeof a === 'number' && (typeof args[i + 1] === 'string' || args[i + 1] === undefined || typeof args[i + 1] === 'function'));
    if (portIndex > 0) {
      const address = args[portIndex + 1];
      check('UDP send', typeof address === 'string' ? address : 'localhost', args[portIndex]);
    }
    return (originalSend as (...a: unknown[]) => void).apply(this, args);
  } as typeof dgram.Socket.prototype.send;

  const originalDgramConnect = dgram.Socket.prototype.connect;
  dgram.Socket.prototype.connect = function guardedDgramConnect(this: dgram.Socket, port: number, address?: unknown, cb?: unknown) {
    check('UDP connect', typeof address === 'string' ? address : 'localhost', port);
    return (originalDgramConnect as (...a: unknown[]) => void).call(this, port, address, cb);
  } as typeof dgram.Socket.prototype.connect;

  // --- DNS ------------------------------------------------------------------------------------------------------------
  function guardName(what: string, name: unknown): void {
    if (typeof name !== 'string') return;
    // An IP literal is "resolved" without any traffic (Node's dgram bind goes through lookup): the guard checks
    // where packets go (connect, send), not what is parsed. Only names would reach a DNS server.
    if (name === 'localhost' || net.isIP(name) !== 0) return;
    refuse(what, name);
  }

  const dnsCallbackApis = ['lookup', 'lookupService', 'resolve', 'resolve4', 'resolve6', 'resolveAny', 'resolveCname', 'resolveMx', 'resolveNs', 'resolveTxt', 'resolveSrv', 'resolveCaa', 'resolveNaptr', 'resolvePtr', 'resolveSoa', 'reverse'] as const;
  const dnsMutable = dns as unknown as Record<string, (...a: unknown[]) => unknown>;
  const dnsPromises = dns.promises as unknown as Record<string, (...a: unknown[]) => unknown>;
  for (const name of dnsCallbackApis) {
    const original = dnsMutable[name];
    if (typeof original === 'function') {
      dnsMutable[name] = function guarded(this: unknown, ...args: unknown[]) {
        guardName(`DNS ${name}`, args[0]);
        return original.apply(this, args);
      };
    }
    const originalPromise = dnsPromises[name];
    if (typeof originalPromise === 'function') {
      dnsPromises[name] = function guarded(this: unknown, ...args: unknown[]) {
        guardName(`DNS ${name}`, args[0]);
        return originalPromise.apply(this, args);
      };
    }
  }
  syncBuiltinESMExports();

  // --- udx-native (hyperswarm/hyperdht's UDP transport, which bypasses dgram) ---------------------------------------
  interface UdxProto {
    send?: (...a: unknown[]) => unknown;
    trySend?: (...a: unknown[]) => unknown;
    connect?: (...a: unknown[]) => unknown;
    changeRemote?: (...a: unknown[]) => unknown;
  }

  function patchUdx(requireFrom: NodeJS.Require): void {
    let socketProto: UdxProto;
    let streamProto: UdxProto;
    try {
      socketProto = (requireFrom('udx-native/lib/socket.js') as { prototype: UdxProto }).prototype;
      streamProto = (requireFrom('udx-native/lib/stream.js') as { prototype: UdxProto }).prototype;
    } catch (_notInstalled) {
      return; // this copy of the tree has no udx-native: nothing can send through it
    }
    const marker = Symbol.for('shoal.netguard.patched');
    if ((socketProto as Record<symbol, boolean>)[marker]) return;
    (socketProto as Record<symbol, boolean>)[marker] = true;
    for (const method of ['send', 'trySend'] as const) {
      const original = socketProto[method];
      if (typeof original !== 'function') continue;
      socketProto[method] = function guarded(this: unknown, ...args: unknown[]) {
        check('UDX send', (args[2] as string | undefined) || '127.0.0.1', args[1]);
        return original.apply(this, args);
      };
    }
    for (const method of ['connect', 'changeRemote'] as const) {
      const original = streamProto[method];
      if (typeof original !== 'function') continue;
      streamProto[method] = function guarded(this: unknown, ...args: unknown[]) {
        const host = typeof args[3] === 'string' ? args[3] : '127.0.0.1';
        check('UDX stream connect', host, args[2]);
        return original.apply(this, args);
      };
    }
  }

  const here = fileURLToPath(import.meta.url);
  const rootRequire = createRequire(here);
  patchUdx(rootRequire);
  try {
    // hyperdht may carry its own copy of udx-native; patch the one it would load too.
    patchUdx(createRequire(rootRequire.resolve('hyperdht')));
  } catch (_noHyperdht) {
    // no hyperdht installed: nothing else to patch
  }

  // --- Children inherit the guard ---------------------------------------------------------------------------------
  const importFlag = `--import=${new URL(import.meta.url).href}`;
  if (!(process.env['NODE_OPTIONS'] ?? '').includes(importFlag)) {
    process.env['NODE_OPTIONS'] = `${process.env['NODE_OPTIONS'] ?? ''} ${importFlag}`.trim();
  }

  process.on('exit', (code) => {
    if (violations.length > 0) {
      process.stderr.write(`network guard: ${violations.length} refused attempt(s) in this process; failing it\n`);
      if (code === 0) process.exitCode = 1;
    }
  });

}

if (!alreadyInstalled) install();

/** For the guard's own tests: what it refused so far in this process. */
export function guardViolations(): readonly string[] {
  return violations;
}

/** For the guard's own tests: forget recorded attempts (so the test process can still exit 0). */
export function clearGuardViolations(): void {
  violations.length = 0;
}
