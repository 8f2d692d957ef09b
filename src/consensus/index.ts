export { RaftNode, type RaftConfig, type RaftLimits, type Status } from './raft.js';
export { RaftLog } from './log.js';
export { Progress, Inflights, type ProgressState } from './progress.js';
export { MemoryLogStorage, emptyConf, cloneConf, bootstrapEntries, type LogStorage } from './storage.js';
export { ClientSessions, type SessionCheck, type SessionRecord } from './sessions.js';
export { applyConfChangeTo } from './conf.js';
export { NotLeaderError, ProposalDroppedError, CompactedError, UnavailableError, SnapshotOutOfDateError } from './errors.js';
export * from './types.js';
