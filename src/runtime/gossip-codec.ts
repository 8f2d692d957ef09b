/**
 * Gossip messages between the membership core's plain data and the protobuf payload of a MESSAGE_TYPE_GOSSIP
 * envelope (proto/shoal/v1/gossip.proto). Decoding validates everything a peer could get wrong (unknown kinds,
 * missing fields, too many rumours or states) and throws a typed error naming the field; the caller drops that
 * message and keeps the link.
 */
import { DecodeError } from '../lib/errors.js';
import { LIMITS } from '../lib/limits.js';
import { shoal } from '../gen/proto.js';
import type { GossipMessage, MemberStatus, NodeMeta, PushPullState, Rumour } from '../membership/index.js';

const S = shoal.v1.GossipStatus;
const STATUS_TO_WIRE: Record<MemberStatus, shoal.v1.GossipStatus> = { alive: S.GOSSIP_STATUS_ALIVE, suspect: S.GOSSIP_STATUS_SUSPECT, dead: S.GOSSIP_STATUS_DEAD, left: S.GOSSIP_STATUS_LEFT };
const WIRE_TO_STATUS = new Map<number, MemberStatus>(Object.entries(STATUS_TO_WIRE).map(([k, v]) => [v, k as MemberStatus]));

export class GossipDecodeError extends DecodeError {
  constructor(message: string) {
    super('ERR_GOSSIP_INVALID', `gossip message: ${message}`);
  }
}

function metaToWire(m: NodeMeta): shoal.v1.IGossipNodeMeta {
  return {
    name: m.name, agentVersion: m.agentVersion, addresses: m.addresses, labels: m.labels,
    cpuMillicores: m.resources.cpuMillicores, memoryBytes: m.resources.memoryBytes, diskFreeBytes: m.resources.diskFreeBytes,
    drivers: m.drivers, voter: m.roles.voter, leader: m.roles.leader, replica: m.roles.replica === true,
    ...(m.portsTaken?.length ? { portsTaken: m.portsTaken } : {}),
  };
}

function metaFromWire(m: shoal.v1.IGossipNodeMeta | null | undefined, where: string): NodeMeta {
  if (!m) throw new GossipDecodeError(`${where} has no metadata`);
  const taken = m.portsTaken ?? [];
  if (taken.length > LIMITS.meshMaxPortsTakenReported) throw new GossipDecodeError(`${where}.portsTaken has ${taken.length} ports, at most ${LIMITS.meshMaxPortsTakenReported} allowed`);
  if (taken.some((p) => p < 1 || p > 65535)) throw new GossipDecodeError(`${where}.portsTaken has a port outside 1-65535`);
  return {
    name: m.name ?? '', agentVersion: m.agentVersion ?? '', addresses: [...(m.addresses ?? [])], labels: { ...(m.labels ?? {}) },
    resources: { cpuMillicores: Number(m.cpuMillicores ?? 0), memoryBytes: Number(m.memoryBytes ?? 0), diskFreeBytes: Number(m.diskFreeBytes ?? 0) },
    drivers: [...(m.drivers ?? [])], roles: { voter: m.voter === true, leader: m.leader === true, ...(m.replica === true ? { replica: true } : {}) },
    ...(taken.length > 0 ? { portsTaken: [...taken] } : {}),
  };
}

function rumourToWire(r: Rumour): shoal.v1.IGossipRumour {
  const base = { kind: STATUS_TO_WIRE[r.kind], node: r.node, incarnation: r.incarnation };
  if (r.kind === 'alive') return { ...base, meta: metaToWire(r.meta) };
  if (r.kind === 'left') return base;
  return { ...base, accuser: r.from };
}

function rumourFromWire(r: shoal.v1.IGossipRumour, i: number): Rumour {
  const where = `rumours[${i}]`;
  const kind = WIRE_TO_STATUS.get(r.kind ?? 0);
  const node = r.node ?? '';
  const incarnation = Number(r.incarnation ?? 0);
  if (!kind) throw new GossipDecodeError(`${where} has unknown kind ${r.kind}`);
  if (node === '') throw new GossipDecodeError(`${where} names no node`);
  if (!Number.isSafeInteger(incarnation)) throw new GossipDecodeError(`${where} has an incarnation out of range`);
  if (kind === 'alive') return { kind, node, incarnation, meta: metaFromWire(r.meta, where) };
  if (kind === 'left') return { kind, node, incarnation };
  if (!r.accuser) throw new GossipDecodeError(`${where} (${kind}) names no accuser`);
  return { kind, node, incarnation, from: r.accuser };
}

export function encodeGossip(message: GossipMessage): Uint8Array {
  const rumours = 'rumours' in message ? message.rumours.map(rumourToWire) : [];
  let body: shoal.v1.IGossipMessage;
  switch (message.kind) {
    case 'ping':
      body = { ping: { seq: message.seq, target: message.target } };
      break;
    case 'ack':
      body = { ack: { seq: message.seq } };
      break;
    case 'nack':
      body = { nack: { seq: message.seq } };
      break;
    case 'ping-req':
      body = { pingReq: { seq: message.seq, target: message.target } };
      break;
    case 'gossip':
      body = { gossip: {} };
      break;
    case 'push-pull':
      body = { pushPull: { reply: message.reply, states: message.states.map((s) => ({ id: s.id, incarnation: s.incarnation, status: STATUS_TO_WIRE[s.status], meta: metaToWire(s.meta) })) } };
      break;
  }
  return shoal.v1.GossipMessage.encode({ ...body, rumours }).finish();
}

export function decodeGossip(bytes: Uint8Array): GossipMessage {
  let m: shoal.v1.GossipMessage;
  try {
    m = shoal.v1.GossipMessage.decode(bytes);
  } catch (err) {
    throw new GossipDecodeError(`not valid protobuf (${err instanceof Error ? err.message : String(err)})`);
  }
  if (m.rumours.length > LIMITS.membershipMaxRumoursPerMessage) throw new GossipDecodeError(`carries ${m.rumours.length} rumours; at most ${LIMITS.membershipMaxRumoursPerMessage} are allowed`);
  const rumours = m.rumours.map(rumourFromWire);
  const seq = (v: number | Long | null | undefined): number => {
    const n = Number(v ?? 0);
    if (!Number.isSafeInteger(n) || n < 0) throw new GossipDecodeError('sequence number out of range');
    return n;
  };
  switch (m.body) {
    case 'ping':
      if (!m.ping?.target) throw new GossipDecodeError('ping names no target');
      return { kind: 'ping', seq: seq(m.ping.seq), target: m.ping.target, rumours };
    case 'ack':
      return { kind: 'ack', seq: seq(m.ack?.seq), rumours };
    case 'nack':
      return { kind: 'nack', seq: seq(m.nack?.seq), rumours };
    case 'pingReq':
      if (!m.pingReq?.target) throw new GossipDecodeError('ping-req names no target');
      return { kind: 'ping-req', seq: seq(m.pingReq.seq), target: m.pingReq.target, rumours };
    case 'gossip':
      return { kind: 'gossip', rumours };
    case 'pushPull': {
      const states = m.pushPull?.states ?? [];
      if (states.length > LIMITS.membershipMaxMembers) throw new GossipDecodeError(`push-pull carries ${states.length} states; at most ${LIMITS.membershipMaxMembers}`);
      return {
        kind: 'push-pull',
        reply: m.pushPull?.reply === true,
        states: states.map((s, i): PushPullState => {
          const status = WIRE_TO_STATUS.get(s.status ?? 0);
          if (!status || !s.id) throw new GossipDecodeError(`states[${i}] has no id or an unknown status`);
          return { id: s.id, incarnation: seq(s.incarnation), status, meta: metaFromWire(s.meta, `states[${i}]`) };
        }),
      };
    }
    default:
      throw new GossipDecodeError('has no body (ping, ack, nack, ping-req, gossip or push-pull)');
  }
}

type Long = { low: number; high: number };
