export { ClusterState, portsOf, takePorts, takenPort, type StateSnapshot } from './cluster-state.js';
export type { Command, ApplyResult, Plan, PlannedAllocation, PlannedStop, AllocUpdate } from './commands.js';
export { isTerminal, holdsResources, type NodeRecord, type JobRecord, type Allocation, type Evaluation, type NodeStatus, type ClientStatus, type DesiredStatus, type EvalTrigger } from './types.js';
export { sliceDelta, NodeSlice, type SliceDelta } from './slice.js';
