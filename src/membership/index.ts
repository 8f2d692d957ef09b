/** The membership core's public surface, for the runtime, the simulator scenarios and tests. */
export { Membership, type MembershipOptions } from './membership.js';
export {
  AGENT_MEMBERSHIP_CONFIG,
  DEFAULT_MEMBERSHIP_CONFIG,
  validateMembershipConfig,
  retransmitLimit,
  suspicionMinTimeoutMs,
  suspicionTimeoutMs,
  expectedConfirmations,
  pushPullIntervalForMs,
  type MembershipConfig,
} from './config.js';
export { BroadcastQueue } from './broadcast-queue.js';
export { Suspicion } from './suspicion.js';
export { validateMeta, metaProblem, metaKey, emptyMeta, encodedSizeBytes, rumourSizeBytes, metaSizeBytes } from './meta.js';
export type {
  MemberStatus,
  NodeMeta,
  NodeResources,
  NodeRoles,
  MemberSnapshot,
  Rumour,
  PushPullState,
  GossipMessage,
  MemberEvent,
  MemberEventKind,
  MembershipEffect,
} from './types.js';
