export { PartitionState, type ApplyOptions, type GetResult, type PartitionStateOptions, type QueueItemView, type QueueScanResult, type ScanOptions, type ScanResult } from './collections.js';
export * from './commands.js';
export { ChangeWindow, type ChangeFilter, type ChangeKind, type ChangeRecord, type WatchResult } from './changes.js';
export { toError, type Failure, type PartitionErrorCode, type PartitionLimitName } from './errors.js';
export { xxh64, keyPosition } from './hash.js';
export { MemoryPartitionStore } from './memory-store.js';
export * from './scheme.js';
export * from './store.js';
export {
  buildsInFlight, initialPlacement, planPlacement,
  type AddReason, type InitialPartition, type InitialPlacementInput, type InitialPlacementResult, type MemberView, type NodeLoad,
  type NodeStatus as PlacementNodeStatus, type PartitionView, type PlacementAction, type PlacementNode, type PlacementPlan, type RemoveReason,
  type ServicePlacementInput,
} from './placement.js';
