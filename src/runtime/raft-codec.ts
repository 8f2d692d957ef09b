/**
 * Raft messages between the consensus core's plain data and the protobuf payload of a MESSAGE_TYPE_RAFT envelope
 * (proto/shoal/v1/raft.proto). Decoding validates kinds, numbers and sizes and throws a typed error naming the
 * field; the caller drops that message (Raft tolerates loss) and keeps the link.
 */
import { DecodeError } from '../lib/errors.js';
import { LIMITS } from '../lib/limits.js';
import { shoal } from '../gen/proto.js';
import type { ConfChangeType, Entry, EntryType, Message, MessageType } from '../consensus/index.js';

const MESSAGE_TYPES = new Set<MessageType>(['preVote', 'preVoteResp', 'vote', 'voteResp', 'append', 'appendResp', 'heartbeat', 'heartbeatResp', 'snapshot', 'timeoutNow', 'readIndex', 'readIndexResp', 'wake']);
const ENTRY_TYPES = new Set<EntryType>(['normal', 'noop', 'conf']);
const CONF_TYPES = new Set<ConfChangeType>(['addVoter', 'addLearner', 'removeMember']);

export class RaftDecodeError extends DecodeError {
  constructor(message: string) {
    super('ERR_RAFT_MESSAGE_INVALID', `raft message: ${message}`);
  }
}

export function encodeRaft(m: Message): Uint8Array {
  return shoal.v1.RaftMessage.encode({
    type: m.type, from: m.from, to: m.to, term: m.term, logTerm: m.logTerm, index: m.index, commit: m.commit,
    reject: m.reject, rejectHint: m.rejectHint,
    entries: m.entries.map((e) => ({ index: e.index, term: e.term, type: e.type, data: e.data, ...(e.request ? { request: { clientId: e.request.clientId, seq: e.request.seq } } : {}), ...(e.conf ? { conf: { type: e.conf.type, member: e.conf.member } } : {}) })),
    ...(m.snapshot ? { snapshot: { index: m.snapshot.metadata.index, term: m.snapshot.metadata.term, conf: m.snapshot.metadata.conf, data: m.snapshot.data } } : {}),
    ...(m.context !== undefined ? { hasContext: true, context: m.context } : {}),
    ...(m.quiesce === true ? { quiesce: true } : {}),
  }).finish();
}

function num(v: unknown, field: string): number {
  const n = Number(v ?? 0);
  if (!Number.isSafeInteger(n) || n < 0) throw new RaftDecodeError(`${field} is out of range`);
  return n;
}

export function decodeRaft(bytes: Uint8Array, group: string): Message {
  let r: shoal.v1.RaftMessage;
  try {
    r = shoal.v1.RaftMessage.decode(bytes);
  } catch (err) {
    throw new RaftDecodeError(`not valid protobuf (${err instanceof Error ? err.message : String(err)})`);
  }
  if (!MESSAGE_TYPES.has(r.type as MessageType)) throw new RaftDecodeError(`unknown type "${r.type.slice(0, 40)}"`);
  if (!r.from || !r.to) throw new RaftDecodeError('names no sender or receiver');
  if (r.entries.length > LIMITS.raftMaxEntriesPerAppend * 4) throw new RaftDecodeError(`carries ${r.entries.length} entries`);
  const entries: Entry[] = r.entries.map((e, i) => {
    if (!ENTRY_TYPES.has(e.type as EntryType)) throw new RaftDecodeError(`entries[${i}] has unknown type "${e.type}"`);
    const entry: Entry = { index: num(e.index, `entries[${i}].index`), term: num(e.term, `entries[${i}].term`), type: e.type as EntryType, data: e.data ?? new Uint8Array() };
    if (e.request) entry.request = { clientId: e.request.clientId ?? '', seq: num(e.request.seq, `entries[${i}].request.seq`) };
    if (e.conf) {
      if (!CONF_TYPES.has(e.conf.type as ConfChangeType) || !e.conf.member) throw new RaftDecodeError(`entries[${i}].conf is invalid`);
      entry.conf = { type: e.conf.type as ConfChangeType, member: e.conf.member };
    }
    return entry;
  });
  const m: Message = {
    group, type: r.type as MessageType, from: r.from, to: r.to, term: num(r.term, 'term'), logTerm: num(r.logTerm, 'logTerm'),
    index: num(r.index, 'index'), entries, commit: num(r.commit, 'commit'), reject: r.reject, rejectHint: num(r.rejectHint, 'rejectHint'),
  };
  if (r.snapshot) {
    m.snapshot = { metadata: { index: num(r.snapshot.index, 'snapshot.index'), term: num(r.snapshot.term, 'snapshot.term'), conf: { voters: [...(r.snapshot.conf?.voters ?? [])], learners: [...(r.snapshot.conf?.learners ?? [])] } }, data: r.snapshot.data ?? new Uint8Array() };
  }
  if (r.hasContext) m.context = r.context;
  if (r.quiesce) m.quiesce = true;
  return m;
}
