/**
 * Operating errors of the consensus core. A proposal that cannot be accepted is an error value the caller handles
 * (retry on the leader, back off); a broken Raft invariant is an `InvariantError` and crashes.
 */
import { ShoalError } from '../lib/errors.js';
import type { MemberId } from './types.js';

/** The proposal or read was made on a member that is not the leader (or is handing leadership over). */
export class NotLeaderError extends ShoalError {
  constructor(group: string, self: MemberId, readonly leader: MemberId | undefined, why = 'it is not the leader') {
    super('ERR_RAFT_NOT_LEADER', `group ${group}: member ${self} cannot accept this request: ${why}${leader ? `; the leader is ${leader}` : '; no leader is known'}`, { group, self, leader });
  }
}

/** The proposal was refused to protect the group (too many uncommitted bytes, a change already pending...). */
export class ProposalDroppedError extends ShoalError {
  constructor(group: string, why: string) {
    super('ERR_RAFT_PROPOSAL_DROPPED', `group ${group}: proposal dropped: ${why}`, { group });
  }
}

/** Entries below the first index are gone: they were compacted into a snapshot. */
export class CompactedError extends ShoalError {
  constructor(index: number, firstIndex: number) {
    super('ERR_RAFT_COMPACTED', `log index ${index} was compacted (first index is ${firstIndex})`, { index, firstIndex });
  }
}

/** Entries past the last index do not exist (yet). */
export class UnavailableError extends ShoalError {
  constructor(index: number, lastIndex: number) {
    super('ERR_RAFT_UNAVAILABLE', `log index ${index} is past the last index ${lastIndex}`, { index, lastIndex });
  }
}

/** A snapshot older than the one storage already holds. */
export class SnapshotOutOfDateError extends ShoalError {
  constructor(index: number, current: number) {
    super('ERR_RAFT_SNAPSHOT_OUT_OF_DATE', `snapshot at index ${index} is older than the stored one at ${current}`, { index, current });
  }
}
