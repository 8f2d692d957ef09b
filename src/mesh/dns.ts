/**
 * The agent's DNS server for the tasks of one service on its node (their SHOAL_DNS): one UDP socket per service, so
 * the server knows who asks and answers each name as that service sees it (names.ts). Names it does not own go to
 * the host's resolvers (the nameservers of /etc/resolv.conf, unless the agent is given others), and their answers
 * come back unchanged. Every query and forward is bounded (LIMITS.meshDns*).
 */
import dgram from 'node:dgram';
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import dns2 from 'dns2';
import { describeError } from '../lib/errors.js';
import { LIMITS } from '../lib/limits.js';
import type { Logger } from '../log/logger.js';
import type { CatalogService, CatalogView } from '../state/index.js';
import { resolveName } from './names.js';

const { Packet } = dns2;
const RCODE_FORMERR = 1;
const RCODE_SERVFAIL = 2;
const RCODE_NXDOMAIN = 3;
/** Answers about our own names are short-lived: endpoints move, and a client should ask again soon. */
const TTL_S = 5;

export interface Upstream {
  host: string;
  port: number;
}

/** The nameservers of resolv.conf (IPv4 and IPv6 addresses only), port 53. */
export function systemUpstreams(file = '/etc/resolv.conf'): Upstream[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return [];
  }
  return text.split('\n').map((l) => /^\s*nameserver\s+(\S+)/.exec(l)?.[1]).filter((h): h is string => h !== undefined && isIP(h) !== 0).map((host) => ({ host, port: 53 }));
}

export interface ServiceDnsOptions {
  /** `<job>/<service>` whose tasks ask; or, for a server many services share (a bridge's), who asks from an address. */
  asker: string | ((address: string) => string | undefined);
  /** The address a service answers at for the asker (default: its virtual address on their first shared network). */
  vipOf?: (from: CatalogService, to: CatalogService) => string;
  /** One address per task of `to`, for `tasks.` names and `dnsrr` services (listening once this resolves). */
  taskAddresses?: (from: CatalogService, to: CatalogService) => Promise<string[]>;
  catalog: () => CatalogView | undefined;
  upstreams: readonly Upstream[];
  logger: Logger;
}

interface Pending {
  to: dgram.RemoteInfo;
  id: number;
  query: Buffer;
  tried: number;
  timer: NodeJS.Timeout;
}

export class ServiceDns {
  readonly #o: ServiceDnsOptions;
  #socket: dgram.Socket | undefined;
  #upstream: dgram.Socket | undefined;
  readonly #pending = new Map<number, Pending>();
  #nextId = 1;
  port = 0;
  queries = 0;
  forwarded = 0;

  constructor(options: ServiceDnsOptions) {
    this.#o = options;
  }

  async listen(host: string, port: number): Promise<void> {
    const socket = dgram.createSocket({ type: isIP(host) === 6 ? 'udp6' : 'udp4' });
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind({ address: host, port, exclusive: true }, () => {
        socket.off('error', reject);
        resolve();
      });
    });
    socket.on('error', (err) => this.#o.logger.warn({ dns: `${host}:${this.port}`, err: describeError(err) }, 'DNS socket error'));
    socket.on('message', (msg, rinfo) => this.#onQuery(msg, rinfo));
    this.#socket = socket;
    this.port = socket.address().port;
  }

  close(): void {
    for (const p of this.#pending.values()) clearTimeout(p.timer);
    this.#pending.clear();
    this.#socket?.close();
    this.#upstream?.close();
    this.#socket = undefined;
    this.#upstream = undefined;
  }

  #onQuery(msg: Buffer, rinfo: dgram.RemoteInfo): void {
    this.queries++;
    if (msg.length > LIMITS.meshDnsMaxMessageBytes) return;
    let req: InstanceType<typeof Packet>;
    try {
      req = Packet.parse(msg);
    } catch {
      return; // not DNS: nothing to answer
    }
    const q = req.questions?.[0];
    const reply = (fill: (res: InstanceType<typeof Packet>) => void): void => {
      const res = Packet.createResponseFromRequest(req);
      res.header.ra = 1;
      fill(res);
      this.#send(res.toBuffer(), rinfo);
    };
    if (!q || req.questions.length !== 1 || req.header.qr === 1) {
      reply((res) => (res.header.rcode = RCODE_FORMERR));
      return;
    }
    const view = this.#o.catalog();
    const askerKey = typeof this.#o.asker === 'string' ? this.#o.asker : this.#o.asker(rinfo.address);
    const asker = askerKey === undefined ? undefined : view?.catalogService(askerKey);
    const answer = view && asker ? resolveName(q.name, asker, view.catalog(), this.#o.vipOf) : { kind: 'forward' as const };
    if (answer.kind === 'forward') return this.#forward(msg, req.header.id, rinfo);
    const answerWith = (addresses: readonly string[]): void => reply((res) => {
      res.header.aa = 1;
      if (answer.kind === 'nxdomain') {
        res.header.rcode = RCODE_NXDOMAIN;
        return;
      }
      const base = { name: q.name, class: Packet.CLASS.IN, ttl: TTL_S };
      const record = (r: Record<string, unknown>) => Packet.createResourceFromQuestion(base as never, r as never);
      if (q.type === Packet.TYPE.A || q.type === Packet.TYPE.ANY) for (const address of addresses) res.answers.push(record({ type: Packet.TYPE.A, address }));
      if (q.type === Packet.TYPE.SRV || q.type === Packet.TYPE.ANY) {
        for (const port of answer.service.targetPorts) res.answers.push(record({ type: Packet.TYPE.SRV, priority: 0, weight: 10, port, target: q.name }));
        for (const address of addresses) res.additionals.push(record({ type: Packet.TYPE.A, address }));
      }
      // Any other type (AAAA...), or a service with no task now: the name exists and has no such record.
    });
    if (answer.kind !== 'service' || !answer.tasks) return answerWith(answer.kind === 'service' ? [answer.vip] : []);
    const tasks = this.#o.taskAddresses && asker ? this.#o.taskAddresses(asker, answer.service) : Promise.resolve([]);
    tasks.then(answerWith, (err: unknown) => {
      this.#o.logger.warn({ service: answer.service.key, err: describeError(err) }, 'cannot give a service\'s tasks addresses');
      this.#servfail(msg, rinfo);
    });
  }

  #forward(query: Buffer, id: number, to: dgram.RemoteInfo): void {
    if (this.#o.upstreams.length === 0 || this.#pending.size >= LIMITS.meshDnsMaxForwards) {
      this.#servfail(query, to);
      return;
    }
    let ours = this.#nextId;
    for (let i = 0; this.#pending.has(ours) && i < 65_536; i++) ours = (ours % 65_535) + 1;
    this.#nextId = (ours % 65_535) + 1;
    const copy = Buffer.from(query);
    copy.writeUInt16BE(ours, 0);
    const pending: Pending = { to, id, query: copy, tried: 0, timer: setTimeout(() => this.#retry(ours), LIMITS.meshDnsUpstreamTimeoutMs) };
    this.#pending.set(ours, pending);
    this.forwarded++;
    this.#sendUpstream(pending);
  }

  #sendUpstream(p: Pending): void {
    const up = this.#o.upstreams[p.tried % this.#o.upstreams.length]!;
    if (!this.#upstream) {
      const s = dgram.createSocket({ type: isIP(up.host) === 6 ? 'udp6' : 'udp4' });
      s.on('message', (msg) => this.#onUpstream(msg));
      s.on('error', (err) => this.#o.logger.debug({ err: describeError(err) }, 'DNS upstream socket error'));
      this.#upstream = s;
    }
    this.#upstream.send(p.query, up.port, up.host);
  }

  #retry(ours: number): void {
    const p = this.#pending.get(ours);
    if (!p) return;
    p.tried++;
    if (p.tried >= Math.min(LIMITS.meshDnsMaxUpstreamTries, this.#o.upstreams.length * 2)) {
      this.#pending.delete(ours);
      const copy = Buffer.from(p.query);
      copy.writeUInt16BE(p.id, 0);
      this.#servfail(copy, p.to);
      return;
    }
    p.timer = setTimeout(() => this.#retry(ours), LIMITS.meshDnsUpstreamTimeoutMs);
    this.#sendUpstream(p);
  }

  #onUpstream(msg: Buffer): void {
    if (msg.length < 12) return;
    const ours = msg.readUInt16BE(0);
    const p = this.#pending.get(ours);
    if (!p) return; // late or foreign: dropped
    clearTimeout(p.timer);
    this.#pending.delete(ours);
    const copy = Buffer.from(msg);
    copy.writeUInt16BE(p.id, 0);
    this.#send(copy, p.to);
  }

  #servfail(query: Buffer, to: dgram.RemoteInfo): void {
    try {
      const res = Packet.createResponseFromRequest(Packet.parse(query));
      res.header.ra = 1;
      res.header.rcode = RCODE_SERVFAIL;
      this.#send(res.toBuffer(), to);
    } catch {
      // a query we cannot parse gets no answer
    }
  }

  #send(buf: Buffer, to: dgram.RemoteInfo): void {
    this.#socket?.send(buf, to.port, to.address);
  }
}
